package e2e

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestManagedModeLetsEKSUpgradeTheSeedsGroup: --mode=managed asks EKS to
// update the seed's managed node group itself (the endpoint plays EKS's
// documented update: a node a zone of surge, old nodes tainted, drained one
// at a time within their budgets, then scaled back) and follows it. Killed
// midway, a rerun follows the update in progress instead of starting
// another. noderoll itself changes nothing in the group: the endpoint's log
// shows one UpdateNodegroupVersion and none of the calls noderoll's own
// upgrade makes. The group ends on the target at its size, the autoscaler
// restored, no budget below its minimum; bad flag combinations change
// nothing. --max-unavailable=2 sets the group's updateConfig first
// (UpdateNodegroupConfig, once across the kill), and EKS then drains two old
// nodes at once.
func TestManagedModeLetsEKSUpgradeTheSeedsGroup(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37", "--mode=managed", "--max-unavailable=2"}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"--strategy=surge"}, "--strategy is for noderoll's own upgrades"},
		{[]string{"--abort"}, "EKS's update has no way back"},
		{[]string{"--mode=eks"}, "want noderoll or managed"},
		{[]string{"--max-surge=2"}, "EKS chooses its own surge"},
		{[]string{"--max-unavailable=0"}, "EKS replaces 1 to 100 nodes at once"},
		{[]string{"--max-unavailable=101"}, "EKS replaces 1 to 100 nodes at once"},
	} {
		if r := s.Noderoll(append(slices.Clone(upgrade), bad.args...)...); r.Code == 0 || !strings.Contains(r.LastLine(), bad.says) {
			t.Fatalf("%v: exit %d %s", bad.args, r.Code, r.LastLine())
		}
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--ami="+s.RecommendedAMI("1.37"), "--mode=managed"); r.Code == 0 || !strings.Contains(r.LastLine(), "--launch-template-version") {
		t.Fatalf("--mode=managed with --ami: exit %d %s", r.Code, r.LastLine())
	}
	if n := len(s.Calls("UpdateNodegroupVersion")) + len(s.Calls("UpdateNodegroupConfig")); n != 0 {
		t.Fatalf("refused runs asked EKS for %d updates", n)
	}
	// When each old node was first seen gone, from outside: EKS drains up
	// to maxUnavailable nodes at once (each cordoned as its drain ends,
	// which budgets make uneven), then terminates them together.
	oldNodes := map[string]bool{}
	for _, n := range groupNodes(t, s) {
		oldNodes[n.Name] = true
	}
	gone, cordoned := map[string]time.Time{}, map[string]time.Time{}
	var mu sync.Mutex
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			if nodes, err := s.Kube.CoreV1().Nodes().List(watchCtx, metav1.ListOptions{LabelSelector: "eks.amazonaws.com/nodegroup=nodegroup"}); err == nil {
				present := map[string]bool{}
				mu.Lock()
				for _, n := range nodes.Items {
					present[n.Name] = true
					if _, seen := cordoned[n.Name]; !seen && n.Spec.Unschedulable && oldNodes[n.Name] {
						cordoned[n.Name] = time.Now()
					}
				}
				for name := range oldNodes {
					if _, seen := gone[name]; !seen && !present[name] {
						gone[name] = time.Now()
					}
				}
				mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	run := s.Start(upgrade...)
	eventually(t, 3*time.Minute, "an old node cordoned by EKS's update", func() (bool, string) {
		for _, n := range groupNodes(t, s) {
			if n.Spec.Unschedulable {
				return true, ""
			}
		}
		return false, tail(run.out.String(), 5)
	})
	out := run.Kill(t)
	if !strings.Contains(out, "EKS update") || !strings.Contains(out, "started (UpdateNodegroupVersion to") {
		t.Fatalf("the run did not say it asked EKS:\n%s", tail(out, 15))
	}
	r := s.Noderoll(upgrade...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "is already in progress; following it") || !strings.Contains(r.Stdout, "EKS replaced") {
		t.Fatalf("the rerun: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stdout, 20))
	}
	if n := len(s.Calls("UpdateNodegroupVersion")); n != 1 {
		t.Fatalf("%d UpdateNodegroupVersion calls; want the one, followed by the rerun", n)
	}
	if n := len(s.Calls("UpdateNodegroupConfig")); n != 1 {
		t.Fatalf("%d UpdateNodegroupConfig calls; want one (the rerun finds the group's updateConfig already set)", n)
	}
	ng, err := s.EKS.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil || aws.ToInt32(ng.Nodegroup.UpdateConfig.MaxUnavailable) != 2 {
		t.Fatalf("the group's updateConfig after the run: %+v %v", ng, err)
	}
	stopWatch()
	<-watched
	// Two drained at once: the second old node to go was cordoned before
	// the first was gone. One at a time, it is drained and cordoned only
	// after the first is terminated (an order, not a duration).
	var order []string
	for name := range gone {
		order = append(order, name)
	}
	slices.SortFunc(order, func(a, b string) int { return gone[a].Compare(gone[b]) })
	if len(order) != 3 {
		t.Fatalf("old nodes seen gone: %v; want all 3", gone)
	}
	if c, ok := cordoned[order[1]]; !ok || !c.Before(gone[order[0]]) {
		t.Fatalf("the second old node gone (%s) was cordoned at %v, not before the first (%s) was gone at %v: not two at once (maxUnavailable 2)",
			order[1], c, order[0], gone[order[0]])
	}
	for _, own := range []string{"UpdateAutoScalingGroup", "TerminateInstanceInAutoScalingGroup", "CreateLaunchTemplateVersion", "SuspendProcesses"} {
		if n := len(s.Calls(own)); n != 0 {
			t.Fatalf("noderoll called %s %d times: in managed mode EKS changes the group", own, n)
		}
	}
	allOnTarget(t, s, 3)
	after := s.Group()
	if aws.ToInt32(after.DesiredCapacity) != aws.ToInt32(before.DesiredCapacity) || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) {
		t.Fatalf("sizes after EKS's update: desired %d max %d; before %d %d", aws.ToInt32(after.DesiredCapacity), aws.ToInt32(after.MaxSize),
			aws.ToInt32(before.DesiredCapacity), aws.ToInt32(before.MaxSize))
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || ca.Spec.Replicas == nil || *ca.Spec.Replicas != 1 {
		t.Fatalf("cluster-autoscaler not restored: %v", err)
	}
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	if r := s.Noderoll(upgrade...); r.Code != 0 || !strings.Contains(r.Stdout, "Up to date") {
		t.Fatalf("a rerun on the upgraded group: exit %d\n%s", r.Code, r.Stdout)
	}

	// Weeks later the team moves the group to another release with
	// noderoll's own upgrade. EKS learns of a launch template version only
	// through one of its own updates, so noderoll ends with one of the
	// MINIMAL strategy, which replaces no node: EKS's record is true, with
	// no Ec2LaunchTemplateVersionMismatch, and the group's strategy is
	// DEFAULT again. (The sandbox publishes no release newer than the
	// group's: the other one is older, which noderoll takes only on
	// purpose.)
	budgets = WatchBudgets(t, s.Kube)
	terminationsBefore := len(s.Calls("TerminateInstanceInAutoScalingGroup"))
	terminatedBefore := terminatedInstances(s)
	r = s.Noderoll("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--release-version=1.37.2-20261020",
		"--allow-downgrade", "--post-cordon-wait=1s", "--eviction-retry-delay=1s")
	if r.Code != 0 || strings.Contains(r.Stdout, "[eks-template]") || !strings.Contains(r.Stdout, "EKS's record:     launch template version") {
		t.Fatalf("noderoll's own upgrade of the managed group: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stdout, 20))
	}
	launched := eksRecordTrue(t, s)
	if n := len(s.Calls("UpdateNodegroupVersion")); n != 2 {
		t.Fatalf("%d UpdateNodegroupVersion calls, want 2: EKS's own update and the one that records noderoll's version", n)
	}
	if n := len(s.Calls("TerminateInstanceInAutoScalingGroup")) - terminationsBefore; n != 3 {
		t.Errorf("noderoll's own upgrade terminated %d instances, want 3", n)
	}
	// EKS's update that recorded the version replaced none: the group
	// terminated those 3 and no other.
	if n := terminatedInstances(s) - terminatedBefore; n != 3 {
		t.Errorf("the group terminated %d instances during noderoll's upgrade and EKS's record, want 3", n)
	}
	final := groupNodes(t, s)
	if len(final) != 3 {
		t.Fatalf("%d nodes after the record, want 3", len(final))
	}
	for _, n := range final {
		if n.Labels["eks.amazonaws.com/nodegroup-image"] != final[0].Labels["eks.amazonaws.com/nodegroup-image"] {
			t.Errorf("node %s runs %s after the record, want the release noderoll moved the group to", n.Name, n.Labels["eks.amazonaws.com/nodegroup-image"])
		}
	}
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("the upgrade and its record took a budget below its minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--mode=managed", "--launch-template-version="+launched); r.Code != 0 || !strings.Contains(r.Stdout, "Up to date") {
		t.Fatalf("a rerun after the record: exit %d\n%s", r.Code, r.Stdout)
	}
}
