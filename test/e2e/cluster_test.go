package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
)

// upgrade cluster on three groups: the canary alone first, soaked, then the
// other two at once; killed in the canary's soak, while a newer release is
// published, and run again: it resumes from its record (the canary is not
// upgraded again) and takes every group to the release frozen at its start,
// not the newer one, which a later run then rolls out. The order and the
// soak are read from the groups' own timelines.
func TestUpgradeClusterGoesCanaryFirstThenWavesToTheFrozenRelease(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups", "3")
	ctx := context.Background()
	frozen := s.RecommendedAMI("1.37") // v20261115, before the new release
	args := []string{"upgrade", "cluster", "--cluster=eksworkshop-eksctl", "--canary=nodegroup", "--max-concurrent-groups=2", "--soak=8s", "--post-cordon-wait=2s"}
	run := s.Start(args...)
	eventually(t, 3*time.Minute, "the canary's soak", func() (bool, string) {
		return strings.Contains(run.out.String(), "soaking 8s"), tail(run.out.String(), 5)
	})
	// A release lands mid-rollout; then the run dies in the soak.
	if r := s.Noderoll("sandbox", "release-ami", "--dir", s.Dir, "--release", "20261201"); r.Code != 0 {
		t.Fatalf("release-ami: exit %d: %s", r.Code, r.LastLine())
	}
	out := run.Kill(t)
	if !strings.Contains(out, "targets frozen now") || !strings.Contains(out, "the canary: nodegroup; wave 1: nodegroup-2, nodegroup-3") {
		t.Errorf("the first run did not say its plan:\n%s", tail(out, 20))
	}
	canaryTerminations := len(s.Calls("TerminateInstanceInAutoScalingGroup"))

	r := s.Noderoll(args...)
	if r.Code != 0 {
		t.Fatalf("the rerun: exit %d: %s\n%s", r.Code, r.LastLine(), r.Stderr)
	}
	if !strings.Contains(r.Stdout, "resuming the upgrade of cluster eksworkshop-eksctl") || !strings.Contains(r.Stdout, "[nodegroup] Up to date") {
		t.Errorf("the rerun did not resume, or upgraded the canary again:\n%s", tail(r.Stdout, 30))
	}
	if got := len(s.Calls("TerminateInstanceInAutoScalingGroup")) - canaryTerminations; got != 6 {
		t.Errorf("the rerun terminated %d instances; want the 6 of the two other groups", got)
	}
	var ids []string
	for _, g := range s.Groups() {
		for _, i := range g.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	desc, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, res := range desc.Reservations {
		for _, i := range res.Instances {
			n++
			if aws.ToString(i.ImageId) != frozen {
				t.Errorf("instance %s runs %s; want %s, the release frozen at the start", aws.ToString(i.InstanceId), aws.ToString(i.ImageId), frozen)
			}
		}
	}
	if n != 9 {
		t.Errorf("%d instances in the three groups; want 9", n)
	}
	// The order and the soak, from the groups' timelines.
	times := map[string]*engine.Timeline{}
	for _, name := range []string{"nodegroup", "nodegroup-2", "nodegroup-3"} {
		tl, err := engine.LoadTimeline(ctx, s.Kube, cloud.NodeGroupRef{Cluster: "eksworkshop-eksctl", Name: name})
		if err != nil || tl == nil || tl.Phase != engine.PhaseCompleted {
			t.Fatalf("%s's timeline: %v %+v", name, err, tl)
		}
		times[name] = tl
	}
	canaryEnd := times["nodegroup"].Ended
	for _, name := range []string{"nodegroup-2", "nodegroup-3"} {
		if gap := times[name].Started.Sub(canaryEnd); gap < 8*time.Second {
			t.Errorf("%s started %s after the canary ended; want after the 8s soak", name, gap)
		}
	}
	// At once: each began before the other ended.
	if a, b := times["nodegroup-2"], times["nodegroup-3"]; !a.Started.Before(b.Ended) || !b.Started.Before(a.Ended) {
		t.Errorf("wave 1's groups one after the other: %s-%s and %s-%s; want them at once", a.Started, a.Ended, b.Started, b.Ended)
	}
	// The newer release is the next run's.
	r = s.Noderoll("plan", "cluster", "--cluster=eksworkshop-eksctl")
	if r.Code != 0 || !strings.Contains(r.Stdout, "3 of 3 node groups behind") || !strings.Contains(r.Stdout, "-1.37-v20261201") {
		t.Errorf("after the rollout, the plan does not name the newer release for all three:\n%s", r.Stdout)
	}
}

// The canary's new nodes never join: its upgrade fails at its
// node-ready timeout, the cluster's upgrade stops before any other wave
// (the other groups untouched) and says so; once the broken instances are
// gone, the same command resumes and finishes.
func TestUpgradeClusterStopsWhenTheCanaryFails(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups", "2")
	ctx := context.Background()
	before := s.Groups()
	original := map[string]bool{}
	for _, i := range before["nodegroup"].Instances {
		original[aws.ToString(i.InstanceId)] = true
	}
	if r := s.Noderoll("sandbox", "bad-boot", "--dir", s.Dir, "3"); r.Code != 0 {
		t.Fatalf("bad-boot: %s", r.LastLine())
	}
	args := []string{"upgrade", "cluster", "--cluster=eksworkshop-eksctl", "--canary=nodegroup", "--soak=2s", "--post-cordon-wait=2s", "--node-ready-timeout=15s"}
	r := s.Noderoll(append(args, "-o", "json")...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "the canary failed, so no later wave starts") || !strings.Contains(r.Stderr, "nodegroup:") {
		t.Fatalf("want the canary's failure to stop the upgrade: exit %d\n%s\n%s", r.Code, tail(r.Stdout, 10), tail(r.Stderr, 10))
	}
	// Said when it happened too, among the run's lines (stderr with -o json).
	if !strings.Contains(r.Stderr, "[nodegroup] stopped: ") {
		t.Errorf("the canary's stop was not told as it happened:\n%s", tail(r.Stderr, 10))
	}
	var rec struct {
		Succeeded bool
		Phase     string
		WavesDone int
		Targets   map[string]struct{ ImageID string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rec); err != nil || rec.Succeeded || rec.Phase != "Failed" || rec.WavesDone != 0 || len(rec.Targets) != 2 {
		t.Errorf("-o json: %v %+v\n%s", err, rec, r.Stdout)
	}
	after := s.Groups()
	if len(after["nodegroup-2"].Instances) != len(before["nodegroup-2"].Instances) || strings.Contains(r.Stderr, "[nodegroup-2]") {
		t.Errorf("nodegroup-2 was touched after the canary failed:\n%s", tail(r.Stderr, 20))
	}
	for _, i := range after["nodegroup-2"].Instances {
		if aws.ToString(i.LaunchTemplate.Version) != aws.ToString(before["nodegroup-2"].Instances[0].LaunchTemplate.Version) {
			t.Errorf("nodegroup-2's instance %s launched from version %s", aws.ToString(i.InstanceId), aws.ToString(i.LaunchTemplate.Version))
		}
	}
	// The broken instances go, launches work again; the rerun resumes.
	if r := s.Noderoll("sandbox", "bad-boot", "--dir", s.Dir, "0"); r.Code != 0 {
		t.Fatalf("bad-boot 0: %s", r.LastLine())
	}
	for _, i := range after["nodegroup"].Instances {
		if id := aws.ToString(i.InstanceId); !original[id] {
			if _, err := s.ASG.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String(id), ShouldDecrementDesiredCapacity: aws.Bool(false)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r = s.Noderoll(args...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "resuming the upgrade of cluster eksworkshop-eksctl") || !strings.Contains(r.Stdout, "phase Failed") {
		t.Fatalf("the rerun: exit %d\n%s\n%s", r.Code, tail(r.Stdout, 15), r.Stderr)
	}
	if r := s.Noderoll("plan", "cluster", "--cluster=eksworkshop-eksctl"); !strings.Contains(r.Stdout, "0 of 2 node groups behind") {
		t.Errorf("after the rerun:\n%s", r.Stdout)
	}
}
