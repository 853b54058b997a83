package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/cloud"
	awscloud "github.com/noderoll/noderoll/internal/cloud/aws"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/preflight"
	"github.com/noderoll/noderoll/internal/progress"
)

type upgradeFlags struct {
	cluster, name           string
	target                  engine.TargetSpec
	aws                     awscloud.Options
	kubeconfig, kubeContext string
	opts                    engine.Options
	force                   bool
	timeout                 time.Duration
	output                  string
	report                  string // --report: the HTML file to write at the end
	verbose                 bool
	strategySet             func() bool // --strategy was given
	changed                 func(flag string) bool
	viaController           bool
	rollback, abort         bool
	dryRun                  bool
	mode                    string // noderoll or managed
}

func newUpgradeCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade node groups",
		Example: `  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37
  noderoll upgrade nodegroup --help   # strategies, budgets, dry run, abort and rollback
  noderoll upgrade cluster --cluster=eksworkshop-eksctl --canary=nodegroup --soak=20s   # every group behind`,
	}
	cmd.AddCommand(newUpgradeNodegroup(s), newUpgradeCluster(s))
	return cmd
}

func newUpgradeNodegroup(s Streams) *cobra.Command { return newUpgradeNodegroupWith(s, nil) }

// newUpgradeNodegroupWith lets a test see the flags the command parses.
// upgradeNodegroupLong is upgrade nodegroup's help: how each strategy and
// mode replaces the nodes, what is recorded, what preflight checks.
const upgradeNodegroupLong = `Replace every node of a node group with nodes on a new AMI, for EKS managed
and self-managed groups alike. Every strategy first creates a launch template
version (the current one with only the AMI changed), points the Auto Scaling
group at it, pauses a cluster-autoscaler in kube-system (restored after, also on
failure) and taints old nodes eks.amazonaws.com/nodegroup=unschedulable:NoSchedule
so evicted pods never land on another old node. Evictions always go through the
Eviction API, within the pods' PodDisruptionBudgets.

--strategy surge (the default) replaces many nodes at once within two budgets:
  --max-surge        instances launched above the group's size, all at once
                     (count or %, rounded up; default 25%, at least one per AZ)
  --max-unavailable  original ready capacity that may be missing at once
                     (count or %, rounded down; default 0: never below the original)
  Up to max-surge + max-unavailable old nodes are cordoned and drained at once,
  those whose pods the budgets let go now first; a node is terminated once
  drained and --post-cordon-wait after its cordon (the wait runs alongside the
  drain), and its slot goes to the next. The last old nodes are
  terminated lowering desired capacity, so the group ends at its size with
  nothing left to scale back.

--strategy bluegreen launches the whole new set first and waits until it is
Ready, then drains the old nodes (--batch-size at a time, --batch-soak apart)
and keeps them cordoned for --soak before terminating them: until then,
--rollback goes back at once (old nodes take pods again, the new ones go).

--abort takes any upgrade under way (interrupted, failed) back to where the
group was: it launches its original launch template version again, and every
node of the upgrade's AMI is replaced by one of the original AMI, with the
upgrade's strategy and budgets (a bluegreen upgrade still in its soak simply
goes back to its old nodes). Interrupted, rerun it to resume.

--strategy eks is the seed's algorithm, exactly as an EKS managed node group
update runs it: surge one node per AZ (or --max-unavailable if larger), wait for
them, then one random old node at a time: evict, cordon, wait, terminate keeping
desired capacity, and once the previous replacement is Ready the next; finally
drain and remove the surplus nodes one at a time and restore the sizes.

Progress is recorded in the cluster: rerun the same command to resume an
interrupted or failed upgrade, with the strategy and budgets it started with and
to the AMI it started with, even if a newer one was published since. A group
already on the target is left untouched; once an upgrade completed, the next
target starts a new one. The run stops, recorded and resumable, when
replacements do not come, when a pod is under two PodDisruptionBudgets, or when
someone else resizes the group meanwhile.

Before anything changes, preflight checks look for what would stall the run or
hurt its workloads: budgets that never allow an eviction, a pod under two
budgets, pods nothing recreates, pods that opt out of disruption, volumes in a
zone that gets no new node, kubelet/control-plane skew, a surge the group's
max size or the account's EC2 vCPU quota has no room for, a managed group's
launch template that EKS generated (EKS advises against changing it: use
--mode=managed); and warn of data in emptyDir, a surge smaller than the zones,
no cluster-autoscaler found. A blocking finding stops the run unless its check
is named in --ignore-preflight.
--dry-run shows the findings and what the run would do, and changes nothing.

--mode=managed asks EKS to do it instead (UpdateNodegroupVersion, for managed
node groups; --force if given), after the same checks, preflight and lock, with
the cluster-autoscaler held meanwhile, and follows EKS's update with the same
live view to its end, saying EKS's own reason when it fails (PodEvictionFailure
after EKS's 15 minutes of retries). Rerun, it follows the update in progress.
With --max-unavailable it first sets the group's updateConfig (UpdateNodegroupConfig),
so that EKS replaces that many nodes at once; the setting stays the group's.

On a managed group with a launch template of yours, the run ends by having EKS
record the new launch template version (UpdateNodegroupVersion under the
MINIMAL update strategy, which replaces no node; the group's own strategy is
set back after), so that EKS reports no Ec2LaunchTemplateVersionMismatch.

One run per group at a time: a run holds a Lease in kube-system while it works.
A second run is refused, naming the holder; a holder that died on this host is
taken over at once, one on another machine once its lease expired (30s).`

