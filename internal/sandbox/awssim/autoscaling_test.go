package awssim

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// Raising desired capacity launches instances balanced over the group's AZs
// (Amazon EC2 Auto Scaling User Guide, "Rebalancing activities"; API
// reference: UpdateAutoScalingGroup, DescribeAutoScalingGroups), Pending
// until they boot, then InService with a node.
func TestLaunchBalancesAcrossAZsAndRegistersNodes(t *testing.T) {
	e := newEnv(t)
	g := e.describe().AutoScalingGroups[0]
	if len(g.Instances) != 3 {
		t.Fatalf("want 3 instances, got %d", len(g.Instances))
	}
	seen := map[string]bool{}
	for _, i := range g.Instances {
		if string(i.LifecycleState) != "InService" {
			t.Errorf("%s: lifecycle %s, want InService", aws.ToString(i.InstanceId), string(i.LifecycleState))
		}
		seen[aws.ToString(i.AvailabilityZone)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("want one instance in each of 3 AZs, got %v", seen)
	}
	if len(e.reg.nodes) != 3 {
		t.Fatalf("want 3 registered nodes, got %d", len(e.reg.nodes))
	}
	for _, n := range e.reg.nodes {
		if n.Labels["eks.amazonaws.com/nodegroup"] != "nodegroup" || n.Labels["eks.amazonaws.com/nodegroup-image"] != e.recommended("1.36") {
			t.Errorf("node %s lacks EKS labels: %v", n.Name, n.Labels)
		}
		if !strings.HasPrefix(n.KubeletVersion, "v1.36.") || !strings.HasPrefix(n.ProviderID(), "aws:///us-west-2") {
			t.Errorf("node %s: kubelet %s providerID %s", n.Name, n.KubeletVersion, n.ProviderID())
		}
	}

	// Surge to 6: each AZ gets one more, as an ASG balances.
	_, err := e.asg.UpdateAutoScalingGroup(context.Background(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(6),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.acct.Step(context.Background(), e.reg, nil)
	perAZ := map[string]int{}
	pending := 0
	for _, i := range e.describe().AutoScalingGroups[0].Instances {
		perAZ[aws.ToString(i.AvailabilityZone)]++
		if string(i.LifecycleState) == "Pending" {
			pending++
		}
	}
	if pending != 3 || perAZ["us-west-2a"] != 2 || perAZ["us-west-2b"] != 2 || perAZ["us-west-2c"] != 2 {
		t.Fatalf("want 3 pending, 2 per AZ; got pending=%d %v", pending, perAZ)
	}
	if len(e.reg.nodes) != 3 {
		t.Fatalf("nodes registered before the boot delay: %d", len(e.reg.nodes))
	}
	e.settle()
	if len(e.reg.nodes) != 6 {
		t.Fatalf("want 6 nodes after boot, got %d", len(e.reg.nodes))
	}
}

// API reference, TerminateInstanceInAutoScalingGroup: without
// ShouldDecrementDesiredCapacity the group launches a replacement; with it,
// desired capacity goes down by one. Each shows as an activity
// (DescribeScalingActivities).
func TestTerminateWithAndWithoutDecrement(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.describe().AutoScalingGroups[0].Instances
	out, err := e.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: first[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(out.Activity.Description), aws.ToString(first[0].InstanceId)) {
		t.Fatalf("activity does not name the instance: %s", aws.ToString(out.Activity.Description))
	}
	_, err = e.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: first[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(false),
	})
	wantCode(t, err, "ScalingActivityInProgress")
	e.settle()
	g := e.describe().AutoScalingGroups[0]
	if aws.ToInt32(g.DesiredCapacity) != 3 || len(g.Instances) != 3 {
		t.Fatalf("without decrement: want desired 3 and a replacement (3 instances), got %d/%d", aws.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	for _, i := range g.Instances {
		if aws.ToString(i.InstanceId) == aws.ToString(first[0].InstanceId) {
			t.Fatal("terminated instance still in the group")
		}
	}
	if _, gone := e.reg.nodes[e.acct.instances[aws.ToString(first[0].InstanceId)].NodeName("us-west-2")]; gone {
		t.Fatal("terminated instance's node was not deregistered")
	}

	// With decrement at min size: refused.
	_, err = e.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: g.Instances[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	wantCode(t, err, "ValidationError")

	// With decrement above min: desired drops, nothing replaces it.
	if _, err := e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(e.group), MinSize: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: g.Instances[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	g = e.describe().AutoScalingGroups[0]
	if aws.ToInt32(g.DesiredCapacity) != 2 || len(g.Instances) != 2 {
		t.Fatalf("with decrement: want desired 2 and 2 instances, got %d/%d", aws.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	acts, err := e.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(e.group)})
	if err != nil {
		t.Fatal(err)
	}
	var launches, terms int
	for _, a := range acts.Activities {
		if a.StatusCode != types.ScalingActivityStatusCodeSuccessful {
			t.Errorf("activity %q: %s", aws.ToString(a.Description), a.StatusCode)
		}
		switch {
		case strings.HasPrefix(aws.ToString(a.Description), "Launching"):
			launches++
		case strings.HasPrefix(aws.ToString(a.Description), "Terminating"):
			terms++
		}
	}
	if launches != 4 || terms != 2 {
		t.Fatalf("want 4 launches and 2 terminations in the activity log, got %d and %d", launches, terms)
	}
}

// API reference, UpdateAutoScalingGroup and SetDesiredCapacity: an unknown
// group or a desired capacity above the maximum is a ValidationError, and
// so is TerminateInstanceInAutoScalingGroup of an instance in no group;
// DescribeAutoScalingGroups leaves unknown names out of its answer.
func TestAutoScalingBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("no-such-group"), DesiredCapacity: aws.Int32(1)})
	wantCode(t, err, "ValidationError")
	_, err = e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(7)})
	wantCode(t, err, "ValidationError")
	_, err = e.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(7)})
	wantCode(t, err, "ValidationError")
	_, err = e.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: aws.String("i-0000000000000dead"), ShouldDecrementDesiredCapacity: aws.Bool(false)})
	wantCode(t, err, "ValidationError")
	if g := e.describe().AutoScalingGroups[0]; aws.ToInt32(g.DesiredCapacity) != 3 || aws.ToInt32(g.MaxSize) != 6 {
		t.Fatalf("refused calls changed the group: desired %d max %d", aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MaxSize))
	}
	// Unknown names are left out, not an error, as in AWS.
	out, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"no-such-group"}})
	if err != nil || len(out.AutoScalingGroups) != 0 {
		t.Fatalf("want empty list, got %v, %v", out, err)
	}
}

