// Package engine upgrades a node group: a resumable state machine whose
// every step is idempotent and whose progress is recorded in the cluster, so
// that a restarted process picks up where the last one stopped. The CLI
// drives it today; a controller can drive the same engine.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/preflight"
	"github.com/noderoll/noderoll/internal/terms"
)

// Options tune an upgrade. Zero values take the defaults of DefaultOptions.
type Options struct {
	// Strategy is how old nodes are replaced: "surge" (concurrent,
	// PDB-aware; the default) or "eks" (the seed's, one at a time).
	Strategy string
	// BatchSize, BatchSoak and Soak shape blue-green: old nodes drained
	// BatchSize at a time (0: all), BatchSoak apart, kept cordoned for Soak
	// before they are terminated.
	BatchSize       int
	BatchSoak, Soak time.Duration
	// StrategySet says the user chose Strategy (a resume with another one
	// is then told it goes on with the recorded one).
	StrategySet bool
	// MaxSurge is how many instances above the original desired count the
	// surge strategy launches (default 25%, at least one per AZ).
	MaxSurge Amount
	// MaxUnavailable is how much of the original ready capacity the surge
	// strategy may take away at once (default 0). For eks it raises the
	// surge above the AZ count when larger; unset, the group's own setting.
	MaxUnavailable Amount
	// PostCordonWait is the pause between cordon and terminate. Unlike the
	// other durations, zero is taken as given: no wait (DefaultOptions has
	// EKS's 60s). Negative is refused.
	PostCordonWait time.Duration
	// NodeReadyTimeout bounds the wait for new nodes to be Ready.
	NodeReadyTimeout time.Duration
	// NodeGoneTimeout bounds the wait for a terminated node to leave.
	NodeGoneTimeout time.Duration
	// PollInterval is how often the cloud is asked how the group is doing.
	PollInterval time.Duration
	// Drain tunes evictions (timeout, retry delay, force).
	Drain drain.Options
	// ClusterAutoscaler is the Deployment to pause: "auto" finds it in
	// kube-system, "none" leaves any alone, or "namespace/name".
	ClusterAutoscaler string
	// Managed: EKS replaces the nodes (--mode=managed), and preflight
	// judges its update rather than noderoll's own.
	Managed bool
	// Seed makes the random choice of old nodes repeatable; 0 picks one.
	Seed uint64
	// AcceptResize takes a group someone else resized mid-run as it is,
	// instead of stopping on it (see SizesChangedError).
	AcceptResize bool
	// AllowDowngrade lets a target older than the group's AMI through
	// (see DowngradeError).
	AllowDowngrade bool
	// IgnorePreflight names the preflight checks whose blocking findings
	// do not stop the run ("all": none stops it).
	IgnorePreflight []string
	// Terms names the options in messages as the front end's users write
	// them (nil: the CLI's flags).
	Terms terms.Terms
	// AskHolder lets a way back (RollBack, Abort) ask a CLI run that holds
	// the group to stop, rather than be refused, and take the group once it
	// has: the CLI's --rollback from another terminal. (The controller's
	// way back is its resource's spec.action.)
	AskHolder bool
}

// DefaultOptions are EKS's own timings with the surge strategy.
func DefaultOptions() Options {
	return Options{
		PostCordonWait: 60 * time.Second, NodeReadyTimeout: 15 * time.Minute, NodeGoneTimeout: 10 * time.Minute,
		PollInterval: 2 * time.Second, Drain: drain.DefaultOptions(), ClusterAutoscaler: "auto", Strategy: StrategySurge,
	}
}

// UnusedBudgets refuses a surge budget given to a strategy that would not
// use it, rather than ignore it without a word: blue-green launches the
// whole new set and takes no node away first; eks surges as EKS does. EKS's
// own update (Managed) reads max unavailable whatever the strategy. plan,
// which predicts every strategy, does not ask.
func (o Options) UnusedBudgets() error {
	t := o.Terms
	switch {
	case o.Managed:
	case o.Strategy == StrategyBlueGreen && (o.MaxSurge.Given || o.MaxUnavailable.Given):
		return fmt.Errorf("%s and %s: %s launches the whole new set at once and takes no node away first, so neither is used; leave them out, or use %s",
			t.Of("max-surge"), t.Of("max-unavailable"), t.With("strategy", StrategyBlueGreen), t.With("strategy", StrategySurge))
	case o.Strategy == StrategyEKS && o.MaxSurge.Given:
		return fmt.Errorf("%s: %s surges as EKS does, a node per zone (or %s if larger), so it is not used; leave it out, set %s, or use %s",
			t.Of("max-surge"), t.With("strategy", StrategyEKS), t.Of("max-unavailable"), t.Of("max-unavailable"), t.With("strategy", StrategySurge))
	}
	return nil
}

