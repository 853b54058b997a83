package aws

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
	"github.com/noderoll/noderoll/internal/terms"
)

// newProvider serves a fresh simulated account and returns a provider that
// reaches it through the real SDK clients, plus the account to drive.
func newProvider(t *testing.T) (*Provider, *awssim.Account) {
	t.Helper()
	return newProviderWithClock(t, clock.RealClock{})
}

func newProviderWithClock(t *testing.T, clk clock.Clock) (*Provider, *awssim.Account) {
	t.Helper()
	acct := awssim.NewAccount("us-west-2", clk, awssim.Delays{})
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	t.Cleanup(srv.Close)
	p, err := New(context.Background(), Options{Region: "us-west-2", Endpoint: srv.URL, AccessKeyID: "AKID", SecretAccessKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	return p, acct
}

func seed(t *testing.T, acct *awssim.Account, managed bool) {
	t.Helper()
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
	if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: "ng", Managed: managed, AZs: []string{"us-west-2a", "us-west-2b"}, Min: 2, Max: 2, Desired: 2, InstanceType: "m5.large", ImageID: ami}); err != nil {
		t.Fatal(err)
	}
	acct.Step(context.Background(), nil, nil)
	time.Sleep(time.Millisecond)
	acct.Step(context.Background(), nil, nil)
}

func TestNodeGroupManagedAndSelfManaged(t *testing.T) {
	for _, managed := range []bool{true, false} {
		p, acct := newProvider(t)
		seed(t, acct, managed)
		ctx := context.Background()
		g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
		if err != nil {
			t.Fatalf("managed=%v: %v", managed, err)
		}
		if g.Managed != managed || g.Desired != 2 || len(g.Instances) != 2 || len(g.AZs) != 2 || g.TemplateVersion != 1 || g.ImageID == "" {
			t.Fatalf("managed=%v: %+v", managed, g)
		}
		for _, i := range g.Instances {
			if i.ImageID != g.ImageID || i.NodeName == "" || i.Lifecycle != "InService" {
				t.Fatalf("managed=%v: instance %+v", managed, i)
			}
		}
		refs, err := p.ListNodeGroups(ctx, "c1")
		if err != nil || len(refs) != 1 || refs[0].Name != "ng" {
			t.Fatalf("managed=%v: list %v %v", managed, refs, err)
		}
		if _, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "nope"}); !cloud.IsNotFound(err) {
			t.Fatalf("managed=%v: unknown group: %v", managed, err)
		}
		if _, err := p.Cluster(ctx, "nope"); !cloud.IsNotFound(err) {
			t.Fatalf("unknown cluster: %v", err)
		}
	}
}

func TestEnsureTemplateVersionIsIdempotent(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ctx := context.Background()
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	img, err := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37"})
	if err != nil || img.KubeMinor != "1.37" {
		t.Fatalf("resolve: %+v %v", img, err)
	}
	v, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, img.ID, "to 1.37")
	if err != nil || v != 2 {
		t.Fatalf("first ensure: %d %v", v, err)
	}
	// An interrupted run that calls again reuses the version it made.
	if again, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, img.ID, "to 1.37"); err != nil || again != 2 {
		t.Fatalf("second ensure: %d %v", again, err)
	}
	if same, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, g.ImageID, "no change"); err != nil || same != 1 {
		t.Fatalf("ensure with the source's own AMI: %d %v", same, err)
	}
	if got, err := p.TemplateImage(ctx, g.TemplateID, 2); err != nil || got != img.ID {
		t.Fatalf("template image: %s %v", got, err)
	}
	if _, err := p.TemplateImage(ctx, g.TemplateID, 9); !cloud.IsNotFound(err) {
		t.Fatalf("missing version: %v", err)
	}
}

func TestTerminateInstanceIsIdempotent(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ctx := context.Background()
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	id := g.Instances[0].ID
	for k := 0; k < 2; k++ { // the second call meets ScalingActivityInProgress
		if err := p.TerminateInstance(ctx, id, false); err != nil {
			t.Fatalf("terminate #%d: %v", k+1, err)
		}
	}
	acct.Step(ctx, nil, nil)
	if err := p.TerminateInstance(ctx, id, false); err != nil { // gone from the group
		t.Fatalf("terminate after it left: %v", err)
	}
	n := 0
	for _, a := range acct.Activities() {
		if a.Description == "Terminating EC2 instance: "+id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("instance terminated %d times, want once", n)
	}
}

// TerminationTimes reads the group's past terminations off its scaling
// activities: each from its start until the instance was gone, newest
// first, launches and terminations still under way left out.
func TestTerminationTimesAreTheGroupsPastTerminations(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	acct := awssim.NewAccount("us-west-2", clk, awssim.Delays{Shutdown: 3 * time.Second})
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	t.Cleanup(srv.Close)
	p, err := New(context.Background(), Options{Region: "us-west-2", Endpoint: srv.URL, AccessKeyID: "AKID", SecretAccessKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, acct, false)
	ctx := context.Background()
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if ts, err := p.TerminationTimes(ctx, g, 10); err != nil || len(ts) != 0 {
		t.Fatalf("a group that terminated nothing: %v, %v", ts, err)
	}
	// The first instance takes the account's shutdown delay; the second is
	// still shutting down when the times are read.
	if err := p.TerminateInstance(ctx, g.Instances[0].ID, false); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		clk.Step(time.Second)
		acct.Step(ctx, nil, nil)
	}
	if err := p.TerminateInstance(ctx, g.Instances[1].ID, false); err != nil {
		t.Fatal(err)
	}
	ts, err := p.TerminationTimes(ctx, g, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0] != 3*time.Second {
		t.Fatalf("want the one finished termination, 3s; got %v", ts)
	}
	for range 4 {
		clk.Step(time.Second)
		acct.Step(ctx, nil, nil)
	}
	if ts, _ = p.TerminationTimes(ctx, g, 1); len(ts) != 1 {
		t.Fatalf("at most the limit: %v", ts)
	}
}

