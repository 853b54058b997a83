package awssim

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// CreateCluster adds an EKS cluster to the account.
func (a *Account) CreateCluster(name, version, endpoint string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clusters[name] = &Cluster{
		Name: name, Version: version, Endpoint: endpoint, PlatformVersion: "eks.3",
		ARN:     fmt.Sprintf("arn:aws:eks:%s:%s:cluster/%s", a.Region, a.AccountID, name),
		Created: a.clock.Now(),
		VpcID:   a.nextID("vpc-0", 16), SecurityGroupID: a.nextID("sg-0", 16),
		SubnetIDs: []string{a.nextID("subnet-0", 16), a.nextID("subnet-0", 16), a.nextID("subnet-0", 16)},
		UID:       strings.ToUpper(strings.ReplaceAll(a.uuid(), "-", "")),
	}
}

// SetClusterCA sets the certificate authority (PEM) of a cluster's API
// server, which DescribeCluster gives as certificateAuthority.data.
func (a *Account) SetClusterCA(name string, pem []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clusters[name]
	if !ok {
		return fmt.Errorf("no cluster %q in the account", name)
	}
	c.CA = append([]byte(nil), pem...)
	return nil
}

// GroupSpec describes a node group to create: an EKS managed node group (an
// Auto Scaling group EKS owns) or a self-managed one as eksctl makes it.
type GroupSpec struct {
	Cluster        string
	Name           string
	Managed        bool
	AZs            []string
	Min, Max       int
	Desired        int
	InstanceType   string
	ImageID        string
	MaxUnavailable int
	// Plain makes a self-managed group as Terraform or plain CloudFormation
	// do: named by its Auto Scaling group, tagged only for the cluster, so
	// its nodes carry no node group label.
	Plain bool
	// MixedInstanceTypes sets the template through a MixedInstancesPolicy
	// that overrides it with these types (on-demand base 1, spot above).
	MixedInstanceTypes []string
	// LaunchConfiguration makes an old group that launches from a launch
	// configuration of this name instead of a template.
	LaunchConfiguration string
	// TemplateVersion is how the group names its template's version: "1"
	// (the default), "$Latest" or "$Default".
	TemplateVersion string
	// RichTemplate gives the template what Terraform modules and Karpenter
	// put in theirs: network interfaces (instead of top-level security
	// groups), placement, monitoring, credits, metadata tags and more.
	RichTemplate bool
	// EKSTemplate makes a managed group as EKS does when it is given no
	// launch template: EKS generates one (named eks-...), and the node
	// group names none of the user's.
	EKSTemplate bool
	// Subnets, one per AZ in order, are existing subnets the group uses
	// (CreateNodegroup names them); empty: new ones.
	Subnets []string
	// AmiType, Labels and TemplateVersion of an EKS node group, as
	// CreateNodegroup sets them; empty: eksctl's.
	AmiType string
	Labels  map[string]string
}

// CreateNodeGroup creates the launch template, the Auto Scaling group and,
// for a managed group, the EKS node group, shaped like those eksctl and EKS
// create. Instances launch through the lifecycle as for any group. It returns
// the Auto Scaling group's name.
func (a *Account) CreateNodeGroup(s GroupSpec) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clusters[s.Cluster]
	if !ok {
		return "", fmt.Errorf("no cluster %q in the account", s.Cluster)
	}
	if _, ok := a.images[s.ImageID]; !ok {
		return "", fmt.Errorf("no image %q in the catalog", s.ImageID)
	}
	if s.Min > s.Desired || s.Desired > s.Max || len(s.AZs) == 0 {
		return "", fmt.Errorf("group %q: want min <= desired <= max and at least one AZ", s.Name)
	}
	now := a.clock.Now()
	uid := a.uuid()
	kind := "unmanaged"
	asgName := fmt.Sprintf("eksctl-%s-nodegroup-%s-NodeGroup-%s", s.Cluster, s.Name, strings.ToUpper(a.nextID("", 12)))
	if s.Managed {
		kind, asgName = "managed", "eks-"+s.Name+"-"+uid
	}
	if s.Plain && s.Managed {
		return "", fmt.Errorf("group %q: a managed node group is never plain", s.Name)
	}
	if s.Plain {
		asgName = s.Name
	}
	lt := a.seedTemplate(s, c, kind, uid, now)
	a.templates[lt.ID] = lt
	g := a.seedGroup(s, asgName, uid, lt, now)
	if s.Managed {
		g.Tags = append(g.Tags, Tag{"eks:nodegroup-name", s.Name})
		a.nodegroups[s.Cluster+"/"+s.Name] = seedNodegroup(s, a.Region, a.AccountID, asgName, uid, lt, now)
	}
	a.groups[asgName] = g
	a.poke()
	return asgName, nil
}

