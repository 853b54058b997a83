package awssim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// A throttled account answers as each service does (the AWS API references'
// common errors: Auto Scaling Throttling, EC2 RequestLimitExceeded, EKS and
// SSM ThrottlingException), and the SDK's retryer takes every one of them as
// throttling (so it backs off and retries; an upgrade under throttling is
// test/e2e's). Each throttled call is in the log.
func TestThrottlingAnswersAsEachServiceAndTheSDKTakesItSo(t *testing.T) {
	e := newEnv(t)
	e.acct.SetThrottle(1)
	ctx := context.Background()
	throttles := retry.IsErrorThrottles(retry.DefaultThrottles)
	for _, c := range []struct {
		service, code string
		call          func() error
	}{
		{"autoscaling", "Throttling", func() error {
			_, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
			return err
		}},
		{"ec2", "RequestLimitExceeded", func() error {
			_, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}},
		{"eks", "ThrottlingException", func() error {
			_, err := e.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("eksworkshop-eksctl")})
			return err
		}},
		{"ssm", "ThrottlingException", func() error {
			_, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/image_id")})
			return err
		}},
	} {
		err := c.call()
		wantCode(t, err, c.code)
		var apiErr smithy.APIError
		errors.As(err, &apiErr)
		if throttles.IsErrorThrottle(apiErr) != aws.TrueTernary {
			t.Errorf("%s: the SDK does not take %s as throttling", c.service, c.code)
		}
	}
	logged := 0
	for _, call := range e.acct.Calls("") {
		if call.Error == "Throttling" || call.Error == "RequestLimitExceeded" || call.Error == "ThrottlingException" {
			logged++
		}
	}
	if logged != 4 {
		t.Fatalf("%d throttled calls in the log, want 4", logged)
	}

	// A share of calls only, and none once lifted.
	e.acct.SetThrottle(0.3)
	failed := 0
	for k := 0; k < 200; k++ {
		if _, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
			failed++
		}
	}
	if failed < 30 || failed > 90 {
		t.Fatalf("%d of 200 calls throttled at 30%%", failed)
	}
	e.acct.SetThrottle(0)
	for k := 0; k < 50; k++ {
		if _, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
			t.Fatalf("throttling lifted, a call failed: %v", err)
		}
	}
}

// A bad boot runs and is InService to the group, its launch activity
// successful, but registers no node; the instances after it join as usual.
func TestABadBootRunsWithoutANode(t *testing.T) {
	e := newEnv(t)
	e.acct.BadBoots(1)
	if _, err := e.asg.UpdateAutoScalingGroup(context.Background(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(5),
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	inService := 0
	for _, i := range e.describe().AutoScalingGroups[0].Instances {
		if string(i.LifecycleState) == "InService" {
			inService++
		}
	}
	if inService != 5 || len(e.reg.nodes) != 4 {
		t.Fatalf("%d instances in service with %d nodes; want 5 with 4 (one bad boot)", inService, len(e.reg.nodes))
	}
	// Terminated, it leaves as any other; its replacement joins.
	var bad string
	for id, i := range e.acct.instances {
		if i.NoKubelet {
			bad = id
		}
	}
	if _, err := e.asg.TerminateInstanceInAutoScalingGroup(context.Background(), &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(bad), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.settle()
	if len(e.reg.nodes) != 5 {
		t.Fatalf("after replacing the bad boot: %d nodes, want 5", len(e.reg.nodes))
	}
}

// An instance that dies (EC2 ends it, not its group) leaves the group with
// the health check's cause, its node goes, and the group launches another.
func TestAnInstanceThatDiesIsReplacedByItsGroup(t *testing.T) {
	e := newEnv(t)
	victim := aws.ToString(e.describe().AutoScalingGroups[0].Instances[0].InstanceId)
	if err := e.acct.KillInstance(victim); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.KillInstance(victim); err == nil {
		t.Fatal("killing an instance already shutting down was accepted")
	}
	if err := e.acct.KillInstance("i-nope"); err == nil {
		t.Fatal("killing an unknown instance was accepted")
	}
	e.settle()
	e.settle()
	ids := map[string]bool{}
	for _, i := range e.describe().AutoScalingGroups[0].Instances {
		ids[aws.ToString(i.InstanceId)] = true
	}
	if len(ids) != 3 || ids[victim] || len(e.reg.nodes) != 3 {
		t.Fatalf("after the death: instances %v, %d nodes; want 3 others and 3 nodes", ids, len(e.reg.nodes))
	}
	acts, err := e.asg.DescribeScalingActivities(context.Background(), &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(e.group)})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range acts.Activities {
		if strings.Contains(aws.ToString(a.Description), victim) && strings.Contains(aws.ToString(a.Cause), "EC2 health check") {
			found = true
		}
	}
	if !found {
		t.Fatal("no activity says the instance left on a health check")
	}
}

// Slow scaling: a launch and a termination each take the extra time, their
// activities InProgress meanwhile, as a group with lifecycle hooks shows;
// off again, the next ones take the usual time.
func TestSlowScalingKeepsActivitiesInProgress(t *testing.T) {
	e := newEnv(t) // boot 20s, shutdown 5s
	e.acct.SlowScaling(2 * time.Minute)
	if _, err := e.asg.UpdateAutoScalingGroup(context.Background(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(4),
	}); err != nil {
		t.Fatal(err)
	}
	inProgress := func() int {
		out, err := e.asg.DescribeScalingActivities(context.Background(), &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(e.group)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range out.Activities {
			if a.StatusCode == "InProgress" {
				n++
			}
		}
		return n
	}
	step := func(d time.Duration) {
		e.acct.Step(context.Background(), e.reg, nil)
		e.clock.Step(d)
		e.acct.Step(context.Background(), e.reg, nil)
	}
	step(90 * time.Second) // past the usual boot, not past boot + 2m
	if len(e.reg.nodes) != 3 || inProgress() != 1 {
		t.Fatalf("90s into a slow launch: %d nodes, %d activities in progress; want 3 and 1", len(e.reg.nodes), inProgress())
	}
	step(60 * time.Second) // 150s: past 20s + 2m
	if len(e.reg.nodes) != 4 || inProgress() != 0 {
		t.Fatalf("after the slow launch: %d nodes, %d activities in progress; want 4 and 0", len(e.reg.nodes), inProgress())
	}
	e.acct.SlowScaling(0)
	if _, err := e.asg.UpdateAutoScalingGroup(context.Background(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(5),
	}); err != nil {
		t.Fatal(err)
	}
	step(25 * time.Second)
	if len(e.reg.nodes) != 5 {
		t.Fatalf("with slow scaling off a launch took more than its boot: %d nodes, want 5", len(e.reg.nodes))
	}
}
