package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Phases of an upgrade, in order. The record's phase says how far a run got;
// every step is also checked against the cloud and the cluster, so a step
// done but not yet recorded is found done on resume, never done twice.
const (
	PhaseStarted     = "Started"
	PhaseSurging     = "Surging"
	PhaseReplacing   = "Replacing"
	PhaseScalingDown = "ScalingDown"
	PhaseCompleted   = "Completed"
	PhaseRollingBack = "RollingBack"
	PhaseRolledBack  = "RolledBack" // went back to the old nodes: history, as Completed
	PhaseAborted     = "Aborted"    // went back to the original AMI (--abort): history too
	PhaseFailed      = "Failed"
)

// Record is an upgrade's progress, kept in the cluster (a ConfigMap in
// kube-system) so that any process can resume it.
type Record struct {
	Cluster   string `json:"cluster"`
	Nodegroup string `json:"nodegroup"`
	ASG       string `json:"autoScalingGroup"`
	// Spec is what the user asked for; Target what it resolved to when the
	// upgrade started. A rerun with the same Spec resumes to Target even
	// when the spec would resolve otherwise now (a newer recommended AMI).
	Spec   TargetSpec `json:"spec"`
	Target Target     `json:"target"`
	Phase  string     `json:"phase"`
	// What the group looked like before, restored at the end.
	OriginalMin             int   `json:"originalMin"`
	OriginalMax             int   `json:"originalMax"`
	OriginalDesired         int   `json:"originalDesired"`
	OriginalTemplateVersion int64 `json:"originalTemplateVersion"`
	// AZRebalanceSuspended is set when noderoll suspended it (and must resume it).
	AZRebalanceSuspended bool `json:"azRebalanceSuspended,omitempty"`
	// Strategy replaces the nodes ("" in records older than strategies: eks).
	Strategy string `json:"strategy,omitempty"`
	// Surge and Unavailable are the budgets, resolved to counts when the
	// upgrade started.
	Surge       int `json:"surge"`
	Unavailable int `json:"unavailable,omitempty"`
	// Blue-green's batches and soaks.
	BatchSize int      `json:"batchSize,omitempty"`
	BatchSoak Duration `json:"batchSoak,omitempty"`
	Soak      Duration `json:"soak,omitempty"`
	// HeldMax is the max size taken over from someone else's resize
	// (--accept-resize), 0 when noderoll's own surge sets it.
	HeldMax         int      `json:"heldMax,omitempty"`
	TemplateVersion int64    `json:"templateVersion,omitempty"`
	Replaced        []string `json:"replaced,omitempty"` // old instances terminated
	Removed         []string `json:"removed,omitempty"`  // surplus instances removed at scale-down
	// Decremented are old instances (also in Replaced) terminated lowering
	// desired capacity: the last ones, so the group ends at its size.
	Decremented []string `json:"decremented,omitempty"`
	Steps       []Step   `json:"steps,omitempty"`
	// Abort is set once --abort turned the upgrade around: Target is then the
	// original AMI and launch template version, and the phases run again
	// from Started, replacing the nodes of the AMI Abort.From names.
	Abort *Abort `json:"abort,omitempty"`
	// EKSRecord is EKS recording the version the group launches, at the
	// end of an upgrade of a managed group on a template of the user's.
	EKSRecord *EKSRecord `json:"eksRecord,omitempty"`
	Started   time.Time  `json:"started"`
	Updated   time.Time  `json:"updated"`
	Message   string     `json:"message,omitempty"`
}

// Abort is what an upgrade had done when it was turned around.
type Abort struct {
	From     Target    `json:"from"`               // the target given up
	Replaced []string  `json:"replaced,omitempty"` // old instances it had terminated
	Removed  []string  `json:"removed,omitempty"`
	Started  time.Time `json:"started"`
}

