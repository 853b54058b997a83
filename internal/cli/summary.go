package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
)

// A summary lists each node, step and instance of a small group; past
// these counts it says them in a line each, so that a 300-node run ends
// on a screenful (--output json keeps every one).
const (
	listedIDs   = 6
	listedSteps = 6
	listedNodes = 12
)

// listed joins ids, the first few and a count of the rest past listedIDs.
func listed(ids []string) string {
	if len(ids) <= listedIDs {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more; --output json lists them", strings.Join(ids[:listedIDs], ", "), len(ids)-listedIDs)
}

// stepLines are the summary's lines of the run's steps: as they are, but
// where more than listedSteps act on one instance each (replace i-...,
// remove i-...), one line for them all at the place of the first: on how
// many nodes, their median and longest times, how many still running and
// how many were cut short and run again.
func stepLines(steps []engine.Step) []string {
	per := map[string][]engine.Step{}
	for _, st := range steps {
		if st.Instance != "" {
			per[st.Action] = append(per[st.Action], st)
		}
	}
	var out []string
	done := map[string]bool{}
	for _, st := range steps {
		v := st.Action
		if group := per[v]; v != "" && len(group) > listedSteps {
			if !done[v] {
				done[v] = true
				out = append(out, fmt.Sprintf("    %-28s %s", fmt.Sprintf("%s (%d nodes)", v, nodesIn(group)), spread(group)))
			}
			continue
		}
		d := "running"
		switch {
		case st.Interrupted:
			d = "cut short, run again"
		case !st.End.IsZero():
			d = st.End.Sub(st.Start).Round(100 * time.Millisecond).String()
		}
		out = append(out, fmt.Sprintf("    %-28s %s", st.Name, d))
	}
	return out
}

// nodesIn counts the instances steps act on: a step run again is one node.
func nodesIn(group []engine.Step) int {
	seen := map[string]bool{}
	for _, st := range group {
		seen[st.Instance] = true
	}
	return len(seen)
}

// spread says the times of like steps: median and longest of the finished
// ones, and how many are still running or were cut short and run again.
func spread(group []engine.Step) string {
	var took []time.Duration
	var longest time.Duration
	longestOf, running, again := "", 0, 0
	for _, st := range group {
		switch {
		case st.Interrupted:
			again++
			continue
		case st.End.IsZero():
			running++
			continue
		}
		d := st.End.Sub(st.Start)
		if d > longest || longestOf == "" {
			longest, longestOf = d, st.Instance
		}
		took = append(took, d)
	}
	var parts []string
	if len(took) > 0 {
		slices.Sort(took)
		r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
		parts = append(parts, fmt.Sprintf("median %s, longest %s (%s)", r(took[len(took)/2]), r(longest), longestOf))
	}
	if running > 0 {
		parts = append(parts, fmt.Sprintf("%d running", running))
	}
	if again > 0 {
		parts = append(parts, fmt.Sprintf("%d cut short and run again", again))
	}
	return strings.Join(parts, "; ")
}

// nodeLines are the closing picture's rows: each node of a small group;
// past listedNodes, a line for each kind of node (version, AMI, status)
// with how many there are.
func nodeLines(rows []string) []string {
	if len(rows) <= listedNodes {
		return rows
	}
	count := map[string]int{}
	var kinds []string
	for _, r := range rows {
		// Name and zone first, then what nodes share.
		f := strings.Fields(r)
		if len(f) < 3 {
			continue
		}
		k := strings.Join(f[2:], "  ")
		if count[k] == 0 {
			kinds = append(kinds, k)
		}
		count[k]++
	}
	slices.Sort(kinds)
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, fmt.Sprintf("    %4d x  %s", count[k], k))
	}
	return out
}
