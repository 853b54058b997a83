package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Options configure how the provider reaches AWS. Empty fields fall back to
// the SDK's usual chain (environment, shared config, instance role).
type Options struct {
	// Log receives the SDK's own log lines (retries, connection notes) at
	// debug level; nil discards them.
	Log             *slog.Logger
	Region          string
	Profile         string
	Endpoint        string // overrides every service's endpoint (the sandbox's)
	AccessKeyID     string // static credentials, for the sandbox
	SecretAccessKey string
	// RoleARN is a role to assume (another account's, typically) with the
	// credentials found; ExternalID is what its trust policy may demand.
	RoleARN, ExternalID string
}

// Provider talks to AWS through aws-sdk-go-v2.
type Provider struct {
	asg autoscalingAPI
	ec2 ec2API
	ssm ssmAPI
	eks eksAPI
	// quotas reads EC2's vCPU quotas; nil: not checked.
	quotas servicequotasAPI
}

var _ cloud.Provider = (*Provider)(nil)

// New loads the SDK configuration and builds the service clients.
func New(ctx context.Context, o Options) (*Provider, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	// Throttling and transient faults are retried by the SDK with backoff;
	// adaptive mode also slows the client down while AWS throttles it, so
	// a large group's many describe calls back off together.
	opts = append(opts, config.WithRetryMaxAttempts(8), config.WithRetryMode(aws.RetryModeAdaptive))
	// The SDK's warnings are about connection reuse, not the outcome of a
	// call: keep them out of the user's view unless asked for.
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts = append(opts, config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug(fmt.Sprintf(format, v...), "source", "aws-sdk", "class", string(c))
	})))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(o.Endpoint)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no AWS region: pass --region or set AWS_REGION")
	}
	if o.RoleARN != "" {
		// Every call runs as the role, its credentials renewed before they
		// expire; the first call fails with STS's own words when the role
		// cannot be assumed (a wrong external id, a trust policy).
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), o.RoleARN, func(ar *stscreds.AssumeRoleOptions) {
			ar.RoleSessionName = "noderoll"
			if o.ExternalID != "" {
				ar.ExternalID = aws.String(o.ExternalID)
			}
		}))
	}
	p := NewFromClients(autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg), eks.NewFromConfig(cfg))
	p.quotas = servicequotas.NewFromConfig(cfg)
	return p, nil
}

// NewFromClients builds a provider over given SDK clients.
func NewFromClients(a autoscalingAPI, e ec2API, s ssmAPI, k eksAPI) *Provider {
	return &Provider{asg: a, ec2: e, ssm: s, eks: k}
}

// Cluster implements cloud.Provider.
func (p *Provider) Cluster(ctx context.Context, name string) (cloud.Cluster, error) {
	out, err := p.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(name)})
	if isNotFound(err) {
		return cloud.Cluster{}, cloud.NotFoundf(err, "EKS cluster %q", name)
	}
	if err != nil {
		return cloud.Cluster{}, fmt.Errorf("describing EKS cluster %s: %w", name, err)
	}
	return cloud.Cluster{Name: name, Version: aws.ToString(out.Cluster.Version)}, nil
}

func tag(tags []astypes.TagDescription, key string) (string, bool) {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}

// selfManagedGroups lists the Auto Scaling groups tagged as owned by the
// cluster that no EKS managed node group owns, as eksctl tags them.
func (p *Provider) selfManagedGroups(ctx context.Context, cluster string) ([]astypes.AutoScalingGroup, error) {
	var out []astypes.AutoScalingGroup
	pager := autoscaling.NewDescribeAutoScalingGroupsPaginator(p.asg, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:kubernetes.io/cluster/" + cluster), Values: []string{"owned"}}},
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing Auto Scaling groups of cluster %s: %w", cluster, err)
		}
		for _, g := range page.AutoScalingGroups {
			if _, managed := tag(g.Tags, "eks:nodegroup-name"); !managed {
				out = append(out, g)
			}
		}
	}
	return out, nil
}

func selfManagedName(g astypes.AutoScalingGroup) string {
	if n, ok := tag(g.Tags, "alpha.eksctl.io/nodegroup-name"); ok {
		return n
	}
	return aws.ToString(g.AutoScalingGroupName)
}

