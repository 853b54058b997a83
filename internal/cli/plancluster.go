package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/clusterplan"
	"github.com/noderoll/noderoll/internal/engine"
)

// clusterFlags are upgrade nodegroup's flags that make sense for every
// group of a cluster: how to reach it, the strategy and its budgets. Not
// the group's name, a target of one group's own (a release, a template
// version, an AMI), nor what acts; blue-green's --soak would clash with
// the waves' --soak, so blue-green keeps its default there.
var clusterFlags = map[string]bool{"cluster": true, "kubernetes-version": true, "ami-family": true, "region": true, "profile": true, "role-arn": true,
	"external-id": true, "kubeconfig": true, "context": true, "strategy": true, "batch-size": true, "batch-soak": true, "max-surge": true,
	"max-unavailable": true, "post-cordon-wait": true, "eviction-timeout": true, "eviction-retry-delay": true, "skip-wait-for-delete-timeout": true,
	"node-ready-timeout": true, "cluster-autoscaler": true, "ignore-preflight": true}

func newPlanCluster(s Streams) *cobra.Command {
	var f *upgradeFlags
	up := newUpgradeNodegroupWith(s, func(x *upgradeFlags) { f = x })
	output := "text"
	req := clusterplan.Request{MaxConcurrent: 1, Soak: 30 * time.Minute}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Plan keeping every node group of a cluster current: who is behind, since when, in what order, how long",
		Long: `List every node group of a cluster (EKS managed node groups, and self-managed
Auto Scaling groups tagged for it), each with the AMI it runs, the newest
recommended release of its own family at the target Kubernetes minor (the
control plane's unless --kubernetes-version says), and since when it has been
behind (the newest release's publication). Then the order an upgrade of the
cluster would take: the --canary groups alone first, then the rest in waves of
at most --max-concurrent-groups, a --soak after each wave; and the predicted
duration of each group (as 'noderoll plan nodegroup' predicts it, from the
cluster's and the group's own history), of each wave (its slowest group) and
of the whole. It changes nothing.

A group whose upgrade would be blocked (a blocking preflight finding, a budget
that allows no disruption) is named, and left out of the total.`,
		Example: `  noderoll plan cluster --cluster=eksworkshop-eksctl
  noderoll plan cluster --cluster=prod --canary=canary-workers --max-concurrent-groups=2 --soak=30m -o json
  noderoll plan cluster --cluster=prod --kubernetes-version=1.37 --strategy=bluegreen`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case output != "text" && output != "json" && output != "yaml":
				return fmt.Errorf("--output %q: want text, json or yaml", output)
			case req.MaxConcurrent < 1:
				return fmt.Errorf("--max-concurrent-groups %d: want at least 1 group at once", req.MaxConcurrent)
			case req.Soak < 0:
				return fmt.Errorf("--soak %s: a duration cannot be negative; give 0 or a duration such as 30m", req.Soak)
			}
			if err := f.validateDurations(); err != nil {
				return err
			}
			req.Cluster, req.KubernetesVersion, req.Family = f.cluster, f.target.KubernetesVersion, f.target.Family
			return runPlanCluster(cmd, s, f, req, output)
		},
	}
	fl := clusterCommandFlags(cmd, up, f, &req, "plan cluster plans", nil)
	fl.StringVarP(&output, "output", "o", output, "text, json or yaml")
	_ = cmd.MarkFlagRequired("cluster")
	completeWith(cmd, "output", "text", "json", "yaml")
	return cmd
}

func runPlanCluster(cmd *cobra.Command, s Streams, f *upgradeFlags, req clusterplan.Request, output string) error {
	ctx := cmd.Context()
	at, err := connect(ctx, s, f, false)
	if err != nil {
		return err
	}
	opts := f.opts
	opts.StrategySet = f.strategySet()
	eng := at.engine(opts)
	plan, err := clusterplan.Make(ctx, at.cloud, func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) (*engine.Forecast, error) {
		return eng.Forecast(ctx, engine.Request{Group: ref, Target: target}, defaultAssumed())
	}, req)
	if err != nil {
		if strings.HasPrefix(err.Error(), "canary ") {
			err = fmt.Errorf("--%w", err)
		}
		return err
	}
	if output == "text" {
		printClusterPlan(s.Out, plan, time.Now())
		return nil
	}
	return writeStructured(s.Out, clusterPlanJSON(plan, time.Now()), output)
}

