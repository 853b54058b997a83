package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
)

// The reconciler's decisions, on controller-runtime's fake client, with
// workers stood in for: which resource waits, which is retried when, and
// how a run's end reads. Real runs are proven end to end in test/e2e.

func reconciler(t *testing.T, objs ...client.Object) (*Reconciler, *clocktesting.FakeClock) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.NodeGroupUpgrade{}).Build()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	r := &Reconciler{Client: c, Reader: c, Events: events.NewFakeRecorder(100), Log: slog.New(slog.DiscardHandler), Clock: clk, MaxConcurrent: 10,
		Metrics: m, StatusEvery: time.Second, workers: map[types.UID]*worker{}, notBefore: map[types.UID]time.Time{}, timed: map[types.UID]map[string]bool{}, base: context.Background()}
	return r, clk
}

func resource(name string, uid types.UID, group string) *v1alpha1.NodeGroupUpgrade {
	return &v1alpha1.NodeGroupUpgrade{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid, Generation: 1, Finalizers: []string{Finalizer}},
		Spec: v1alpha1.NodeGroupUpgradeSpec{Cluster: "c1", NodeGroup: group, Mode: "Noderoll", Target: v1alpha1.Target{KubernetesVersion: "1.37"}, UpgradeSettings: v1alpha1.UpgradeSettings{Strategy: v1alpha1.Strategy{Type: "Surge"}}}}
}

func get(t *testing.T, r *Reconciler, name string) *v1alpha1.NodeGroupUpgrade {
	t.Helper()
	var u v1alpha1.NodeGroupUpgrade
	if err := r.Client.Get(context.Background(), client.ObjectKey{Name: name}, &u); err != nil {
		t.Fatal(err)
	}
	return &u
}

// A second resource of a group one worker upgrades waits Pending, naming
// the first: the leader takes its own locks back at once, so starting it
// would take the group from the first.
func TestASecondResourceOfAGroupWaitsForTheFirst(t *testing.T) {
	r, _ := reconciler(t, resource("second", "uid-2", "ng"))
	r.workers["uid-1"] = &worker{group: cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}, name: "first", generation: 1, done: make(chan struct{})}
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "second"}})
	if err != nil {
		t.Fatal(err)
	}
	u := get(t, r, "second")
	if u.Status.Phase != v1alpha1.PhasePending || !strings.Contains(u.Status.Message, "NodeGroupUpgrade first is upgrading c1/ng") || res.RequeueAfter == 0 {
		t.Errorf("phase %s message %q requeue %s", u.Status.Phase, u.Status.Message, res.RequeueAfter)
	}
	if len(r.workers) != 1 {
		t.Errorf("%d workers, want the first alone", len(r.workers))
	}
}

// A group held by another run is waited for, not failed: the resource is
// Pending, naming the holder, and no worker starts before the holder's
// lease could have expired.
func TestAGroupHeldByAnotherIsTriedAgainWhenItsLeaseCouldHaveExpired(t *testing.T) {
	u := resource("up", "uid-1", "ng")
	// As a leader killed mid-drain left it.
	u.Status.Phase, u.Status.InFlightNodes, u.Status.BlockedNodes = v1alpha1.PhaseRunning, 3, 2
	u.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionBlocked, Status: metav1.ConditionTrue, Reason: "EvictionRefused", LastTransitionTime: metav1.Now()}}
	r, clk := reconciler(t, u)
	held := &grouplock.HeldError{Group: "c1/ng", Lease: "kube-system/x", Holder: grouplock.Holder{Host: "laptop", PID: 7},
		Since: clk.Now().Add(-time.Minute), Renewed: clk.Now().Add(-10 * time.Second), Expires: 30 * time.Second}
	if phase := r.conclude(context.Background(), u, Run{}, nil, fmt.Errorf("locking: %w", held), newReports(clk.Now), r.Log); phase != "" {
		t.Fatalf("a held group ended the upgrade as %s", phase)
	}
	got := get(t, r, "up")
	if got.Status.Phase != v1alpha1.PhasePending || !strings.Contains(got.Status.Message, "pid 7") || !strings.Contains(got.Status.Message, "this upgrade starts once it is free") {
		t.Errorf("phase %s message %q", got.Status.Phase, got.Status.Message)
	}
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionBlocked); got.Status.InFlightNodes != 0 || got.Status.BlockedNodes != 0 || c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("pending, nothing runs, yet %d in flight, %d blocked, condition %+v", got.Status.InFlightNodes, got.Status.BlockedNodes, c)
	}
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "up"}})
	if err != nil || res.RequeueAfter != 20*time.Second || len(r.workers) != 0 {
		t.Errorf("reconciled before the lease could expire: requeue %s, %d workers (%v)", res.RequeueAfter, len(r.workers), err)
	}
	// Tried again while the holder still holds it: the same status, not
	// written again (no flapping, no churn of the resource).
	clk.Step(5 * time.Second)
	again := *held
	again.Renewed = clk.Now().Add(-time.Second)
	if phase := r.conclude(context.Background(), u, Run{}, nil, fmt.Errorf("locking: %w", &again), newReports(clk.Now), r.Log); phase != "" {
		t.Fatalf("a held group ended the upgrade as %s", phase)
	}
	if after := get(t, r, "up"); after.ResourceVersion != got.ResourceVersion || after.Status.Message != got.Status.Message {
		t.Errorf("a second try rewrote the status: %q (version %s -> %s)", after.Status.Message, got.ResourceVersion, after.ResourceVersion)
	}
}

