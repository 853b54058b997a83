package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

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
	sum := summary{Cluster: "c", Nodegroup: "ng", Succeeded: true, DurationSec: 45}
	if out := say(sum); !strings.Contains(out, "Upgraded c/ng to ") || !strings.Contains(out, " in 45s.\n") {
		t.Errorf("a whole run:\n%s", out)
	}
	sum.SinceStartSec = 128.4
	if out := say(sum); !strings.Contains(out, " in 45s, resuming an upgrade begun 2m8s ago.\n") {
		t.Errorf("a resuming run:\n%s", out)
	}
}
