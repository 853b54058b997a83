package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/noderoll/noderoll/internal/bench"
)

func newBenchCmd(s Streams) *cobra.Command {
	o := bench.Options{Scale: 15, PodsPerNode: 10}
	var sizes []int
	var jsonPath, report, controllerRow string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the strategies side by side on sandbox groups, against the lower bound",
		Long: `Measure the upgrade strategies side by side. For each group size and each
strategy, a fresh sandbox is brought up (3 AZs, --pods-per-node pods a node in
Deployments and a StatefulSet behind budgets as teams set them: maxUnavailable
1, 10% and 25%, minAvailable 50%, plus DaemonSets), upgraded with
'noderoll upgrade nodegroup --strategy S' under the same delays and the same
post-cordon wait (real-world delays divided by --scale), and taken down.

Printed per run: makespan; the lower bound computed from the delays measured
in that run (docs/performance.md derives it) and the ratio to it; beside it,
the control plane's ceiling (measured on each row's sandbox before its
upgrade: every pod of the unbudgeted Deployment evicted, 16 at a time, timed
back Ready) as the least time the run's pods take to move at that rate, and
the ratio to the larger of the two; one budget's eviction rate (some of
those pods put under a budget of their own and evicted as many at a time as
the run keeps under its largest budget, the others evicted meanwhile, 16 at
a time, to keep the control plane as busy as it gets) and the rate an
upgrade's lighter load has let its largest budget go, 1.35 times that, as the
time the largest budget's pods take at it (not a bound), and the run's ratio
to it; the plan's prediction, told both
rates (--assume-pods-per-second, --assume-budget-evictions-per-second; the
controller's groups each a share); the speedup over eks; peak instances in
service and PodDisruptionBudget breaches, both seen by samplers outside the
engine; Kubernetes API requests per replaced node, from
the API server's own metrics (the upgrade runs as a ServiceAccount with a
FlowSchema of its own); the upgrading process's peak RSS. The same table is
written as JSON.

Then one more row (--controller-row, 3 groups of 100 nodes by default): a
sandbox cluster with several groups whose budgets' pods span them, upgraded
at once by one 'noderoll controller' process (acting as a ServiceAccount
bound to the Helm chart's roles) through one NodeGroupUpgrade per group.
Its makespan runs from declaring the upgrades until the last is Complete,
against the groups' joint bound (their waves side by side, the shared
budgets spent by all); each group's own time, from its resource's status,
against that group's bound alone; and the controller's peak RSS and its
API requests per replaced node.

--report prints the tables of such a JSON again, without
running anything.`,
		Example: `  noderoll bench --sizes 3,30 --dir /tmp/bench
  noderoll bench --sizes 300 --strategies surge,bluegreen --controller-row 0
  noderoll bench --sizes 0 --controller-row 3x100      # the controller's row alone
  noderoll bench --sizes 3 --mix seed --pods-per-node 4 --controller-row 0 --history   # a user's plan, from the group's history
  noderoll bench --report /tmp/bench/bench.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if report != "" {
				return reprint(s, report)
			}
			if err := benchOptions(&o, s, sizes, controllerRow); err != nil {
				return err
			}
			if jsonPath == "" {
				jsonPath = filepath.Join(o.Dir, "bench.json")
			}
			return runBench(cmd.Context(), s, o, jsonPath)
		},
	}
	fl := cmd.Flags()
	fl.IntSliceVar(&sizes, "sizes", []int{3, 30, 300}, "group sizes (nodes) to measure; 0 for none (the controller's row alone)")
	fl.StringSliceVar(&o.Strategies, "strategies", []string{"eks", "surge", "bluegreen"}, "strategies to measure, eks first (the others' speedup is over it)")
	fl.Float64Var(&o.Scale, "scale", o.Scale, "divide the real-world delays by this (boot 20s, node ready 10s, pod start and stop 15s, shutdown 30s, EKS's post-cordon wait 60s)")
	fl.IntVar(&o.PodsPerNode, "pods-per-node", o.PodsPerNode, "application pods per node")
	fl.StringVar(&o.Mix, "mix", "teams", "workloads and their budgets: teams (maxUnavailable 1, 10%, 25%, minAvailable 50%) or seed (the workshop's, each allowing one pod down; --sizes 3 --pods-per-node 4 is the seed scenario)")
	fl.BoolVar(&o.History, "history", false, "upgrade each sandbox's group to the previous AMI release first, and have the plan read its delays from that history as a user's does (instead of telling it the sandbox's)")
	fl.IntVar(&o.Repeat, "repeat", 1, "run each row this many times, each on a fresh sandbox; the row shows the median makespan and the spread, and holds the median prediction against the median makespan")
	fl.StringArrayVar(&o.UpgradeArgs, "upgrade-flag", nil, "a flag for every upgrade the bench runs, e.g. --upgrade-flag=--max-surge=50% (repeat for more)")
	fl.StringVar(&o.Dir, "dir", "", "folder for the sandboxes and logs (default: a new temporary folder)")
	fl.StringVar(&jsonPath, "json", "", "write the table as JSON here (default: bench.json in --dir)")
	fl.StringVar(&controllerRow, "controller-row", "3x100", "GROUPSxNODES: one more row, one 'noderoll controller' upgrading GROUPS groups of NODES nodes at once through NodeGroupUpgrades (surge), each group against its own bound; 0 for none")
	fl.StringVar(&report, "report", "", "print the tables of this JSON (written by an earlier run) instead of running")
	return cmd
}

// parseControllerRow reads --controller-row: "GxN", or "0" for none.
func parseControllerRow(v string) (groups, nodes int, err error) {
	if v == "0" || v == "" {
		return 0, 0, nil
	}
	g, n, ok := strings.Cut(v, "x")
	if ok {
		groups, err = strconv.Atoi(g)
		if err == nil {
			nodes, err = strconv.Atoi(n)
		}
	}
	if !ok || err != nil || groups < 1 || groups > 10 || nodes < 1 || nodes > 1000 {
		return 0, 0, fmt.Errorf("--controller-row %q: want GROUPSxNODES, 1 to 10 groups of 1 to 1000 nodes (e.g. 3x100), or 0 for no controller row", v)
	}
	return groups, nodes, nil
}

// benchJSON is what a run writes and --report reads.
type benchJSON struct {
	Scale  float64      `json:"scale"`
	Binary bench.Binary `json:"binary"`
	Rows   []bench.Row  `json:"rows"`
}

func reprint(s Streams, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	var run benchJSON
	if err := json.Unmarshal(b, &run); err != nil || len(run.Rows) == 0 {
		return fmt.Errorf("--report %s: not a bench run's JSON (%v); write one with noderoll bench --json FILE", path, err)
	}
	fmt.Fprintf(s.Out, "Binary: %s.\n\n", run.Binary)
	if o := run.Scale; o > 0 {
		fmt.Fprintf(s.Out, "Real-world delays divided by %g: boot %s, node ready %s, pod start %s, pod stop %s, post-cordon wait %s.\n\n",
			o, scaled(bench.RealWorld.Boot, o), scaled(bench.RealWorld.Ready, o), scaled(bench.RealWorld.PodStart, o),
			scaled(bench.RealWorld.PodStop, o), scaled(bench.RealWorld.PostCordon, o))
	}
	bench.Markdown(s.Out, run.Rows)
	fmt.Fprintln(s.Out)
	bench.Details(s.Out, run.Rows)
	return nil
}

func scaled(d time.Duration, by float64) string {
	return time.Duration(float64(d) / by).Round(time.Millisecond).String()
}

// benchOptions checks the bench's flags and completes its options: the
// rows, the binary that runs the sandboxes and upgrades, the folder.
func benchOptions(o *bench.Options, s Streams, sizes []int, controllerRow string) error {
	var err error
	if len(sizes) == 1 && sizes[0] == 0 {
		sizes = nil // the controller's row alone
	}
	for _, n := range sizes {
		if n < 1 || n > 2000 {
			return fmt.Errorf("--sizes: %d nodes; want 1 to 2000 (or 0 alone: no rows but the controller's)", n)
		}
	}
	for _, st := range o.Strategies {
		if st != "eks" && st != "surge" && st != "bluegreen" {
			return fmt.Errorf("--strategies: %q; want eks, surge and/or bluegreen", st)
		}
	}
	if o.Mix != "teams" && o.Mix != "seed" {
		return fmt.Errorf("--mix %q: want teams or seed", o.Mix)
	}
	if o.Repeat < 1 || o.Repeat > 9 {
		return fmt.Errorf("--repeat %d: want 1 to 9 runs a row", o.Repeat)
	}
	if o.Scale < 1 || o.Scale > 120 {
		return fmt.Errorf("--scale %g: want 1 (real time) to 120", o.Scale)
	}
	o.Sizes = sizes
	if o.ControllerGroups, o.ControllerNodes, err = parseControllerRow(controllerRow); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Self, o.Out = self, s.Err
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "noderoll-bench-"); err != nil {
			return err
		}
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return err
	}
	return nil
}

// runBench runs the rows and prints their tables, writing them as JSON too.
func runBench(ctx context.Context, s Streams, o bench.Options, jsonPath string) error {
	fmt.Fprintf(s.Err, "noderoll bench: sizes %v, strategies %s, delays scaled down %gx (post-cordon wait %s), sandboxes and logs in %s\n",
		o.Sizes, strings.Join(o.Strategies, ","), o.Scale, time.Duration(float64(bench.RealWorld.PostCordon)/o.Scale).Round(time.Millisecond), o.Dir)
	bin := bench.DescribeBinary(o.Self)
	fmt.Fprintf(s.Err, "binary measured: %s\n", bin)
	rows, runErr := bench.Run(ctx, o)
	fmt.Fprintf(s.Out, "\nBinary: %s.\n", bin)
	fmt.Fprintf(s.Out, "\nReal-world delays divided by %g: boot %s, node ready %s, pod start %s, pod stop %s, post-cordon wait %s.\n\n",
		o.Scale, scaled(bench.RealWorld.Boot, o.Scale), scaled(bench.RealWorld.Ready, o.Scale), scaled(bench.RealWorld.PodStart, o.Scale),
		scaled(bench.RealWorld.PodStop, o.Scale), scaled(bench.RealWorld.PostCordon, o.Scale))
	bench.Markdown(s.Out, rows)
	fmt.Fprintln(s.Out)
	bench.Details(s.Out, rows)
	b, err := json.MarshalIndent(benchJSON{o.Scale, bin, rows}, "", "  ")
	if err == nil {
		err = os.WriteFile(jsonPath, b, 0o644)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "\nJSON: %s\n", jsonPath)
	return runErr
}
