package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeGroupUpgradePolicy keeps a cluster's node groups on the newest
// recommended AMI release by themselves: each new release is rolled out
// inside the maintenance windows, outside the exclusions, canary first,
// then in waves, with a soak watching the upgraded groups after each, and
// halts on a regression. Each group's upgrade is a NodeGroupUpgrade the
// policy creates and owns.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ngup,categories=noderoll
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.cluster`
// +kubebuilder:printcolumn:name="Up-to-date",type=integer,JSONPath=`.status.groupsUpToDate`
// +kubebuilder:printcolumn:name="Groups",type=integer,JSONPath=`.status.groupsTotal`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Waiting",type=string,JSONPath=`.status.waitingReason`
// +kubebuilder:printcolumn:name="Next-window",type=string,JSONPath=`.status.nextWindow`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name: at most 40 characters (the NodeGroupUpgrades it creates are named after it)"
type NodeGroupUpgradePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   NodeGroupUpgradePolicySpec   `json:"spec"`
	Status NodeGroupUpgradePolicyStatus `json:"status,omitempty"`
}

// NodeGroupUpgradePolicyList is a list of NodeGroupUpgradePolicies.
//
// +kubebuilder:object:root=true
type NodeGroupUpgradePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeGroupUpgradePolicy `json:"items"`
}

// ResumeAnnotation on a halted policy clears the halt: the controller
// removes it and the rollout goes on (`kubectl annotate ngup NAME
// noderoll.io/resume=now`).
const ResumeAnnotation = "noderoll.io/resume"

// PolicyLabel on a NodeGroupUpgrade names the policy that created it.
const PolicyLabel = "noderoll.io/policy"

// NodeGroupUpgradePolicySpec is what the policy keeps current, and when.
//
// +kubebuilder:validation:XValidation:rule="!has(self.rollout) || !has(self.rollout.canary) || !has(self.nodeGroups) || self.rollout.canary.all(c, c in self.nodeGroups)",message="spec.rollout.canary: every canary must be one of spec.nodeGroups"
type NodeGroupUpgradePolicySpec struct {
	// Cluster is the EKS cluster's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	Cluster string `json:"cluster"`
	// NodeGroups are the groups kept current (empty: every group of the
	// cluster, also groups made later).
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=255
	// +optional
	NodeGroups []string `json:"nodeGroups,omitempty"`
	// KubernetesVersion is the minor whose newest release the groups
	// follow: ControlPlane (the control plane's, following it when it is
	// upgraded) or a minor such as "1.37".
	// +kubebuilder:validation:Pattern=`^(ControlPlane|1\.[0-9]+)$`
	// +kubebuilder:default=ControlPlane
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// MinReleaseAge is how old a release must be before it is taken
	// (0: at once).
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.minReleaseAge: a duration of 0 or more, such as 72h"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	MinReleaseAge *metav1.Duration `json:"minReleaseAge,omitempty"`
	// SkipReleases are EKS AMI releases never taken, such as
	// "1.37.2-20261201": the groups wait for the next one.
	// +listType=set
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:Pattern=`^1\.[0-9]+\.[0-9]+-[0-9]{8}$`
	// +optional
	SkipReleases []string `json:"skipReleases,omitempty"`
	// MaintenanceWindows are when a group may start its upgrade (none:
	// always). A group under way when its window closes finishes; no new
	// one starts.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`
	// Exclusions are spans in which no group starts, windows or not.
	// +kubebuilder:validation:MaxItems=50
	// +optional
	Exclusions []Exclusion `json:"exclusions,omitempty"`
	// Rollout is the order and the soak.
	// +optional
	Rollout Rollout `json:"rollout,omitempty"`
	// Upgrade is how each group is upgraded: a NodeGroupUpgrade's fields
	// other than its cluster, group and target.
	// +kubebuilder:default={strategy: {type: Surge}}
	// +optional
	Upgrade UpgradeSettings `json:"upgrade,omitempty"`
	// OnFailure is what a failed upgrade or a regression in a soak does:
	// Halt stops the rollout where it is; Abort also takes the failed or
	// regressed groups back to the AMI they ran before.
	// +kubebuilder:validation:Enum=Halt;Abort
	// +kubebuilder:default=Halt
	// +optional
	OnFailure string `json:"onFailure,omitempty"`
	// Paused starts nothing new (upgrades under way go on); the status is
	// kept current.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// MaintenanceWindow opens at each time its schedule fires, for Duration.
type MaintenanceWindow struct {
	// Schedule is a cron expression of five fields (minute hour
	// day-of-month month day-of-week), read in TimeZone: "0 2 * * 6" is
	// Saturdays at 02:00.
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^ ]+( +[^ ]+){4}$')",message="schedule: a cron expression of five fields (minute hour day-of-month month day-of-week), such as '0 2 * * 6'"
	Schedule string `json:"schedule"`
	// Duration is how long the window stays open.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')",message="duration: more than 0, such as 4h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Duration metav1.Duration `json:"duration"`
	// TimeZone is an IANA time zone, such as Europe/Berlin (default UTC).
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// Exclusion is a span in which no group starts.
//
// +kubebuilder:validation:XValidation:rule="self.end > self.start",message="an exclusion must end after it starts"
type Exclusion struct {
	Start metav1.Time `json:"start"`
	End   metav1.Time `json:"end"`
	// Reason is shown while the exclusion holds the rollout.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	Reason string `json:"reason,omitempty"`
}

// Rollout is the order groups go in and what is watched between.
type Rollout struct {
	// Canary groups are upgraded first, alone, and soaked before any
	// other group starts.
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=255
	// +optional
	Canary []string `json:"canary,omitempty"`
	// Soak is how long the upgraded groups are watched after the canary
	// and after each wave before the next starts (0: not watched).
	// +kubebuilder:validation:XValidation:rule="self == '0' || self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$')",message="spec.rollout.soak: a duration of 0 or more, such as 30m"
	// +kubebuilder:default="30m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Soak *metav1.Duration `json:"soak,omitempty"`
	// MaxConcurrentGroups is how many groups a wave upgrades at once.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	// +optional
	MaxConcurrentGroups int32 `json:"maxConcurrentGroups,omitempty"`
	// MaxRestarts is how many container restarts of one pod on an
	// upgraded group's new nodes count as crash-looping in a soak.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=3
	// +optional
	MaxRestarts int32 `json:"maxRestarts,omitempty"`
	// PodReadyTimeout is how long a pod on the new nodes may stay not
	// Ready in a soak.
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]*)?(ns|us|µs|ms|s|m|h))+$') && duration(self) > duration('0s')",message="spec.rollout.podReadyTimeout: more than 0, such as 2m"
	// +kubebuilder:default="2m"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	PodReadyTimeout *metav1.Duration `json:"podReadyTimeout,omitempty"`
}

