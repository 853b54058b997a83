package rollout

import (
	"fmt"
	"slices"
)

// Surge is noderoll's default: every surge instance launched at once,
// AZ-balanced by the group; every old node tainted up front, so evicted pods
// never land on another old node; old nodes drained concurrently while
// nodes in flight stay within Surge+Unavailable and ready capacity within
// OrigDesired-Unavailable; a drained node terminated as soon as its
// post-cordon wait ends, its slot going to the next. The last old nodes are
// terminated lowering desired capacity, so no surplus node is launched only
// to be drained again.
//
// Order is chosen with the disruption budgets in mind (see order): nodes
// whose pods can all go now first, then those holding most pods of the
// bottleneck workload, so its budget is never idle.
type Surge struct{}

// Name implements Strategy.
func (Surge) Name() string { return "surge" }

// Plan implements Strategy.
func (Surge) Plan(s State) Plan {
	var p Plan
	maxSize, desired := surged(s)
	switch s.Phase {
	case PhaseStarted, PhaseSurging:
		if s.Max != maxSize || s.Desired != desired {
			p.add(Action{Kind: Resize, Max: maxSize, Desired: desired, Why: fmt.Sprintf("%d surge instances at once", s.Surge)})
		}
		taintOld(s, &p)
		p.add(Action{Kind: SetPhase, Phase: PhaseReplacing})
	case PhaseReplacing:
		replaceConcurrently(s, &p)
	case PhaseScalingDown:
		scaleBack(s, &p)
	default:
		p.Done = true
	}
	return p
}

func replaceConcurrently(s State, p *Plan) {
	taintOld(s, p)
	// surplus is how far desired may still be lowered: the surge, less the
	// decrementing terminations recorded that have not taken yet.
	surplus := s.Desired - s.OrigDesired
	pending := 0 // old instances in service whose termination is not recorded
	for _, i := range s.Instances {
		if i.Old && i.InService() && !i.Terminated {
			pending++
		}
		if i.InService() && i.Terminated && i.Decrement {
			surplus--
		}
	}
	// decide says how to terminate the next old instance: lowering desired
	// while the surplus covers every old instance left, so the group ends
	// at its original size with no surplus to drain.
	decide := func() bool {
		dec := surplus > 0 && surplus >= pending
		if dec {
			surplus--
		}
		pending--
		return dec
	}
	slots := s.Surge + s.Unavailable
	inflight := 0
	available := 0
	for _, i := range s.Instances {
		if inFlight(i) {
			inflight++
			if i.Terminated {
				advance(s, i, i.Decrement, true, p)
			} else if !i.DrainedAt.IsZero() && !s.Now.Before(i.TerminateAt(s.PostCordonWait)) {
				advance(s, i, decide(), true, p)
			} else {
				advance(s, i, false, true, p)
			}
			continue
		}
		if i.InService() && serving(i) {
			available++
		}
	}
	var candidates []Instance
	for _, i := range s.Instances {
		if i.Old && i.InService() && !inFlight(i) {
			candidates = append(candidates, i)
		}
	}
	if len(candidates) == 0 {
		if inflight > 0 {
			return
		}
		if miss := settled(s, false); len(miss) > 0 {
			p.wait(miss...)
			p.NeedCapacity = true
			return
		}
		p.add(Action{Kind: SetPhase, Phase: PhaseScalingDown})
		return
	}
	minAvailable := s.OrigDesired - s.Unavailable
	// The first candidate past the free slots is only told as the wait.
	for _, i := range order(s, candidates, max(slots-inflight, 0)+1) {
		if inflight >= slots {
			p.wait(fmt.Sprintf("%d nodes in flight (max surge %d + max unavailable %d)", inflight, s.Surge, s.Unavailable))
			break
		}
		costs := serving(i.Instance)
		if costs && available-1 < minAvailable {
			p.wait(fmt.Sprintf("%d nodes ready and schedulable, at least %d must stay (original %d - max unavailable %d)", available, minAvailable, s.OrigDesired, s.Unavailable))
			// Only new nodes can free this: unless something is in flight
			// (whose replacement is coming), the wait is for capacity.
			p.NeedCapacity = inflight == 0
			break
		}
		p.add(Action{Kind: Drain, Instance: i.ID, Mark: Replacing, CordonFirst: true, Why: i.why})
		inflight++
		if costs {
			available--
		}
	}
}

// serving is an instance whose node runs pods and takes its share: Ready,
// and neither cordoned nor being replaced.
func serving(i Instance) bool {
	return i.HasNode && i.Ready && !i.Cordoned && i.Mark == Unmarked
}

type candidate struct {
	Instance
	why string
}

// order ranks old nodes for draining, tracking the budgets' headroom across
// the whole batch as cluster-autoscaler does, instead of finding it out from
// refused evictions. Headroom is each budget's allowed disruptions less the
// pods it selects on nodes being drained now; a node whose pods all fit is
// movable and its pods then take their share. Movable nodes come first;
// within each kind, the node holding the most pods of the bottleneck
// workloads (most pods on old nodes per allowed disruption) goes first, so
// the budget that decides the makespan is kept busy; nodes that cost no
// ready capacity (NotReady), then fewer pods, break ties. It ranks only the
// first limit nodes: the engine asks on every change, and ranking all 300
// old nodes of a large group each time (a sort per pick) took a quarter of
// its CPU, taken from the control plane on a small machine.
func order(s State, cands []Instance, limit int) []candidate {
	headroom := map[string]int{}
	allowed := map[string]int{}
	for _, b := range s.Budgets {
		headroom[b.Name] = b.Allowed
		allowed[b.Name] = b.Allowed
	}
	onOld := map[string]int{}
	for _, i := range s.Instances {
		if i.Old && i.InService() {
			for b, n := range i.PDBPods {
				onOld[b] += n
			}
		}
		if i.Draining {
			for b, n := range i.PDBPods {
				headroom[b] -= n
			}
		}
	}
	weight := func(i Instance) int {
		w := 0
		for b, n := range i.PDBPods {
			w += n * (onOld[b] + max(allowed[b], 1) - 1) / max(allowed[b], 1)
		}
		return w
	}
	fits := func(i Instance) bool {
		for b, n := range i.PDBPods {
			if n > headroom[b] {
				return false
			}
		}
		return true
	}
	// Weight and serving do not change while picking; whether a node
	// fits does, as each pick takes its pods' share of the headroom.
	type ranked struct {
		Instance
		weight  int
		serving bool
		fits    bool
	}
	pool := make([]ranked, len(cands))
	for k, i := range cands {
		pool[k] = ranked{Instance: i, weight: weight(i), serving: serving(i)}
	}
	before := func(x, y ranked) bool {
		if x.fits != y.fits {
			return x.fits
		}
		if x.weight != y.weight {
			return x.weight > y.weight
		}
		if x.serving != y.serving {
			return !x.serving
		}
		if x.Pods != y.Pods {
			return x.Pods < y.Pods
		}
		return x.ID < y.ID
	}
	var out []candidate
	for len(pool) > 0 && len(out) < limit {
		best := 0
		for k := range pool {
			pool[k].fits = fits(pool[k].Instance)
			if k > 0 && before(pool[k], pool[best]) {
				best = k
			}
		}
		next := pool[best]
		pool = slices.Delete(pool, best, best+1)
		why := "its pods can all move now"
		if !next.fits {
			why = "blocked by a disruption budget now; its other pods move meanwhile"
		}
		for b, n := range next.PDBPods {
			headroom[b] -= n
		}
		out = append(out, candidate{Instance: next.Instance, why: why})
	}
	return out
}
