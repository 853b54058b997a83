package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/disruption"
	"github.com/noderoll/noderoll/internal/predict"
	"github.com/noderoll/noderoll/internal/rollout"
)

// Assumed are the delays a plan takes where the group has no history of
// its own: how long an evicted pod takes to stop and a terminated instance
// to leave (the CLI's defaults are Kubernetes' and EC2's usual). Given,
// they are taken even where it has.
type Assumed struct {
	PodStop, Shutdown           time.Duration
	PodStopGiven, ShutdownGiven bool
	// PodStart, when set, stands for the pods' start the cluster shows:
	// for a cluster whose pods all started at once (a new one), whose
	// starts count the queue of that burst.
	PodStart time.Duration
	// PodsPerSecond is the control plane's rate of moved pods (0: not
	// limited); see predict.Delays.PodsPerSecond.
	PodsPerSecond float64
	// BudgetEvictionsPerSecond is one budget's rate of evictions (0: not
	// limited); see predict.Delays.BudgetEvictionsPerSecond.
	BudgetEvictionsPerSecond float64
}

// Observed are the delays a plan read from the cluster and the cloud, with
// how many samples each is the median of (0: none, the default or the
// assumption was taken).
type Observed struct {
	BootReady        time.Duration
	BootReadySamples int
	PodStart         time.Duration
	PodStartSamples  int
	// PodStop is the pods' deletion to disappearance that the group's last
	// upgrade timed (its timeline), PodStopFrom when that upgrade began.
	PodStop        time.Duration
	PodStopSamples int
	PodStopFrom    time.Time
	// Shutdown is the group's past terminations, start to gone, as its
	// cloud remembers them (EC2 Auto Scaling's scaling activities).
	Shutdown        time.Duration
	ShutdownSamples int
}

// Delay names, as a plan says which it assumed or was given.
const (
	DelayBootReady = "bootReady"
	DelayPodStart  = "podStart"
	DelayPodStop   = "podStop"
	DelayShutdown  = "shutdown"
	// DelayPodsPerSecond is the control plane's rate, given or not.
	DelayPodsPerSecond = "podsPerSecond"
	// DelayBudgetEvictionsPerSecond is one budget's rate, given or not.
	DelayBudgetEvictionsPerSecond = "budgetEvictionsPerSecond"
)

// Headroom is one disruption budget over the group's pods as it is now.
type Headroom struct {
	Name    string `json:"name"`
	Allowed int    `json:"disruptionsAllowed"`
	OnGroup int    `json:"podsOnOldNodes"`
	Ordered bool   `json:"statefulSet,omitempty"`
	// Rounds is how many times the budget must be spent in full to move
	// its pods off the old nodes (0 when it allows nothing).
	Rounds int `json:"rounds"`
}

// Prediction is one strategy's predicted run.
type Prediction struct {
	predict.Result
	MaxSurge       int  `json:"maxSurge"`
	MaxUnavailable int  `json:"maxUnavailable"`
	Chosen         bool `json:"chosen,omitempty"`
}

// Forecast is what `plan` shows: the preflight's report, the delays and
// budgets the prediction stands on, and each strategy's predicted run, the
// chosen one first.
type Forecast struct {
	*PreflightReport
	Observed Observed
	// Assumed names the delays the prediction took as assumptions, for
	// want of any history of this group; Given those the front end gave.
	Assumed, Given []string
	Delays         predict.Delays
	Budgets        []Headroom
	Predictions    []Prediction
	Start          rollout.State
	inputs         []predict.Budget
}

// Defaults when the cluster shows nothing to measure: an EC2 instance's
// boot and join (awslabs/node-latency-for-k8s) and a pod's start.
const (
	defaultBootReady = 90 * time.Second
	defaultPodStart  = 15 * time.Second
	// forecastSetup is the work before the first replacement and after
	// the last: preflight, the lock, the template version, the group
	// repointed, the autoscaler held and given back. Read off the
	// sandbox's runs (docs/performance.md): the first launch came 0.6s to
	// 1.1s after the process started, and the run ended 0.3s to 1.2s after
	// its last instance left.
	forecastSetup = 1400 * time.Millisecond
	forecastCall  = 20 * time.Millisecond
	// forecastEvict is what a drain costs beyond its pods' stop: the
	// evictions asked, the pods' deletion seen, the node cordoned after.
	// forecastRecount: see predict.Delays.Recount. Both read off the
	// sandbox's runs phase by phase (docs/performance.md): at the seed's
	// size a budget's round took its pod start and little more, and a
	// drain ended half a second after its last pod's stop; what load adds
	// at 30 nodes is the race's (forecastContend).
	forecastEvict   = 500 * time.Millisecond
	forecastRecount = 100 * time.Millisecond
	// forecastContend: see predict.Delays.Contend. Read off the sandbox
	// (docs/performance.md): blue-green at 30 nodes, about 540 pods'
	// answers over its ten rounds of one budget, took 23-25s to drain
	// where the rounds alone take 12s, about 24ms a pod waiting on
	// another node.
	forecastContend = 24 * time.Millisecond
)

