package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/drain"
)

// upgrade is one run of the EKS-parity strategy over a group, the seed's
// nine steps in order. Its state is the record, the group as the cloud
// describes it, and the nodes as the API server lists them.
type upgrade struct {
	*Engine
	store   *recordStore
	rec     *Record
	group   cloud.NodeGroup
	spec    TargetSpec
	target  Target
	nodes   listersv1.NodeLister
	stop    context.CancelFunc
	rng     *rand.Rand
	drainer *drain.Drainer
	events  eventer
}

func (e *Engine) newUpgrade(ctx context.Context, store *recordStore, rec *Record, g cloud.NodeGroup, spec TargetSpec, t Target) (*upgrade, error) {
	// Nodes are read from an informer's cache: the waits below look often.
	ictx, stop := context.WithCancel(context.WithoutCancel(ctx))
	factory := informers.NewSharedInformerFactory(e.kube, 0)
	nodeInformer := factory.Core().V1().Nodes()
	lister := nodeInformer.Lister()
	factory.Start(ictx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodeInformer.Informer().HasSynced) {
		stop()
		return nil, fmt.Errorf("listing nodes: %w", ctx.Err())
	}
	u := &upgrade{Engine: e, store: store, rec: rec, group: g, spec: spec, target: t, nodes: lister, stop: stop, rng: e.newRand(),
		events: eventer{client: e.kube, clock: e.clock, log: e.log}}
	u.drainer = drain.New(e.kube, e.clock, e.opts.Drain, drain.Hooks{
		Blocked: func(node string, b []drain.Blocker) {
			e.report.Blocked(node, b)
			for _, x := range b {
				u.events.node(ctx, node, corev1.EventTypeWarning, "EvictionBlocked", x.String())
			}
		},
		Forced: func(node string, p *corev1.Pod) {
			e.report.Info(fmt.Sprintf("force-deleted pod %s/%s from %s (--force)", p.Namespace, p.Name, node))
		},
		GaveUp: func(node string, p *corev1.Pod, late time.Duration) {
			msg := fmt.Sprintf("pod %s/%s is still terminating %s after its deletion was due (a finalizer or a dead kubelet holds it); no longer waiting for it",
				p.Namespace, p.Name, late.Round(time.Second))
			e.report.Info("! " + node + ": " + msg)
			u.events.node(ctx, node, corev1.EventTypeWarning, "NoderollPodLeftTerminating", msg)
		},
	}, e.log)
	return u, nil
}

func (u *upgrade) close() { u.stop() }

