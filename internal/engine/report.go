package engine

import (
	"time"

	"github.com/noderoll/noderoll/internal/drain"
)

// Kinds of Progress.
const (
	ProgressStep    = "step"    // one of the seed's nine steps begins (0: a step outside them)
	ProgressInfo    = "info"    // something within a step
	ProgressBlocked = "blocked" // a node's evictions are refused (no Blockers: no longer)
)

// Progress is one thing a run tells as it goes, typed: the CLI's live
// view, the controller's status, metrics and Events, and the run's
// timeline (what `watch` shows) are all made from these values, each front
// end phrasing them its own way.
type Progress struct {
	Time  time.Time
	Kind  string
	Step  int    // ProgressStep: its number in the seed's nine
	Title string // ProgressStep: its name
	// Message is the step's detail or the info's text, in the front end's
	// terms (Options.Terms) where it names an option.
	Message string
	// Node and Instance are what the progress is about; both empty when
	// it concerns the whole group.
	Node     string
	Instance string
	// Warning marks something gone wrong that the run works around or
	// retries.
	Warning bool
	// Blockers refuse the evictions from Node (ProgressBlocked).
	Blockers []drain.Blocker
}

// Text is the progress as one line, as the CLI prints it and the timeline
// keeps it: a warning starts with "! " and names its node.
func (p Progress) Text() string {
	if !p.Warning {
		return p.Message
	}
	if p.Node != "" {
		return "! " + p.Node + ": " + p.Message
	}
	return "! " + p.Message
}

// Reporter is told each Progress of a run as it happens. Implementations
// must be safe for concurrent use: the drains report, several at once,
// while the run goes on.
type Reporter interface {
	Report(Progress)
}

type nopReporter struct{}

func (nopReporter) Report(Progress) {}

// teller is how the engine tells a Reporter: typed, and dated by the
// engine's clock.
type teller struct {
	to  Reporter
	now func() time.Time
}

// Tell tells p, dated now unless it says when.
func (t teller) Tell(p Progress) {
	if p.Time.IsZero() {
		p.Time = t.now()
	}
	t.to.Report(p)
}

// Step tells a step of the group's.
func (t teller) Step(n int, title, detail string) {
	t.Tell(Progress{Kind: ProgressStep, Step: n, Title: title, Message: detail})
}

// NodeStep tells a step of one node's (or one instance's, without a node).
func (t teller) NodeStep(n int, title, node, instance, detail string) {
	t.Tell(Progress{Kind: ProgressStep, Step: n, Title: title, Node: node, Instance: instance, Message: detail})
}

// Info tells something within a step.
func (t teller) Info(msg string) { t.Tell(Progress{Kind: ProgressInfo, Message: msg}) }

// Warn tells something gone wrong that the run works around, on node ("":
// the group).
func (t teller) Warn(node, msg string) {
	t.Tell(Progress{Kind: ProgressInfo, Warning: true, Node: node, Message: msg})
}

// Blocked tells that evictions from node are refused, by what.
func (t teller) Blocked(node string, blockers []drain.Blocker) {
	t.Tell(Progress{Kind: ProgressBlocked, Node: node, Blockers: blockers})
}
