package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/rollout"
)

// Timeline is what a run keeps of itself for whoever follows it (noderoll
// watch) or reads it afterwards (noderoll report): every node's times, the
// budgets' healthy pods and the group's instances over time, the steps,
// and the last of what the run told. It lives beside the record, in a
// ConfigMap of its own that only the run holding the group's lock writes,
// gzipped and bounded (see the caps below) so that a 1,000-node group's
// fits in one object.
type Timeline struct {
	Cluster   string    `json:"cluster"`
	Nodegroup string    `json:"nodegroup"`
	Strategy  string    `json:"strategy"`
	Target    string    `json:"target"` // the AMI the run goes to
	Phase     string    `json:"phase"`
	Message   string    `json:"message,omitempty"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// Ended is when the process running it let go of it: finished, failed
	// or stopped (zero while it runs, and after a kill).
	Ended time.Time `json:"ended,omitempty"`
	// Predicted is the plan's prediction of the run from PredictedFrom
	// (since Started) on, when the front end running it made one: the
	// whole run's, or a resumed run's of what was left when it resumed.
	// ToReplace is the old instances left to replace at PredictedFrom.
	Predicted     Duration `json:"predicted,omitempty"`
	PredictedFrom Millis   `json:"predictedFrom,omitempty"`
	// PredictedTail is the prediction's part after the last old
	// instance's termination (the scale-back).
	PredictedTail Duration `json:"predictedTail,omitempty"`
	// PredictedAssuming says what the prediction assumed for want of the
	// group's history: a report says it beside the prediction's error.
	PredictedAssuming string `json:"predictedAssuming,omitempty"`
	ToReplace         int    `json:"toReplace"`
	// MaxInstances is the group's max size at its largest: the instance
	// count's limit.
	MaxInstances int            `json:"maxInstances"`
	Nodes        []NodeTimes    `json:"nodes"`
	Instances    []Point        `json:"instances"`
	Budgets      []BudgetSeries `json:"budgets,omitempty"`
	Steps        []Step         `json:"steps,omitempty"`
	// Events are the last of what the run told (maxEvents); Seq counts all.
	Events []Event `json:"events,omitempty"`
	Seq    int     `json:"seq"`
	// PodStops are how long the group's pods took from their deletion to
	// their disappearance, in milliseconds, the latest maxPodStops: the
	// history the next plan reads a pod's stop from.
	PodStops []int64 `json:"podStops,omitempty"`
}

// NodeTimes is one instance of the group as the run saw it. Times are
// milliseconds since the run started, 0 when it did not happen (yet); an
// instance there before the run has no launch time.
type NodeTimes struct {
	Instance   string `json:"i"`
	Node       string `json:"n,omitempty"`
	Zone       string `json:"z,omitempty"`
	Old        bool   `json:"old,omitempty"`
	Launched   Millis `json:"launched,omitempty"`
	Ready      Millis `json:"ready,omitempty"`
	Tainted    Millis `json:"tainted,omitempty"`
	Cordoned   Millis `json:"cordoned,omitempty"`
	Draining   Millis `json:"draining,omitempty"`
	Drained    Millis `json:"drained,omitempty"`
	Terminated Millis `json:"terminated,omitempty"`
	Gone       Millis `json:"gone,omitempty"`
}

// Millis is a time as milliseconds since the run started.
type Millis int64

// At is the time m stands for in a run started at start.
func (m Millis) At(start time.Time) time.Time { return start.Add(time.Duration(m) * time.Millisecond) }

// Point is a value from a time on: [milliseconds since the start, value].
type Point [2]int64

// BudgetSeries is one PodDisruptionBudget over the group's pods: its
// healthy pods and the minimum it keeps (desiredHealthy), over time.
type BudgetSeries struct {
	Name    string  `json:"name"`
	Healthy []Point `json:"healthy"`
	Min     []Point `json:"min"`
}

// Event is one thing the run told, as every front end shows it.
type Event struct {
	Seq     int       `json:"seq"`
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // step, info or wait
	Step    int       `json:"step,omitempty"`
	Title   string    `json:"title,omitempty"`
	Message string    `json:"message"`
	Node    string    `json:"node,omitempty"`
	// Budgets a wait is on, by namespace/name.
	Budgets []string `json:"budgets,omitempty"`
}

// Event kinds.
const (
	EventStep = "step"
	EventInfo = "info"
	EventWait = "wait"
)

// Terminal reports whether the run the timeline is of has ended.
func (t *Timeline) Terminal() bool {
	return t.Phase == PhaseCompleted || t.Phase == PhaseRolledBack || t.Phase == PhaseAborted || t.Phase == PhaseFailed
}

// Caps that keep a timeline within one ConfigMap whatever the group's size.
const (
	maxEvents   = 200
	maxPoints   = 400 // per series: older points are thinned to half
	maxBudgets  = 40
	maxPodStops = 1000
)

func timelineName(cluster, group string) string {
	return strings.Replace(recordName(cluster, group), "noderoll-upgrade-", "noderoll-timeline-", 1)
}

const timelineKey = "timeline.json.gz"

// LoadTimeline reads a group's timeline, nil when it has none.
func LoadTimeline(ctx context.Context, kube kubernetes.Interface, g cloud.NodeGroupRef) (*Timeline, error) {
	cm, err := kube.CoreV1().ConfigMaps(Namespace).Get(ctx, timelineName(g.Cluster, g.Name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", g, err)
	}
	return DecodeTimeline(cm)
}

// TimelineName is the ConfigMap (in Namespace) holding a group's timeline.
func TimelineName(g cloud.NodeGroupRef) string { return timelineName(g.Cluster, g.Name) }

// DecodeTimeline reads a timeline from its ConfigMap.
func DecodeTimeline(cm *corev1.ConfigMap) (*Timeline, error) {
	zr, err := gzip.NewReader(bytes.NewReader(cm.BinaryData[timelineKey]))
	if err != nil {
		return nil, fmt.Errorf("timeline %s/%s is not readable (%v): it is rewritten by the next run", cm.Namespace, cm.Name, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("timeline %s/%s is not readable: %w", cm.Namespace, cm.Name, err)
	}
	var t Timeline
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("timeline %s/%s is not readable: %w", cm.Namespace, cm.Name, err)
	}
	return &t, nil
}

func encodeTimeline(t *Timeline) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(t); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// timeliner keeps a run's timeline: samples from every look the rollout
// takes, events from its reporter, written at most every flushEvery (and
// at the end). Reporter calls come from concurrent drains.
type timeliner struct {
	client kubernetes.Interface
	clock  clock.Clock
	log    *slog.Logger
	name   string

	mu      sync.Mutex
	t       Timeline
	index   map[string]int  // instance -> its NodeTimes
	budgets map[string]int  // budget -> its series
	exists  bool            // the ConfigMap is there: update, not create
	waits   map[string]bool // node|budgets told: each wait once, as the view says it
	dirty   bool
	flushed time.Time
}

const flushEvery = 2 * time.Second

// newTimeliner starts a run's timeline, or goes on with the one of the
// same run (a resume: same record start).
func newTimeliner(ctx context.Context, client kubernetes.Interface, clk clock.Clock, log *slog.Logger, rec *Record, predicted, tail time.Duration, from time.Time) *timeliner {
	tl := &timeliner{client: client, clock: clk, log: log, name: timelineName(rec.Cluster, rec.Nodegroup),
		index: map[string]int{}, budgets: map[string]int{}, waits: map[string]bool{}}
	var old *Timeline
	cm, err := client.CoreV1().ConfigMaps(Namespace).Get(ctx, tl.name, metav1.GetOptions{})
	if err == nil {
		tl.exists = true
		if old, err = DecodeTimeline(cm); err != nil {
			log.Debug("starting the timeline afresh", "err", err)
		}
	}
	if old != nil && old.Started.Equal(rec.Started) {
		tl.t = *old
		// A resume: the first run's prediction counted from its start,
		// and the time the group sat stopped is in neither. What this run
		// predicts of what is left (or nothing, when it predicts nothing)
		// counts from this run's start (now, when not given), for the old
		// instances left then.
		if from.IsZero() {
			from = clk.Now()
		}
		tl.t.Predicted, tl.t.PredictedTail = Duration(predicted), Duration(tail)
		tl.t.PredictedFrom, tl.t.ToReplace = tl.since(from), -1
		// What the stopped run terminated before its timeline said so is
		// the stopped run's: dated before this one, not at its first look.
		for k := range tl.t.Nodes {
			if n := &tl.t.Nodes[k]; n.Terminated == 0 && slices.Contains(rec.Replaced, n.Instance) {
				n.Terminated = max(tl.t.PredictedFrom-1, 1)
			}
		}
	} else {
		tl.t = Timeline{Cluster: rec.Cluster, Nodegroup: rec.Nodegroup, Started: rec.Started, Predicted: Duration(predicted), PredictedTail: Duration(tail), ToReplace: -1}
	}
	tl.t.Strategy, tl.t.Target, tl.t.Phase = strategyOf(rec), rec.Target.ImageID, rec.Phase
	for k, n := range tl.t.Nodes {
		tl.index[n.Instance] = k
	}
	for k, b := range tl.t.Budgets {
		tl.budgets[b.Name] = k
	}
	tl.dirty = true
	return tl
}

func (tl *timeliner) since(t time.Time) Millis {
	return Millis(max(t.Sub(tl.t.Started).Milliseconds(), 1))
}

// event appends what the run told; callers do not hold mu.
func (tl *timeliner) event(e Event) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.t.Seq++
	e.Seq, e.Time = tl.t.Seq, tl.clock.Now().UTC()
	tl.t.Events = append(tl.t.Events, e)
	if len(tl.t.Events) > maxEvents {
		tl.t.Events = append([]Event(nil), tl.t.Events[len(tl.t.Events)-maxEvents:]...)
	}
	tl.dirty = true
}

// Things the engine does to an instance, timed as it does them (a look
// at the rollout comes only after a whole pass of actions, and would date
// thirty drains started in one pass alike).
const (
	atDraining = iota
	atDrained
	atTerminated
)

// at records that the engine did what to an old or new instance now, unless
// an earlier time is recorded. An instance no look has seen yet is left to
// the next look.
func (tl *timeliner) at(instance string, what int, cordoned bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	k, ok := tl.index[instance]
	if !ok {
		return
	}
	now := tl.since(tl.clock.Now())
	n := &tl.t.Nodes[k]
	set := func(field *Millis) {
		if *field == 0 {
			*field, tl.dirty = now, true
		}
	}
	switch what {
	case atDraining:
		set(&n.Draining)
		if cordoned {
			set(&n.Cordoned)
		}
	case atDrained:
		set(&n.Drained)
		set(&n.Cordoned)
	case atTerminated:
		set(&n.Terminated)
	}
}

// podStop keeps how long a pod of one of the group's nodes took to go
// once deleted; called from an informer's handler.
func (tl *timeliner) podStop(node string, took time.Duration) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if node == "" || !slices.ContainsFunc(tl.t.Nodes, func(n NodeTimes) bool { return n.Node == node }) {
		return // a pod of another group's node
	}
	tl.t.PodStops = append(tl.t.PodStops, took.Milliseconds())
	if len(tl.t.PodStops) > maxPodStops {
		tl.t.PodStops = append([]int64(nil), tl.t.PodStops[len(tl.t.PodStops)-maxPodStops:]...)
	}
	tl.dirty = true
}

// sample takes what one look of the rollout saw: each instance's state,
// the budgets over the group's pods, the group's size.
func (tl *timeliner) sample(s rollout.State, g cloud.NodeGroup, nodes map[string]*corev1.Node, budgets []*policyv1.PodDisruptionBudget) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	now := tl.since(s.Now)
	set := func(field *Millis, when bool) {
		if when && *field == 0 {
			*field, tl.dirty = now, true
		}
	}
	launched := map[string]time.Time{}
	for _, i := range g.Instances {
		launched[i.ID] = i.Launched
	}
	present := map[string]bool{}
	old := 0
	relevant := map[string]bool{}
	for _, x := range s.Instances {
		present[x.ID] = true
		k, known := tl.index[x.ID]
		if !known {
			n := NodeTimes{Instance: x.ID, Zone: x.AZ, Old: x.Old}
			if !x.Old {
				// Launched during the run: the cloud's launch time, or now.
				n.Launched = now
				if l := launched[x.ID]; !l.IsZero() && l.After(tl.t.Started) {
					n.Launched = tl.since(l)
				}
			}
			tl.t.Nodes = append(tl.t.Nodes, n)
			k = len(tl.t.Nodes) - 1
			tl.index[x.ID], tl.dirty = k, true
		}
		n := &tl.t.Nodes[k]
		if x.Old {
			old++
		}
		if node := nodes[x.ID]; node != nil && n.Node == "" {
			n.Node, tl.dirty = node.Name, true
		}
		if n.Zone == "" && x.AZ != "" {
			n.Zone = x.AZ
		}
		if x.Ready && n.Launched != 0 && n.Ready == 0 {
			// When the node became Ready, as it says: a run resumed
			// after a gap sees nodes that turned Ready meanwhile.
			n.Ready, tl.dirty = now, true
			if at := readySince(nodes[x.ID]); !at.IsZero() && at.After(tl.t.Started) && tl.since(at) < now {
				n.Ready = max(tl.since(at), n.Launched)
			}
		}
		set(&n.Tainted, x.Tainted)
		set(&n.Cordoned, x.Cordoned)
		set(&n.Draining, x.Draining)
		set(&n.Drained, !x.DrainedAt.IsZero())
		set(&n.Terminated, x.Terminated || x.Leaving)
		for b := range x.PDBPods {
			relevant[b] = true
		}
	}
	for k := range tl.t.Nodes {
		n := &tl.t.Nodes[k]
		if !present[n.Instance] {
			set(&n.Terminated, true)
			set(&n.Gone, true)
		}
	}
	if tl.t.ToReplace < 0 {
		tl.t.ToReplace, tl.dirty = old, true
	}
	if g.Max > tl.t.MaxInstances {
		tl.t.MaxInstances, tl.dirty = g.Max, true
	}
	// In service, as the group's max size limits them (one terminating
	// beside its replacement is not over the limit).
	inService := 0
	for _, i := range g.Instances {
		if !i.Terminating() {
			inService++
		}
	}
	tl.t.Instances = tl.appendPoint(tl.t.Instances, now, int64(inService))
	for _, b := range budgets {
		name := b.Namespace + "/" + b.Name
		k, known := tl.budgets[name]
		if !known {
			if !relevant[name] || len(tl.t.Budgets) >= maxBudgets {
				continue // a budget over none of the group's pods
			}
			tl.t.Budgets = append(tl.t.Budgets, BudgetSeries{Name: name})
			k = len(tl.t.Budgets) - 1
			tl.budgets[name] = k
		}
		bs := &tl.t.Budgets[k]
		bs.Healthy = tl.appendPoint(bs.Healthy, now, int64(b.Status.CurrentHealthy))
		bs.Min = tl.appendPoint(bs.Min, now, int64(b.Status.DesiredHealthy))
	}
}

// appendPoint adds a value when it changed, thinning the series to half
// its points once it reaches the cap (every other point of its older half
// goes, so the recent past keeps its detail).
func (tl *timeliner) appendPoint(ps []Point, at Millis, v int64) []Point {
	if len(ps) > 0 && ps[len(ps)-1][1] == v {
		return ps
	}
	tl.dirty = true
	ps = append(ps, Point{int64(at), v})
	return thin(ps, maxPoints)
}

func thin(ps []Point, limit int) []Point {
	if len(ps) <= limit {
		return ps
	}
	half := len(ps) / 2
	out := make([]Point, 0, limit)
	for k := 0; k < half; k += 2 {
		out = append(out, ps[k])
	}
	return append(out, ps[half:]...)
}

// flush writes the timeline when it changed, at most every flushEvery
// unless final.
func (tl *timeliner) flush(ctx context.Context, rec *Record, final bool) {
	tl.mu.Lock()
	if !tl.dirty && !final || !final && tl.clock.Since(tl.flushed) < flushEvery {
		tl.mu.Unlock()
		return
	}
	tl.t.Phase, tl.t.Message, tl.t.Updated = rec.Phase, rec.Message, tl.clock.Now().UTC()
	tl.t.Ended = time.Time{}
	if final {
		tl.t.Ended = tl.t.Updated
	}
	tl.t.Steps = append([]Step(nil), rec.Steps...)
	b, err := encodeTimeline(&tl.t)
	tl.dirty, tl.flushed = false, tl.clock.Now()
	exists := tl.exists
	tl.mu.Unlock()
	if err != nil {
		tl.log.Warn("encoding the timeline", "err", err)
		return
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: tl.name, Namespace: Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "noderoll", "app.kubernetes.io/component": "timeline",
				"noderoll.io/nodegroup": sanitizeLabel(rec.Nodegroup)},
			Annotations: map[string]string{"noderoll.io/cluster": rec.Cluster, "noderoll.io/nodegroup": rec.Nodegroup}},
		BinaryData: map[string][]byte{timelineKey: b},
	}
	if exists {
		_, err = tl.client.CoreV1().ConfigMaps(Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			exists = false
		}
	}
	if !exists {
		_, err = tl.client.CoreV1().ConfigMaps(Namespace).Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = tl.client.CoreV1().ConfigMaps(Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		// The timeline is for watching and reporting: losing a write of it
		// never stops an upgrade; the next write carries it all again.
		tl.log.Warn("writing the timeline", "configmap", tl.name, "err", err)
		tl.mu.Lock()
		tl.dirty = true
		tl.mu.Unlock()
		return
	}
	tl.mu.Lock()
	tl.exists = true
	tl.mu.Unlock()
}

// journal is the run's reporter: it tells the front end and keeps what it
// told in the timeline, so that a watch elsewhere tells the same.
type journal struct {
	Reporter
	tl *timeliner
}

func (j journal) Report(p Progress) {
	j.Reporter.Report(p)
	switch p.Kind {
	case ProgressStep:
		j.tl.event(Event{Kind: EventStep, Step: p.Step, Title: p.Title, Message: p.Message, Node: p.Node})
	case ProgressInfo:
		j.tl.event(Event{Kind: EventInfo, Message: p.Text(), Node: p.Node})
	case ProgressBlocked:
		for _, b := range p.Blockers {
			if j.tl.firstWait(drain.WaitKey(p.Node, b.Budgets(), b.Namespace+"/"+b.Pod)) {
				j.tl.event(Event{Kind: EventWait, Node: p.Node, Message: b.String(), Budgets: b.Budgets()})
			}
		}
	}
}

// firstWait says whether a wait is new: a refused eviction is retried
// every few seconds, and told once.
func (tl *timeliner) firstWait(key string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.waits[key] {
		return false
	}
	tl.waits[key] = true
	return true
}

// readySince is when a node's Ready condition last turned true (zero when
// it is not Ready or does not say).
func readySince(n *corev1.Node) time.Time {
	// A condition is dated to the second: see midSecond.
	if n == nil {
		return time.Time{}
	}
	if at := conditions.NodeReadySince(n); !at.IsZero() {
		return midSecond(at)
	}
	return time.Time{}
}

// midSecond is when something dated to the whole second most likely
// happened: half a second after its stamp, on average, since the stamp
// drops the fraction. A time with a fraction is taken as it is. Kubernetes
// dates conditions to the second; the sandbox's cloud dates launches to
// the millisecond and EC2 to the second.
func midSecond(t time.Time) time.Time {
	if t.IsZero() || t.Nanosecond() != 0 {
		return t
	}
	return t.Add(500 * time.Millisecond)
}
