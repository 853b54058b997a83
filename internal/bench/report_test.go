package bench

import (
	"strings"
	"testing"
	"time"
)

// A ceiling measured on too few pods is a pod's start, not a rate: the
// table leaves it out rather than print a term above what was done.
func TestTheTableShowsOnlyCeilingsThatAreRates(t *testing.T) {
	row := func(n, pods int, took time.Duration) Row {
		c := &Ceiling{Pods: pods, Took: took, PerSec: float64(pods) / took.Seconds(), Workload: "default/batch", Term: time.Minute}
		return Row{Nodes: n, Strategy: "surge", Makespan: 2 * time.Minute, Bound: Bound{Makespan: 30 * time.Second}, Ratio: 4, Ceiling: c, Moved: 10 * n}
	}
	var b strings.Builder
	Markdown(&b, []Row{row(30, 45, 2*time.Second), row(300, 450, 12*time.Second)})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	if !strings.HasPrefix(lines[2], "| 30 | surge | 2m0s | - | 30s | 4.00 | - | - |") {
		t.Errorf("45 pods back in 2s is no rate, yet the row reads:\n%s", lines[2])
	}
	if !strings.HasPrefix(lines[3], "| 300 | surge | 2m0s | - | 30s | 4.00 | 1m0s | 2.00 |") {
		t.Errorf("the 300-node row should show the ceiling's term and the ratio to it:\n%s", lines[3])
	}
	b.Reset()
	Details(&b, []Row{row(30, 45, 2*time.Second)})
	if !strings.Contains(b.String(), "too few for a rate") {
		t.Errorf("details: %s", b.String())
	}
}

// The plan is told each rate the ceiling measured that is a rate, each
// group given its share, the budget's at what an upgrade has gone beside
// the probe's; the budget probe keeps in flight the row's drains' share of
// its largest budget.
func TestThePlanIsToldTheRatesThatAreRates(t *testing.T) {
	both := &Ceiling{Pods: 450, PerSec: 22.5, BudgetPods: 120, BudgetPerSec: 3, BudgetUpgradePerSec: 4.5}
	if got := strings.Join(rateArgs(both, 3), " "); got != "--assume-pods-per-second 7.5 --assume-budget-evictions-per-second 1.50" {
		t.Errorf("a third each of the ceiling's rate and of the budget's in an upgrade: %q", got)
	}
	few := &Ceiling{Pods: 45, PerSec: 20, BudgetPods: 30, BudgetPerSec: 10, BudgetUpgradePerSec: 15}
	if got := rateArgs(few, 1); len(got) != 0 {
		t.Errorf("45 pods and 30 evictions are no rates, yet the plan is told %q", got)
	}
	if got := rateArgs(nil, 1); len(got) != 0 {
		t.Errorf("no ceiling measured, yet the plan is told %q", got)
	}
	row := Row{Moved: 3000, Workloads: []Budgeted{{Name: "default/web", OnOld: 1200, Allowed: 120}, {Name: "default/worker", OnOld: 900, Allowed: 225}}}
	if got := probeConcurrency(row, 75); got != 30 {
		t.Errorf("75 drains, 40%% of the pods under the largest budget: %d in flight, want 30", got)
	}
	if got := probeConcurrency(row, 2); got != 4 {
		t.Errorf("2 drains: %d in flight, want the least, 4", got)
	}
	if got := probeConcurrency(Row{}, 75); got != 4 {
		t.Errorf("nothing moved: %d, want the least, 4", got)
	}
}

// A row's details say the predictions it made, and no 0s for the one the
// controller's row does not make (the plan with the pods' own start).
func TestDetailsSayOnlyThePredictionsMade(t *testing.T) {
	cli := Row{Nodes: 300, Strategy: "surge", Makespan: 5 * time.Minute, Predicted: 4 * time.Minute, PredictionError: -0.2, PredictedOwnStart: 12 * time.Minute}
	ctl := cli
	ctl.Strategy, ctl.PredictedOwnStart = "surge, controller, 3x100", 0
	var b strings.Builder
	Details(&b, []Row{cli, ctl})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("details:\n%s", b.String())
	}
	if !strings.Contains(lines[0], "predicted 4m0s (-20%) told the sandbox's pod start, 12m0s with the start its pods show;") {
		t.Errorf("the CLI's row: %s", lines[0])
	}
	if !strings.Contains(lines[1], "predicted 4m0s (-20%) told the sandbox's pod start;") || strings.Contains(lines[1], "with the start its pods show") {
		t.Errorf("the controller's row: %s", lines[1])
	}
}
