package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
)

func seedTimeline() *engine.Timeline {
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	return &engine.Timeline{
		Cluster: "eksworkshop-eksctl", Nodegroup: "nodegroup", Strategy: "surge", Target: "ami-new", Phase: engine.PhaseCompleted,
		Started: start, Ended: start.Add(40 * time.Second), Predicted: engine.Duration(50 * time.Second), ToReplace: 1, MaxInstances: 2,
		Nodes: []engine.NodeTimes{
			{Instance: "i-new", Node: "ip-2.us-west-2.compute.internal", Zone: "us-west-2a", Launched: 1000, Ready: 9000},
			{Instance: "i-old", Node: "ip-1.us-west-2.compute.internal", Zone: "us-west-2a", Old: true, Tainted: 500, Draining: 10000, Drained: 20000, Terminated: 25000, Gone: 30000},
		},
		Instances: []engine.Point{{100, 1}, {900, 2}, {26000, 1}},
		Budgets:   []engine.BudgetSeries{{Name: "default/web", Healthy: []engine.Point{{0, 3}, {12000, 1}, {15000, 3}}, Min: []engine.Point{{0, 2}}}},
		Steps:     []engine.Step{{Name: "surge", Start: start, End: start.Add(time.Second)}},
		Events:    []engine.Event{{Seq: 1, Time: start.Add(10 * time.Second), Kind: engine.EventWait, Node: "ip-1", Message: "pod default/web-1 blocked <by> budget", Budgets: []string{"default/web"}}},
	}
}

// Each node's bar goes through its states in order, at its times; a
// budget below its minimum is measured, not hidden.
func TestTheReportDrawsEachNodeThroughItsStates(t *testing.T) {
	d := build(seedTimeline(), time.Now())
	if len(d.Nodes) != 2 || !d.Nodes[0].Old || d.Nodes[0].Label != "ip-1 us-west-2a" {
		t.Fatalf("rows: %+v; want the old node first, labelled by short name and zone", d.Nodes)
	}
	var got []string
	for _, s := range d.Nodes[0].Segments {
		got = append(got, s.State)
	}
	if strings.Join(got, ",") != "running,tainted,draining,drained,terminating" {
		t.Errorf("old node's states: %v", got)
	}
	last := d.Nodes[0].Segments[len(d.Nodes[0].Segments)-1]
	// 25s to 30s of a 40s run on an 860px plot.
	if want := float64(labelWidth) + 25.0/40*plotWidth; last.X != want || last.W != 5.0/40*plotWidth {
		t.Errorf("terminating drawn at %v width %v; want %v width %v", last.X, last.W, want, 5.0/40*plotWidth)
	}
	if got := d.Nodes[1].Segments; len(got) != 2 || got[0].State != "booting" || got[1].State != "ready" {
		t.Errorf("new node: %+v", got)
	}
	if d.Budgets[0].Below != 3*time.Second || d.Budgets[0].Lowest != 1 {
		t.Errorf("budget below its minimum %s, lowest %d; want 3s and 1", d.Budgets[0].Below, d.Budgets[0].Lowest)
	}
	if d.Peak != 2 || d.Replaced != 1 || d.Launched != 1 || d.After != 1 || d.PredictionError != "+25%" || d.Waits != 1 || d.PredictedFrom != "" {
		t.Errorf("summary: %+v", d)
	}
	// Resumed 20s in with 15s predicted for the rest: judged on the 20s
	// after the resume, not on the whole 40s.
	tl := seedTimeline()
	tl.Predicted, tl.PredictedFrom = engine.Duration(15*time.Second), 20000
	if d := build(tl, time.Now()); d.PredictionError != "-25%" || d.PredictedFrom != "from its resume at +20s" {
		t.Errorf("a resumed run's prediction: %s %q; want -25%% from its resume at +20s", d.PredictionError, d.PredictedFrom)
	}
}

// The page is one file that loads nothing, and says what the run told
// escaped.
func TestTheReportIsSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, seedTimeline(), time.Now()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, banned := range []string{"<script src", "<link", "http://cdn", "https://", "@import", "url("} {
		if strings.Contains(page, banned) {
			t.Errorf("the page loads something: %q", banned)
		}
	}
	for _, want := range []string{`data-node="ip-1.us-west-2.compute.internal"`, `data-budget="default/web"`, "below its minimum for 3s", "blocked &lt;by&gt; budget", "Completed"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// A prediction that assumed figures for want of the group's history says
// so beside its error.
func TestTheReportSaysWhatThePredictionAssumed(t *testing.T) {
	tl := seedTimeline()
	tl.PredictedAssuming = "an instance's shutdown of 30s, which the group's history does not show yet"
	var buf bytes.Buffer
	if err := Write(&buf, tl, time.Now()); err != nil {
		t.Fatal(err)
	}
	if want := "+25% against what happened; it assumed an instance&#39;s shutdown of 30s, which the group&#39;s history does not show yet)"; !strings.Contains(buf.String(), want) {
		t.Errorf("the page lacks %q", want)
	}
}

// A step a kill cut short and a later run did again is said so, not
// shown as if it took until the rerun.
func TestTheReportSaysAStepWasCutShort(t *testing.T) {
	tl := seedTimeline()
	start := tl.Started
	tl.Steps = append(tl.Steps,
		engine.Step{Name: "replace i-old", Action: "replace", Instance: "i-old", Start: start.Add(10 * time.Second), End: start.Add(15 * time.Second), Interrupted: true},
		engine.Step{Name: "replace i-old (attempt 2)", Action: "replace", Instance: "i-old", Start: start.Add(15 * time.Second), End: start.Add(20 * time.Second)})
	var buf bytes.Buffer
	if err := Write(&buf, tl, time.Now()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if !strings.Contains(page, "<td>replace i-old</td><td class=\"num\">10s</td><td class=\"num\">5s (cut short, run again)") ||
		strings.Count(page, "cut short") != 1 {
		t.Errorf("the page's steps:\n%s", page[strings.Index(page, "<h2>Steps"):])
	}
}
