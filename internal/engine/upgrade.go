package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	listersv1 "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/disruption"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/rollout"
)

// upgrade is one run of a strategy over a group: the preparation (the
// cluster-autoscaler paused, a launch template version, the group pointed at
// it), the strategy's rollout, and the finish. Its state is the record, the
// group as the cloud describes it, and the nodes, pods and budgets as the
// API server lists them.
type upgrade struct {
	*Engine
	store    RecordStore
	rec      *Record
	group    cloud.NodeGroup
	spec     TargetSpec
	target   Target
	strategy rollout.Strategy
	// surge and unavailable are the budgets resolved for a new upgrade.
	surge, unavailable int
	// selectors parses each budget's selector once for every look.
	selectors disruption.Selectors
	nodes     listersv1.NodeLister
	pods      cache.Indexer
	pdbs      policylisters.PodDisruptionBudgetLister
	kick      chan struct{} // a node or budget changed: look again
	stop      context.CancelFunc
	drainer   *drain.Drainer
	events    eventer
	// held is how long each node's drain was held by budgets, and by
	// which, told when the drain ends (drain.Hooks.Waited).
	heldMu sync.Mutex
	held   map[string]string
	// report tells the engine's reporter, and once the run has its record
	// the journal that keeps what it tells in the timeline (tl).
	report    teller
	tl        *timeliner
	predicted time.Duration // the front end's prediction of the run, 0: none
	// predictedTail is its part after the last old instance's termination;
	// predictedFrom when the run it predicts began (as the front end's
	// view counts it).
	predictedTail     time.Duration
	predictedFrom     time.Time
	predictedAssuming string
	// view is the cluster the run reads; unwatchStops stops timing its
	// pods' stops for the timeline.
	view         *ClusterView
	unwatchStops func()
}

func (e *Engine) newUpgrade(ctx context.Context, store RecordStore, rec *Record, g cloud.NodeGroup, spec TargetSpec, t Target) (*upgrade, error) {
	// Nodes, pods and budgets are read from informers' caches: the strategy
	// looks at all of them on every change. A view shared by the process
	// (the controller's) or one of this run's own.
	view := e.view
	ictx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	if view == nil {
		var err error
		if view, err = NewClusterView(e.kube); err != nil {
			stopView()
			return nil, err
		}
		view.Start(ictx)
	}
	u := &upgrade{Engine: e, store: store, rec: rec, group: g, spec: spec, target: t, report: e.report, view: view,
		nodes: view.nodeLister, pods: view.pods.GetIndexer(), pdbs: view.pdbLister,
		kick:   make(chan struct{}, 1),
		events: eventer{client: e.kube, clock: e.clock, log: e.log, nodes: view.nodeLister}}
	unwatch, err := view.watch(u.poke)
	if err != nil {
		stopView()
		return nil, err
	}
	u.stop = func() {
		unwatch()
		if u.unwatchStops != nil {
			u.unwatchStops()
		}
		stopView()
	}
	if err := view.synced(ctx); err != nil {
		u.stop()
		return nil, err
	}
	u.drainer = drain.New(e.kube, e.clock, e.opts.Drain, drain.Hooks{
		Blocked: func(node string, b []drain.Blocker) {
			u.report.Blocked(node, b)
			// One event for the node's blocked pods, not one a pod: a large
			// drain blocked on a budget would otherwise write hundreds.
			msgs := make([]string, len(b))
			for k, x := range b {
				msgs[k] = x.String()
			}
			u.events.nodeNamed(ctx, node, corev1.EventTypeWarning, "EvictionBlocked", strings.Join(msgs, "; "))
		},
		Forced: func(node string, p *corev1.Pod) {
			u.report.Tell(Progress{Kind: ProgressInfo, Node: node, Message: fmt.Sprintf("force-deleted pod %s/%s from %s (%s)", p.Namespace, p.Name, node, e.opts.Terms.Of("force"))})
		},
		Waited: func(node string, waited time.Duration, budgets []string) {
			what := "budgets"
			if len(budgets) > 0 {
				what = strings.Join(budgets, ", ")
			}
			u.heldMu.Lock()
			defer u.heldMu.Unlock()
			if u.held == nil {
				u.held = map[string]string{}
			}
			u.held[node] = fmt.Sprintf("after %s held by %s", waited.Round(100*time.Millisecond), what)
		},
		GaveUp: func(node string, p *corev1.Pod, late time.Duration) {
			msg := fmt.Sprintf("pod %s/%s is still terminating %s after its deletion was due (a finalizer or a dead kubelet holds it); no longer waiting for it",
				p.Namespace, p.Name, late.Round(time.Second))
			u.report.Warn(node, msg)
			u.events.nodeNamed(ctx, node, corev1.EventTypeWarning, "NoderollPodLeftTerminating", msg)
		},
	}, e.log)
	u.drainer.Watch(view.budgets, view.gone)
	u.drainer.Read(drain.Reads{PodsOn: u.podsOn, Nodes: view.nodeLister, DaemonSets: view.dsLister})
	return u, nil
}

func (u *upgrade) close() { u.stop() }

