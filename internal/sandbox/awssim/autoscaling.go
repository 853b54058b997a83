package awssim

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

const asgNS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"

var autoscalingActions = map[string]queryAction{
	"DescribeAutoScalingGroups":           describeAutoScalingGroups,
	"DescribeAutoScalingInstances":        describeAutoScalingInstances,
	"UpdateAutoScalingGroup":              updateAutoScalingGroup,
	"SetDesiredCapacity":                  setDesiredCapacity,
	"TerminateInstanceInAutoScalingGroup": terminateInstanceInAutoScalingGroup,
	"SuspendProcesses":                    suspendProcesses(true),
	"ResumeProcesses":                     suspendProcesses(false),
	"DescribeScalingActivities":           describeScalingActivities,
}

// scalingProcesses are the processes an ASG can suspend.
var scalingProcesses = []string{"Launch", "Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance", "HealthCheck", "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions"}

type xmlTemplateSpec struct {
	LaunchTemplateID   string `xml:"LaunchTemplateId"`
	LaunchTemplateName string `xml:"LaunchTemplateName"`
	Version            string `xml:"Version"`
}

type xmlASGInstance struct {
	InstanceID           string          `xml:"InstanceId"`
	InstanceType         string          `xml:"InstanceType"`
	AvailabilityZone     string          `xml:"AvailabilityZone"`
	LifecycleState       string          `xml:"LifecycleState"`
	HealthStatus         string          `xml:"HealthStatus"`
	LaunchTemplate       xmlTemplateSpec `xml:"LaunchTemplate"`
	ProtectedFromScaleIn bool            `xml:"ProtectedFromScaleIn"`
	AutoScalingGroupName string          `xml:"AutoScalingGroupName,omitempty"`
}

