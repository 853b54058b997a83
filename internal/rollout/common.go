package rollout

import (
	"fmt"
	"sort"
	"time"
)

// surged is the group's max and desired while old nodes are replaced.
func surged(s State) (maxSize, desired int) {
	desired = s.OrigDesired + s.Surge
	return max(s.OrigMax, desired, s.HeldMax), desired
}

func (p *Plan) add(a Action) { p.Actions = append(p.Actions, a) }

func (p *Plan) wait(why ...string) { p.Waiting = append(p.Waiting, why...) }

func (p *Plan) wakeAt(t time.Time) {
	if p.WakeAt.IsZero() || t.Before(p.WakeAt) {
		p.WakeAt = t
	}
}

// settled lists what keeps the group from being settled: its desired count
// of instances in service, each one on the target with a Ready node, and
// with perAZ a Ready node on the target in every AZ. Old nodes are never
// waited for: a NotReady old node, often the reason to upgrade, must not
// hold the upgrade.
func settled(s State, perAZ bool) []string {
	var missing []string
	inService := 0
	newPerAZ := map[string]int{}
	for _, i := range s.Instances {
		if !i.InService() {
			continue
		}
		inService++
		if i.Old {
			continue
		}
		if !i.HasNode || !i.Ready {
			missing = append(missing, fmt.Sprintf("instance %s (%s) has no Ready node", i.ID, i.AZ))
			continue
		}
		newPerAZ[i.AZ]++
	}
	if inService < s.Desired {
		missing = append(missing, fmt.Sprintf("%d of %d instances launched", inService, s.Desired))
	}
	if perAZ {
		for _, az := range s.AZs {
			if newPerAZ[az] == 0 {
				missing = append(missing, "no Ready node on the new AMI in "+az)
			}
		}
	}
	return missing
}

// leaving lists instances on their way out (terminated, node not yet gone).
func leaving(s State) []string {
	var out []string
	for _, i := range s.Instances {
		if i.Leaving {
			out = append(out, i.ID)
		}
	}
	return out
}

// inFlight reports an instance whose removal noderoll began: marked, or
// its termination recorded, and still in service.
func inFlight(i Instance) bool {
	return i.InService() && (i.Mark != Unmarked || i.Terminated)
}

// waitsPostCordon says whether a drained instance's post-cordon wait is
// still running, and if so has the plan wait and wake for its end.
func waitsPostCordon(s State, i Instance, p *Plan) bool {
	due := i.TerminateAt(s.PostCordonWait)
	if !s.Now.Before(due) {
		return false
	}
	p.wakeAt(due)
	p.wait(fmt.Sprintf("%s terminates in %s (post-cordon wait)", i.ID, due.Sub(s.Now).Round(time.Second)))
	return true
}

// advance takes one in-flight instance a step further: a recorded
// termination that never took is asked again as it was; a drained node is
// terminated once its post-cordon wait is over (decrement says how); an
// undrained one is drained (again, after a restart).
func advance(s State, i Instance, decrement, cordonFirst bool, p *Plan) {
	switch {
	case i.Terminated:
		p.add(Action{Kind: Terminate, Instance: i.ID, Decrement: i.Decrement, Why: "its recorded termination did not take"})
	case !i.DrainedAt.IsZero():
		if waitsPostCordon(s, i, p) {
			return
		}
		p.add(Action{Kind: Terminate, Instance: i.ID, Decrement: decrement, Why: "drained"})
	case !i.Draining:
		mark := i.Mark
		if mark == Unmarked {
			mark = Replacing
		}
		p.add(Action{Kind: Drain, Instance: i.ID, Mark: mark, CordonFirst: cordonFirst || mark == Removing, Why: "resuming its drain"})
	default:
		p.wait(i.ID + " draining")
	}
}

// taintOld taints every old node in service that is not yet.
func taintOld(s State, p *Plan) {
	for _, i := range s.Instances {
		if i.Old && i.InService() && i.HasNode && !i.Tainted {
			p.add(Action{Kind: Taint, Instance: i.ID})
		}
	}
}

// scaleBack removes the instances above the original desired count one at
// a time, drained like old ones, then restores the original sizes and waits
// for the terminated instances to leave. Sizes are restored without waiting
// for them: desired is already back, and an instance shutting down holds
// nothing the sizes protect.
func scaleBack(s State, p *Plan) {
	for _, i := range s.Instances {
		if inFlight(i) {
			advance(s, i, true, true, p)
			return
		}
	}
	if s.Desired > s.OrigDesired {
		if l := leaving(s); len(l) > 0 {
			p.wait(fmt.Sprintf("%d instances leaving", len(l)))
			return
		}
		var live []Instance
		for _, i := range s.Instances {
			if i.InService() {
				live = append(live, i)
			}
		}
		if v := pickSurplus(live, 1); len(v) > 0 {
			p.add(Action{Kind: Drain, Instance: v[0].ID, Mark: Removing, CordonFirst: true,
				Why: fmt.Sprintf("desired %d -> %d", s.Desired, s.OrigDesired)})
			return
		}
	}
	if s.Min != s.OrigMin || s.Max != s.OrigMax || s.Desired != s.OrigDesired {
		p.add(Action{Kind: Restore, Max: s.OrigMax, Desired: s.OrigDesired})
		return
	}
	if l := leaving(s); len(l) > 0 {
		p.wait(fmt.Sprintf("%d instances leaving", len(l)))
		return
	}
	p.Done = true
}

// pickSurplus chooses which n instances to remove when scaling back: from
// the AZs holding the most, so the group stays balanced, the one with the
// fewest pods to move first.
func pickSurplus(in []Instance, n int) []Instance {
	pool := append([]Instance(nil), in...)
	var out []Instance
	for ; n > 0 && len(pool) > 0; n-- {
		perAZ := map[string]int{}
		for _, i := range pool {
			perAZ[i.AZ]++
		}
		sort.SliceStable(pool, func(a, b int) bool {
			x, y := pool[a], pool[b]
			if perAZ[x.AZ] != perAZ[y.AZ] {
				return perAZ[x.AZ] > perAZ[y.AZ]
			}
			if x.Pods != y.Pods {
				return x.Pods < y.Pods
			}
			return x.ID > y.ID // the newest (highest ID) has had the least time to gather pods
		})
		out = append(out, pool[0])
		pool = pool[1:]
	}
	return out
}

func sortByID(in []Instance) {
	sort.Slice(in, func(a, b int) bool { return in[a].ID < in[b].ID })
}

// surgeFirst grows the group to its surged size and waits until the new
// capacity is settled (perAZ: a Ready new node in every AZ too) before
// the rollout moves on to replacing.
func surgeFirst(s State, perAZ bool, why string, p *Plan) {
	maxSize, desired := surged(s)
	if s.Max != maxSize || s.Desired != desired {
		p.add(Action{Kind: Resize, Max: maxSize, Desired: desired, Why: why})
	}
	if s.Phase == PhaseStarted {
		p.add(Action{Kind: SetPhase, Phase: PhaseSurging})
	}
	if len(p.Actions) > 0 {
		return
	}
	if miss := settled(s, perAZ); len(miss) > 0 {
		p.wait(miss...)
		p.NeedCapacity = true
		return
	}
	p.add(Action{Kind: SetPhase, Phase: PhaseReplacing})
}
