package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

// ManagedUpdateError says EKS's own update of a group did not succeed, in
// EKS's words.
type ManagedUpdateError struct {
	Terms  terms.Terms // how the front end names its options
	Group  cloud.NodeGroupRef
	ID     string
	Status string
	Errors []string
}

func (e *ManagedUpdateError) Error() string {
	msg := fmt.Sprintf("EKS's update %s of %s ended %s", e.ID, e.Group, e.Status)
	if len(e.Errors) > 0 {
		msg += ": " + strings.Join(e.Errors, "; ")
	}
	if slices.ContainsFunc(e.Errors, func(s string) bool { return strings.HasPrefix(s, "PodEvictionFailure") }) {
		msg += fmt.Sprintf(" (a budget kept pods from being evicted: free it, or rerun with %s to replace those nodes anyway)", e.Terms.Of("force"))
	}
	return msg
}

// UpgradeManaged asks EKS to upgrade a managed node group itself
// (UpdateNodegroupVersion, --mode=managed) and follows the update to its
// end. The checks, preflight and lock are the same as noderoll's own
// upgrade's, and the cluster-autoscaler is held meanwhile; EKS does the
// rest, in its own way and time. An update already in progress for the
// group (a run killed midway, or one started elsewhere) is followed, not
// started again.
func (e *Engine) UpgradeManaged(ctx context.Context, req Request, force bool) (res *Result, err error) {
	start := e.clock.Now()
	want, setConfig, err := e.checkManagedRequest(req)
	if err != nil {
		return nil, err
	}
	p, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	if !p.group.Managed {
		return nil, fmt.Errorf("%s asks EKS to update the group, but %s is a self-managed Auto Scaling group (%s), which EKS does not update: leave out %s to have noderoll do it", e.opts.Terms.With("mode", "managed"), req.Group, p.group.ASGName, e.opts.Terms.Of("mode"))
	}
	following, p, err := e.managedInProgress(ctx, req, p)
	if err != nil {
		return nil, err
	}
	// recording: every node runs the target and EKS's update only records
	// the group's launch template version.
	recording := false
	if following == "" {
		var done bool
		if recording, done, err = e.judgeManaged(ctx, req, p); err != nil {
			return nil, err
		} else if done {
			return e.upToDate(p, p.target, start), nil
		}
	}
	ctx, held, err := e.lockAndLoad(ctx, req.Group, "")
	if err != nil {
		return nil, err
	}
	defer held.release()
	if rec := held.rec; rec.Active() {
		return nil, fmt.Errorf("%w: noderoll's own upgrade of %s to %s is unfinished; finish it (without %s) or take it back with %s first",
			ErrTargetMismatch, req.Group, describeTarget(rec.Target), e.opts.Terms.Of("mode"), e.opts.Terms.Of("abort"))
	}
	hold := e.autoscalerHold(req.Group)
	if err := hold.pause(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if lockLost(ctx) {
			return // whoever took the lock over owns the cleanup
		}
		if rerr := hold.restore(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = rerr
		}
	}()
	id := following
	if id == "" {
		if setConfig && p.group.UpdateConfig.Counts() != want {
			if err := e.setManagedConfig(ctx, req.Group, p.group.UpdateConfig, want); err != nil {
				return nil, err
			}
		}
		if id, err = e.startManaged(ctx, req.Group, p, force); err != nil {
			return nil, err
		}
	} else {
		e.report.Step(1, "EKS update", fmt.Sprintf("%s: EKS update %s is already in progress; following it", req.Group, id))
	}
	return e.followManaged(ctx, req.Group, p, id, recording, start)
}

// checkManagedRequest refuses what EKS's update cannot do, before anything
// is read, and turns --max-unavailable into the updateConfig to set.
func (e *Engine) checkManagedRequest(req Request) (cloud.UpdateConfig, bool, error) {
	t := e.opts.Terms
	if req.Target.AMI != "" {
		return cloud.UpdateConfig{}, false, fmt.Errorf("%s: EKS updates a managed node group to a Kubernetes version, a release version or a version of its launch template, not to an AMI ID: put the AMI in a new launch template version and ask for it with %s, or leave out %s to have noderoll do it",
			t.With("mode", "managed"), t.Of("launch-template-version"), t.Of("mode"))
	}
	want, setConfig, err := managedUpdateConfig(e.opts.MaxUnavailable, t)
	if err != nil {
		return cloud.UpdateConfig{}, false, err
	}
	if e.managed == nil {
		return cloud.UpdateConfig{}, false, fmt.Errorf("%s: this cloud's node groups do not replace their own nodes; leave out %s to have noderoll do it", t.With("mode", "managed"), t.Of("mode"))
	}
	return want, setConfig, nil
}

