package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NodeGroupUpgrade declares one upgrade of one node group: like a Job, it
// runs once to its end; another target is another NodeGroupUpgrade.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ngu,categories=noderoll
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=`.spec.nodeGroup`
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.spec.strategy.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Up-to-date",type=integer,JSONPath=`.status.upToDateNodes`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.totalNodes`
// +kubebuilder:printcolumn:name="Blocked",type=integer,JSONPath=`.status.blockedNodes`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.target.imageName`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name: at most 63 characters"
type NodeGroupUpgrade struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   NodeGroupUpgradeSpec   `json:"spec"`
	Status NodeGroupUpgradeStatus `json:"status,omitempty"`
}

// NodeGroupUpgradeList is a list of NodeGroupUpgrades.
//
// +kubebuilder:object:root=true
type NodeGroupUpgradeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeGroupUpgrade `json:"items"`
}

// NodeGroupUpgradeSpec is the upgrade wanted. Its names and defaults are the
// CLI's (`noderoll upgrade nodegroup --help` explains each).
//
// +kubebuilder:validation:XValidation:rule="self.cluster == oldSelf.cluster && self.nodeGroup == oldSelf.nodeGroup",message="spec.cluster and spec.nodeGroup cannot change: create another NodeGroupUpgrade for another group"
// +kubebuilder:validation:XValidation:rule="self.target == oldSelf.target",message="spec.target cannot change: an upgrade runs to its target; to go elsewhere set spec.action to Abort, or let it finish, then create another NodeGroupUpgrade"
// +kubebuilder:validation:XValidation:rule="!has(self.action) || self.action != 'Rollback' || !has(self.strategy) || self.strategy.type == 'BlueGreen'",message="spec.action Rollback goes back from a BlueGreen upgrade in its soak: use Abort for the other strategies"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Managed' || !has(self.action)",message="spec.action is for mode noderoll: EKS's own update (mode Managed) cannot be aborted or rolled back by noderoll"
type NodeGroupUpgradeSpec struct {
	// Cluster is the EKS cluster's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	Cluster string `json:"cluster"`
	// NodeGroup is an EKS managed node group's name, or a self-managed
	// Auto Scaling group's name tagged for the cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	NodeGroup string `json:"nodeGroup"`
	// Mode says who replaces the nodes: noderoll with its strategies, or
	// Managed: EKS's own UpdateNodegroupVersion, followed by noderoll.
	// +kubebuilder:validation:Enum=Noderoll;Managed
	// +kubebuilder:default=Noderoll
	// +optional
	Mode string `json:"mode,omitempty"`
	// Target is the AMI to move to.
	Target Target `json:"target"`
	// UpgradeSettings are how the group is upgraded: the strategy, its
	// budgets and timeouts (a NodeGroupUpgradePolicy's spec.upgrade
	// holds the same fields for every group it rolls).
	UpgradeSettings `json:",inline"`
	// Paused stops the upgrade before its next action; unpaused, it goes
	// on from there.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Action turns the upgrade around: Abort takes it back to the AMI and
	// launch template version the group ran before; Rollback goes back
	// from a BlueGreen upgrade still in its soak to the old nodes.
	// +kubebuilder:validation:Enum=Abort;Rollback
	// +optional
	Action string `json:"action,omitempty"`
}

// UpgradeSettings are how a group is upgraded, apart from which group and
// to what: a NodeGroupUpgrade's, and every one a policy creates.
type UpgradeSettings struct {
	// Strategy is how old nodes are replaced.
	// +kubebuilder:default={type: Surge}
	// +optional
	Strategy Strategy `json:"strategy,omitempty"`
	// PostCordonWait is the pause between cordoning a node and terminating
	// it, for load balancers to let go of it (EKS's 60s; 0: none).
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.postCordonWait: a duration of 0 or more, such as 60s, 2m or 1h30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	PostCordonWait *metav1.Duration `json:"postCordonWait,omitempty"`
	// EvictionTimeout fails the upgrade when a node's pods cannot all be
	// evicted within it (see Force).
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.evictionTimeout: a duration of 0 or more, such as 60s, 2m or 1h30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	EvictionTimeout *metav1.Duration `json:"evictionTimeout,omitempty"`
	// NodeReadyTimeout fails the upgrade when new nodes are not Ready
	// within it, before any old node is drained.
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.nodeReadyTimeout: a duration of 0 or more, such as 60s, 2m or 1h30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	NodeReadyTimeout *metav1.Duration `json:"nodeReadyTimeout,omitempty"`
	// Force deletes, at EvictionTimeout, the pods a PodDisruptionBudget
	// still protects instead of failing.
	// +optional
	Force bool `json:"force,omitempty"`
	// ClusterAutoscaler is the Deployment paused during the upgrade: auto
	// (found in kube-system), none, or namespace/name.
	// +kubebuilder:validation:Pattern=`^(auto|none|[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?)$`
	// +optional
	ClusterAutoscaler string `json:"clusterAutoscaler,omitempty"`
	// AllowDowngrade lets the target be older than the group's AMI.
	// +optional
	AllowDowngrade bool `json:"allowDowngrade,omitempty"`
	// AcceptResize goes on with a group someone else resized mid-run,
	// taking it as it is (its extra nodes drained and removed at the end),
	// instead of stopping on it.
	// +optional
	AcceptResize bool `json:"acceptResize,omitempty"`
	// IgnorePreflight names the preflight checks whose blocking findings
	// do not stop the upgrade (all: none stops it).
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +optional
	IgnorePreflight []string `json:"ignorePreflight,omitempty"`
}