// Forecast judges the upgrade as Preflight does and predicts how long each
// strategy would take, by running the strategies' own decisions (package
// rollout) on a model of this group with the delays its cluster shows. It
// changes nothing.
func (e *Engine) Forecast(ctx context.Context, req Request, assumed Assumed) (*Forecast, error) {
	p, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	rep, err := e.judge(ctx, p)
	if err != nil {
		return nil, err
	}
	if rep.ResumeNote != "" {
		e.report.Info(rep.ResumeNote)
	}
	f := &Forecast{PreflightReport: rep, Budgets: []Headroom{}, Predictions: []Prediction{}}
	if rep.UpToDate {
		return f, nil
	}
	nodes, err := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("plan: listing nodes: %w", err)
	}
	pods, err := forecastPods(ctx, e.kube)
	if err != nil {
		return nil, fmt.Errorf("plan: listing pods: %w", err)
	}
	pdbs, err := e.kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("plan: listing PodDisruptionBudgets: %w", err)
	}
	f.Observed = observeDelays(p.group.Instances, nodes.Items, pods)
	e.observeHistory(ctx, p, &f.Observed)
	f.Delays = predict.Delays{BootReady: f.Observed.BootReady, PodStart: f.Observed.PodStart,
		Poll: e.opts.PollInterval, Call: forecastCall, Setup: forecastSetup, Evict: forecastEvict, Recount: forecastRecount, Contend: forecastContend}
	f.Assumed, f.Given = []string{}, []string{}
	if f.Observed.BootReadySamples == 0 {
		f.Assumed = append(f.Assumed, DelayBootReady)
	}
	switch {
	case assumed.PodStart > 0:
		f.Delays.PodStart = assumed.PodStart
		f.Given = append(f.Given, DelayPodStart)
	case f.Observed.PodStartSamples == 0:
		f.Assumed = append(f.Assumed, DelayPodStart)
	}
	if assumed.PodsPerSecond > 0 {
		f.Delays.PodsPerSecond = assumed.PodsPerSecond
		f.Given = append(f.Given, DelayPodsPerSecond)
	}
	if assumed.BudgetEvictionsPerSecond > 0 {
		f.Delays.BudgetEvictionsPerSecond = assumed.BudgetEvictionsPerSecond
		f.Given = append(f.Given, DelayBudgetEvictionsPerSecond)
	}
	f.Delays.PodStop = f.pick(DelayPodStop, assumed.PodStop, assumed.PodStopGiven, f.Observed.PodStop, f.Observed.PodStopSamples)
	f.Delays.Shutdown = f.pick(DelayShutdown, assumed.Shutdown, assumed.ShutdownGiven, f.Observed.Shutdown, f.Observed.ShutdownSamples)
	f.Start, f.Budgets, f.inputs = startState(p, rep.Target.ImageID, pods, pdbs.Items)
	f.Start.PostCordonWait, f.Start.BatchSize, f.Start.BatchSoak, f.Start.Soak = e.opts.PostCordonWait, e.opts.BatchSize, e.opts.BatchSoak, e.opts.Soak
	chosen := rep.Strategy
	for _, strategy := range append([]string{chosen}, slices.DeleteFunc([]string{StrategySurge, StrategyBlueGreen, StrategyEKS}, func(s string) bool { return s == chosen })...) {
		surge, unavailable := p.surge, p.unavailable
		if strategy != chosen || rep.Resuming {
			if surge, unavailable, err = budgets(strategy, e.opts, p.group.Desired, len(p.group.AZs), p.group.MaxUnavailable); err != nil {
				continue // the options fit the chosen strategy only (say, a bluegreen batch size)
			}
		}
		s := f.Start
		s.Surge, s.Unavailable = surge, unavailable
		if strategy != StrategyBlueGreen {
			s.BatchSize, s.BatchSoak, s.Soak = 0, 0, 0
		}
		var r rollout.Strategy = rollout.Surge{}
		switch strategy {
		case StrategyBlueGreen:
			r = rollout.BlueGreen{}
		case StrategyEKS:
			r = rollout.EKS{Intn: func(int) int { return 0 }} // which node first costs the same in the model
		}
		f.Predictions = append(f.Predictions, Prediction{Result: predict.Run(predict.Input{Start: s, Budgets: f.inputs, Delays: f.Delays}, r),
			MaxSurge: surge, MaxUnavailable: unavailable, Chosen: strategy == chosen})
	}
	return f, nil
}

