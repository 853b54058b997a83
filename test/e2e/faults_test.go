package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAnUpgradeFinishesUnderThrottling: with three AWS calls in ten answered
// as a throttled account's are, the default upgrade still finishes: the
// SDK's retryer backs off and retries, no step gives up, every old instance
// is terminated exactly once (counted from the calls the endpoint applied),
// and no budget goes below its minimum.
func TestAnUpgradeFinishesUnderThrottling(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	before := s.Group()
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "30%"); r.Code != 0 || !strings.Contains(r.Stdout, "30% of AWS calls are answered as throttled") {
		t.Fatalf("sandbox throttle 30%%: %s %s", r.Stdout, r.LastLine())
	}
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "30"); r.Code == 0 || !strings.Contains(r.LastLine(), "want a percentage") {
		t.Fatalf("a rate without %%: exit %d %s", r.Code, r.LastLine())
	}
	budgets := WatchBudgets(t, s.Kube)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.Noderoll(upgrade...)
	if r.Code != 0 {
		t.Fatalf("the upgrade under throttling failed: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "off"); r.Code != 0 {
		t.Fatal(r.LastLine())
	}
	throttled, applied := 0, map[string]int{}
	for _, c := range s.Calls("") {
		switch {
		case c.Error == "Throttling" || c.Error == "RequestLimitExceeded" || c.Error == "ThrottlingException":
			throttled++
		case c.Error == "" && c.Action == "TerminateInstanceInAutoScalingGroup":
			applied[c.Params["InstanceId"]]++
		}
	}
	if throttled < 10 {
		t.Fatalf("only %d calls were throttled: the run did not meet throttling", throttled)
	}
	t.Logf("%d calls throttled, retried by the SDK", throttled)
	terminatedOnce(t, before, applied)
	allOnTarget(t, s, 3)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	if r := s.Noderoll(upgrade...); r.Code != 0 || !slices.ContainsFunc(strings.Split(r.Stdout, "\n"), func(l string) bool { return strings.Contains(l, "Up to date") }) {
		t.Fatalf("a rerun: exit %d\n%s", r.Code, r.Stdout)
	}
}

// TestAnInstanceThatNeverJoinsIsNamedAndTheRestUnharmed: one of the new
// instances runs but its kubelet never joins (a broken bootstrap). The
// default strategy replaces what the capacity that did come allows, within
// its budgets, then stops at --node-ready-timeout naming that instance. The
// user terminates it through the group (which launches another) and the
// rerun finishes: every old instance terminated exactly once, no budget
// below its minimum, no pod lost.
func TestAnInstanceThatNeverJoinsIsNamedAndTheRestUnharmed(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	if r := s.Noderoll("sandbox", "bad-boot", "--dir", s.Dir, "1"); r.Code != 0 {
		t.Fatal(r.LastLine())
	}
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.Noderoll(append(slices.Clone(upgrade), "--node-ready-timeout=20s")...)
	if r.Code == 0 {
		t.Fatal("the upgrade succeeded with an instance that never joined")
	}
	// The instance in service without a node is the one named.
	nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	joined := map[string]bool{}
	for _, n := range nodes.Items {
		joined[n.Spec.ProviderID[strings.LastIndex(n.Spec.ProviderID, "/")+1:]] = true
	}
	var bad []string
	for _, i := range s.Group().Instances {
		if !joined[aws.ToString(i.InstanceId)] {
			bad = append(bad, aws.ToString(i.InstanceId))
		}
	}
	if len(bad) != 1 || !strings.Contains(r.LastLine(), "instance "+bad[0]) || !strings.Contains(r.LastLine(), "has no Ready node") {
		t.Fatalf("instances without a node %v; the error does not name the one:\n%s", bad, r.LastLine())
	}
	for id, k := range s.TerminateCalls() {
		if k > 1 || id == bad[0] {
			t.Fatalf("instance %s got %d terminate calls before the stop", id, k)
		}
	}

	if _, err := s.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(bad[0]), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}); err != nil {
		t.Fatal(err)
	}
	if r := s.Noderoll(upgrade...); r.Code != 0 {
		t.Fatalf("the rerun after the bad instance went: %s\n%s", r.LastLine(), tail(r.Stdout, 20))
	}
	allOnTarget(t, s, 3)
	terminatedOnce(t, before, s.TerminateCalls())
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}

