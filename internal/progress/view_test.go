package progress

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/noderoll/noderoll/internal/drain"
)

func node(name, zone string, ready, cordoned bool) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name + ".us-west-2.compute.internal", Labels: map[string]string{"topology.kubernetes.io/zone": zone, "g": "x"}},
		Spec:       corev1.NodeSpec{Unschedulable: cordoned},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}, NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"}},
	}
}

// waitFor polls until a condition holds.
type waitFor struct{ t *testing.T }

func (w waitFor) until(cond func() bool) {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestViewShowsNodesComeAndGoAndCountsThePeak(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := fake.NewClientset(node("ip-1", "us-west-2a", true, false))
	var out bytes.Buffer
	v := NewView(&out, false, clocktesting.NewFakeClock(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)))
	if err := v.WatchNodes(ctx, c, func(n *corev1.Node) bool { return n.Labels["g"] == "x" }); err != nil {
		t.Fatal(err)
	}
	_, _ = c.CoreV1().Nodes().Create(ctx, node("ip-2", "us-west-2b", false, false), metav1.CreateOptions{})
	w := waitFor{t}
	w.until(func() bool { p, _ := v.Peak(); return p == 2 })
	_, _ = c.CoreV1().Nodes().Update(ctx, node("ip-1", "us-west-2a", true, true), metav1.UpdateOptions{})
	w.until(func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return strings.Contains(out.String(), "SchedulingDisabled")
	})
	_ = c.CoreV1().Nodes().Delete(ctx, "ip-1.us-west-2.compute.internal", metav1.DeleteOptions{})
	w.until(func() bool { v.mu.Lock(); defer v.mu.Unlock(); return strings.Contains(out.String(), "gone") })
	v.Step(5, "Replace node 1/1", "ip-1: evicting its pods")
	v.Blocked("ip-1.us-west-2.compute.internal", []drain.Blocker{{Namespace: "default", Pod: "web-1", PDBs: []string{"default/web (minAvailable 2)"}}})
	// The drain retries as the budget allows: the same wait is said once
	// per node, another budget's or another node's again.
	v.Blocked("ip-1.us-west-2.compute.internal", []drain.Blocker{{Namespace: "default", Pod: "web-2", PDBs: []string{"default/web (allowed disruptions 1)"}}})
	v.Blocked("ip-1.us-west-2.compute.internal", []drain.Blocker{{Namespace: "default", Pod: "db-0", PDBs: []string{"default/db (allowed disruptions 0)"}}})
	v.Blocked("ip-2.us-west-2.compute.internal", []drain.Blocker{{Namespace: "default", Pod: "web-3", PDBs: []string{"default/web (allowed disruptions 0)"}}})
	v.Close()

	v.mu.Lock()
	text := out.String()
	v.mu.Unlock()
	for _, want := range []string{
		"10:00:00    + ip-1               us-west-2a  v1.37.2",
		"+ ip-2               us-west-2b  v1.37.2                                     NotReady",
		"~ ip-1               us-west-2a  v1.37.2                                     Ready,SchedulingDisabled",
		"- ip-1               us-west-2a  v1.37.2                                     gone",
		"[5/9] Replace node 1/1: ip-1: evicting its pods",
		"! eviction from ip-1 refused, retrying: pod default/web-1 blocked by PodDisruptionBudget default/web (minAvailable 2)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "web-2") || strings.Count(text, "! eviction") != 3 {
		t.Errorf("the same wait said again, or another not said:\n%s", text)
	}
	if strings.Contains(text, "\033[") {
		t.Error("plain output (not a terminal) must carry no escape codes")
	}
	if peak, initial := v.Peak(); peak != 2 || initial != 1 {
		t.Errorf("peak %d initial %d, want 2 and 1", peak, initial)
	}
}

func TestSlimNodeKeepsWhatARowReads(t *testing.T) {
	n := node("ip-1", "us-west-2a", true, true)
	n.Annotations = map[string]string{"big": strings.Repeat("x", 1000)}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"registry/app:1"}, SizeBytes: 1}}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Message: "kubelet has sufficient memory"})
	got, err := slimNode(n)
	if err != nil {
		t.Fatal(err)
	}
	s := got.(*corev1.Node)
	if s.Annotations != nil || s.Status.Images != nil || len(s.Status.Conditions) != 1 {
		t.Errorf("slimNode kept annotations, images or other conditions: %+v", s)
	}
	if NodeStatus(s) != NodeStatus(n) || s.Status.NodeInfo.KubeletVersion != n.Status.NodeInfo.KubeletVersion || s.Labels["topology.kubernetes.io/zone"] != "us-west-2a" || s.Spec.ProviderID != n.Spec.ProviderID {
		t.Errorf("slimNode lost what the row shows: %q vs %q", NodeStatus(s), NodeStatus(n))
	}
	// watch following EKS's own update takes the newest node's AMI as the
	// target, from the watch's nodes.
	n.CreationTimestamp = metav1.NewTime(time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC))
	if got, _ := slimNode(n); !got.(*corev1.Node).CreationTimestamp.Equal(&n.CreationTimestamp) {
		t.Errorf("slimNode lost the node's creation time")
	}
}

// The ETA starts as the plan's prediction; as nodes are replaced it
// keeps to the prediction while the run is on time (a wave's nodes end
// together) and follows the pace once the run is late. The scale-back
// after the last replacement takes what the plan said (its tail).
func TestTheETAIsCorrectedAsNodesAreReplaced(t *testing.T) {
	run := func(predicted time.Duration, steps ...time.Duration) (string, *View, *clocktesting.FakeClock) {
		var out bytes.Buffer
		clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))
		v := NewView(&out, false, clk)
		v.Predict(predicted, 20*time.Second, 4, "")
		for k, d := range steps {
			clk.Step(d)
			v.Step(7, "Terminate", fmt.Sprintf("i-%d", k+1))
		}
		return out.String(), v, clk
	}
	// On time: the first node at 50s of a predicted 100s leaves 50s.
	if out, _, _ := run(100*time.Second, 50*time.Second); !strings.Contains(out, "i-1 · about 50s left") || !strings.Contains(out, "Predicted: about 1m40s for 4 nodes") {
		t.Errorf("on time:\n%s", out)
	}
	// Late: the first node at 150s of the 80s the plan gave all four
	// before its 20s scale-back; three more at that pace take 450s, and
	// the scale-back, as late, 150s.
	if out, _, _ := run(100*time.Second, 150*time.Second); !strings.Contains(out, "i-1 · about 10m0s left") {
		t.Errorf("late:\n%s", out)
	}
	// Every node replaced on time: what the plan has left.
	if out, _, _ := run(100*time.Second, 90*time.Second, 0, 0, 0); !strings.Contains(out, "i-4 · about 10s left") {
		t.Errorf("at the end, on time:\n%s", out)
	}
	// Every node replaced late (150s for the plan's 80s): the scale-back
	// is still to come, as late (37.5s for 20s), and counts down from the
	// last replacement.
	out, v, clk := run(100*time.Second, 150*time.Second, 0, 0, 0)
	if !strings.Contains(out, "i-4 · about 38s left") {
		t.Errorf("at the end, late:\n%s", out)
	}
	clk.Step(15 * time.Second)
	if left, ok := v.remaining(); !ok || left != 22500*time.Millisecond {
		t.Errorf("15s into the scale-back: %s left (%v), want 22.5s", left, ok)
	}
	clk.Step(time.Minute)
	if left, _ := v.remaining(); left != 0 {
		t.Errorf("past the scale-back's prediction: %s left, want 0", left)
	}
}