// Target is the AMI to move to: exactly one of its first four fields.
//
// +kubebuilder:validation:XValidation:rule="[has(self.kubernetesVersion), has(self.releaseVersion), has(self.launchTemplateVersion), has(self.ami)].filter(x, x).size() == 1",message="spec.target: set exactly one of kubernetesVersion, releaseVersion, launchTemplateVersion or ami"
// +kubebuilder:validation:XValidation:rule="!has(self.amiFamily) || has(self.kubernetesVersion)",message="spec.target.amiFamily goes with kubernetesVersion: the other targets name their AMI already"
type Target struct {
	// KubernetesVersion moves to the recommended EKS-optimized AMI of this
	// Kubernetes version, e.g. "1.37".
	// +kubebuilder:validation:Pattern=`^1\.[0-9]+(\.[0-9]+)?$`
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// ReleaseVersion moves to this EKS AMI release, e.g. "1.37.2-20261115".
	// +kubebuilder:validation:Pattern=`^1\.[0-9]+\.[0-9]+-[0-9]{8}$`
	// +optional
	ReleaseVersion string `json:"releaseVersion,omitempty"`
	// LaunchTemplateVersion moves to the AMI of this existing version of
	// the group's launch template.
	// +kubebuilder:validation:Minimum=1
	// +optional
	LaunchTemplateVersion int64 `json:"launchTemplateVersion,omitempty"`
	// AMI moves to this image.
	// +kubebuilder:validation:Pattern=`^ami-[0-9a-f]{8,17}$`
	// +optional
	AMI string `json:"ami,omitempty"`
	// AMIFamily switches family with KubernetesVersion (default: the
	// group's own, keeping its architecture and variant).
	// +kubebuilder:validation:Enum=al2023;bottlerocket;windows
	// +optional
	AMIFamily string `json:"amiFamily,omitempty"`
}