// TestInstancesThatDieMidRunAreTakenInStride: during a surge upgrade of six
// nodes, EC2 ends an old instance noderoll has not touched yet and a new one
// that is already serving (hardware failures: their groups replace them, their
// pods are lost). The upgrade finishes: every node on the target, every
// other old instance terminated exactly once by noderoll and the dead old
// one never, the group back at its size. Pods vanish only with the dead
// nodes (the budgets of their workloads may dip then, which is the
// failure's doing, so they are not checked here).
func TestInstancesThatDieMidRunAreTakenInStride(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t, "--nodes=6")
	before := s.Group()
	target := s.RecommendedAMI("1.37")
	budgets := WatchBudgets(t, s.Kube)
	run := s.Start("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=5s", "--eviction-retry-delay=1s")
	var oldVictim, newVictim string
	var deadNodes []string
	eventually(t, 3*time.Minute, "a new node serving and an old one untouched", func() (bool, string) {
		oldVictim, newVictim, deadNodes = "", "", nil
		for _, n := range groupNodes(t, s) {
			id := n.Spec.ProviderID[strings.LastIndex(n.Spec.ProviderID, "/")+1:]
			switch {
			case n.Labels["eks.amazonaws.com/nodegroup-image"] == target && ready(n) && newVictim == "":
				newVictim = id
				deadNodes = append(deadNodes, n.Name)
			case n.Labels["eks.amazonaws.com/nodegroup-image"] != target && !n.Spec.Unschedulable && n.Annotations["noderoll.io/phase"] == "" && oldVictim == "":
				oldVictim = id
				deadNodes = append(deadNodes, n.Name)
			}
		}
		return oldVictim != "" && newVictim != "", tail(run.out.String(), 5)
	})
	for _, id := range []string{oldVictim, newVictim} {
		if r := s.Noderoll("sandbox", "kill-instance", "--dir", s.Dir, id); r.Code != 0 {
			t.Fatalf("kill-instance %s: %s", id, r.LastLine())
		}
	}
	t.Logf("killed old %s and new %s (nodes %v)", oldVictim, newVictim, deadNodes)
	done := make(chan error, 1)
	go func() { done <- run.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the upgrade with instances dying under it failed: %v\n%s", err, tail(run.out.String()+run.err.String(), 30))
		}
	case <-time.After(6 * time.Minute):
		t.Fatalf("the upgrade did not end:\n%s", tail(run.out.String(), 30))
	}
	allOnTarget(t, s, 6)
	terms := s.TerminateCalls()
	for _, i := range before.Instances {
		id := aws.ToString(i.InstanceId)
		want := 1
		if id == oldVictim {
			want = 0
		}
		if terms[id] != want {
			t.Errorf("old instance %s: %d terminate calls from noderoll, want %d", id, terms[id], want)
		}
	}
	if terms[newVictim] != 0 {
		t.Errorf("the dead new instance %s got %d terminate calls", newVictim, terms[newVictim])
	}
	after := s.Group()
	if aws.ToInt32(after.MinSize) != aws.ToInt32(before.MinSize) || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) || aws.ToInt32(after.DesiredCapacity) != aws.ToInt32(before.DesiredCapacity) {
		t.Errorf("sizes after: %d/%d/%d, before %d/%d/%d", aws.ToInt32(after.MinSize), aws.ToInt32(after.MaxSize), aws.ToInt32(after.DesiredCapacity),
			aws.ToInt32(before.MinSize), aws.ToInt32(before.MaxSize), aws.ToInt32(before.DesiredCapacity))
	}
	waitWorkloads(t, s)
	violations, _, _ := budgets.Stop()
	for _, v := range violations {
		if strings.Contains(v, "vanished") && !strings.Contains(v, deadNodes[0]) && !strings.Contains(v, deadNodes[len(deadNodes)-1]) {
			t.Errorf("a pod vanished off a node that did not die: %s", v)
		}
	}
}

