package bench

import (
	"os"
	"testing"
	"time"
)

func TestCPUOfThisProcessGrowsWithWork(t *testing.T) {
	before := cpuOf(os.Getpid())
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after := cpuOf(os.Getpid())
	if after-before < 100*time.Millisecond {
		t.Fatalf("300ms of spinning counted as %s of CPU (%d loops)", after-before, x)
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