// run takes the group from wherever the record says through to the end. On
// failure the cluster-autoscaler is restored and the record keeps the cause;
// the group stays as it is (old nodes tainted, surge in place) so that a
// rerun resumes.
func (u *upgrade) run(ctx context.Context) (err error) {
	if u.rec == nil {
		surge := surgeSize(len(u.group.AZs), max(u.opts.MaxUnavailable, u.group.MaxUnavailable))
		now := u.clock.Now().UTC()
		u.rec = &Record{
			Cluster: u.group.Cluster, Nodegroup: u.group.Name, ASG: u.group.ASGName, Spec: u.spec, Target: u.target,
			Phase: PhaseStarted, OriginalMin: u.group.Min, OriginalMax: u.group.Max, OriginalDesired: u.group.Desired,
			OriginalTemplateVersion: u.group.TemplateVersion, Surge: surge, Started: now,
		}
		if err := u.save(ctx); err != nil {
			return err
		}
		u.report.Step(0, "Plan", fmt.Sprintf("%s: %d nodes to %s; surge %d (one per AZ of %s), one old node at a time",
			u.group.Cluster+"/"+u.group.Name, len(oldInstances(u.group, u.target.ImageID)), describeTarget(u.target), surge, strings.Join(u.group.AZs, ", ")))
	} else {
		u.rec.Message = ""
		u.report.Step(0, "Resume", fmt.Sprintf("resuming the upgrade of %s/%s to %s recorded at phase %s (started %s)",
			u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.rec.Target), u.rec.Phase, u.rec.Started.Local().Format(time.Kitchen)))
		var resized *SizesChangedError
		if err := checkSizes(u.rec, u.group); errors.As(err, &resized) && u.opts.AcceptResize {
			if err := acceptResize(u.rec, u.group); err != nil {
				return err
			}
			u.report.Info(fmt.Sprintf("taking %s over as resized: max %d, desired %d; the %d nodes above the original %d are removed, drained, at scale back",
				u.group.ASGName, u.group.Max, u.group.Desired, u.rec.Surge, u.rec.OriginalDesired))
			if err := u.save(ctx); err != nil {
				return err
			}
		}
	}
	defer func() {
		if rerr := u.restoreAutoscaler(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			u.rec.Message = err.Error()
			_ = u.save(context.WithoutCancel(ctx))
		}
	}()
	steps := []func(context.Context) error{
		u.pauseAutoscaler, u.ensureTemplate, u.pointGroup, u.suspendRebalance,
		u.surge, u.taintOld, u.replaceOld, u.scaleBack, u.finish,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (u *upgrade) save(ctx context.Context) error {
	u.rec.Updated = u.clock.Now().UTC()
	return u.store.save(ctx, u.rec)
}

// timed records a step's start and, through the returned func, its end.
func (u *upgrade) timed(ctx context.Context, name string) func() {
	// A step a failure or a kill cut short runs again on resume; both count.
	attempt := 1
	for _, st := range u.rec.Steps {
		if st.Name == name || strings.HasPrefix(st.Name, name+" (attempt ") {
			attempt++
		}
	}
	if attempt > 1 {
		name = fmt.Sprintf("%s (attempt %d)", name, attempt)
	}
	u.rec.Steps = append(u.rec.Steps, Step{Name: name, Start: u.clock.Now().UTC()})
	k := len(u.rec.Steps) - 1
	return func() {
		u.rec.Steps[k].End = u.clock.Now().UTC()
		_ = u.save(ctx)
	}
}

// refresh describes the group afresh and checks that nobody else changed
// its sizes while noderoll holds them.
func (u *upgrade) refresh(ctx context.Context) error {
	g, err := u.cloud.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: u.rec.Cluster, Name: u.rec.Nodegroup})
	if err != nil {
		return err
	}
	u.group = g
	u.members.Add(g.Instances)
	return checkSizes(u.rec, g)
}

// Step 1: a new launch template version, the current one with only the AMI changed.
func (u *upgrade) ensureTemplate(ctx context.Context) error {
	if u.rec.TemplateVersion != 0 {
		return nil
	}
	done := u.timed(ctx, "launch template")
	defer done()
	v := u.target.TemplateVersion
	if v == 0 {
		var err error
		v, err = u.cloud.EnsureTemplateVersion(ctx, u.group.TemplateID, u.rec.OriginalTemplateVersion, u.target.ImageID,
			fmt.Sprintf("noderoll: %s/%s to %s", u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.target)))
		if err != nil {
			return err
		}
	}
	u.rec.TemplateVersion = v
	u.report.Step(1, "Launch template", fmt.Sprintf("%s version %d (from version %d, AMI %s)", u.group.TemplateID, v, u.rec.OriginalTemplateVersion, u.target.ImageID))
	return u.save(ctx)
}

// Step 2: the Auto Scaling group launches from the new version.
func (u *upgrade) pointGroup(ctx context.Context) error {
	if err := u.refresh(ctx); err != nil {
		return err
	}
	if u.group.TemplateVersion == u.rec.TemplateVersion {
		return nil
	}
	v := u.rec.TemplateVersion
	if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
		return err
	}
	u.report.Step(2, "Auto Scaling group", fmt.Sprintf("%s now launches launch template version %d", u.group.ASGName, v))
	return nil
}

// AZRebalance would terminate nodes behind our back while AZs are uneven.
func (u *upgrade) suspendRebalance(ctx context.Context) error {
	for _, p := range u.group.Suspended {
		if p == "AZRebalance" {
			return nil
		}
	}
	u.rec.AZRebalanceSuspended = true
	if err := u.save(ctx); err != nil {
		return err
	}
	return u.cloud.SetProcesses(ctx, u.group, []string{"AZRebalance"}, true)
}

