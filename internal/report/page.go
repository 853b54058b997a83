package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"time"
)

// The page is written here rather than by html/template: a binary that
// can reach html/template's Execute keeps every exported method of every
// type it links (the template may call any of them by name), which more
// than doubled the CLI's binary (64 MB without it, 150 MB with it) and
// the memory each run maps from it. Every value from the timeline goes
// through html.EscapeString; the markup is constant.

// style is the page's stylesheet.
const style = `body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #212529; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #dee2e6; padding-bottom: 4px; }
.sub { color: #6c757d; margin-bottom: 16px; }
table { border-collapse: collapse; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #495057; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.phase-Completed { color: #2a9d8f; } .phase-Failed, .phase-Stopped { color: #d62828; }
.legend span { display: inline-block; margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #495057; }
svg .grid { stroke: #e9ecef; }
svg .value { fill: none; stroke: #1d3557; stroke-width: 2; }
svg .ref { fill: none; stroke: #d62828; stroke-width: 1.5; stroke-dasharray: 5 3; }
.events td { font-family: ui-monospace, monospace; font-size: 12px; }
.ok { color: #2a9d8f; } .bad { color: #d62828; }
`

// printer writes markup with escaped values and keeps the first error.
type printer struct {
	w   *bufio.Writer
	err error
}

// f writes format, which is markup, with each argument escaped: strings
// and durations as text, numbers and booleans as they print.
func (p *printer) f(format string, args ...any) {
	if p.err != nil {
		return
	}
	for k, a := range args {
		switch v := a.(type) {
		case string:
			args[k] = html.EscapeString(v)
		case time.Duration:
			args[k] = dur(v)
		case int, float64, bool:
		default:
			args[k] = html.EscapeString(fmt.Sprint(v))
		}
	}
	_, p.err = fmt.Fprintf(p.w, format, args...)
}

// raw writes constant markup as it is.
func (p *printer) raw(s string) {
	if p.err == nil {
		_, p.err = p.w.WriteString(s)
	}
}

func dur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

func writePage(w io.Writer, d Data) error {
	p := &printer{w: bufio.NewWriter(w)}
	p.f("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n", d.Title)
	p.raw(style)
	p.f("</style>\n</head>\n<body>\n")
	p.f("<h1>%s: upgrade to %s</h1>\n", d.Group, d.Target)
	p.f("<div class=\"sub\">strategy %s · started %s", d.Strategy, d.Started)
	if d.Ended != "" {
		p.f(" · ended %s", d.Ended)
	} else {
		p.f(" · still running")
	}
	p.f(" · written by noderoll report</div>\n\n")
	summary(p, d)
	nodes(p, d)
	budgets(p, d)
	p.f("\n<h2>Instances against the group's limit</h2>\n")
	p.f("<svg width=\"%d\" height=\"110\" xmlns=\"http://www.w3.org/2000/svg\">\n<g class=\"series\" data-instances=\"%s\">\n", d.Width, d.Instances.Name)
	chartBody(p, d, d.Instances)
	p.f("</g></svg>\n")
	steps(p, d)
	p.f("\n<h2>What the run told</h2>\n<table class=\"events\">\n")
	for _, e := range d.Events {
		p.f("<tr><td class=\"num\">+%s</td><td>%s</td><td>", e.At, e.Kind)
		if e.Title != "" {
			p.f("%s: ", e.Title)
		}
		p.f("%s</td></tr>\n", e.Message)
	}
	p.f("</table>\n</body>\n</html>\n")
	if p.err != nil {
		return p.err
	}
	return p.w.Flush()
}

func summary(p *printer, d Data) {
	p.f("<h2>Summary</h2>\n<table id=\"summary\">\n")
	p.f("<tr><th>Phase</th><td class=\"phase-%s\" id=\"phase\">%s", d.Phase, d.Phase)
	if d.Message != "" {
		p.f(": %s", d.Message)
	}
	p.f("</td></tr>\n<tr><th>Took</th><td id=\"took\">%s", d.Duration)
	if d.Running {
		p.f(" so far")
	}
	p.f("</td></tr>\n<tr><th>Predicted</th><td id=\"predicted\">")
	if d.Predicted != 0 {
		p.f("%s", d.Predicted)
		if d.PredictedFrom != "" {
			p.f(" %s", d.PredictedFrom)
		}
		p.f(" (%s against what happened", d.PredictionError)
		if d.PredictedAssuming != "" {
			p.f("; it assumed %s", d.PredictedAssuming)
		}
		p.f(")")
	} else {
		p.f("no prediction was made")
	}
	p.f("</td></tr>\n<tr><th>Old nodes replaced</th><td>%d of %d</td></tr>\n", d.Replaced, d.Before)
	p.f("<tr><th>New nodes launched</th><td>%d</td></tr>\n", d.Launched)
	p.f("<tr><th>Instances</th><td>peak %d, limit (max size) %d</td></tr>\n", d.Peak, d.Limit)
	p.f("<tr><th>Budget waits</th><td>%d (each node and budget told once)</td></tr>\n</table>\n", d.Waits)
}