func TestResolveImage(t *testing.T) {
	p, _ := newProvider(t)
	ctx := context.Background()
	rel, err := p.ResolveImage(ctx, cloud.ImageQuery{ReleaseVersion: "1.36.5-20261020"})
	if err != nil || rel.KubeMinor != "1.36" {
		t.Fatalf("release version: %+v %v", rel, err)
	}
	br, err := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.35", Family: "bottlerocket"})
	if err != nil || br.KubeMinor != "1.35" {
		t.Fatalf("bottlerocket: %+v %v", br, err)
	}
	for _, q := range []cloud.ImageQuery{{KubernetesVersion: "1.99"}, {ImageID: "ami-0123456789abcdef0"}, {ReleaseVersion: "1.37.2-20000101"}} {
		if _, err := p.ResolveImage(ctx, q); !cloud.IsNotFound(err) {
			t.Errorf("%+v: want not found, got %v", q, err)
		}
	}
	if _, err := p.ResolveImage(ctx, cloud.ImageQuery{ReleaseVersion: "latest"}); err == nil || cloud.IsNotFound(err) {
		t.Errorf("malformed release version: %v", err)
	}
}

// TestLaunchFailuresSayWhyInstancesDoNotCome: the group retries a failed
// launch every few seconds, so one cause fills many activities; each cause
// is said once, newest first, and causes on later pages of
// DescribeScalingActivities (100 a page) are not lost.
func TestLaunchFailuresSayWhyInstancesDoNotCome(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	p, acct := newProviderWithClock(t, clk)
	seed(t, acct, true)
	ctx := context.Background()
	before := clk.Now().Add(-time.Second)
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if f, err := p.LaunchFailures(ctx, g, before); err != nil || len(f) != 0 {
		t.Fatalf("a healthy group: failures %v, %v", f, err)
	}
	for _, az := range g.AZs {
		acct.SetCapacity(az, 0)
	}
	size := 4
	if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{Max: &size, Desired: &size}); err != nil {
		t.Fatal(err)
	}
	retry := func(n int) {
		for k := 0; k < n; k++ { // every retry fails the same way
			acct.Step(ctx, nil, nil)
			clk.Step(6 * time.Second)
		}
	}
	retry(3)
	// Then the group launches a bigger type, which fails too, 110 times.
	out, err := p.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(g.TemplateID), SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{InstanceType: ec2types.InstanceTypeM5Xlarge},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := aws.ToInt64(out.LaunchTemplateVersion.VersionNumber)
	if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
		t.Fatal(err)
	}
	retry(110)
	failed := 0
	for _, a := range acct.Activities() {
		if a.Status == "Failed" {
			failed++
		}
	}
	if failed < 113 {
		t.Fatalf("the account recorded %d failed launches, want at least 113: the test would not show dedup and paging", failed)
	}
	f, err := p.LaunchFailures(ctx, g, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 2 || !strings.Contains(f[0], "sufficient m5.xlarge capacity") || !strings.Contains(f[1], "sufficient m5.large capacity") {
		t.Fatalf("want each cause once, newest first, from every page; got %q", f)
	}
	if f, _ := p.LaunchFailures(ctx, g, clk.Now().Add(time.Minute)); len(f) != 0 {
		t.Fatalf("failures before `since` are not the caller's: %q", f)
	}
}

// TestALostAnswerCreatesOneTemplateVersion: EC2 creates the version but its
// answer never arrives, and the call gives up. Before the rerun someone else
// adds a version, so the new one is no longer $Latest; the rerun's client
// token, derived from what the version is, still finds it instead of
// creating a copy. (Within one call the SDK's own token covers its retries.)
func TestALostAnswerCreatesOneTemplateVersion(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ctx := context.Background()
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	img, err := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37"})
	if err != nil {
		t.Fatal(err)
	}
	acct.InjectFault(awssim.Fault{Service: "ec2", Action: "CreateLaunchTemplateVersion", After: true, DelaySeconds: 5})
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = p.EnsureTemplateVersion(short, g.TemplateID, 1, img.ID, "to 1.37")
	cancel()
	if err == nil {
		t.Fatal("the call whose answer never came succeeded")
	}
	if _, err := p.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(g.TemplateID), SourceVersion: aws.String("1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{KeyName: aws.String("someone-else")},
	}); err != nil {
		t.Fatal(err)
	}
	v, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, img.ID, "to 1.37")
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(g.TemplateID)})
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 || len(out.LaunchTemplateVersions) != 3 {
		t.Fatalf("got version %d and %d versions in all; want version 2 (the lost one) and no copy of it", v, len(out.LaunchTemplateVersions))
	}
}

