package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The worked example of docs/performance.md: 40 nodes, surge 4, B+R 30s,
// one workload of 20 pods behind a budget allowing 1.
func TestLowerBoundOfTheWorkedExample(t *testing.T) {
	d := Delays{BootReady: 30 * time.Second, PodStart: 30 * time.Second, PodStop: 10 * time.Second, Wait: 5 * time.Second}
	b := lowerBound(40, 4, d, []Budgeted{{Name: "db", OnOld: 20, Allowed: 1}, {Name: "web", OnOld: 40, Allowed: 10}})
	// waves: 10 * (30 + max(10, 5)) = 6m40s; budgets: 30 + 19*30 + 10 = 10m10s.
	if b.Waves != 400*time.Second || b.Budgets != 610*time.Second || b.Makespan != b.Budgets || b.Bottleneck != "db" {
		t.Fatalf("%+v", b)
	}
	// A StatefulSet's replacement waits for the old pod: c = T+S.
	b = lowerBound(40, 40, d, []Budgeted{{Name: "cache", OnOld: 4, Allowed: 2, Ordered: true}})
	if b.Budgets != 30*time.Second+1*40*time.Second+10*time.Second || b.Waves != 40*time.Second {
		t.Fatalf("%+v", b)
	}
	// Nothing budgeted: the waves, or the first capacity, bind; a wait
	// longer than a pod's stop is what a slot holds a node for.
	if b := lowerBound(3, 3, d, nil); b.Makespan != 40*time.Second || b.First != 40*time.Second {
		t.Fatalf("%+v", b)
	}
	d.Wait = 60 * time.Second
	if b := lowerBound(8, 4, d, nil); b.Waves != 2*90*time.Second {
		t.Fatalf("%+v", b)
	}
}

func TestMemPeakReadsTheProcessOwnMemory(t *testing.T) {
	var m memPeak
	m.sample(os.Getpid())
	if m.mib() <= 0 {
		t.Skip("no /proc here")
	}
	keep := m.kB
	m.sample(-1) // gone: kept as it was
	if m.kB != keep {
		t.Fatalf("a failed sample changed the peak: %d -> %d", keep, m.kB)
	}
	if m.hwmKB < m.kB {
		t.Fatalf("peak RSS %d kB below its anonymous part %d kB", m.hwmKB, m.kB)
	}
}

// A child's peak RSS is its own, not its parent's: the kernel's usage of a
// child Go started counts the parent's memory at the exec, /proc does not.
func TestAChildsPeakRSSIsNotItsParents(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	ballast := make([]byte, 256<<20) // the parent's RSS well above a small child's
	for i := range ballast {
		ballast[i] = 1
	}
	cmd := exec.Command("sleep", "1")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep here")
	}
	var m memPeak
	// Sampled once the child runs sleep itself, not the fork of this
	// process before its exec.
	for k := 0; ; k++ {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); err == nil && strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if k == 1000 {
			t.Fatal("the child never ran sleep")
		}
		time.Sleep(time.Millisecond)
	}
	m.sample(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	usage := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("sleep: VmHWM %.1f MiB, the kernel's usage says %.1f MiB", m.hwmMiB(), float64(usage.Maxrss)/1024)
	if m.hwmMiB() <= 0 || m.hwmMiB() > 64 {
		t.Fatalf("sleep's own peak RSS read as %.1f MiB", m.hwmMiB())
	}
	if ballast[len(ballast)-1] != 1 {
		t.Fatal("ballast lost")
	}
}

// The control plane's ceiling is measured with the largest Deployment no
// budget covers: a budget would set the pace instead of the control plane.
func TestTheCeilingIsMeasuredOnTheLargestUnbudgetedDeployment(t *testing.T) {
	dep := func(ns, name string, n int32) *appsv1.Deployment {
		l := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: l},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l}}}}
	}
	pdb := func(ns, app string) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app},
			Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}
	}
	kube := fake.NewClientset(dep("default", "web", 120), dep("default", "batch", 45), dep("kube-system", "cluster-autoscaler", 1),
		dep("other", "batch", 60), pdb("default", "web"), pdb("other", "batch"))
	d, err := unbudgeted(context.Background(), kube)
	if err != nil {
		t.Fatal(err)
	}
	if d.Namespace+"/"+d.Name != "default/batch" {
		t.Fatalf("measured with %s/%s, want default/batch (web and other/batch have budgets)", d.Namespace, d.Name)
	}
	if _, err := unbudgeted(context.Background(), fake.NewClientset(dep("default", "web", 3), pdb("default", "web"))); err == nil || !strings.Contains(err.Error(), "--mix teams") {
		t.Fatalf("no unbudgeted Deployment: %v", err)
	}
}

func TestPercentileIsTheShareShorter(t *testing.T) {
	var ds []time.Duration
	for k := 10; k >= 1; k-- {
		ds = append(ds, time.Duration(k)*time.Second)
	}
	if p := percentile(ds, 10); p != 2*time.Second {
		t.Fatalf("10th percentile of 1s..10s: %s, want 2s", p)
	}
	if m := median(ds); m != 6*time.Second {
		t.Fatalf("median of 1s..10s: %s, want 6s", m)
	}
	if ds[0] != 10*time.Second {
		t.Fatal("percentile sorted its input")
	}
}

// B+R compares two times to the same precision: a node launched at .9 s and
// Ready 2 s later reads 2 s, not the 1.1 s a launch time to the millisecond
// against a Ready date cut to the second gave.
func TestBootToReadyComparesTimesToTheSecond(t *testing.T) {
	launched := time.Date(2026, 11, 27, 21, 0, 15, 900e6, time.UTC)
	ready := launched.Add(2 * time.Second).Truncate(time.Second) // as the condition is dated
	if got := bootToReady(launched, ready); got != 2*time.Second {
		t.Fatalf("B+R %v, want 2s", got)
	}
}
