package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/progress"
)

// Drains report refused evictions at once; the count misses none (and,
// under -race, nothing races).
func TestBlockCounterCountsConcurrentDrains(t *testing.T) {
	view := progress.NewView(io.Discard, false, clock.RealClock{})
	defer view.Close()
	b := &blockCounter{View: view}
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Report(engine.Progress{Kind: engine.ProgressBlocked, Node: "node-" + string(rune('a'+k)), Blockers: []drain.Blocker{{Namespace: "default", Pod: "web"}, {Namespace: "default", Pod: "api"}}})
			}
		}()
	}
	wg.Wait()
	if got := b.n.Load(); got != 8*100*2 {
		t.Fatalf("counted %d refused evictions, want %d", got, 8*100*2)
	}
}

// A stopped upgrade's advice follows its cause, through the errors the
// engine wraps it in.
func TestAdviceFollowsTheCause(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("draining: %w", &drain.ComebackError{Node: "n1", Pod: "default/x-3", Owner: "ReplicaSet default/x", Deleted: 3}), "binds to the node again"},
		{fmt.Errorf("replacing: %w", &drain.BlockedError{Node: "n1"}), "evictions that were refused"},
		{errors.New("something else"), "rerun the same command to resume"},
	} {
		var b strings.Builder
		advise(&b, c.err)
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%v: advised %q, want it to say %q", c.err, b.String(), c.want)
		}
	}
}

// A run that resumed an upgrade says how long it took itself and how long
// ago the upgrade began; a run that did it all says its time alone.
func TestTheSummarySaysWhenARunResumedAnUpgrade(t *testing.T) {
	say := func(sum summary) string {
		var out strings.Builder
		printSummary(Streams{Out: &out, Err: io.Discard}, sum, progress.NewView(io.Discard, false, clock.RealClock{}))
		return out.String()
	}
	sum := summary{Cluster: "c", Nodegroup: "ng", Succeeded: true, DurationSec: 45, NodesBefore: 3, PeakNodes: 6, NodesAfter: 3}
	if out := say(sum); !strings.Contains(out, "Upgraded c/ng to ") || !strings.Contains(out, " in 45s.\n") ||
		!strings.Contains(out, "Node count:       3 before, 6 at peak, 3 after\n") {
		t.Errorf("a whole run:\n%s", out)
	}
	// The resumed run's first count is of the group mid-upgrade, not
	// before it.
	sum.SinceStartSec, sum.NodesBefore = 128.4, 5
	if out := say(sum); !strings.Contains(out, " in 45s, resuming an upgrade begun 2m8s ago.\n") ||
		!strings.Contains(out, "Node count:       5 when this run resumed, 6 at peak, 3 after\n") {
		t.Errorf("a resuming run:\n%s", out)
	}
}

// A rollback and an abort say what they did, not "Upgraded": a rollback
// names the AMI it went back from, an abort the one it went back to; a
// run that replaced nothing says 0 without an empty list.
func TestTheSummarySaysAWayBackAsSuch(t *testing.T) {
	say := func(sum summary) string {
		var out strings.Builder
		printSummary(Streams{Out: &out, Err: io.Discard}, sum, progress.NewView(io.Discard, false, clock.RealClock{}))
		return out.String()
	}
	for _, c := range []struct {
		action    string
		succeeded bool
		want      string
	}{
		{"rollback", true, "Rolled c/ng back from ami-new (Kubernetes 1.37) to its old nodes in 21s.\n"},
		{"rollback", false, "The rollback of c/ng from ami-new (Kubernetes 1.37) stopped after 21s.\n"},
		{"abort", true, "Aborted the upgrade of c/ng: back on ami-new (Kubernetes 1.37) in 21s.\n"},
		{"abort", false, "The abort of the upgrade of c/ng (back to ami-new (Kubernetes 1.37)) stopped after 21s.\n"},
		{"upgrade", false, "The upgrade of c/ng to ami-new (Kubernetes 1.37) stopped after 21s.\n"},
	} {
		sum := summary{Cluster: "c", Nodegroup: "ng", Action: c.action, Succeeded: c.succeeded, DurationSec: 21,
			Target: engine.Target{ImageID: "ami-new", KubeMinor: "1.37"}, Removed: []string{"i-1"}}
		out := say(sum)
		if !strings.Contains(out, c.want) || strings.Contains(out, "Upgraded") {
			t.Errorf("%s (succeeded %v): want %q, got:\n%s", c.action, c.succeeded, c.want, out)
		}
		if !strings.Contains(out, "  Nodes replaced:   0\n") {
			t.Errorf("%s: no node replaced should read 0 alone:\n%s", c.action, out)
		}
	}
}

// A large group's summary fits a screen: the instances, the per-node
// steps and the nodes now are said in a line each past a few; a small
// group's are listed one by one.
func TestALargeGroupsSummaryIsSaidInLinesNotHundreds(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	steps := []engine.Step{{Name: "launch template", Start: t0, End: t0}, {Name: "surge", Start: t0, End: t0.Add(12 * time.Second)}}
	var ids []string
	for k := range 30 {
		id := fmt.Sprintf("i-%02d", k)
		ids = append(ids, id)
		st := engine.Step{Name: "replace " + id, Action: "replace", Instance: id, Start: t0, End: t0.Add(time.Duration(60+k) * time.Second)}
		if k == 29 {
			st.End = time.Time{} // still running
		}
		steps = append(steps, st)
	}
	// i-03's first attempt was cut short by a kill; the rerun drained it
	// again.
	steps[5].End, steps[5].Interrupted = t0.Add(time.Hour), true
	steps = append(steps, engine.Step{Name: "replace i-03 (attempt 2)", Action: "replace", Instance: "i-03", Start: t0, End: t0.Add(2 * time.Second)})
	steps = append(steps, engine.Step{Name: "remove i-99", Action: "remove", Instance: "i-99", Start: t0, End: t0.Add(5 * time.Second)})
	got := stepLines(steps)
	want := []string{
		"    launch template              0s",
		"    surge                        12s",
		"    replace (30 nodes)           median 1m14s, longest 1m28s (i-28); 1 running; 1 cut short and run again",
		"    remove i-99                  5s",
	}
	if !slices.Equal(got, want) {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := stepLines(steps[:6]); len(got) != 6 || got[2] != "    replace i-00                 1m0s" || got[5] != "    replace i-03                 cut short, run again" {
		t.Errorf("a small group's steps, one a line: %q", got)
	}
	if got := listed(ids); got != "i-00, i-01, i-02, i-03, i-04, i-05 and 24 more; --output json lists them" {
		t.Errorf("30 instances: %q", got)
	}
	if got := listed(ids[:3]); got != "i-00, i-01, i-02" {
		t.Errorf("3 instances: %q", got)
	}
	var rows []string
	for k := range 20 {
		status := "Ready"
		if k == 7 {
			status = "Ready,SchedulingDisabled"
		}
		rows = append(rows, fmt.Sprintf("    ip-192-168-0-%d   us-west-2%c  v1.37.2-eks-64ee787  ami-new  %s", k, 'a'+k%3, status))
	}
	want = []string{"      19 x  v1.37.2-eks-64ee787  ami-new  Ready", "       1 x  v1.37.2-eks-64ee787  ami-new  Ready,SchedulingDisabled"}
	if got := nodeLines(rows); !slices.Equal(got, want) {
		t.Errorf("20 nodes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := nodeLines(rows[:12]); !slices.Equal(got, rows[:12]) {
		t.Errorf("12 nodes are each listed: %q", got)
	}
}
