package awssim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Amazon EKS User Guide, "Retrieve recommended Amazon Linux AMI IDs": the
// public parameters /aws/service/eks/optimized-ami/<version>/...; SSM API
// reference, GetParameter and GetParameters (ParameterNotFound, InvalidParameters).
func TestSSMPublishesEKSOptimizedAMIs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, minor := range SupportedMinors() {
		id, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/x86_64/standard/recommended/image_id")})
		if err != nil {
			t.Fatal(err)
		}
		img, ok := e.acct.Image(aws.ToString(id.Parameter.Value))
		if !ok || img.KubeMinor != minor || img.Family != "al2023" {
			t.Fatalf("%s: parameter points at %+v", minor, img)
		}
		rel, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/x86_64/standard/recommended/release_version")})
		if err != nil || aws.ToString(rel.Parameter.Value) != img.ReleaseVersion {
			t.Fatalf("%s: release version %v %v", minor, rel, err)
		}
		br, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/bottlerocket/aws-k8s-" + minor + "/x86_64/latest/image_id")})
		if err != nil {
			t.Fatal(err)
		}
		if img, ok := e.acct.Image(aws.ToString(br.Parameter.Value)); !ok || img.Family != "bottlerocket" {
			t.Fatalf("%s: bottlerocket parameter points at %+v", minor, img)
		}
	}
	_, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/1.99/amazon-linux-2023/x86_64/standard/recommended/image_id")})
	wantCode(t, err, "ParameterNotFound")
	many, err := e.ssm.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/aws/service/bottlerocket/aws-k8s-1.37/x86_64/latest/image_id", "/nope"}})
	if err != nil || len(many.Parameters) != 1 || len(many.InvalidParameters) != 1 {
		t.Fatalf("GetParameters: %+v %v", many, err)
	}
}

// Amazon EKS API reference, DescribeCluster, ListNodegroups and
// DescribeNodegroup (ResourceNotFoundException for unknown names).
func TestEKSDescribesTheClusterAndItsNodegroup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, err := e.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("eksworkshop-eksctl")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(c.Cluster.Version) != "1.37" || c.Cluster.CreatedAt == nil {
		t.Fatalf("cluster: %+v", c.Cluster)
	}
	ng, err := e.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil {
		t.Fatal(err)
	}
	n := ng.Nodegroup
	if aws.ToString(n.Version) != "1.36" || len(n.Resources.AutoScalingGroups) != 1 || aws.ToString(n.Resources.AutoScalingGroups[0].Name) != e.group {
		t.Fatalf("nodegroup: version %s resources %+v", aws.ToString(n.Version), n.Resources)
	}
	if aws.ToInt32(n.ScalingConfig.DesiredSize) != 3 || aws.ToInt32(n.UpdateConfig.MaxUnavailable) != 1 || n.LaunchTemplate == nil {
		t.Fatalf("nodegroup scaling %+v update %+v template %+v", n.ScalingConfig, n.UpdateConfig, n.LaunchTemplate)
	}
	list, err := e.eks.ListNodegroups(ctx, &eks.ListNodegroupsInput{ClusterName: aws.String("eksworkshop-eksctl")})
	if err != nil || len(list.Nodegroups) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	_, err = e.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException")
	_, err = e.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException")
}