// Strategy is how old nodes are replaced.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'BlueGreen' || (!has(self.batchSize) && !has(self.batchSoak) && !has(self.soak))",message="spec.strategy: batchSize, batchSoak and soak are for type BlueGreen"
// +kubebuilder:validation:XValidation:rule="!has(self.maxSurge) || !has(self.maxUnavailable) || !(string(self.maxSurge) in ['0', '0%'] && string(self.maxUnavailable) in ['0', '0%'])",message="spec.strategy: maxSurge and maxUnavailable cannot both be 0: nothing could be replaced"
type Strategy struct {
	// Type is Surge (many nodes at once within maxSurge, maxUnavailable and
	// the pods' budgets), BlueGreen (every new node first, old ones kept
	// for soak) or EKS (the managed node group's own algorithm, one at a
	// time).
	// +kubebuilder:validation:Enum=Surge;BlueGreen;EKS
	// +kubebuilder:default=Surge
	Type string `json:"type"`
	// MaxSurge is how many instances are launched above the group's size,
	// a count or a percentage (default 25%, at least one per zone).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^([0-9]|[1-9][0-9]|100)%$')",message="spec.strategy.maxSurge: a count of 0 or more, or a percentage from 0% to 100% such as 25%"
	// +optional
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
	// MaxUnavailable is how much of the original ready capacity may be
	// missing at once, a count or a percentage (default 0).
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^([0-9]|[1-9][0-9]|100)%$')",message="spec.strategy.maxUnavailable: a count of 0 or more, or a percentage from 0% to 100% such as 10%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// BatchSize is how many old nodes BlueGreen drains at once (0: all).
	// +kubebuilder:validation:Minimum=0
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`
	// BatchSoak is BlueGreen's wait between one batch drained and the next.
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.strategy.batchSoak: a duration of 0 or more, such as 60s, 2m or 1h30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	BatchSoak *metav1.Duration `json:"batchSoak,omitempty"`
	// Soak is how long BlueGreen keeps the drained old nodes before
	// terminating them (default 10m); until then Rollback goes back at once.
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.strategy.soak: a duration of 0 or more, such as 60s, 2m or 1h30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Soak *metav1.Duration `json:"soak,omitempty"`
}

// Phases of a NodeGroupUpgrade.
const (
	PhasePending    = "Pending"    // accepted, not started (waiting for a free worker)
	PhaseRunning    = "Running"    // replacing nodes
	PhasePaused     = "Paused"     // spec.paused: stopped between actions
	PhaseComplete   = "Complete"   // every node on the target
	PhaseFailed     = "Failed"     // stopped; the group is recorded and resumable
	PhaseAborted    = "Aborted"    // taken back to the original AMI
	PhaseRolledBack = "RolledBack" // BlueGreen went back to its old nodes
)

// Condition types of a NodeGroupUpgrade.
const (
	ConditionProgressing = "Progressing"
	ConditionBlocked     = "Blocked"
	ConditionComplete    = "Complete"
	ConditionFailed      = "Failed"
	ConditionPaused      = "Paused"
)

// NodeGroupUpgradeStatus is the upgrade as observed.
type NodeGroupUpgradeStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is where the upgrade is.
	// +kubebuilder:validation:Enum=Pending;Running;Paused;Complete;Failed;Aborted;RolledBack
	// +optional
	Phase string `json:"phase,omitempty"`
	// Step is the step under way, as the CLI numbers the seed's nine.
	// +optional
	Step string `json:"step,omitempty"`
	// Message says what happened last, or why the upgrade stopped and
	// what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Counts of the group's nodes. TotalNodes is the size the group ends
	// at; UpToDateNodes how many of those are done: Ready on the target,
	// less the old nodes still to replace, so that a surge's new nodes do
	// not count until old ones go (never more than TotalNodes).
	// +optional
	TotalNodes int32 `json:"totalNodes,omitempty"`
	// +optional
	UpToDateNodes int32 `json:"upToDateNodes,omitempty"`
	// +optional
	InFlightNodes int32 `json:"inFlightNodes,omitempty"`
	// +optional
	BlockedNodes int32 `json:"blockedNodes,omitempty"`
	// Replaced counts the old instances terminated so far.
	// +optional
	Replaced int32 `json:"replaced,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Target is what spec.target resolved to when the upgrade started.
	// +optional
	Target *ResolvedTarget `json:"target,omitempty"`
	// Nodes lists only the nodes in flight, blocked or failed, so that the
	// object stays small for a large group.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	// +optional
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Record is the upgrade's progress record while the controller keeps
	// it here: what a restarted controller, or a CLI run taking the upgrade
	// over, resumes from. noderoll writes it; edit it and a resumed run
	// may repeat or skip work.
	// +optional
	Record *UpgradeRecord `json:"record,omitempty"`
}

// UpgradeRecord holds the engine's record of an upgrade under a version
// of its own: the status is written every few seconds, so its
// resourceVersion cannot tell a writer that the record changed under it;
// the version can.
type UpgradeRecord struct {
	// Version counts the record's writes; a write from a reader of an
	// older version is refused.
	Version int64 `json:"version"`
	// Data is the record, as the CLI keeps it in its ConfigMap.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Data runtime.RawExtension `json:"data"`
}

// ResolvedTarget is the AMI an upgrade moves to.
type ResolvedTarget struct {
	ImageID   string `json:"imageID"`
	ImageName string `json:"imageName,omitempty"`
	// KubernetesVersion is the AMI's Kubernetes minor.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// ReleaseVersion is the AMI's EKS release, when it has one.
	ReleaseVersion string `json:"releaseVersion,omitempty"`
	// LaunchTemplateVersion is the version of the group's launch template
	// that launches the AMI.
	LaunchTemplateVersion int64 `json:"launchTemplateVersion,omitempty"`
}

// NodeStatus is one node in flight, blocked or failed.
type NodeStatus struct {
	Name string `json:"name"`
	// +optional
	InstanceID string `json:"instanceID,omitempty"`
	// +optional
	Zone string `json:"zone,omitempty"`
	// State is Draining, Blocked or Failed.
	State string `json:"state"`
	// BlockedBy names the pods and budgets that refuse their evictions.
	// +optional
	BlockedBy string `json:"blockedBy,omitempty"`
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}
