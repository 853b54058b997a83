package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/predict"
	"github.com/noderoll/noderoll/internal/preflight"
)

func newPlanCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Say what an upgrade would do and how long it would take, changing nothing",
		Example: `  noderoll plan nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37
  noderoll plan cluster --cluster=eksworkshop-eksctl    # every group: who is behind, the order, how long
  noderoll plan nodegroup --help`,
	}
	cmd.AddCommand(newPlanNodegroup(s), newPlanCluster(s))
	return cmd
}

// defaultAssumed are the delays a plan takes as given unless told: a pod's
// stop within its grace period, and EC2's shutdown of an instance.
func defaultAssumed() engine.Assumed {
	return engine.Assumed{PodStop: 5 * time.Second, Shutdown: 30 * time.Second}
}

// notPlanned are upgrade's flags that say how to act, not what: a plan
// has no use for them.
var notPlanned = map[string]bool{"output": true, "rollback": true, "abort": true, "dry-run": true, "via-controller": true, "timeout": true, "verbose": true, "report": true}

func newPlanNodegroup(s Streams) *cobra.Command {
	var f *upgradeFlags
	up := newUpgradeNodegroupWith(s, func(x *upgradeFlags) { f = x })
	output := "text"
	assumed := defaultAssumed()
	cmd := &cobra.Command{
		Use:   "nodegroup",
		Short: "Plan an upgrade of a node group: waves, peak instances, blockers and a predicted duration for each strategy",
		Long: `Read the cluster and the group, run the upgrade's preflight checks, and say
what 'noderoll upgrade nodegroup' with the same flags would do: the instances
to replace, the surge, the waves, the peak instance count, the findings that
would stop it, and how long it would take with each strategy. It changes
nothing.

The prediction runs the strategies' own decisions, the code the upgrade
itself asks, on a model of this group: its old nodes and the pods each holds,
its disruption budgets as they allow now, and the delays this cluster and its
cloud show (medians): how long the group's instances took from launch to a
Ready node, its pods from scheduled to Ready, its pods from deletion to gone
(timed by the group's last upgrade), and its instances from termination to
gone (the group's scaling activities). Where the group has no such history
the plan assumes the figure and says so (--assume-pod-stop,
--assume-instance-shutdown; given, they stand even over history). A budget
that allows no disruption is named instead of a number.

Exits non-zero when a blocking finding would stop a real run, as --dry-run.`,
		Example: `  noderoll plan nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37

  # The plan of a blue-green upgrade with a 5 minute soak, for a script:
  noderoll plan nodegroup --cluster=prod --name=workers --kubernetes-version=1.37 --strategy=bluegreen --soak=5m -o json

  # As a kubectl plugin:
  kubectl noderoll plan nodegroup --cluster=prod --name=workers --release-version=1.37.2-20261115 -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output %q: want text, json or yaml", output)
			}
			if assumed.PodsPerSecond < 0 {
				return fmt.Errorf("--assume-pods-per-second %g: want 0 (no limit) or more", assumed.PodsPerSecond)
			}
			if assumed.BudgetEvictionsPerSecond < 0 {
				return fmt.Errorf("--assume-budget-evictions-per-second %g: want 0 (no limit) or more", assumed.BudgetEvictionsPerSecond)
			}
			if assumed.PodStop < 0 || assumed.Shutdown < 0 || assumed.PodStart < 0 {
				return fmt.Errorf("--assume-pod-stop %s, --assume-pod-start %s, --assume-instance-shutdown %s: none may be negative", assumed.PodStop, assumed.PodStart, assumed.Shutdown)
			}
			// Given on the command line, they stand even where the
			// group's history shows otherwise.
			assumed.PodStopGiven, assumed.ShutdownGiven = cmd.Flags().Changed("assume-pod-stop"), cmd.Flags().Changed("assume-instance-shutdown")
			return runPlan(cmd, s, f, output, assumed)
		},
	}
	fl := cmd.Flags()
	up.Flags().VisitAll(func(x *pflag.Flag) {
		if !notPlanned[x.Name] {
			fl.AddFlag(x)
		}
	})
	f.strategySet = func() bool { return fl.Changed("strategy") }
	f.changed = fl.Changed
	fl.StringVarP(&output, "output", "o", output, "text, json or yaml")
	fl.DurationVar(&assumed.PodStop, "assume-pod-stop", assumed.PodStop, "how long an evicted pod takes to stop, where the group's last upgrade timed none (given: taken even where it did)")
	fl.DurationVar(&assumed.PodStart, "assume-pod-start", 0, "how long a moved pod takes from scheduled to Ready, instead of what the cluster's pods show (0: measured); for a cluster whose pods all started at once, whose starts count that burst's queue")
	fl.Float64Var(&assumed.PodsPerSecond, "assume-pods-per-second", 0, "how many pods a second the control plane can move (evicted, deleted, created, scheduled, started), this upgrade's included; a small or busy control plane, not the budgets, decides a large group's time (0: no limit; 'noderoll bench' measures a sandbox's)")
	fl.Float64Var(&assumed.BudgetEvictionsPerSecond, "assume-budget-evictions-per-second", 0, "how many evictions a second one PodDisruptionBudget takes: each writes the budget's status, one write after another, so a budget over thousands of pods can pace a large group more than its allowed disruptions do (0: no limit; 'noderoll bench' measures a sandbox's)")
	fl.DurationVar(&assumed.Shutdown, "assume-instance-shutdown", assumed.Shutdown, "how long a terminated instance takes to leave its group, where its scaling activities show no termination (EC2: about 30s; given: taken even where they do)")
	_ = cmd.MarkFlagRequired("cluster")
	_ = cmd.MarkFlagRequired("name")
	completeWith(cmd, "strategy", "surge\tmany nodes at once, within the budgets (default)", "bluegreen\tthe whole new set first, old nodes kept for --soak", "eks\tthe seed's: one node at a time")
	completeWith(cmd, "output", "text", "json", "yaml")
	return cmd
}

func runPlan(cmd *cobra.Command, s Streams, f *upgradeFlags, output string, assumed engine.Assumed) error {
	if err := f.validate(); err != nil {
		return err
	}
	ctx := cmd.Context()
	at, err := connect(ctx, s, f, false)
	if err != nil {
		return err
	}
	opts := f.opts
	opts.StrategySet = f.strategySet()
	fc, err := at.engine(opts).Forecast(ctx, engine.Request{Group: cloud.NodeGroupRef{Cluster: f.cluster, Name: f.name}, Target: f.target}, assumed)
	if err != nil {
		return err
	}
	switch output {
	case "json", "yaml":
		if err := writeStructured(s.Out, fc.JSON(), output); err != nil {
			return err
		}
	default:
		printPlan(s.Out, fc, opts)
	}
	if fc.Blocking > 0 {
		return fmt.Errorf("plan: %d blocking preflight finding(s) would stop a real run; fix them, or name their checks in --ignore-preflight", fc.Blocking)
	}
	return nil
}

func printPlan(w io.Writer, fc *engine.Forecast, o engine.Options) {
	fmt.Fprintln(w, "Plan: nothing was changed.")
	t := fc.Target
	onto := t.ImageID
	if t.ImageName != "" {
		onto += " (" + t.ImageName + ")"
	}
	if fc.UpToDate {
		fmt.Fprintf(w, "%s: all %d instances run %s; an upgrade would do nothing.\n", fc.Nodegroup, fc.Instances, onto)
		return
	}
	verb := "replace"
	if fc.Resuming {
		verb = "replace to finish the upgrade under way"
	}
	fmt.Fprintf(w, "%s: %d of %d instances to %s, onto %s\n", fc.Nodegroup, fc.ToReplace, fc.Instances, verb, onto)
	printDelays(w, fc, o)
	if len(fc.Budgets) > 0 {
		fmt.Fprintln(w, "Disruption budgets over the pods to move:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, b := range fc.Budgets {
			kind := ""
			if b.Ordered {
				kind = " (StatefulSet: a pod starts once the old one is gone)"
			}
			rounds := fmt.Sprintf("%d rounds", b.Rounds)
			if b.Allowed == 0 {
				rounds = "BLOCKS: allows no disruption now"
			}
			fmt.Fprintf(tw, "  %s\tallows %d\t%d pods on old nodes\t%s%s\n", b.Name, b.Allowed, b.OnGroup, rounds, kind)
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w, "Predicted, by strategy:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range fc.Predictions {
		how := waves(p, fc.ToReplace, o)
		took := short(p.Duration)
		if p.Blocked != "" {
			took = "never ends: " + p.Blocked
		}
		chosen := ""
		if p.Chosen {
			chosen = "  <- this run"
		}
		fmt.Fprintf(tw, "  %s\t%s\tpeak %d instances\t%s%s\n", p.Strategy, took, p.PeakInstances, how, chosen)
	}
	_ = tw.Flush()
	for _, p := range fc.Predictions {
		if p.Chosen && p.Blocked == "" {
			fmt.Fprintf(w, "This run, phase by phase: %s\n", phases(p.Milestones))
		}
	}
	blocking := countSeverity(fc.Findings, preflight.Blocking)
	fmt.Fprintf(w, "Preflight: %d blocking, %d warning(s)\n", blocking, len(fc.Findings)-blocking)
	for _, f := range fc.Findings {
		label := "warning "
		if f.Severity == preflight.Blocking {
			label = "BLOCKING"
		}
		fmt.Fprintf(w, "  %s [%s] %s %s\n           fix: %s\n", label, f.Check, f.Object, f.Message, f.Fix)
	}
}

// phases says when a predicted run's phases begin and end, from its start.
func phases(m predict.Milestones) string {
	at := func(d time.Duration) string { return "at " + short(d) }
	drains := fmt.Sprintf("drains start %s", at(m.FirstDrain))
	if m.LastDrain > m.FirstDrain {
		drains = fmt.Sprintf("drains start from %s to %s", short(m.FirstDrain), short(m.LastDrain))
	}
	return fmt.Sprintf("first new node Ready %s; %s, the last done %s; last old instance terminated %s; done %s",
		at(m.Ready), drains, at(m.Drained), at(m.Terminated), at(m.End))
}

// waves says how a strategy takes the nodes to replace.
func waves(p engine.Prediction, n int, o engine.Options) string {
	switch p.Strategy {
	case engine.StrategyEKS:
		return fmt.Sprintf("surge %d, then %d nodes one at a time", p.MaxSurge, n)
	case engine.StrategyBlueGreen:
		batches := "all drained at once"
		if o.BatchSize > 0 && o.BatchSize < n {
			batches = fmt.Sprintf("drained %d at a time", o.BatchSize)
		}
		return fmt.Sprintf("%d new nodes first, old ones %s, kept %s", p.MaxSurge, batches, short(o.Soak))
	}
	slots := max(p.MaxSurge+p.MaxUnavailable, 1)
	return fmt.Sprintf("surge %d, unavailable %d: %d wave(s) of up to %d nodes", p.MaxSurge, p.MaxUnavailable, (n+slots-1)/slots, slots)
}

// writeStructured writes v for tools: indented JSON, or YAML.
func writeStructured(w io.Writer, v any, output string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if output == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, strings.TrimRight(string(b), "\n"))
	return nil
}

// printDelays says each delay the prediction stands on and where it comes
// from: the cluster now, the group's history, the command line, or an
// assumption for want of either.
func printDelays(w io.Writer, fc *engine.Forecast, o engine.Options) {
	d, ob := fc.Delays, fc.Observed
	// from says where a delay comes from: what the cluster or the group's
	// history shows (seen, with its value when it was not taken), the
	// command line, or an assumption for want of either (none: why).
	from := func(name string, samples int, seen time.Duration, what, none, flag string) string {
		switch {
		case slices.Contains(fc.Given, name) && samples > 0:
			return fmt.Sprintf("given by --%s; the %s: %s", flag, what, short(seen))
		case slices.Contains(fc.Given, name):
			return "given by --" + flag
		case slices.Contains(fc.Assumed, name) && flag != "":
			return fmt.Sprintf("assumed: %s; --%s sets it", none, flag)
		case slices.Contains(fc.Assumed, name):
			return "assumed: " + none
		}
		return "the " + what
	}
	stopsFrom := "its last upgrade"
	if !ob.PodStopFrom.IsZero() {
		stopsFrom = "its upgrade of " + ob.PodStopFrom.Local().Format("2006-01-02 15:04")
	}
	fmt.Fprintln(w, "Delays the prediction stands on:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  a node launched to Ready\t%s\t(%s)\n", short(d.BootReady), from(engine.DelayBootReady, ob.BootReadySamples, ob.BootReady,
		fmt.Sprintf("median of the group's %d nodes", ob.BootReadySamples), "none of the group's nodes shows its launch", ""))
	fmt.Fprintf(tw, "  a pod scheduled to Ready\t%s\t(%s)\n", short(d.PodStart), from(engine.DelayPodStart, ob.PodStartSamples, ob.PodStart,
		fmt.Sprintf("median of the cluster's %d pods", ob.PodStartSamples), "no pod shows its start", "assume-pod-start"))
	fmt.Fprintf(tw, "  a pod's stop, deleted to gone\t%s\t(%s)\n", short(d.PodStop), from(engine.DelayPodStop, ob.PodStopSamples, ob.PodStop,
		fmt.Sprintf("median of %d pods %s timed", ob.PodStopSamples, stopsFrom), "no upgrade of this group timed any", "assume-pod-stop"))
	fmt.Fprintf(tw, "  an instance's shutdown\t%s\t(%s)\n", short(d.Shutdown), from(engine.DelayShutdown, ob.ShutdownSamples, ob.Shutdown,
		fmt.Sprintf("median of %d terminations in the group's scaling activities", ob.ShutdownSamples), "the group's scaling activities show no termination", "assume-instance-shutdown"))
	fmt.Fprintf(tw, "  post-cordon wait\t%s\t(--post-cordon-wait)\n", short(o.PostCordonWait))
	if d.PodsPerSecond > 0 {
		fmt.Fprintf(tw, "  the control plane's rate\t%.1f pods/s\t(given by --assume-pods-per-second)\n", d.PodsPerSecond)
	} else {
		fmt.Fprintf(tw, "  the control plane's rate\tno limit\t(assumed; --assume-pods-per-second sets one)\n")
	}
	if d.BudgetEvictionsPerSecond > 0 {
		fmt.Fprintf(tw, "  one budget's evictions\t%.1f a second\t(given by --assume-budget-evictions-per-second)\n", d.BudgetEvictionsPerSecond)
	} else {
		fmt.Fprintf(tw, "  one budget's evictions\tno limit\t(assumed; --assume-budget-evictions-per-second sets one)\n")
	}
	_ = tw.Flush()
}

func short(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
