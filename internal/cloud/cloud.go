// Package cloud is the seam between the upgrade engine and a cloud: a small
// interface in noderoll's own words, implemented per cloud (see cloud/aws).
package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/terms"
)

// NodeGroupRef names a node group within a cluster.
type NodeGroupRef struct {
	Cluster string
	Name    string
}

func (r NodeGroupRef) String() string { return r.Cluster + "/" + r.Name }

// Cluster is what the cloud says of a Kubernetes cluster.
type Cluster struct {
	Name    string
	Version string // Kubernetes minor, "1.37"
}

// Instance is one machine of a group.
type Instance struct {
	ID              string
	AZ              string
	ImageID         string
	Lifecycle       string // Pending, InService, Terminating, ...
	TemplateVersion string // launch template version it was launched from
	NodeName        string // the Node it registers as (EC2 private DNS name)
	// Launched is when EC2 launched it (zero when unknown): a plan reads
	// from it how long the group's instances take to become Ready nodes.
	Launched time.Time
}

// Terminating reports whether the instance is on its way out of the group.
func (i Instance) Terminating() bool {
	return len(i.Lifecycle) >= 11 && i.Lifecycle[:11] == "Terminating"
}

// NodeGroup is a group of instances replaced together: an EKS managed node
// group or a self-managed Auto Scaling group.
type NodeGroup struct {
	Cluster, Name   string
	Managed         bool
	ASGName         string
	Min, Max        int
	Desired         int
	AZs             []string
	TemplateID      string
	TemplateVersion int64  // the version new instances launch from
	ImageID         string // the AMI of that version
	MaxUnavailable  int    // the group's own setting in nodes (a percentage resolved), 0 when it has none
	// UpdateConfig is a managed group's updateConfig as EKS reports it.
	UpdateConfig UpdateConfig
	// EKSTemplateID is the launch template a managed node group names as
	// the user's own, and EKSTemplateVersion the version EKS records for
	// it; "" when EKS generated the group's template (it was created
	// without one of the user's).
	EKSTemplateID      string
	EKSTemplateVersion int64
	InstanceTypes      []string // what it launches: the template's type, or a mixed policy's overrides
	Instances          []Instance
	Suspended          []string // suspended scaling processes
	Spot               bool     // launches Spot instances (a managed group's capacity type)
}

// Quota is the account's limit that a group's launches count against (EC2's
// vCPUs of running instances of a kind, On-Demand or Spot), with what
// already counts against it.
type Quota struct {
	Code, Name  string  // Service Quotas' code and name: "L-1216C47A", "Running On-Demand Standard (...) instances"
	Limit, Used float64 // vCPUs
	PerInstance int     // vCPUs of one of the group's instances (its largest type)
}

// Image is an AMI.
type Image struct {
	ID             string
	Name           string
	KubeMinor      string // "1.37"; empty when the image does not say
	ReleaseVersion string
	Family         string // "al2023", "bottlerocket", "windows"; empty for an image of no known family
	Architecture   string // "x86_64", "arm64"
	Variant        string // "standard", "nvidia", "neuron"; "core" or "full" for Windows
	// Created is when the image was published (zero when unknown): how
	// long a group on an older one has been behind.
	Created time.Time
}

// ImageQuery says which AMI to upgrade to; exactly one of the first three
// is set.
type ImageQuery struct {
	KubernetesVersion string // latest recommended AMI for this minor
	ReleaseVersion    string // a specific EKS AMI release, "1.37.2-20261115"
	ImageID           string // an explicit AMI
	// Family switches family ("al2023", "bottlerocket", "windows"); empty
	// keeps the family of Like.
	Family string
	// Like is the AMI the group runs now: the new one is of its family,
	// architecture and variant (arm64, NVIDIA, Neuron...) unless Family
	// says otherwise.
	Like string
	// InstanceTypes the group launches: the AMI's architecture must run on
	// every one of them.
	InstanceTypes []string
	// Terms names the options in errors as the front end that asked
	// spells them (nil: the CLI's flags).
	Terms terms.Terms
}