// How a run's end reads on the resource.
func TestARunsEndIsWrittenWithItsReason(t *testing.T) {
	did := &engine.Result{Target: engine.Target{ImageID: "ami-new", ImageName: "al2023-1.37-v20261207"}, Replaced: []string{"i-1", "i-2"}, Duration: 41 * time.Second}
	for _, c := range []struct {
		err               error
		action            string
		res               *engine.Result
		phase, cond, want string
	}{
		{nil, "", nil, v1alpha1.PhaseComplete, v1alpha1.ConditionComplete, ""},
		// What the run did, not its last note (a moment's news).
		{nil, "", did, v1alpha1.PhaseComplete, v1alpha1.ConditionComplete, "upgraded c1/ng to ami-new (al2023-1.37-v20261207): 2 nodes replaced in 41s"},
		{nil, "", &engine.Result{UpToDate: true, Target: did.Target}, v1alpha1.PhaseComplete, v1alpha1.ConditionComplete, "c1/ng was on ami-new (al2023-1.37-v20261207) already; nothing was changed"},
		{nil, "Abort", nil, v1alpha1.PhaseAborted, v1alpha1.ConditionComplete, ""},
		{nil, "Abort", did, v1alpha1.PhaseAborted, v1alpha1.ConditionComplete, "aborted: c1/ng is back on ami-new"},
		{&drain.BlockedError{}, "", nil, v1alpha1.PhaseFailed, v1alpha1.ConditionFailed, "spec.force"},
	} {
		u := resource("up", "uid-1", "ng")
		r, clk := reconciler(t, u)
		rep := newReports(clk.Now)
		rep.Report(engine.Progress{Kind: engine.ProgressInfo, Message: "cluster-autoscaler kube-system/cluster-autoscaler stays at 0"})
		run := Run{Action: c.action, Group: cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}}
		if phase := r.conclude(context.Background(), u, run, c.res, c.err, rep, r.Log); phase != c.phase {
			t.Errorf("%v: ended %s, want %s", c.err, phase, c.phase)
		}
		got := get(t, r, "up")
		var cond *metav1.Condition
		for i := range got.Status.Conditions {
			if got.Status.Conditions[i].Type == c.cond {
				cond = &got.Status.Conditions[i]
			}
		}
		if got.Status.Phase != c.phase || cond == nil || cond.Status != metav1.ConditionTrue || got.Status.CompletionTime == nil || !strings.Contains(got.Status.Message, c.want) {
			t.Errorf("%v: status %+v", c.err, got.Status)
		}
		if c.res != nil && strings.Contains(got.Status.Message, "stays at 0") {
			t.Errorf("%v, %s: the last note %q, not what the run did", c.err, c.action, got.Status.Message)
		}
		if !ended(got) {
			t.Errorf("%v: the resource is not ended for its generation", c.err)
		}
	}
}

// A lost lock is another's upgrade now: not Failed, looked at again.
func TestALostLockIsNotAFailure(t *testing.T) {
	u := resource("up", "uid-1", "ng")
	r, clk := reconciler(t, u)
	if phase := r.conclude(context.Background(), u, Run{}, nil, fmt.Errorf("x: %w", &grouplock.LostError{Lease: "kube-system/x"}), newReports(clk.Now), r.Log); phase != "" {
		t.Fatalf("ended as %s", phase)
	}
	if got := get(t, r, "up"); got.Status.Phase != v1alpha1.PhasePending || ended(got) {
		t.Errorf("status %+v", got.Status)
	}
	if r.notBefore["uid-1"].Sub(clk.Now()) != 30*time.Second {
		t.Errorf("looked at again after %s", r.notBefore["uid-1"].Sub(clk.Now()))
	}
}