// pick is a delay the group's history shows, or the assumption where it
// shows none or the front end gave it, noting which.
func (f *Forecast) pick(name string, assumption time.Duration, given bool, seen time.Duration, samples int) time.Duration {
	switch {
	case given:
		f.Given = append(f.Given, name)
		return assumption
	case samples == 0:
		f.Assumed = append(f.Assumed, name)
		return assumption
	}
	return seen
}

// historyTerminations is how many of the group's latest terminations a
// plan reads an instance's shutdown from.
const historyTerminations = 50

// observeHistory reads what the group's past shows of the delays no look
// at the cluster now can: its pods' stops, timed by its last upgrade, and
// its instances' shutdowns, remembered by its cloud. What it cannot read
// it leaves unobserved (the plan assumes it instead, and says so).
func (e *Engine) observeHistory(ctx context.Context, p *prepared, o *Observed) {
	if tl, err := LoadTimeline(ctx, e.kube, p.req.Group); err != nil {
		e.log.Debug("plan: no pod stops from the last upgrade", "err", err)
	} else if tl != nil && len(tl.PodStops) > 0 {
		stops := make([]time.Duration, len(tl.PodStops))
		for k, ms := range tl.PodStops {
			stops[k] = time.Duration(ms) * time.Millisecond
		}
		o.PodStop, o.PodStopSamples, o.PodStopFrom = median(stops), len(stops), tl.Started
	}
	ts, err := e.cloud.TerminationTimes(ctx, p.group, historyTerminations)
	if err != nil {
		e.log.Debug("plan: no shutdowns from the group's scaling activities", "err", err)
		return
	}
	if len(ts) > 0 {
		o.Shutdown, o.ShutdownSamples = median(ts), len(ts)
	}
}

// observeDelays reads how long the group's instances took from launch to
// a Ready node, and the cluster's pods from scheduled to Ready: medians,
// of times dated to the second (see midSecond).
func observeDelays(instances []cloud.Instance, nodes []corev1.Node, pods []corev1.Pod) Observed {
	launched := map[string]time.Time{}
	for _, i := range instances {
		if i.NodeName != "" && !i.Launched.IsZero() {
			launched[i.NodeName] = i.Launched
		}
	}
	var br, ps []time.Duration
	for k := range nodes {
		n := &nodes[k]
		at, ok := launched[n.Name]
		if !ok {
			continue
		}
		if ready := conditions.NodeReadySince(n); ready.After(at) {
			// Each time where it most likely was: Ready is dated to the
			// second, a launch to the second by EC2 and finer by others.
			br = append(br, midSecond(ready).Sub(midSecond(at)).Round(100*time.Millisecond))
		}
	}
	for k := range pods {
		p := &pods[k]
		if !disruption.Evicts(p) || p.Status.Phase != corev1.PodRunning {
			continue
		}
		scheduled, ready := conditions.PodTrueSince(p, corev1.PodScheduled), conditions.PodTrueSince(p, corev1.PodReady)
		if !scheduled.IsZero() && !ready.Before(scheduled) {
			ps = append(ps, ready.Sub(scheduled))
		}
	}
	o := Observed{BootReady: defaultBootReady, PodStart: defaultPodStart, BootReadySamples: len(br), PodStartSamples: len(ps)}
	if len(br) > 0 {
		o.BootReady = median(br)
	}
	if len(ps) > 0 {
		o.PodStart = median(ps)
	}
	return o
}

// podPageSize is how many pods a preflight or a forecast reads at a time.
const podPageSize = 500