// Validate refuses what no default can mend: a negative duration.
func (o Options) Validate() error {
	for _, d := range []struct {
		flag string // the option's name, "" when no front end takes it
		name string
		v    time.Duration
	}{
		{"post-cordon-wait", "", o.PostCordonWait}, {"node-ready-timeout", "", o.NodeReadyTimeout}, {"", "node gone timeout", o.NodeGoneTimeout},
		{"", "poll interval", o.PollInterval}, {"eviction-timeout", "", o.Drain.Timeout}, {"eviction-retry-delay", "", o.Drain.RetryDelay},
		{"skip-wait-for-delete-timeout", "", o.Drain.SkipWaitForDelete}, // soaks: see budgets
	} {
		if d.v < 0 {
			what := "the " + d.name + " is " + d.v.String()
			if d.flag != "" {
				what = o.Terms.With(d.flag, d.v.String())
			}
			return fmt.Errorf("%s: a duration cannot be negative (0 for none where none makes sense, or a duration such as 60s)", what)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.NodeReadyTimeout <= 0 {
		o.NodeReadyTimeout = d.NodeReadyTimeout
	}
	if o.NodeGoneTimeout <= 0 {
		o.NodeGoneTimeout = d.NodeGoneTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = d.PollInterval
	}
	if o.Drain.Timeout <= 0 {
		o.Drain.Timeout = d.Drain.Timeout
	}
	if o.Drain.RetryDelay <= 0 {
		o.Drain.RetryDelay = d.Drain.RetryDelay
	}
	if o.Strategy == "" {
		o.Strategy = d.Strategy
	}
	if o.ClusterAutoscaler == "" {
		o.ClusterAutoscaler = d.ClusterAutoscaler
	}
	return o
}

// Request is one upgrade to do.
type Request struct {
	Group  cloud.NodeGroupRef
	Target TargetSpec
	// Predicted is the front end's prediction of the run (Forecast), kept
	// in its timeline for whoever watches or reports it; 0: none.
	Predicted time.Duration
	// PredictedTail is the part of Predicted after the last old instance's
	// termination (the scale-back): what is left once every node is
	// replaced.
	PredictedTail time.Duration
	// PredictedAssuming says what the prediction assumed for want of the
	// group's history ("" nothing), for a report to say beside its error.
	PredictedAssuming string
}

// Result says what an upgrade did.
type Result struct {
	UpToDate bool // nothing needed doing; nothing was changed
	Target   Target
	Replaced []string // old instances terminated
	Removed  []string // surplus instances removed when scaling back
	Steps    []Step
	Duration time.Duration // this run's
	// Resumed is when the upgrade this run resumed began (an earlier run
	// began it); zero when this run began it.
	Resumed time.Time
	// EKSRecorded is the launch template version EKS was asked to record
	// at the end (EKSRecord); 0: none was needed.
	EKSRecorded int64
}

// Engine upgrades node groups of one cluster in one cloud.
type Engine struct {
	kube     kubernetes.Interface
	cloud    cloud.Provider
	managed  cloud.ManagedUpdater // the cloud's, when its groups update themselves; nil otherwise
	clock    clock.WithTicker
	log      *slog.Logger
	reporter Reporter // the front end's
	report   teller   // tells reporter
	opts     Options
	members  *Members
	lockOpts grouplock.Options
	invalid  error        // Options.Validate's verdict, given by every entry point
	view     *ClusterView // shared with the process's other engines; nil: each run its own
	records  Records      // where each group's record is kept
}

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithReporter sets who hears of progress.
func WithReporter(r Reporter) Option { return func(e *Engine) { e.reporter = r } }

// WithMembers shares the engine's view of which nodes belong to the group,
// so that a front end shows and counts exactly the nodes the engine acts on.
func WithMembers(m *Members) Option { return func(e *Engine) { e.members = m } }

// WithRecords keeps the groups' records where the front end keeps them
// (default: configMapRecords).
func WithRecords(r Records) Option { return func(e *Engine) { e.records = r } }

// WithClock replaces the real clock, for tests.
func WithClock(c clock.WithTicker) Option { return func(e *Engine) { e.clock = c } }

// New returns an engine.
func New(kube kubernetes.Interface, p cloud.Provider, o Options, opts ...Option) *Engine {
	e := &Engine{kube: kube, cloud: p, clock: clock.RealClock{}, opts: o.withDefaults(), invalid: o.Validate(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), reporter: nopReporter{}, members: NewMembers(), records: configMapRecords(kube)}
	e.managed, _ = p.(cloud.ManagedUpdater)
	for _, opt := range opts {
		opt(e)
	}
	e.report = teller{to: e.reporter, now: e.clock.Now}
	return e
}

// ErrTargetMismatch says another upgrade of the group is under way.
var ErrTargetMismatch = errors.New("another upgrade of this node group is in progress")

// Upgrade brings every node of the group onto the target AMI, or resumes the
// upgrade recorded for the group. It checks every input before it changes
// anything: a bad cluster, group or version fails with nothing touched.
func (e *Engine) Upgrade(ctx context.Context, req Request) (*Result, error) {
	start := e.clock.Now()
	p, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	// Checks that would stop the run come before anything changes (the
	// lock included), on a resume too.
	if pre, err := e.judge(ctx, p); err != nil {
		return nil, err
	} else if !pre.UpToDate {
		if err := e.heed(pre); err != nil {
			return nil, err
		}
	}
	// From here on the group is this run's alone: the record is read, and
	// the group changed, under its lock.
	ctx, held, err := e.lockAndLoad(ctx, req.Group, "")
	if err != nil {
		return nil, err
	}
	defer held.release()
	store, rec := held.store, held.rec
	if !rec.Active() {
		// A finished upgrade is history, never a run to resume: the next
		// target starts a new upgrade (its record replaces the old one).
		rec = nil
	}
	target := p.target
	if rec != nil {
		// Judged again under the lock, and told from here only (the
		// judge above read the record without it).
		var note string
		if target, note, err = e.resumeTarget(req, rec, target); err != nil {
			return nil, err
		}
		if note != "" {
			e.report.Info(note)
		}
	}
	if rec == nil && upToDate(p.group, target) {
		return e.upToDate(p, target, start), nil
	}

	u, err := e.newUpgrade(ctx, store, rec, p.group, req.Target, target)
	if err != nil {
		return nil, err
	}
	u.surge, u.unavailable, u.predicted, u.predictedTail, u.predictedFrom = p.surge, p.unavailable, req.Predicted, req.PredictedTail, start
	u.predictedAssuming = req.PredictedAssuming
	defer u.close()
	err = stopCause(ctx, u.run(ctx))
	res := &Result{Target: target, Duration: e.clock.Since(start)}
	if u.rec != nil {
		res.Replaced, res.Removed, res.Steps = u.rec.Replaced, u.rec.Removed, u.rec.Steps
		if r := u.rec.EKSRecord; r != nil && r.Done {
			res.EKSRecorded = r.Version
		}
	}
	if rec != nil {
		res.Resumed = rec.Started
	}
	return res, err
}

// heed stops the run on blocking preflight findings (those not ignored) and
// tells the warnings.
func (e *Engine) heed(pre *PreflightReport) error {
	if blocked := preflight.Blocked(pre.Findings, e.opts.IgnorePreflight); len(blocked) > 0 {
		return &preflight.BlockedError{Findings: blocked, Terms: e.opts.Terms}
	}
	for _, f := range pre.Findings {
		if f.Severity == preflight.Warning {
			e.report.Info(fmt.Sprintf("preflight [%s] %s %s", f.Check, f.Object, f.Message))
		}
	}
	return nil
}

// prepared is a request checked against the cloud and the cluster, before
// anything changes.
type prepared struct {
	req                Request
	group              cloud.NodeGroup
	controlPlane       string
	surge, unavailable int
	target             Target  // as the request resolves now
	record             *Record // the group's record as read, whatever its phase (nil: none)
	resuming           *Record // the unfinished upgrade a run would resume, or nil
}

// prepare checks every input: a bad cluster, group, version or budget fails
// with nothing touched.
func (e *Engine) prepare(ctx context.Context, req Request) (*prepared, error) {
	if e.invalid != nil {
		return nil, e.invalid
	}
	if err := req.Target.Validate(e.opts.Terms); err != nil {
		return nil, err
	}
	cluster, err := e.cloud.Cluster(ctx, req.Group.Cluster)
	if err != nil {
		return nil, err
	}
	group, err := e.cloud.NodeGroup(ctx, req.Group)
	if err != nil {
		return nil, err
	}
	e.members.Add(group.Instances)
	cp, err := e.controlPlaneMinor(ctx)
	if err != nil {
		return nil, err
	}
	if cluster.Version != "" && cluster.Version != cp {
		e.log.Warn("EKS and the API server disagree on the version; trusting the API server", "eks", cluster.Version, "apiserver", cp)
	}
	// An unfinished upgrade on record is resumed as recorded: its strategy
	// and budgets, not today's defaults (read without the lock: nothing
	// changes here; the run reads it again under the lock).
	store := e.records(req.Group)
	record, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	rec := record
	if !rec.Active() || e.opts.Managed {
		rec = nil
	}
	var surge, unavailable int
	if rec != nil {
		surge, unavailable, err = e.resumeBudgets(rec, group)
	} else {
		surge, unavailable, err = budgets(e.opts.Strategy, e.opts, group.Desired, len(group.AZs), group.MaxUnavailable)
	}
	if err != nil {
		return nil, err
	}
	target, err := resolveTarget(ctx, e.cloud, group, req.Target, cp, e.opts.Terms)
	if err != nil {
		return nil, err
	}
	// A resumed run goes on to its recorded target (or is refused as
	// another upgrade); a new one may not go back by mistake.
	if rec == nil {
		if err := e.checkNotOlder(ctx, req.Group, group, target); err != nil {
			return nil, err
		}
	}
	return &prepared{req: req, group: group, controlPlane: cp, surge: surge, unavailable: unavailable, target: target, record: record, resuming: rec}, nil
}

// resumeBudgets returns the strategy's budgets an unfinished upgrade
// recorded, refusing flags given now that say otherwise: a resume must not
// be judged, or run, by another strategy's numbers.
func (e *Engine) resumeBudgets(rec *Record, g cloud.NodeGroup) (surge, unavailable int, err error) {
	strategy := strategyOf(rec)
	if e.opts.StrategySet && e.opts.Strategy != strategy {
		t := e.opts.Terms
		return 0, 0, fmt.Errorf("%w: the upgrade of %s/%s under way uses strategy %s (recorded when it started %s), not %s: resume it with %s, or take it back with %s",
			ErrTargetMismatch, rec.Cluster, rec.Nodegroup, strategy, rec.Started.Format(time.RFC3339), e.opts.Strategy, t.With("strategy", strategy), t.Of("abort"))
	}
	if e.opts.MaxSurge.Given || e.opts.MaxUnavailable.Given {
		s, u, err := budgets(strategy, e.opts, rec.OriginalDesired, len(g.AZs), g.MaxUnavailable)
		if err != nil || s != rec.Surge || u != rec.Unavailable {
			t := e.opts.Terms
			var given []string // only what was given: the rest is the record's
			if e.opts.MaxSurge.Given {
				given = append(given, t.With("max-surge", e.opts.MaxSurge.String()))
			}
			if e.opts.MaxUnavailable.Given {
				given = append(given, t.With("max-unavailable", e.opts.MaxUnavailable.String()))
			}
			says, them := "says", "it"
			if len(given) > 1 {
				says, them = "say", "them"
			}
			return 0, 0, fmt.Errorf("%w: the upgrade of %s/%s under way records max surge %d and max unavailable %d (strategy %s); %s %s otherwise: leave %s out to resume as recorded, or take it back with %s",
				ErrTargetMismatch, rec.Cluster, rec.Nodegroup, rec.Surge, rec.Unavailable, strategy, strings.Join(given, " and "), says, them, t.Of("abort"))
		}
	}
	return rec.Surge, rec.Unavailable, nil
}

// resumeTarget decides what an unfinished upgrade on record means for this
// request. The same request resumes to the recorded target, even if it would
// resolve to another AMI now ("recommended" moved on); a request for the
// recorded AMI resumes too; anything else is another upgrade, refused. The
// note says when the request resolves to another AMI now; the caller tells
// it, once a run.
func (e *Engine) resumeTarget(req Request, rec *Record, resolved Target) (target Target, note string, err error) {
	switch {
	case rec.Phase == PhaseRollingBack:
		return Target{}, "", fmt.Errorf("%w: the bluegreen upgrade of %s to %s is going back to its old nodes; rerun with %s (or %s) to finish that first",
			ErrTargetMismatch, req.Group, describeTarget(rec.Target), e.opts.Terms.Of("rollback"), e.opts.Terms.Of("abort"))
	case rec.Abort != nil:
		return Target{}, "", fmt.Errorf("%w: the upgrade of %s to %s is being aborted (back to %s); rerun with %s to finish that first",
			ErrTargetMismatch, req.Group, describeTarget(rec.Abort.From), describeTarget(rec.Target), e.opts.Terms.Of("abort"))
	case rec.Target.ImageID == resolved.ImageID:
		return rec.Target, "", nil
	case req.Target.sameRequest(rec.Spec):
		return rec.Target, fmt.Sprintf("%s now resolves to %s; finishing the recorded upgrade to %s first (ask again afterwards to move on)",
			describeSpec(e.opts.Terms, req.Target), describeTarget(resolved), describeTarget(rec.Target)), nil
	}
	return Target{}, "", fmt.Errorf("%w: %s to AMI %s (%s), started %s, reached %s; rerun with that target to resume it, or finish it first",
		ErrTargetMismatch, req.Group, rec.Target.ImageID, rec.Target.ImageName, rec.Started.Format(time.RFC3339), rec.Phase)
}

func describeSpec(t terms.Terms, s TargetSpec) string {
	switch {
	case s.KubernetesVersion != "":
		return t.With("kubernetes-version", s.KubernetesVersion)
	case s.ReleaseVersion != "":
		return t.With("release-version", s.ReleaseVersion)
	case s.LaunchTemplateVersion != 0:
		return t.With("launch-template-version", fmt.Sprint(s.LaunchTemplateVersion))
	}
	return t.With("ami", s.AMI)
}

func upToDate(g cloud.NodeGroup, t Target) bool {
	if g.ImageID != t.ImageID || len(g.Instances) != g.Desired {
		return false
	}
	if t.TemplateVersion != 0 && g.TemplateVersion != t.TemplateVersion {
		return false
	}
	for _, i := range g.Instances {
		if i.ImageID != t.ImageID || i.Terminating() {
			return false
		}
	}
	return true
}

func describeTarget(t Target) string {
	s := t.ImageID
	var about []string
	if t.KubeMinor != "" {
		about = append(about, "Kubernetes "+t.KubeMinor)
	}
	if t.ImageName != "" {
		about = append(about, t.ImageName)
	}
	if len(about) > 0 {
		s += " (" + strings.Join(about, ", ") + ")"
	}
	return s
}

func (e *Engine) controlPlaneMinor(ctx context.Context) (string, error) {
	v, err := e.kube.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("asking the API server its version (is the kubeconfig right?): %w", err)
	}
	minor := strings.TrimRightFunc(v.Minor, func(r rune) bool { return r < '0' || r > '9' })
	return v.Major + "." + minor, nil
}

// newRand returns the engine's random source, seeded when asked to be.
func (e *Engine) newRand() *rand.Rand {
	seed := e.opts.Seed
	if seed == 0 {
		seed = uint64(e.clock.Now().UnixNano())
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// upToDate says, in both modes alike, that the group already runs the
// target and nothing is done.
func (e *Engine) upToDate(p *prepared, target Target, start time.Time) *Result {
	e.report.Step(0, "Up to date", fmt.Sprintf("all %d nodes of %s run %s; nothing to do", len(p.group.Instances), p.req.Group, describeTarget(target)))
	return &Result{UpToDate: true, Target: target, Duration: e.clock.Since(start)}
}