// podsOn lists the pods the cache has bound to the node.
func (u *upgrade) podsOn(node string) []*corev1.Pod {
	objs, _ := u.pods.ByIndex(podNodeIndex, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// poke wakes the rollout loop, never blocking an informer.
func (u *upgrade) poke() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// run takes the group from wherever the record says through to the end. On
// failure the cluster-autoscaler is restored and the record keeps the cause;
// the group stays as it is (old nodes tainted, surge in place) so that a
// rerun resumes.
func (u *upgrade) run(ctx context.Context) (err error) {
	if u.rec == nil {
		strategy, surge, unavailable := u.opts.Strategy, u.surge, u.unavailable
		now := u.clock.Now().UTC()
		u.rec = &Record{
			Cluster: u.group.Cluster, Nodegroup: u.group.Name, ASG: u.group.ASGName, Spec: u.spec, Target: u.target,
			Phase: PhaseStarted, OriginalMin: u.group.Min, OriginalMax: u.group.Max, OriginalDesired: u.group.Desired,
			OriginalTemplateVersion: u.group.TemplateVersion, Strategy: strategy, Surge: surge, Unavailable: unavailable, Started: now,
		}
		if strategy == StrategyBlueGreen {
			u.rec.BatchSize, u.rec.BatchSoak, u.rec.Soak = u.opts.BatchSize, Duration(u.opts.BatchSoak), Duration(u.opts.Soak)
		}
		if err := u.save(ctx); err != nil {
			return err
		}
		u.startTimeline(ctx)
		how := fmt.Sprintf("surge %d (one per AZ of %s), one old node at a time", surge, strings.Join(u.group.AZs, ", "))
		switch strategy {
		case StrategySurge:
			how = fmt.Sprintf("strategy surge: max surge %d, max unavailable %d, up to %d nodes at once in AZs %s", surge, unavailable, surge+unavailable, strings.Join(u.group.AZs, ", "))
		case StrategyBlueGreen:
			batch := "all at once"
			if u.opts.BatchSize > 0 {
				batch = fmt.Sprintf("%d at a time, %s apart", u.opts.BatchSize, u.opts.BatchSoak)
			}
			how = fmt.Sprintf("strategy bluegreen: %d new nodes first, then old ones drained %s and kept cordoned for a %s soak", surge, batch, u.opts.Soak)
		}
		u.report.Step(0, "Plan", fmt.Sprintf("%s: %d nodes to %s; %s",
			u.group.Cluster+"/"+u.group.Name, len(oldInstances(u.group, u.target.ImageID)), describeTarget(u.target), how))
	} else {
		u.rec.Message = ""
		if u.rec.Strategy == "" {
			u.rec.Strategy = StrategyEKS // recorded before there were strategies
		}
		u.startTimeline(ctx)
		if u.rec.Abort != nil {
			u.report.Step(0, "Abort", fmt.Sprintf("taking %s/%s back from %s to %s (launch template version %d) with strategy %s: %d instances of the upgrade's AMI to replace",
				u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.rec.Abort.From), describeTarget(u.rec.Target), u.rec.OriginalTemplateVersion, u.rec.Strategy,
				len(oldInstances(u.group, u.rec.Target.ImageID))))
		} else if u.rec.Phase == PhaseRollingBack {
			u.report.Step(0, "Going back", fmt.Sprintf("from the bluegreen upgrade of %s/%s to %s (started %s): old nodes take pods again, new ones are drained and removed",
				u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.rec.Target), u.rec.Started.Local().Format(time.Kitchen)))
		} else {
			u.report.Step(0, "Resume", fmt.Sprintf("resuming the upgrade of %s/%s to %s recorded at phase %s (strategy %s, started %s)",
				u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.rec.Target), u.rec.Phase, u.rec.Strategy, u.rec.Started.Local().Format(time.Kitchen)))
		}
		var resized *SizesChangedError
		if err := checkSizes(u.rec, u.group, u.opts.Terms); errors.As(err, &resized) && u.opts.AcceptResize {
			if err := acceptResize(u.rec, u.group, u.opts.Terms); err != nil {
				return err
			}
			u.report.Info(fmt.Sprintf("taking %s over as resized: max %d, desired %d; the %d nodes above the original %d are removed, drained, at scale back",
				u.group.ASGName, u.group.Max, u.group.Desired, u.rec.Surge, u.rec.OriginalDesired))
			if err := u.save(ctx); err != nil {
				return err
			}
		}
	}
	switch u.rec.Strategy {
	case StrategyEKS:
		rng := u.newRand()
		u.strategy = rollout.EKS{Intn: rng.IntN}
	case StrategyBlueGreen:
		u.strategy = rollout.BlueGreen{}
	default:
		u.strategy = rollout.Surge{}
	}
	defer func() {
		if lockLost(ctx) {
			return // whoever took the lock over owns the cleanup
		}
		if rerr := u.restoreAutoscaler(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			u.rec.Message = err.Error()
			_ = u.save(context.WithoutCancel(ctx))
		}
		u.endTimeline(ctx)
	}()
	steps := []func(context.Context) error{
		u.pauseAutoscaler, u.ensureTemplate, u.pointGroup, u.restoreOriginals, u.suspendRebalance, u.roll, u.recordWithEKS, u.finish,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// startTimeline keeps the run's timeline from here on (see Timeline), and
// writes it a last time when the run ends, however it ends, unless another
// process took the group's lock over.
func (u *upgrade) startTimeline(ctx context.Context) {
	u.tl = newTimeliner(ctx, u.kube, u.clock, u.log, u.rec, u.predicted, u.predictedTail, u.predictedFrom)
	u.tl.t.PredictedAssuming = u.predictedAssuming // no one else holds tl yet
	u.report = teller{to: journal{Reporter: u.Engine.reporter, tl: u.tl}, now: u.clock.Now}
	// The pods' stops this run sees are the next plan's history.
	unwatch, err := u.view.watchPodStops(u.clock, u.tl.podStop)
	if err != nil {
		u.log.Debug("not timing the pods' stops", "err", err)
		return
	}
	u.unwatchStops = unwatch
}

// endTimeline writes the timeline as the run leaves it.
func (u *upgrade) endTimeline(ctx context.Context) {
	if u.tl != nil && !lockLost(ctx) {
		u.tl.flush(context.WithoutCancel(ctx), u.rec, true)
	}
}

func (u *upgrade) save(ctx context.Context) error {
	u.rec.Updated = u.clock.Now().UTC()
	return u.store.Save(ctx, u.rec)
}

// startStep records a step's start and returns its index in the record.
// A step a failure or a kill cut short runs again on resume; both count,
// the earlier ended as interrupted where the next begins (this process
// starts a step once, so an earlier one not ended was cut short).
func (u *upgrade) startStep(name string) int {
	attempt := 1
	now := u.clock.Now().UTC()
	for k := range u.rec.Steps {
		st := &u.rec.Steps[k]
		if st.Name == name || strings.HasPrefix(st.Name, name+" (attempt ") {
			attempt++
			if st.End.IsZero() {
				st.End, st.Interrupted = now, true
			}
		}
	}
	if attempt > 1 {
		name = fmt.Sprintf("%s (attempt %d)", name, attempt)
	}
	u.rec.Steps = append(u.rec.Steps, Step{Name: name, Start: now})
	return len(u.rec.Steps) - 1
}

// startInstanceStep is startStep for a step acting on one instance: its
// name says the action and the instance, its fields too.
func (u *upgrade) startInstanceStep(action, instance string) {
	k := u.startStep(action + " " + instance)
	u.rec.Steps[k].Action, u.rec.Steps[k].Instance = action, instance
}

// endStep records the end of the latest unfinished step of that name.
func (u *upgrade) endStep(name string) {
	u.endLatestStep(func(st Step) bool { return st.Name == name || strings.HasPrefix(st.Name, name+" (attempt ") })
}

// endLatestStep records the end of the latest unfinished step that match
// selects.
func (u *upgrade) endLatestStep(match func(Step) bool) {
	for k := len(u.rec.Steps) - 1; k >= 0; k-- {
		if st := &u.rec.Steps[k]; st.End.IsZero() && match(*st) {
			st.End = u.clock.Now().UTC()
			return
		}
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
	return checkSizes(u.rec, g, u.opts.Terms)
}

// Step 1: a new launch template version, the current one with only the AMI changed.
func (u *upgrade) ensureTemplate(ctx context.Context) error {
	if u.rec.TemplateVersion != 0 {
		return nil
	}
	k := u.startStep("launch template")
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
	u.rec.Steps[k].End = u.clock.Now().UTC()
	u.report.Step(1, "Launch template", fmt.Sprintf("%s version %d (from version %d, AMI %s)", u.group.TemplateID, v, u.rec.OriginalTemplateVersion, u.target.ImageID))
	return u.save(ctx)
}

// Step 2: the Auto Scaling group launches from the new version.
func (u *upgrade) pointGroup(ctx context.Context) error {
	if err := u.refresh(ctx); err != nil {
		return err
	}
	if u.rec.Phase == PhaseRollingBack {
		return nil // going back points it at the original version
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
	if u.rec.Phase == PhaseRollingBack {
		u.rec.Phase = PhaseRolledBack
		u.report.Step(0, "Rolled back", fmt.Sprintf("%s/%s is back on its old nodes and launch template version %d", u.rec.Cluster, u.rec.Nodegroup, u.rec.OriginalTemplateVersion))
	} else if u.rec.Abort != nil {
		u.rec.Phase = PhaseAborted
		u.report.Step(0, "Aborted", fmt.Sprintf("%s/%s is back on %s and launch template version %d", u.rec.Cluster, u.rec.Nodegroup, describeTarget(u.rec.Target), u.rec.OriginalTemplateVersion))
	} else {
		u.rec.Phase = PhaseCompleted
	}
	// A finished run leaves no step running: one an earlier run began and
	// this one found done (sizes restored before a lost answer) ends here.
	now := u.clock.Now().UTC()
	for k := range u.rec.Steps {
		if u.rec.Steps[k].End.IsZero() {
			u.rec.Steps[k].End = now
		}
	}
	return u.save(ctx)
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