// TestAnAPIErrorOnOneCallStopsCleanlyOrIsRetried: one AWS call fails in a
// step, armed with `noderoll sandbox fail-call`. A refusal (403 on the new
// launch template version, the first change) stops the run at once naming
// the call and the error, with the group as it was and the autoscaler
// restored. On the rerun, a 503 on the surge and a 500 on a terminate whose
// call took (its answer lost) are retried: the run finishes, every old
// instance terminated exactly once by the calls the endpoint applied.
func TestAnAPIErrorOnOneCallStopsCleanlyOrIsRetried(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	failCall := func(args ...string) {
		t.Helper()
		if r := s.Noderoll(append([]string{"sandbox", "fail-call", "--dir", s.Dir}, args...)...); r.Code != 0 || !strings.Contains(r.Stdout, "The next 1 call(s) of") {
			t.Fatalf("sandbox fail-call %v: %s %s", args, r.Stdout, r.LastLine())
		}
	}
	if r := s.Noderoll("sandbox", "fail-call", "--dir", s.Dir, "autoscaling", "UpdateAutoScalingGroup"); r.Code == 0 || !strings.Contains(r.LastLine(), "nothing to inject") {
		t.Fatalf("a fault with neither code nor delay: exit %d %s", r.Code, r.LastLine())
	}
	failCall("ec2", "CreateLaunchTemplateVersion", "UnauthorizedOperation", "--status", "403", "--message", "You are not authorized to perform this operation.")
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.Noderoll(upgrade...)
	if r.Code == 0 || !strings.Contains(r.LastLine(), "UnauthorizedOperation") || !strings.Contains(r.LastLine(), "CreateLaunchTemplateVersion") {
		t.Fatalf("the refused call: exit %d, the error does not name the call and its error:\n%s", r.Code, r.LastLine())
	}
	after := s.Group()
	if aws.ToInt32(after.DesiredCapacity) != aws.ToInt32(before.DesiredCapacity) || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) ||
		aws.ToString(after.LaunchTemplate.Version) != aws.ToString(before.LaunchTemplate.Version) || len(s.TerminateCalls()) != 0 {
		t.Fatalf("the stopped run changed the group: desired %d max %d template version %s, %d instances terminated",
			aws.ToInt32(after.DesiredCapacity), aws.ToInt32(after.MaxSize), aws.ToString(after.LaunchTemplate.Version), len(s.TerminateCalls()))
	}
	nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
			t.Fatalf("node %s tainted or cordoned by a run that stopped at its first step", n.Name)
		}
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || ca.Spec.Replicas == nil || *ca.Spec.Replicas != 1 {
		t.Fatalf("cluster-autoscaler not restored after the stop: %v", err)
	}

	failCall("autoscaling", "UpdateAutoScalingGroup", "ServiceUnavailable", "--status", "503", "--message", "Service is unavailable.")
	failCall("autoscaling", "TerminateInstanceInAutoScalingGroup", "InternalFailure", "--status", "500", "--after")
	if r := s.Noderoll(upgrade...); r.Code != 0 {
		t.Fatalf("the rerun with two transient errors: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	applied, answered503, terminateCalls := map[string]int{}, false, 0
	for _, c := range s.Calls("") {
		switch {
		case c.Action == "UpdateAutoScalingGroup" && c.Error == "ServiceUnavailable":
			answered503 = true
		case c.Action == "TerminateInstanceInAutoScalingGroup":
			terminateCalls++
			if c.Error == "" {
				applied[c.Params["InstanceId"]]++
			}
		}
	}
	if !answered503 || terminateCalls <= len(applied) {
		t.Fatalf("the faults did not meet the run: 503 answered %v, %d terminate calls for %d applied", answered503, terminateCalls, len(applied))
	}
	terminatedOnce(t, before, applied)
	allOnTarget(t, s, 3)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}

// TestSlowScalingActivitiesAreWaitedFor: every launch and termination takes
// 20 s longer (`noderoll sandbox slow-scaling`), as lifecycle hooks make
// them. With --node-ready-timeout under that, the run stops before any
// drain, naming the instances still without a node; with the default, the
// rerun waits them out and finishes with the usual guarantees.
func TestSlowScalingActivitiesAreWaitedFor(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	if r := s.Noderoll("sandbox", "slow-scaling", "--dir", s.Dir, "fast"); r.Code == 0 || !strings.Contains(r.LastLine(), "want a duration") {
		t.Fatalf("slow-scaling fast: exit %d %s", r.Code, r.LastLine())
	}
	if r := s.Noderoll("sandbox", "slow-scaling", "--dir", s.Dir, "20s"); r.Code != 0 || !strings.Contains(r.Stdout, "20s longer") {
		t.Fatalf("slow-scaling 20s: %s %s", r.Stdout, r.LastLine())
	}
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.Noderoll(append(slices.Clone(upgrade), "--node-ready-timeout=8s")...)
	if r.Code == 0 || !strings.Contains(r.LastLine(), "so no old node was drained") {
		t.Fatalf("with a node-ready timeout under the launches' time: exit %d\n%s", r.Code, r.LastLine())
	}
	if n := len(s.TerminateCalls()); n != 0 {
		t.Fatalf("%d instances terminated by a run that stopped waiting for capacity", n)
	}
	began := time.Now()
	if r := s.Noderoll(upgrade...); r.Code != 0 {
		t.Fatalf("the rerun under slow scaling: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	if took := time.Since(began); took < 20*time.Second {
		t.Fatalf("the rerun took %s: it cannot have waited for a launch slowed by 20s", took)
	}
	if r := s.Noderoll("sandbox", "slow-scaling", "--dir", s.Dir, "off"); r.Code != 0 {
		t.Fatal(r.LastLine())
	}
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}
