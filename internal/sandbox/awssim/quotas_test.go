package awssim

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go"
)

// EC2's vCPU quotas as Service Quotas' GetServiceQuota answers them
// (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html),
// instance types' vCPUs as DescribeInstanceTypes' VCpuInfo, and a launch
// past a quota failing as EC2's VcpuLimitExceeded
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits).
func TestVCPUQuotasAreAnsweredAndEnforced(t *testing.T) {
	e := newEnv(t) // 3 m5.large: 6 vCPUs of the standard On-Demand quota
	ctx := context.Background()
	q, err := e.quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(QuotaOnDemandStandard)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToFloat64(q.Quota.Value) != 10000 || !strings.HasPrefix(aws.ToString(q.Quota.QuotaName), "Running On-Demand Standard") {
		t.Fatalf("quota %s: %v %q", QuotaOnDemandStandard, aws.ToFloat64(q.Quota.Value), aws.ToString(q.Quota.QuotaName))
	}
	_, err = e.quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String("L-00000000")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NoSuchResourceException" {
		t.Fatalf("an unknown quota: %v", err)
	}
	types, err := e.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"m5.large", "p4d.24xlarge"}})
	if err != nil {
		t.Fatal(err)
	}
	vcpus := map[string]int32{}
	for _, it := range types.InstanceTypes {
		vcpus[string(it.InstanceType)] = aws.ToInt32(it.VCpuInfo.DefaultVCpus)
	}
	if vcpus["m5.large"] != 2 || vcpus["p4d.24xlarge"] != 96 {
		t.Fatalf("vCPUs %v", vcpus)
	}

	if err := e.acct.SetQuota(QuotaOnDemandStandard, 10); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.SetQuota("L-00000000", 1); err == nil {
		t.Fatal("an unknown quota was set")
	}
	if _, err := e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(6), DesiredCapacity: aws.Int32(6),
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if len(e.reg.nodes) != 5 {
		t.Fatalf("%d nodes under a 10 vCPU quota of 2 vCPU instances; want 5", len(e.reg.nodes))
	}
	acts, err := e.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(e.group)})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts.Activities) == 0 || acts.Activities[0].StatusCode != "Failed" || !strings.Contains(aws.ToString(acts.Activities[0].StatusMessage), "VcpuLimitExceeded") {
		t.Fatalf("the launch past the quota did not fail as EC2's does: %+v", acts.Activities[0])
	}
}
