package engine

import (
	"context"
	"fmt"
)

// ErrNothingToAbort says there is no upgrade of the group under way.
type ErrNothingToAbort struct{ Why string }

func (e *ErrNothingToAbort) Error() string { return "nothing to abort: " + e.Why }

// Abort takes an upgrade under way (interrupted, failed, or stopped by a
// preflight of a resume) back to where the group was: it launches its
// original launch template version again, every node of the upgrade's AMI
// is replaced by one of the original AMI with the upgrade's own strategy and
// budgets (drained within the pods' budgets), nodes of the original AMI take
// pods again (untainted, uncordoned), and sizes, scaling processes and the
// cluster-autoscaler are restored. The record ends Aborted. A bluegreen
// upgrade whose old nodes are all still there simply goes back to them (as
// --rollback). Interrupted, it resumes: run it again.
func (e *Engine) Abort(ctx context.Context, ref Request) (*Result, error) {
	start := e.clock.Now()
	ctx, o, err := e.open(ctx, ref, "abort the upgrade ("+e.opts.Terms.Of("abort")+")")
	if err != nil {
		return nil, err
	}
	defer o.release()
	group, store, rec := o.group, o.store, o.rec
	if !rec.Active() {
		why := fmt.Sprintf("no upgrade of %s is under way", ref.Group)
		if rec != nil {
			why += fmt.Sprintf(" (the last one ended %s)", rec.Phase)
		}
		return nil, &ErrNothingToAbort{Why: why}
	}
	if canGoBack(rec) {
		return e.goBack(ctx, start, store, rec, group)
	}
	if rec.Abort == nil {
		cp, err := e.controlPlaneMinor(ctx)
		if err != nil {
			return nil, err
		}
		orig, err := resolveTarget(ctx, e.cloud, group, TargetSpec{LaunchTemplateVersion: rec.OriginalTemplateVersion}, cp, e.opts.Terms)
		if err != nil {
			return nil, fmt.Errorf("finding the AMI the group ran before (launch template version %d): %w", rec.OriginalTemplateVersion, err)
		}
		// Turned around: the original is the target now, its version the
		// one to launch, and the phases run again from the start.
		rec.Abort = &Abort{From: rec.Target, Replaced: rec.Replaced, Removed: rec.Removed, Started: e.clock.Now().UTC()}
		rec.Target, rec.TemplateVersion = orig, rec.OriginalTemplateVersion
		rec.Replaced, rec.Removed, rec.Decremented = nil, nil, nil
		rec.Phase = PhaseStarted
		if err := store.Save(ctx, rec); err != nil {
			return nil, err
		}
	}
	u, err := e.newUpgrade(ctx, store, rec, group, rec.Spec, rec.Target)
	if err != nil {
		return nil, err
	}
	defer u.close()
	err = stopCause(ctx, u.run(ctx))
	return &Result{Target: rec.Target, Replaced: rec.Replaced, Removed: rec.Removed, Steps: rec.Steps, Duration: e.clock.Since(start)}, err
}

// restoreOriginals lets the nodes of the original AMI take pods again when
// an upgrade is aborted: the upgrade had tainted (and maybe cordoned and
// begun draining) them as old nodes.
func (u *upgrade) restoreOriginals(ctx context.Context) error {
	if u.rec.Abort == nil {
		return nil
	}
	// pointGroup, the step before, has just described the group.
	for _, i := range u.group.Instances {
		if i.ImageID != u.rec.Target.ImageID || i.Terminating() {
			continue
		}
		n := u.nodeOf(i.ID)
		if n == nil {
			continue
		}
		changed, err := u.uncordon(ctx, n)
		if err != nil {
			return err
		}
		if changed {
			u.report.NodeStep(0, "Abort", n.Name, "", fmt.Sprintf("node %s (original AMI) takes pods again (untainted, uncordoned)", n.Name))
			u.events.node(ctx, n, "Normal", "NoderollRestored", "the upgrade was aborted: this node takes pods again")
		}
	}
	return nil
}
