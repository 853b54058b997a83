package awssim

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DescribeImages honours Owners and Filters, wildcards included, as the EC2
// API reference describes them (DescribeImages: Owner.N, Filter.N; "You can
// use a wildcard (*) ... and (?)"): a name filter for one minor's AL2023
// releases returns exactly those, not the whole catalog.
func TestDescribeImagesHonoursOwnersAndFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	count := func(in *ec2.DescribeImagesInput) int {
		t.Helper()
		out, err := e.ec2.DescribeImages(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Images)
	}
	all := count(&ec2.DescribeImagesInput{})
	if all < 10 {
		t.Fatalf("catalog of %d images: too small to show filtering", all)
	}
	name := &ec2.DescribeImagesInput{Owners: []string{"amazon"}, Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"amazon-eks-node-al2023-x86_64-standard-1.37-*"}}}}
	if n := count(name); n != 2 {
		t.Errorf("a name filter matching the two 1.37 releases returned %d images", n)
	}
	if n := count(&ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"amazon-eks-node-al2023-x86_64-standard-1.3?-v20261020"}}}}); n != 5 {
		t.Errorf("? matches one character: want the 5 minors' October releases, got %d", n)
	}
	if n := count(&ec2.DescribeImagesInput{Owners: []string{"self"}}); n != 0 {
		t.Errorf("Owners self: the account owns no image, got %d", n)
	}
	if n := count(&ec2.DescribeImagesInput{Owners: []string{publicImageOwner}}); n != all {
		t.Errorf("Owners by account ID: %d of %d", n, all)
	}
	arm := &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("architecture"), Values: []string{"arm64"}}, {Name: aws.String("name"), Values: []string{"*-1.37-*"}}}}
	if n := count(arm); n != 6 { // AL2023 standard and NVIDIA, two releases each, and two Bottlerocket
		t.Errorf("architecture arm64 and a 1.37 name: want the 6 such images, got %d", n)
	}
	if n := count(&ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("platform"), Values: []string{"windows"}}, {Name: aws.String("name"), Values: []string{"*-1.37-*"}}}}); n != 2 {
		t.Errorf("platform windows and a 1.37 name: want Core and Full, got %d", n)
	}
	_, err := e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("colour"), Values: []string{"red"}}}})
	wantCode(t, err, "InvalidParameterValue")
}

// DescribeInstances pages by MaxResults (5 to 1000) and NextToken, and
// refuses MaxResults with InstanceIds, as the EC2 API reference says.
func TestDescribeInstancesPagesBeyondOnePage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(600), DesiredCapacity: aws.Int32(600)}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	seen := map[string]bool{}
	pages := 0
	pager := ec2.NewDescribeInstancesPaginator(e.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(100)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				if seen[aws.ToString(i.InstanceId)] {
					t.Fatalf("instance %s on two pages", aws.ToString(i.InstanceId))
				}
				seen[aws.ToString(i.InstanceId)] = true
			}
		}
	}
	if len(seen) != 600 || pages != 6 {
		t.Fatalf("%d instances on %d pages; want 600 on 6", len(seen), pages)
	}
	_, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(3)})
	wantCode(t, err, "InvalidParameterValue")
	_, err = e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(10), InstanceIds: []string{"i-0123"}})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{NextToken: aws.String("groups-5")})
	wantCode(t, err, "InvalidParameterValue")
}

// DescribeAutoScalingGroups pages by MaxRecords (default 50, at most 100)
// and NextToken; DescribeScalingActivities likewise (default and at most
// 100), per the Auto Scaling API reference.
func TestAutoScalingListsPageBeyondOnePage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.recommended("1.36")
	for k := 0; k < 119; k++ {
		if _, err := e.acct.CreateNodeGroup(GroupSpec{Cluster: "eksworkshop-eksctl", Name: fmt.Sprintf("ng-%03d", k), AZs: azs, Min: 0, Max: 1, Desired: 0, InstanceType: "m5.large", ImageID: img}); err != nil {
			t.Fatal(err)
		}
	}
	var groups, pages int
	pager := autoscaling.NewDescribeAutoScalingGroupsPaginator(e.asg, &autoscaling.DescribeAutoScalingGroupsInput{})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		groups += len(page.AutoScalingGroups)
	}
	if groups != 120 || pages != 3 {
		t.Fatalf("%d groups on %d pages; want 120 on 3 (50 a page by default)", groups, pages)
	}
	_, err := e.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(101)})
	wantCode(t, err, "ValidationError")
	_, err = e.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{NextToken: aws.String("nonsense")})
	wantCode(t, err, "ValidationError")
}