// States of a policy and of its groups.
const (
	PolicyUpToDate  = "UpToDate"  // every group on its newest acceptable release
	PolicyWaiting   = "Waiting"   // behind, waiting (status.waitingReason says for what)
	PolicyUpgrading = "Upgrading" // a group's NodeGroupUpgrade runs
	PolicySoaking   = "Soaking"   // upgraded, watched before the next wave
	PolicyHalted    = "Halted"    // stopped on a failure or regression
	PolicyPaused    = "Paused"    // spec.paused
	PolicyInvalid   = "Invalid"   // a spec the controller cannot follow
)

// NodeGroupUpgradePolicyStatus is the policy as observed.
type NodeGroupUpgradePolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// State is the policy's as a whole.
	// +kubebuilder:validation:Enum=UpToDate;Waiting;Upgrading;Soaking;Halted;Paused;Invalid
	// +optional
	State string `json:"state,omitempty"`
	// WaitingReason says what the policy waits for while groups are
	// behind: MaintenanceWindow, Exclusion, ReleaseAge, Soak, Halted or
	// Paused.
	// +kubebuilder:validation:Enum=MaintenanceWindow;Exclusion;ReleaseAge;Soak;Halted;Paused
	// +optional
	WaitingReason string `json:"waitingReason,omitempty"`
	// Message says the same in words, with what to do.
	// +optional
	Message string `json:"message,omitempty"`
	// NextWindow is when the next maintenance window opens (while none
	// is open).
	// +optional
	NextWindow *metav1.Time `json:"nextWindow,omitempty"`
	// GroupsUpToDate of GroupsTotal run their newest acceptable release
	// (pointers: 0 is written, and printed, as 0).
	// +optional
	GroupsUpToDate *int32 `json:"groupsUpToDate,omitempty"`
	// +optional
	GroupsTotal *int32 `json:"groupsTotal,omitempty"`
	// Groups are the groups the policy keeps, each as last seen.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	// +optional
	Groups []PolicyGroupStatus `json:"groups,omitempty"`
	// Rollout is the rollout under way: what a restarted controller goes
	// on from.
	// +optional
	Rollout *PolicyRollout `json:"rollout,omitempty"`
	// LastRollout is how the last rollout ended.
	// +optional
	LastRollout *PolicyRolloutEnd `json:"lastRollout,omitempty"`
	// LastChecked is when the releases were last read.
	// +optional
	LastChecked *metav1.Time `json:"lastChecked,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PolicyGroupStatus is one group as the policy sees it.
type PolicyGroupStatus struct {
	Name string `json:"name"`
	// CurrentRelease is the release (or AMI) the group runs.
	// +optional
	CurrentRelease string `json:"currentRelease,omitempty"`
	// TargetRelease is the release it goes to: the rollout's frozen one
	// while it runs, else the newest acceptable one.
	// +optional
	TargetRelease string `json:"targetRelease,omitempty"`
	// BehindSince is when the release it is behind was published.
	// +optional
	BehindSince *metav1.Time `json:"behindSince,omitempty"`
	// +kubebuilder:validation:Enum=UpToDate;Waiting;Upgrading;Soaking;Halted;Paused;Invalid
	State string `json:"state"`
	// NodeGroupUpgrade is the resource upgrading it in this rollout.
	// +optional
	NodeGroupUpgrade string `json:"nodeGroupUpgrade,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// PolicyRollout is a rollout under way: its targets frozen when it began,