// ManagedUpdate asks EKS to update a managed node group itself
// (UpdateNodegroupVersion): to a Kubernetes version's or a release's AMI,
// or, for a group whose launch template names its AMI, to a version of
// that template.
type ManagedUpdate struct {
	KubernetesVersion, ReleaseVersion string
	TemplateVersion                   int64
	// Force replaces nodes whose pods a budget keeps from being evicted.
	Force bool
}

// UpdateConfig is a managed node group's updateConfig: how many nodes
// EKS's own updates replace at once, a count (1 to 100) or a percentage of
// the group (1 to 100), and how (Strategy). One of the two counts is set;
// both zero is "not known" (and, in a change, "left as it is").
type UpdateConfig struct {
	MaxUnavailable, MaxUnavailablePercentage int
	// Strategy is EKS's updateStrategy: StrategyDefault (surge first, then
	// replace every node) or StrategyMinimal (no new instance first; only
	// the nodes off the target are replaced). "": not set, EKS's default.
	Strategy string
}

// EKS's update strategies (NodegroupUpdateConfig.updateStrategy).
const (
	StrategyDefault = "DEFAULT"
	StrategyMinimal = "MINIMAL"
)

// Counts is the config without its strategy: how many nodes at once.
func (c UpdateConfig) Counts() UpdateConfig {
	return UpdateConfig{MaxUnavailable: c.MaxUnavailable, MaxUnavailablePercentage: c.MaxUnavailablePercentage}
}

// StrategyOrDefault is the strategy EKS applies: DEFAULT when none is set.
func (c UpdateConfig) StrategyOrDefault() string {
	if c.Strategy == "" {
		return StrategyDefault
	}
	return c.Strategy
}

func (c UpdateConfig) String() string {
	var parts []string
	switch {
	case c.MaxUnavailablePercentage > 0:
		parts = append(parts, fmt.Sprintf("maxUnavailablePercentage %d", c.MaxUnavailablePercentage))
	case c.MaxUnavailable > 0 || c.Strategy == "":
		parts = append(parts, fmt.Sprintf("maxUnavailable %d", c.MaxUnavailable))
	}
	if c.Strategy != "" {
		parts = append(parts, "updateStrategy "+c.Strategy)
	}
	return strings.Join(parts, ", ")
}

// ManagedUpdateState is how an EKS update is doing.
type ManagedUpdateState struct {
	ID     string
	Type   string   // VersionUpdate, ConfigUpdate, ...
	Status string   // InProgress, Successful, Failed, Cancelled
	Errors []string // EKS's own words: "PodEvictionFailure: ... (i-0abc)"
}

// GroupUpdate changes a group; nil fields are left as they are.
type GroupUpdate struct {
	Min, Max, Desired *int
	TemplateVersion   *int64
}

