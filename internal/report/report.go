// Package report draws an upgrade's timeline as one self-contained HTML
// file: a bar per node through its states, each disruption budget's
// healthy pods against its minimum, the group's instances against its
// limit, the steps, the prediction against what happened, and what the run
// told. Charts are inline SVG drawn here; the page loads nothing, so it
// opens offline, in a postmortem or a change review.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
)

// Geometry of the charts, in CSS pixels.
const (
	labelWidth = 190
	plotWidth  = 860
	rowHeight  = 14
	rowGap     = 4
	chartH     = 90
)

// States a node's bar goes through, in the order of a replacement.
var states = []struct{ Name, Color, Meaning string }{
	{"running", "#9aa5b1", "an old node before the run touched it"},
	{"booting", "#8ecae6", "launched, not yet Ready"},
	{"ready", "#2a9d8f", "Ready"},
	{"tainted", "#e9c46a", "NoSchedule taint: no new pods"},
	{"cordoned", "#f4a261", "cordoned before its drain"},
	{"draining", "#e76f51", "its pods being evicted"},
	{"drained", "#b5179e", "drained and cordoned, waiting to be terminated"},
	{"terminating", "#495057", "terminated, its node still registered"},
}

// Data is what the page shows.
type Data struct {
	Title, Group, Strategy, Target, Phase, Message string
	Started, Ended                                 string
	Running                                        bool
	Duration                                       time.Duration
	Predicted                                      time.Duration
	PredictionError                                string
	PredictedFrom                                  string // "from its resume at +1m30s" for a resumed run's
	PredictedAssuming                              string // what the prediction assumed, for want of the group's history
	Replaced, Launched, Peak, Limit, Before, After int
	Waits                                          int

	Width, PlotWidth, LabelWidth int
	Axis                         []Tick
	Legend                       []LegendItem
	Nodes                        []NodeBar
	NodesHeight                  int
	Budgets                      []Chart
	Instances                    Chart
	Steps                        []StepBar
	Events                       []EventRow
}

// Tick is a time label on an axis.
type Tick struct {
	X     float64
	Label string
}

// LegendItem names a state's color.
type LegendItem struct{ Name, Color, Meaning string }

// NodeBar is one node's row.
type NodeBar struct {
	Name, Label, Instance, Zone string
	Old                         bool
	Y                           int
	Segments                    []Segment
}

// Segment is a stretch of one state.
type Segment struct {
	State, Color, Title string
	X, W                float64
}

// Chart is a value over time against a line it must keep (a budget's
// minimum) or stay under (the instances' limit).
type Chart struct {
	Name       string
	Value, Ref string // SVG paths
	RefLabel   string
	Max        int
	Below      time.Duration // time the value spent below Ref (budgets)
	Highest    int
	Lowest     int
	Axis       []Tick
	YTop, YMid string
}

// StepBar is one step of the run.
type StepBar struct {
	Name       string
	Start      time.Duration
	Took       time.Duration
	X, W       float64
	Unfinished bool
	// Interrupted: cut short and run again; Took runs to the next attempt.
	Interrupted bool
}

// EventRow is one thing the run told.
type EventRow struct {
	At                   time.Duration
	Kind, Title, Message string
}

// Write renders the timeline's page.
func Write(w io.Writer, tl *engine.Timeline, now time.Time) error {
	return writePage(w, build(tl, now))
}

func build(tl *engine.Timeline, now time.Time) Data {
	end := tl.Ended
	if end.IsZero() {
		end = now
		if !tl.Updated.IsZero() && tl.Updated.After(end) {
			end = tl.Updated
		}
	}
	total := max(end.Sub(tl.Started), time.Second)
	totalMs := float64(total.Milliseconds())
	x := func(ms int64) float64 {
		return float64(labelWidth) + min(max(float64(ms), 0), totalMs)/totalMs*plotWidth
	}
	d := summarize(tl, total)
	d.Axis = axis(total, x)
	for _, s := range states {
		d.Legend = append(d.Legend, LegendItem(s))
	}
	d.bars(tl.Nodes, total, x)
	for _, b := range tl.Budgets {
		c := series(b.Name, b.Healthy, b.Min, total, x)
		c.RefLabel = "minimum healthy"
		d.Budgets = append(d.Budgets, c)
	}
	limit := []engine.Point{{0, int64(tl.MaxInstances)}}
	d.Instances = series("instances", tl.Instances, limit, total, x)
	d.Instances.RefLabel = "max size"
	d.Peak = d.Instances.Highest
	d.steps(tl, total, x)
	for _, e := range tl.Events {
		if e.Kind == engine.EventWait {
			d.Waits++
		}
		d.Events = append(d.Events, EventRow{At: e.Time.Sub(tl.Started).Round(100 * time.Millisecond), Kind: e.Kind, Title: e.Title, Message: e.Message})
	}
	return d
}