// API reference, SuspendProcesses and ResumeProcesses (the process names
// of the User Guide's "Suspend and resume processes"; ResumeProcesses
// without names resumes all), and DescribeAutoScalingGroups' Filters with
// tag:<key>.
func TestSuspendResumeProcessesAndTagFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(e.group), ScalingProcesses: []string{"Launch", "AZRebalance"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	g := e.describe().AutoScalingGroups[0]
	if len(g.SuspendedProcesses) != 2 || len(g.Instances) != 3 {
		t.Fatalf("with Launch suspended: want 2 suspended processes and still 3 instances, got %d and %d", len(g.SuspendedProcesses), len(g.Instances))
	}
	if _, err := e.asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String(e.group)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if g := e.describe().AutoScalingGroups[0]; len(g.SuspendedProcesses) != 0 || len(g.Instances) != 4 {
		t.Fatalf("after resume: want no suspended process and 4 instances, got %d and %d", len(g.SuspendedProcesses), len(g.Instances))
	}
	_, err := e.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(e.group), ScalingProcesses: []string{"Bogus"}})
	wantCode(t, err, "ValidationError")

	out, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{Filters: []types.Filter{
		{Name: aws.String("tag:eks:cluster-name"), Values: []string{"eksworkshop-eksctl"}},
		{Name: aws.String("tag:eks:nodegroup-name"), Values: []string{"nodegroup"}},
	}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("tag filter: want the group, got %v, %v", out, err)
	}
}

// A launch without EC2 capacity fails its activity with
// InsufficientInstanceCapacity in StatusMessage (User Guide, "Troubleshoot
// Amazon EC2 Auto Scaling: EC2 instance launch failures"), and the group
// retries until capacity is back.
func TestInsufficientCapacityFailsTheLaunchActivity(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, az := range azs {
		e.acct.SetCapacity(az, 0)
	}
	if _, err := e.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	acts, err := e.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(e.group), MaxRecords: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts.Activities) != 1 || acts.Activities[0].StatusCode != types.ScalingActivityStatusCodeFailed || !strings.Contains(aws.ToString(acts.Activities[0].StatusMessage), "InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity") {
		t.Fatalf("want a failed launch for capacity, got %+v", acts.Activities)
	}
	if n := len(e.describe().AutoScalingGroups[0].Instances); n != 3 {
		t.Fatalf("want 3 instances while capacity is out, got %d", n)
	}
	e.acct.SetCapacity("us-west-2b", -1)
	e.settle()
	if n := len(e.describe().AutoScalingGroups[0].Instances); n != 4 {
		t.Fatalf("want the 4th instance once capacity returns, got %d", n)
	}
}

// The Auto Scaling API reference's common errors: Throttling, "Rate
// exceeded"; an injected fault answers once.
func TestInjectedThrottling(t *testing.T) {
	e := newEnv(t)
	e.acct.InjectFault(Fault{Service: "autoscaling", Action: "DescribeAutoScalingGroups", Code: "Throttling", Message: "Rate exceeded", Count: 1})
	_, err := e.asg.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	wantCode(t, err, "Throttling")
	if _, err := e.asg.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Fatalf("the fault was one-shot, yet: %v", err)
	}
}
