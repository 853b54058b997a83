package records

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/kubefake"
)

// The hand-over's logic on fake clients; the real API server's part (its
// preconditions, RBAC) is proven in test/e2e's take-over test.

var group = cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}

type world struct {
	k     Keeper
	took  []string
	clock time.Time
}

func newWorld(t *testing.T, resources ...string) *world {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, name := range resources {
		objs = append(objs, &v1alpha1.NodeGroupUpgrade{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.NodeGroupUpgradeSpec{Cluster: group.Cluster, NodeGroup: group.Name}})
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.NodeGroupUpgrade{}).Build()
	w := &world{clock: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	kube := k8sfake.NewClientset()
	kubefake.WithResourceVersions(kube, "configmaps")
	w.k = Keeper{Kube: kube, Client: c, Reader: c, TookOver: func(from string) { w.took = append(w.took, from) }}
	return w
}

func (w *world) record(phase string, replaced ...string) *engine.Record {
	w.clock = w.clock.Add(time.Minute)
	return &engine.Record{Cluster: group.Cluster, Nodegroup: group.Name, Phase: phase, Replaced: replaced, Started: w.clock, Updated: w.clock}
}

func (w *world) resource(t *testing.T, name string) *v1alpha1.NodeGroupUpgrade {
	t.Helper()
	var u v1alpha1.NodeGroupUpgrade
	if err := w.k.Reader.Get(context.Background(), client.ObjectKey{Name: name}, &u); err != nil {
		t.Fatal(err)
	}
	return &u
}

func (w *world) cli() engine.RecordStore { return w.k.CLI()(group) }
func (w *world) controller(name string) engine.RecordStore {
	return w.k.Resource(client.ObjectKey{Name: name}, group)(group)
}

func (w *world) configMap(t *testing.T) *engine.Record {
	t.Helper()
	r, err := engine.NewConfigMapStore(w.k.Kube, group).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustSave(t *testing.T, s engine.RecordStore, r *engine.Record) {
	t.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, s engine.RecordStore) *engine.Record {
	t.Helper()
	r, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A CLI run killed mid-upgrade left its record in the ConfigMap: the
// controller resumes it, and its first save moves the record into the
// resource's status and deletes the ConfigMap.
func TestTheControllerTakesOverTheCLIsRecord(t *testing.T) {
	w := newWorld(t, "up")
	mustSave(t, w.cli(), w.record(engine.PhaseReplacing, "i-1"))

	ctl := w.controller("up")
	rec := mustLoad(t, ctl)
	if rec == nil || rec.Phase != engine.PhaseReplacing || len(rec.Replaced) != 1 {
		t.Fatalf("the controller loaded %+v, want the CLI's record", rec)
	}
	if len(w.took) != 0 {
		t.Errorf("a load alone said it took the record over: %v", w.took)
	}
	rec.Replaced = append(rec.Replaced, "i-2")
	mustSave(t, ctl, rec)
	if got := w.configMap(t); got != nil {
		t.Errorf("the ConfigMap still holds %+v after the take-over", got)
	}
	u := w.resource(t, "up")
	kept, err := Decode(u)
	if err != nil || kept == nil || len(kept.Replaced) != 2 || u.Status.Record.Version != 1 {
		t.Fatalf("the status holds %+v (%v), want the record with two replaced at version 1", kept, err)
	}
	if len(w.took) != 1 || !strings.HasPrefix(w.took[0], "ConfigMap kube-system/noderoll-upgrade-") {
		t.Errorf("took over from %v, want the ConfigMap named", w.took)
	}
	// The next saves are the status's alone.
	mustSave(t, ctl, kept)
	if u := w.resource(t, "up"); u.Status.Record.Version != 2 || len(w.took) != 1 {
		t.Errorf("second save: version %d, took %v", u.Status.Record.Version, w.took)
	}
}

// The reverse: the controller's record, left by a controller that is down
// (or a resource paused), is taken over by the CLI run that got the lock,
// and the resource says who has it now.
func TestTheCLITakesOverAResourcesRecord(t *testing.T) {
	w := newWorld(t, "up", "other")
	mustSave(t, w.controller("up"), w.record(engine.PhaseSurging))

	cli := w.cli()
	rec := mustLoad(t, cli)
	if rec == nil || rec.Phase != engine.PhaseSurging {
		t.Fatalf("the CLI loaded %+v, want the resource's record", rec)
	}
	rec.Phase = engine.PhaseReplacing
	mustSave(t, cli, rec)
	if got := w.configMap(t); got == nil || got.Phase != engine.PhaseReplacing {
		t.Fatalf("the ConfigMap holds %+v, want the record taken over", got)
	}
	u := w.resource(t, "up")
	if u.Status.Record != nil || u.Status.Phase != v1alpha1.PhasePending || !strings.Contains(u.Status.Message, "handed over: a noderoll CLI run holds the group's lock") {
		t.Errorf("the resource after the take-over: record %v, phase %s, %q", u.Status.Record, u.Status.Phase, u.Status.Message)
	}
	if len(w.took) != 1 || w.took[0] != "NodeGroupUpgrade up" {
		t.Errorf("took over from %v", w.took)
	}
	if o := w.resource(t, "other"); o.Status.Phase != "" {
		t.Errorf("a resource without the record was written: %+v", o.Status)
	}
}

// A record written since the store read it is never overwritten: the
// second writer stops, as with the ConfigMap.
func TestAStaleStatusWriteIsRefused(t *testing.T) {
	w := newWorld(t, "up")
	a, b := w.controller("up"), w.controller("up")
	mustSave(t, a, w.record(engine.PhaseStarted))
	mustLoad(t, b)
	mustSave(t, a, w.record(engine.PhaseSurging))
	if err := b.Save(context.Background(), w.record(engine.PhaseStarted)); !errors.Is(err, engine.ErrRecordChanged) {
		t.Fatalf("a stale write: want ErrRecordChanged, got %v", err)
	}
	if rec, _ := Decode(w.resource(t, "up")); rec.Phase != engine.PhaseSurging {
		t.Errorf("the record was overwritten: phase %s", rec.Phase)
	}
	// And one whose record was taken away meanwhile stops too.
	cli := w.cli()
	mustSave(t, cli, mustLoad(t, cli))
	if err := a.Save(context.Background(), w.record(engine.PhaseReplacing)); !errors.Is(err, engine.ErrRecordChanged) {
		t.Fatalf("a write after the take-over: want ErrRecordChanged, got %v", err)
	}
}

// History stays where it is: a finished record is no upgrade to take over,
// and of two unfinished ones (a crash between a take-over's two writes)
// the newest is resumed and the other cleared.
func TestOnlyTheNewestUnfinishedRecordIsTakenOver(t *testing.T) {
	w := newWorld(t, "done", "up")
	mustSave(t, w.controller("done"), w.record(engine.PhaseCompleted))
	if rec := mustLoad(t, w.cli()); rec != nil {
		t.Errorf("the CLI loaded a finished record of a resource: %+v", rec)
	}

	mustSave(t, w.cli(), w.record(engine.PhaseSurging))
	mustSave(t, w.controller("up"), w.record(engine.PhaseReplacing, "i-1"))
	cli := w.cli()
	rec := mustLoad(t, cli)
	if rec.Phase != engine.PhaseReplacing {
		t.Fatalf("loaded phase %s, want the newer record's Replacing", rec.Phase)
	}
	mustSave(t, cli, rec)
	if u := w.resource(t, "up"); u.Status.Record != nil {
		t.Errorf("the older place still holds a record")
	}
	if u := w.resource(t, "done"); u.Status.Record == nil {
		t.Errorf("a finished record was cleared")
	}
	// The controller's side: its own unfinished record, older than the
	// CLI's, loses to it.
	st := w.k.status(client.ObjectKey{Name: "done"}, "")
	mustLoad(t, st)
	old := w.record(engine.PhaseSurging)
	old.Updated = old.Updated.Add(-time.Hour)
	mustSave(t, st, old)
	if rec := mustLoad(t, w.controller("done")); rec.Phase != engine.PhaseReplacing {
		t.Errorf("the controller loaded phase %s, want the CLI's newer Replacing", rec.Phase)
	}
}

// A deleted resource hands an unfinished record back to the ConfigMap, and
// nothing when it is finished.
func TestADeletedResourceHandsItsRecordBack(t *testing.T) {
	w := newWorld(t, "up")
	ctx := context.Background()
	mustSave(t, w.controller("up"), w.record(engine.PhaseReplacing, "i-1"))
	back, err := HandBack(ctx, w.k.Kube, w.resource(t, "up"))
	if err != nil || back == nil {
		t.Fatalf("hand back: %v %v", back, err)
	}
	if got := w.configMap(t); got == nil || got.Phase != engine.PhaseReplacing || len(got.Replaced) != 1 {
		t.Fatalf("the ConfigMap holds %+v, want the handed-back record", got)
	}
	// Handing back again (the finalizer retried) changes nothing.
	if again, err := HandBack(ctx, w.k.Kube, w.resource(t, "up")); err != nil || again != nil {
		t.Errorf("a second hand back: %v %v, want nothing done", again, err)
	}

	w2 := newWorld(t, "done")
	mustSave(t, w2.controller("done"), w2.record(engine.PhaseCompleted))
	if back, err := HandBack(ctx, w2.k.Kube, w2.resource(t, "done")); err != nil || back != nil || w2.configMap(t) != nil {
		t.Errorf("a finished record was handed back: %v %v", back, err)
	}
}

// Where the CRD is not installed, the CLI keeps to its ConfigMap.
func TestWithoutResourcesTheCLIKeepsToItsConfigMap(t *testing.T) {
	w := newWorld(t)
	w.k.Client, w.k.Reader = nil, nil
	cli := w.cli()
	if rec := mustLoad(t, cli); rec != nil {
		t.Fatalf("loaded %+v from nowhere", rec)
	}
	mustSave(t, cli, w.record(engine.PhaseStarted))
	if got := w.configMap(t); got == nil || got.Phase != engine.PhaseStarted {
		t.Errorf("the ConfigMap holds %+v", got)
	}
}
