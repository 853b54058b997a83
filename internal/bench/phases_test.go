package bench

import (
	"testing"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/predict"
)

// A run's milestones are read off its timeline as times since the
// process started: the first new instance's launch and Ready, the old
// nodes' first and last drain, the last drain done and termination.
func TestMeasuredPhasesComeFromTheTimeline(t *testing.T) {
	began := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	tl := &engine.Timeline{Started: began.Add(1500 * time.Millisecond), Nodes: []engine.NodeTimes{
		{Instance: "i-old-1", Old: true, Draining: 3000, Drained: 5000, Terminated: 9000, Gone: 11000},
		{Instance: "i-old-2", Old: true, Draining: 3200, Drained: 7000, Terminated: 11000},
		{Instance: "i-new-1", Launched: 500, Ready: 2500},
		{Instance: "i-new-2", Launched: 400, Ready: 2600},
	}}
	got := measuredPhases(tl, began, 14*time.Second)
	want := predict.Milestones{Launched: 1900 * time.Millisecond, Ready: 4 * time.Second, FirstDrain: 4500 * time.Millisecond, LastDrain: 4700 * time.Millisecond,
		Drained: 8500 * time.Millisecond, Terminated: 12500 * time.Millisecond, End: 14 * time.Second}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if line := phasesLine(want, got); line != "launched 1.9/1.9, first Ready 4.0/4.0, first drain 4.5/4.5, last drain 4.7/4.7, drained 8.5/8.5, terminated 12.5/12.5, end 14.0/14.0" {
		t.Errorf("line %q", line)
	}
}

// With --repeat, a row is its run of median makespan, and its prediction
// error sets the median prediction against the median makespan.
func TestARepeatedRowIsItsMedianRun(t *testing.T) {
	s := time.Second
	runs := []Row{
		{Makespan: 14 * s, Predicted: 15 * s, APIRequests: 1},
		{Makespan: 12 * s, Predicted: 14 * s, APIRequests: 2},
		{Makespan: 13 * s, Predicted: 16 * s, APIRequests: 3},
	}
	r := medianRow(runs)
	if r.Makespan != 13*s || r.APIRequests != 3 || r.Predicted != 15*s {
		t.Errorf("row: makespan %s, predicted %s, from run %d; want 13s, the median 15s, run 3", r.Makespan, r.Predicted, r.APIRequests)
	}
	if want := 2.0 / 13; r.PredictionError < want-1e-9 || r.PredictionError > want+1e-9 {
		t.Errorf("error %.4f; want %.4f", r.PredictionError, want)
	}
	if len(r.Makespans) != 3 || r.Makespans[0] != 14*s || r.Predictions[1] != 14*s {
		t.Errorf("every run's: %v, %v", r.Makespans, r.Predictions)
	}
	if spread(r.Makespans) != "12s-14s" {
		t.Errorf("spread %q", spread(r.Makespans))
	}
	if one := medianRow(runs[:1]); one.Makespans != nil || one.Makespan != 14*s {
		t.Errorf("one run: %+v", one)
	}
}
