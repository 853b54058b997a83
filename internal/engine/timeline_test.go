package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/rollout"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A 1,000-node group replaced node by node, with a budget changing at
// every look and thousands of things told: its timeline stays within one
// ConfigMap, keeps every node's times, and thins only the series.
func TestTimelineOfAThousandNodesFitsAConfigMap(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	rec := &Record{Cluster: "prod", Nodegroup: "workers", Phase: PhaseReplacing, Started: start, Target: Target{ImageID: "ami-new"}}
	tl := newTimeliner(ctx, kube, clk, quietLog(), rec, 90*time.Minute, 0, time.Time{})
	const size = 1000
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	var insts []rollout.Instance
	var group cloud.NodeGroup
	group.Max = 2 * size
	nodes := map[string]*corev1.Node{}
	for k := range size {
		id := fmt.Sprintf("i-old%05d", k)
		insts = append(insts, rollout.Instance{ID: id, AZ: "us-west-2a", Old: true, HasNode: true, Ready: true, PDBPods: map[string]int{"shop/web": 3}})
		nodes[id] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-" + id + ".us-west-2.compute.internal"}}
	}
	for k := range size {
		clk.Step(3 * time.Second)
		// The k-th old node goes through its steps and a new one comes.
		id := fmt.Sprintf("i-new%05d", k)
		insts = append(insts, rollout.Instance{ID: id, AZ: "us-west-2b", HasNode: true, Ready: true})
		nodes[id] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ip-10-1-" + id + ".us-west-2.compute.internal"}}
		insts[k].Tainted, insts[k].Cordoned, insts[k].Draining, insts[k].Terminated = true, true, true, true
		insts[k].DrainedAt = clk.Now()
		group.Instances = make([]cloud.Instance, len(insts))
		pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy = int32(10+k%3), 10
		tl.sample(rollout.State{Now: clk.Now(), Instances: insts}, group, nodes, []*policyv1.PodDisruptionBudget{pdb})
		say := teller{to: journal{Reporter: nopReporter{}, tl: tl}, now: clk.Now}
		say.NodeStep(7, "Terminate", nodes[insts[k].ID].Name, insts[k].ID, fmt.Sprintf("%s terminated", insts[k].ID))
		for range 3 { // refused, retried: told once
			say.Blocked(nodes[insts[k].ID].Name, []drain.Blocker{{Namespace: "shop", Pod: "web-1", PDBs: []string{"shop/web (0 allowed)"}}})
		}
	}
	tl.flush(ctx, rec, true)
	cm, err := kube.CoreV1().ConfigMaps(Namespace).Get(ctx, timelineName("prod", "workers"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if size := len(cm.BinaryData[timelineKey]); size > 512<<10 {
		t.Errorf("the timeline of %d nodes takes %d KiB; want it well within a ConfigMap's 1 MiB", 2*1000, size>>10)
	}
	got, err := LoadTimeline(ctx, kube, cloud.NodeGroupRef{Cluster: "prod", Name: "workers"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 2*size || got.ToReplace != size || got.MaxInstances != 2*size || got.Predicted != Duration(90*time.Minute) {
		t.Errorf("%d nodes, %d to replace, max %d, predicted %s; want 2000, 1000, 2000, 1h30m", len(got.Nodes), got.ToReplace, got.MaxInstances, time.Duration(got.Predicted))
	}
	last := got.Nodes[size-1]
	if last.Tainted != Millis(3000*size) || last.Terminated != last.Tainted || last.Node == "" {
		t.Errorf("the last old node: %+v; want tainted and terminated at %dms", last, 3000*size)
	}
	if n := got.Nodes[size]; n.Launched != 3000 || n.Ready != 3000 || n.Old {
		t.Errorf("the first new node: %+v; want launched and Ready at 3000ms", n)
	}
	if len(got.Budgets) != 1 || len(got.Budgets[0].Healthy) > maxPoints || len(got.Budgets[0].Healthy) < maxPoints/2 {
		t.Errorf("budget series: %+v", got.Budgets)
	}
	if h := got.Budgets[0].Healthy; h[len(h)-1][0] != int64(3000*size) {
		t.Errorf("the budget's last sample is at %dms; want the recent past kept, %dms", h[len(h)-1][0], 3000*size)
	}
	if len(got.Events) != maxEvents || got.Seq != 2*size || got.Events[len(got.Events)-1].Seq != got.Seq {
		// A step and a wait a node: each node's wait on its budget is told once.
		t.Errorf("%d events kept, seq %d; want the last %d of %d", len(got.Events), got.Seq, maxEvents, 2*size)
	}
	if got.Ended.IsZero() || got.Phase != PhaseReplacing {
		t.Errorf("ended %v, phase %s", got.Ended, got.Phase)
	}
}

// A resumed run goes on with its run's timeline, with its own prediction
// of what is left counted from its resume (the first run's counted from a
// start the stopped time since makes stale); a new run starts afresh.
func TestTimelineGoesOnWithItsRun(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	rec := &Record{Cluster: "c", Nodegroup: "g", Phase: PhaseSurging, Started: start}
	tl := newTimeliner(ctx, kube, clk, quietLog(), rec, time.Minute, 0, time.Time{})
	teller{to: journal{Reporter: nopReporter{}, tl: tl}, now: clk.Now}.Info("first run")
	tl.flush(ctx, rec, true)

	clk.Step(10 * time.Minute) // killed, and resumed ten minutes later
	// It had terminated i-old1 (recorded) before its timeline said so.
	tl.t.Nodes = []NodeTimes{{Instance: "i-old1", Old: true}, {Instance: "i-old2", Old: true}}
	tl.flush(ctx, rec, true)
	rec.Replaced = []string{"i-old1"}
	again := newTimeliner(ctx, kube, clk, quietLog(), rec, 20*time.Second, 5*time.Second, time.Time{})
	teller{to: journal{Reporter: nopReporter{}, tl: again}, now: clk.Now}.Info("resumed")
	again.flush(ctx, rec, false)
	got, err := LoadTimeline(ctx, kube, cloud.NodeGroupRef{Cluster: "c", Name: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 2 || !got.Ended.IsZero() {
		t.Errorf("resumed: seq %d, ended %v; want 2 events, running", got.Seq, got.Ended)
	}
	if got.Predicted != Duration(20*time.Second) || got.PredictedTail != Duration(5*time.Second) || got.PredictedFrom.At(got.Started) != start.Add(10*time.Minute) || got.ToReplace != -1 {
		t.Errorf("resumed: predicted %s (tail %s) from %s for %d; want the resume's 20s (5s) from 10:10, its count left to the next look",
			time.Duration(got.Predicted), time.Duration(got.PredictedTail), got.PredictedFrom.At(got.Started), got.ToReplace)
	}
	if n := got.Nodes; len(n) != 2 || n[0].Terminated == 0 || n[0].Terminated >= got.PredictedFrom || n[1].Terminated != 0 {
		t.Errorf("resumed: nodes %+v; want i-old1 terminated before the resume, i-old2 not", n)
	}

	next := &Record{Cluster: "c", Nodegroup: "g", Phase: PhaseStarted, Started: start.Add(time.Hour)}
	fresh := newTimeliner(ctx, kube, clk, quietLog(), next, 0, 0, time.Time{})
	fresh.flush(ctx, next, true)
	got, _ = LoadTimeline(ctx, kube, cloud.NodeGroupRef{Cluster: "c", Name: "g"})
	if got.Seq != 0 || !got.Started.Equal(next.Started) {
		t.Errorf("a new run: seq %d, started %v", got.Seq, got.Started)
	}
}

// What the engine does to a node is dated when it does it, not at the
// next look: thirty drains started in one pass of a second each keep
// their own times, and a later look does not move them.
func TestActionsAreDatedWhenTheyHappen(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	rec := &Record{Cluster: "prod", Nodegroup: "workers", Phase: PhaseReplacing, Started: start}
	tl := newTimeliner(ctx, fake.NewClientset(), clk, quietLog(), rec, 0, 0, time.Time{})
	var insts []rollout.Instance
	for k := range 30 {
		insts = append(insts, rollout.Instance{ID: fmt.Sprintf("i-old%02d", k), Old: true, HasNode: true, Ready: true})
	}
	tl.sample(rollout.State{Now: clk.Now(), Instances: insts}, cloud.NodeGroup{}, nil, nil)
	tl.at("i-unseen", atDraining, true) // no look has seen it: left to the next
	for k := range insts {
		clk.Step(time.Second)
		tl.at(insts[k].ID, atDraining, k%2 == 0)
		insts[k].Draining, insts[k].Cordoned = true, true
	}
	clk.Step(time.Second)
	tl.at(insts[0].ID, atDrained, true)
	clk.Step(time.Second)
	tl.at(insts[0].ID, atTerminated, false)
	tl.sample(rollout.State{Now: clk.Now(), Instances: insts}, cloud.NodeGroup{}, nil, nil)
	nodes := tl.t.Nodes
	if len(nodes) != 30 {
		t.Fatalf("%d nodes; want the 30 the look saw", len(nodes))
	}
	for k, n := range nodes {
		want := Millis(1000 * (k + 1))
		if n.Draining != want {
			t.Errorf("%s draining at %dms; want %dms", n.Instance, n.Draining, want)
		}
		if k%2 == 0 && n.Cordoned != want {
			t.Errorf("%s cordoned at %dms, with its drain; want %dms", n.Instance, n.Cordoned, want)
		}
		if k%2 == 1 && n.Cordoned != 32000 {
			t.Errorf("%s cordoned at %dms; want the look's 32000ms", n.Instance, n.Cordoned)
		}
	}
	if n := nodes[0]; n.Drained != 31000 || n.Terminated != 32000 {
		t.Errorf("first node drained at %dms, terminated at %dms; want 31000 and 32000", n.Drained, n.Terminated)
	}
}