// Provider is what the engine needs of a cloud. Every method is safe to
// retry: calling it again after a success changes nothing more.
type Provider interface {
	// Cluster describes a cluster; a NotFoundError when there is none.
	Cluster(ctx context.Context, name string) (Cluster, error)
	// NodeGroup describes a group with its instances; a NotFoundError when
	// neither a managed node group nor a tagged Auto Scaling group has that name.
	NodeGroup(ctx context.Context, ref NodeGroupRef) (NodeGroup, error)
	// ListNodeGroups lists the groups of a cluster, managed and self-managed.
	ListNodeGroups(ctx context.Context, cluster string) ([]NodeGroupRef, error)
	// ResolveImage finds the AMI a query names; a NotFoundError when none.
	ResolveImage(ctx context.Context, q ImageQuery) (Image, error)
	// TemplateImage returns the AMI a launch template version launches; a
	// NotFoundError when the version does not exist.
	TemplateImage(ctx context.Context, templateID string, version int64) (string, error)
	// EnsureTemplateVersion returns a version of the template that is `from`
	// with only the AMI changed, creating it unless the latest version is
	// already exactly that.
	EnsureTemplateVersion(ctx context.Context, templateID string, from int64, imageID, description string) (int64, error)
	// UpdateGroup applies a GroupUpdate to the group's Auto Scaling group.
	UpdateGroup(ctx context.Context, g NodeGroup, u GroupUpdate) error
	// TerminateInstance terminates an instance through its group, lowering
	// desired capacity by one when decrement is set. An instance already
	// terminating or gone is not an error.
	TerminateInstance(ctx context.Context, instanceID string, decrement bool) error
	// SetProcesses suspends (suspend=true) or resumes scaling processes.
	SetProcesses(ctx context.Context, g NodeGroup, processes []string, suspend bool) error
	// InstanceQuota returns the account quota the group's launches count
	// against; a NotFoundError when its instance types come under none
	// noderoll knows.
	InstanceQuota(ctx context.Context, g NodeGroup) (Quota, error)
	// LaunchFailures returns why the group's launches failed since a time
	// (no capacity, a bad AMI...), newest first, each cause once: what a
	// wait for new nodes that never come should tell.
	LaunchFailures(ctx context.Context, g NodeGroup, since time.Time) ([]string, error)
	// TerminationTimes returns how long the group's past terminations took,
	// from their start until the instance was gone, newest first and at
	// most limit: the history a plan reads an instance's shutdown from
	// (none: the group has terminated nothing the cloud still remembers).
	TerminationTimes(ctx context.Context, g NodeGroup, limit int) ([]time.Duration, error)
}

// ManagedUpdater is a cloud whose node groups can replace their own nodes,
// as EKS's managed node groups do: only --mode=managed needs it, so a
// cloud without it is still a Provider.
type ManagedUpdater interface {
	// StartManagedUpdate asks EKS to update a managed node group itself and
	// returns the update's ID; the same Token returns the same update.
	StartManagedUpdate(ctx context.Context, ref NodeGroupRef, u ManagedUpdate) (string, error)
	// ManagedUpdate says how an EKS update of a node group is doing.
	ManagedUpdate(ctx context.Context, ref NodeGroupRef, id string) (ManagedUpdateState, error)
	// StartManagedConfigUpdate sets a managed node group's updateConfig
	// (EKS's UpdateNodegroupConfig) and returns the update's ID.
	StartManagedConfigUpdate(ctx context.Context, ref NodeGroupRef, c UpdateConfig) (string, error)
	// ManagedUpdateInProgress returns the ID of the group's EKS update in
	// progress, "" when none is.
	ManagedUpdateInProgress(ctx context.Context, ref NodeGroupRef) (string, error)
}

// NotFoundError says a named thing does not exist in the cloud.
type NotFoundError struct {
	What string // "cluster eksworkshop-eksctl", "AMI for Kubernetes 1.99"
	Err  error
}

func (e *NotFoundError) Error() string {
	if e.Err != nil {
		return e.What + " not found: " + e.Err.Error()
	}
	return e.What + " not found"
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// IsNotFound reports whether err says something does not exist.
func IsNotFound(err error) bool {
	var nf *NotFoundError
	return errors.As(err, &nf)
}

// NotFoundf builds a NotFoundError.
func NotFoundf(err error, format string, args ...any) error {
	return &NotFoundError{What: fmt.Sprintf(format, args...), Err: err}
}

// InstanceIDOf returns the cloud's instance ID a Node's spec.providerID
// names: its last path segment ("aws:///us-west-2a/i-0abc" names
// i-0abc), or "" when the providerID is empty.
func InstanceIDOf(providerID string) string {
	if i := strings.LastIndexByte(providerID, '/'); i >= 0 {
		return providerID[i+1:]
	}
	return ""
}