// Step 3: grow the group so a new node comes up in every AZ, and wait until
// they are Ready before any old node is touched.
func (u *upgrade) surge(ctx context.Context) error {
	if u.rec.Phase != PhaseStarted && u.rec.Phase != PhaseSurging {
		return nil
	}
	done := u.timed(ctx, "surge")
	defer done()
	maxSize, desired := surgedSizes(u.rec)
	if u.group.Desired != desired || u.group.Max != maxSize {
		if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{Max: &maxSize, Desired: &desired}); err != nil {
			return err
		}
	}
	u.rec.Phase = PhaseSurging
	if err := u.save(ctx); err != nil {
		return err
	}
	u.report.Step(3, "Surge", fmt.Sprintf("desired %d -> %d, max %d -> %d; waiting for a Ready node on the new AMI in every AZ", u.rec.OriginalDesired, desired, u.rec.OriginalMax, maxSize))
	if err := u.waitSettled(ctx, settleSurge); err != nil {
		return err
	}
	u.rec.Phase = PhaseReplacing
	return u.save(ctx)
}

// Step 4: old nodes take no new pods.
func (u *upgrade) taintOld(ctx context.Context) error {
	if u.rec.Phase != PhaseReplacing {
		return nil
	}
	if err := u.refresh(ctx); err != nil {
		return err
	}
	var tainted []string
	for _, i := range oldInstances(u.group, u.target.ImageID) {
		n := u.nodeOf(i.ID)
		if n == nil {
			continue
		}
		changed, err := u.taint(ctx, n)
		if err != nil {
			return err
		}
		if changed {
			tainted = append(tainted, n.Name)
			u.events.node(ctx, n.Name, corev1.EventTypeNormal, "NoderollTainted", "tainted "+upgradeTaint.ToString()+": replaced by the upgrade to "+describeTarget(u.target))
		}
	}
	if len(tainted) > 0 {
		u.report.Step(4, "Taint", fmt.Sprintf("%s on %d old nodes: %s", upgradeTaint.ToString(), len(tainted), strings.Join(tainted, ", ")))
	}
	return nil
}

// Steps 5 to 8: one old node at a time, evict, cordon, wait, terminate.
func (u *upgrade) replaceOld(ctx context.Context) error {
	if u.rec.Phase != PhaseReplacing {
		return nil
	}
	for {
		if err := u.refresh(ctx); err != nil {
			return err
		}
		old := oldInstances(u.group, u.target.ImageID)
		if len(old) == 0 {
			break
		}
		// A capacity gate: the previous node's replacement must be Ready
		// before the next old node loses its pods, so that launches failing
		// mid-run stop the run instead of draining the group down.
		if err := u.waitSettled(ctx, settleReplacement); err != nil {
			return err
		}
		inst := pickOld(old, u.inProgress(annReplacing), u.rng)
		done := len(u.rec.Replaced)
		if slices.Contains(u.rec.Replaced, inst.ID) {
			done-- // recorded by a run that stopped before its termination took
		}
		if err := u.retire(ctx, inst, false, done+1, done+len(old), &u.rec.Replaced); err != nil {
			return err
		}
	}
	u.report.Step(8, "Replaced", fmt.Sprintf("no node of %s/%s is left on an old AMI; waiting for the replacements to be Ready", u.rec.Cluster, u.rec.Nodegroup))
	if err := u.waitSettled(ctx, settleFinal); err != nil {
		return err
	}
	u.rec.Phase = PhaseScalingDown
	return u.save(ctx)
}

