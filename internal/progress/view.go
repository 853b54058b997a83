// Package progress shows an upgrade as it happens: the engine's steps and
// every node of the group coming and going, as plain timestamped lines that
// read well in a terminal and in a CI log. On a terminal a status line at the
// bottom keeps the current step and node count in view.
package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/drain"
)

// View renders progress. It implements engine.Reporter. Everything it
// says is an Event: printed as a timestamped line, or, for tools, written
// as one JSON object a line (NewJSONView).
type View struct {
	out   io.Writer
	tty   bool
	json  *json.Encoder // nil: lines for people
	clock clock.Clock
	start time.Time

	mu      sync.Mutex
	step    string
	nodes   map[string]nodeRow // name -> as last rendered
	peak    int
	initial int
	status  bool // a status line is on screen
	// waits are the budgets each node's drain was told to wait on: said
	// once, not at every refused retry.
	waits map[string]bool
	// The plan's prediction of the whole run, of its tail (from the last
	// old instance's termination to the end: the scale-back) and of its
	// nodes to replace, and the replacements told so far (the last at
	// doneAt): the ETA, corrected as they come.
	predicted, tail time.Duration
	toReplace, done int
	doneAt          time.Time
	// old says whether a node is one the run replaces; nil: unknown (the
	// per-zone counts are then not shown).
	old func(*corev1.Node) bool
	// rescan shows again every node the node watch holds (WatchNodes);
	// watched lists those the watch's matcher selects.
	rescan  func()
	watched func() []*corev1.Node
}

// Event is one thing the view says.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // step, info, wait, node, predicted, end
	Step    int       `json:"step,omitempty"`
	Title   string    `json:"title,omitempty"`
	Message string    `json:"message,omitempty"`
	// Node is the node that changed (kind node), or that a wait is on.
	Node    *NodeState `json:"node,omitempty"`
	Budgets []string   `json:"budgets,omitempty"`
	// The group as it is now: its nodes, old and new per zone (when the
	// view knows which are old), the run's elapsed time and its ETA.
	Nodes            int         `json:"nodes"`
	Zones            []ZoneCount `json:"zones,omitempty"`
	ElapsedSeconds   float64     `json:"elapsedSeconds"`
	RemainingSeconds *float64    `json:"remainingSeconds,omitempty"`
	// The end (kind end): the run's phase and the group's node count
	// before, at its peak and after.
	Phase   string `json:"phase,omitempty"`
	Initial int    `json:"initial,omitempty"`
	Peak    int    `json:"peak,omitempty"`
}

// NodeState is a node as `kubectl get nodes` shows it; Change is + (came),
// ~ (changed) or - (gone).
type NodeState struct {
	Name    string `json:"name"`
	Change  string `json:"change,omitempty"`
	Zone    string `json:"zone,omitempty"`
	Kubelet string `json:"kubelet,omitempty"`
	Image   string `json:"image,omitempty"`
	Status  string `json:"status,omitempty"`
	Old     *bool  `json:"old,omitempty"`
}

// ZoneCount is a zone's nodes of the group, old and new.
type ZoneCount struct {
	Zone string `json:"zone"`
	Old  int    `json:"old"`
	New  int    `json:"new"`
}

type nodeRow struct {
	row  string
	zone string
	old  bool
}

// Predict gives the view the plan's prediction of the run and of its tail
// after the last replacement: it shows an ETA from then on and corrects it
// by the pace the replacements show. assuming, when set, says what the
// prediction took as given for want of the group's history.
func (v *View) Predict(total, tail time.Duration, toReplace int, assuming string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.predicted, v.tail, v.toReplace = total, min(max(tail, 0), total), toReplace
	model := "noderoll plan's model"
	if assuming != "" {
		model += ", assuming " + assuming
	}
	v.emit(Event{Kind: "predicted", Message: fmt.Sprintf("Predicted: about %s for %d nodes (%s; corrected as nodes are replaced)", total.Round(time.Second), toReplace, model)}, "")
}

// Attach sets the view on a run under way: when it started, its
// prediction (0: none) and its tail, and the replacements done so far.
func (v *View) Attach(start time.Time, predicted, tail time.Duration, toReplace, done int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.start, v.predicted, v.tail, v.toReplace, v.done = start, predicted, min(max(tail, 0), predicted), toReplace, done
	v.doneAt = v.clock.Now()
}