// summarize is the page's head: the run, its phase and its prediction
// against what happened.
func summarize(tl *engine.Timeline, total time.Duration) Data {
	d := Data{
		Title: fmt.Sprintf("noderoll: %s/%s", tl.Cluster, tl.Nodegroup), Group: tl.Cluster + "/" + tl.Nodegroup,
		Strategy: tl.Strategy, Target: tl.Target, Phase: tl.Phase, Message: tl.Message,
		Started: tl.Started.UTC().Format(time.RFC3339), Running: tl.Ended.IsZero(), Duration: total,
		Predicted: time.Duration(tl.Predicted), PredictedAssuming: tl.PredictedAssuming, Limit: tl.MaxInstances,
		Width: labelWidth + plotWidth + 20, PlotWidth: plotWidth, LabelWidth: labelWidth,
	}
	if !tl.Ended.IsZero() {
		d.Ended = tl.Ended.UTC().Format(time.RFC3339)
	}
	if d.Predicted > 0 {
		// A resumed run's prediction is of what was left at its resume.
		from := time.Duration(tl.PredictedFrom) * time.Millisecond
		measured := max(total-from, time.Second)
		d.PredictionError = fmt.Sprintf("%+.0f%%", (d.Predicted.Seconds()-measured.Seconds())/measured.Seconds()*100)
		if from > 0 {
			d.PredictedFrom = fmt.Sprintf("from its resume at +%s", from.Round(time.Second))
		}
	}
	return d
}

// bars draws a row per node, old nodes in the order they were taken, then
// new ones as they came, and counts them.
func (d *Data) bars(all []engine.NodeTimes, total time.Duration, x func(int64) float64) {
	nodes := append([]engine.NodeTimes(nil), all...)
	key := func(n engine.NodeTimes) int64 {
		if !n.Old {
			return 1<<40 + int64(n.Launched)
		}
		for _, t := range []engine.Millis{n.Tainted, n.Cordoned, n.Draining, n.Drained, n.Terminated} {
			if t != 0 {
				return int64(t)
			}
		}
		return 1 << 39
	}
	sort.SliceStable(nodes, func(a, b int) bool { return key(nodes[a]) < key(nodes[b]) })
	colors := map[string]string{}
	for _, s := range states {
		colors[s.Name] = s.Color
	}
	for k, n := range nodes {
		bar := NodeBar{Name: n.Node, Instance: n.Instance, Zone: n.Zone, Old: n.Old, Y: k * (rowHeight + rowGap)}
		if bar.Name == "" {
			bar.Name = n.Instance
		}
		bar.Label = short(bar.Name) + " " + n.Zone
		if n.Old {
			d.Before++
			if n.Terminated != 0 {
				d.Replaced++
			}
		} else {
			d.Launched++
		}
		if n.Gone == 0 {
			d.After++
		}
		for _, s := range segments(n, total.Milliseconds()) {
			if s.to <= s.from {
				continue
			}
			bar.Segments = append(bar.Segments, Segment{State: s.state, Color: colors[s.state], X: x(s.from), W: max(x(s.to)-x(s.from), 0.5),
				Title: fmt.Sprintf("%s %s: %s from %s to %s", short(bar.Name), n.Instance, s.state, ms(s.from), ms(s.to))})
		}
		d.Nodes = append(d.Nodes, bar)
	}
	d.NodesHeight = len(nodes)*(rowHeight+rowGap) + 30
}

// steps draws each step of the run from its start; an unfinished one
// runs to the page's end.
func (d *Data) steps(tl *engine.Timeline, total time.Duration, x func(int64) float64) {
	for _, st := range tl.Steps {
		from := st.Start.Sub(tl.Started)
		to := st.End.Sub(tl.Started)
		sb := StepBar{Name: st.Name, Start: from, Took: to - from, Interrupted: st.Interrupted}
		if st.End.IsZero() {
			sb.Unfinished, sb.Took = true, total-from
		}
		sb.X, sb.W = x(from.Milliseconds()), max(x((from+sb.Took).Milliseconds())-x(from.Milliseconds()), 1)
		d.Steps = append(d.Steps, sb)
	}
}