// ListNodeGroups implements cloud.Provider.
func (p *Provider) ListNodeGroups(ctx context.Context, cluster string) ([]cloud.NodeGroupRef, error) {
	var refs []cloud.NodeGroupRef
	pager := eks.NewListNodegroupsPaginator(p.eks, &eks.ListNodegroupsInput{ClusterName: aws.String(cluster)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if isNotFound(err) {
			return nil, cloud.NotFoundf(err, "EKS cluster %q", cluster)
		}
		if err != nil {
			return nil, fmt.Errorf("listing node groups of %s: %w", cluster, err)
		}
		for _, n := range page.Nodegroups {
			refs = append(refs, cloud.NodeGroupRef{Cluster: cluster, Name: n})
		}
	}
	self, err := p.selfManagedGroups(ctx, cluster)
	if err != nil {
		return nil, err
	}
	for _, g := range self {
		refs = append(refs, cloud.NodeGroupRef{Cluster: cluster, Name: selfManagedName(g)})
	}
	return refs, nil
}

// NodeGroup implements cloud.Provider.
func (p *Provider) NodeGroup(ctx context.Context, ref cloud.NodeGroupRef) (cloud.NodeGroup, error) {
	g := cloud.NodeGroup{Cluster: ref.Cluster, Name: ref.Name}
	ng, err := p.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name)})
	switch {
	case err == nil:
		g.Managed = true
		if ng.Nodegroup.Resources == nil || len(ng.Nodegroup.Resources.AutoScalingGroups) == 0 {
			return g, fmt.Errorf("EKS node group %s has no Auto Scaling group yet (status %s)", ref, ng.Nodegroup.Status)
		}
		g.ASGName = aws.ToString(ng.Nodegroup.Resources.AutoScalingGroups[0].Name)
		g.Spot = ng.Nodegroup.CapacityType == ekstypes.CapacityTypesSpot
		if lt := ng.Nodegroup.LaunchTemplate; lt != nil {
			g.EKSTemplateID = aws.ToString(lt.Id)
			g.EKSTemplateVersion, _ = strconv.ParseInt(aws.ToString(lt.Version), 10, 64)
		}
		if c := ng.Nodegroup.UpdateConfig; c != nil {
			g.UpdateConfig = cloud.UpdateConfig{MaxUnavailable: int(aws.ToInt32(c.MaxUnavailable)), MaxUnavailablePercentage: int(aws.ToInt32(c.MaxUnavailablePercentage))}
			g.MaxUnavailable = g.UpdateConfig.MaxUnavailable
		}
	case isNotFound(err) && strings.Contains(err.Error(), "No cluster"):
		return g, cloud.NotFoundf(err, "EKS cluster %q", ref.Cluster)
	case isNotFound(err):
		self, err := p.selfManagedGroups(ctx, ref.Cluster)
		if err != nil {
			return g, err
		}
		for _, asg := range self {
			if selfManagedName(asg) == ref.Name || aws.ToString(asg.AutoScalingGroupName) == ref.Name {
				g.ASGName = aws.ToString(asg.AutoScalingGroupName)
			}
		}
		if g.ASGName == "" {
			return g, cloud.NotFoundf(nil, "node group %q in cluster %q (neither an EKS managed node group nor an Auto Scaling group tagged kubernetes.io/cluster/%s=owned with that name)", ref.Name, ref.Cluster, ref.Cluster)
		}
	default:
		return g, fmt.Errorf("describing node group %s: %w", ref, err)
	}
	return p.fillFromASG(ctx, g)
}

func (p *Provider) fillFromASG(ctx context.Context, g cloud.NodeGroup) (cloud.NodeGroup, error) {
	out, err := p.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{g.ASGName}})
	if err != nil {
		return g, fmt.Errorf("describing Auto Scaling group %s: %w", g.ASGName, err)
	}
	if len(out.AutoScalingGroups) == 0 {
		return g, cloud.NotFoundf(nil, "Auto Scaling group %q of node group %s/%s", g.ASGName, g.Cluster, g.Name)
	}
	asg := out.AutoScalingGroups[0]
	g.Min, g.Max, g.Desired = int(aws.ToInt32(asg.MinSize)), int(aws.ToInt32(asg.MaxSize)), int(aws.ToInt32(asg.DesiredCapacity))
	if pct := g.UpdateConfig.MaxUnavailablePercentage; pct > 0 {
		// EKS resolves a percentage against the group, rounded up, and
		// replaces at most 100 nodes at once.
		g.MaxUnavailable = min(max((pct*g.Desired+99)/100, 1), 100)
	}
	g.AZs = asg.AvailabilityZones
	sort.Strings(g.AZs)
	for _, s := range asg.SuspendedProcesses {
		g.Suspended = append(g.Suspended, aws.ToString(s.ProcessName))
	}
	spec, err := launchTemplateOf(asg)
	if err != nil {
		return g, err
	}
	g.TemplateID = aws.ToString(spec.LaunchTemplateId)
	if g.TemplateID == "" { // named by name only
		out, err := p.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: spec.LaunchTemplateName, Versions: []string{"$Latest"}})
		if err != nil || len(out.LaunchTemplateVersions) == 0 {
			return g, fmt.Errorf("finding launch template %s of %s: %w", aws.ToString(spec.LaunchTemplateName), g.ASGName, err)
		}
		g.TemplateID = aws.ToString(out.LaunchTemplateVersions[0].LaunchTemplateId)
	}
	v, err := p.templateVersion(ctx, g.TemplateID, aws.ToString(spec.Version))
	if err != nil {
		return g, err
	}
	g.TemplateVersion, g.ImageID = aws.ToInt64(v.VersionNumber), aws.ToString(v.LaunchTemplateData.ImageId)
	if t := string(v.LaunchTemplateData.InstanceType); t != "" {
		g.InstanceTypes = []string{t}
	}
	if m := asg.MixedInstancesPolicy; m != nil && m.LaunchTemplate != nil && len(m.LaunchTemplate.Overrides) > 0 {
		g.InstanceTypes = nil
		for _, o := range m.LaunchTemplate.Overrides {
			if t := aws.ToString(o.InstanceType); t != "" {
				g.InstanceTypes = append(g.InstanceTypes, t)
			}
		}
	}
	ids := make([]string, 0, len(asg.Instances))
	for _, i := range asg.Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
		inst := cloud.Instance{ID: aws.ToString(i.InstanceId), AZ: aws.ToString(i.AvailabilityZone), Lifecycle: string(i.LifecycleState)}
		if i.LaunchTemplate != nil {
			inst.TemplateVersion = aws.ToString(i.LaunchTemplate.Version)
		}
		g.Instances = append(g.Instances, inst)
	}
	if len(ids) == 0 {
		return g, nil
	}
	details, err := p.describeInstances(ctx, ids)
	if err != nil {
		return g, fmt.Errorf("describing the instances of %s: %w", g.ASGName, err)
	}
	for k := range g.Instances {
		d := details[g.Instances[k].ID]
		g.Instances[k].ImageID, g.Instances[k].NodeName = aws.ToString(d.ImageId), aws.ToString(d.PrivateDnsName)
	}
	sort.Slice(g.Instances, func(a, b int) bool { return g.Instances[a].ID < g.Instances[b].ID })
	return g, nil
}