// managedInProgress returns the group's EKS version update in progress, to
// follow ("" none). Another kind of update (this command's own config
// update, cut short, or someone's) ends first, as EKS takes one at a time,
// and the group is looked at again after it.
func (e *Engine) managedInProgress(ctx context.Context, req Request, p *prepared) (string, *prepared, error) {
	following, err := e.managed.ManagedUpdateInProgress(ctx, req.Group)
	if err != nil || following == "" {
		return "", p, err
	}
	st, err := e.managed.ManagedUpdate(ctx, req.Group, following)
	if err != nil {
		return "", p, err
	}
	if st.Type == "" || st.Type == managedVersionUpdate {
		return following, p, nil
	}
	e.report.Info(fmt.Sprintf("EKS update %s (%s) of %s is in progress; waiting for it to end", following, st.Type, req.Group))
	if _, err := e.waitManaged(ctx, req.Group, following); err != nil {
		return "", p, err
	}
	p, err = e.prepare(ctx, req)
	return "", p, err
}

// judgeManaged runs preflight for a new EKS update: done when the group is
// up to date and EKS's record of it true; recording when the nodes run the
// target but EKS still records the version it last set (noderoll's own
// upgrade, before it kept the record true, or a change by hand).
func (e *Engine) judgeManaged(ctx context.Context, req Request, p *prepared) (recording, done bool, err error) {
	pre, err := e.judge(ctx, p)
	if err != nil {
		return false, false, err
	}
	if pre.ResumeNote != "" {
		e.report.Info(pre.ResumeNote)
	}
	lags := recordLags(p.group)
	if pre.UpToDate && !lags {
		return false, true, nil
	}
	if pre.UpToDate {
		// Its update records the new version; it surges and scales back
		// all the same, and the scale-back may take the nodes there were
		// rather than the new ones.
		recording = true
		e.report.Info(fmt.Sprintf("the nodes of %s run the target, but EKS records version %d of launch template %s and the group launches version %d: asking EKS to record it; its update still surges and scales back, which may replace as many nodes as it surges",
			req.Group, p.group.EKSTemplateVersion, p.group.TemplateID, p.group.TemplateVersion))
	}
	return recording, false, e.heed(pre)
}

// setManagedConfig sets the group's updateConfig (--max-unavailable) and
// waits for EKS to apply it.
func (e *Engine) setManagedConfig(ctx context.Context, ref cloud.NodeGroupRef, from, to cloud.UpdateConfig) error {
	id, err := e.managed.StartManagedConfigUpdate(ctx, ref, to)
	if err != nil {
		return err
	}
	e.report.Step(1, "EKS update config", fmt.Sprintf("%s: updateConfig from %s to %s (UpdateNodegroupConfig, update %s); it stays the group's setting for EKS's later updates", ref, from, to, id))
	_, err = e.waitManaged(ctx, ref, id)
	return err
}

// startManaged asks EKS for the update: to the launch template version
// asked for, or to the release preflight judged.
func (e *Engine) startManaged(ctx context.Context, ref cloud.NodeGroupRef, p *prepared, force bool) (string, error) {
	u := cloud.ManagedUpdate{Force: force}
	if p.target.TemplateVersion > 0 {
		u.TemplateVersion = p.target.TemplateVersion
	} else {
		// The release pins the very AMI preflight judged, as
		// --kubernetes-version resolved it.
		u.KubernetesVersion, u.ReleaseVersion = p.target.KubeMinor, p.target.ReleaseVersion
	}
	id, err := e.managed.StartManagedUpdate(ctx, ref, u)
	if err != nil {
		return "", err
	}
	e.report.Step(1, "EKS update", fmt.Sprintf("%s: EKS update %s started (UpdateNodegroupVersion to %s%s); EKS replaces the nodes itself", ref, id, describeTarget(p.target), map[bool]string{true: ", force", false: ""}[force]))
	return id, nil
}