// retire moves one instance's pods off and terminates it: evict (within the
// budgets), cordon, wait, terminate through the group, wait until it is gone.
// decrement lowers desired capacity (scaling back) instead of replacing it.
// The instance is added to *tally and saved before it is terminated: a crash
// between the termination and a later save can then not under-count, and a
// termination that never happened is simply done on resume.
func (u *upgrade) retire(ctx context.Context, inst cloud.Instance, decrement bool, k, of int, tally *[]string) error {
	// Replacing old nodes is the seed's steps 5 to 7; removing surplus nodes
	// is all step 9.
	mark, verb, evict, cordon, term := annReplacing, "Replace", 5, 6, 7
	if decrement {
		mark, verb, evict, cordon, term = annRemoving, "Remove surplus", 9, 9, 9
	}
	name := inst.NodeName
	if n := u.nodeOf(inst.ID); n != nil {
		name = n.Name
	}
	done := u.timed(ctx, strings.ToLower(strings.Fields(verb)[0])+" "+inst.ID)
	defer done()
	if n := u.nodeOf(inst.ID); n != nil {
		u.report.Step(evict, fmt.Sprintf("%s node %d/%d", verb, k, of), fmt.Sprintf("%s (%s, %s): evicting its pods", n.Name, inst.AZ, inst.ID))
		if err := u.mark(ctx, n, mark); err != nil {
			return err
		}
		if decrement {
			// It is on the new AMI and untainted: keep pods from landing on it.
			if err := u.drainer.Cordon(ctx, n); err != nil {
				return err
			}
		}
		u.events.node(ctx, n.Name, corev1.EventTypeNormal, "NoderollDraining", "evicting pods: "+strings.ToLower(verb)+" of instance "+inst.ID)
		if err := u.drainer.Drain(ctx, n.Name); err != nil {
			// Recorded also when the run's own deadline is what ended the drain.
			u.events.node(context.WithoutCancel(ctx), n.Name, corev1.EventTypeWarning, "NoderollDrainFailed", err.Error())
			return err
		}
		if n = u.nodeOf(inst.ID); n != nil {
			if err := u.drainer.Cordon(ctx, n); err != nil {
				return err
			}
			at, err := u.cordonedAt(ctx, n)
			if err != nil {
				return err
			}
			wait := u.opts.PostCordonWait - u.clock.Since(at)
			u.report.Step(cordon, "Cordon", fmt.Sprintf("%s drained and cordoned; terminating in %s", n.Name, max(wait, 0).Round(time.Second)))
			u.events.node(ctx, n.Name, corev1.EventTypeNormal, "NoderollCordoned", "all pods evicted; node cordoned")
			if wait > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-u.clock.After(wait):
				}
			}
			u.events.node(ctx, n.Name, corev1.EventTypeNormal, "NoderollTerminating", fmt.Sprintf("terminating instance %s through Auto Scaling group %s", inst.ID, u.group.ASGName))
		}
	}
	if !slices.Contains(*tally, inst.ID) {
		*tally = append(*tally, inst.ID)
	}
	if err := u.save(ctx); err != nil {
		return err
	}
	if err := u.cloud.TerminateInstance(ctx, inst.ID, decrement); err != nil {
		return err
	}
	how := "without decrementing desired capacity (the group launches a replacement)"
	if decrement {
		how = "decrementing desired capacity"
	}
	u.report.Step(term, "Terminate", fmt.Sprintf("%s (%s) %s", inst.ID, name, how))
	return u.waitGone(ctx, inst.ID)
}

