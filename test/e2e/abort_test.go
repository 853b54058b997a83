package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAbortTakesAStoppedUpgradeBack: a surge upgrade killed after it had
// replaced nodes is aborted; the abort is itself killed midway and rerun.
// The group ends as before the upgrade: every node on the original AMI, the
// original launch template version, sizes and scaling processes, the
// autoscaler restored, no node tainted or cordoned. No instance got two
// terminate calls, none of the original instances left got one, no budget
// went below its minimum and no pod was lost. The record says Aborted, and
// the upgrade then runs afresh to the end.
func TestAbortTakesAStoppedUpgradeBack(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	original := s.RecommendedAMI("1.36")
	budgets := WatchBudgets(t, s.Kube)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	abort := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--abort",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}

	run := s.Start(upgrade...)
	eventually(t, 3*time.Minute, "the upgrade replacing a node", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= 1, tail(run.out.String(), 5)
	})
	run.Kill(t)
	forward := len(s.Calls("TerminateInstanceInAutoScalingGroup"))

	run = s.Start(abort...)
	eventually(t, 3*time.Minute, "the abort replacing a node of the new AMI", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) > forward, tail(run.out.String(), 5)
	})
	out := run.Kill(t)
	if !strings.Contains(out, "Abort: taking eksworkshop-eksctl/nodegroup back from") {
		t.Errorf("the abort did not say what it takes back:\n%s", tail(out, 20))
	}
	r := s.Noderoll(upgrade...)
	if r.Code == 0 || !strings.Contains(r.LastLine(), "rerun with --abort") {
		t.Fatalf("the upgrade rerun during an abort: exit %d, %s", r.Code, r.LastLine())
	}
	r = s.Noderoll(append(slices.Clone(abort), "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("the abort's rerun: %s\n%s", r.LastLine(), tail(r.Stderr, 30))
	}
	var sum struct{ Replaced, Removed []string }
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.Stdout)
	}

	after := s.Group()
	if aws.ToString(after.LaunchTemplate.Version) != aws.ToString(before.LaunchTemplate.Version) ||
		aws.ToInt32(after.MinSize) != aws.ToInt32(before.MinSize) || aws.ToInt32(after.MaxSize) != aws.ToInt32(before.MaxSize) ||
		aws.ToInt32(after.DesiredCapacity) != aws.ToInt32(before.DesiredCapacity) || len(after.SuspendedProcesses) != 0 {
		t.Errorf("the group after the abort: version %s min %d max %d desired %d suspended %v; before: version %s %d/%d/%d",
			aws.ToString(after.LaunchTemplate.Version), aws.ToInt32(after.MinSize), aws.ToInt32(after.MaxSize), aws.ToInt32(after.DesiredCapacity), after.SuspendedProcesses,
			aws.ToString(before.LaunchTemplate.Version), aws.ToInt32(before.MinSize), aws.ToInt32(before.MaxSize), aws.ToInt32(before.DesiredCapacity))
	}
	nodes := groupNodes(t, s)
	if len(nodes) != 3 {
		t.Errorf("%d nodes after the abort, want 3", len(nodes))
	}
	for _, n := range nodes {
		if img := n.Labels["eks.amazonaws.com/nodegroup-image"]; img != original || n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
			t.Errorf("node %s after the abort: image %s (want %s), cordoned %v, taints %v", n.Name, img, original, n.Spec.Unschedulable, n.Spec.Taints)
		}
	}
	terms := s.TerminateCalls()
	for id, k := range terms {
		if k > 1 {
			t.Errorf("instance %s got %d terminate calls", id, k)
		}
	}
	for _, i := range after.Instances {
		if terms[aws.ToString(i.InstanceId)] > 0 {
			t.Errorf("instance %s, still in the group, got a terminate call", aws.ToString(i.InstanceId))
		}
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler not restored: %v", err)
	}
	cms, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: recordSelector})
	if err != nil || len(cms.Items) != 1 || !strings.Contains(cms.Items[0].Data["record.json"], `"phase": "Aborted"`) {
		t.Errorf("the record does not say Aborted: %v", err)
	}
	waitWorkloads(t, s)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("budgets below their minimum or pods lost (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	// What the abort says it took away it did: each instance once, none
	// of them left in the group, and at least the one of the new AMI the
	// abort was seen replacing before its kill.
	gone := append(slices.Clone(sum.Replaced), sum.Removed...)
	if len(gone) == 0 {
		t.Errorf("the abort's summary names no instance replaced or removed")
	}
	inGroup := map[string]bool{}
	for _, i := range after.Instances {
		inGroup[aws.ToString(i.InstanceId)] = true
	}
	for _, id := range gone {
		if terms[id] != 1 || inGroup[id] {
			t.Errorf("instance %s the abort names: %d terminate calls, still in the group %v", id, terms[id], inGroup[id])
		}
	}
	t.Logf("aborted: %d instances of the new AMI replaced, %d removed", len(sum.Replaced), len(sum.Removed))

	if r := s.Noderoll(abort...); r.Code == 0 || !strings.Contains(r.LastLine(), "nothing to abort") {
		t.Errorf("a second abort: exit %d, %s", r.Code, r.LastLine())
	}
	if r := s.Noderoll(upgrade...); r.Code != 0 {
		t.Fatalf("the upgrade afresh after the abort: %s", r.LastLine())
	}
	allOnTarget(t, s, 3)
}