// followManaged follows EKS's update of the group to its end, saying how
// many instances are on the target as it goes, and counts the nodes it
// replaced: the old ones; when it only records the version, any of those
// there were that its scale-back took.
func (e *Engine) followManaged(ctx context.Context, ref cloud.NodeGroupRef, p *prepared, id string, recording bool, start time.Time) (*Result, error) {
	// The nodes the update replaces: the old ones; when it only records
	// the version, any of those there were that its scale-back takes.
	original := map[string]bool{}
	for _, i := range p.group.Instances {
		if (i.ImageID != p.target.ImageID || recording) && !i.Terminating() {
			original[i.ID] = true
		}
	}
	lastStatus, lastProgress := "", ""
	var g cloud.NodeGroup
	_, err := e.waitManaged(ctx, ref, id, func(st cloud.ManagedUpdateState) error {
		var err error
		if g, err = e.cloud.NodeGroup(ctx, ref); err != nil {
			return err
		}
		e.members.Add(g.Instances)
		onTarget, old := 0, 0
		for _, i := range g.Instances {
			switch {
			case i.Terminating():
			case i.ImageID == p.target.ImageID:
				onTarget++
			default:
				old++
			}
		}
		if progress := fmt.Sprintf("%d instances on the target, %d old, desired %d", onTarget, old, g.Desired); progress != lastProgress {
			e.report.Info(fmt.Sprintf("EKS update %s: %s", id, progress))
			lastProgress = progress
		}
		if st.Status != lastStatus && st.Status != "InProgress" {
			e.report.Info(fmt.Sprintf("EKS update %s: %s", id, st.Status))
		}
		lastStatus = st.Status
		return nil
	})
	if err != nil {
		return nil, err
	}
	var replaced []string
	left := map[string]bool{}
	for _, i := range g.Instances {
		left[i.ID] = true
	}
	for iid := range original {
		if !left[iid] {
			replaced = append(replaced, iid)
		}
	}
	slices.Sort(replaced)
	e.report.Step(8, "Replaced", fmt.Sprintf("EKS replaced %d nodes of %s; desired %d, max %d", len(replaced), ref, g.Desired, g.Max))
	return &Result{Target: p.target, Replaced: replaced, Duration: e.clock.Since(start)}, nil
}

// managedVersionUpdate is the type of the update UpdateNodegroupVersion
// starts.
const managedVersionUpdate = "VersionUpdate"

// managedUpdateConfig turns --max-unavailable into EKS's updateConfig, and
// says whether it was given; EKS takes 1 to 100 nodes, or 1% to 100%.
func managedUpdateConfig(a Amount, t terms.Terms) (cloud.UpdateConfig, bool, error) {
	if !a.Given {
		return cloud.UpdateConfig{}, false, nil
	}
	if a.Value < 1 || a.Value > 100 {
		return cloud.UpdateConfig{}, false, fmt.Errorf("%s with %s: EKS replaces 1 to 100 nodes at once, or 1%% to 100%% of the group; give a value in that range, or leave it out to keep the group's own setting", t.With("max-unavailable", a.String()), t.With("mode", "managed"))
	}
	if a.Percent {
		return cloud.UpdateConfig{MaxUnavailablePercentage: a.Value}, true, nil
	}
	return cloud.UpdateConfig{MaxUnavailable: a.Value}, true, nil
}

// waitManaged follows an EKS update to its end and returns its state; an
// update that ends other than Successful is a ManagedUpdateError. each,
// when given, sees every state polled, the last included.
func (e *Engine) waitManaged(ctx context.Context, ref cloud.NodeGroupRef, id string, each ...func(cloud.ManagedUpdateState) error) (cloud.ManagedUpdateState, error) {
	for {
		st, err := e.managed.ManagedUpdate(ctx, ref, id)
		if err != nil {
			return st, err
		}
		for _, f := range each {
			if err := f(st); err != nil {
				return st, err
			}
		}
		switch st.Status {
		case "InProgress":
		case "Successful":
			return st, nil
		default:
			return st, &ManagedUpdateError{Group: ref, ID: id, Status: st.Status, Errors: st.Errors, Terms: e.opts.Terms}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for EKS update %s of %s: %w (EKS goes on with it; run the same command again)", id, ref, ctx.Err())
		case <-e.clock.After(e.opts.PollInterval):
		}
	}
}

// recordLags reports a managed group on its own launch template whose
// Auto Scaling group launches another version than EKS records for it:
// what noderoll's own upgrade leaves (EKS: Ec2LaunchTemplateVersionMismatch).
func recordLags(g cloud.NodeGroup) bool {
	return g.Managed && g.EKSTemplateID != "" && g.EKSTemplateID == g.TemplateID && g.EKSTemplateVersion != g.TemplateVersion
}