// describeInstances describes instances by ID. EC2 is eventually
// consistent: an instance the Auto Scaling group just launched may be
// unknown to DescribeInstances for a moment (InvalidInstanceID.NotFound), so
// that answer is retried for a while before it counts.
func (p *Provider) describeInstances(ctx context.Context, ids []string) (map[string]ec2types.Instance, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		details := map[string]ec2types.Instance{}
		var err error
		pager := ec2.NewDescribeInstancesPaginator(p.ec2, &ec2.DescribeInstancesInput{InstanceIds: ids})
		for pager.HasMorePages() && err == nil {
			var page *ec2.DescribeInstancesOutput
			if page, err = pager.NextPage(ctx); err == nil {
				for _, r := range page.Reservations {
					for _, i := range r.Instances {
						details[aws.ToString(i.InstanceId)] = i
					}
				}
			}
		}
		if err == nil || code(err) != "InvalidInstanceID.NotFound" || attempt == instanceNotFoundAttempts {
			return details, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// instanceNotFoundAttempts bounds the retries of a just-launched instance
// EC2 does not know yet: about 15 seconds in all.
const instanceNotFoundAttempts = 10

// launchTemplateOf returns the launch template a group launches from, set
// directly or through its MixedInstancesPolicy.
func launchTemplateOf(asg astypes.AutoScalingGroup) (*astypes.LaunchTemplateSpecification, error) {
	switch {
	case asg.LaunchTemplate != nil:
		return asg.LaunchTemplate, nil
	case asg.MixedInstancesPolicy != nil && asg.MixedInstancesPolicy.LaunchTemplate != nil && asg.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification != nil:
		return asg.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification, nil
	case asg.LaunchConfigurationName != nil:
		return nil, fmt.Errorf("Auto Scaling group %s launches from launch configuration %s, which noderoll does not upgrade (AWS adds no new instance types or features to launch configurations): "+
			"copy it to a launch template (the console's \"Copy to launch template\", or aws ec2 create-launch-template), point the group at the template "+
			"(aws autoscaling update-auto-scaling-group --auto-scaling-group-name %s --launch-template LaunchTemplateId=...,Version=...), then rerun; nothing was changed",
			aws.ToString(asg.AutoScalingGroupName), aws.ToString(asg.LaunchConfigurationName), aws.ToString(asg.AutoScalingGroupName))
	}
	return nil, fmt.Errorf("Auto Scaling group %s names no launch template, directly or in a mixed instances policy: nothing to upgrade", aws.ToString(asg.AutoScalingGroupName))
}

func (p *Provider) templateVersion(ctx context.Context, templateID, version string) (ec2types.LaunchTemplateVersion, error) {
	if version == "" {
		version = "$Default"
	}
	out, err := p.ec2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(templateID), Versions: []string{version}})
	if isNotFound(err) {
		return ec2types.LaunchTemplateVersion{}, cloud.NotFoundf(err, "launch template %s version %s", templateID, version)
	}
	if err != nil {
		return ec2types.LaunchTemplateVersion{}, fmt.Errorf("describing launch template %s version %s: %w", templateID, version, err)
	}
	if len(out.LaunchTemplateVersions) == 0 || out.LaunchTemplateVersions[0].LaunchTemplateData == nil {
		return ec2types.LaunchTemplateVersion{}, cloud.NotFoundf(nil, "launch template %s version %s", templateID, version)
	}
	return out.LaunchTemplateVersions[0], nil
}

// TemplateImage implements cloud.Provider.
func (p *Provider) TemplateImage(ctx context.Context, templateID string, version int64) (string, error) {
	v, err := p.templateVersion(ctx, templateID, strconv.FormatInt(version, 10))
	if err != nil {
		return "", err
	}
	return aws.ToString(v.LaunchTemplateData.ImageId), nil
}