// TestAJustLaunchedInstanceEC2DoesNotKnowYetIsRetried: EC2 answers
// InvalidInstanceID.NotFound for an instance the group just launched, for a
// moment; describing the group waits that out instead of failing the run.
func TestAJustLaunchedInstanceEC2DoesNotKnowYetIsRetried(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, false)
	acct.InjectFault(awssim.Fault{Service: "ec2", Action: "DescribeInstances", Code: "InvalidInstanceID.NotFound", Message: "The instance ID 'i-0new' does not exist", Count: 2})
	g, err := p.NodeGroup(context.Background(), cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Instances) != 2 || g.Instances[0].ImageID == "" || g.Instances[1].ImageID == "" {
		t.Fatalf("instances not described after the retries: %+v", g.Instances)
	}
	if n := len(acct.Calls("DescribeInstances")); n != 3 {
		t.Fatalf("want 3 DescribeInstances calls (2 refused, 1 answered), got %d", n)
	}
}

// A group read on every poll describes each of its instances once: what
// the engine reads of one (image, node name, launch time) never changes.
// A new instance is described, alone, at the first read that sees it.
func TestAGroupsInstancesAreDescribedOnce(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, false)
	ctx := context.Background()
	ref := cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}
	first, err := p.NodeGroup(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.NodeGroup(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(acct.Calls("DescribeInstances")); n != 1 {
		t.Fatalf("two reads of a group of 2 asked DescribeInstances %d times, want 1", n)
	}
	if fmt.Sprint(first.Instances) != fmt.Sprint(again.Instances) {
		t.Fatalf("the second read differs:\n%+v\n%+v", first.Instances, again.Instances)
	}
	three, four := 3, 4
	if err := p.UpdateGroup(ctx, first, cloud.GroupUpdate{Max: &four, Desired: &three}); err != nil {
		t.Fatal(err)
	}
	acct.Step(ctx, nil, nil) // the group launches its third instance
	g, err := p.NodeGroup(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Instances) != 3 {
		t.Fatalf("the group did not grow to 3: %+v", g.Instances)
	}
	for _, i := range g.Instances {
		if i.ImageID == "" || i.NodeName == "" || i.Launched.IsZero() {
			t.Errorf("instance %+v read without its facts", i)
		}
	}
	calls := acct.Calls("DescribeInstances")
	last := calls[len(calls)-1]
	if _, two := last.Params["InstanceId.2"]; two || last.Params["InstanceId.1"] == "" {
		t.Errorf("the new instance was described with others: %v", last.Params)
	}
}

// TestProfileFromTheSharedConfig: on real AWS the provider takes region,
// credentials and even the endpoint from the usual chain; --profile picks a
// profile of ~/.aws/config as the AWS CLI does.
func TestProfileFromTheSharedConfig(t *testing.T) {
	acct := awssim.NewAccount("us-west-2", clock.RealClock{}, awssim.Delays{})
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	t.Cleanup(srv.Close)
	seed(t, acct, true)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(cfg, []byte("[profile ops]\nregion = us-west-2\nendpoint_url = "+srv.URL+"\n\n[profile noregion]\nendpoint_url = "+srv.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(creds, []byte("[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = secret\n\n[noregion]\naws_access_key_id = AKIDX\naws_secret_access_key = secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
	ctx := context.Background()

	p, err := New(ctx, Options{Profile: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if err != nil || len(g.Instances) != 2 {
		t.Fatalf("through profile ops: %+v, %v", g, err)
	}

	if _, err := New(ctx, Options{Profile: "noregion"}); err == nil || !strings.Contains(err.Error(), "pass --region") {
		t.Fatalf("a profile without a region: %v, want a hint to pass --region", err)
	}
	if _, err := New(ctx, Options{Profile: "noregion", Region: "us-west-2"}); err != nil {
		t.Fatalf("--region fills in what the profile lacks: %v", err)
	}
	if _, err := New(ctx, Options{Profile: "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("an unknown profile: %v, want an error naming it", err)
	}
}

// TestListsAndDescribesBeyondOnePage: a cluster of 120 groups (the endpoint
// pages Auto Scaling groups 50 at a time) and a group of 600 instances are
// seen whole through the provider.
func TestListsAndDescribesBeyondOnePage(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	for k := 0; k < 120; k++ {
		if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: fmt.Sprintf("self-%03d", k), AZs: []string{"us-west-2a"}, Min: 0, Max: 1, Desired: 0, InstanceType: "m5.large", ImageID: ami}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	refs, err := p.ListNodeGroups(ctx, "c1")
	if err != nil || len(refs) != 121 {
		t.Fatalf("listed %d groups (%v), want 121", len(refs), err)
	}
	g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	size := 600
	if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{Max: &size, Desired: &size}); err != nil {
		t.Fatal(err)
	}
	acct.Step(ctx, nil, nil)
	time.Sleep(time.Millisecond)
	acct.Step(ctx, nil, nil)
	g, err = p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if err != nil {
		t.Fatal(err)
	}
	described := 0
	for _, i := range g.Instances {
		if i.ImageID == ami && i.NodeName != "" {
			described++
		}
	}
	if len(g.Instances) != 600 || described != 600 {
		t.Fatalf("%d instances, %d described; want 600 of each", len(g.Instances), described)
	}
}

// TestRoleARNRunsEveryCallAsTheRole: with --role-arn (and the external id
// its trust policy demands) every call is signed with the role's
// credentials from STS AssumeRole, which the base credentials asked for
// once; a wrong external id fails with STS's AccessDenied, naming the role.
func TestRoleARNRunsEveryCallAsTheRole(t *testing.T) {
	acct := awssim.NewAccount("us-west-2", clock.RealClock{}, awssim.Delays{})
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	t.Cleanup(srv.Close)
	seed(t, acct, true)
	const role = "arn:aws:iam::210987654321:role/noderoll-upgrader"
	acct.CreateRole(role, "ops-7f3a")
	ctx := context.Background()
	base := Options{Region: "us-west-2", Endpoint: srv.URL, AccessKeyID: "AKIDBASE", SecretAccessKey: "secret", RoleARN: role}

	wrong := base
	wrong.ExternalID = "guess"
	p, err := New(ctx, wrong)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Cluster(ctx, "c1")
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), role) {
		t.Fatalf("a wrong external id: want STS's AccessDenied naming the role, got %v", err)
	}

	right := base
	right.ExternalID = "ops-7f3a"
	if p, err = New(ctx, right); err != nil {
		t.Fatal(err)
	}
	if _, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}); err != nil {
		t.Fatal(err)
	}
	var assumed []awssim.Call
	asRole := 0
	for _, c := range acct.Calls("") {
		switch {
		case c.Action == "AssumeRole" && c.Error == "":
			assumed = append(assumed, c)
		case c.Action != "AssumeRole" && strings.HasPrefix(c.AccessKey, "ASIA"):
			asRole++
		case c.Action != "AssumeRole":
			t.Errorf("%s was signed with %s, not the role's credentials", c.Action, c.AccessKey)
		}
	}
	if len(assumed) != 1 || assumed[0].AccessKey != "AKIDBASE" || assumed[0].Params["RoleArn"] != role || assumed[0].Params["ExternalId"] != "ops-7f3a" || asRole < 3 {
		t.Fatalf("want one AssumeRole with the base key and the external id, then every call as the role; got %+v and %d calls as the role", assumed, asRole)
	}
}

// TestAMixedInstancesGroupIsUpdatedInItsPolicy: a group whose template is
// set through a MixedInstancesPolicy is read through it and pointed at the
// new version there; its instance types and spot distribution stay (naming
// LaunchTemplate instead would replace the policy), and what it launches
// next runs the new AMI on the overridden types.
func TestAMixedInstancesGroupIsUpdatedInItsPolicy(t *testing.T) {
	p, acct := newProvider(t)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
	types := []string{"m5.large", "m5a.large", "m6i.large"}
	if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: "spot", AZs: []string{"us-west-2a", "us-west-2b"}, Min: 2, Max: 2, Desired: 2,
		InstanceType: "m5.large", ImageID: ami, MixedInstanceTypes: types}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acct.Step(ctx, nil, nil)
	g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "spot"})
	if err != nil {
		t.Fatalf("a mixed instances group: %v", err)
	}
	if g.TemplateVersion != 1 || g.ImageID != ami || len(g.Instances) != 2 || !slices.Equal(g.InstanceTypes, types) {
		t.Fatalf("read through the policy: %+v", g)
	}
	img, err := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, img.ID, "to 1.37")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
		t.Fatal(err)
	}
	out, err := p.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{g.ASGName}})
	if err != nil {
		t.Fatal(err)
	}
	asg := out.AutoScalingGroups[0]
	if asg.LaunchTemplate != nil || asg.MixedInstancesPolicy == nil {
		t.Fatalf("the group lost its mixed instances policy: %+v", asg.LaunchTemplate)
	}
	mip := asg.MixedInstancesPolicy
	var kept []string
	for _, o := range mip.LaunchTemplate.Overrides {
		kept = append(kept, aws.ToString(o.InstanceType))
	}
	if aws.ToString(mip.LaunchTemplate.LaunchTemplateSpecification.Version) != "2" || !slices.Equal(kept, types) || aws.ToInt32(mip.InstancesDistribution.OnDemandBaseCapacity) != 1 {
		t.Fatalf("policy after: version %s, types %v, on-demand base %d; want 2, %v, 1",
			aws.ToString(mip.LaunchTemplate.LaunchTemplateSpecification.Version), kept, aws.ToInt32(mip.InstancesDistribution.OnDemandBaseCapacity), types)
	}
	size := 5
	if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{Max: &size, Desired: &size}); err != nil {
		t.Fatal(err)
	}
	acct.Step(ctx, nil, nil)
	onNew := map[string]bool{}
	for _, i := range acct.Instances() {
		if i.ImageID == img.ID {
			onNew[i.InstanceType] = true
		}
	}
	if len(onNew) < 2 {
		t.Fatalf("new instances on the new AMI use types %v; want the policy's overrides", onNew)
	}
}