// seedTemplate is the launch template eksctl (or EKS, s.EKSTemplate)
// creates for a group of kind managed or unmanaged.
func (a *Account) seedTemplate(s GroupSpec, c *Cluster, kind, uid string, now time.Time) *LaunchTemplate {
	instanceTags := []Tag{
		{"Name", s.Cluster + "-" + s.Name + "-Node"},
		{"alpha.eksctl.io/nodegroup-name", s.Name},
		{"alpha.eksctl.io/nodegroup-type", kind},
		{"eks:cluster-name", s.Cluster},
	}
	if s.Plain {
		instanceTags = []Tag{{"Name", s.Cluster + "-" + s.Name + "-Node"}, {"kubernetes.io/cluster/" + s.Cluster, "owned"}}
	}
	if s.Managed {
		instanceTags = append(instanceTags, Tag{"eks:nodegroup-name", s.Name})
	}
	ltName := "eksctl-" + s.Cluster + "-nodegroup-" + s.Name
	if s.EKSTemplate {
		ltName = "eks-" + uid
	}
	lt := &LaunchTemplate{
		ID: a.nextID("lt-0", 16), Name: ltName,
		DefaultVersion: 1, Created: now,
		Tags: []Tag{{"alpha.eksctl.io/cluster-name", s.Cluster}, {"alpha.eksctl.io/nodegroup-name", s.Name}},
		Versions: []*TemplateVersion{{Number: 1, Created: now, Data: TemplateData{
			ImageID: s.ImageID, InstanceType: s.InstanceType,
			UserData:         nodeadmUserData(c),
			SecurityGroupIDs: []string{a.nextID("sg-0", 16)},
			BlockDevices:     []BlockDevice{{DeviceName: "/dev/xvda", VolumeSize: 80, VolumeType: "gp3", Encrypted: true, DeleteOnTermination: true}},
			HTTPTokens:       "required", HTTPPutHopLimit: 2, HTTPEndpoint: "enabled",
			InstanceTags: instanceTags, VolumeTags: instanceTags[:2],
		}}},
	}
	if s.RichTemplate {
		d := &lt.Versions[0].Data
		d.NetworkInterfaces = []NetworkInterface{{DeviceIndex: 0, Groups: d.SecurityGroupIDs, DeleteOnTermination: true}, {DeviceIndex: 1, Groups: []string{a.nextID("sg-0", 16)}, DeleteOnTermination: true, InterfaceType: "efa"}}
		d.SecurityGroupIDs = nil // EC2 takes them in the interfaces when those are given
		d.PlacementTenancy, d.Monitoring, d.EbsOptimized, d.CPUCredits = "default", true, true, "unlimited"
		d.CapacityReservation, d.ShutdownBehavior, d.DisableAPITermination, d.HostnameType = "open", "terminate", true, "resource-name"
		d.HTTPProtocolIPv6, d.InstanceMetadataTags, d.KeyName = "enabled", "enabled", "ops-key"
		d.IamInstanceProfile = "eks-node-" + s.Name
		d.BlockDevices = append(d.BlockDevices, BlockDevice{DeviceName: "/dev/xvdb", VolumeSize: 200, VolumeType: "io2", Encrypted: true, DeleteOnTermination: false})
	}
	return lt
}

