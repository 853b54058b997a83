package bench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// rusageCPU is this process's CPU time as the kernel's resource usage
// reports it: a second, independent reading to check /proc's against.
func rusageCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf agrees with getrusage on this process's CPU time, whatever else the
// machine is doing: the work is measured in CPU used, not in wall time.
func TestCPUOfThisProcessAgreesWithTheKernelsUsage(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	start := rusageCPU(t)
	for x := 0; rusageCPU(t)-start < 300*time.Millisecond; x++ {
	}
	before := rusageCPU(t)
	got := cpuOf(os.Getpid())
	after := rusageCPU(t)
	// /proc counts in ticks of 10ms.
	if got < before-20*time.Millisecond || got > after+20*time.Millisecond {
		t.Fatalf("/proc says %s of CPU; getrusage said %s just before and %s just after", got, before, after)
	}
	if cpuOf(-1) != 0 {
		t.Fatal("a process that cannot exist has CPU time")
	}
}

func TestCPULineListsTheBusiestFirst(t *testing.T) {
	got := cpuLine(map[string]float64{"etcd": 12, "kube-apiserver": 80.4, "noderoll": 30})
	if want := "kube-apiserver 80s, noderoll 30s, etcd 12s"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