// EnsureTemplateVersion implements cloud.Provider.
func (p *Provider) EnsureTemplateVersion(ctx context.Context, templateID string, from int64, imageID, description string) (int64, error) {
	src, err := p.templateVersion(ctx, templateID, strconv.FormatInt(from, 10))
	if err != nil {
		return 0, err
	}
	if aws.ToString(src.LaunchTemplateData.ImageId) == imageID {
		return from, nil
	}
	// A version created by an earlier, interrupted run is reused, not copied again.
	latest, err := p.templateVersion(ctx, templateID, "$Latest")
	if err != nil {
		return 0, err
	}
	if aws.ToInt64(latest.VersionNumber) > from && sameButImage(*src.LaunchTemplateData, *latest.LaunchTemplateData, imageID) {
		return aws.ToInt64(latest.VersionNumber), nil
	}
	// The client token makes the call idempotent: when an answer is lost
	// and the SDK retries, EC2 returns the version the first try created
	// instead of creating another.
	out, err := p.ec2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(templateID), SourceVersion: aws.String(strconv.FormatInt(from, 10)),
		VersionDescription: aws.String(description),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(imageID)},
		ClientToken:        aws.String(templateToken(templateID, from, imageID)),
	})
	if err != nil {
		return 0, fmt.Errorf("creating a version of launch template %s with AMI %s: %w", templateID, imageID, err)
	}
	return aws.ToInt64(out.LaunchTemplateVersion.VersionNumber), nil
}

// templateToken derives the client token of a template version from what
// defines it, so that every try of the same version carries the same token.
func templateToken(templateID string, from int64, imageID string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%s", templateID, from, imageID)))
	return "noderoll-" + hex.EncodeToString(sum[:16])
}

func sameButImage(src, cand ec2types.ResponseLaunchTemplateData, imageID string) bool {
	if aws.ToString(cand.ImageId) != imageID {
		return false
	}
	src.ImageId, cand.ImageId = nil, nil
	return reflect.DeepEqual(src, cand)
}

// UpdateGroup implements cloud.Provider.
func (p *Provider) UpdateGroup(ctx context.Context, g cloud.NodeGroup, u cloud.GroupUpdate) error {
	in := &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String(g.ASGName)}
	if u.Min != nil {
		in.MinSize = aws.Int32(int32(*u.Min))
	}
	if u.Max != nil {
		in.MaxSize = aws.Int32(int32(*u.Max))
	}
	if u.Desired != nil {
		in.DesiredCapacity = aws.Int32(int32(*u.Desired))
	}
	if u.TemplateVersion != nil {
		pinned, err := p.pointAt(ctx, g, *u.TemplateVersion)
		if err != nil {
			return err
		}
		if pinned != nil {
			if pinned.MixedInstancesPolicy != nil {
				in.MixedInstancesPolicy = pinned.MixedInstancesPolicy
			} else {
				in.LaunchTemplate = pinned.LaunchTemplate
			}
		}
		if u.Min == nil && u.Max == nil && u.Desired == nil && pinned == nil {
			return nil // the group follows the template: nothing of its own to change
		}
	}
	if _, err := p.asg.UpdateAutoScalingGroup(ctx, in); err != nil {
		return fmt.Errorf("updating Auto Scaling group %s: %w", g.ASGName, err)
	}
	return nil
}

// pointAt makes the group launch version v of its template, the way the
// group names its version: a group on $Latest follows a new latest version
// by itself; a group on $Default keeps $Default, and v becomes the
// template's default (as the group's owner rolls it); otherwise the group
// names v, in its MixedInstancesPolicy when it has one (naming
// LaunchTemplate instead would replace the policy and drop its instance
// types and spot distribution). It returns what to set on the group, nil
// when nothing.
func (p *Provider) pointAt(ctx context.Context, g cloud.NodeGroup, v int64) (*autoscaling.UpdateAutoScalingGroupInput, error) {
	out, err := p.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{g.ASGName}})
	if err != nil {
		return nil, fmt.Errorf("describing Auto Scaling group %s: %w", g.ASGName, err)
	}
	if len(out.AutoScalingGroups) != 1 {
		return nil, cloud.NotFoundf(nil, "Auto Scaling group %q", g.ASGName)
	}
	asg := out.AutoScalingGroups[0]
	cur, err := launchTemplateOf(asg)
	if err != nil {
		return nil, err
	}
	switch aws.ToString(cur.Version) {
	case "$Latest":
		latest, err := p.templateVersion(ctx, g.TemplateID, "$Latest")
		if err != nil {
			return nil, err
		}
		if aws.ToInt64(latest.VersionNumber) == v {
			return nil, nil
		}
	case "$Default", "":
		if _, err := p.ec2.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(g.TemplateID), DefaultVersion: aws.String(strconv.FormatInt(v, 10))}); err != nil {
			return nil, fmt.Errorf("making version %d the default of launch template %s, which %s launches as $Default: %w", v, g.TemplateID, g.ASGName, err)
		}
		return nil, nil
	}
	spec := &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(g.TemplateID), Version: aws.String(strconv.FormatInt(v, 10))}
	if asg.LaunchTemplate == nil && asg.MixedInstancesPolicy != nil {
		return &autoscaling.UpdateAutoScalingGroupInput{MixedInstancesPolicy: &astypes.MixedInstancesPolicy{LaunchTemplate: &astypes.LaunchTemplate{LaunchTemplateSpecification: spec}}}, nil
	}
	return &autoscaling.UpdateAutoScalingGroupInput{LaunchTemplate: spec}, nil
}

