package awssim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Tag is a key/value pair on a group, template or instance.
type Tag struct{ Key, Value string }

// BlockDevice is one entry of a launch template's block device mappings.
type BlockDevice struct {
	DeviceName          string
	VolumeSize          int
	VolumeType          string
	Encrypted           bool
	DeleteOnTermination bool
}

// TemplateData is what a launch template version holds. New versions copy a
// source version and override only what the request names.
type TemplateData struct {
	ImageID            string
	InstanceType       string
	UserData           string
	KeyName            string
	SecurityGroupIDs   []string
	IamInstanceProfile string
	BlockDevices       []BlockDevice
	HTTPTokens         string
	HTTPPutHopLimit    int
	HTTPEndpoint       string
	InstanceTags       []Tag // TagSpecifications for resource type "instance"
	VolumeTags         []Tag // TagSpecifications for resource type "volume"
	// The rest of what real node templates carry (Karpenter's, Terraform
	// modules'), so that a copy can be checked field by field.
	NetworkInterfaces     []NetworkInterface
	PlacementTenancy      string
	Monitoring            bool
	EbsOptimized          bool
	CPUCredits            string // "standard" or "unlimited"
	CapacityReservation   string // "open", "none"
	ShutdownBehavior      string // "stop" or "terminate"
	DisableAPITermination bool
	HostnameType          string // "ip-name" or "resource-name"
	HTTPProtocolIPv6      string
	InstanceMetadataTags  string
}

// NetworkInterface is one entry of a template's network interfaces.
type NetworkInterface struct {
	DeviceIndex         int
	Groups              []string
	AssociatePublicIP   bool
	DeleteOnTermination bool
	InterfaceType       string // "", "efa"
}

// TemplateVersion is one immutable version of a launch template.
type TemplateVersion struct {
	Number      int64
	Description string
	Created     time.Time
	Data        TemplateData
}

// LaunchTemplate is an EC2 launch template with all its versions.
type LaunchTemplate struct {
	ID, Name       string
	DefaultVersion int64
	Versions       []*TemplateVersion // ordered, Versions[i].Number == i+1
	Tags           []Tag
	Created        time.Time
}

func (lt *LaunchTemplate) latest() *TemplateVersion { return lt.Versions[len(lt.Versions)-1] }

