package grouplock

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const group = "eksworkshop-eksctl/nodegroup"

func fast(self Holder, alive bool) Options {
	return Options{Duration: 2 * time.Second, RenewDeadline: time.Second, Retry: 100 * time.Millisecond, Self: self,
		alive: func(int) bool { return alive }}
}

var (
	here  = Holder{Host: "laptop", PID: 100, User: "ana", Nonce: "aaaaa"}
	there = Holder{Host: "bastion", PID: 200, User: "ben", Nonce: "bbbbb"}
)

func lease(t *testing.T, c *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := c.CoordinationV1().Leases("kube-system").Get(context.Background(), "lock", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestASecondRunIsRefusedNamingTheHolderUntilTheFirstReleases(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	first, err := Acquire(ctx, c, "lock", group, map[string]string{"app.kubernetes.io/managed-by": "noderoll"}, fast(here, true))
	if err != nil {
		t.Fatal(err)
	}
	l := lease(t, c)
	if got := ptr.Deref(l.Spec.HolderIdentity, ""); got != here.identity() || l.Labels["app.kubernetes.io/managed-by"] != "noderoll" {
		t.Fatalf("lease holder %q labels %v, want %q and noderoll's label", got, l.Labels, here.identity())
	}

	_, err = Acquire(ctx, c, "lock", group, nil, fast(there, true))
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("a second run was not refused: %v", err)
	}
	for _, want := range []string{group, "pid 100", "host laptop", "ana", "kube-system/lock", "held since"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	// The refusal changed nothing.
	if got := ptr.Deref(lease(t, c).Spec.HolderIdentity, ""); got != here.identity() {
		t.Fatalf("the refused run changed the holder to %q", got)
	}

	first.Release()
	if got := ptr.Deref(lease(t, c).Spec.HolderIdentity, ""); got != "" {
		t.Fatalf("after release the lease is still held by %q", got)
	}
	start := time.Now()
	second, err := Acquire(ctx, c, "lock", group, nil, fast(there, true))
	if err != nil {
		t.Fatalf("after release the next run is refused: %v", err)
	}
	defer second.Release()
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("a released lock took %v to take", waited)
	}
}

func TestALockOfAProcessGoneFromThisHostIsTakenAtOnce(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(held(here, time.Now(), 30))
	// Same host, the holder's pid no longer runs: a rerun after kill -9.
	me := Holder{Host: "laptop", PID: 101, Nonce: "ccccc"}
	start := time.Now()
	var told []string
	o := fast(me, false)
	o.Tell = func(msg string) { told = append(told, msg) }
	h, err := Acquire(ctx, c, "lock", group, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	// The user is told whose lock was taken, in a sentence of the run's.
	if len(told) != 1 || !strings.Contains(told[0], "taking over the lock kube-system/lock of node group "+group+" from noderoll (pid 100) on host laptop") {
		t.Errorf("told %q, want one line naming the gone holder", told)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("took %v to take over from a dead process", waited)
	}
	if got := ptr.Deref(lease(t, c).Spec.HolderIdentity, ""); got != me.identity() {
		t.Fatalf("holder %q, want %q", got, me.identity())
	}

	// The same lease, its holder alive on this host: refused.
	c = fake.NewClientset(held(here, time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, fast(me, true)); !errors.As(err, new(*HeldError)) {
		t.Fatalf("a live holder on this host was not respected: %v", err)
	}
}

func TestAnExpiredLeaseFromElsewhereIsTakenOverAfterItsDuration(t *testing.T) {
	ctx := context.Background()
	// Renewed a minute ago with a 1s lease: its holder stopped.
	c := fake.NewClientset(held(there, time.Now().Add(-time.Minute), 1))
	start := time.Now()
	var told []string
	o := fast(here, true)
	o.Tell = func(msg string) { told = append(told, msg) }
	h, err := Acquire(ctx, c, "lock", group, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if len(told) != 1 || !strings.Contains(told[0], "is held by noderoll (pid 200) on host bastion run by ben, which stopped renewing it 1m0s ago: taking it over once it expires, in up to 1s") {
		t.Errorf("told %q, want one line naming the holder and the wait", told)
	}
	waited := time.Since(start)
	if waited < 900*time.Millisecond {
		t.Errorf("took an expired lease over after %v, before its 1s duration had passed on this clock", waited)
	}
	if got := ptr.Deref(lease(t, c).Spec.HolderIdentity, ""); got != here.identity() {
		t.Fatalf("holder %q, want %q", got, here.identity())
	}

	// Renewed just now by a live run elsewhere: refused at once.
	c = fake.NewClientset(held(there, time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, fast(here, true)); !errors.As(err, new(*HeldError)) {
		t.Fatalf("a live holder elsewhere was not respected: %v", err)
	}
}

func TestALockThatCannotBeRenewedEndsTheWorkUnderIt(t *testing.T) {
	c := fake.NewClientset()
	// Installed before the lock runs (the fake's reactors are not safe to
	// change while in use), switched on below.
	var down atomic.Bool
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	h, err := Acquire(context.Background(), c, "lock", group, nil, fast(here, true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := h.Guard(context.Background())
	defer cancel()
	// The API server stops taking renewals.
	down.Store(true)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the work under a lock that could not be renewed went on")
	}
	var lost *LostError
	if !errors.As(context.Cause(ctx), &lost) {
		t.Fatalf("cause %v: want a LostError", context.Cause(ctx))
	}
	cancel()
	h.Release()
}

func TestHolderIdentityReadsBack(t *testing.T) {
	if got := parseHolder(here.identity()); got != here {
		t.Fatalf("parsed %+v, want %+v", got, here)
	}
	if got := parseHolder("kube-controller-manager_4f2a"); got.Host != "kube-controller-manager_4f2a" || got.PID != 0 {
		t.Fatalf("a foreign identity parsed as %+v", got)
	}
}

func held(h Holder, renewed time.Time, seconds int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "lock"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(h.identity()),
			LeaseDurationSeconds: ptr.To(seconds),
			AcquireTime:          &metav1.MicroTime{Time: renewed.Add(-time.Minute)},
			RenewTime:            &metav1.MicroTime{Time: renewed},
		},
	}
}

// A process killed but not yet reaped by its parent (a zombie) answers
// signal 0 yet runs no more: a rerun right after a kill -9 takes over the
// dead run's lock at once on the same host.
func TestAKilledUnreapedProcessIsNotAlive(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep here")
	}
	pid := cmd.Process.Pid
	if !processAlive(pid) {
		t.Fatal("a running process reads as dead")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait() //nolint:errcheck // reaped at the end, not before the check
	for deadline := time.Now().Add(5 * time.Second); !zombie(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Skip("no zombie state in /proc here")
		}
	}
	if processAlive(pid) {
		t.Fatal("a killed process its parent has not reaped yet reads as alive")
	}
}

// Whether a lease from elsewhere is live, and how long ago it was renewed,
// is judged by the injected clock, not the machine's.
func TestALeaseIsJudgedByTheInjectedClock(t *testing.T) {
	renewed := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	c := fake.NewClientset(held(there, renewed, 30))
	o := fast(here, true)
	o.Clock = clocktesting.NewFakePassiveClock(renewed.Add(12 * time.Second))
	_, err := Acquire(context.Background(), c, "lock", group, nil, o)
	var refused *HeldError
	if !errors.As(err, &refused) || refused.Ago != 12*time.Second || !strings.Contains(err.Error(), "last renewed 12s ago") {
		t.Fatalf("a lease renewed 12 s ago by the clock, lasting 30 s: got %v", err)
	}
}

// Each worker of a controller holds its locks as itself: a lock another
// replica holds (an old leader cut off from the API server may still act)
// is refused until its lease expires, and so is one another worker of the
// same process holds; an earlier process of the same pod (a restarted
// container) is gone, and its lock is taken at once.
func TestAControllersWorkersAndReplicasAreExcludedByTheLockItself(t *testing.T) {
	ctx := context.Background()
	oldLeader := ControllerHolder("kube-system", "noderoll-controller", "noderoll-controller-abc").Worker()
	proc := ControllerHolder("kube-system", "noderoll-controller", "noderoll-controller-xyz")
	leader := proc.Worker()
	o := fast(leader, true)
	if s := oldLeader.String(); !strings.Contains(s, "noderoll controller") || !strings.Contains(s, "kube-system/noderoll-controller") || !strings.Contains(s, "noderoll-controller-abc") {
		t.Errorf("the controller as a holder reads %q", s)
	}
	// Another replica's live lock: refused, naming it.
	c := fake.NewClientset(held(oldLeader, time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, o); !errors.As(err, new(*HeldError)) || !strings.Contains(err.Error(), "noderoll-controller-abc") {
		t.Fatalf("a new leader took a live lock of the old leader's at once: %v", err)
	}
	// Another worker of this process: refused too.
	c = fake.NewClientset(held(proc.Worker(), time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, o); !errors.As(err, new(*HeldError)) {
		t.Fatalf("a worker took another worker's live lock: %v", err)
	}
	// The same pod's earlier process: taken at once.
	earlier := ControllerHolder("kube-system", "noderoll-controller", "noderoll-controller-xyz").Worker()
	c = fake.NewClientset(held(earlier, time.Now(), 30))
	h, err := Acquire(ctx, c, "lock", group, nil, o)
	if err != nil {
		t.Fatalf("a restarted pod was refused its earlier process's lock: %v", err)
	}
	if got := ptr.Deref(lease(t, c).Spec.HolderIdentity, ""); got != leader.identity() {
		t.Fatalf("holder %q, want the worker %q", got, leader.identity())
	}
	h.Release()
	// The old leader's lock, once its lease expired (this process's
	// clock), goes to the new leader.
	c = fake.NewClientset(held(oldLeader, time.Now().Add(-time.Minute), 2))
	if h, err = Acquire(ctx, c, "lock", group, nil, o); err != nil {
		t.Fatalf("an expired lock of the old leader's was refused: %v", err)
	}
	h.Release()
	// A CLI run's live lock is respected by the controller, and the
	// controller's by a CLI run.
	c = fake.NewClientset(held(here, time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, o); !errors.As(err, new(*HeldError)) {
		t.Fatalf("the controller took a live CLI run's lock: %v", err)
	}
	c = fake.NewClientset(held(oldLeader, time.Now(), 30))
	if _, err := Acquire(ctx, c, "lock", group, nil, fast(here, false)); !errors.As(err, new(*HeldError)) {
		t.Fatalf("a CLI run took the controller's live lock: %v", err)
	}
}

// Leader election's lines, errors among them, reach the run's log only as
// debug lines: nothing on a run's stderr without -v.
func TestLeaderElectionsLinesAreDebugOnly(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		l := logr.FromSlogHandler(debugOnly{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})})
		l.Error(errors.New("context canceled"), "Error retrieving lease lock")
		l.Info("successfully acquired lease")
		got := buf.String()
		switch {
		case level == slog.LevelInfo && got != "":
			t.Errorf("an info-level log printed leader election's lines:\n%s", got)
		case level == slog.LevelDebug && (strings.Count(got, "level=DEBUG") != 2 || !strings.Contains(got, "Error retrieving lease lock")):
			t.Errorf("a debug-level log, want both lines at debug level:\n%s", got)
		}
	}
}