func nodes(p *printer, d Data) {
	p.f("\n<h2>Nodes</h2>\n<div class=\"legend\">")
	for _, l := range d.Legend {
		p.f("<span><i style=\"background:%s\"></i>%s: %s</span>", l.Color, l.Name, l.Meaning)
	}
	p.f("</div>\n<svg id=\"nodes\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\">\n", d.Width, d.NodesHeight, d.Width, d.NodesHeight)
	for _, t := range d.Axis {
		p.f("<line class=\"grid\" x1=\"%v\" x2=\"%v\" y1=\"0\" y2=\"%d\"/><text x=\"%v\" y=\"%d\" dy=\"-4\" text-anchor=\"middle\">%s</text>", t.X, t.X, d.NodesHeight, t.X, d.NodesHeight, t.Label)
	}
	p.f("\n")
	for _, n := range d.Nodes {
		p.f("<g class=\"node\" data-node=\"%s\" data-old=\"%v\" transform=\"translate(0,%d)\">\n<text x=\"0\" y=\"11\">%s</text>\n", n.Name, n.Old, n.Y, n.Label)
		for _, s := range n.Segments {
			p.f("<rect class=\"seg\" data-state=\"%s\" x=\"%v\" y=\"0\" width=\"%v\" height=\"14\" fill=\"%s\"><title>%s</title></rect>", s.State, s.X, s.W, s.Color, s.Title)
		}
		p.f("\n</g>\n")
	}
	p.f("</svg>\n")
}

func budgets(p *printer, d Data) {
	p.f("\n<h2>Disruption budgets over the group's pods</h2>\n")
	if len(d.Budgets) == 0 {
		p.f("<p>No PodDisruptionBudget covered the group's pods.</p>\n")
	}
	for _, c := range d.Budgets {
		p.f("<div class=\"budget-chart\">\n<div><b>%s</b>: healthy pods (solid) against the minimum it keeps (dashed); ", c.Name)
		if c.Below > 0 {
			p.f("<span class=\"bad\">below its minimum for %s</span>", c.Below)
		} else {
			p.f("<span class=\"ok\">never below its minimum</span>")
		}
		p.f("; lowest %d</div>\n", c.Lowest)
		p.f("<svg width=\"%d\" height=\"110\" xmlns=\"http://www.w3.org/2000/svg\">\n<g class=\"series\" data-budget=\"%s\">\n", d.Width, c.Name)
		chartBody(p, d, c)
		p.f("</g></svg></div>\n")
	}
}

// chartBody draws a chart's grid, its scale and its two lines.
func chartBody(p *printer, d Data, c Chart) {
	for _, t := range c.Axis {
		p.f("<line class=\"grid\" x1=\"%v\" x2=\"%v\" y1=\"10\" y2=\"80\"/><text x=\"%v\" y=\"104\" text-anchor=\"middle\">%s</text>", t.X, t.X, t.X, t.Label)
	}
	p.f("\n<text x=\"%d\" dx=\"-6\" y=\"14\" text-anchor=\"end\">%s</text><text x=\"%d\" dx=\"-6\" y=\"84\" text-anchor=\"end\">0</text>\n", d.LabelWidth, c.YTop, d.LabelWidth)
	p.f("<path class=\"value\" d=\"%s\"/><path class=\"ref\" d=\"%s\"/>\n", c.Value, c.Ref)
}

func steps(p *printer, d Data) {
	p.f("\n<h2>Steps</h2>\n<table id=\"step-table\">\n<tr><th>Step</th><th class=\"num\">from</th><th class=\"num\">took</th><th></th></tr>\n")
	for _, s := range d.Steps {
		p.f("<tr class=\"step\"><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s", s.Name, s.Start, s.Took)
		switch {
		case s.Unfinished:
			p.f(" (unfinished)")
		case s.Interrupted:
			p.f(" (cut short, run again)")
		}
		p.f("</td>\n<td><svg width=\"%d\" height=\"12\"><rect x=\"%v\" y=\"1\" width=\"%v\" height=\"10\" fill=\"#457b9d\"/></svg></td></tr>\n", d.Width, s.X, s.W)
	}
	p.f("</table>\n")
}
