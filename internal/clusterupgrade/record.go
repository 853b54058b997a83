// Package clusterupgrade upgrades every node group of a cluster that is
// behind: the targets frozen when it starts (a release published meanwhile
// waits for the next run), the canary groups alone first, then waves, a
// soak after each that watches the upgraded groups' health, and a stop
// before the next wave on a failure or a regression. Its progress is kept
// in the cluster, so a rerun resumes where a stopped one left off; each
// group's own upgrade is the engine's, resumable the same way.
package clusterupgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/engine"
)

// Phases of a cluster upgrade.
const (
	PhaseRunning   = "Running"
	PhaseFailed    = "Failed"    // a group's upgrade failed; a rerun resumes it
	PhaseHalted    = "Halted"    // a soak saw a regression; a rerun goes on
	PhaseCompleted = "Completed" // every wave upgraded and soaked
)

// Record is a cluster upgrade's progress.
type Record struct {
	Cluster string    `json:"cluster"`
	Minor   string    `json:"kubernetesVersion"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Targets are the AMIs each group goes to, frozen at the start.
	Targets map[string]Target `json:"targets"`
	Waves   []Wave            `json:"waves"`
	// Done is how many waves are upgraded and soaked.
	Done    int    `json:"wavesDone"`
	Soak    string `json:"soak"` // a Go duration
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
}

// Target is one group's frozen AMI.
type Target struct {
	ImageID   string `json:"imageId"`
	ImageName string `json:"imageName,omitempty"`
}

// Wave is groups upgraded together.
type Wave struct {
	Canary bool     `json:"canary,omitempty"`
	Groups []string `json:"groups"`
}

// Active says the record is of a cluster upgrade not finished.
func (r *Record) Active() bool { return r != nil && r.Phase != PhaseCompleted }

// recordName is the ConfigMap (in engine.Namespace) holding a cluster's
// upgrade record.
func recordName(cluster string) string {
	sum := sha256.Sum256([]byte(cluster))
	return "noderoll-cluster-" + hex.EncodeToString(sum[:])[:12]
}

const recordKey = "record.json"

// store reads and writes a cluster's record, refusing to write over one
// someone else wrote since it read it (the ConfigMap's resourceVersion).
type store struct {
	kube    kubernetes.Interface
	cluster string
	version string // "" until the ConfigMap exists
}

func (s *store) load(ctx context.Context) (*Record, error) {
	cm, err := s.kube.CoreV1().ConfigMaps(engine.Namespace).Get(ctx, recordName(s.cluster), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the cluster upgrade's record %s/%s: %w", engine.Namespace, recordName(s.cluster), err)
	}
	s.version = cm.ResourceVersion
	var r Record
	if err := json.Unmarshal([]byte(cm.Data[recordKey]), &r); err != nil {
		return nil, fmt.Errorf("the cluster upgrade's record %s/%s is not readable (%v): delete it to start afresh", engine.Namespace, cm.Name, err)
	}
	return &r, nil
}

func (s *store) save(ctx context.Context, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: recordName(s.cluster), Namespace: engine.Namespace, ResourceVersion: s.version,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "noderoll", "app.kubernetes.io/component": "cluster-upgrade"},
			Annotations: map[string]string{"noderoll.io/cluster": s.cluster}},
		Data: map[string]string{recordKey: string(b)},
	}
	var out *corev1.ConfigMap
	if s.version == "" {
		out, err = s.kube.CoreV1().ConfigMaps(engine.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	} else {
		out, err = s.kube.CoreV1().ConfigMaps(engine.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("the cluster upgrade's record %s/%s was changed by another run: one upgrade of a cluster at a time", engine.Namespace, cm.Name)
	}
	if err != nil {
		return fmt.Errorf("writing the cluster upgrade's record: %w", err)
	}
	s.version = out.ResourceVersion
	return nil
}