type span struct {
	state    string
	from, to int64
}

// segments cuts a node's life in the run into the states it went through.
func segments(n engine.NodeTimes, end int64) []span {
	type mark struct {
		at    int64
		state string
	}
	first := mark{0, "running"}
	if !n.Old {
		first = mark{int64(n.Launched), "booting"}
	}
	marks := []mark{first}
	for _, m := range []mark{{int64(n.Ready), "ready"}, {int64(n.Tainted), "tainted"}, {int64(n.Cordoned), "cordoned"},
		{int64(n.Draining), "draining"}, {int64(n.Drained), "drained"}, {int64(n.Terminated), "terminating"}} {
		if m.at != 0 {
			marks = append(marks, m)
		}
	}
	sort.SliceStable(marks, func(a, b int) bool { return marks[a].at < marks[b].at })
	stop := end
	if n.Gone != 0 {
		stop = int64(n.Gone)
	}
	var out []span
	for k, m := range marks {
		to := stop
		if k+1 < len(marks) {
			to = min(marks[k+1].at, stop)
		}
		// A node cordoned as its drain starts is shown draining.
		out = append(out, span{m.state, m.at, to})
	}
	return out
}

// series draws a value and its reference line over the run.
func series(name string, value, ref []engine.Point, total time.Duration, x func(int64) float64) Chart {
	c := Chart{Name: name, Lowest: -1}
	totalMs := total.Milliseconds()
	for _, p := range append(append([]engine.Point(nil), value...), ref...) {
		c.Max = max(c.Max, int(p[1]))
	}
	c.Max++
	y := func(v int64) float64 { return 10 + float64(chartH-20)*(1-float64(v)/float64(c.Max)) }
	path := func(ps []engine.Point) string {
		if len(ps) == 0 {
			return ""
		}
		var b strings.Builder
		fmt.Fprintf(&b, "M%.1f %.1f", x(ps[0][0]), y(ps[0][1]))
		for k := 1; k < len(ps); k++ {
			fmt.Fprintf(&b, " H%.1f V%.1f", x(ps[k][0]), y(ps[k][1]))
		}
		fmt.Fprintf(&b, " H%.1f", x(totalMs))
		return b.String()
	}
	c.Value, c.Ref = path(value), path(ref)
	for _, p := range value {
		c.Highest = max(c.Highest, int(p[1]))
		if c.Lowest < 0 || int(p[1]) < c.Lowest {
			c.Lowest = int(p[1])
		}
	}
	c.Lowest = max(c.Lowest, 0)
	// Time below the reference: both are step functions.
	at := func(ps []engine.Point, t int64) int64 {
		v := int64(-1)
		for _, p := range ps {
			if p[0] > t {
				break
			}
			v = p[1]
		}
		return v
	}
	var cuts []int64
	for _, p := range append(append([]engine.Point(nil), value...), ref...) {
		cuts = append(cuts, p[0])
	}
	cuts = append(cuts, totalMs)
	sort.Slice(cuts, func(a, b int) bool { return cuts[a] < cuts[b] })
	for k := 0; k+1 < len(cuts); k++ {
		v, r := at(value, cuts[k]), at(ref, cuts[k])
		if v >= 0 && r >= 0 && v < r {
			c.Below += time.Duration(cuts[k+1]-cuts[k]) * time.Millisecond
		}
	}
	c.Axis = axis(total, x)
	c.YTop, c.YMid = fmt.Sprint(c.Max), fmt.Sprint(c.Max/2)
	return c
}

// axis puts about eight round time labels under a chart.
func axis(total time.Duration, x func(int64) float64) []Tick {
	step := time.Second
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour} {
		step = s
		if total/s <= 8 {
			break
		}
	}
	var out []Tick
	for t := time.Duration(0); t <= total; t += step {
		out = append(out, Tick{X: x(t.Milliseconds()), Label: t.String()})
	}
	return out
}

func ms(v int64) string {
	return (time.Duration(v) * time.Millisecond).Round(100 * time.Millisecond).String()
}

func short(name string) string { return strings.Split(name, ".")[0] }
