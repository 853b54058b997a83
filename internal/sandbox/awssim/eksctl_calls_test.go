package awssim

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// The calls eksctl's `upgrade nodegroup` and `get cluster` make before
// and around EKS's update, decoded by the SDK's own models: what eksctl
// reads of each answer is there.

const testCA = "-----BEGIN CERTIFICATE-----\nMIIBsandbox\n-----END CERTIFICATE-----\n"

func TestDescribeClusterAnswersAsEKSDoesWithTheAPIServersCA(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.acct.SetClusterCA("eksworkshop-eksctl", []byte(testCA)); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.SetClusterCA("nope", []byte(testCA)); err == nil {
		t.Error("a CA set on a cluster the account lacks")
	}
	out, err := e.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String("eksworkshop-eksctl")})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Cluster
	ca, err := base64.StdEncoding.DecodeString(aws.ToString(c.CertificateAuthority.Data))
	if err != nil || string(ca) != testCA {
		t.Errorf("certificateAuthority.data %q (%v), want the API server's CA base64-encoded", aws.ToString(c.CertificateAuthority.Data), err)
	}
	if aws.ToString(c.Endpoint) != "https://127.0.0.1:6443" || c.Status != ekstypes.ClusterStatusActive || aws.ToString(c.Version) != "1.37" ||
		!strings.HasPrefix(aws.ToString(c.PlatformVersion), "eks.") || !strings.HasPrefix(aws.ToString(c.Arn), "arn:aws:eks:us-west-2:") ||
		!strings.HasPrefix(aws.ToString(c.RoleArn), "arn:aws:iam::") || c.CreatedAt == nil {
		t.Errorf("cluster: endpoint %s status %s version %s platform %s arn %s role %s", aws.ToString(c.Endpoint), c.Status, aws.ToString(c.Version),
			aws.ToString(c.PlatformVersion), aws.ToString(c.Arn), aws.ToString(c.RoleArn))
	}
	v := c.ResourcesVpcConfig
	if v == nil || !strings.HasPrefix(aws.ToString(v.VpcId), "vpc-") || len(v.SubnetIds) != 3 || !strings.HasPrefix(aws.ToString(v.ClusterSecurityGroupId), "sg-") || !v.EndpointPublicAccess {
		t.Errorf("resourcesVpcConfig %+v", v)
	}
	if n := c.KubernetesNetworkConfig; n == nil || aws.ToString(n.ServiceIpv4Cidr) != "10.100.0.0/16" || n.IpFamily != ekstypes.IpFamilyIpv4 {
		t.Errorf("kubernetesNetworkConfig %+v", n)
	}
	if c.Identity == nil || c.Identity.Oidc == nil || !strings.HasPrefix(aws.ToString(c.Identity.Oidc.Issuer), "https://oidc.eks.us-west-2.amazonaws.com/id/") {
		t.Errorf("identity %+v", c.Identity)
	}
	if c.AccessConfig == nil || c.AccessConfig.AuthenticationMode != ekstypes.AuthenticationModeApiAndConfigMap ||
		c.UpgradePolicy == nil || c.UpgradePolicy.SupportType != ekstypes.SupportTypeStandard || c.Tags["alpha.eksctl.io/cluster-name"] != "eksworkshop-eksctl" ||
		c.Health == nil || len(c.Health.Issues) != 0 || c.ConnectorConfig != nil {
		t.Errorf("access %+v upgrade policy %+v tags %v health %+v connector %+v", c.AccessConfig, c.UpgradePolicy, c.Tags, c.Health, c.ConnectorConfig)
	}
}

func TestDescribeClusterVersionsListsEachMinorsSupport(t *testing.T) {
	e := newEnv(t) // the clock: 2026-11-24
	ctx := context.Background()
	out, err := e.eks.DescribeClusterVersions(ctx, &eks.DescribeClusterVersionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ekstypes.VersionStatus{}
	def := ""
	for _, v := range out.ClusterVersions {
		got[aws.ToString(v.ClusterVersion)] = v.VersionStatus
		if v.DefaultVersion {
			def = aws.ToString(v.ClusterVersion)
		}
		if v.ReleaseDate == nil || v.EndOfStandardSupportDate == nil || !v.EndOfStandardSupportDate.After(*v.ReleaseDate) || v.Status == "" {
			t.Errorf("version %s: %+v", aws.ToString(v.ClusterVersion), v)
		}
	}
	want := map[string]ekstypes.VersionStatus{
		"1.32": ekstypes.VersionStatusExtendedSupport, "1.33": ekstypes.VersionStatusExtendedSupport,
		"1.34": ekstypes.VersionStatusStandardSupport, "1.35": ekstypes.VersionStatusStandardSupport,
		"1.36": ekstypes.VersionStatusStandardSupport, "1.37": ekstypes.VersionStatusStandardSupport,
	}
	if len(got) != len(want) || def != "1.37" {
		t.Fatalf("versions %v, default %q; want %v, default 1.37", got, def, want)
	}
	for m, st := range want {
		if got[m] != st {
			t.Errorf("%s: %s, want %s", m, got[m], st)
		}
	}
	only, err := e.eks.DescribeClusterVersions(ctx, &eks.DescribeClusterVersionsInput{DefaultOnly: aws.Bool(true)})
	if err != nil || len(only.ClusterVersions) != 1 || aws.ToString(only.ClusterVersions[0].ClusterVersion) != "1.37" {
		t.Errorf("defaultOnly: %+v %v", only, err)
	}
	ext, err := e.eks.DescribeClusterVersions(ctx, &eks.DescribeClusterVersionsInput{VersionStatus: ekstypes.VersionStatusExtendedSupport})
	if err != nil || len(ext.ClusterVersions) != 2 {
		t.Errorf("versionStatus EXTENDED_SUPPORT: %+v %v", ext, err)
	}
}

// The sandbox's groups were made by no stack: CloudFormation lists none,
// and a named one does not exist, in CloudFormation's words.
func TestCloudFormationHasNoStacks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfn := cloudformation.NewFromConfig(aws.Config{Region: "us-west-2", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSANDBOX", "sandbox-secret", "")})
	list, err := cfn.ListStacks(ctx, &cloudformation.ListStacksInput{StackStatusFilter: []cfntypes.StackStatus{cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete}})
	if err != nil || list.StackSummaries == nil || len(list.StackSummaries) != 0 {
		t.Fatalf("ListStacks: %+v %v", list, err)
	}
	_, err = cfn.ListStacks(ctx, &cloudformation.ListStacksInput{StackStatusFilter: []cfntypes.StackStatus{"DONE"}})
	wantCode(t, err, "ValidationError")
	all, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{})
	if err != nil || len(all.Stacks) != 0 {
		t.Fatalf("DescribeStacks: %+v %v", all, err)
	}
	_, err = cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("eksctl-eksworkshop-eksctl-nodegroup-nodegroup")})
	wantCode(t, err, "ValidationError")
	if err == nil || !strings.Contains(err.Error(), "Stack with id eksctl-eksworkshop-eksctl-nodegroup-nodegroup does not exist") {
		t.Errorf("a named stack: %v", err)
	}
	who, err := sts.NewFromConfig(aws.Config{Region: "us-west-2", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSANDBOX", "sandbox-secret", "")}).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Account) != "123456789012" || aws.ToString(who.Arn) == "" || aws.ToString(who.UserId) == "" {
		t.Fatalf("GetCallerIdentity: %+v %v", who, err)
	}
}