// Each recorded step is timed once per resource, however many workers
// (a pause, a resume) look at the record; unfinished steps wait.
func TestEachRecordedStepIsTimedOnce(t *testing.T) {
	r, clk := reconciler(t)
	start := clk.Now()
	steps := []engine.Step{{Name: "surge", Start: start, End: start.Add(20 * time.Second)}, {Name: "replace", Start: start.Add(20 * time.Second)}}
	r.timeSteps("uid-1", steps)
	steps[1].End = start.Add(50 * time.Second)
	r.timeSteps("uid-1", steps) // a second worker, after a pause
	r.timeSteps("uid-1", steps)
	got := map[string]uint64{}
	for _, name := range []string{"surge", "replace"} {
		var m dto.Metric
		if err := r.Metrics.steps.WithLabelValues(name).(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		got[name] = m.GetHistogram().GetSampleCount()
	}
	if got["surge"] != 1 || got["replace"] != 1 {
		t.Errorf("steps timed %v, want each once", got)
	}
}

// A resource for a group already on its target reports its own run (none
// replaced), not the earlier upgrade the group's record still holds.
func TestARunReadsOnlyItsOwnRecord(t *testing.T) {
	since := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	earlier := &engine.Record{Phase: engine.PhaseCompleted, Updated: since.Add(-time.Minute), Replaced: []string{"i-1", "i-2", "i-3"}, Target: engine.Target{ImageID: "ami-b"}}
	upToDate := &engine.Result{UpToDate: true, Target: engine.Target{ImageID: "ami-b"}}
	if got := thisRun(earlier, since, upToDate); got == nil || len(got.Replaced) != 0 || got.Target.ImageID != "ami-b" {
		t.Errorf("an up-to-date run after an earlier upgrade reads %+v", got)
	}
	if got := thisRun(earlier, since, nil); got != nil {
		t.Errorf("mid-run, an earlier upgrade's record is taken as this run's: %+v", got)
	}
	resumed := &engine.Record{Phase: engine.PhaseReplacing, Updated: since.Add(-time.Hour), Replaced: []string{"i-1"}}
	if got := thisRun(resumed, since, nil); got != resumed {
		t.Error("an unfinished record (a run this one resumes) is not read")
	}
	finished := &engine.Record{Phase: engine.PhaseCompleted, Updated: since.Add(time.Minute), Replaced: []string{"i-1"}}
	if got := thisRun(finished, since, nil); got != finished {
		t.Error("the record this run finished is not read")
	}
}

// Reconcile never waits on a worker: pausing a resource whose worker is
// still on its way out cancels it and asks to be called again, leaving the
// phase alone until the worker is gone; then the resource reads Paused.
func TestReconcileNeverWaitsForAWorker(t *testing.T) {
	u := resource("up", "uid-1", "ng")
	u.Spec.Paused = true
	r, _ := reconciler(t, u)
	cancelled := false
	w := &worker{group: cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}, name: "up", generation: 1, cancel: func() { cancelled = true }, done: make(chan struct{})}
	r.workers["uid-1"] = w
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "up"}}
	returned := make(chan ctrl.Result, 1)
	go func() {
		res, err := r.Reconcile(context.Background(), req)
		if err != nil {
			t.Error(err)
		}
		returned <- res
	}()
	select {
	case res := <-returned:
		if !cancelled || res.RequeueAfter <= 0 || get(t, r, "up").Status.Phase == v1alpha1.PhasePaused {
			t.Errorf("worker cancelled %v, requeue %s, phase %s; want cancelled, called again later, not Paused yet", cancelled, res.RequeueAfter, get(t, r, "up").Status.Phase)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reconcile waited for a worker that does not end")
	}
	r.mu.Lock()
	delete(r.workers, "uid-1")
	r.mu.Unlock()
	close(w.done)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := get(t, r, "up"); got.Status.Phase != v1alpha1.PhasePaused {
		t.Errorf("once the worker is gone: phase %s, want Paused", got.Status.Phase)
	}
}

// A worker's end wakes its resource at once, sooner than the cache may
// hold the end it wrote: a resource the API server has Complete is not
// started again from a cached copy that still reads Running.
func TestAnUpgradeJustEndedIsNotStartedAgainFromAStaleCache(t *testing.T) {
	cached := resource("up", "uid-1", "ng")
	cached.Status = v1alpha1.NodeGroupUpgradeStatus{Phase: v1alpha1.PhaseRunning, ObservedGeneration: cached.Generation}
	r, _ := reconciler(t, cached)
	done := cached.DeepCopy()
	done.Status.Phase = v1alpha1.PhaseComplete
	live, _ := reconciler(t, done)
	r.Reader = live.Client
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Name: "up"}}); err != nil {
		t.Fatal(err)
	}
	if len(r.workers) != 0 {
		t.Errorf("started %d worker(s) for an upgrade the API server has Complete", len(r.workers))
	}
}