// its waves, and how far it got.
type PolicyRollout struct {
	Started metav1.Time `json:"started"`
	// KubernetesVersion is the minor it rolls out.
	KubernetesVersion string `json:"kubernetesVersion"`
	// Targets are the groups it upgrades, each with its frozen target and
	// the AMI it ran before (what onFailure: Abort takes it back to).
	// +listType=map
	// +listMapKey=group
	Targets []RolloutTarget `json:"targets"`
	// Waves are the groups in order: the canary first when it is behind.
	Waves []RolloutWave `json:"waves"`
	// Wave is the index of the wave under way.
	Wave int32 `json:"wave"`
	// SoakStarted is when the current wave's soak began (unset before).
	// +optional
	SoakStarted *metav1.Time `json:"soakStarted,omitempty"`
	// Halted says why the rollout stopped, until it is resumed.
	// +optional
	Halted *PolicyHalt `json:"halted,omitempty"`
}

// RolloutTarget is one group's frozen target.
type RolloutTarget struct {
	Group     string `json:"group"`
	ImageID   string `json:"imageID"`
	ImageName string `json:"imageName,omitempty"`
	Release   string `json:"release,omitempty"`
	// FromImageID is the AMI the group ran when the rollout began, and
	// FromRelease its release.
	// +optional
	FromImageID string `json:"fromImageID,omitempty"`
	// +optional
	FromRelease string `json:"fromRelease,omitempty"`
	// EKSUpdates: a managed node group whose launch template EKS
	// generated, updated by EKS itself (mode Managed) to the release.
	// +optional
	EKSUpdates bool `json:"eksUpdates,omitempty"`
}

// RolloutWave is groups upgraded together.
type RolloutWave struct {
	// +optional
	Canary bool     `json:"canary,omitempty"`
	Groups []string `json:"groups"`
}

// PolicyHalt is why a rollout stopped.
type PolicyHalt struct {
	At metav1.Time `json:"at"`
	// Groups are the failed or regressed ones.
	Groups []string `json:"groups"`
	Reason string   `json:"reason"`
	// +optional
	Message string `json:"message,omitempty"`
	// TakenBack says onFailure: Abort asked for the groups to go back.
	// +optional
	TakenBack bool `json:"takenBack,omitempty"`
}

// PolicyRolloutEnd is how a rollout ended.
type PolicyRolloutEnd struct {
	Started  metav1.Time `json:"started"`
	Finished metav1.Time `json:"finished"`
	// Outcome is Completed (every group on its target and soaked).
	Outcome string `json:"outcome"`
	// +optional
	Groups []string `json:"groups,omitempty"`
	// +optional
	Releases []string `json:"releases,omitempty"`
}

// Condition types of a policy.
const (
	PolicyConditionReady   = "UpToDate"
	PolicyConditionHalted  = "Halted"
	PolicyConditionValid   = "SpecValid"
	PolicyConditionRollout = "RolloutInProgress"
)