// resolve turns "$Latest", "$Default", "" or a number into a version.
func (lt *LaunchTemplate) resolve(v string) (*TemplateVersion, bool) {
	switch v {
	case "$Latest":
		return lt.latest(), true
	case "$Default", "":
		return lt.Versions[lt.DefaultVersion-1], true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > int64(len(lt.Versions)) {
		return nil, false
	}
	return lt.Versions[n-1], true
}

// TemplateRef is how a group or instance names a launch template version.
type TemplateRef struct{ ID, Name, Version string }

// MixedPolicy is a group's MixedInstancesPolicy: its launch template (the
// group's Template) overridden by several instance types.
type MixedPolicy struct {
	InstanceTypes   []string
	OnDemandBase    int
	OnDemandAbove   int // percentage of on-demand above the base
	SpotAllocation  string
	launchesStarted int
}

// Group is an Auto Scaling group.
type Group struct {
	Name string
	ARN  string
	// Template is what the group launches, set directly or, with Mixed,
	// through its MixedInstancesPolicy.
	Template            TemplateRef
	Mixed               *MixedPolicy
	LaunchConfiguration string // set instead of a template: launched from a launch configuration
	Min, Max, Desired   int
	AZs                 []string
	Subnets             []string
	Tags                []Tag
	Suspended           map[string]bool
	TerminationPolicies []string
	Created             time.Time
	retryAt             time.Time // no launch before this, after a failed one
}

// Instance lifecycle as both EC2 and the ASG see it.
const (
	StatePending      = "pending"
	StateRunning      = "running"
	StateShuttingDown = "shutting-down"
	StateTerminated   = "terminated"

	LifecyclePending     = "Pending"
	LifecycleInService   = "InService"
	LifecycleTerminating = "Terminating"
)

// Instance is an EC2 instance, optionally owned by a group.
type Instance struct {
	ID           string
	ImageID      string
	InstanceType string
	AZ           string
	PrivateIP    string
	State        string
	Lifecycle    string // ASG lifecycle; empty once it left its group
	Group        string
	Template     TemplateRef // the resolved version number it was launched from
	Launched     time.Time
	StateChanged time.Time
	Tags         []Tag
	Registered   bool // its Node exists in the cluster
	// NoKubelet: it runs, but its kubelet never joins the cluster (a broken
	// bootstrap, a node role the cluster does not know).
	NoKubelet bool
	Spot      bool // a Spot instance (its group's capacity type): other quotas
}

// NodeName is the EC2 private DNS name a kubelet on EKS registers as.
func (i *Instance) NodeName(region string) string {
	return "ip-" + dashed(i.PrivateIP) + "." + region + ".compute.internal"
}

func dashed(ip string) string {
	out := []byte(ip)
	for k, c := range out {
		if c == '.' {
			out[k] = '-'
		}
	}
	return string(out)
}

// Activity is an Auto Scaling scaling activity.
type Activity struct {
	ID          string
	Group       string
	Description string
	Cause       string
	Status      string // InProgress, Successful, Failed
	Message     string
	Start, End  time.Time
	Progress    int
	instanceID  string
}

// Cluster is an EKS cluster.
type Cluster struct {
	Name, Version, ARN, Endpoint, PlatformVersion string
	Created                                       time.Time
	// CA is the API server's certificate authority (PEM), as
	// DescribeCluster's certificateAuthority.data gives it to clients that
	// build a kubeconfig from it (eksctl, aws eks update-kubeconfig).
	CA []byte
	// The cluster's network, as EKS made it.
	VpcID, SecurityGroupID string
	SubnetIDs              []string
	UID                    string
}

// Nodegroup is an EKS managed node group, backed by one Auto Scaling group.
type Nodegroup struct {
	Name, Cluster, ARN, AmiType, CapacityType string
	Group                                     string // ASG name
	TemplateID, TemplateName                  string
	InstanceTypes                             []string
	Labels                                    map[string]string
	// MaxUnavailable or MaxUnavailablePercentage is the group's
	// updateConfig: how many nodes its updates replace at once.
	MaxUnavailable, MaxUnavailablePercentage int
	// UpdateStrategy is how its version updates replace nodes: DEFAULT
	// (new instances first, then scaled back) or MINIMAL (no surge: only
	// the nodes not on the target are replaced, maxUnavailable at a
	// time). "" reads as DEFAULT.
	UpdateStrategy string
	// TemplateVersion is the version of its launch template EKS records
	// for the group: set at creation and by its updates, not by changes
	// made to the Auto Scaling group directly.
	TemplateVersion int64
	// EKSTemplate: the group was created without a launch template of the
	// user's, and EKS generated the one its Auto Scaling group launches.
	EKSTemplate bool
	Created     time.Time
}

// updateConfig is the group's updateConfig as DescribeNodegroup shows it:
// the one of its two fields that is set.
func (ng *Nodegroup) updateConfig() map[string]any {
	c := map[string]any{"maxUnavailable": ng.MaxUnavailable, "updateStrategy": ng.strategy()}
	if ng.MaxUnavailablePercentage > 0 {
		c = map[string]any{"maxUnavailablePercentage": ng.MaxUnavailablePercentage, "updateStrategy": ng.strategy()}
	}
	return c
}

// strategy is the group's update strategy as EKS names it.
func (ng *Nodegroup) strategy() string {
	if ng.UpdateStrategy == "" {
		return "DEFAULT"
	}
	return ng.UpdateStrategy
}

// unavailable is how many nodes an update of the group replaces at once:
// a percentage of desired rounded up, at most 100.
func (ng *Nodegroup) unavailable(desired int) int {
	if ng.MaxUnavailablePercentage > 0 {
		return min(max((ng.MaxUnavailablePercentage*desired+99)/100, 1), 100)
	}
	return max(ng.MaxUnavailable, 1)
}

// Delays makes instances take time the way real ones do.
type Delays struct {
	Boot     time.Duration // launch until the Node registers
	Shutdown time.Duration // terminate until the Node and instance are gone
}

// Account is the simulated AWS account: the single source of truth that every
// API call reads and writes, so that all clients of one endpoint see the same
// world. All fields are guarded by mu.
type Account struct {
	mu         sync.Mutex
	Region     string
	AccountID  string
	clock      clock.Clock
	delays     Delays
	images     map[string]*Image
	params     map[string]string
	templates  map[string]*LaunchTemplate // by ID
	groups     map[string]*Group
	instances  map[string]*Instance
	clusters   map[string]*Cluster
	nodegroups map[string]*Nodegroup // by cluster + "/" + name
	activities []*Activity
	capacity   map[string]int     // per-AZ instances that may still launch; absent means unlimited
	quotas     map[string]float64 // Service Quotas' EC2 vCPU quotas by code
	updates    map[string]*Update // EKS node group updates by ID
	managed    ManagedTimings
	ops        NodeOps         // the cluster side of managed updates; nil until Run
	runCtx     context.Context // Run's, for the updates it starts
	faults     []*Fault
	throttle   float64       // fraction of calls answered as throttled
	badBoots   int           // instances still to boot without joining the cluster
	slow       time.Duration // added to every launch and termination (slow scaling activities)
	rng        *rand.Rand    // picks them
	calls      []Call
	roles      map[string]Role    // by ARN
	sessions   map[string]session // assumed-role access keys
	tokens     map[string]int64   // CreateLaunchTemplateVersion client tokens: template ID + token -> version
	seq        int64
	ipSeq      map[int]int // next private address to try, per AZ index
	changed    chan struct{}
}

// NewAccount returns an empty account holding the public AMI catalog and its
// SSM parameters.
func NewAccount(region string, clk clock.Clock, d Delays) *Account {
	images, params := buildCatalog()
	return &Account{
		Region: region, AccountID: "123456789012", clock: clk, delays: d,
		images: images, params: params,
		templates: map[string]*LaunchTemplate{}, groups: map[string]*Group{},
		instances: map[string]*Instance{}, clusters: map[string]*Cluster{},
		nodegroups: map[string]*Nodegroup{}, capacity: map[string]int{}, quotas: defaultQuotas(), managed: DefaultManagedTimings, tokens: map[string]int64{},
		roles: map[string]Role{}, sessions: map[string]session{},
		changed: make(chan struct{}, 1), rng: rand.New(rand.NewPCG(1, 2)),
	}
}

// poke wakes the lifecycle loop after a change; callers hold mu.
func (a *Account) poke() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// nextID returns a fresh identifier: a multiplicative hash of a counter,
// unique and stable from run to run, that looks like AWS's random IDs.
func (a *Account) nextID(prefix string, hexDigits int) string {
	a.seq++
	return fmt.Sprintf("%s%0*x", prefix, hexDigits, uint64(0x9e3779b97f4a7c15)*uint64(a.seq)>>(64-4*min(hexDigits, 16)))
}

// uuid returns a deterministic identifier shaped like the UUIDs AWS puts in
// names and ARNs; callers hold mu.
func (a *Account) uuid() string {
	h := a.nextID("", 16) + a.nextID("", 16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

// Image returns an AMI of the catalog.
func (a *Account) Image(id string) (*Image, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	img, ok := a.images[id]
	if !ok {
		return nil, false
	}
	cp := *img
	return &cp, true
}

// SetCapacity limits how many more instances may launch in an AZ; a negative
// value lifts the limit. Launches beyond it fail as InsufficientInstanceCapacity.
func (a *Account) SetCapacity(az string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n < 0 {
		delete(a.capacity, az)
	} else {
		a.capacity[az] = n
	}
	a.poke()
}

// Instances returns a copy of every instance, sorted by launch time then ID.
func (a *Account) Instances() []Instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Instance, 0, len(a.instances))
	for _, i := range a.instances {
		out = append(out, *i)
	}
	sort.Slice(out, func(x, y int) bool {
		if !out[x].Launched.Equal(out[y].Launched) {
			return out[x].Launched.Before(out[y].Launched)
		}
		return out[x].ID < out[y].ID
	})
	return out
}

// Activities returns a copy of the scaling activities, oldest first.
func (a *Account) Activities() []Activity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Activity, len(a.activities))
	for k, act := range a.activities {
		out[k] = *act
	}
	return out
}

func (a *Account) groupInstances(g string) []*Instance {
	var out []*Instance
	for _, i := range a.instances {
		if i.Group == g && i.Lifecycle != "" {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(x, y int) bool { return out[x].ID < out[y].ID })
	return out
}

func (a *Account) nodegroupFor(group string) *Nodegroup {
	for _, ng := range a.nodegroups {
		if ng.Group == group {
			return ng
		}
	}
	return nil
}

func (a *Account) findTemplate(id, name string) *LaunchTemplate {
	if id != "" {
		return a.templates[id]
	}
	for _, lt := range a.templates {
		if lt.Name == name {
			return lt
		}
	}
	return nil
}

// Parameter reads an SSM parameter.
func (a *Account) Parameter(name string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.params[name]
	return v, ok
}
