package awssim

import (
	"context"
	"errors"
	"testing"

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