// TestALaunchConfigurationGroupIsRefusedSayingWhatToDo: a group that still
// launches from a launch configuration is refused before anything changes,
// with the way to move it to a launch template.
func TestALaunchConfigurationGroupIsRefusedSayingWhatToDo(t *testing.T) {
	p, acct := newProvider(t)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
	if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: "old", AZs: []string{"us-west-2a"}, Min: 0, Max: 0, Desired: 0,
		InstanceType: "m5.large", ImageID: ami, LaunchConfiguration: "old-lc-2019"}); err != nil {
		t.Fatal(err)
	}
	before := len(acct.Calls(""))
	_, err := p.NodeGroup(context.Background(), cloud.NodeGroupRef{Cluster: "c1", Name: "old"})
	if err == nil || !strings.Contains(err.Error(), "launches from launch configuration old-lc-2019") || !strings.Contains(err.Error(), "update-auto-scaling-group") {
		t.Fatalf("want a refusal naming the launch configuration and the way out, got %v", err)
	}
	for _, c := range acct.Calls("")[before:] {
		if !strings.HasPrefix(c.Action, "Describe") {
			t.Errorf("refusing the group called %s", c.Action)
		}
	}
}

// TestKubernetesVersionKeepsTheGroupsKindOfAMI: --kubernetes-version picks
// the recommended AMI of the kind the group runs now (family, architecture,
// variant), read from its current AMI, under the SSM paths AWS publishes;
// --ami-family switches family keeping architecture and variant.
func TestKubernetesVersionKeepsTheGroupsKindOfAMI(t *testing.T) {
	p, acct := newProvider(t)
	ctx := context.Background()
	param := func(path string) string {
		t.Helper()
		v, ok := acct.Parameter(path)
		if !ok {
			t.Fatalf("no SSM parameter %s", path)
		}
		return v
	}
	for _, c := range []struct {
		name, like, family, want string
		types                    []string
	}{
		{"AL2023 x86_64", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id", "", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/image_id", []string{"m5.large"}},
		{"AL2023 arm64", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/arm64/standard/recommended/image_id", "", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/arm64/standard/recommended/image_id", []string{"m7g.large", "c7g.large"}},
		{"AL2023 NVIDIA", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/nvidia/recommended/image_id", "", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/nvidia/recommended/image_id", []string{"g5.xlarge"}},
		{"AL2023 arm64 NVIDIA", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/arm64/nvidia/recommended/image_id", "", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/arm64/nvidia/recommended/image_id", []string{"g5g.xlarge"}},
		{"AL2023 Neuron", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/neuron/recommended/image_id", "", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/neuron/recommended/image_id", []string{"inf2.xlarge"}},
		{"Bottlerocket x86_64", "/aws/service/bottlerocket/aws-k8s-1.36/x86_64/latest/image_id", "", "/aws/service/bottlerocket/aws-k8s-1.37/x86_64/latest/image_id", []string{"m5.large"}},
		{"Bottlerocket arm64", "/aws/service/bottlerocket/aws-k8s-1.36/arm64/latest/image_id", "", "/aws/service/bottlerocket/aws-k8s-1.37/arm64/latest/image_id", []string{"m6g.large"}},
		{"Bottlerocket NVIDIA", "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/x86_64/latest/image_id", "", "/aws/service/bottlerocket/aws-k8s-1.37-nvidia/x86_64/latest/image_id", []string{"g5.xlarge"}},
		{"Bottlerocket arm64 NVIDIA", "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/arm64/latest/image_id", "", "/aws/service/bottlerocket/aws-k8s-1.37-nvidia/arm64/latest/image_id", []string{"g5g.xlarge"}},
		{"Windows Core", "/aws/service/ami-windows-latest/Windows_Server-2022-English-Core-EKS_Optimized-1.36/image_id", "", "/aws/service/ami-windows-latest/Windows_Server-2022-English-Core-EKS_Optimized-1.37/image_id", []string{"m5.large"}},
		{"Windows Full", "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-EKS_Optimized-1.36/image_id", "", "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-EKS_Optimized-1.37/image_id", []string{"m5.large"}},
		{"AL2023 arm64 to Bottlerocket", "/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/arm64/standard/recommended/image_id", "bottlerocket", "/aws/service/bottlerocket/aws-k8s-1.37/arm64/latest/image_id", []string{"m7g.large"}},
		{"Bottlerocket NVIDIA to AL2023", "/aws/service/bottlerocket/aws-k8s-1.36-nvidia/x86_64/latest/image_id", "al2023", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/nvidia/recommended/image_id", []string{"g5.xlarge"}},
	} {
		img, err := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37", Family: c.family, Like: param(c.like), InstanceTypes: c.types})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := param(c.want); img.ID != want || img.KubeMinor != "1.37" {
			t.Errorf("%s: got %s (%s, %s/%s/%s), want %s", c.name, img.ID, img.Name, img.Family, img.Architecture, img.Variant, want)
		}
	}
	// A release of the group's own kind.
	rel, err := p.ResolveImage(ctx, cloud.ImageQuery{ReleaseVersion: "1.37.2-20261020", Like: param("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/arm64/standard/recommended/image_id"), InstanceTypes: []string{"m7g.large"}})
	if err != nil || rel.Name != "amazon-eks-node-al2023-arm64-standard-1.37-v20261020" {
		t.Errorf("an arm64 group's release: %+v %v", rel, err)
	}
	// What cannot be: Windows on arm64, Neuron on Bottlerocket, an AL2023
	// release for a Bottlerocket group.
	for _, bad := range []struct {
		q    cloud.ImageQuery
		want string
	}{
		{cloud.ImageQuery{KubernetesVersion: "1.37", Family: "windows", Like: param("/aws/service/bottlerocket/aws-k8s-1.36/arm64/latest/image_id")}, "--ami-family=windows: the group runs Bottlerocket (arm64, standard), and the EKS-optimized Windows AMIs are x86_64 only"},
		{cloud.ImageQuery{KubernetesVersion: "1.37", Family: "bottlerocket", Like: param("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/neuron/recommended/image_id")}, "no Neuron variant; pick an AMI with --ami"},
		{cloud.ImageQuery{ReleaseVersion: "1.37.2-20261020", Like: param("/aws/service/bottlerocket/aws-k8s-1.36/x86_64/latest/image_id")}, "--release-version names EKS-optimized AL2023 releases"},
		// Asked by a front end with other names, named as it names them.
		{cloud.ImageQuery{KubernetesVersion: "1.37", Family: "windows", Like: param("/aws/service/bottlerocket/aws-k8s-1.36/arm64/latest/image_id"),
			Terms: terms.Terms{"ami-family": "spec.target.amiFamily"}}, "spec.target.amiFamily: windows: the group runs"},
		{cloud.ImageQuery{ReleaseVersion: "1.37.2-20261020", Like: param("/aws/service/bottlerocket/aws-k8s-1.36/x86_64/latest/image_id"),
			Terms: terms.Terms{"release-version": "spec.target.releaseVersion", "kubernetes-version": "spec.target.kubernetesVersion", "ami": "spec.target.ami"}},
			"spec.target.releaseVersion names EKS-optimized AL2023 releases, but the group runs Bottlerocket (x86_64, standard): use spec.target.kubernetesVersion or spec.target.ami"},
	} {
		if _, err := p.ResolveImage(ctx, bad.q); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: want an error saying %q, got %v", bad.q, bad.want, err)
		}
	}
}