// Replaced sets how many of the run's nodes are replaced, as its record
// says: a view attached mid-run has not seen them all told.
func (v *View) Replaced(done int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if done > v.done {
		v.done, v.doneAt = done, v.clock.Now()
	}
}

// Old tells the view which nodes the run replaces, for the per-zone counts.
func (v *View) Old(old func(*corev1.Node) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.old = old
}

// remaining is the ETA's time left. Before any node is replaced it is the
// prediction's; then the smaller of the prediction's and the pace's (the
// time per node so far, for the nodes left) while the run is within its
// prediction, and the pace's once it is late. Nodes of a wave end
// together, so the pace alone would overstate what a wave's first
// termination leaves. Callers hold mu.
func (v *View) remaining() (time.Duration, bool) {
	if v.predicted <= 0 || v.toReplace <= 0 {
		return 0, false
	}
	elapsed := v.clock.Since(v.start)
	planLeft := max(v.predicted-elapsed, 0)
	if v.done == 0 {
		return planLeft, true
	}
	// The replacements' pace says how long the rest of them take, and how
	// far off the plan is: the scale-back after them (the plan's tail) is
	// taken to be off by as much.
	f := min(float64(v.done)/float64(v.toReplace), 1)
	work := elapsed
	if f == 1 {
		work = v.doneAt.Sub(v.start)
	}
	projected := time.Duration(float64(work) / f) // the replacements' whole time at this pace
	tail := v.tail
	if planned := v.predicted - v.tail; planned > 0 {
		tail = time.Duration(float64(v.tail) * float64(projected) / float64(planned))
	}
	paceLeft := max(projected-elapsed, 0) + tail
	if f == 1 {
		paceLeft = max(tail-v.clock.Since(v.doneAt), 0)
	}
	if elapsed < v.predicted {
		return min(planLeft, paceLeft), true
	}
	return paceLeft, true
}

// NewView returns a view writing lines to out; tty enables the status line.
func NewView(out io.Writer, tty bool, clk clock.Clock) *View {
	return &View{out: out, tty: tty, clock: clk, start: clk.Now(), nodes: map[string]nodeRow{}, initial: -1, waits: map[string]bool{}}
}

// NewJSONView returns a view writing one JSON Event a line to out.
func NewJSONView(out io.Writer, clk clock.Clock) *View {
	v := NewView(out, false, clk)
	v.json = json.NewEncoder(out)
	return v
}

// Step implements engine.Reporter.
func (v *View) Step(n int, title, detail string) { v.StepAt(v.clock.Now(), n, title, detail) }

// StepAt tells a step taken at a given time (one a run told elsewhere).
func (v *View) StepAt(at time.Time, n int, title, detail string) {
	label := "     "
	if n > 0 {
		label = fmt.Sprintf("[%d/9]", n)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.step = strings.TrimSpace(label + " " + title)
	text := detail
	if n == 7 && title == "Terminate" {
		v.done, v.doneAt = v.done+1, at
		if left, ok := v.remaining(); ok && !v.tty {
			// Without a status line, the ETA rides on each replacement.
			text += fmt.Sprintf(" · about %s left", left.Round(time.Second))
		}
	}
	v.emit(Event{Time: at, Kind: "step", Step: n, Title: title, Message: detail}, fmt.Sprintf("%s %s: %s", label, title, text))
}

// Info implements engine.Reporter.
func (v *View) Info(msg string) { v.InfoAt(v.clock.Now(), msg) }

// InfoAt tells something said at a given time.
func (v *View) InfoAt(at time.Time, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.emit(Event{Time: at, Kind: "info", Message: msg}, "      "+msg)
}

// Blocked implements engine.Reporter.
func (v *View) Blocked(node string, blockers []drain.Blocker) {
	for _, b := range blockers {
		v.WaitAt(v.clock.Now(), node, b.String(), b.Budgets(), b.Namespace+"/"+b.Pod)
	}
}

// WaitAt tells an eviction from node refused for the budgets named (or,
// when none is, for what pod says), once per node and budgets.
func (v *View) WaitAt(at time.Time, node, msg string, budgets []string, pod string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := drain.WaitKey(node, budgets, pod)
	if v.waits[key] {
		return // the same wait, said already: the drain retries as the budget allows
	}
	v.waits[key] = true
	v.emit(Event{Time: at, Kind: "wait", Node: &NodeState{Name: node}, Budgets: budgets, Message: msg},
		fmt.Sprintf("      ! eviction from %s refused, retrying: %s (said once per budget and node)", short(node), msg))
}

// End tells how the run ended: its phase, what it said, and the group's
// node count before, at its peak and now.
func (v *View) End(phase, msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	initial := max(v.initial, 0)
	text := fmt.Sprintf("%s: nodes %d -> %d -> %d (before, at the peak, now)", phase, initial, v.peak, len(v.nodes))
	if msg != "" {
		text += ": " + msg
	}
	v.emit(Event{Kind: "end", Phase: phase, Message: msg, Initial: initial, Peak: v.peak}, "      "+text)
}

// Peak is the most nodes of the group seen at once.
func (v *View) Peak() (peak, initial int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.peak, v.initial
}

// zones counts the group's nodes old and new per zone, nil when the view
// does not know which are old. Callers hold mu.
func (v *View) zones() []ZoneCount {
	if v.old == nil {
		return nil
	}
	by := map[string]*ZoneCount{}
	for _, n := range v.nodes {
		z := by[n.zone]
		if z == nil {
			z = &ZoneCount{Zone: n.zone}
			by[n.zone] = z
		}
		if n.old {
			z.Old++
		} else {
			z.New++
		}
	}
	out := make([]ZoneCount, 0, len(by))
	for _, z := range by {
		out = append(out, *z)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Zone < out[b].Zone })
	return out
}

