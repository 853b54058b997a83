package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
// nothing.
func TestManagedModeLetsEKSUpgradeTheSeedsGroup(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37", "--mode=managed"}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"--strategy=surge"}, "--strategy is for noderoll's own upgrades"},
		{[]string{"--abort"}, "EKS's update has no way back"},
		{[]string{"--mode=eks"}, "want noderoll or managed"},
	} {
		if r := s.Noderoll(append(slices.Clone(upgrade), bad.args...)...); r.Code == 0 || !strings.Contains(r.LastLine(), bad.says) {
			t.Fatalf("%v: exit %d %s", bad.args, r.Code, r.LastLine())
		}
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--ami="+s.RecommendedAMI("1.37"), "--mode=managed"); r.Code == 0 || !strings.Contains(r.LastLine(), "--launch-template-version") {
		t.Fatalf("--mode=managed with --ami: exit %d %s", r.Code, r.LastLine())
	}
	if n := len(s.Calls("UpdateNodegroupVersion")); n != 0 {
		t.Fatalf("refused runs asked EKS for %d updates", n)
	}

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
}