// TestAnAMIMustRunOnTheGroupsInstanceTypes: an explicit --ami (or any
// target) of an architecture the group's instance types cannot run is
// refused, naming the misfits; an unknown type is EC2's error.
func TestAnAMIMustRunOnTheGroupsInstanceTypes(t *testing.T) {
	p, acct := newProvider(t)
	ctx := context.Background()
	arm, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/arm64/standard/recommended/image_id")
	_, err := p.ResolveImage(ctx, cloud.ImageQuery{ImageID: arm, InstanceTypes: []string{"m7g.large", "m5.large"}})
	if err == nil || !strings.Contains(err.Error(), "is arm64, but the group launches m5.large (x86_64)") {
		t.Fatalf("an arm64 AMI for a group with m5.large: %v", err)
	}
	if img, err := p.ResolveImage(ctx, cloud.ImageQuery{ImageID: arm, InstanceTypes: []string{"m7g.large", "c7g.large"}}); err != nil || img.Architecture != "arm64" {
		t.Fatalf("an arm64 AMI for an arm64 group: %+v %v", img, err)
	}
	if _, err := p.ResolveImage(ctx, cloud.ImageQuery{ImageID: arm, InstanceTypes: []string{"m99.huge"}}); err == nil || !strings.Contains(err.Error(), "InvalidInstanceType") {
		t.Fatalf("an unknown instance type: %v", err)
	}
}