// TerminateInstance implements cloud.Provider.
func (p *Provider) TerminateInstance(ctx context.Context, instanceID string, decrement bool) error {
	_, err := p.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(instanceID), ShouldDecrementDesiredCapacity: aws.Bool(decrement),
	})
	switch {
	case err == nil, isInstanceGone(err):
		return nil
	case code(err) == "ScalingActivityInProgress":
		// Fine if it is this instance's own termination that is under way.
		out, derr := p.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}})
		if derr == nil && len(out.Reservations) > 0 && len(out.Reservations[0].Instances) > 0 {
			switch out.Reservations[0].Instances[0].State.Name {
			case ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated:
				return nil
			}
		}
	}
	return fmt.Errorf("terminating instance %s: %w", instanceID, err)
}

// SetProcesses implements cloud.Provider.
func (p *Provider) SetProcesses(ctx context.Context, g cloud.NodeGroup, processes []string, suspend bool) error {
	var err error
	if suspend {
		_, err = p.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(g.ASGName), ScalingProcesses: processes})
	} else {
		_, err = p.asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String(g.ASGName), ScalingProcesses: processes})
	}
	if err != nil {
		return fmt.Errorf("changing scaling processes %v of %s: %w", processes, g.ASGName, err)
	}
	return nil
}

// LaunchFailures implements cloud.Provider from the group's scaling
// activities, which AWS lists newest first.
func (p *Provider) LaunchFailures(ctx context.Context, g cloud.NodeGroup, since time.Time) ([]string, error) {
	var causes []string
	seen := map[string]bool{}
	pager := autoscaling.NewDescribeScalingActivitiesPaginator(p.asg, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: aws.String(g.ASGName), MaxRecords: aws.Int32(100),
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing scaling activities of %s: %w", g.ASGName, err)
		}
		for _, a := range page.Activities {
			if a.StartTime != nil && a.StartTime.Before(since) {
				return causes, nil // newest first: the rest are older still
			}
			if a.StatusCode != astypes.ScalingActivityStatusCodeFailed && a.StatusCode != astypes.ScalingActivityStatusCodeCancelled {
				continue
			}
			msg := aws.ToString(a.StatusMessage)
			if msg == "" {
				msg = aws.ToString(a.Description)
			}
			if !seen[msg] {
				seen[msg] = true
				causes = append(causes, msg)
			}
		}
	}
	return causes, nil
}

var (
	minorInName      = regexp.MustCompile(`(?:-|aws-k8s-|EKS_Optimized-)(1\.\d+)(?:-|$)`)
	releaseFormat    = regexp.MustCompile(`^(1\.\d+)\.\d+-(\d{8})$`)
	al2023Name       = regexp.MustCompile(`^amazon-eks-node-al2023-(x86_64|arm64)-(standard|nvidia|neuron)-`)
	bottlerocketName = regexp.MustCompile(`^bottlerocket-aws-k8s-[0-9.]+(-nvidia)?-(x86_64|aarch64)-`)
	windowsName      = regexp.MustCompile(`^Windows_Server-2022-English-(Core|Full)-EKS_Optimized-`)
)

// kind is what an EKS node AMI is: its family, architecture and variant.
type kind struct{ family, arch, variant string }

// kindOf reads an AMI's kind from its name, as AWS names the EKS-optimized
// AL2023, Bottlerocket and Windows AMIs; the architecture DescribeImages
// gives stands when the name says nothing (a custom AMI).
func kindOf(name, arch string) kind {
	if m := al2023Name.FindStringSubmatch(name); m != nil {
		return kind{"al2023", m[1], m[2]}
	}
	if m := bottlerocketName.FindStringSubmatch(name); m != nil {
		k := kind{"bottlerocket", "x86_64", "standard"}
		if m[2] == "aarch64" {
			k.arch = "arm64"
		}
		if m[1] != "" {
			k.variant = "nvidia"
		}
		return k
	}
	if m := windowsName.FindStringSubmatch(name); m != nil {
		return kind{"windows", "x86_64", strings.ToLower(m[1])}
	}
	return kind{arch: arch}
}