func printClusterPlan(w io.Writer, p *clusterplan.Plan, now time.Time) {
	fmt.Fprintln(w, "Plan: nothing was changed.")
	behind := 0
	for _, g := range p.Groups {
		if !g.UpToDate {
			behind++
		}
	}
	fmt.Fprintf(w, "Cluster %s (control plane %s): %d of %d node groups behind the newest recommended AMIs of Kubernetes %s.\n",
		p.Cluster, p.ControlPlane, behind, len(p.Groups), p.KubernetesVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tNODES\tRUNS\tNEWEST\tBEHIND SINCE\tWAVE\tPREDICTED")
	for _, g := range p.Groups {
		since, wave, took := "-", "-", "-"
		newest := imageName(g.Target)
		if g.UpToDate {
			newest = "(runs it)"
		} else {
			if !g.BehindSince.IsZero() {
				since = fmt.Sprintf("%s (%s ago)", g.BehindSince.UTC().Format("2006-01-02"), ago(now.Sub(g.BehindSince)))
			}
			wave = waveName(p, g.Wave)
			took = short(g.Predicted)
			if g.Blocked != "" {
				took = "never ends: " + g.Blocked
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.Nodes, imageName(g.Current), newest, since, wave, took)
	}
	_ = tw.Flush()
	if behind == 0 {
		fmt.Fprintln(w, "Every group is current: an upgrade of the cluster would do nothing.")
		return
	}
	var order []string
	for k, wv := range p.Waves {
		name := waveName(p, k)
		if !wv.Canary {
			name = "wave " + name
		}
		order = append(order, fmt.Sprintf("%s: %s (%s), then a %s soak", name, strings.Join(wv.Groups, ", "), short(wv.Predicted), short(p.Soak)))
	}
	fmt.Fprintf(w, "Order: %s\n", strings.Join(order, "; "))
	fmt.Fprintf(w, "Predicted for the whole: %s (%s upgrading, %s soaking)\n", short(p.Predicted), short(p.Predicted-time.Duration(len(p.Waves))*p.Soak), short(time.Duration(len(p.Waves))*p.Soak))
	if len(p.Blocked) > 0 {
		fmt.Fprintf(w, "Blocked, not in the total: %s (noderoll plan nodegroup --cluster=%s --name=<group> says why)\n", strings.Join(p.Blocked, ", "), p.Cluster)
	}
}

// waveName is how people number the waves: "canary", then 1, 2...
func waveName(p *clusterplan.Plan, k int) string {
	switch {
	case p.Waves[k].Canary:
		return "canary"
	case p.Waves[0].Canary:
		return fmt.Sprint(k)
	}
	return fmt.Sprint(k + 1)
}

// imageName is an AMI's name, or its ID when it has none.
func imageName(img cloud.Image) string {
	if img.Name != "" {
		return img.Name
	}
	return img.ID
}

// ago is a duration as people say how long ago: days, hours or minutes.
func ago(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dm", int(math.Max(d.Minutes(), 0)))
}

// clusterPlanOut is `plan cluster -o json|yaml`: durations in seconds
// (docs/output.md).
type clusterPlanOut struct {
	Cluster           string            `json:"cluster"`
	KubernetesVersion string            `json:"kubernetesVersion"`
	ControlPlane      string            `json:"controlPlaneVersion"`
	Groups            []clusterGroupOut `json:"groups"`
	Waves             []clusterWaveOut  `json:"waves"`
	SoakSeconds       float64           `json:"soakSeconds"`
	PredictedSeconds  float64           `json:"predictedSeconds"`
	Blocked           []string          `json:"blocked"`
}

type clusterGroupOut struct {
	Name             string     `json:"name"`
	Managed          bool       `json:"managed"`
	Nodes            int        `json:"nodes"`
	ImageID          string     `json:"imageId"`
	ImageName        string     `json:"imageName,omitempty"`
	TargetImageID    string     `json:"targetImageId"`
	TargetImageName  string     `json:"targetImageName,omitempty"`
	UpToDate         bool       `json:"upToDate"`
	BehindSince      *time.Time `json:"behindSince,omitempty"`
	BehindSeconds    float64    `json:"behindSeconds,omitempty"`
	Wave             *int       `json:"wave,omitempty"` // 0 is the canary when there is one
	Strategy         string     `json:"strategy"`
	PredictedSeconds float64    `json:"predictedSeconds,omitempty"`
	Blocked          string     `json:"blocked,omitempty"`
}

type clusterWaveOut struct {
	Canary           bool     `json:"canary,omitempty"`
	Groups           []string `json:"groups"`
	PredictedSeconds float64  `json:"predictedSeconds"`
}

func clusterPlanJSON(p *clusterplan.Plan, now time.Time) clusterPlanOut {
	secs := func(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
	out := clusterPlanOut{Cluster: p.Cluster, KubernetesVersion: p.KubernetesVersion, ControlPlane: p.ControlPlane, Groups: []clusterGroupOut{}, Waves: []clusterWaveOut{},
		SoakSeconds: secs(p.Soak), PredictedSeconds: secs(p.Predicted), Blocked: append([]string{}, p.Blocked...)}
	for _, g := range p.Groups {
		o := clusterGroupOut{Name: g.Name, Managed: g.Managed, Nodes: g.Nodes, ImageID: g.Current.ID, ImageName: g.Current.Name,
			TargetImageID: g.Target.ID, TargetImageName: g.Target.Name, UpToDate: g.UpToDate, Strategy: g.Strategy,
			PredictedSeconds: secs(g.Predicted), Blocked: g.Blocked}
		if !g.BehindSince.IsZero() {
			since := g.BehindSince.UTC()
			o.BehindSince, o.BehindSeconds = &since, secs(now.Sub(since).Round(time.Second))
		}
		if g.Wave >= 0 {
			w := g.Wave
			o.Wave = &w
		}
		out.Groups = append(out.Groups, o)
	}
	for _, w := range p.Waves {
		out.Waves = append(out.Waves, clusterWaveOut{Canary: w.Canary, Groups: w.Groups, PredictedSeconds: secs(w.Predicted)})
	}
	return out
}

// clusterCommandFlags gives a cluster command upgrade nodegroup's flags
// that fit every group (clusterFlags, and more), and the cluster's own:
// the canary, the waves' size and their soak. A --name is refused saying
// what the command does (what) and where a group's name goes.
func clusterCommandFlags(cmd, up *cobra.Command, f *upgradeFlags, req *clusterplan.Request, what string, more map[string]bool) *pflag.FlagSet {
	verb := strings.Fields(what)[0] // plan or upgrade
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "--name") {
			return fmt.Errorf("%w: %s every node group of the cluster; for one, noderoll %s nodegroup --name=GROUP", err, what, verb)
		}
		return err
	})
	fl := cmd.Flags()
	up.Flags().VisitAll(func(x *pflag.Flag) {
		if clusterFlags[x.Name] || more[x.Name] {
			fl.AddFlag(x)
		}
	})
	f.strategySet = func() bool { return fl.Changed("strategy") }
	f.changed = fl.Changed
	fl.Lookup("kubernetes-version").Usage = "the Kubernetes minor every group goes to, e.g. 1.37 (default: the control plane's)"
	// --soak is the waves' here; blue-green keeps its old nodes its default.
	st := fl.Lookup("strategy")
	st.Usage = strings.Replace(st.Usage, "kept for --soak", "kept 10m", 1)
	fl.StringSliceVar(&req.Canary, "canary", nil, "node groups upgraded first, alone, and soaked before any other (comma-separated)")
	fl.IntVar(&req.MaxConcurrent, "max-concurrent-groups", req.MaxConcurrent, "node groups upgraded at once in each wave after the canary")
	fl.DurationVar(&req.Soak, "soak", req.Soak, "wait after the canary and after each wave, watching the upgraded groups' health, before the next (0: none)")
	return fl
}