// Step is one timed step of the run.
type Step struct {
	Name string `json:"name"`
	// Action and Instance say what a step does to one instance of the
	// group ("replace", "remove"; the instance's ID), so that whoever sums
	// up many like steps need not read it from the name; both empty for
	// the group's own steps.
	Action   string    `json:"action,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitempty"`
	// Interrupted: the step was cut short (a failure, a kill) and run
	// again; its End is when the next attempt began, not when it finished.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Active reports whether the record is of an upgrade not finished. A
// completed record is history: the next upgrade of the group starts afresh.
func (r *Record) Active() bool {
	return r != nil && r.Phase != PhaseCompleted && r.Phase != PhaseRolledBack && r.Phase != PhaseAborted
}

// recordName is the ConfigMap holding a group's record: a hash keeps it a
// valid name whatever the cluster and group are called.
func recordName(cluster, group string) string {
	sum := sha256.Sum256([]byte(cluster + "/" + group))
	return "noderoll-upgrade-" + hex.EncodeToString(sum[:])[:12]
}

// Namespace holds noderoll's records.
const Namespace = "kube-system"

const recordKey = "record.json"

// RecordStore keeps one group's record where a front end keeps it. Load
// returns nil when there is none. Save refuses, with ErrRecordChanged, to
// write over a record someone else wrote since this store's last Load or
// Save: two writers (two runs, a run and a controller) never silently
// overwrite each other; the second stops.
type RecordStore interface {
	Load(ctx context.Context) (*Record, error)
	Save(ctx context.Context, r *Record) error
}

// Records opens the store of a group's record (WithRecords).
type Records func(g cloud.NodeGroupRef) RecordStore

// configMapRecords keeps each group's record in a ConfigMap in kube-system,
// where any process with the group's lock finds it: the CLI's store.
func configMapRecords(kube kubernetes.Interface) Records {
	return func(g cloud.NodeGroupRef) RecordStore { return NewConfigMapStore(kube, g) }
}

// NewConfigMapStore is the ConfigMap that keeps a group's record.
func NewConfigMapStore(kube kubernetes.Interface, g cloud.NodeGroupRef) *ConfigMapStore {
	return &ConfigMapStore{client: kube, name: recordName(g.Cluster, g.Name)}
}

// ConfigMapStore is a ConfigMap's RecordStore. Writes carry the
// resourceVersion of the last read or write, so a write over someone
// else's gets a conflict.
type ConfigMapStore struct {
	client kubernetes.Interface
	name   string
	rv     string // resourceVersion of the ConfigMap as last read or written; "" when none exists
}

// String names the ConfigMap, for messages.
func (s *ConfigMapStore) String() string { return "ConfigMap " + Namespace + "/" + s.name }

// Clear deletes the record when it is still as this store last read or
// wrote it (ErrRecordChanged otherwise): it moved elsewhere, to a
// controller that took the upgrade over.
func (s *ConfigMapStore) Clear(ctx context.Context) error {
	if s.rv == "" {
		return nil
	}
	rv := s.rv
	err := s.client.CoreV1().ConfigMaps(Namespace).Delete(ctx, s.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("handing over upgrade record %s/%s: %w", Namespace, s.name, ErrRecordChanged)
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("handing over upgrade record %s/%s: %w", Namespace, s.name, err)
	}
	s.rv = ""
	return nil
}

// ErrRecordChanged says someone else wrote the record since this run read it.
var ErrRecordChanged = errors.New("the upgrade record was changed by someone else since this run read it (another noderoll on this node group?)")

// LoadRecord reads the upgrade record of a group, nil when it has none: what
// any front end (the CLI, the controller) shows of an upgrade comes from it.
func LoadRecord(ctx context.Context, kube kubernetes.Interface, g cloud.NodeGroupRef) (*Record, error) {
	return configMapRecords(kube)(g).Load(ctx)
}

func (s *ConfigMapStore) Load(ctx context.Context) (*Record, error) {
	cm, err := s.client.CoreV1().ConfigMaps(Namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.rv = ""
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading upgrade record %s/%s: %w", Namespace, s.name, err)
	}
	s.rv = cm.ResourceVersion
	var r Record
	if err := json.Unmarshal([]byte(cm.Data[recordKey]), &r); err != nil {
		return nil, fmt.Errorf("upgrade record %s/%s is not readable (%v): delete it to start afresh", Namespace, s.name, err)
	}
	return &r, nil
}

func (s *ConfigMapStore) Save(ctx context.Context, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.name, Namespace: Namespace,
			Labels: map[string]string{
				"app.kubernetes.io/managed-by": "noderoll",
				"noderoll.io/nodegroup":        sanitizeLabel(r.Nodegroup),
			},
			Annotations: map[string]string{"noderoll.io/cluster": r.Cluster, "noderoll.io/nodegroup": r.Nodegroup},
		},
		Data: map[string]string{recordKey: string(b)},
	}
	var out *corev1.ConfigMap
	if s.rv == "" {
		out, err = s.client.CoreV1().ConfigMaps(Namespace).Create(ctx, cm, metav1.CreateOptions{})
	} else {
		cm.ResourceVersion = s.rv
		out, err = s.client.CoreV1().ConfigMaps(Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	}
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), s.rv != "" && apierrors.IsNotFound(err):
		return fmt.Errorf("saving upgrade record %s/%s: %w", Namespace, s.name, ErrRecordChanged)
	case err != nil:
		return fmt.Errorf("saving upgrade record %s/%s: %w", Namespace, s.name, err)
	}
	s.rv = out.ResourceVersion
	return nil
}

func sanitizeLabel(v string) string {
	out := []byte{}
	for _, c := range []byte(v) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			out = append(out, c)
		}
	}
	if len(out) > 63 {
		out = out[:63]
	}
	return string(out)
}

// Duration is a time.Duration written as "1m30s" in the record.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}