const upgradeNodegroupExample = `  # The seed's upgrade, against the sandbox:
  eval "$(noderoll sandbox env)"
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37

  # The seed's exact algorithm, one node at a time:
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37 --strategy=eks

  # A large group, a third of it at a time, allowing one node's capacity to be missing:
  noderoll upgrade nodegroup --cluster=prod --name=workers --kubernetes-version=1.37 --max-surge=33% --max-unavailable=1

  # What would happen, and what stands in the way, changing nothing:
  noderoll upgrade nodegroup --cluster=prod --name=workers --kubernetes-version=1.37 --dry-run -o json

  # Let EKS do it, followed live, after noderoll's checks:
  noderoll upgrade nodegroup --cluster=prod --name=workers --kubernetes-version=1.37 --mode=managed

  # A specific AMI release, with real AWS credentials and a kubeconfig context:
  noderoll upgrade nodegroup --cluster=prod --name=workers --release-version=1.37.2-20261115 \
      --region=eu-west-1 --profile=admin --context=prod`

func newUpgradeNodegroupWith(s Streams, seen func(*upgradeFlags)) *cobra.Command {
	f := &upgradeFlags{opts: engine.DefaultOptions()}
	if seen != nil {
		seen(f)
	}
	cmd := &cobra.Command{
		Use:     "nodegroup",
		Short:   "Replace every node of a node group with nodes on a new AMI",
		Long:    upgradeNodegroupLong,
		Example: upgradeNodegroupExample,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runUpgrade(cmd.Context(), s, f, nil) },
	}
	fl := cmd.Flags()
	f.strategySet = func() bool { return fl.Changed("strategy") }
	f.changed = fl.Changed
	f.addFlags(fl)
	_ = cmd.MarkFlagRequired("cluster")
	_ = cmd.MarkFlagRequired("name")
	completeWith(cmd, "strategy", "surge\tmany nodes at once, within the budgets (default)", "bluegreen\tthe whole new set first, old nodes kept for --soak", "eks\tthe seed's: one node at a time")
	completeWith(cmd, "mode", "noderoll\tnoderoll replaces the nodes (default)", "managed\tEKS updates its managed node group itself")
	completeWith(cmd, "output", "text", "json")
	return cmd
}

// predictInto gives the view the plan's prediction of this run for its
// ETA, and returns it with its tail (the scale-back after the last
// replacement). A prediction that cannot be made is no reason not to run:
// the run says what is wrong itself.
func predictInto(ctx context.Context, view *progress.View, at *reach, opts engine.Options, ref cloud.NodeGroupRef, target engine.TargetSpec) (req engine.Request) {
	fc, err := at.engine(opts).Forecast(ctx, engine.Request{Group: ref, Target: target}, defaultAssumed())
	if err != nil {
		at.log.Debug("no prediction for the ETA", "err", err)
		return req
	}
	if fc.UpToDate || len(fc.Predictions) == 0 || fc.Predictions[0].Blocked != "" {
		return req
	}
	pr := fc.Predictions[0]
	req.Predicted, req.PredictedAssuming = pr.Duration, assuming(fc)
	if m := pr.Milestones; m.Terminated > 0 && m.End > m.Terminated {
		req.PredictedTail = m.End - m.Terminated
	}
	view.Predict(req.Predicted, req.PredictedTail, fc.ToReplace, req.PredictedAssuming)
	return req
}

// assuming says which of a prediction's delays were assumptions, for want
// of the group's history ("" when none were).
func assuming(fc *engine.Forecast) string {
	var what []string
	for _, name := range fc.Assumed {
		switch name {
		case engine.DelayShutdown:
			what = append(what, fmt.Sprintf("an instance's shutdown of %s", short(fc.Delays.Shutdown)))
		case engine.DelayPodStop:
			what = append(what, fmt.Sprintf("a pod's stop of %s", short(fc.Delays.PodStop)))
		case engine.DelayBootReady:
			what = append(what, fmt.Sprintf("a node's launch to Ready of %s", short(fc.Delays.BootReady)))
		case engine.DelayPodStart:
			what = append(what, fmt.Sprintf("a pod's start of %s", short(fc.Delays.PodStart)))
		}
	}
	if len(what) == 0 {
		return ""
	}
	return strings.Join(what, " and ") + ", which the group's history does not show yet"
}

// kubeClient builds a client from --kubeconfig and --context, with the usual
// fallbacks (KUBECONFIG, ~/.kube/config).
func kubeClient(kubeconfig, kubeContext string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	return clientcfg.Clientset(cfg)
}

