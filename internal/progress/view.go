// Package progress shows an upgrade as it happens: the engine's steps and
// every node of the group coming and going, as plain timestamped lines that
// read well in a terminal and in a CI log. On a terminal a status line at the
// bottom keeps the current step and node count in view.
package progress

import (
	"context"
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

	"github.com/noderoll/noderoll/internal/drain"
)

// View renders progress. It implements engine.Reporter.
type View struct {
	out   io.Writer
	tty   bool
	clock clock.Clock
	start time.Time

	mu      sync.Mutex
	step    string
	nodes   map[string]string // name -> last rendered state
	peak    int
	initial int
	status  bool // a status line is on screen
	// waits are the budgets each node's drain was told to wait on: said
	// once, not at every refused retry.
	waits map[string]bool
	// The plan's prediction of the whole run and of its nodes to replace,
	// and the replacements told so far: the ETA, corrected as they come.
	predicted       time.Duration
	toReplace, done int
}

// Predict gives the view the plan's prediction of the run: it shows an
// ETA from then on and corrects it by the pace the replacements show.
func (v *View) Predict(total time.Duration, toReplace int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.predicted, v.toReplace = total, toReplace
	v.line(fmt.Sprintf("      Predicted: about %s for %d nodes (noderoll plan's model; corrected as nodes are replaced)", total.Round(time.Second), toReplace))
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
	f := min(float64(v.done)/float64(v.toReplace), 1)
	paceLeft := time.Duration(float64(elapsed) * (1 - f) / f)
	if elapsed < v.predicted {
		return min(planLeft, paceLeft), true
	}
	return paceLeft, true
}

// NewView returns a view writing to out; tty enables the status line.
func NewView(out io.Writer, tty bool, clk clock.Clock) *View {
	return &View{out: out, tty: tty, clock: clk, start: clk.Now(), nodes: map[string]string{}, initial: -1, waits: map[string]bool{}}
}

// Step implements engine.Reporter.
func (v *View) Step(n int, title, detail string) {
	label := "     "
	if n > 0 {
		label = fmt.Sprintf("[%d/9]", n)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.step = strings.TrimSpace(label + " " + title)
	if n == 7 && title == "Terminate" {
		v.done++
		if left, ok := v.remaining(); ok && !v.tty {
			// Without a status line, the ETA rides on each replacement.
			detail += fmt.Sprintf(" · about %s left", left.Round(time.Second))
		}
	}
	v.line(fmt.Sprintf("%s %s: %s", label, title, detail))
}

// Info implements engine.Reporter.
func (v *View) Info(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.line("      " + msg)
}

// Blocked implements engine.Reporter.
func (v *View) Blocked(node string, blockers []drain.Blocker) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, b := range blockers {
		key := node + "|" + waitKey(b)
		if v.waits[key] {
			continue // the same wait, said already: the drain retries as the budget allows
		}
		v.waits[key] = true
		v.line(fmt.Sprintf("      ! eviction from %s refused, retrying: %s (said once per budget and node)", short(node), b))
	}
}

// waitKey names what a refused eviction waits on: its budgets without
// their counts of the moment, or the pod when no budget covers it.
func waitKey(b drain.Blocker) string {
	if len(b.PDBs) == 0 {
		return b.Namespace + "/" + b.Pod + ": " + b.Reason
	}
	names := make([]string, len(b.PDBs))
	for k, p := range b.PDBs {
		names[k], _, _ = strings.Cut(p, " (")
	}
	return strings.Join(names, ",")
}

// Peak is the most nodes of the group seen at once.
func (v *View) Peak() (peak, initial int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.peak, v.initial
}

// line prints one line, keeping the status line (on a tty) below it; callers
// hold mu.
func (v *View) line(s string) {
	if v.status {
		fmt.Fprint(v.out, "\r\033[K")
	}
	fmt.Fprintf(v.out, "%s  %s\n", v.clock.Now().Format("15:04:05"), s)
	if v.tty {
		eta := ""
		if left, ok := v.remaining(); ok {
			eta = fmt.Sprintf(" · about %s left", left.Round(time.Second))
		}
		fmt.Fprintf(v.out, "\033[2m%s · %d nodes · %s elapsed%s\033[0m", v.step, len(v.nodes), v.clock.Since(v.start).Round(time.Second), eta)
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
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { show(o, false) },
		UpdateFunc: func(_, o any) { show(o, false) },
		DeleteFunc: func(o any) { show(o, true) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	v.mu.Lock()
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
	row := fmt.Sprintf("%-18s %-11s %-20s %-22s %s", short(n.Name), n.Labels["topology.kubernetes.io/zone"],
		n.Status.NodeInfo.KubeletVersion, n.Labels["eks.amazonaws.com/nodegroup-image"], state)
	v.mu.Lock()
	defer v.mu.Unlock()
	prev, known := v.nodes[n.Name]
	if prev == row {
		return
	}
	mark := "~"
	switch {
	case gone:
		mark = "-"
		delete(v.nodes, n.Name)
	case !known:
		mark = "+"
		v.nodes[n.Name] = row
	default:
		v.nodes[n.Name] = row
	}
	if len(v.nodes) > v.peak {
		v.peak = len(v.nodes)
	}
	v.line(fmt.Sprintf("  %s %s", mark, row))
}

// Table renders the current nodes, as a closing picture.
func (v *View) Table() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	rows := make([]string, 0, len(v.nodes))
	for _, r := range v.nodes {
		rows = append(rows, "    "+r)
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// NodeStatus is the STATUS column of `kubectl get nodes`.
func NodeStatus(n *corev1.Node) string {
	s := "NotReady"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			s = "Ready"
		}
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
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels, DeletionTimestamp: n.DeletionTimestamp},
		Spec:       n.Spec,
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