// TestLatestAndDefaultGroupsKeepNamingTheirVersionSo: a group on $Latest
// follows the new version without being touched; one on $Default stays on
// $Default and the new version becomes the template's default, as AWS
// defines both; either way it launches the new AMI next.
func TestLatestAndDefaultGroupsKeepNamingTheirVersionSo(t *testing.T) {
	for _, ref := range []string{"$Latest", "$Default"} {
		p, acct := newProvider(t)
		ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
		acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
		if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: "ng", AZs: []string{"us-west-2a"}, Min: 1, Max: 1, Desired: 1,
			InstanceType: "m5.large", ImageID: ami, TemplateVersion: ref}); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		acct.Step(ctx, nil, nil)
		g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
		if err != nil {
			t.Fatal(err)
		}
		img, _ := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37", Like: g.ImageID, InstanceTypes: g.InstanceTypes})
		v, err := p.EnsureTemplateVersion(ctx, g.TemplateID, g.TemplateVersion, img.ID, "to 1.37")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.UpdateGroup(ctx, g, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		out, err := p.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{g.ASGName}})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.AutoScalingGroups[0].LaunchTemplate.Version); got != ref {
			t.Errorf("%s: the group now names %s", ref, got)
		}
		def, err := p.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(g.TemplateID), Versions: []string{"$Default"}})
		if err != nil {
			t.Fatal(err)
		}
		wantDefault := int64(1)
		if ref == "$Default" {
			wantDefault = v
		}
		if d := aws.ToInt64(def.LaunchTemplateVersions[0].VersionNumber); d != wantDefault {
			t.Errorf("%s: the template's default is %d, want %d", ref, d, wantDefault)
		}
		if g, _ = p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}); g.TemplateVersion != v || g.ImageID != img.ID {
			t.Errorf("%s: the group launches version %d (%s), want %d (%s)", ref, g.TemplateVersion, g.ImageID, v, img.ID)
		}
	}
}