// restConfig loads a kubeconfig as kubectl does (clientcfg.RESTConfig).
func restConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	return clientcfg.RESTConfig(kubeconfig, kubeContext)
}

// summary is the machine-readable account of a run.
type summary struct {
	Cluster   string `json:"cluster"`
	Nodegroup string `json:"nodegroup"`
	// Action is what the run did: upgrade, rollback or abort.
	Action      string        `json:"action"`
	Succeeded   bool          `json:"succeeded"`
	UpToDate    bool          `json:"upToDate"`
	Error       string        `json:"error,omitempty"`
	Target      engine.Target `json:"target"`
	Replaced    []string      `json:"replaced"`
	Removed     []string      `json:"removed"`
	NodesBefore int           `json:"nodesBefore"`
	PeakNodes   int           `json:"peakNodes"`
	NodesAfter  int           `json:"nodesAfter"`
	Steps       []engine.Step `json:"steps"`
	DurationSec float64       `json:"durationSeconds"`
	// SinceStartSec is, for a run that resumed an upgrade an earlier run
	// began, the time since that beginning (DurationSec is this run's).
	SinceStartSec float64     `json:"sinceStartSeconds,omitempty"`
	Disruptions   []pdbStatus `json:"podDisruptionBudgets"`
	BlockedEvicts int         `json:"blockedEvictions"`
	// EKSRecordedVersion is the launch template version EKS was asked to
	// record at the end of noderoll's own upgrade of a managed group.
	EKSRecordedVersion int64 `json:"eksRecordedLaunchTemplateVersion,omitempty"`
}

type pdbStatus struct {
	Name               string `json:"name"`
	CurrentHealthy     int32  `json:"currentHealthy"`
	DesiredHealthy     int32  `json:"desiredHealthy"`
	DisruptionsAllowed int32  `json:"disruptionsAllowed"`
}

// blockCounter shows the engine's Progress in the live view, counting
// refused evictions on the way. Concurrent drains report at once (see
// engine.Reporter).
type blockCounter struct {
	*progress.View
	n atomic.Int64
}

// Report implements engine.Reporter.
func (b *blockCounter) Report(p engine.Progress) {
	switch p.Kind {
	case engine.ProgressStep:
		b.View.StepAt(p.Time, p.Step, p.Title, p.Message)
	case engine.ProgressInfo:
		b.View.InfoAt(p.Time, p.Text())
	case engine.ProgressBlocked:
		b.n.Add(int64(len(p.Blockers)))
		b.View.Blocked(p.Node, p.Blockers)
	}
}

// validateDurations refuses a negative duration by its flag's name, before
// anything is asked of the cluster or the cloud.
func (f *upgradeFlags) validateDurations() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--post-cordon-wait", f.opts.PostCordonWait}, {"--eviction-timeout", f.opts.Drain.Timeout},
		{"--eviction-retry-delay", f.opts.Drain.RetryDelay}, {"--skip-wait-for-delete-timeout", f.opts.Drain.SkipWaitForDelete},
		{"--node-ready-timeout", f.opts.NodeReadyTimeout}, {"--timeout", f.timeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s %s: a duration cannot be negative; give 0 or a duration such as 60s (see --help)", d.flag, d.v)
		}
	}
	return nil
}

// validate checks the flags together, before anything is asked of the
// cluster or the cloud; managed mode sets what preflight judges it by.
func (f *upgradeFlags) validate() error {
	if f.mode == "" {
		f.mode = "noderoll" // callers other than the flags (the demo)
	}
	switch f.opts.Strategy {
	case engine.StrategySurge, engine.StrategyBlueGreen, engine.StrategyEKS:
	default:
		return fmt.Errorf("--strategy %q: want surge (the default: many nodes at once, PDB-aware), bluegreen (the whole new set first, old nodes kept for --soak) or eks (the seed's: one node at a time)", f.opts.Strategy)
	}
	switch {
	case f.mode != "noderoll" && f.mode != "managed":
		return fmt.Errorf("--mode %q: want noderoll or managed", f.mode)
	case f.mode == "managed" && (f.rollback || f.abort):
		return fmt.Errorf("--mode=managed: EKS's update has no way back but another update; --rollback and --abort take back noderoll's own upgrades")
	case f.mode == "managed" && f.strategySet != nil && f.strategySet():
		return fmt.Errorf("--mode=managed: EKS replaces the nodes its own way (one at a time, a node a zone of surge); --strategy is for noderoll's own upgrades")
	case f.mode == "managed" && f.opts.MaxSurge.Given:
		return fmt.Errorf("--mode=managed: EKS chooses its own surge (a node a zone, or --max-unavailable if larger); --max-surge is for noderoll's own upgrades")
	case f.mode == "managed":
		// Preflight judges the surge EKS makes: a node a zone, or
		// --max-unavailable when larger.
		f.opts.Strategy, f.opts.Managed = engine.StrategyEKS, true
	}
	switch {
	case f.rollback && f.abort:
		return fmt.Errorf("--rollback and --abort: give one (--abort goes back from any upgrade; --rollback from a bluegreen one during its soak)")
	case f.rollback || f.abort:
		flag := map[bool]string{true: "--rollback", false: "--abort"}[f.rollback]
		if f.target != (engine.TargetSpec{}) {
			return fmt.Errorf("%s goes back to what the group ran before the upgrade under way: give no target (--kubernetes-version, --release-version, --launch-template-version, --ami)", flag)
		}
		if f.dryRun {
			return fmt.Errorf("--dry-run judges an upgrade; it does not go with %s", flag)
		}
	default:
		if err := f.target.Validate(nil); err != nil {
			return err
		}
	}
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output %q: want text or json", f.output)
	}
	if err := f.validateDurations(); err != nil {
		return err
	}
	if err := preflight.ValidateIgnore(f.opts.IgnorePreflight, nil); err != nil {
		return err
	}
	return nil
}

