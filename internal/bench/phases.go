package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/predict"
)

// measuredPhases reads a finished run's milestones off the timeline it
// kept, as times since began (the upgrade process's start, where the
// makespan starts), to set beside the plan's predicted ones.
func measuredPhases(tl *engine.Timeline, began time.Time, makespan time.Duration) predict.Milestones {
	ms := predict.Milestones{End: makespan}
	if tl == nil {
		return ms
	}
	offset := tl.Started.Sub(began)
	at := func(m engine.Millis) time.Duration { return offset + time.Duration(m)*time.Millisecond }
	first := func(cur *time.Duration, m engine.Millis) {
		if m > 0 && (*cur == 0 || at(m) < *cur) {
			*cur = at(m)
		}
	}
	last := func(cur *time.Duration, m engine.Millis) {
		if m > 0 && at(m) > *cur {
			*cur = at(m)
		}
	}
	for _, n := range tl.Nodes {
		if !n.Old {
			first(&ms.Launched, n.Launched)
			first(&ms.Ready, n.Ready)
			continue
		}
		first(&ms.FirstDrain, n.Draining)
		last(&ms.LastDrain, n.Draining)
		last(&ms.Drained, n.Drained)
		last(&ms.Terminated, n.Terminated)
	}
	return ms
}

// phasesLine sets the predicted milestones beside the measured ones, each
// as predicted/measured seconds since the start.
func phasesLine(p, m predict.Milestones) string {
	var b strings.Builder
	for _, f := range []struct {
		name string
		p, m time.Duration
	}{
		{"launched", p.Launched, m.Launched}, {"first Ready", p.Ready, m.Ready}, {"first drain", p.FirstDrain, m.FirstDrain},
		{"last drain", p.LastDrain, m.LastDrain}, {"drained", p.Drained, m.Drained}, {"terminated", p.Terminated, m.Terminated}, {"end", p.End, m.End},
	} {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.1f/%.1f", f.name, f.p.Seconds(), f.m.Seconds())
	}
	return b.String()
}
