package awssim

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// API reference, CreateLaunchTemplateVersion: the new version starts from
// SourceVersion's data and the request's LaunchTemplateData overrides only
// what it names; DescribeLaunchTemplateVersions returns them.
func TestLaunchTemplateVersionsCopyTheSourceAndChangeOnlyTheAMI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	g := e.describe().AutoScalingGroups[0]
	ltID := g.LaunchTemplate.LaunchTemplateId
	target := e.recommended("1.37")

	created, err := e.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: ltID, SourceVersion: aws.String("1"), VersionDescription: aws.String("noderoll: 1.37"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(target)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt64(created.LaunchTemplateVersion.VersionNumber); n != 2 {
		t.Fatalf("want version 2, got %d", n)
	}

	out, err := e.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: ltID, Versions: []string{"1", "$Latest", "$Default"}})
	if err != nil {
		t.Fatal(err)
	}
	v1, latest, def := out.LaunchTemplateVersions[0], out.LaunchTemplateVersions[1], out.LaunchTemplateVersions[2]
	if aws.ToInt64(latest.VersionNumber) != 2 || aws.ToInt64(def.VersionNumber) != 1 || !aws.ToBool(def.DefaultVersion) {
		t.Fatalf("$Latest=%d $Default=%d", aws.ToInt64(latest.VersionNumber), aws.ToInt64(def.VersionNumber))
	}
	d1, d2 := v1.LaunchTemplateData, latest.LaunchTemplateData
	if aws.ToString(d2.ImageId) != target || aws.ToString(d1.ImageId) == target {
		t.Fatalf("image: v1 %s v2 %s", aws.ToString(d1.ImageId), aws.ToString(d2.ImageId))
	}
	ud, err := base64.StdEncoding.DecodeString(aws.ToString(d2.UserData))
	if err != nil || !strings.Contains(string(ud), "kind: NodeConfig") || aws.ToString(d1.UserData) != aws.ToString(d2.UserData) {
		t.Fatalf("user data not copied: %q", ud)
	}
	if len(d2.BlockDeviceMappings) != 1 || aws.ToInt32(d2.BlockDeviceMappings[0].Ebs.VolumeSize) != 80 || d2.BlockDeviceMappings[0].Ebs.VolumeType != ec2types.VolumeTypeGp3 {
		t.Fatalf("block devices not copied: %+v", d2.BlockDeviceMappings)
	}
	if d2.MetadataOptions == nil || d2.MetadataOptions.HttpTokens != ec2types.LaunchTemplateHttpTokensStateRequired || aws.ToInt32(d2.MetadataOptions.HttpPutResponseHopLimit) != 2 {
		t.Fatalf("metadata options not copied: %+v", d2.MetadataOptions)
	}
	if len(d2.TagSpecifications) != 2 || len(d2.TagSpecifications[0].Tags) != len(d1.TagSpecifications[0].Tags) || d2.InstanceType != "m5.large" || len(d2.SecurityGroupIds) != 1 {
		t.Fatalf("tags, type or security groups not copied: %+v", d2)
	}

	lts, err := e.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{aws.ToString(ltID)}})
	if err != nil || aws.ToInt64(lts.LaunchTemplates[0].LatestVersionNumber) != 2 || aws.ToInt64(lts.LaunchTemplates[0].DefaultVersionNumber) != 1 {
		t.Fatalf("describe templates: %+v %v", lts, err)
	}

	// Pointing the group at version 2 makes new instances boot the new AMI,
	// and EC2 says which template version each came from.
	if _, err := e.asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), DesiredCapacity: aws.Int32(4),
		LaunchTemplate: &autoscalingTemplate{LaunchTemplateId: ltID, Version: aws.String("2")},
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	insts, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:aws:autoscaling:groupName"), Values: []string{e.group}},
		{Name: aws.String("image-id"), Values: []string{target}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts.Reservations) != 1 {
		t.Fatalf("want 1 instance on the new AMI, got %d", len(insts.Reservations))
	}
	inst := insts.Reservations[0].Instances[0]
	if inst.State.Name != ec2types.InstanceStateNameRunning || aws.ToString(inst.Placement.AvailabilityZone) == "" || !strings.HasSuffix(aws.ToString(inst.PrivateDnsName), ".us-west-2.compute.internal") {
		t.Fatalf("instance: %+v", inst)
	}
	tags := map[string]string{}
	for _, tg := range inst.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["aws:ec2launchtemplate:version"] != "2" || tags["aws:ec2launchtemplate:id"] != aws.ToString(ltID) {
		t.Fatalf("launch template tags: %v", tags)
	}
}

// autoscalingTemplate keeps the test readable where both SDKs name a type alike.
type autoscalingTemplate = astypes.LaunchTemplateSpecification

// The EC2 API reference's error codes ("Error codes for the Amazon EC2
// API"): InvalidAMIID.NotFound and .Malformed,
// InvalidLaunchTemplateId.NotFound and .VersionNotFound,
// InvalidInstanceID.NotFound; refused calls change nothing.
func TestEC2BadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ltID := e.describe().AutoScalingGroups[0].LaunchTemplate.LaunchTemplateId
	_, err := e.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: ltID, SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String("ami-0123456789abcdef0")},
	})
	wantCode(t, err, "InvalidAMIID.NotFound")
	_, err = e.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: ltID, SourceVersion: aws.String("9"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(e.recommended("1.37"))},
	})
	wantCode(t, err, "InvalidLaunchTemplateId.VersionNotFound")
	_, err = e.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String("lt-0000000000000dead")})
	wantCode(t, err, "InvalidLaunchTemplateId.NotFound")
	_, err = e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000dead"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"not-an-ami"}})
	wantCode(t, err, "InvalidAMIID.Malformed")
	out, err := e.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: ltID})
	if err != nil || len(out.LaunchTemplateVersions) != 1 {
		t.Fatalf("refused calls created versions: %v %v", out, err)
	}
	imgs, err := e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{e.recommended("1.37")}})
	if err != nil || !strings.Contains(aws.ToString(imgs.Images[0].Name), "al2023-x86_64-standard-1.37") {
		t.Fatalf("describe images: %+v %v", imgs, err)
	}
}
