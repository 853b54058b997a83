package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestStopsMidReplacementLeaveTheRestAlone: two stops the upgrade must make
// mid-run, on the real endpoint and control plane, each resumable.
//   - EC2 capacity runs out with the surge: the first old node's
//     replacement never comes, so no other old node loses its pods.
//   - Someone resizes the group while noderoll holds it: the run stops,
//     records why, and leaves the sizes as that someone set them.
//
// With --accept-resize the same command finishes, every old instance
// terminated once, by noderoll.
func TestStopsMidReplacementLeaveTheRestAlone(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t)
	ctx := context.Background()
	waitWorkloads(t, s)
	before := s.Group()
	upgrade := append(slices.Clone(seedUpgrade), "--node-ready-timeout=20s")

	// 1. One more instance may launch in each AZ: the surge's, and no
	// replacement.
	s.Capacity("all", "1")
	run := s.Start(upgrade...)
	if err := run.cmd.Wait(); err == nil {
		t.Fatal("the upgrade succeeded though replacements could not launch")
	}
	out := run.err.String()
	if !strings.Contains(out, "so no further old node was drained (1 replaced so far)") || !strings.Contains(out, "InsufficientInstanceCapacity") {
		t.Fatalf("the run did not stop at the gate with the group's reason:\n%s", tail(out, 5))
	}
	if n := len(s.Calls("TerminateInstanceInAutoScalingGroup")); n != 1 {
		t.Fatalf("%d terminate calls after the stop; want 1: no old node may go while its predecessor's replacement is missing", n)
	}
	for _, n := range groupNodes(t, s) {
		if n.Spec.Unschedulable {
			t.Errorf("node %s was cordoned though the run stopped before draining it", n.Name)
		}
	}

	// 2. With capacity back, the rerun is resized by someone else mid-way.
	s.Capacity("all", "unlimited")
	run = s.Start(upgrade...)
	eventually(t, 3*time.Minute, "a second terminate call", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) > 1, tail(run.out.String(), 3)
	})
	if _, err := s.ASG.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: before.AutoScalingGroupName, MaxSize: aws.Int32(8), DesiredCapacity: aws.Int32(8)}); err != nil {
		t.Fatal(err)
	}
	if err := run.cmd.Wait(); err == nil {
		t.Fatal("the upgrade went on though someone else resized the group")
	}
	if out := run.err.String(); !strings.Contains(out, "was resized by someone else during the upgrade") || !strings.Contains(out, "desired 8") {
		t.Fatalf("the run did not say the group was resized:\n%s", tail(out, 5))
	}
	if g := s.Group(); aws.ToInt32(g.DesiredCapacity) != 8 || aws.ToInt32(g.MaxSize) != 8 {
		t.Fatalf("noderoll undid the change: max %d desired %d", aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity))
	}
	cms, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: recordSelector})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("the upgrade record: %v, %d found", err, len(cms.Items))
	}
	var rec struct{ Message string }
	if err := json.Unmarshal([]byte(cms.Items[0].Data["record.json"]), &rec); err != nil || !strings.Contains(rec.Message, "resized by someone else") {
		t.Fatalf("the record does not keep the cause: %q (%v)", rec.Message, err)
	}

	// 3. As the error says: --accept-resize goes on with the group as it is,
	// and the extra nodes leave drained, through noderoll. (Setting the
	// sizes back by hand would let the group terminate instances of its
	// choosing, old ones first, undrained: the terminate count below would
	// show it.)
	if r := s.Noderoll(append(slices.Clone(seedUpgrade), "--accept-resize")...); r.Code != 0 {
		t.Fatalf("the rerun with --accept-resize: %s", r.LastLine())
	}
	allOnTarget(t, s, 3)
	terminations := s.TerminateCalls()
	for _, i := range before.Instances {
		if id := aws.ToString(i.InstanceId); terminations[id] != 1 {
			t.Errorf("old instance %s: %d terminate calls, want exactly one", id, terminations[id])
		}
	}
	if g := s.Group(); aws.ToInt32(g.MinSize) != 3 || aws.ToInt32(g.MaxSize) != 3 || aws.ToInt32(g.DesiredCapacity) != 3 {
		t.Errorf("sizes after: %d/%d/%d, want 3/3/3", aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity))
	}
	waitWorkloads(t, s)
}
