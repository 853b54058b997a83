package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestOneRunPerGroup: while one run upgrades the group, a second is refused
// at once, naming the first's process and host, and changes nothing in the
// cluster or the account. A lock left by a run on another machine that
// stopped renewing it is taken over once it expired, and that run finishes
// the upgrade. (A rerun after kill -9 on the same host takes the dead
// process's lock at once: every kill-and-resume test relies on it.)
func TestOneRunPerGroup(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	upgrade := append(slices.Clone(seedUpgrade), "--post-cordon-wait=30s")
	first := s.Start(upgrade...)
	eventually(t, 3*time.Minute, "the first run draining its first old node", func() (bool, string) {
		return strings.Contains(first.out.String(), "Replace node 1/3"), tail(first.out.String(), 5)
	})
	// Frozen, the first run holds the lock (its process lives) and changes
	// nothing meanwhile, so that anything that changes is the second's doing.
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Calls already in flight land: the account and cluster read the same
	// twice in a row.
	var before accountSnapshot
	eventually(t, time.Minute, "the frozen run's calls in flight landed", func() (bool, string) {
		a := snapshot(t, s)
		b := snapshot(t, s)
		before = b
		return a == b, fmt.Sprintf("%+v then %+v", a, b)
	})
	record := func() string {
		cm, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: recordSelector})
		if err != nil || len(cm.Items) != 1 {
			t.Fatalf("want one record: %v", err)
		}
		return cm.Items[0].ResourceVersion
	}
	recBefore := record()

	r := s.Noderoll(upgrade...)
	if r.Code == 0 {
		t.Fatal("a second run of the same group succeeded while the first held it")
	}
	want := fmt.Sprintf("node group eksworkshop-eksctl/nodegroup is being upgraded by noderoll (pid %d) on host", first.cmd.Process.Pid)
	if !strings.Contains(r.LastLine(), want) || !strings.Contains(r.LastLine(), "held since") {
		t.Fatalf("the refusal does not name the holder (%q):\n%s", want, r.LastLine())
	}
	// At once: the refusal is the live holder's, never a wait for its lease
	// to expire (no wall-clock bound here).
	if strings.Contains(r.Stderr, "taking it over once it expires") || strings.Contains(r.LastLine(), "waiting for the lock") {
		t.Errorf("the refused run waited for the lock instead of refusing at once:\n%s", tail(r.Stderr, 10))
	}
	if after := snapshot(t, s); after != before || record() != recBefore {
		t.Fatalf("the refused run changed something: %+v -> %+v (record %s -> %s)", before, after, recBefore, record())
	}
	t.Logf("refused: %s", r.LastLine())

	// The first run dies, and its lock is made to look like one left by a
	// run on another machine, renewed a minute ago for 5s.
	first.Kill(t)
	leases, err := s.Kube.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=noderoll"})
	if err != nil || len(leases.Items) != 1 {
		t.Fatalf("want one noderoll lease: %v", err)
	}
	l := leases.Items[0]
	l.Spec.HolderIdentity = ptr.To("bastion-2/4242/ops/zzzzz")
	l.Spec.LeaseDurationSeconds = ptr.To(int32(5))
	l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now().Add(-time.Minute)}
	if _, err := s.Kube.CoordinationV1().Leases("kube-system").Update(ctx, &l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r = s.Noderoll(append(slices.Clone(seedUpgrade), "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("the run after the holder elsewhere stopped failed: %s\n%s", r.LastLine(), tail(r.Stderr, 20))
	}
	if !strings.Contains(r.Stderr, "bastion-2") || !strings.Contains(r.Stderr, "taking it over once it expires") {
		t.Errorf("the run did not say whose expired lock it took over:\n%s", tail(r.Stderr, 40))
	}
	if took := time.Since(start); took < 5*time.Second {
		t.Errorf("the expired lock was taken after %v, before its 5s had passed", took)
	}
	allOnTarget(t, s, 3)
	got, err := s.Kube.CoordinationV1().Leases("kube-system").Get(ctx, l.Name, metav1.GetOptions{})
	if err != nil || ptr.Deref(got.Spec.HolderIdentity, "") != "" {
		t.Fatalf("the lock was not released at the end: %v", err)
	}
}
