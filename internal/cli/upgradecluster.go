package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/clusterplan"
	"github.com/noderoll/noderoll/internal/clusterupgrade"
	"github.com/noderoll/noderoll/internal/engine"
)

func newUpgradeCluster(s Streams) *cobra.Command {
	var f *upgradeFlags
	up := newUpgradeNodegroupWith(s, func(x *upgradeFlags) { f = x })
	req := clusterplan.Request{MaxConcurrent: 1, Soak: 30 * time.Minute}
	var health clusterupgrade.Health
	output := "text"
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Upgrade every node group of a cluster that is behind: canary first, then waves, a soak after each",
		Long: `Upgrade every node group of a cluster that is behind the newest recommended AMI
of its own family at the target Kubernetes minor (the control plane's unless
--kubernetes-version says), as 'noderoll plan cluster' plans it:

1. the targets are frozen when the upgrade starts: a release published while it
   runs waits for the next one, so every wave gets the same release;
2. the --canary groups alone first, then the others in waves of at most
   --max-concurrent-groups, each group upgraded as 'upgrade nodegroup' does it
   (the same strategy and budgets for all);
3. after each wave, a --soak that watches the upgraded groups: a node of
   theirs not Ready, a pod on their nodes restarting --health-restarts times or
   not Ready --health-pod-ready after its creation is a regression;
4. a failed group or a regression stops the upgrade before the next wave,
   saying what it saw; no other group is touched.

Its progress is kept in the cluster (kube-system/noderoll-cluster-<hash>): a
rerun of the same command resumes where it stopped, to the targets frozen at
the start, whatever flags it is given (a rerun after a halt goes on once what
was wrong is fixed).`,
		Example: `  noderoll upgrade cluster --cluster=eksworkshop-eksctl --canary=nodegroup --soak=20s
  noderoll upgrade cluster --cluster=prod --canary=canary-workers --max-concurrent-groups=2 --soak=30m
  noderoll plan cluster --cluster=prod --canary=canary-workers   # the same plan, changing nothing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case req.MaxConcurrent < 1:
				return fmt.Errorf("--max-concurrent-groups %d: want at least 1 group at once", req.MaxConcurrent)
			case req.Soak < 0 || health.PodReady < 0:
				return fmt.Errorf("--soak %s, --health-pod-ready %s: a duration cannot be negative", req.Soak, health.PodReady)
			case health.Restarts < 1:
				return fmt.Errorf("--health-restarts %d: want at least 1", health.Restarts)
			case output != "text" && output != "json":
				return fmt.Errorf("--output %q: want text or json", output)
			}
			if err := f.validateDurations(); err != nil {
				return err
			}
			if err := f.validateStrategyFlags("batch-size", "batch-soak"); err != nil {
				return err
			}
			req.Cluster, req.KubernetesVersion, req.Family = f.cluster, f.target.KubernetesVersion, f.target.Family
			return runUpgradeCluster(cmd.Context(), s, f, req, health, output)
		},
	}
	fl := clusterCommandFlags(cmd, up, f, &req, "upgrade cluster upgrades", map[string]bool{"verbose": true, "force": true, "timeout": true})
	fl.Int32Var(&health.Restarts, "health-restarts", 3, "a pod on the upgraded groups' nodes restarting this many times during a soak is a regression (crash-looping)")
	fl.DurationVar(&health.PodReady, "health-pod-ready", 2*time.Minute, "a pod on the upgraded groups' nodes not Ready this long after its creation is a regression")
	fl.StringVarP(&output, "output", "o", output, "text, or json: the progress on stderr and, at the end, the cluster upgrade's record on stdout (also when it stops)")
	_ = cmd.MarkFlagRequired("cluster")
	completeWith(cmd, "output", "text", "json")
	return cmd
}

func runUpgradeCluster(ctx context.Context, s Streams, f *upgradeFlags, req clusterplan.Request, health clusterupgrade.Health, output string) error {
	lines := s.Out
	if output == "json" {
		lines = s.Err // stdout carries the record alone
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
	opts := f.opts
	opts.StrategySet = f.strategySet()
	opts.Drain.Force = f.force
	var mu sync.Mutex
	tell := func(group, msg string) {
		mu.Lock()
		defer mu.Unlock()
		who := ""
		if group != "" {
			who = "[" + group + "] "
		}
		fmt.Fprintf(lines, "%s  %s%s\n", time.Now().Format(time.TimeOnly), who, msg)
	}
	// The groups of a wave drain at once through one view of the cluster
	// and one budget tracker, as the controller's do: two drains never
	// both spend, or both wait on, the same disruption of a budget whose
	// pods span the groups.
	view, err := engine.NewClusterView(at.kube)
	if err != nil {
		return err
	}
	view.Start(ctx)
	planner := at.engine(opts)
	r := &clusterupgrade.Runner{Kube: at.kube, Cloud: at.cloud, Clock: clock.RealClock{}, Tell: tell, Soak: req.Soak, Health: health, View: view,
		Plan: func(ctx context.Context) (*clusterplan.Plan, error) {
			return clusterplan.Make(ctx, at.cloud, func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) (*engine.Forecast, error) {
				return planner.Forecast(ctx, engine.Request{Group: ref, Target: target}, defaultAssumed())
			}, req)
		},
		Upgrade: func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) error {
			rep := groupReporter{group: ref.Name, tell: tell}
			res, err := at.engine(opts, engine.WithReporter(rep), engine.WithClusterView(view)).Upgrade(ctx, engine.Request{Group: ref, Target: target})
			switch {
			case err != nil:
				// Said when it happens: the wave's other groups go on, and
				// the wave's end may be minutes away.
				tell(ref.Name, "stopped: "+err.Error()+" (the wave's other groups go on; no later wave starts)")
			case res != nil && res.UpToDate: // its own line said so
			case res != nil:
				tell(ref.Name, fmt.Sprintf("done: %d node(s) replaced in %s", len(res.Replaced), res.Duration.Round(time.Second)))
			}
			return err
		},
	}
	rec, err := r.Run(ctx, req.Cluster)
	if output == "json" {
		if werr := writeStructured(s.Out, clusterRecordJSON(req.Cluster, rec, err), "json"); werr != nil {
			return werr
		}
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "canary ") {
			err = fmt.Errorf("--%w", err)
		}
		return err
	}
	if rec != nil {
		waves := fmt.Sprintf("%d waves", len(rec.Waves))
		if len(rec.Waves) == 1 {
			waves = "1 wave"
		}
		tell("", fmt.Sprintf("cluster %s: every group that was behind runs its target (%s); rerunning changes nothing until a newer release", rec.Cluster, waves))
	}
	return nil
}

// groupReporter prints a group's steps and warnings as lines naming it:
// the waves' groups run at once.
type groupReporter struct {
	group string
	tell  func(group, msg string)
}

func (g groupReporter) Report(p engine.Progress) {
	switch {
	case p.Kind == engine.ProgressStep && p.Step > 0:
		g.tell(g.group, fmt.Sprintf("[%d/9] %s: %s", p.Step, p.Title, p.Message))
	case p.Kind == engine.ProgressStep:
		g.tell(g.group, p.Title+": "+p.Message)
	case p.Kind == engine.ProgressInfo && p.Warning:
		g.tell(g.group, p.Text())
	}
}

// clusterRecordOut is `upgrade cluster -o json`: the record as the run left
// it (docs/output.md).
type clusterRecordOut struct {
	Cluster           string                           `json:"cluster"`
	Succeeded         bool                             `json:"succeeded"`
	UpToDate          bool                             `json:"upToDate,omitempty"` // nothing was behind
	Error             string                           `json:"error,omitempty"`
	KubernetesVersion string                           `json:"kubernetesVersion,omitempty"`
	Phase             string                           `json:"phase,omitempty"`
	Message           string                           `json:"message,omitempty"`
	Started           *time.Time                       `json:"started,omitempty"`
	Targets           map[string]clusterupgrade.Target `json:"targets"`
	Waves             []clusterupgrade.Wave            `json:"waves"`
	WavesDone         int                              `json:"wavesDone"`
	SoakSeconds       float64                          `json:"soakSeconds"`
}

func clusterRecordJSON(cluster string, rec *clusterupgrade.Record, err error) clusterRecordOut {
	out := clusterRecordOut{Cluster: cluster, Succeeded: err == nil, Targets: map[string]clusterupgrade.Target{}, Waves: []clusterupgrade.Wave{}}
	if err != nil {
		out.Error = err.Error()
	}
	if rec == nil {
		out.UpToDate = err == nil
		return out
	}
	started := rec.Started
	out.KubernetesVersion, out.Phase, out.Message, out.Started = rec.Minor, rec.Phase, rec.Message, &started
	out.Targets, out.Waves, out.WavesDone = rec.Targets, rec.Waves, rec.Done
	if d, err := time.ParseDuration(rec.Soak); err == nil {
		out.SoakSeconds = d.Seconds()
	}
	return out
}