// zonesText is the per-zone counts as a line says them.
func zonesText(zs []ZoneCount) string {
	parts := make([]string, len(zs))
	for k, z := range zs {
		parts[k] = fmt.Sprintf("%s %d old/%d new", z.Zone, z.Old, z.New)
	}
	return strings.Join(parts, ", ")
}

// Zones tells the group's nodes per zone, old and new, as they are now.
func (v *View) Zones() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if zs := v.zones(); zs != nil {
		v.emit(Event{Kind: "info", Message: "zones: " + zonesText(zs)}, "      zones: "+zonesText(zs))
	}
}

// emit says an event: as text (the line given) or as JSON with the
// group's counts and the ETA. Callers hold mu.
func (v *View) emit(ev Event, text string) {
	if ev.Time.IsZero() {
		ev.Time = v.clock.Now()
	}
	if text == "" {
		text = "      " + ev.Message
	}
	if v.json == nil {
		v.line(ev.Time, text)
		return
	}
	ev.Time = ev.Time.UTC()
	ev.Nodes, ev.Zones = len(v.nodes), v.zones()
	ev.ElapsedSeconds = v.clock.Since(v.start).Round(time.Millisecond).Seconds()
	if left, ok := v.remaining(); ok {
		s := left.Round(time.Second).Seconds()
		ev.RemainingSeconds = &s
	}
	_ = v.json.Encode(ev)
}

// line prints one line, keeping the status line (on a tty) below it; callers
// hold mu.
func (v *View) line(at time.Time, s string) {
	if v.status {
		fmt.Fprint(v.out, "\r\033[K")
	}
	fmt.Fprintf(v.out, "%s  %s\n", at.Format("15:04:05"), s)
	if v.tty {
		eta := ""
		if left, ok := v.remaining(); ok {
			eta = fmt.Sprintf(" · about %s left", left.Round(time.Second))
		}
		zones := ""
		if zs := v.zones(); zs != nil {
			zones = " (" + zonesText(zs) + ")"
		}
		fmt.Fprintf(v.out, "\033[2m%s · %d nodes%s · %s elapsed%s\033[0m", v.step, len(v.nodes), zones, v.clock.Since(v.start).Round(time.Second), eta)
		v.status = true
	}
}

// Close ends the status line.
func (v *View) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.status {
		fmt.Fprint(v.out, "\r\033[K")
		v.status = false
	}
}