// Step 9: back to the original size, removing surplus nodes the way old ones
// went (drained within budgets), then the original min and max.
func (u *upgrade) scaleBack(ctx context.Context) error {
	if u.rec.Phase != PhaseScalingDown {
		return nil
	}
	done := u.timed(ctx, "scale back")
	defer done()
	for {
		if err := u.refresh(ctx); err != nil {
			return err
		}
		surplus := u.group.Desired - u.rec.OriginalDesired
		if surplus <= 0 {
			break
		}
		var live []cloud.Instance
		for _, i := range u.group.Instances {
			if !i.Terminating() {
				live = append(live, i)
			}
		}
		pods, err := u.podsPerInstance(ctx, live)
		if err != nil {
			return err
		}
		victim := pickSurplus(live, pods, u.inProgress(annRemoving), 1)
		if len(victim) == 0 {
			break
		}
		if len(u.rec.Removed) == 0 {
			u.report.Step(9, "Scale back", fmt.Sprintf("desired %d -> %d: draining %d surplus nodes, then max %d -> %d", u.group.Desired, u.rec.OriginalDesired, surplus, u.group.Max, u.rec.OriginalMax))
		}
		done := len(u.rec.Removed)
		if slices.Contains(u.rec.Removed, victim[0].ID) {
			done--
		}
		if err := u.retire(ctx, victim[0], true, done+1, done+surplus, &u.rec.Removed); err != nil {
			return err
		}
	}
	minSize, maxSize, desired := u.rec.OriginalMin, u.rec.OriginalMax, u.rec.OriginalDesired
	if u.group.Min != minSize || u.group.Max != maxSize || u.group.Desired != desired {
		if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{Min: &minSize, Max: &maxSize, Desired: &desired}); err != nil {
			return err
		}
	}
	u.report.Step(9, "Sizes restored", fmt.Sprintf("%s back to min %d, max %d, desired %d", u.group.ASGName, minSize, maxSize, desired))
	return nil
}

func (u *upgrade) finish(ctx context.Context) error {
	if u.rec.AZRebalanceSuspended {
		if err := u.cloud.SetProcesses(ctx, u.group, []string{"AZRebalance"}, false); err != nil {
			return err
		}
		u.rec.AZRebalanceSuspended = false
	}
	if err := u.restoreAutoscaler(ctx); err != nil {
		return err
	}
	u.rec.Phase = PhaseCompleted
	return u.save(ctx)
}

// settleFor says what a wait for new nodes is for.
type settleFor int

const (
	settleSurge       settleFor = iota // after the surge: a Ready new node in every AZ too
	settleReplacement                  // before draining the next old node
	settleFinal                        // after the last old node, before scaling back
)

