package bench

import (
	"math"
	"testing"
)

// probeToUpgrade is read off measured rows, not derived: the rows are
// kept here, and the factor must keep the budget's term within 15% of
// what each row's largest budget did (docs/performance.md, "The plan told
// what an upgrade's budget goes at"). A new factor needs new rows.
func TestTheProbeFactorFitsTheRowsItWasReadOff(t *testing.T) {
	rows := []struct {
		row        string
		probe, run float64 // evictions a second: the probe's (30 in flight, 16 saturating), the run's web budget's
	}{
		{"CLI, 300 nodes, 4518f51", 3.0, 4.4},
		{"CLI, 300 nodes, 9d632ed", 3.5, 5.3},
		{"controller, 3 x 100, 9d632ed", 3.0, 4.4},
		{"CLI, 300 nodes, eca2b5f", 3.7, 4.6},
		{"controller, 3 x 100, eca2b5f", 3.5, 4.1},
	}
	worst := 0.0
	for _, r := range rows {
		// The term is pods / (probe × factor); what the run took, pods /
		// run: the term errs by run / (probe × factor) - 1.
		errs := r.run/(r.probe*probeToUpgrade) - 1
		worst = max(worst, math.Abs(errs))
		if math.Abs(errs) > 0.15 {
			t.Errorf("%s: the budget's term errs by %+.0f%% with the factor at %.2f", r.row, 100*errs, probeToUpgrade)
		}
	}
	t.Logf("factor %.2f: the budget's term errs by at most %.0f%% on the %d rows", probeToUpgrade, 100*worst, len(rows))
}