// WatchNodes prints every change of the nodes match selects, until ctx ends:
// nodes joining (+), changing (~) and leaving (-), with zone, kubelet
// version, AMI and status as `kubectl get nodes` shows it.
func (v *View) WatchNodes(ctx context.Context, c kubernetes.Interface, match func(*corev1.Node) bool) error {
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithTransform(slimNode))
	inf := factory.Core().V1().Nodes().Informer()
	show := func(obj any, gone bool) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				n, _ = d.Obj.(*corev1.Node)
			}
		}
		if n == nil || !match(n) {
			return
		}
		v.node(n, gone)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { show(o, false) },
		UpdateFunc: func(_, o any) { show(o, false) },
		DeleteFunc: func(o any) { show(o, true) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	// The handler's sync, not only the store's: the nodes counted as the
	// group's initial size are those shown.
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return ctx.Err()
	}
	v.mu.Lock()
	v.rescan = func() {
		for _, o := range inf.GetStore().List() {
			show(o, false)
		}
	}
	v.watched = func() []*corev1.Node {
		var out []*corev1.Node
		for _, o := range inf.GetStore().List() {
			if n, ok := o.(*corev1.Node); ok && match(n) {
				out = append(out, n)
			}
		}
		return out
	}
	if v.initial < 0 {
		v.initial = len(v.nodes)
	}
	v.mu.Unlock()
	return nil
}

func (v *View) node(n *corev1.Node, gone bool) {
	state := NodeStatus(n)
	if gone {
		state = "gone"
	}
	st := NodeState{Name: n.Name, Zone: n.Labels["topology.kubernetes.io/zone"], Kubelet: n.Status.NodeInfo.KubeletVersion,
		Image: n.Labels["eks.amazonaws.com/nodegroup-image"], Status: state}
	row := fmt.Sprintf("%-18s %-11s %-20s %-22s %s", short(n.Name), st.Zone, st.Kubelet, st.Image, state)
	v.mu.Lock()
	defer v.mu.Unlock()
	prev, known := v.nodes[n.Name]
	if prev.row == row {
		return
	}
	r := nodeRow{row: row, zone: st.Zone}
	if v.old != nil {
		r.old = v.old(n)
		st.Old = &r.old
	}
	st.Change = "~"
	switch {
	case gone:
		st.Change = "-"
		delete(v.nodes, n.Name)
	case !known:
		st.Change = "+"
		v.nodes[n.Name] = r
	default:
		v.nodes[n.Name] = r
	}
	if len(v.nodes) > v.peak {
		v.peak = len(v.nodes)
	}
	v.emit(Event{Kind: "node", Node: &st}, fmt.Sprintf("  %s %s", st.Change, row))
}

// Recheck looks at every node again, for a matcher that now selects nodes
// it did not (a group whose new instances became known).
func (v *View) Recheck() {
	v.mu.Lock()
	rescan := v.rescan
	v.mu.Unlock()
	if rescan != nil {
		rescan()
	}
}

// Watched are the nodes the node watch holds that its matcher selects, as
// slimmed for the view (nil before WatchNodes): a look at them without
// asking the API server again. They are the watch's own; not to be
// changed.
func (v *View) Watched() []*corev1.Node {
	v.mu.Lock()
	watched := v.watched
	v.mu.Unlock()
	if watched == nil {
		return nil
	}
	return watched()
}

// SetInitial sets the group's node count before the run, for a view that
// attached after it started.
func (v *View) SetInitial(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.initial = n
}

// Rows are the current nodes, a row each as the view prints them
// (indented), sorted: a closing picture.
func (v *View) Rows() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	rows := make([]string, 0, len(v.nodes))
	for _, r := range v.nodes {
		rows = append(rows, "    "+r.row)
	}
	sort.Strings(rows)
	return rows
}

// NodeStatus is the STATUS column of `kubectl get nodes`.
func NodeStatus(n *corev1.Node) string {
	s := "NotReady"
	if conditions.NodeReady(n) {
		s = "Ready"
	}
	if n.Spec.Unschedulable {
		s += ",SchedulingDisabled"
	}
	if n.DeletionTimestamp != nil {
		s += ",Terminating"
	}
	return s
}

// slimNode keeps of a node what a row and a matcher read (name, labels,
// spec, Ready, kubelet version): a view of hundreds of nodes then costs
// little beside the engine's own caches.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels,
			CreationTimestamp: n.CreationTimestamp, DeletionTimestamp: n.DeletionTimestamp},
		Spec: n.Spec,
	}
	slim.Status.NodeInfo.KubeletVersion = n.Status.NodeInfo.KubeletVersion
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			slim.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return slim, nil
}

func short(name string) string { return strings.Split(name, ".")[0] }
