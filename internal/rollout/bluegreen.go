package rollout

import (
	"fmt"
	"time"
)

// BlueGreen launches the whole replacement set at once (Surge is the
// group's size), waits until every new node is Ready, then drains the old
// nodes BatchSize at a time (each drain within the pods' budgets, the
// batches BatchSoak apart) and keeps them, cordoned, for Soak. Until the
// soak ends the old nodes can take their pods back at once (RollBack);
// after it they are terminated lowering desired capacity, so the group
// ends at its size.
type BlueGreen struct{}

// Name implements Strategy.
func (BlueGreen) Name() string { return "bluegreen" }

// Plan implements Strategy.
func (BlueGreen) Plan(s State) Plan {
	var p Plan
	switch s.Phase {
	case PhaseStarted, PhaseSurging:
		taintOld(s, &p)
		surgeFirst(s, false, "the whole green set at once", &p)
	case PhaseReplacing:
		drainBlue(s, &p)
	case PhaseScalingDown:
		scaleBack(s, &p)
	case PhaseRollingBack:
		rollBack(s, &p)
	default:
		p.Done = true
	}
	return p
}

func drainBlue(s State, p *Plan) {
	taintOld(s, p)
	var last time.Time // when the latest drain ended
	draining, terminated := 0, 0
	var candidates, drained []Instance
	for _, i := range s.Instances {
		if !i.Old || !i.InService() {
			continue
		}
		switch {
		case i.Terminated:
			terminated++
			advance(s, i, true, true, p)
		case !i.DrainedAt.IsZero():
			drained = append(drained, i)
			if i.DrainedAt.After(last) {
				last = i.DrainedAt
			}
		case i.Mark != Unmarked || i.Draining:
			draining++
			advance(s, i, true, true, p)
		default:
			candidates = append(candidates, i)
		}
	}
	if draining > 0 {
		return
	}
	if len(candidates) > 0 {
		if due := last.Add(s.BatchSoak); !last.IsZero() && s.Now.Before(due) {
			p.wakeAt(due)
			p.wait(fmt.Sprintf("batch soak: the next batch starts in %s", due.Sub(s.Now).Round(time.Second)))
			return
		}
		n := s.BatchSize
		if n <= 0 {
			n = len(candidates)
		}
		for _, c := range order(s, candidates, n) {
			p.add(Action{Kind: Drain, Instance: c.ID, Mark: Replacing, CordonFirst: true, Why: c.why})
		}
		return
	}
	if len(drained) > 0 {
		if due := last.Add(s.Soak); terminated == 0 && s.Now.Before(due) {
			p.wakeAt(due)
			p.wait(fmt.Sprintf("soak: %d old nodes kept cordoned for %s more; going back is instant until then", len(drained), due.Sub(s.Now).Round(time.Second)))
			return
		}
		// A soak shorter than the post-cordon wait does not cut it short.
		for _, i := range drained {
			if waitsPostCordon(s, i, p) {
				continue
			}
			p.add(Action{Kind: Terminate, Instance: i.ID, Decrement: true, Why: "soak over"})
		}
		return
	}
	if terminated > 0 {
		return
	}
	if miss := settled(s, false); len(miss) > 0 {
		p.wait(miss...)
		p.NeedCapacity = true
		return
	}
	p.add(Action{Kind: SetPhase, Phase: PhaseScalingDown})
}

// rollBack goes back to the old nodes: they take work again at once, the
// group launches the old version again, and the new nodes are drained (all
// at once, within the pods' budgets) and removed lowering desired
// capacity, then the sizes are restored.
func rollBack(s State, p *Plan) {
	for _, i := range s.Instances {
		if i.Old && i.InService() {
			if i.HasNode && (i.Tainted || i.Cordoned || i.Mark != Unmarked) {
				p.add(Action{Kind: Uncordon, Instance: i.ID})
			}
		}
	}
	if len(p.Actions) > 0 {
		return
	}
	p.add(Action{Kind: Repoint})
	// More to remove: the new instances above the original count, less
	// those already on their way out.
	surplus := s.Desired - s.OrigDesired
	for _, i := range s.Instances {
		if !i.Old && i.InService() && (i.Terminated || i.Mark == Removing || i.Draining) {
			surplus--
		}
	}
	for _, i := range s.Instances {
		if i.Old || !i.InService() {
			continue
		}
		switch {
		case i.Terminated:
			advance(s, i, true, true, p)
		case !i.DrainedAt.IsZero():
			// A new node served until its drain: its post-cordon wait
			// (load balancers deregistering it) holds going back too.
			if waitsPostCordon(s, i, p) {
				continue
			}
			p.add(Action{Kind: Terminate, Instance: i.ID, Decrement: true, Why: "going back"})
		case i.Draining:
			p.wait(i.ID + " draining")
		case surplus > 0:
			surplus--
			p.add(Action{Kind: Drain, Instance: i.ID, Mark: Removing, CordonFirst: true, Why: "going back"})
		}
	}
	if len(p.Actions) > 1 || len(p.Waiting) > 0 {
		return
	}
	if l := leaving(s); len(l) > 0 {
		p.wait(fmt.Sprintf("%d instances leaving", len(l)))
		return
	}
	if s.Min != s.OrigMin || s.Max != s.OrigMax || s.Desired != s.OrigDesired {
		p.add(Action{Kind: Restore, Max: s.OrigMax, Desired: s.OrigDesired})
		return
	}
	p.Done = true
}