// validateStrategyFlags refuses a flag of one strategy given to a run of
// another, which would ignore it without a word (as the resource's
// validation refuses spec.strategy.soak with type Surge): bluegreenOnly
// are the command's flags for blue-green alone (upgrade cluster's --soak
// is its waves'). plan, which predicts every strategy, takes them all.
func (f *upgradeFlags) validateStrategyFlags(bluegreenOnly ...string) error {
	if f.changed == nil || f.mode == "managed" || f.rollback || f.abort {
		return nil
	}
	strategy := f.opts.Strategy
	which := "--strategy " + strategy
	if f.strategySet == nil || !f.strategySet() {
		which = "the default --strategy " + strategy
	}
	var given []string
	for _, flag := range bluegreenOnly {
		if strategy != engine.StrategyBlueGreen && f.changed(flag) {
			given = append(given, "--"+flag)
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("%s: for --strategy bluegreen only (its old nodes kept, cordoned, after the drain); %s would not use it: leave it out, or add --strategy bluegreen", strings.Join(given, ", "), which)
	}
	return f.opts.UnusedBudgets()
}

// addFlags declares upgrade nodegroup's flags on f.
func (f *upgradeFlags) addFlags(fl *pflag.FlagSet) {
	fl.StringVar(&f.cluster, "cluster", "", "EKS cluster name (required)")
	fl.StringVar(&f.name, "name", "", "node group name: an EKS managed node group, or a self-managed Auto Scaling group tagged for the cluster (required)")
	fl.StringVar(&f.target.KubernetesVersion, "kubernetes-version", "", "upgrade to the recommended EKS-optimized AMI of this Kubernetes version, e.g. 1.37")
	fl.StringVar(&f.target.ReleaseVersion, "release-version", "", "upgrade to this EKS AMI release, e.g. 1.37.2-20261115")
	fl.Int64Var(&f.target.LaunchTemplateVersion, "launch-template-version", 0, "upgrade to the AMI of this existing version of the group's launch template")
	fl.StringVar(&f.target.AMI, "ami", "", "upgrade to this AMI ID")
	fl.StringVar(&f.target.Family, "ami-family", "", "switch AMI family with --kubernetes-version: al2023, bottlerocket or windows (default: the group's own, keeping its architecture and variant: arm64, NVIDIA, Neuron)")
	fl.StringVar(&f.aws.Region, "region", "", "AWS region (default: AWS_REGION or the profile's)")
	fl.StringVar(&f.aws.Profile, "profile", "", "AWS shared config profile (default: AWS_PROFILE)")
	fl.StringVar(&f.aws.RoleARN, "role-arn", "", "assume this IAM role for every AWS call (e.g. the cluster account's), with the credentials otherwise found")
	fl.StringVar(&f.aws.ExternalID, "external-id", "", "external id the --role-arn role's trust policy demands")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current one)")
	addStrategyFlags(fl, &f.opts)
	fl.DurationVar(&f.opts.PostCordonWait, "post-cordon-wait", f.opts.PostCordonWait, "wait between cordoning a node and terminating it, for load balancers to let go of it (EKS: 60s; 0: no wait; eks cordons once drained; surge cordons first, so the wait runs alongside the drain)")
	fl.DurationVar(&f.opts.Drain.Timeout, "eviction-timeout", f.opts.Drain.Timeout, "fail when a node's pods cannot all be evicted within this time (see --force)")
	fl.DurationVar(&f.opts.Drain.RetryDelay, "eviction-retry-delay", f.opts.Drain.RetryDelay, "wait between eviction attempts a PodDisruptionBudget refused")
	fl.DurationVar(&f.opts.Drain.SkipWaitForDelete, "skip-wait-for-delete-timeout", f.opts.Drain.SkipWaitForDelete, "stop waiting for a pod still terminating this long after its deletion was due (a finalizer, a dead kubelet); 1s on a node whose kubelet stopped reporting")
	fl.DurationVar(&f.opts.NodeReadyTimeout, "node-ready-timeout", f.opts.NodeReadyTimeout, "fail when new nodes are not Ready within this time (before any old node is drained)")
	fl.BoolVar(&f.force, "force", false, "at --eviction-timeout, delete the pods a PodDisruptionBudget still protects instead of failing")
	fl.StringVar(&f.opts.ClusterAutoscaler, "cluster-autoscaler", "auto", "Deployment to pause during the upgrade: auto (found in kube-system), none, or namespace/name")
	fl.DurationVar(&f.timeout, "timeout", 0, "bound the whole run (0: no bound); on expiry the upgrade stops resumable")
	fl.Uint64Var(&f.opts.Seed, "seed", 0, "seed for the random choice of old nodes (0: random)")
	fl.BoolVar(&f.opts.AllowDowngrade, "allow-downgrade", false, "let the target be older than the group's AMI (a lower Kubernetes minor, or an older release of the same minor); refused without it, so that a mistyped version does not roll the group back")
	fl.BoolVar(&f.opts.AcceptResize, "accept-resize", false, "resume an upgrade that stopped because someone else resized the group, taking the group as it is (its extra nodes are drained and removed at scale back)")
	fl.BoolVar(&f.rollback, "rollback", false, "go back from a bluegreen upgrade under way, before its soak ends: old nodes take pods again, the new ones are drained and removed, the group launches its original launch template version (a noderoll run that holds the group, soaking in another terminal say, is asked to stop first)")
	fl.BoolVar(&f.abort, "abort", false, "take the upgrade under way (interrupted or failed) back to the AMI and launch template version the group ran before: its nodes are replaced again with the upgrade's strategy and budgets, sizes, processes and autoscaler restored; rerun to resume it (a noderoll run that holds the group is asked to stop first)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "change nothing: run the preflight checks and say what the upgrade would do; exits non-zero when a finding would stop a real run")
	fl.StringSliceVar(&f.opts.IgnorePreflight, "ignore-preflight", nil, "preflight checks whose blocking findings do not stop the run, comma-separated, or all: "+strings.Join(preflight.Checks, ", "))
	fl.StringVar(&f.mode, "mode", "noderoll", "who replaces the nodes: noderoll (its strategies), or managed: ask EKS to update a managed node group itself (UpdateNodegroupVersion, with --force if asked) and follow it, after the same checks and preflight")
	fl.StringVarP(&f.output, "output", "o", "text", "summary format: text or json")
	fl.StringVar(&f.report, "report", "", "when the run ends (failed runs too), write its timeline as a self-contained HTML page to this file (as noderoll report)")
	fl.BoolVar(&f.viaController, "via-controller", false, "declare the upgrade as a NodeGroupUpgrade for the in-cluster controller to run (noderoll controller; docs/controller.md), and follow it with the same live view; Ctrl-C stops following, not the upgrade")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "debug logs on stderr")
}

