package bench

import (
	"os"
	"testing"
	"time"
)

// The worked example of docs/performance.md: 40 nodes, surge 4, B+R 30s,
// one workload of 20 pods behind a budget allowing 1.
func TestLowerBoundOfTheWorkedExample(t *testing.T) {
	d := Delays{BootReady: 30 * time.Second, PodStart: 30 * time.Second, PodStop: 10 * time.Second, Wait: 5 * time.Second}
	b := LowerBound(40, 4, d, []Budgeted{{Name: "db", OnOld: 20, Allowed: 1}, {Name: "web", OnOld: 40, Allowed: 10}})
	// waves: 10 * (30+10+5) = 7m30s; budgets: 30 + 20*30 + 5 = 10m35s.
	if b.Waves != 450*time.Second || b.Budgets != 635*time.Second || b.Makespan != b.Budgets || b.Bottleneck != "db" {
		t.Fatalf("%+v", b)
	}
	// A StatefulSet's replacement waits for the old pod: c = T+S.
	b = LowerBound(40, 40, d, []Budgeted{{Name: "cache", OnOld: 4, Allowed: 2, Ordered: true}})
	if b.Budgets != 30*time.Second+2*40*time.Second+5*time.Second || b.Waves != 45*time.Second {
		t.Fatalf("%+v", b)
	}
	// Nothing budgeted: the waves, or the first capacity, bind.
	if b := LowerBound(3, 3, d, nil); b.Makespan != 65*time.Second || b.First != 65*time.Second {
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
}