// ResolveImage implements cloud.Provider, looking AMIs up where eksctl does:
// the SSM public parameters of the EKS-optimized AL2023 (by architecture and
// variant), Bottlerocket and Windows AMIs. The new AMI is of the kind the
// group runs now (q.Like) unless q.Family switches family, and its
// architecture must run on the group's instance types.
func (p *Provider) ResolveImage(ctx context.Context, q cloud.ImageQuery) (cloud.Image, error) {
	want := kind{"al2023", "", "standard"}
	if q.Like != "" {
		if cur, err := p.describeImage(ctx, q.Like); err == nil {
			if k := kindOf(aws.ToString(cur.Name), string(cur.Architecture)); k.family != "" {
				want = k
			} else {
				want.arch = k.arch
			}
		}
	}
	if want.arch == "" {
		want.arch = "x86_64"
		if len(q.InstanceTypes) > 0 {
			if archs, err := p.instanceArchs(ctx, q.InstanceTypes[:1]); err == nil && !slices.Contains(archs[q.InstanceTypes[0]], "x86_64") && slices.Contains(archs[q.InstanceTypes[0]], "arm64") {
				want.arch = "arm64"
			}
		}
	}
	if q.Family != "" && q.Family != want.family {
		switched, err := switchFamily(want, q.Family)
		if err != nil {
			return cloud.Image{}, err
		}
		want = switched
	}
	id := q.ImageID
	var err error
	switch {
	case id != "":
	case q.KubernetesVersion != "":
		id, err = p.param(ctx, recommendedPath(want, q.KubernetesVersion), fmt.Sprintf("%s AMI for Kubernetes %s", describeKind(want), q.KubernetesVersion))
	case q.ReleaseVersion != "":
		m := releaseFormat.FindStringSubmatch(q.ReleaseVersion)
		if m == nil {
			return cloud.Image{}, fmt.Errorf("release version %q: want the EKS AMI form <kubernetes version>-<date>, e.g. 1.37.2-20261115", q.ReleaseVersion)
		}
		if want.family != "al2023" {
			return cloud.Image{}, fmt.Errorf("--release-version names EKS-optimized AL2023 releases, but the group runs %s: use --kubernetes-version or --ami", describeKind(want))
		}
		name := fmt.Sprintf("amazon-eks-node-al2023-%s-%s-%s-v%s", want.arch, want.variant, m[1], m[2])
		id, err = p.param(ctx, al2023Path(m[1], want, name)+"/image_id", fmt.Sprintf("%s AMI release %s", describeKind(want), q.ReleaseVersion))
	default:
		return cloud.Image{}, fmt.Errorf("no target: give a Kubernetes version, a release version or an AMI ID")
	}
	if err != nil {
		return cloud.Image{}, err
	}
	out, err := p.describeImage(ctx, id)
	if err != nil {
		return cloud.Image{}, err
	}
	k := kindOf(aws.ToString(out.Name), string(out.Architecture))
	img := cloud.Image{ID: id, Name: aws.ToString(out.Name), ReleaseVersion: q.ReleaseVersion, Family: k.family, Architecture: string(out.Architecture), Variant: k.variant}
	if m := minorInName.FindStringSubmatch(img.Name); m != nil {
		img.KubeMinor = m[1]
	}
	if err := p.checkArchitecture(ctx, img, q.InstanceTypes); err != nil {
		return cloud.Image{}, err
	}
	return img, nil
}

// switchFamily keeps the architecture and, where the new family has it,
// the variant.
func switchFamily(k kind, family string) (kind, error) {
	from := describeKind(k)
	switch family {
	case "al2023", "bottlerocket":
		if family == "bottlerocket" && k.variant == "neuron" {
			return k, fmt.Errorf("--ami-family bottlerocket: the group runs %s, and Bottlerocket publishes no Neuron variant; pick an AMI with --ami", from)
		}
		if k.family == "windows" || k.variant == "" {
			k.variant = "standard"
		}
	case "windows":
		if k.arch != "x86_64" {
			return k, fmt.Errorf("--ami-family windows: the group runs %s, and the EKS-optimized Windows AMIs are x86_64 only", from)
		}
		k.variant = "core"
	}
	k.family = family
	return k, nil
}

func describeKind(k kind) string {
	switch k.family {
	case "al2023":
		return fmt.Sprintf("EKS-optimized AL2023 (%s, %s)", k.arch, k.variant)
	case "bottlerocket":
		return fmt.Sprintf("Bottlerocket (%s, %s)", k.arch, k.variant)
	case "windows":
		return "EKS-optimized Windows Server 2022 " + titled(k.variant)
	}
	return k.arch + " AMI"
}

func titled(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// recommendedPath is the SSM parameter of the latest AMI of a kind.
func recommendedPath(k kind, minor string) string {
	switch k.family {
	case "bottlerocket":
		flavour := minor
		if k.variant == "nvidia" {
			flavour += "-nvidia"
		}
		return "/aws/service/bottlerocket/aws-k8s-" + flavour + "/" + k.arch + "/latest/image_id"
	case "windows":
		return "/aws/service/ami-windows-latest/Windows_Server-2022-English-" + titled(k.variant) + "-EKS_Optimized-" + minor + "/image_id"
	}
	return al2023Path(minor, k, "recommended") + "/image_id"
}

func al2023Path(minor string, k kind, leaf string) string {
	return "/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/" + k.arch + "/" + k.variant + "/" + leaf
}

func (p *Provider) describeImage(ctx context.Context, id string) (ec2types.Image, error) {
	out, err := p.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if isNotFound(err) {
		return ec2types.Image{}, cloud.NotFoundf(err, "AMI %q", id)
	}
	if err != nil {
		return ec2types.Image{}, fmt.Errorf("describing AMI %s: %w", id, err)
	}
	if len(out.Images) == 0 {
		return ec2types.Image{}, cloud.NotFoundf(nil, "AMI %q", id)
	}
	return out.Images[0], nil
}

// instanceArchs returns the architectures each instance type runs.
func (p *Provider) instanceArchs(ctx context.Context, types []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(types) == 0 {
		return out, nil
	}
	in := &ec2.DescribeInstanceTypesInput{}
	for _, t := range types {
		in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
	}
	pager := ec2.NewDescribeInstanceTypesPaginator(p.ec2, in)
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing instance types %v: %w", types, err)
		}
		for _, it := range page.InstanceTypes {
			var archs []string
			if it.ProcessorInfo != nil {
				for _, a := range it.ProcessorInfo.SupportedArchitectures {
					archs = append(archs, string(a))
				}
			}
			out[string(it.InstanceType)] = archs
		}
	}
	return out, nil
}

