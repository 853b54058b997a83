package awssim

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
)

// A second managed group made through the SDK's CreateNodegroup, with the
// first group's subnets and node role: its launch template, Auto Scaling
// group and instances appear as the seeded group's did; bad requests get
// EKS's errors and change nothing; DeleteNodegroup takes it away.
func TestCreateNodegroupMakesAGroupAsEKSDoes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, err := e.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil {
		t.Fatal(err)
	}
	in := func() *eks.CreateNodegroupInput {
		return &eks.CreateNodegroupInput{
			ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("workers-b"),
			Subnets: first.Nodegroup.Subnets[:2], NodeRole: first.Nodegroup.NodeRole,
			ScalingConfig: &ekstypes.NodegroupScalingConfig{MinSize: aws.Int32(2), MaxSize: aws.Int32(4), DesiredSize: aws.Int32(2)},
			InstanceTypes: []string{"m5.large"}, AmiType: ekstypes.AMITypesAl2023X8664Standard, Version: aws.String("1.36"),
			Labels: map[string]string{"team": "b"},
		}
	}
	for _, c := range []struct {
		name   string
		mutate func(*eks.CreateNodegroupInput)
		code   string
	}{
		{"min above desired", func(i *eks.CreateNodegroupInput) { i.ScalingConfig.MinSize = aws.Int32(3) }, "InvalidParameterException"},
		{"desired 0 given (not EKS's default 2), below min 2", func(i *eks.CreateNodegroupInput) { i.ScalingConfig.DesiredSize = aws.Int32(0) }, "InvalidParameterException"},
		{"a subnet of no VPC here", func(i *eks.CreateNodegroupInput) { i.Subnets = []string{"subnet-0nope"} }, "InvalidParameterException"},
		{"newer than the cluster", func(i *eks.CreateNodegroupInput) { i.Version = aws.String("1.38") }, "InvalidParameterException"},
		{"the seeded group's name", func(i *eks.CreateNodegroupInput) { i.NodegroupName = aws.String("nodegroup") }, "ResourceInUseException"},
		{"no such cluster", func(i *eks.CreateNodegroupInput) { i.ClusterName = aws.String("nope") }, "ResourceNotFoundException"},
	} {
		i := in()
		c.mutate(i)
		_, err := e.eks.CreateNodegroup(ctx, i)
		t.Run(c.name, func(t *testing.T) { wantCode(t, err, c.code) })
	}
	list, err := e.eks.ListNodegroups(ctx, &eks.ListNodegroupsInput{ClusterName: aws.String("eksworkshop-eksctl")})
	if err != nil || !slices.Equal(list.Nodegroups, []string{"nodegroup"}) {
		t.Fatalf("refused creations left node groups %v (%v)", list.Nodegroups, err)
	}

	out, err := e.eks.CreateNodegroup(ctx, in())
	if err != nil {
		t.Fatal(err)
	}
	ng := out.Nodegroup
	if ng.Status != ekstypes.NodegroupStatusCreating || aws.ToString(ng.Version) != "1.36" || aws.ToString(ng.ReleaseVersion) == "" ||
		!slices.Equal(ng.Subnets, first.Nodegroup.Subnets[:2]) || ng.Labels["team"] != "b" || ng.LaunchTemplate != nil {
		t.Fatalf("created: status %s, version %s, release %s, subnets %v, labels %v, launch template %v", ng.Status, aws.ToString(ng.Version),
			aws.ToString(ng.ReleaseVersion), ng.Subnets, ng.Labels, ng.LaunchTemplate)
	}
	e.settle()
	asgName := aws.ToString(ng.Resources.AutoScalingGroups[0].Name)
	groups, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{asgName}})
	if err != nil || len(groups.AutoScalingGroups) != 1 {
		t.Fatalf("the group's Auto Scaling group %s: %v", asgName, err)
	}
	g := groups.AutoScalingGroups[0]
	if aws.ToInt32(g.DesiredCapacity) != 2 || len(g.Instances) != 2 || g.LaunchTemplate == nil {
		t.Fatalf("Auto Scaling group %s: desired %d, %d instances, template %v", asgName, aws.ToInt32(g.DesiredCapacity), len(g.Instances), g.LaunchTemplate)
	}
	for _, i := range g.Instances {
		if i.LifecycleState != "InService" || !slices.Contains([]string{"us-west-2a", "us-west-2b"}, aws.ToString(i.AvailabilityZone)) {
			t.Errorf("instance %s: %s in %s", aws.ToString(i.InstanceId), i.LifecycleState, aws.ToString(i.AvailabilityZone))
		}
	}
	list, err = e.eks.ListNodegroups(ctx, &eks.ListNodegroupsInput{ClusterName: aws.String("eksworkshop-eksctl")})
	if err != nil || !slices.Equal(list.Nodegroups, []string{"nodegroup", "workers-b"}) {
		t.Fatalf("node groups %v (%v)", list.Nodegroups, err)
	}

	del, err := e.eks.DeleteNodegroup(ctx, &eks.DeleteNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("workers-b")})
	if err != nil || del.Nodegroup.Status != ekstypes.NodegroupStatusDeleting {
		t.Fatalf("deleting: %v %+v", err, del)
	}
	e.settle()
	groups, err = e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{asgName}})
	if err != nil || len(groups.AutoScalingGroups) != 1 || len(groups.AutoScalingGroups[0].Instances) != 0 {
		t.Fatalf("after the deletion the Auto Scaling group still has instances: %v", err)
	}
	_, err = e.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("workers-b")})
	wantCode(t, err, "ResourceNotFoundException")
}
