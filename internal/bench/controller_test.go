package bench

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/api/v1alpha1"
)

// Each group of the controller's row is held to its own bound: its own
// nodes and only the pods on them, so a group whose budgets' pods are few
// there has a lower budget term than the joint one.
func TestEachGroupIsMeasuredAgainstItsOwnBound(t *testing.T) {
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	res := func(group string, took time.Duration, replaced int32) v1alpha1.NodeGroupUpgrade {
		var u v1alpha1.NodeGroupUpgrade
		u.Spec.NodeGroup = group
		u.Status.Phase, u.Status.Replaced = v1alpha1.PhaseComplete, replaced
		u.Status.StartTime, u.Status.CompletionTime = &metav1.Time{Time: start}, &metav1.Time{Time: start.Add(took)}
		return u
	}
	d := Delays{BootReady: 3 * time.Second, PodStart: time.Second, PodStop: time.Second, Wait: 4 * time.Second}
	own := map[string][]Budgeted{
		"a": {{Name: "web", OnOld: 40, Allowed: 1}}, // 40 rounds of S after B+R: 3s + 39s + 1s
		"b": {{Name: "web", OnOld: 4, Allowed: 1}},  // the waves bind: 4 of 7s
	}
	rows := groupRows([]v1alpha1.NodeGroupUpgrade{res("a", 86*time.Second, 10), res("b", 56*time.Second, 10)}, own, 10, 3, d)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	a, b := rows[0], rows[1]
	if a.Bound.Makespan != 43*time.Second || a.Bound.Bottleneck != "web" || a.Ratio != 2 {
		t.Errorf("group a: bound %s (bottleneck %q), ratio %.2f; want 43s by web, 2.00", a.Bound.Makespan, a.Bound.Bottleneck, a.Ratio)
	}
	if b.Bound.Makespan != 28*time.Second || b.Ratio != 2 || b.Replaced != 10 || b.Makespan != 56*time.Second {
		t.Errorf("group b: %+v; want a 28s bound by its waves and a ratio of 2", b)
	}
	if own["a"][0].Rounds != 0 {
		t.Error("groupRows wrote into the caller's workloads")
	}
	var out strings.Builder
	Details(&out, []Row{{Nodes: 20, Strategy: controllerStrategy(2, 10), Groups: rows}})
	if !strings.Contains(out.String(), "group a (10 nodes): Complete, 10 replaced in 1m26s; its bound alone 43s") {
		t.Errorf("details:\n%s", out.String())
	}
}
