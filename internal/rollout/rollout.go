// Package rollout decides, and only decides, how a node group's old nodes
// are replaced. A Strategy looks at one observed State of the group (its
// instances, their nodes, the pods to move and the disruption budgets over
// them) and returns the next actions; the engine applies them, records
// progress in the cluster and asks again. Nothing here talks to a cluster or
// a cloud, so every strategy is tested over thousands of generated runs.
package rollout

import (
	"fmt"
	"time"
)

// Phases of a rollout, as the engine records them.
const (
	PhaseStarted     = "Started"
	PhaseSurging     = "Surging"
	PhaseReplacing   = "Replacing"
	PhaseScalingDown = "ScalingDown"
	// PhaseRollingBack goes back to the old nodes (blue-green, before any
	// old instance is terminated).
	PhaseRollingBack = "RollingBack"
)

// Mark is a node's per-node progress, kept on the node so that a restarted
// process finishes what the last one began.
type Mark string

const (
	Unmarked  Mark = ""
	Replacing Mark = "replacing" // an old node being drained and terminated
	Removing  Mark = "removing"  // a surplus node being removed at scale back
)

// Instance is one instance of the group and its node, as observed.
type Instance struct {
	ID, AZ string
	// Old is true for an instance not on the target AMI.
	Old bool
	// Leaving is true once the cloud terminates it (or it left the group
	// while its node is still registered): on its way out.
	Leaving bool
	// Node facts; HasNode false means no node registered (yet).
	HasNode, Ready, Tainted, Cordoned bool
	Mark                              Mark
	// DrainedAt is when its pods were all gone and it was cordoned; zero
	// until then.
	DrainedAt time.Time
	// CordonedAt is when it was cordoned, when that was before its drain
	// (zero otherwise): its post-cordon wait runs from then, alongside the
	// drain.
	CordonedAt time.Time
	// Draining is true while the engine drains it.
	Draining bool
	// Terminated is true when noderoll recorded its termination: a recorded
	// instance still in service is terminated again (a call that never took).
	Terminated bool
	// Decrement, for a recorded termination, is how it was asked.
	Decrement bool
	// Pods is how many pods a drain must move; PDBPods how many of them each
	// disruption budget (by name) selects.
	Pods    int
	PDBPods map[string]int
}

// InService is an instance not on its way out. A recorded termination
// that never took leaves an instance in service (see Terminated).
func (i Instance) InService() bool { return !i.Leaving }

// TerminateAt is when a drained instance may be terminated: its
// post-cordon wait over, counted from its cordon. A node cordoned before
// its drain has waited all along; one cordoned after waits from then.
func (i Instance) TerminateAt(postCordonWait time.Duration) time.Time {
	from := i.DrainedAt
	if !i.CordonedAt.IsZero() && i.CordonedAt.Before(from) {
		from = i.CordonedAt
	}
	return later(i.DrainedAt, from.Add(postCordonWait))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Budget is one PodDisruptionBudget as its status says now.
type Budget struct {
	Name    string
	Allowed int // status.disruptionsAllowed
}

// State is what a strategy decides from.
type State struct {
	Now   time.Time
	Phase string
	// Sizes of the group now, and as they were before the upgrade.
	Min, Max, Desired             int
	OrigMin, OrigMax, OrigDesired int
	// HeldMax is a max size taken over from someone else (--accept-resize).
	HeldMax int
	// Surge is the extra instances (count, resolved) above OrigDesired;
	// Unavailable the original capacity that may be missing at once.
	Surge, Unavailable int
	AZs                []string
	Instances          []Instance
	Budgets            []Budget
	PostCordonWait     time.Duration
	// Blue-green: old nodes drained BatchSize at a time (0: all at once),
	// BatchSoak apart; drained old instances are kept, cordoned, for Soak
	// before they are terminated, so that going back is instant meanwhile.
	BatchSize       int
	BatchSoak, Soak time.Duration
	// AnyAZ drops the wait for a new node in every AZ before replacing: an
	// aborted upgrade goes back from wherever it stopped, where the group's
	// AZs may already be full of instances to replace.
	AnyAZ bool
}

// Kind of an action.
type Kind int

const (
	// Resize sets the group's max and desired (and Min when non-zero).
	Resize Kind = iota
	// SetPhase records the rollout's phase.
	SetPhase
	// Taint keeps new pods off an old node.
	Taint
	// Drain marks the node (Mark), cordons it first when CordonFirst, and
	// evicts its pods; when done the node is cordoned and DrainedAt set.
	Drain
	// Terminate ends the instance through the group, lowering desired
	// capacity when Decrement.
	Terminate
	// Restore puts min, max and desired back to the original.
	Restore
	// Uncordon gives an old node back its work: taint, cordon and marks
	// removed (going back).
	Uncordon
	// Repoint points the group back at its original launch template
	// version (going back).
	Repoint
)

func (k Kind) String() string {
	return [...]string{"resize", "phase", "taint", "drain", "terminate", "restore", "uncordon", "repoint"}[k]
}

// Action is one thing to do.
type Action struct {
	Kind        Kind
	Instance    string
	Max         int
	Desired     int
	Phase       string
	Mark        Mark
	CordonFirst bool
	Decrement   bool
	// Why says, in a few words, why now: shown to the user.
	Why string
}

func (a Action) String() string {
	switch a.Kind {
	case Resize:
		return fmt.Sprintf("resize max %d desired %d", a.Max, a.Desired)
	case SetPhase:
		return "phase " + a.Phase
	case Terminate:
		if a.Decrement {
			return "terminate " + a.Instance + " (decrement)"
		}
		return "terminate " + a.Instance
	case Restore:
		return "restore sizes"
	}
	return a.Kind.String() + " " + a.Instance
}

// Plan is a strategy's answer to one State.
type Plan struct {
	Actions []Action
	// Waiting names what holds progress now (for the user and the logs).
	Waiting []string
	// NeedCapacity says progress waits on new nodes becoming Ready: the
	// engine bounds that wait (--node-ready-timeout) and asks the cloud
	// why launches fail.
	NeedCapacity bool
	// WakeAt is the earliest time something becomes due without any event
	// (a post-cordon wait ending); zero when none.
	WakeAt time.Time
	// Done says the rollout is over: every node on the target, sizes back.
	Done bool
}

// Strategy decides a rollout's next actions.
type Strategy interface {
	Name() string
	Plan(State) Plan
}
