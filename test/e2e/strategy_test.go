package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSurgeKeepsItsBudgetsThroughAKill: the default strategy on a 9-node
// group with --max-surge 3 --max-unavailable 1, killed with SIGKILL mid-run
// and rerun. Samplers outside the engine see, across both runs: never more
// than 9+3 instances in service, never fewer than 9-1 Ready schedulable
// nodes, more than one node replaced at once, no PodDisruptionBudget below
// its minimum. Every old instance gets exactly one terminate call, the last
// ones lower desired capacity (nothing is left to scale back), and sizes,
// scaling processes and the cluster-autoscaler end as they were.
func TestSurgeKeepsItsBudgetsThroughAKill(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t, "--nodes=9")
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	group := WatchGroup(t, s)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--strategy=surge", "--max-surge=3", "--max-unavailable=1", "--post-cordon-wait=4s", "--eviction-retry-delay=1s"}

	run := s.Start(upgrade...)
	eventually(t, 4*time.Minute, "three terminate calls", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= 3, tail(run.out.String(), 5)
	})
	out := run.Kill(t)
	t.Logf("killed after three terminations; it had printed:\n%s", tail(out, 10))

	r := s.Noderoll(append(slices.Clone(upgrade), "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("the run after the kill failed: %s\n%s", r.LastLine(), tail(r.Stderr, 20))
	}
	if !strings.Contains(r.Stderr, "Resume: resuming the upgrade") || !strings.Contains(r.Stderr, "strategy surge") {
		t.Errorf("the rerun did not resume the recorded surge upgrade:\n%s", tail(r.Stderr, 30))
	}
	var sum struct{ Replaced, Removed []string }
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.Stdout)
	}
	peakIn, lowReady, peakFlight, samples := group.Stop()
	violations, lowest, checks := budgets.Stop()
	t.Logf("%d samples: peak %d instances in service, lowest %d Ready schedulable nodes, peak %d nodes in flight; budgets' lowest healthy %v (%d checks)",
		samples, peakIn, lowReady, peakFlight, lowest, checks)
	if peakIn > 12 {
		t.Errorf("%d instances in service at once, above 9 + max surge 3", peakIn)
	}
	if lowReady < 8 {
		t.Errorf("%d Ready schedulable nodes at the lowest, below 9 - max unavailable 1", lowReady)
	}
	if peakFlight < 2 || peakFlight > 4 {
		t.Errorf("peak %d nodes replaced at once, want 2 to 4 (max surge 3 + max unavailable 1)", peakFlight)
	}
	if len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum:\n%s", strings.Join(violations, "\n"))
	}
	allOnTarget(t, s, 9)
	// The post-cordon wait (4 s, longer than a drain here) runs from the
	// cordon, before the drain: no old instance is terminated sooner after
	// its node was cordoned.
	cordoned := group.Cordoned()
	asked := map[string]bool{}
	for _, c := range s.Calls("TerminateInstanceInAutoScalingGroup") {
		id := c.Params["InstanceId"]
		at, ok := cordoned[id]
		if asked[id] {
			continue
		}
		asked[id] = true
		// The watch sees a cordon a moment after it is written.
		if !ok || c.Time.Sub(at) < 4*time.Second-250*time.Millisecond {
			t.Errorf("instance %s terminated %v after its node was seen cordoned (seen: %v), within the 4s post-cordon wait", id, c.Time.Sub(at), ok)
		}
	}
	terminations := s.TerminateCalls()
	oldIDs := terminatedOnce(t, before, terminations)
	if len(terminations) != 9 {
		t.Errorf("%d instances got terminate calls, want the 9 old ones only: %v", len(terminations), terminations)
	}
	decrements := 0
	for _, c := range s.Calls("TerminateInstanceInAutoScalingGroup") {
		if c.Params["ShouldDecrementDesiredCapacity"] == "true" {
			decrements++
		}
	}
	slices.Sort(oldIDs)
	slices.Sort(sum.Replaced)
	if !slices.Equal(sum.Replaced, oldIDs) || len(sum.Removed) != 0 || decrements != 3 {
		t.Errorf("replaced %v, removed %v, %d decrementing terminations; want every old instance, none removed, the last 3 decrementing", sum.Replaced, sum.Removed, decrements)
	}
	after := s.Group()
	if aws.ToInt32(after.MinSize) != aws.ToInt32(before.MinSize) || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) ||
		aws.ToInt32(after.DesiredCapacity) != 9 || len(after.SuspendedProcesses) != 0 {
		t.Errorf("group after: min/max/desired %d/%d/%d, suspended %v; want as before and none", aws.ToInt32(after.MinSize), aws.ToInt32(after.MaxSize), aws.ToInt32(after.DesiredCapacity), after.SuspendedProcesses)
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler not restored: %v", err)
	}
}