// waitSettled waits until the group holds its desired count of instances in
// service, each one on the target AMI with a Ready node, and after the surge
// a Ready node on the target AMI in every AZ of the group. Old nodes are not
// waited for: one NotReady old node (often the reason to upgrade) must not
// hold the upgrade. New nodes that never come fail the upgrade here, before
// anything else is drained.
func (u *upgrade) waitSettled(ctx context.Context, why settleFor) error {
	deadline := u.clock.Now().Add(u.opts.NodeReadyTimeout)
	started := u.clock.Now()
	last := ""
	var failures []string
	reported := map[string]bool{}
	var nextFailureCheck time.Time
	for polls := 0; ; polls++ {
		if err := u.refresh(ctx); err != nil {
			return err
		}
		var missing []string
		inService := 0
		newPerAZ := map[string]int{}
		for _, i := range u.group.Instances {
			if i.Terminating() {
				continue
			}
			inService++
			if i.ImageID != u.target.ImageID {
				continue
			}
			n := u.nodeOf(i.ID)
			if n == nil || !nodeReady(n) {
				missing = append(missing, fmt.Sprintf("instance %s (%s, %s) has no Ready node", i.ID, i.AZ, i.Lifecycle))
				continue
			}
			newPerAZ[i.AZ]++
		}
		if inService < u.group.Desired {
			missing = append(missing, fmt.Sprintf("%d of %d instances launched", inService, u.group.Desired))
		}
		if why == settleSurge {
			for _, az := range u.group.AZs {
				if newPerAZ[az] == 0 {
					missing = append(missing, "no Ready node on the new AMI in "+az)
				}
			}
		}
		if len(missing) == 0 {
			switch {
			case why != settleReplacement:
				u.report.Info(fmt.Sprintf("%d nodes Ready in %s", inService, u.clock.Since(started).Round(time.Second)))
			case polls > 0:
				u.report.Info(fmt.Sprintf("replacement Ready after %s; %d nodes in service", u.clock.Since(started).Round(time.Second), inService))
			}
			return nil
		}
		if s := strings.Join(missing, "; "); s != last {
			u.log.Debug("waiting for nodes", "missing", s)
			last = s
		}
		// Instances that never launch leave their cause only in the group's
		// scaling activities; ask for it now and then, and say it at once.
		if inService < u.group.Desired && !u.clock.Now().Before(nextFailureCheck) {
			nextFailureCheck = u.clock.Now().Add(launchFailureCheckEvery)
			if f, err := u.cloud.LaunchFailures(ctx, u.group, started); err != nil {
				u.log.Debug("asking for launch failures", "err", err)
			} else {
				failures = f
				for _, msg := range f {
					if !reported[msg] {
						reported[msg] = true
						u.report.Info("! launch failed, the Auto Scaling group retries: " + msg)
					}
				}
			}
		}
		if !u.clock.Now().Before(deadline) {
			return &NodeCreationError{After: u.opts.NodeReadyTimeout, Missing: missing, LaunchFailures: failures, Replaced: len(u.rec.Replaced)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for new nodes (%s): %w", strings.Join(missing, "; "), ctx.Err())
		case <-u.clock.After(u.opts.PollInterval):
		}
	}
}

// NodeCreationError says new nodes did not become Ready in time; no further
// old node was drained.
type NodeCreationError struct {
	After          time.Duration
	Missing        []string
	LaunchFailures []string // the group's own words, newest first
	Replaced       int      // old nodes replaced before the wait began
}

func (e *NodeCreationError) Error() string {
	msg := fmt.Sprintf("new nodes did not become Ready within %s, so no old node was drained: %s", e.After, strings.Join(e.Missing, "; "))
	if e.Replaced > 0 {
		msg = fmt.Sprintf("replacement nodes did not become Ready within %s, so no further old node was drained (%d replaced so far): %s", e.After, e.Replaced, strings.Join(e.Missing, "; "))
	}
	if len(e.LaunchFailures) > 0 {
		msg += "; the Auto Scaling group's launches failed: " + strings.Join(e.LaunchFailures, " | ")
	}
	return msg
}

// launchFailureCheckEvery spaces the questions about failed launches, which
// cost a DescribeScalingActivities call each.
const launchFailureCheckEvery = 10 * time.Second

// waitGone waits until a terminated instance has left the group and its node
// the cluster.
func (u *upgrade) waitGone(ctx context.Context, instanceID string) error {
	deadline := u.clock.Now().Add(u.opts.NodeGoneTimeout)
	for {
		if err := u.refresh(ctx); err != nil {
			return err
		}
		inGroup := false
		for _, i := range u.group.Instances {
			inGroup = inGroup || i.ID == instanceID
		}
		if !inGroup && u.nodeOf(instanceID) == nil {
			return nil
		}
		if !u.clock.Now().Before(deadline) {
			return fmt.Errorf("instance %s was terminated but is still in the group or the cluster after %s", instanceID, u.opts.NodeGoneTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for instance %s to go: %w", instanceID, ctx.Err())
		case <-u.clock.After(u.opts.PollInterval):
		}
	}
}

// nodeOf finds the node of an instance by its providerID.
func (u *upgrade) nodeOf(instanceID string) *corev1.Node {
	nodes, _ := u.nodes.List(labels.Everything())
	for _, n := range nodes {
		if cloud.InstanceIDOf(n.Spec.ProviderID) == instanceID {
			return n
		}
	}
	return nil
}

// inProgress lists the instances whose node carries the given mark.
func (u *upgrade) inProgress(mark string) map[string]bool {
	out := map[string]bool{}
	for _, i := range u.group.Instances {
		if n := u.nodeOf(i.ID); n != nil && n.Annotations[annPhase] == mark {
			out[i.ID] = true
		}
	}
	return out
}

func (u *upgrade) podsPerInstance(ctx context.Context, in []cloud.Instance) (map[string]int, error) {
	out := map[string]int{}
	for _, i := range in {
		n := u.nodeOf(i.ID)
		if n == nil {
			continue
		}
		pods, err := u.drainer.Pending(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		out[i.ID] = len(pods)
	}
	return out, nil
}
