package rollout

import "fmt"

// EKS is the seed's algorithm, as an EKS managed node group update runs it:
// surge one instance per AZ (or the group's maxUnavailable if larger) and
// wait until every AZ has a Ready new node; taint every old node; then one
// old node at a time, chosen at random once the previous replacement is
// Ready: evict its pods, cordon, wait the post-cordon wait, terminate it
// keeping desired capacity; finally remove the surplus one at a time.
type EKS struct {
	// Intn picks the next old node (uniformly in [0, n)); injected so runs
	// can be repeated.
	Intn func(n int) int
}

// Name implements Strategy.
func (EKS) Name() string { return "eks" }

// Plan implements Strategy.
func (e EKS) Plan(s State) Plan {
	var p Plan
	switch s.Phase {
	case PhaseStarted, PhaseSurging:
		surgeFirst(s, !s.AnyAZ, "a new node in every AZ", &p)
	case PhaseReplacing:
		taintOld(s, &p)
		if l := leaving(s); len(l) > 0 {
			p.wait(fmt.Sprintf("%s leaving", l[0]))
			return p
		}
		for _, i := range s.Instances {
			if inFlight(i) {
				advance(s, i, false, false, &p)
				return p
			}
		}
		var old []Instance
		for _, i := range s.Instances {
			if i.Old && i.InService() {
				old = append(old, i)
			}
		}
		// A capacity gate: the previous replacement must be Ready before
		// the next old node loses its pods, so that launches failing mid-run
		// stop the run instead of draining the group down.
		if miss := settled(s, false); len(miss) > 0 {
			p.wait(miss...)
			p.NeedCapacity = true
			return p
		}
		if len(old) == 0 {
			p.add(Action{Kind: SetPhase, Phase: PhaseScalingDown})
			return p
		}
		sortByID(old)
		pick := old[e.Intn(len(old))]
		p.add(Action{Kind: Drain, Instance: pick.ID, Mark: Replacing, Why: "picked at random"})
	case PhaseScalingDown:
		scaleBack(s, &p)
	default:
		p.Done = true
	}
	return p
}