// eachPod calls keep with every pod of the cluster, read a page at a time:
// the whole list at once, decoded, was the upgrade's peak of memory at 300
// nodes (26 MiB for 4,000 pods). keep must copy what it keeps.
func eachPod(ctx context.Context, kube kubernetes.Interface, keep func(*corev1.Pod)) error {
	pg := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return kube.CoreV1().Pods("").List(ctx, o)
	})
	pg.PageSize = podPageSize
	return pg.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		if p, ok := obj.(*corev1.Pod); ok {
			keep(p)
		}
		return nil
	})
}

// forecastPods lists the cluster's pods, each cut down to what a forecast
// reads (see forecastPod).
func forecastPods(ctx context.Context, kube kubernetes.Interface) ([]corev1.Pod, error) {
	var out []corev1.Pod
	err := eachPod(ctx, kube, func(p *corev1.Pod) { out = append(out, forecastPod(p)) })
	return out, err
}

// forecastPod keeps of a pod what observeDelays and startState read: who
// controls it and its labels (the budgets' selectors, the drain's rule),
// its node, whether it is deleted or mirrored, its phase and when it was
// scheduled and Ready.
func forecastPod(p *corev1.Pod) corev1.Pod {
	out := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, Labels: p.Labels,
			OwnerReferences: p.OwnerReferences, DeletionTimestamp: p.DeletionTimestamp},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}
	if v, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		out.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: v}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled || c.Type == corev1.PodReady {
			out.Status.Conditions = append(out.Status.Conditions, c)
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
	return ds[len(ds)/2]
}

// startState is the group as the engine's first look would see it, with
// the pods a drain of each old node moves and the budgets over them.
func startState(p *prepared, target string, pods []corev1.Pod, pdbs []policyv1.PodDisruptionBudget) (rollout.State, []Headroom, []predict.Budget) {
	g := p.group
	s := rollout.State{Now: time.Unix(0, 0).UTC(), Phase: rollout.PhaseStarted, Min: g.Min, Max: g.Max, Desired: g.Desired,
		OrigMin: g.Min, OrigMax: g.Max, OrigDesired: g.Desired, AZs: g.AZs}
	if r := p.resuming; r != nil {
		s.OrigMin, s.OrigMax, s.OrigDesired = r.OriginalMin, r.OriginalMax, r.OriginalDesired
	}
	for _, i := range g.Instances {
		if !i.Terminating() {
			s.Instances = append(s.Instances, rollout.Instance{ID: i.ID, AZ: i.AZ, Old: i.ImageID != target, HasNode: i.NodeName != "", Ready: i.NodeName != "", PDBPods: map[string]int{}})
		}
	}
	byNode := map[string]*rollout.Instance{} // into s.Instances, complete now
	k := 0
	for _, i := range g.Instances {
		if !i.Terminating() {
			if i.NodeName != "" {
				byNode[i.NodeName] = &s.Instances[k]
			}
			k++
		}
	}
	heads := make([]Headroom, len(pdbs))
	inputs := make([]predict.Budget, len(pdbs))
	for k := range pdbs {
		b := &pdbs[k]
		name := b.Namespace + "/" + b.Name
		heads[k] = Headroom{Name: name, Allowed: int(b.Status.DisruptionsAllowed)}
		inputs[k] = predict.Budget{Name: name, Allowed: int(b.Status.DisruptionsAllowed)}
	}
	for k := range pods {
		pod := &pods[k]
		i := byNode[pod.Spec.NodeName]
		if i == nil || !i.Old || !disruption.Evicts(pod) {
			continue
		}
		i.Pods++
		for b := range pdbs {
			if !disruption.Selects(&pdbs[b], pod) {
				continue
			}
			i.PDBPods[heads[b].Name]++
			heads[b].OnGroup++
			if disruption.StatefulSetPod(pod) {
				heads[b].Ordered, inputs[b].Ordered = true, true
			}
		}
	}
	var kept []Headroom
	var keptIn []predict.Budget
	for k, h := range heads {
		if h.OnGroup == 0 {
			continue // over no pod of this group: not this upgrade's concern
		}
		if h.Allowed > 0 {
			h.Rounds = int(math.Ceil(float64(h.OnGroup) / float64(h.Allowed)))
		}
		kept = append(kept, h)
		keptIn = append(keptIn, inputs[k])
	}
	if kept == nil {
		kept = []Headroom{}
	}
	return s, kept, keptIn
}