// TestTheNewTemplateVersionIsTheSourceButTheAMI: on a template shaped as
// Terraform modules and Karpenter make them (network interfaces instead of
// top-level security groups, an EFA interface, placement, monitoring,
// credits, metadata options and tags, tag specifications, two volumes...),
// the new version equals its source in every field of
// ResponseLaunchTemplateData but the AMI, compared field by field.
func TestTheNewTemplateVersionIsTheSourceButTheAMI(t *testing.T) {
	p, acct := newProvider(t)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
	if _, err := acct.CreateNodeGroup(awssim.GroupSpec{Cluster: "c1", Name: "rich", AZs: []string{"us-west-2a"}, Min: 0, Max: 1, Desired: 0,
		InstanceType: "m5.large", ImageID: ami, RichTemplate: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "rich"})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := p.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: "1.37", Like: g.ImageID})
	v, err := p.EnsureTemplateVersion(ctx, g.TemplateID, 1, img.ID, "to 1.37")
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(g.TemplateID), Versions: []string{"1", strconv.FormatInt(v, 10)}})
	if err != nil || len(out.LaunchTemplateVersions) != 2 {
		t.Fatalf("describing versions 1 and %d: %v", v, err)
	}
	src, dst := *out.LaunchTemplateVersions[0].LaunchTemplateData, *out.LaunchTemplateVersions[1].LaunchTemplateData
	if aws.ToString(dst.ImageId) != img.ID {
		t.Fatalf("the new version launches %s, want %s", aws.ToString(dst.ImageId), img.ID)
	}
	// The test means something only if the shape came through the SDK whole.
	if len(src.NetworkInterfaces) != 2 || src.Placement == nil || src.Monitoring == nil || src.CreditSpecification == nil || src.MetadataOptions == nil ||
		src.PrivateDnsNameOptions == nil || len(src.BlockDeviceMappings) != 2 || len(src.TagSpecifications) != 2 || src.IamInstanceProfile == nil {
		t.Fatalf("the rich template did not come through whole: %+v", src)
	}
	sv, dv := reflect.ValueOf(src), reflect.ValueOf(dst)
	set := 0
	for k := 0; k < sv.NumField(); k++ {
		name := sv.Type().Field(k).Name
		if name == "ImageId" || !sv.Type().Field(k).IsExported() {
			continue
		}
		if !sv.Field(k).IsZero() {
			set++
		}
		if !reflect.DeepEqual(sv.Field(k).Interface(), dv.Field(k).Interface()) {
			t.Errorf("field %s differs: %+v in the source, %+v in the new version", name, sv.Field(k).Interface(), dv.Field(k).Interface())
		}
	}
	if set < 15 {
		t.Errorf("only %d fields set on the source: too thin a template to show the copy", set)
	}
}

// The quota a group's launches count against: its value from Service
// Quotas, and the vCPUs of the Region's running instances of that kind (2
// m5.large of this group, plus another group's instances of the same kind,
// counted; none of other kinds).
func TestInstanceQuotaCountsTheRegionsInstancesOfThatKind(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	for _, g := range []awssim.GroupSpec{
		{Cluster: "c1", Name: "big", Managed: true, AZs: []string{"us-west-2a"}, Min: 1, Max: 1, Desired: 1, InstanceType: "m5.xlarge", ImageID: ami},
		{Cluster: "c1", Name: "gpu", Managed: true, AZs: []string{"us-west-2a"}, Min: 1, Max: 1, Desired: 1, InstanceType: "g5.xlarge", ImageID: ami},
	} {
		if _, err := acct.CreateNodeGroup(g); err != nil {
			t.Fatal(err)
		}
	}
	acct.Step(context.Background(), nil, nil)
	time.Sleep(time.Millisecond)
	acct.Step(context.Background(), nil, nil)
	if err := acct.SetQuota(awssim.QuotaOnDemandStandard, 32); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "ng"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.InstanceQuota(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	// 2 x m5.large (2 vCPUs) + 1 x m5.xlarge (4); the g5.xlarge is another quota's.
	if q.Code != "L-1216C47A" || q.Limit != 32 || q.Used != 8 || q.PerInstance != 2 {
		t.Fatalf("quota %+v; want L-1216C47A, limit 32, 8 used, 2 a instance", q)
	}
	gpu, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "gpu"})
	if err != nil {
		t.Fatal(err)
	}
	if q, err := p.InstanceQuota(ctx, gpu); err != nil || q.Code != "L-DB2E81BA" || q.Used != 4 || q.PerInstance != 4 {
		t.Fatalf("the GPU group's quota %+v, %v", q, err)
	}
}

// --mode=managed's calls through the SDK: UpdateNodegroupVersion with the
// version and release, DescribeUpdate read back in noderoll's words, and
// ListUpdates finding none in progress once it ended (here at once: an
// endpoint without a cluster to update nodes on fails it).
func TestManagedUpdateCallsReachEKS(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	ctx := context.Background()
	ref := cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}
	id, err := p.StartManagedUpdate(ctx, ref, cloud.ManagedUpdate{KubernetesVersion: "1.37"})
	if err != nil || id == "" {
		t.Fatalf("StartManagedUpdate: %q %v", id, err)
	}
	st, err := p.ManagedUpdate(ctx, ref, id)
	if err != nil || st.Status != "Failed" || len(st.Errors) != 1 || !strings.HasPrefix(st.Errors[0], "InternalFailure: ") {
		t.Fatalf("ManagedUpdate: %+v %v", st, err)
	}
	if got, err := p.ManagedUpdateInProgress(ctx, ref); err != nil || got != "" {
		t.Fatalf("ManagedUpdateInProgress: %q %v", got, err)
	}
	if _, err := p.StartManagedUpdate(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "nope"}, cloud.ManagedUpdate{}); !cloud.IsNotFound(err) {
		t.Fatalf("an unknown group: %v", err)
	}
	calls := acct.Calls("UpdateNodegroupVersion")
	if len(calls) != 2 {
		t.Fatalf("%d UpdateNodegroupVersion calls logged", len(calls))
	}
}