type xmlASGTag struct {
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Key               string `xml:"Key"`
	Value             string `xml:"Value"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
}

type xmlSuspended struct {
	ProcessName      string `xml:"ProcessName"`
	SuspensionReason string `xml:"SuspensionReason"`
}

type xmlMixedPolicy struct {
	LaunchTemplate struct {
		Spec      xmlTemplateSpec `xml:"LaunchTemplateSpecification"`
		Overrides []struct {
			InstanceType string `xml:"InstanceType"`
		} `xml:"Overrides>member"`
	} `xml:"LaunchTemplate"`
	Distribution struct {
		OnDemandBaseCapacity                int    `xml:"OnDemandBaseCapacity"`
		OnDemandPercentageAboveBaseCapacity int    `xml:"OnDemandPercentageAboveBaseCapacity"`
		SpotAllocationStrategy              string `xml:"SpotAllocationStrategy,omitempty"`
	} `xml:"InstancesDistribution"`
}

type xmlASG struct {
	AutoScalingGroupName    string           `xml:"AutoScalingGroupName"`
	AutoScalingGroupARN     string           `xml:"AutoScalingGroupARN"`
	LaunchTemplate          *xmlTemplateSpec `xml:"LaunchTemplate,omitempty"`
	MixedInstancesPolicy    *xmlMixedPolicy  `xml:"MixedInstancesPolicy,omitempty"`
	LaunchConfigurationName string           `xml:"LaunchConfigurationName,omitempty"`
	MinSize                 int              `xml:"MinSize"`
	MaxSize                 int              `xml:"MaxSize"`
	DesiredCapacity         int              `xml:"DesiredCapacity"`
	DefaultCooldown         int              `xml:"DefaultCooldown"`
	AvailabilityZones       []string         `xml:"AvailabilityZones>member"`
	HealthCheckType         string           `xml:"HealthCheckType"`
	CreatedTime             string           `xml:"CreatedTime"`
	Instances               []xmlASGInstance `xml:"Instances>member"`
	SuspendedProcesses      []xmlSuspended   `xml:"SuspendedProcesses>member"`
	VPCZoneIdentifier       string           `xml:"VPCZoneIdentifier"`
	Tags                    []xmlASGTag      `xml:"Tags>member"`
	TerminationPolicies     []string         `xml:"TerminationPolicies>member"`
	CapacityRebalance       bool             `xml:"CapacityRebalance"`
}

func (a *Account) group(name string) (*Group, error) {
	g, ok := a.groups[name]
	if !ok || name == "" {
		return nil, validation("AutoScalingGroup name not found - AutoScalingGroup '%s' not found", name)
	}
	return g, nil
}

func asgInstance(i *Instance, withGroup bool) xmlASGInstance {
	x := xmlASGInstance{
		InstanceID: i.ID, InstanceType: i.InstanceType, AvailabilityZone: i.AZ,
		LifecycleState: i.Lifecycle, HealthStatus: "Healthy",
		LaunchTemplate: xmlTemplateSpec{i.Template.ID, i.Template.Name, i.Template.Version},
	}
	if withGroup {
		x.AutoScalingGroupName = i.Group
	}
	return x
}

func (a *Account) xmlGroup(g *Group) xmlASG {
	spec := xmlTemplateSpec{g.Template.ID, g.Template.Name, g.Template.Version}
	x := xmlASG{
		AutoScalingGroupName: g.Name, AutoScalingGroupARN: g.ARN,
		MinSize: g.Min, MaxSize: g.Max, DesiredCapacity: g.Desired, DefaultCooldown: 300,
		AvailabilityZones: g.AZs, HealthCheckType: "EC2", CreatedTime: awsTime(g.Created),
		VPCZoneIdentifier: strings.Join(g.Subnets, ","), TerminationPolicies: g.TerminationPolicies,
	}
	switch {
	case g.LaunchConfiguration != "":
		x.LaunchConfigurationName = g.LaunchConfiguration
	case g.Mixed != nil:
		m := &xmlMixedPolicy{}
		m.LaunchTemplate.Spec = spec
		for _, t := range g.Mixed.InstanceTypes {
			m.LaunchTemplate.Overrides = append(m.LaunchTemplate.Overrides, struct {
				InstanceType string `xml:"InstanceType"`
			}{t})
		}
		m.Distribution.OnDemandBaseCapacity, m.Distribution.OnDemandPercentageAboveBaseCapacity = g.Mixed.OnDemandBase, g.Mixed.OnDemandAbove
		m.Distribution.SpotAllocationStrategy = g.Mixed.SpotAllocation
		x.MixedInstancesPolicy = m
	default:
		x.LaunchTemplate = &spec
	}
	for _, i := range a.groupInstances(g.Name) {
		x.Instances = append(x.Instances, asgInstance(i, false))
	}
	for _, p := range scalingProcesses {
		if g.Suspended[p] {
			x.SuspendedProcesses = append(x.SuspendedProcesses, xmlSuspended{p, "User suspended at " + awsTime(a.clock.Now())})
		}
	}
	for _, t := range g.Tags {
		x.Tags = append(x.Tags, xmlASGTag{g.Name, "auto-scaling-group", t.Key, t.Value, true})
	}
	return x
}

// matchesFilters applies DescribeAutoScalingGroups filters: tag:KEY, tag-key,
// tag-value.
func matchesFilters(g *Group, form url.Values) (bool, error) {
	for n := 1; ; n++ {
		name := form.Get(fmt.Sprintf("Filters.member.%d.Name", n))
		if name == "" {
			return true, nil
		}
		values := list(form, fmt.Sprintf("Filters.member.%d.Values.member", n))
		hit := false
		for _, t := range g.Tags {
			for _, v := range values {
				switch {
				case strings.HasPrefix(name, "tag:"):
					hit = hit || (t.Key == name[4:] && t.Value == v)
				case name == "tag-key":
					hit = hit || t.Key == v
				case name == "tag-value":
					hit = hit || t.Value == v
				default:
					return false, validation("Filter name '%s' is invalid; use tag:<key>, tag-key or tag-value", name)
				}
			}
		}
		if !hit {
			return false, nil
		}
	}
}

func describeAutoScalingGroups(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := list(form, "AutoScalingGroupNames.member")
	if len(names) == 0 {
		for n := range a.groups {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var picked []*Group
	for _, n := range names {
		g, ok := a.groups[n]
		if !ok {
			continue // AWS omits unknown names rather than failing
		}
		ok, err := matchesFilters(g, form)
		if err != nil {
			return nil, err
		}
		if ok {
			picked = append(picked, g)
		}
	}
	from, to, next, err := autoScalingGroupsPages.window(form, len(picked))
	if err != nil {
		return nil, err
	}
	type result struct {
		Groups    []xmlASG `xml:"AutoScalingGroups>member"`
		NextToken string   `xml:"NextToken,omitempty"`
	}
	res := result{Groups: []xmlASG{}, NextToken: next}
	for _, g := range picked[from:to] {
		res.Groups = append(res.Groups, a.xmlGroup(g))
	}
	return &queryResp{action: "DescribeAutoScalingGroups", ns: asgNS, result: res}, nil
}

func describeAutoScalingInstances(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := list(form, "InstanceIds.member")
	type result struct {
		Instances []xmlASGInstance `xml:"AutoScalingInstances>member"`
	}
	res := result{Instances: []xmlASGInstance{}}
	for _, i := range a.instances {
		if i.Lifecycle == "" {
			continue
		}
		if len(ids) > 0 && !contains(ids, i.ID) {
			continue
		}
		res.Instances = append(res.Instances, asgInstance(i, true))
	}
	sort.Slice(res.Instances, func(x, y int) bool { return res.Instances[x].InstanceID < res.Instances[y].InstanceID })
	return &queryResp{action: "DescribeAutoScalingInstances", ns: asgNS, result: res}, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func updateAutoScalingGroup(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, err := a.group(form.Get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	minSize, hasMin, err := optInt(form, "MinSize")
	if err != nil {
		return nil, err
	}
	maxSize, hasMax, err := optInt(form, "MaxSize")
	if err != nil {
		return nil, err
	}
	desired, hasDesired, err := optInt(form, "DesiredCapacity")
	if err != nil {
		return nil, err
	}
	if !hasMin {
		minSize = g.Min
	}
	if !hasMax {
		maxSize = g.Max
	}
	if !hasDesired {
		desired = g.Desired
		// As AWS does: a new min or max pulls an out-of-range desired along.
		if desired < minSize {
			desired = minSize
		}
		if desired > maxSize {
			desired = maxSize
		}
	}
	if minSize < 0 || minSize > maxSize {
		return nil, validation("Max bound, %d, must be greater than or equal to min bound, %d", maxSize, minSize)
	}
	if desired < minSize || desired > maxSize {
		return nil, validation("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, minSize, maxSize)
	}
	tmpl, mixed := g.Template, g.Mixed
	// LaunchTemplate replaces a MixedInstancesPolicy; MixedInstancesPolicy
	// updates only what it names (its overrides stay unless given), as the
	// UpdateAutoScalingGroup reference describes; both at once are refused.
	direct, viaMixed := "LaunchTemplate.", "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification."
	hasDirect := form.Get(direct+"LaunchTemplateId") != "" || form.Get(direct+"LaunchTemplateName") != ""
	hasMixed := form.Get(viaMixed+"LaunchTemplateId") != "" || form.Get(viaMixed+"LaunchTemplateName") != "" || form.Get(viaMixed+"Version") != ""
	if hasDirect && hasMixed {
		return nil, validation("Only one of LaunchTemplate or MixedInstancesPolicy may be specified in the request")
	}
	if hasDirect || hasMixed {
		prefix := direct
		if hasMixed {
			prefix = viaMixed
		}
		id, name := form.Get(prefix+"LaunchTemplateId"), form.Get(prefix+"LaunchTemplateName")
		if id == "" && name == "" { // a mixed policy update naming only a version keeps its template
			id, name = g.Template.ID, g.Template.Name
		}
		lt := a.findTemplate(id, name)
		if lt == nil {
			return nil, validation("You must use a valid fully-formed launch template. The specified launch template, with template ID %s%s, does not exist.", id, name)
		}
		v := form.Get(prefix + "Version")
		if _, ok := lt.resolve(v); !ok {
			return nil, validation("You must use a valid fully-formed launch template. The specified launch template version %q does not exist.", v)
		}
		tmpl = TemplateRef{ID: lt.ID, Name: lt.Name, Version: v}
		if v == "" {
			tmpl.Version = "$Default"
		}
		if hasDirect {
			mixed = nil
		} else if mixed == nil {
			mixed = &MixedPolicy{}
		}
		if hasMixed {
			if types := list(form, "MixedInstancesPolicy.LaunchTemplate.Overrides.member"); len(types) > 0 {
				mixed.InstanceTypes = types
			}
		}
		g.LaunchConfiguration = ""
	}
	g.Mixed = mixed
	g.Min, g.Max, g.Desired, g.Template = minSize, maxSize, desired, tmpl
	a.poke()
	return &queryResp{action: "UpdateAutoScalingGroup", ns: asgNS}, nil
}

func setDesiredCapacity(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g, err := a.group(form.Get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	desired, ok, err := optInt(form, "DesiredCapacity")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, validation("1 validation error detected: Value null at 'desiredCapacity' failed to satisfy constraint: Member must not be null")
	}
	if desired > g.Max {
		return nil, validation("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", desired, g.Max)
	}
	if desired < g.Min {
		return nil, validation("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", desired, g.Min)
	}
	g.Desired = desired
	a.poke()
	return &queryResp{action: "SetDesiredCapacity", ns: asgNS}, nil
}

func terminateInstanceInAutoScalingGroup(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := form.Get("InstanceId")
	i, ok := a.instances[id]
	if !ok || i.Lifecycle == "" {
		return nil, validation("Instance Id not found - No managed instance found for instance ID: %s", id)
	}
	if i.Lifecycle == LifecycleTerminating {
		return nil, &APIError{Code: "ScalingActivityInProgress", Message: fmt.Sprintf("Instance %s is already being terminated.", id), Status: 400}
	}
	g := a.groups[i.Group]
	decrement := optBool(form, "ShouldDecrementDesiredCapacity")
	cause := "instance " + id + " taken out of service in response to a user request"
	if decrement {
		if g.Desired-1 < g.Min {
			return nil, validation("Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.Min)
		}
		cause += fmt.Sprintf(", shrinking the capacity from %d to %d", g.Desired, g.Desired-1)
		g.Desired--
	}
	a.terminate(i, a.clock.Now(), cause)
	act := a.activities[len(a.activities)-1]
	type result struct {
		Activity xmlActivity `xml:"Activity"`
	}
	return &queryResp{action: "TerminateInstanceInAutoScalingGroup", ns: asgNS, result: result{xmlAct(act)}}, nil
}

func suspendProcesses(suspend bool) queryAction {
	return func(a *Account, form url.Values) (any, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		g, err := a.group(form.Get("AutoScalingGroupName"))
		if err != nil {
			return nil, err
		}
		procs := list(form, "ScalingProcesses.member")
		if len(procs) == 0 {
			procs = scalingProcesses
		}
		for _, p := range procs {
			if !contains(scalingProcesses, p) {
				return nil, validation("Process '%s' is not a valid scaling process; valid: %s", p, strings.Join(scalingProcesses, ", "))
			}
		}
		if g.Suspended == nil {
			g.Suspended = map[string]bool{}
		}
		for _, p := range procs {
			g.Suspended[p] = suspend
		}
		a.poke()
		action := "ResumeProcesses"
		if suspend {
			action = "SuspendProcesses"
		}
		return &queryResp{action: action, ns: asgNS}, nil
	}
}

type xmlActivity struct {
	ActivityID           string `xml:"ActivityId"`
	AutoScalingGroupName string `xml:"AutoScalingGroupName"`
	Description          string `xml:"Description"`
	Cause                string `xml:"Cause"`
	StartTime            string `xml:"StartTime"`
	EndTime              string `xml:"EndTime,omitempty"`
	StatusCode           string `xml:"StatusCode"`
	StatusMessage        string `xml:"StatusMessage,omitempty"`
	Progress             int    `xml:"Progress"`
}

func xmlAct(act *Activity) xmlActivity {
	x := xmlActivity{
		ActivityID: act.ID, AutoScalingGroupName: act.Group, Description: act.Description,
		Cause: act.Cause, StartTime: awsTime(act.Start), StatusCode: act.Status,
		StatusMessage: act.Message, Progress: act.Progress,
	}
	if !act.End.IsZero() {
		x.EndTime = awsTime(act.End)
	}
	return x
}

func describeScalingActivities(a *Account, form url.Values) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	name := form.Get("AutoScalingGroupName")
	if name != "" {
		if _, err := a.group(name); err != nil {
			return nil, err
		}
	}
	ids := list(form, "ActivityIds.member")
	var picked []*Activity
	for k := len(a.activities) - 1; k >= 0; k-- { // newest first, as AWS lists them
		act := a.activities[k]
		if (name == "" || act.Group == name) && (len(ids) == 0 || contains(ids, act.ID)) {
			picked = append(picked, act)
		}
	}
	from, to, next, err := scalingActivitiesPages.window(form, len(picked))
	if err != nil {
		return nil, err
	}
	type result struct {
		Activities []xmlActivity `xml:"Activities>member"`
		NextToken  string        `xml:"NextToken,omitempty"`
	}
	res := result{Activities: []xmlActivity{}, NextToken: next}
	for _, act := range picked[from:to] {
		res.Activities = append(res.Activities, xmlAct(act))
	}
	return &queryResp{action: "DescribeScalingActivities", ns: asgNS, result: res}, nil
}