// checkArchitecture refuses an AMI the group's instance types cannot run.
func (p *Provider) checkArchitecture(ctx context.Context, img cloud.Image, types []string) error {
	archs, err := p.instanceArchs(ctx, types)
	if err != nil {
		return err
	}
	var misfits []string
	fits := ""
	for _, t := range types {
		if !slices.Contains(archs[t], img.Architecture) {
			misfits = append(misfits, fmt.Sprintf("%s (%s)", t, strings.Join(archs[t], ", ")))
			fits = strings.Join(archs[t], " or ")
		}
	}
	if len(misfits) > 0 {
		return fmt.Errorf("AMI %s (%s) is %s, but the group launches %s: pick an %s AMI, or change the group's instance types first",
			img.ID, img.Name, img.Architecture, strings.Join(misfits, ", "), fits)
	}
	return nil
}

func (p *Provider) param(ctx context.Context, name, what string) (string, error) {
	out, err := p.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if isNotFound(err) {
		return "", cloud.NotFoundf(nil, "%s (SSM parameter %s)", what, name)
	}
	if err != nil {
		return "", fmt.Errorf("reading SSM parameter %s: %w", name, err)
	}
	return aws.ToString(out.Parameter.Value), nil
}

// EC2's vCPU quotas, by Service Quotas code: the kinds noderoll checks.
// Instance families come under a quota by their first letters
// ("Amazon EC2 instance type quotas" in the EC2 user guide).
var vcpuQuotas = []struct {
	code, name string
	spot       bool
	families   func(family string) bool
}{
	{"L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", false, standardFamily},
	{"L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", true, standardFamily},
	{"L-DB2E81BA", "Running On-Demand G and VT instances", false, func(f string) bool { return strings.HasPrefix(f, "g") || strings.HasPrefix(f, "vt") }},
	{"L-417A185B", "Running On-Demand P instances", false, func(f string) bool { return strings.HasPrefix(f, "p") }},
}

func standardFamily(f string) bool {
	if strings.HasPrefix(f, "inf") || strings.HasPrefix(f, "trn") || f == "" {
		return false
	}
	return strings.ContainsRune("acdhimrtz", rune(f[0]))
}

func familyOf(instanceType string) string { return strings.SplitN(instanceType, ".", 2)[0] }

// InstanceQuota implements cloud.Provider: the quota's value from Service
// Quotas, and the vCPUs of the Region's running and pending instances that
// count against it (Service Quotas gives the limit, not the usage).
func (p *Provider) InstanceQuota(ctx context.Context, g cloud.NodeGroup) (cloud.Quota, error) {
	if p.quotas == nil || len(g.InstanceTypes) == 0 {
		return cloud.Quota{}, cloud.NotFoundf(nil, "instance quota of %s", g.Name)
	}
	var q cloud.Quota
	var applies func(string) bool
	for _, k := range vcpuQuotas {
		if k.spot == g.Spot && k.families(familyOf(g.InstanceTypes[0])) {
			q.Code, q.Name, applies = k.code, k.name, k.families
		}
	}
	if q.Code == "" {
		return q, cloud.NotFoundf(nil, "a vCPU quota noderoll knows for %s instances", g.InstanceTypes[0])
	}
	out, err := p.quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(q.Code)})
	if err != nil {
		return q, fmt.Errorf("reading EC2 quota %s (%s): %w", q.Code, q.Name, err)
	}
	if out.Quota != nil {
		q.Limit = aws.ToFloat64(out.Quota.Value)
	}
	var running []ec2types.Instance
	pager := ec2.NewDescribeInstancesPaginator(p.ec2, &ec2.DescribeInstancesInput{
		Filters:    []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
		MaxResults: aws.Int32(1000),
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return q, fmt.Errorf("listing running instances for quota %s: %w", q.Code, err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				spot := i.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot
				if spot == g.Spot && applies(familyOf(string(i.InstanceType))) {
					running = append(running, i)
				}
			}
		}
	}
	types := slices.Clone(g.InstanceTypes)
	for _, i := range running {
		types = append(types, string(i.InstanceType))
	}
	vcpus, err := p.vcpus(ctx, types)
	if err != nil {
		return q, err
	}
	for _, i := range running {
		q.Used += float64(vcpus[string(i.InstanceType)])
	}
	for _, t := range g.InstanceTypes {
		q.PerInstance = max(q.PerInstance, vcpus[t])
	}
	return q, nil
}