// --mode=managed --max-unavailable: UpdateNodegroupConfig through the SDK
// starts a ConfigUpdate; once applied, the group reads back its
// updateConfig, a percentage resolved against its size (rounded up) for
// the eks strategy's surge.
func TestManagedConfigUpdateSetsTheGroupsUpdateConfig(t *testing.T) {
	p, acct := newProvider(t)
	seed(t, acct, true)
	t0 := awssim.DefaultManagedTimings
	t0.ConfigUpdate = 20 * time.Millisecond
	acct.SetManagedTimings(t0)
	ctx := context.Background()
	ref := cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}
	id, err := p.StartManagedConfigUpdate(ctx, ref, cloud.UpdateConfig{MaxUnavailablePercentage: 50})
	if err != nil || id == "" {
		t.Fatalf("StartManagedConfigUpdate: %q %v", id, err)
	}
	var st cloud.ManagedUpdateState
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st, err = p.ManagedUpdate(ctx, ref, id); err != nil || st.Status != "InProgress" {
			break
		}
	}
	if err != nil || st.Status != "Successful" || st.Type != "ConfigUpdate" {
		t.Fatalf("the config update: %+v %v", st, err)
	}
	g, err := p.NodeGroup(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if g.UpdateConfig != (cloud.UpdateConfig{MaxUnavailablePercentage: 50, Strategy: cloud.StrategyDefault}) || g.MaxUnavailable != (50*g.Desired+99)/100 {
		t.Fatalf("the group reads back %+v, %d nodes at once (desired %d)", g.UpdateConfig, g.MaxUnavailable, g.Desired)
	}
	if _, err := p.StartManagedConfigUpdate(ctx, ref, cloud.UpdateConfig{MaxUnavailable: 0}); err == nil || !strings.Contains(err.Error(), "maxUnavailable must be between 1 and 100") {
		t.Fatalf("maxUnavailable 0: %v", err)
	}
	if _, err := p.StartManagedConfigUpdate(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "nope"}, cloud.UpdateConfig{MaxUnavailable: 2}); !cloud.IsNotFound(err) {
		t.Fatalf("an unknown group: %v", err)
	}
}

// Who owns a managed group's launch template, as DescribeNodegroup tells
// it: the user's own (named, with the version EKS records), or one EKS
// generated (none named). noderoll's own upgrade moves the Auto Scaling
// group to a version EKS did not set: EKS keeps its record and reports
// Ec2LaunchTemplateVersionMismatch (API_Issue).
func TestAManagedGroupsTemplateOwnerAndEKSRecord(t *testing.T) {
	p, acct := newProvider(t)
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	newer, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/image_id")
	acct.CreateCluster("c1", "1.37", "https://127.0.0.1:6443")
	for _, spec := range []awssim.GroupSpec{
		{Cluster: "c1", Name: "mine", Managed: true, AZs: []string{"us-west-2a"}, Min: 1, Max: 2, Desired: 1, InstanceType: "m5.large", ImageID: ami},
		{Cluster: "c1", Name: "eks", Managed: true, EKSTemplate: true, AZs: []string{"us-west-2a"}, Min: 1, Max: 2, Desired: 1, InstanceType: "m5.large", ImageID: ami},
	} {
		if _, err := acct.CreateNodeGroup(spec); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	mine, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "mine"})
	if err != nil || mine.EKSTemplateID != mine.TemplateID || mine.EKSTemplateVersion != 1 {
		t.Fatalf("the user's template: %+v %v", mine, err)
	}
	eksOwned, err := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "eks"})
	if err != nil || eksOwned.EKSTemplateID != "" || eksOwned.TemplateID == "" {
		t.Fatalf("an EKS-generated template: %+v %v", eksOwned, err)
	}
	v, err := p.EnsureTemplateVersion(ctx, mine.TemplateID, 1, newer, "noderoll")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.UpdateGroup(ctx, mine, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
		t.Fatal(err)
	}
	if g, _ := p.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: "c1", Name: "mine"}); g.TemplateVersion != v || g.EKSTemplateVersion != 1 {
		t.Fatalf("after the group was pointed at version %d: launches %d, EKS records %d", v, g.TemplateVersion, g.EKSTemplateVersion)
	}
	out, err := p.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("c1"), NodegroupName: aws.String("mine")})
	if err != nil || out.Nodegroup.Health == nil || len(out.Nodegroup.Health.Issues) != 1 || out.Nodegroup.Health.Issues[0].Code != "Ec2LaunchTemplateVersionMismatch" {
		t.Fatalf("EKS's health of the group: %+v %v", out.Nodegroup.Health, err)
	}
}

// OnCall hears of each call once, retries included, with its service,
// operation and outcome: what the controller's metrics count.
func TestOnCallHearsOfEveryCallOnce(t *testing.T) {
	acct := awssim.NewAccount("us-west-2", clock.RealClock{}, awssim.Delays{})
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	var heard []string
	p, err := New(context.Background(), Options{Region: "us-west-2", Endpoint: srv.URL, AccessKeyID: "AKID", SecretAccessKey: "secret",
		OnCall: func(service, op string, err error) {
			mu.Lock()
			defer mu.Unlock()
			heard = append(heard, fmt.Sprintf("%s %s %v", service, op, err != nil))
		}})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, acct, true)
	// Throttled twice, then answered: one call heard, succeeded.
	acct.InjectFault(awssim.Fault{Service: "eks", Action: "DescribeCluster", Code: "ThrottlingException", Status: 429, Count: 2})
	if _, err := p.Cluster(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cluster(context.Background(), "missing"); err == nil {
		t.Fatal("a missing cluster was found")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"EKS DescribeCluster false", "EKS DescribeCluster true"}; !slices.Equal(heard, want) {
		t.Errorf("heard %q, want %q", heard, want)
	}
}