func runUpgrade(ctx context.Context, s Streams, f *upgradeFlags, intro func(*progress.View)) error {
	if err := f.validate(); err != nil {
		return err
	}
	if err := f.validateStrategyFlags("soak", "batch-size", "batch-soak"); err != nil {
		return err
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	at, err := connect(ctx, s, f, f.verbose)
	if err != nil {
		return err
	}
	if f.dryRun {
		return dryRun(ctx, s, f, at)
	}
	view := openView(s, f)
	defer view.Close()
	if intro != nil {
		intro(view)
	}
	// The view shows and counts the nodes the engine acts on: one
	// membership, seeded with the group as it is now (a bad name is left to
	// the engine to report) and grown by the engine as instances come.
	ref := cloud.NodeGroupRef{Cluster: f.cluster, Name: f.name}
	members := engine.NewMembers()
	if g, err := at.cloud.NodeGroup(ctx, ref); err == nil {
		members.Add(g.Instances)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := view.WatchNodes(watchCtx, at.kube, members.Owns); err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	if f.viaController {
		err := followController(ctx, f, at.cloud, ref, members, view, at.log)
		if f.report != "" {
			reportAtEnd(ctx, s, at.kube, ref, f.report)
		}
		return err
	}
	reporter := &blockCounter{View: view}
	res, runErr := runEngine(ctx, f, at, ref, members, view, reporter)
	stopWatch()
	view.Close()
	if f.report != "" && f.mode == "noderoll" && res != nil && !res.UpToDate {
		reportAtEnd(ctx, s, at.kube, ref, f.report)
	}
	if res == nil && runErr != nil {
		return runErr // nothing was done: just the cause
	}
	sum := summarize(context.WithoutCancel(ctx), f, at.kube, res, runErr, reporter, view, members)
	if f.output == "json" {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(s, sum, view)
	}
	if runErr != nil {
		advise(s.Err, runErr)
	}
	return runErr
}

// dryRun runs the preflight alone and prints what the upgrade would do.
func dryRun(ctx context.Context, s Streams, f *upgradeFlags, at *reach) error {
	opts := f.opts
	opts.StrategySet = f.strategySet != nil && f.strategySet()
	eng := engine.New(at.kube, at.cloud, opts, engine.WithLogger(at.log), withRecords(at.keeper))
	rep, err := eng.Preflight(ctx, engine.Request{Group: cloud.NodeGroupRef{Cluster: f.cluster, Name: f.name}, Target: f.target})
	if err != nil {
		return err
	}
	return printDryRun(s, f.output, rep)
}

// openView opens the live view: on stderr when stdout carries JSON, redrawn
// in place on a terminal.
func openView(s Streams, f *upgradeFlags) *progress.View {
	viewOut := s.Out
	if f.output == "json" {
		viewOut = s.Err
	}
	tty := false
	if file, ok := viewOut.(*os.File); ok {
		tty = term.IsTerminal(int(file.Fd()))
	}
	return progress.NewView(viewOut, tty, clock.RealClock{})
}

// runEngine runs what the flags ask of the engine in this process: an
// upgrade (predicted first), a managed update, a rollback or an abort.
func runEngine(ctx context.Context, f *upgradeFlags, at *reach, ref cloud.NodeGroupRef, members *engine.Members, view *progress.View, reporter *blockCounter) (*engine.Result, error) {
	opts := f.opts
	opts.Drain.Force = f.force
	opts.StrategySet = f.strategySet != nil && f.strategySet()
	// Going back is wanted now: a run that holds the group (soaking in
	// another terminal, say) is asked to stop rather than refuse this.
	opts.AskHolder = f.rollback || f.abort
	var predicted engine.Request // the prediction's part of the request
	if f.mode == "noderoll" && !f.rollback && !f.abort {
		predicted = predictInto(ctx, view, at, opts, ref, f.target)
	}
	at.keeper.TookOver = func(from string) {
		view.Info(fmt.Sprintf("took the upgrade over from %s: its controller was not running it; the record is in the group's ConfigMap now", from))
	}
	eng := engine.New(at.kube, at.cloud, opts, engine.WithReporter(reporter), engine.WithLogger(at.log), engine.WithMembers(members), withRecords(at.keeper))
	upgrade := eng.Upgrade
	switch {
	case f.mode == "managed":
		upgrade = func(ctx context.Context, req engine.Request) (*engine.Result, error) {
			return eng.UpgradeManaged(ctx, req, f.force)
		}
	case f.rollback:
		upgrade = eng.RollBack
	case f.abort:
		upgrade = eng.Abort
	}
	res, err := upgrade(ctx, engine.Request{Group: ref, Target: f.target,
		Predicted: predicted.Predicted, PredictedTail: predicted.PredictedTail, PredictedAssuming: predicted.PredictedAssuming})
	if err != nil && f.timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("--timeout %s reached: %w", f.timeout, err)
	}
	return res, err
}

// summarize gathers what the summary (or its JSON) tells of a run: the
// engine's result, the view's counts and the cluster as it is after.
func summarize(ctx context.Context, f *upgradeFlags, kube kubernetes.Interface, res *engine.Result, runErr error, reporter *blockCounter, view *progress.View, members *engine.Members) summary {
	sum := summary{Cluster: f.cluster, Nodegroup: f.name, Action: "upgrade", Succeeded: runErr == nil, BlockedEvicts: int(reporter.n.Load())}
	switch {
	case f.rollback:
		sum.Action = "rollback"
	case f.abort:
		sum.Action = "abort"
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	if res != nil {
		sum.UpToDate, sum.Target, sum.Replaced, sum.Removed, sum.Steps = res.UpToDate, res.Target, res.Replaced, res.Removed, res.Steps
		sum.DurationSec = res.Duration.Seconds()
		sum.EKSRecordedVersion = res.EKSRecorded
		if !res.Resumed.IsZero() {
			sum.SinceStartSec = time.Since(res.Resumed).Seconds()
		}
	}
	sum.PeakNodes, sum.NodesBefore = view.Peak()
	sum.NodesAfter = countGroupNodes(ctx, kube, members)
	sum.Disruptions = pdbs(ctx, kube)
	return sum
}

// advise says, after the summary, what a stopped upgrade left and what to
// do next, by the kind of its cause.
func advise(w io.Writer, runErr error) {
	var blocked *drain.BlockedError
	var creation *engine.NodeCreationError
	var resized *engine.SizesChangedError
	var budgets *drain.MultipleBudgetsError
	var comeback *drain.ComebackError
	var soak *engine.StoppedInSoakError
	var asked *grouplock.AskedError
	switch {
	case errors.As(runErr, &asked):
		fmt.Fprintln(w, "The upgrade stopped so that another run could take the group (named above); that run goes on from where this one stopped. Nothing is left to do here.")
	case errors.As(runErr, &soak):
		fmt.Fprintln(w, "The upgrade stopped in its soak: the new nodes serve, the old ones stay cordoned. Rerun the same command to finish the soak and remove the old nodes, or run it with --rollback to go back to the old nodes at once.")
	case errors.As(runErr, &comeback):
		fmt.Fprintln(w, "The upgrade stopped on a pod that its controller binds to the node again after every deletion (named above); the group is left as it is. Stop that controller or keep it off the node, then rerun the same command to resume.")
	case errors.As(runErr, &blocked):
		fmt.Fprintln(w, "The upgrade stopped on evictions that were refused (a PodDisruptionBudget, or an admission webhook, as named above); the group is left as it is and the cluster-autoscaler restored. Fix the cause (or pass --force), then rerun the same command to resume.")
	case errors.As(runErr, &creation) && creation.Replaced > 0:
		fmt.Fprintln(w, "The upgrade stopped before draining another old node: a replacement did not come. The group stays surged and the cluster-autoscaler is restored. Fix the cause (capacity, AMI, bootstrap; see the Auto Scaling group's activities), then rerun the same command to resume, with a longer --node-ready-timeout if nodes are only slow.")
	case errors.As(runErr, &creation):
		fmt.Fprintln(w, "The upgrade stopped before draining anything: the new nodes did not come. The group stays surged and the cluster-autoscaler is restored. Fix the cause (capacity, AMI, bootstrap; see the Auto Scaling group's activities), then rerun the same command to resume, with a longer --node-ready-timeout if nodes are only slow.")
	case errors.As(runErr, &resized):
		fmt.Fprintln(w, "The upgrade stopped because something else resized the Auto Scaling group; noderoll did not undo it. The cluster-autoscaler is restored. Rerun with --accept-resize once nothing else resizes it.")
	case errors.As(runErr, &budgets):
		fmt.Fprintln(w, "The upgrade stopped on a pod that two PodDisruptionBudgets select, which the Eviction API never evicts; the group is left as it is.")
	default:
		fmt.Fprintln(w, "The upgrade stopped; rerun the same command to resume it from where it stopped.")
	}
}

func countGroupNodes(ctx context.Context, kube kubernetes.Interface, members *engine.Members) int {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for k := range nodes.Items {
		if members.Owns(&nodes.Items[k]) {
			n++
		}
	}
	return n
}

func pdbs(ctx context.Context, kube kubernetes.Interface) []pdbStatus {
	list, err := kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []pdbStatus
	for _, p := range list.Items {
		out = append(out, pdbStatus{Name: p.Namespace + "/" + p.Name, CurrentHealthy: p.Status.CurrentHealthy, DesiredHealthy: p.Status.DesiredHealthy, DisruptionsAllowed: p.Status.DisruptionsAllowed})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func printSummary(s Streams, sum summary, view *progress.View) {
	w := s.Out
	fmt.Fprintln(w)
	if sum.UpToDate {
		fmt.Fprintf(w, "%s/%s is up to date on %s; nothing was changed.\n", sum.Cluster, sum.Nodegroup, sum.Target.ImageID)
		return
	}
	fmt.Fprintln(w, headline(sum))
	if len(sum.Replaced) > 0 {
		fmt.Fprintf(w, "  Nodes replaced:   %d (%s)\n", len(sum.Replaced), listed(sum.Replaced))
	} else {
		fmt.Fprintln(w, "  Nodes replaced:   0")
	}
	fmt.Fprintf(w, "  Surplus removed:  %d\n", len(sum.Removed))
	before := "before"
	if sum.SinceStartSec > 0 { // a resumed run saw the group mid-upgrade first
		before = "when this run resumed"
	}
	fmt.Fprintf(w, "  Node count:       %d %s, %d at peak, %d after\n", sum.NodesBefore, before, sum.PeakNodes, sum.NodesAfter)
	fmt.Fprintf(w, "  Refused evictions (retried): %d\n", sum.BlockedEvicts)
	if v := sum.EKSRecordedVersion; v > 0 {
		fmt.Fprintf(w, "  EKS's record:     launch template version %d, the one the group launches (by an EKS update of strategy MINIMAL)\n", v)
	}
	fmt.Fprintln(w, "  Time per step:")
	for _, l := range stepLines(sum.Steps) {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, "  PodDisruptionBudgets now:")
	for _, p := range sum.Disruptions {
		fmt.Fprintf(w, "    %-28s %d/%d healthy, %d disruptions allowed\n", p.Name, p.CurrentHealthy, p.DesiredHealthy, p.DisruptionsAllowed)
	}
	if rows := view.Rows(); len(rows) > 0 {
		fmt.Fprintf(w, "  Nodes now (%d):\n", len(rows))
		for _, l := range nodeLines(rows) {
			fmt.Fprintln(w, l)
		}
	}
}

// headline says in one sentence what the run did: an upgrade, a rollback
// (the target is the AMI gone back from) or an abort (the target is the
// original AMI, gone back to), finished or stopped.
func headline(sum summary) string {
	group := sum.Cluster + "/" + sum.Nodegroup
	took := time.Duration(sum.DurationSec * float64(time.Second)).Round(time.Second)
	resumed := ""
	if sum.SinceStartSec > 0 {
		resumed = fmt.Sprintf(", resuming what a run began %s ago", time.Duration(sum.SinceStartSec*float64(time.Second)).Round(time.Second))
	}
	switch {
	case sum.Action == "rollback" && sum.Succeeded:
		return fmt.Sprintf("Rolled %s back from %s to its old nodes in %s%s.", group, targetText(sum.Target), took, resumed)
	case sum.Action == "rollback":
		return fmt.Sprintf("The rollback of %s from %s stopped after %s.", group, targetText(sum.Target), took)
	case sum.Action == "abort" && sum.Succeeded:
		return fmt.Sprintf("Aborted the upgrade of %s: back on %s in %s%s.", group, targetText(sum.Target), took, resumed)
	case sum.Action == "abort":
		return fmt.Sprintf("The abort of the upgrade of %s (back to %s) stopped after %s.", group, targetText(sum.Target), took)
	case sum.Succeeded && sum.SinceStartSec > 0:
		return fmt.Sprintf("Upgraded %s to %s in %s, resuming an upgrade begun %s ago.", group, targetText(sum.Target), took,
			time.Duration(sum.SinceStartSec*float64(time.Second)).Round(time.Second))
	case sum.Succeeded:
		return fmt.Sprintf("Upgraded %s to %s in %s.", group, targetText(sum.Target), took)
	}
	return fmt.Sprintf("The upgrade of %s to %s stopped after %s.", group, targetText(sum.Target), took)
}

func targetText(t engine.Target) string {
	if t.KubeMinor != "" {
		return t.ImageID + " (Kubernetes " + t.KubeMinor + ")"
	}
	return t.ImageID
}

// addStrategyFlags adds the flags that choose how nodes are replaced.
func addStrategyFlags(fl *pflag.FlagSet, o *engine.Options) {
	fl.StringVar(&o.Strategy, "strategy", engine.StrategySurge, "how old nodes are replaced: surge (many at once, within --max-surge and --max-unavailable and the pods' budgets), bluegreen (every new node first, old ones kept for --soak) or eks (the seed's: one at a time)")
	fl.IntVar(&o.BatchSize, "batch-size", 0, "bluegreen: old nodes drained at once (0: all, each drain within the pods' budgets)")
	fl.DurationVar(&o.BatchSoak, "batch-soak", 0, "bluegreen: wait between one batch drained and the next")
	fl.DurationVar(&o.Soak, "soak", 10*time.Minute, "bluegreen: keep the drained old nodes (cordoned) this long before terminating them; until then --rollback goes back at once")
	fl.Var(&o.MaxSurge, "max-surge", "surge: instances above the group's size, a count or a % of it (default 25%, at least one per AZ)")
	fl.Var(&o.MaxUnavailable, "max-unavailable", "surge: original ready capacity that may be missing at once, a count or a % (default 0); eks: surge at least this many nodes (default: the group's own setting); --mode=managed: set the group's updateConfig to this (1-100 or 1%-100%), the nodes EKS replaces at once")
}

// printDryRun says what a run would do and what stands in its way; a
// blocking finding makes the command fail, so that scripts can gate on it.
func printDryRun(s Streams, output string, rep *engine.PreflightReport) error {
	if output == "json" {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			DryRun bool `json:"dryRun"`
			*engine.PreflightReport
		}{true, rep}); err != nil {
			return err
		}
	} else {
		w := s.Out
		fmt.Fprintln(w, "Dry run: nothing was changed.")
		t := rep.Target
		onto := t.ImageID
		if t.ImageName != "" {
			onto += " (" + t.ImageName + ")"
		}
		switch {
		case rep.UpToDate:
			fmt.Fprintf(w, "%s: all %d instances run %s; a run would do nothing.\n", rep.Nodegroup, rep.Instances, onto)
		default:
			verb := "Upgrade"
			if rep.Resuming {
				verb = "Resume the upgrade"
			}
			fmt.Fprintf(w, "%s of %s with strategy %s: %d of %d instances to replace, onto %s\n", verb, rep.Nodegroup, rep.Strategy, rep.ToReplace, rep.Instances, onto)
			fmt.Fprintf(w, "  max surge %d, max unavailable %d\n", rep.MaxSurge, rep.MaxUnavailable)
			blocking := countSeverity(rep.Findings, preflight.Blocking)
			ignored := ""
			if blocking > rep.Blocking {
				ignored = fmt.Sprintf(" (%d ignored by --ignore-preflight)", blocking-rep.Blocking)
			}
			fmt.Fprintf(w, "Preflight: %d blocking%s, %d warning(s)\n", blocking, ignored, len(rep.Findings)-blocking)
			for _, f := range rep.Findings {
				label := "warning "
				if f.Severity == preflight.Blocking {
					label = "BLOCKING"
				}
				fmt.Fprintf(w, "  %s [%s] %s %s\n           fix: %s\n", label, f.Check, f.Object, f.Message, f.Fix)
			}
		}
	}
	if rep.Blocking > 0 {
		return fmt.Errorf("dry run: %d blocking preflight finding(s) would stop a real run; fix them, or name their checks in --ignore-preflight", rep.Blocking)
	}
	return nil
}

func countSeverity(fs []preflight.Finding, sev preflight.Severity) int {
	n := 0
	for _, f := range fs {
		if f.Severity == sev {
			n++
		}
	}
	return n
}