// vcpus returns the default vCPUs of each instance type.
func (p *Provider) vcpus(ctx context.Context, types []string) (map[string]int, error) {
	slices.Sort(types)
	types = slices.Compact(types)
	out := map[string]int{}
	for len(types) > 0 {
		n := min(len(types), 100) // DescribeInstanceTypes takes at most 100 names
		in := &ec2.DescribeInstanceTypesInput{}
		for _, t := range types[:n] {
			in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
		}
		types = types[n:]
		pager := ec2.NewDescribeInstanceTypesPaginator(p.ec2, in)
		for pager.HasMorePages() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing instance types: %w", err)
			}
			for _, it := range page.InstanceTypes {
				if it.VCpuInfo != nil {
					out[string(it.InstanceType)] = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
				}
			}
		}
	}
	return out, nil
}

// StartManagedUpdate implements cloud.Provider with EKS's
// UpdateNodegroupVersion.
func (p *Provider) StartManagedUpdate(ctx context.Context, ref cloud.NodeGroupRef, u cloud.ManagedUpdate) (string, error) {
	// The SDK fills in a client request token once per call, so its own
	// retries ask for the same update.
	in := &eks.UpdateNodegroupVersionInput{ClusterName: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), Force: u.Force}
	if u.KubernetesVersion != "" {
		in.Version = aws.String(u.KubernetesVersion)
	}
	if u.ReleaseVersion != "" {
		in.ReleaseVersion = aws.String(u.ReleaseVersion)
	}
	if u.TemplateVersion > 0 {
		g, err := p.NodeGroup(ctx, ref)
		if err != nil {
			return "", err
		}
		in.LaunchTemplate = &ekstypes.LaunchTemplateSpecification{Id: aws.String(g.TemplateID), Version: aws.String(strconv.FormatInt(u.TemplateVersion, 10))}
	}
	out, err := p.eks.UpdateNodegroupVersion(ctx, in)
	if isNotFound(err) {
		return "", cloud.NotFoundf(err, "EKS managed node group %s", ref)
	}
	if err != nil {
		return "", fmt.Errorf("asking EKS to update node group %s: %w", ref, err)
	}
	return aws.ToString(out.Update.Id), nil
}

// StartManagedConfigUpdate implements cloud.Provider with EKS's
// UpdateNodegroupConfig.
func (p *Provider) StartManagedConfigUpdate(ctx context.Context, ref cloud.NodeGroupRef, c cloud.UpdateConfig) (string, error) {
	uc := &ekstypes.NodegroupUpdateConfig{}
	if c.MaxUnavailablePercentage > 0 {
		uc.MaxUnavailablePercentage = aws.Int32(int32(c.MaxUnavailablePercentage))
	} else {
		uc.MaxUnavailable = aws.Int32(int32(c.MaxUnavailable))
	}
	out, err := p.eks.UpdateNodegroupConfig(ctx, &eks.UpdateNodegroupConfigInput{ClusterName: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), UpdateConfig: uc})
	if isNotFound(err) {
		return "", cloud.NotFoundf(err, "EKS managed node group %s", ref)
	}
	if err != nil {
		return "", fmt.Errorf("setting the update config of node group %s to %s: %w", ref, c, err)
	}
	return aws.ToString(out.Update.Id), nil
}

// ManagedUpdate implements cloud.Provider with EKS's DescribeUpdate.
func (p *Provider) ManagedUpdate(ctx context.Context, ref cloud.NodeGroupRef, id string) (cloud.ManagedUpdateState, error) {
	out, err := p.eks.DescribeUpdate(ctx, &eks.DescribeUpdateInput{Name: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name), UpdateId: aws.String(id)})
	if err != nil {
		return cloud.ManagedUpdateState{}, fmt.Errorf("describing EKS update %s of %s: %w", id, ref, err)
	}
	st := cloud.ManagedUpdateState{ID: id, Type: string(out.Update.Type), Status: string(out.Update.Status)}
	for _, e := range out.Update.Errors {
		msg := string(e.ErrorCode) + ": " + aws.ToString(e.ErrorMessage)
		if len(e.ResourceIds) > 0 {
			msg += " (" + strings.Join(e.ResourceIds, ", ") + ")"
		}
		st.Errors = append(st.Errors, msg)
	}
	return st, nil
}

// ManagedUpdateInProgress implements cloud.Provider with EKS's ListUpdates.
func (p *Provider) ManagedUpdateInProgress(ctx context.Context, ref cloud.NodeGroupRef) (string, error) {
	pager := eks.NewListUpdatesPaginator(p.eks, &eks.ListUpdatesInput{Name: aws.String(ref.Cluster), NodegroupName: aws.String(ref.Name)})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("listing EKS updates of %s: %w", ref, err)
		}
		for _, id := range page.UpdateIds {
			st, err := p.ManagedUpdate(ctx, ref, id)
			if err != nil {
				return "", err
			}
			if st.Status == string(ekstypes.UpdateStatusInProgress) {
				return id, nil
			}
		}
	}
	return "", nil
}
