package aws

// Groups: finding a node group, its Auto Scaling group, instances and
// launch template, and changing them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/noderoll/noderoll/internal/cloud"
)

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
			g.UpdateConfig = cloud.UpdateConfig{MaxUnavailable: int(aws.ToInt32(c.MaxUnavailable)), MaxUnavailablePercentage: int(aws.ToInt32(c.MaxUnavailablePercentage)),
				Strategy: string(c.UpdateStrategy)}
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
	details, unknown := p.known.get(ids)
	if len(unknown) > 0 {
		described, err := p.describeInstances(ctx, unknown)
		if err != nil {
			return g, fmt.Errorf("describing the instances of %s: %w", g.ASGName, err)
		}
		for id, d := range described {
			f := instanceFacts{image: aws.ToString(d.ImageId), node: aws.ToString(d.PrivateDnsName), launched: aws.ToTime(d.LaunchTime)}
			details[id] = f
			p.known.put(id, f)
		}
	}
	for k := range g.Instances {
		d := details[g.Instances[k].ID]
		g.Instances[k].ImageID, g.Instances[k].NodeName, g.Instances[k].Launched = d.image, d.node, d.launched
	}
	sort.Slice(g.Instances, func(a, b int) bool { return g.Instances[a].ID < g.Instances[b].ID })
	return g, nil
}

// instanceFacts is what noderoll reads of an instance that EC2 never
// changes once it has said it.
type instanceFacts struct {
	image, node string
	launched    time.Time
}

// instanceCache holds instanceFacts by instance ID; the zero value is
// ready. An instance is kept only once all three are known (EC2 may
// answer a just-launched one without them).
type instanceCache struct {
	mu    sync.Mutex
	facts map[string]instanceFacts
}

// maxKnownInstances bounds the cache of a long-running controller: past
// it, the cache starts afresh (and describes again what it needs).
const maxKnownInstances = 20000

func (c *instanceCache) get(ids []string) (map[string]instanceFacts, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]instanceFacts, len(ids))
	var unknown []string
	for _, id := range ids {
		if f, ok := c.facts[id]; ok {
			out[id] = f
		} else {
			unknown = append(unknown, id)
		}
	}
	return out, unknown
}

func (c *instanceCache) put(id string, f instanceFacts) {
	if f.image == "" || f.node == "" || f.launched.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.facts == nil || len(c.facts) >= maxKnownInstances {
		c.facts = map[string]instanceFacts{}
	}
	c.facts[id] = f
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

// terminationPages bounds how far back TerminationTimes reads: AWS keeps six
// weeks of a group's activities, and a plan needs only the recent ones.
const terminationPages = 5

// TerminationTimes implements cloud.Provider from the group's scaling
// activities: each successful "Terminating EC2 instance" activity, from
// its start to its end (the instance terminated).
func (p *Provider) TerminationTimes(ctx context.Context, g cloud.NodeGroup, limit int) ([]time.Duration, error) {
	var out []time.Duration
	pager := autoscaling.NewDescribeScalingActivitiesPaginator(p.asg, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: aws.String(g.ASGName), MaxRecords: aws.Int32(100),
	})
	for page := 0; pager.HasMorePages() && page < terminationPages && len(out) < limit; page++ {
		res, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing scaling activities of %s: %w", g.ASGName, err)
		}
		for _, a := range res.Activities {
			if a.StatusCode != astypes.ScalingActivityStatusCodeSuccessful || a.StartTime == nil || a.EndTime == nil ||
				!strings.HasPrefix(aws.ToString(a.Description), "Terminating EC2 instance") {
				continue
			}
			if took := a.EndTime.Sub(*a.StartTime); took >= 0 && len(out) < limit {
				out = append(out, took)
			}
		}
	}
	return out, nil
}