// TestBlueGreenSoaksThroughAKillThenGoesBack: bluegreen on 6 nodes in
// batches of 2, killed with SIGKILL while a batch drains, resumed to its
// soak (every old node drained and kept, none terminated), then gone back
// from: the same old instances serve again, uncordoned and untainted, the
// new ones are gone, the group launches its original version at its
// original sizes. A second bluegreen run then finishes: every old instance
// terminated exactly once, lowering desired capacity. Throughout, samplers
// see at most 6+6 instances, never fewer than 6 Ready schedulable nodes,
// and no budget below its minimum.
func TestBlueGreenSoaksThroughAKillThenGoesBack(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t, "--nodes=6")
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	group := WatchGroup(t, s)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--strategy=bluegreen", "--batch-size=2", "--post-cordon-wait=1s", "--eviction-retry-delay=1s"}

	cordoned := func() (n int) {
		for _, node := range groupNodesAll(t, s) {
			if node.Annotations["noderoll.io/cordoned-at"] != "" {
				n++
			}
		}
		return n
	}
	run := s.Start(append(slices.Clone(upgrade), "--soak=10m")...)
	eventually(t, 4*time.Minute, "the first batch drained", func() (bool, string) {
		return cordoned() >= 2, tail(run.out.String(), 4)
	})
	out := run.Kill(t)
	t.Logf("killed after the first batch; it had printed:\n%s", tail(out, 6))

	run = s.Start(append(slices.Clone(upgrade), "--soak=10m")...)
	eventually(t, 4*time.Minute, "every old node drained and soaking", func() (bool, string) {
		return cordoned() == 6 && strings.Contains(run.out.String(), "soak: 6 old nodes kept cordoned"), tail(run.out.String(), 4)
	})
	if out := run.out.String(); !strings.Contains(out, "Resume: resuming the upgrade") {
		t.Errorf("the second run did not resume:\n%s", tail(out, 20))
	}
	if n := len(s.TerminateCalls()); n != 0 {
		t.Fatalf("%d instances terminated before the soak ended", n)
	}

	// Going back from another terminal while the run soaks: the rollback
	// asks it to stop, and takes the group once it has.
	r := s.Noderoll("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--rollback", "--post-cordon-wait=1s")
	if r.Code != 0 {
		t.Fatalf("--rollback: %s\n%s", r.LastLine(), tail(r.Stdout, 20))
	}
	if !strings.Contains(r.Stdout, fmt.Sprintf("noderoll (pid %d) on host", run.cmd.Process.Pid)) || !strings.Contains(r.Stdout, "asked it to stop so that this run can go back (--rollback)") {
		t.Errorf("the rollback did not say it asked the soaking run to stop:\n%s", tail(r.Stdout, 30))
	}
	if code := run.Wait(); code == 0 {
		t.Error("the soaking run asked to stop exited 0")
	}
	if out := run.out.String() + run.err.String(); !strings.Contains(out, "stopped, as noderoll (pid ") || !strings.Contains(out, "asked, so that it can go back (--rollback)") ||
		!strings.Contains(out, "another run could take the group") {
		t.Errorf("the soaking run did not say who stopped it and why:\n%s", tail(out, 15))
	}
	after := s.Group()
	ids := func(g []string) []string { slices.Sort(g); return g }
	var was, now []string
	for _, i := range before.Instances {
		was = append(was, aws.ToString(i.InstanceId))
	}
	for _, i := range after.Instances {
		now = append(now, aws.ToString(i.InstanceId))
	}
	if !slices.Equal(ids(was), ids(now)) || aws.ToInt32(after.DesiredCapacity) != 6 || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) ||
		aws.ToString(after.LaunchTemplate.Version) != aws.ToString(before.LaunchTemplate.Version) || len(after.SuspendedProcesses) != 0 {
		t.Errorf("after going back: instances %v (want %v), desired %d, max %d, template version %s (want %s), suspended %v",
			now, was, aws.ToInt32(after.DesiredCapacity), aws.ToInt32(after.MaxSize), aws.ToString(after.LaunchTemplate.Version), aws.ToString(before.LaunchTemplate.Version), after.SuspendedProcesses)
	}
	for _, n := range groupNodes(t, s) {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 || n.Annotations["noderoll.io/phase"] != "" {
			t.Errorf("node %s after going back: unschedulable %v, taints %v, annotations %v", n.Name, n.Spec.Unschedulable, n.Spec.Taints, n.Annotations)
		}
	}
	for _, id := range was {
		if s.TerminateCalls()[id] != 0 {
			t.Errorf("old instance %s terminated", id)
		}
	}

	r = s.Noderoll(append(slices.Clone(upgrade), "--soak=2s", "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("the bluegreen run after going back: %s", r.LastLine())
	}
	peakIn, lowReady, inFlight, samples := group.Stop()
	violations, lowest, checks := budgets.Stop()
	t.Logf("%d samples: peak %d instances, lowest %d Ready schedulable, peak %d in flight; budgets' lowest %v (%d checks)", samples, peakIn, lowReady, inFlight, lowest, checks)
	if peakIn > 12 || lowReady < 6 {
		t.Errorf("peak %d instances in service (max 6+6), lowest %d Ready schedulable nodes (min 6)", peakIn, lowReady)
	}
	if len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum:\n%s", strings.Join(violations, "\n"))
	}
	allOnTarget(t, s, 6)
	for _, id := range was {
		if n := s.TerminateCalls()[id]; n != 1 {
			t.Errorf("old instance %s: %d terminate calls, want exactly one", id, n)
		}
	}
	for _, c := range s.Calls("TerminateInstanceInAutoScalingGroup") {
		if slices.Contains(was, c.Params["InstanceId"]) && c.Params["ShouldDecrementDesiredCapacity"] != "true" {
			t.Errorf("old instance %s terminated without lowering desired capacity", c.Params["InstanceId"])
		}
	}
	if g := s.Group(); aws.ToInt32(g.DesiredCapacity) != 6 || aws.ToInt32(g.MaxSize) != aws.ToInt32(before.MaxSize) {
		t.Errorf("group after: desired %d max %d", aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MaxSize))
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler not restored: %v", err)
	}
}