// seedGroup is the group's Auto Scaling group, launching lt.
func (a *Account) seedGroup(s GroupSpec, asgName, uid string, lt *LaunchTemplate, now time.Time) *Group {
	subnets := append([]string(nil), s.Subnets...)
	for k := len(subnets); k < len(s.AZs); k++ {
		subnets = append(subnets, a.nextID("subnet-0", 16))
	}
	g := &Group{
		Name: asgName, ARN: fmt.Sprintf("arn:aws:autoscaling:%s:%s:autoScalingGroup:%s:autoScalingGroupName/%s", a.Region, a.AccountID, uid, asgName),
		Template: TemplateRef{ID: lt.ID, Name: lt.Name, Version: cmp.Or(s.TemplateVersion, "1")},
		Min:      s.Min, Max: s.Max, Desired: s.Desired, AZs: append([]string(nil), s.AZs...),
		Subnets: subnets, Suspended: map[string]bool{}, TerminationPolicies: []string{"AllocationStrategy", "OldestLaunchTemplate", "OldestInstance"},
		Created: now,
		Tags: []Tag{
			{"eks:cluster-name", s.Cluster},
			{"alpha.eksctl.io/nodegroup-name", s.Name},
			{"k8s.io/cluster-autoscaler/enabled", "true"},
			{"k8s.io/cluster-autoscaler/" + s.Cluster, "owned"},
			{"kubernetes.io/cluster/" + s.Cluster, "owned"},
		},
	}
	if s.Plain {
		g.Tags = []Tag{{"Name", s.Name}, {"kubernetes.io/cluster/" + s.Cluster, "owned"}}
	}
	if len(s.MixedInstanceTypes) > 0 {
		g.Mixed = &MixedPolicy{InstanceTypes: append([]string(nil), s.MixedInstanceTypes...), OnDemandBase: 1, SpotAllocation: "price-capacity-optimized"}
	}
	if s.LaunchConfiguration != "" {
		g.LaunchConfiguration, g.Template = s.LaunchConfiguration, TemplateRef{}
	}
	return g
}

// seedNodegroup is EKS's record of a managed node group.
func seedNodegroup(s GroupSpec, region, account, asgName, uid string, lt *LaunchTemplate, now time.Time) *Nodegroup {
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{"alpha.eksctl.io/cluster-name": s.Cluster, "alpha.eksctl.io/nodegroup-name": s.Name}
	}
	return &Nodegroup{
		Name: s.Name, Cluster: s.Cluster, Group: asgName, AmiType: cmp.Or(s.AmiType, "AL2023_x86_64_STANDARD"),
		ARN:          fmt.Sprintf("arn:aws:eks:%s:%s:nodegroup/%s/%s/%s", region, account, s.Cluster, s.Name, uid),
		CapacityType: "ON_DEMAND", TemplateID: lt.ID, TemplateName: lt.Name,
		InstanceTypes: []string{s.InstanceType}, MaxUnavailable: max(1, s.MaxUnavailable),
		TemplateVersion: 1, EKSTemplate: s.EKSTemplate,
		Labels:  labels,
		Created: now,
	}
}

// nodeadmUserData is the AL2023 bootstrap an EKS launch template carries:
// a MIME document holding nodeadm's NodeConfig, base64-encoded.
func nodeadmUserData(c *Cluster) string {
	doc := strings.Join([]string{
		"MIME-Version: 1.0",
		`Content-Type: multipart/mixed; boundary="//"`,
		"",
		"--//",
		"Content-Type: application/node.eks.aws",
		"",
		"---",
		"apiVersion: node.eks.aws/v1alpha1",
		"kind: NodeConfig",
		"spec:",
		"  cluster:",
		"    name: " + c.Name,
		"    apiServerEndpoint: " + c.Endpoint,
		"    certificateAuthority: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
		"    cidr: 10.100.0.0/16",
		"",
		"--//--",
		"",
	}, "\n")
	return base64.StdEncoding.EncodeToString([]byte(doc))
}
