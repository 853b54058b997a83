package engine

import (
	"fmt"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

// Pure decisions about the record and the group's sizes; what to replace
// next is the rollout package's.

// surgedSizes are the group's max and desired during the upgrade.
func surgedSizes(r *Record) (maxSize, desired int) {
	desired = r.OriginalDesired + r.Surge
	return max(r.OriginalMax, desired, r.HeldMax), desired
}

// acceptResize takes a group someone else resized mid-run as noderoll's own
// hold: the extra capacity counts as surge, drained and removed at scale
// back like the rest. Setting the sizes back by hand instead would make the
// Auto Scaling group terminate instances of its choosing, undrained. A new
// min, or a desired below the original, is not taken: those say the group
// should shrink, which is not noderoll's to decide.
func acceptResize(r *Record, g cloud.NodeGroup, t terms.Terms) error {
	if g.Min != r.OriginalMin || g.Desired < r.OriginalDesired {
		return fmt.Errorf("%s takes over a larger group only: %s has min %d and desired %d, where the upgrade started from min %d and desired %d; set min back to %d and desired to at least %d, then rerun",
			t.Of("accept-resize"), g.ASGName, g.Min, g.Desired, r.OriginalMin, r.OriginalDesired, r.OriginalMin, r.OriginalDesired)
	}
	// In scale back too, what is above the original is surplus, removed
	// drained like the rest.
	r.Surge, r.HeldMax = g.Desired-r.OriginalDesired, g.Max
	return nil
}

// SizesChangedError says someone else changed the group's sizes while
// noderoll held them. noderoll stops rather than fight or silently undo it.
type SizesChangedError struct {
	ASG                        string
	Phase                      string
	Min, Max, Desired          int // as found
	WantMin, WantMax           int // as noderoll set them; min is never changed
	WantDesiredLo, WantDesired int
	OrigMax, OrigDesired       int // what the end restores, with WantMin
	Terms                      terms.Terms
}

func (e *SizesChangedError) Error() string {
	want := fmt.Sprintf("desired %d", e.WantDesired)
	if e.WantDesiredLo != e.WantDesired {
		want = fmt.Sprintf("desired %d to %d", e.WantDesiredLo, e.WantDesired)
	}
	return fmt.Sprintf("Auto Scaling group %s was resized by someone else during the upgrade (phase %s): min %d, max %d, desired %d, where noderoll holds min %d, max %d, %s. "+
		"noderoll stops rather than undo it: stop whatever resizes the group (a cluster-autoscaler, a pipeline, a person), then rerun with %s "+
		"to go on with the group as it is (the extra nodes are drained and removed at scale back, then min %d, max %d, desired %d restored); "+
		"setting the sizes back by hand instead lets the Auto Scaling group terminate instances of its own choosing without draining them",
		e.ASG, e.Phase, e.Min, e.Max, e.Desired, e.WantMin, e.WantMax, want, e.Terms.Of("accept-resize"), e.WantMin, e.OrigMax, e.OrigDesired)
}

// checkSizes compares the group's sizes with those noderoll itself sets in
// the record's phase: surged while surging and replacing (less one for each
// old instance terminated lowering desired capacity); while scaling
// back, desired anywhere from the original to the surged size (each
// removal lowers it by one), or all three back to the original.
func checkSizes(r *Record, g cloud.NodeGroup, t terms.Terms) error {
	maxSize, desired := surgedSizes(r)
	lo := desired - len(r.Decremented)
	switch r.Phase {
	case PhaseSurging, PhaseReplacing:
	case PhaseScalingDown:
		if g.Min == r.OriginalMin && g.Max == r.OriginalMax && g.Desired == r.OriginalDesired {
			return nil
		}
		lo = r.OriginalDesired
	default:
		return nil
	}
	if g.Min == r.OriginalMin && g.Max == maxSize && g.Desired >= lo && g.Desired <= desired {
		return nil
	}
	return &SizesChangedError{ASG: g.ASGName, Phase: r.Phase, Min: g.Min, Max: g.Max, Desired: g.Desired,
		WantMin: r.OriginalMin, WantMax: maxSize, WantDesiredLo: lo, WantDesired: desired,
		OrigMax: r.OriginalMax, OrigDesired: r.OriginalDesired, Terms: t}
}

// oldInstances are the group's instances not on the target AMI that are
// still in service.
func oldInstances(g cloud.NodeGroup, target string) []cloud.Instance {
	var out []cloud.Instance
	for _, i := range g.Instances {
		if i.ImageID != target && !i.Terminating() {
			out = append(out, i)
		}
	}
	return out
}
