package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/logging"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/disruption"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/predict"
	"github.com/noderoll/noderoll/internal/sandbox"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// RealWorld are the delays the benchmark scales down: an EC2 instance boots
// and its node registers in about 20s and is Ready 10s later
// (awslabs/node-latency-for-k8s reports 24-30s in all), a pod starts and
// stops in about 15s, an instance shuts down in 30s, and EKS waits 60s
// between cordon and terminate.
var RealWorld = struct{ Boot, Ready, PodStart, PodStop, Shutdown, PostCordon time.Duration }{
	20 * time.Second, 10 * time.Second, 15 * time.Second, 15 * time.Second, 30 * time.Second, 60 * time.Second,
}

// Options say what to measure.
type Options struct {
	Sizes      []int
	Strategies []string
	// ControllerGroups groups of ControllerNodes nodes are upgraded at
	// once by one controller in a row of their own (0: no such row).
	ControllerGroups, ControllerNodes int
	Scale                             float64 // real-world delays are divided by it
	PodsPerNode                       int
	// Mix is the sandbox's workloads and budgets: "teams" (the default)
	// or "seed" (the workshop's; with 3 nodes and 4 pods a node, the seed
	// scenario itself).
	Mix string
	// History upgrades each sandbox's group once to the previous AMI
	// release before the measured run, so that the plan stands on the
	// group's own history (its pods' stops, its terminations) as a user's
	// does, instead of being told the sandbox's delays.
	History bool
	// Repeat runs each row this many times, each on a fresh sandbox; the
	// row is then the run of median makespan, and its prediction is held
	// against that median (a run of a few seconds a node varies by 15%
	// from one to the next).
	Repeat      int
	UpgradeArgs []string  // more flags for every upgrade (all strategies)
	Dir         string    // sandboxes and logs go here, one folder per run
	Self        string    // the noderoll binary: runs the sandboxes and the upgrades
	Out         io.Writer // progress
}

// Row is one strategy on one group size.
type Row struct {
	Nodes    int           `json:"nodes"`
	Strategy string        `json:"strategy"`
	Makespan time.Duration `json:"makespan"`
	// Predicted is what `noderoll plan` said before the run, from the
	// same flags; PredictionError is (predicted - makespan) / makespan.
	Predicted       time.Duration `json:"predicted,omitempty"`
	PredictionError float64       `json:"predictionError,omitempty"`
	// PredictedOwnStart is the plan's prediction with the pod start the
	// cluster's pods show instead of the sandbox's.
	PredictedOwnStart time.Duration `json:"predictedWithObservedPodStart,omitempty"`
	// PlanFromHistory: the plan was told nothing, and read the delays off
	// the group's own history (--history).
	PlanFromHistory bool `json:"planFromHistory,omitempty"`
	// Makespans and Predictions are every run's, with --repeat; the row's
	// Makespan and Predicted are their medians.
	Makespans   []time.Duration `json:"makespans,omitempty"`
	Predictions []time.Duration `json:"predictions,omitempty"`
	// PredictedPhases and MeasuredPhases are the run's milestones, as the
	// plan's model saw them and as the run's timeline recorded them.
	PredictedPhases predict.Milestones `json:"predictedPhases"`
	MeasuredPhases  predict.Milestones `json:"measuredPhases"`
	Bound           Bound              `json:"bound"`
	Ratio           float64            `json:"ratioToBound"`
	Speedup         float64            `json:"speedupOverEKS,omitempty"`
	PeakInstances   int                `json:"peakInstances"`
	Breaches        []string           `json:"pdbBreaches"`
	Replaced        int                `json:"replaced"`
	APIRequests     int                `json:"apiRequests"`
	PerNode         float64            `json:"apiRequestsPerReplacedNode"`
	// AWSCalls are the upgrade's calls to the AWS APIs, from the endpoint's
	// log (throttled and retried ones included).
	AWSCalls   int     `json:"awsCalls"`
	AWSPerNode float64 `json:"awsCallsPerReplacedNode"`
	// PeakRSSMiB is the upgrading process's peak RSS: the high-water mark
	// of its own memory map (VmHWM in /proc, sampled every 250ms). The
	// kernel's resource usage of the child is not it: Go starts a child
	// sharing its parent's memory until exec (CLONE_VM), and exec records
	// that memory's peak as the child's, so a bench grown to 175 MiB gave
	// every upgrade it started a peak RSS of at least 175 MiB.
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	// PeakAnonMiB is the upgrading process's own memory at its peak (its
	// anonymous pages: heap, stacks), sampled from /proc every 250ms. Peak
	// RSS also counts the pages of the binary the kernel mapped in.
	PeakAnonMiB float64 `json:"peakAnonMiB"`
	// CPU is the CPU time, in seconds, each process used while the
	// upgrade ran: the sandbox's, the upgrade's and the bench's own. On a
	// small machine they share the cores, and this shows who took them.
	CPU map[string]float64 `json:"cpuSeconds,omitempty"`
	// Evictions is how the API server served the run's evictions: how
	// many, their mean time in it, and how often its retries of a
	// budget's status (after a collision) read the budget again.
	Evictions EvictionStats `json:"evictions"`
	// Moved are the pods an eviction had to move: every pod on the old
	// nodes but DaemonSets'.
	Moved int `json:"moved"`
	// Ceiling is the control plane's own limit, measured before the run;
	// CeilingRatio is the makespan over the larger of the bound and the
	// ceiling's term.
	Ceiling      *Ceiling   `json:"controlPlaneCeiling,omitempty"`
	CeilingRatio float64    `json:"ratioToBoundOrCeiling,omitempty"`
	Delays       Delays     `json:"delays"`
	Workloads    []Budgeted `json:"workloads"`
	InFlight     int        `json:"budgetInFlight"` // p of the bound: the default surge budget
	// Groups are the groups of the controller's row, each against its
	// own bound.
	Groups []GroupRow `json:"groups,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// scaled is a real-world delay scaled down, to the millisecond.
func (o Options) scaled(d time.Duration) time.Duration {
	return (time.Duration(float64(d) / o.Scale)).Round(time.Millisecond)
}

// Run measures every strategy on every size, printing progress and each
// row as it comes.
func Run(ctx context.Context, o Options) ([]Row, error) {
	var rows []Row
	for _, n := range o.Sizes {
		var eks time.Duration
		for _, strategy := range o.Strategies {
			row, err := o.repeated(ctx, n, strategy)
			if err != nil {
				row.Error = err.Error()
				fmt.Fprintf(o.Out, "   failed: %v\n", err)
			}
			if strategy == "eks" && row.Error == "" {
				eks = row.Makespan
			}
			if eks > 0 && row.Makespan > 0 {
				row.Speedup = float64(eks) / float64(row.Makespan)
			}
			rows = append(rows, row)
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
		}
	}
	if g, n := o.ControllerGroups, o.ControllerNodes; g > 0 && n > 0 {
		fmt.Fprintf(o.Out, "== one controller, %d groups of %d nodes at once\n", g, n)
		row, err := o.controllerRow(ctx, g, n)
		if err != nil {
			row.Error = err.Error()
			fmt.Fprintf(o.Out, "   failed: %v\n", err)
		}
		rows = append(rows, row)
	}
	return rows, ctx.Err()
}

// repeated runs one row Repeat times and keeps the run of median makespan,
// with every run's makespan and prediction beside it.
func (o Options) repeated(ctx context.Context, n int, strategy string) (Row, error) {
	times := max(o.Repeat, 1)
	var runs []Row
	for k := range times {
		name := fmt.Sprintf("%d-%s", n, strategy)
		fmt.Fprintf(o.Out, "== %d nodes, %s\n", n, strategy)
		if times > 1 {
			name += fmt.Sprintf("-%d", k+1)
			fmt.Fprintf(o.Out, "   run %d of %d\n", k+1, times)
		}
		row, err := o.one(ctx, n, strategy, name)
		if err != nil {
			return row, err
		}
		runs = append(runs, row)
	}
	return medianRow(runs), nil
}

// medianRow is the run of median makespan (the lower middle of an even
// count), with every run's makespan and prediction, and its prediction
// error taken from the medians of both.
func medianRow(runs []Row) Row {
	if len(runs) == 1 {
		return runs[0]
	}
	sorted := append([]Row(nil), runs...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Makespan < sorted[b].Makespan })
	row := sorted[(len(sorted)-1)/2]
	var preds []time.Duration
	row.Makespans, row.Predictions = nil, nil
	for _, r := range runs {
		row.Makespans = append(row.Makespans, r.Makespan)
		row.Predictions = append(row.Predictions, r.Predicted)
		if r.Predicted > 0 {
			preds = append(preds, r.Predicted)
		}
	}
	if len(preds) > 0 {
		slices.Sort(preds)
		row.Predicted = preds[(len(preds)-1)/2]
		row.PredictionError = float64(row.Predicted-row.Makespan) / float64(row.Makespan)
	}
	return row
}

func (o Options) one(ctx context.Context, n int, strategy, name string) (Row, error) {
	row := Row{Nodes: n, Strategy: strategy}
	dir := filepath.Join(o.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return row, err
	}
	wait := o.scaled(RealWorld.PostCordon)
	sb, err := o.upSandbox(ctx, dir, "bench-"+name, n, 1)
	if err != nil {
		return row, err
	}
	defer sb.down()
	st, kube := sb.st, sb.kube
	if o.History {
		if err := o.giveHistory(ctx, dir, sb.env, st, wait); err != nil {
			return row, err
		}
	}
	kubeconfig, err := ownIdentity(ctx, kube, st.Kubeconfig, dir)
	if err != nil {
		return row, fmt.Errorf("giving the upgrade its own identity (to count its requests): %w", err)
	}
	// Keys of its own, so that the endpoint's log tells the upgrade's AWS
	// calls from the bench's (the endpoint takes any key).
	env := append(slices.Clip(sb.env), "KUBECONFIG="+kubeconfig, "AWS_ACCESS_KEY_ID="+upgradeAccessKey)
	if row.Workloads, row.Moved, err = budgeted(ctx, kube, nil); err != nil {
		return row, err
	}
	// The ceiling first: its evictions are not the upgrade's, and neither
	// the samplers nor the counters are to see them.
	ce := o.measureCeiling(ctx, kube, probeConcurrency(row, defaultInFlight(n, 3)))
	args := o.upgradeArgs(st, strategy, wait)
	o.predictRow(ctx, dir, env, strategy, args, ce, &row)
	smp, err := startSampler(ctx, kube, sb.asg, filepath.Join(dir, "timeline.tsv"))
	if err != nil {
		return row, err
	}
	before, err := readCounters(ctx, kube)
	if err != nil {
		return row, err
	}
	fmt.Fprintf(o.Out, "   noderoll %s\n", strings.Join(args, " "))
	procs := st.Processes()
	procs["bench"] = os.Getpid()
	cpuBefore := snapshotCPU(procs)
	began := time.Now()
	var stdout bytes.Buffer
	var anon memPeak
	ps, runErr := o.run(ctx, filepath.Join(dir, "upgrade.log"), env, func(c *exec.Cmd) { c.Stdout = &stdout }, &anon, args...)
	row.Makespan = time.Since(began).Round(10 * time.Millisecond)
	row.CPU = snapshotCPU(procs).since(cpuBefore)
	row.PeakAnonMiB, row.PeakRSSMiB = anon.mib(), anon.hwmMiB()
	if ps != nil {
		row.CPU["noderoll upgrade"] = (ps.UserTime() + ps.SystemTime()).Seconds()
		if usage, ok := ps.SysUsage().(*syscall.Rusage); ok && row.PeakRSSMiB == 0 {
			row.PeakRSSMiB = float64(usage.Maxrss) / 1024 // no /proc: the kernel's usage, an upper bound
		}
	}
	podStop := row.sampled(smp)
	before.count(ctx, &row, sb, dir)
	var sum struct{ Replaced []string }
	_ = json.Unmarshal(stdout.Bytes(), &sum)
	row.Replaced = len(sum.Replaced)
	row.perNode()
	if runErr != nil {
		return row, fmt.Errorf("the upgrade failed (log in %s): %w", dir, runErr)
	}
	if err := row.bound(ctx, sb, began, podStop, wait, n); err != nil {
		return row, err
	}
	if row.Predicted > 0 {
		row.PredictionError = float64(row.Predicted-row.Makespan) / float64(row.Makespan)
		tl, err := engine.LoadTimeline(ctx, kube, cloud.NodeGroupRef{Cluster: st.Scenario.Cluster, Name: st.Scenario.Nodegroup})
		if err != nil {
			fmt.Fprintf(o.Out, "   could not read the run's timeline: %v\n", err)
		}
		row.MeasuredPhases = measuredPhases(tl, began, row.Makespan)
		fmt.Fprintf(o.Out, "   phases, predicted/measured seconds from the start: %s\n", phasesLine(row.PredictedPhases, row.MeasuredPhases))
	}
	o.ceiling(&row, ce)
	fmt.Fprintf(o.Out, "   %s in %s (bound %s, %.2fx); peak %d instances; %d budget breaches; %d API requests (%.0f a node); peak RSS %.0f MiB (own memory %.0f MiB)\n",
		strategy, row.Makespan, row.Bound.Makespan.Round(10*time.Millisecond), row.Ratio, row.PeakInstances, len(row.Breaches), row.APIRequests, row.PerNode, row.PeakRSSMiB, row.PeakAnonMiB)
	fmt.Fprintf(o.Out, "   CPU while it ran: %s; timeline of each budget in %s\n", cpuLine(row.CPU), filepath.Join(dir, "timeline.tsv"))
	return row, nil
}

// upgradeArgs is the upgrade a row measures: the strategy under the
// bench's post-cordon wait (eks's pick seeded, bluegreen's soak as long as
// the wait), plus the bench's --upgrade-flag.
func (o Options) upgradeArgs(st *sandbox.State, strategy string, wait time.Duration) []string {
	args := []string{"upgrade", "nodegroup", "--cluster", st.Scenario.Cluster, "--name", st.Scenario.Nodegroup, "--kubernetes-version", sandbox.ControlPlaneMinor,
		"--strategy", strategy, "--post-cordon-wait", wait.String(), "--eviction-retry-delay", "1s", "-o", "json"}
	switch strategy {
	case "eks":
		args = append(args, "--seed", "1")
	case "bluegreen":
		args = append(args, "--soak", wait.String())
	}
	return append(args, o.UpgradeArgs...)
}

// predictRow asks noderoll plan, with the upgrade's own flags, before the
// run. Told the sandbox's delays and the measured rate; its pod start
// too, since the sandbox's pods all started in one burst at seed time and
// their starts count that queue (3-6s for a 1s start). With --history it
// is told nothing, as a user's plan: everything is read off the cluster
// and the group's history.
func (o Options) predictRow(ctx context.Context, dir string, env []string, strategy string, args []string, ce *Ceiling, row *Row) {
	told := append(rateArgs(ce, 1), "--assume-pod-stop", o.scaled(RealWorld.PodStop).String(), "--assume-instance-shutdown", o.scaled(RealWorld.Shutdown).String())
	var predicted predict.Result
	var err error
	if o.History {
		predicted, err = o.predict(ctx, dir, env, strategy, args)
	} else {
		predicted, err = o.predict(ctx, dir, env, strategy, args, append(slices.Clip(told), "--assume-pod-start", o.scaled(RealWorld.PodStart).String())...)
	}
	if err != nil {
		fmt.Fprintf(o.Out, "   no prediction: %v\n", err)
		return
	}
	row.Predicted, row.PredictedPhases = predicted.Duration, predicted.Milestones
	if o.History {
		row.PlanFromHistory = true
		fmt.Fprintf(o.Out, "   predicted by noderoll plan from the group's history: %s\n", short(row.Predicted))
		return
	}
	own, _ := o.predict(ctx, dir, env, strategy, args, told...)
	row.PredictedOwnStart = own.Duration
	fmt.Fprintf(o.Out, "   predicted by noderoll plan: %s (with the pod start the cluster's pods show: %s)\n", short(row.Predicted), short(row.PredictedOwnStart))
}

// measureCeiling measures the control plane's own limit on the row's
// fresh sandbox, before the upgrade and with nothing else running: the
// plan is told the rate (a user's plan is told it by
// --assume-pods-per-second), and the row's ceiling term is made from it.
// Nil when it could not be measured (said).
func (o Options) measureCeiling(ctx context.Context, kube kubernetes.Interface, probe int) *Ceiling {
	ce, err := measureCeiling(ctx, kube, probe)
	if err != nil {
		fmt.Fprintf(o.Out, "   could not measure the control plane's ceiling: %v\n", err)
		return nil
	}
	return &ce
}

// probeConcurrency is how many evictions a budget's probe keeps in
// flight: inFlight drains' share of the row's largest budget, as the
// probe's rate was read against runs (see probeToUpgrade), 30 at 300
// nodes.
func probeConcurrency(row Row, inFlight int) int {
	if row.Moved == 0 {
		return 4
	}
	return max(4, int(math.Round(float64(inFlight)*float64(largestOnOld(row))/float64(row.Moved))))
}

// largestOnOld is how many pods the row's largest budget holds on the old
// nodes.
func largestOnOld(row Row) int {
	most := 0
	for _, w := range row.Workloads {
		most = max(most, w.OnOld)
	}
	return most
}

// rateArgs tells a plan the control plane's rates measured, where they
// are rates, each given a share of them.
func rateArgs(ce *Ceiling, share int) []string {
	var args []string
	if ce == nil {
		return nil
	}
	if ce.Meaningful() {
		args = append(args, "--assume-pods-per-second", fmt.Sprintf("%.1f", ce.PerSec/float64(max(share, 1))))
	}
	if ce.BudgetMeaningful() {
		args = append(args, "--assume-budget-evictions-per-second", fmt.Sprintf("%.2f", ce.BudgetUpgradePerSec/float64(max(share, 1))))
	}
	return args
}

// ceiling sets the row's ceiling, measured before it ran, and the ratio to
// the larger of it and the bound.
func (o Options) ceiling(row *Row, ce *Ceiling) {
	wait := row.Delays.Wait
	if ce != nil && ce.PerSec > 0 {
		ce := *ce
		// The wait runs alongside the moves (from each node's cordon).
		ce.Term = row.Delays.BootReady + max(time.Duration(float64(row.Moved)/ce.PerSec*float64(time.Second)), wait)
		row.Ceiling = &ce
		if ce.Meaningful() {
			row.CeilingRatio = float64(row.Makespan) / float64(max(row.Bound.Makespan, ce.Term))
			fmt.Fprintf(o.Out, "   control plane ceiling: %d pods of %s moved in %s, %.1f a second; %d pods to move take at least %s (%.2fx)\n",
				ce.Pods, ce.Workload, short(ce.Took), ce.PerSec, row.Moved, short(ce.Term), row.CeilingRatio)
		} else {
			fmt.Fprintf(o.Out, "   control plane ceiling: %d pods of %s back in %s, too few for a rate\n", ce.Pods, ce.Workload, short(ce.Took))
		}
		if ce.BudgetMeaningful() {
			// The budget over the most of the run's pods, at the rate.
			most := largestOnOld(*row)
			ce.BudgetTerm = row.Delays.BootReady + max(time.Duration(float64(most)/ce.BudgetUpgradePerSec*float64(time.Second)), wait)
			fmt.Fprintf(o.Out, "   one budget's evictions: %d under a budget of their own, %d at a time, %d others at a time loading the control plane, answered in %s, %.1f a second; an upgrade loads it less (upgrades' largest budgets have gone about %.2fx the probe's rate): at %.1f a second the largest budget's %d pods take %s, and the run took %.2fx that (what the plan is told, not a bound)\n",
				ce.BudgetPods, ce.BudgetConcurrency, probeSaturation, short(ce.BudgetTook), ce.BudgetPerSec, probeToUpgrade, ce.BudgetUpgradePerSec, most, short(ce.BudgetTerm), float64(row.Makespan)/float64(ce.BudgetTerm))
		}
	}
}

// sandboxed is a row's sandbox and its clients.
type sandboxed struct {
	st   *sandbox.State
	kube kubernetes.Interface
	asg  *autoscaling.Client
	ec2  *ec2.Client
	env  []string // the sandbox's environment for a noderoll process
	down func()
}

// upSandbox brings up a sandbox of groups groups of n nodes each in dir,
// under the options' delays, pods and mix (the teams' budgets by default).
func (o Options) upSandbox(ctx context.Context, dir, name string, n, groups int) (*sandboxed, error) {
	up := []string{"sandbox", "up", "--dir", dir, "--name", name,
		"--nodes", strconv.Itoa(n), "--groups", strconv.Itoa(groups), "--azs", "3", "--pods-per-node", strconv.Itoa(o.PodsPerNode), "--mix", cmp.Or(o.Mix, "teams"),
		"--boot-delay", o.scaled(RealWorld.Boot).String(), "--node-ready-delay", o.scaled(RealWorld.Ready).String(),
		"--pod-start-delay", o.scaled(RealWorld.PodStart).String(), "--pod-stop-delay", o.scaled(RealWorld.PodStop).String(),
		"--shutdown-delay", o.scaled(RealWorld.Shutdown).String()}
	fmt.Fprintf(o.Out, "   sandbox up: %d group(s) of %d nodes, %d pods a node (budgets: %s)\n", groups, n, o.PodsPerNode, cmp.Or(o.Mix, "teams"))
	down := func() {
		_, _ = o.run(context.WithoutCancel(ctx), filepath.Join(dir, "sandbox-down.log"), nil, nil, nil, "sandbox", "down", "--dir", dir)
	}
	if _, err := o.run(ctx, filepath.Join(dir, "sandbox-up.log"), nil, nil, nil, up...); err != nil {
		down() // what came up before the failure
		return nil, fmt.Errorf("sandbox up (log in %s): %w", dir, err)
	}
	sb := &sandboxed{}
	var err error
	if sb.st, err = sandbox.Load(dir); err == nil {
		err = sb.connect(ctx)
	}
	if err != nil {
		down()
		return nil, err
	}
	sb.down = down
	return sb, nil
}

// connect makes the clients of a loaded sandbox.
func (sb *sandboxed) connect(ctx context.Context) error {
	st := sb.st
	kube, err := st.KubeClient()
	if err != nil {
		return err
	}
	env := os.Environ()
	for _, kv := range st.Env() {
		env = append(env, kv[0]+"="+kv[1])
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(st.Region), config.WithBaseEndpoint(st.AWSEndpoint), config.WithLogger(logging.Nop{}),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: sandbox.AccessKeyID, SecretAccessKey: sandbox.SecretAccessKey}, nil
		})))
	if err != nil {
		return err
	}
	sb.kube, sb.env, sb.asg, sb.ec2 = kube, env, autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
	return nil
}

// giveHistory upgrades the sandbox's group to the previous AMI release of
// the control plane's minor: what the measured run's plan reads the
// group's delays from.
func (o Options) giveHistory(ctx context.Context, dir string, env []string, st *sandbox.State, wait time.Duration) error {
	releases := awssim.Releases(sandbox.ControlPlaneMinor)
	previous := releases[len(releases)-2]
	fmt.Fprintf(o.Out, "   history: upgrading the group to release %s first\n", previous)
	_, err := o.run(ctx, filepath.Join(dir, "history.log"), env, nil, nil, "upgrade", "nodegroup", "--cluster", st.Scenario.Cluster, "--name", st.Scenario.Nodegroup,
		"--release-version", previous, "--post-cordon-wait", wait.String(), "--eviction-retry-delay", "1s")
	if err != nil {
		return fmt.Errorf("the history's upgrade to %s (see %s): %w", previous, filepath.Join(dir, "history.log"), err)
	}
	return nil
}

// predict runs `noderoll plan nodegroup` with an upgrade's flags and more,
// and returns its prediction for the strategy, rounded to 10ms.
func (o Options) predict(ctx context.Context, dir string, env []string, strategy string, upgradeArgs []string, more ...string) (predict.Result, error) {
	args := append(append([]string{"plan"}, upgradeArgs[1:]...), more...)
	var out bytes.Buffer
	if _, err := o.run(ctx, filepath.Join(dir, "plan.log"), env, func(c *exec.Cmd) { c.Stdout = &out }, nil, args...); err != nil {
		return predict.Result{}, err
	}
	// Kept beside the row's logs: the delays and rates the plan stood on.
	name := filepath.Join(dir, "plan.json")
	for k := 2; fileExists(name); k++ {
		name = filepath.Join(dir, fmt.Sprintf("plan-%d.json", k))
	}
	_ = os.WriteFile(name, out.Bytes(), 0o644)
	var plan engine.ForecastJSON
	if err := json.Unmarshal(out.Bytes(), &plan); err != nil {
		return predict.Result{}, fmt.Errorf("reading the plan: %w", err)
	}
	for _, pj := range plan.Predictions {
		if p := pj.Result(); p.Strategy == strategy && p.Blocked == "" {
			p.Duration = p.Duration.Round(10 * time.Millisecond)
			return p, nil
		}
	}
	return predict.Result{}, fmt.Errorf("the plan predicts no end for %s (see %s)", strategy, filepath.Join(dir, "plan.log"))
}

// defaultInFlight is the surge strategy's default budget: 25% of the group
// rounded up, at least one per AZ, at most the group.
func defaultInFlight(n, azs int) int {
	return min(max((25*n+99)/100, azs), n)
}

// run runs the noderoll binary with args, its output (stderr, and stdout
// unless set) to log; a line of progress is printed every 30s. It returns
// the child's state, whose resource usage holds its peak RSS.
func (o Options) run(ctx context.Context, log string, env []string, set func(*exec.Cmd), anon *memPeak, args ...string) (*os.ProcessState, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := exec.CommandContext(ctx, o.Self, args...)
	c.Env = env
	c.Stdout, c.Stderr = f, f
	if set != nil {
		set(c)
	}
	c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
	c.WaitDelay = 30 * time.Second
	if err := c.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	sample := time.NewTicker(250 * time.Millisecond)
	defer sample.Stop()
	if anon == nil {
		sample.Stop()
	} else {
		anon.sample(c.Process.Pid)
	}
	began := time.Now()
	for {
		select {
		case <-sample.C:
			anon.sample(c.Process.Pid)
		case err := <-done:
			if err != nil {
				return c.ProcessState, fmt.Errorf("%s: %w: %s", args[0]+" "+args[1], err, lastLine(log))
			}
			return c.ProcessState, nil
		case <-tick.C:
			fmt.Fprintf(o.Out, "   ... %s: %s\n", time.Since(began).Round(time.Second), lastLine(log))
		}
	}
}

func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

const identity = "noderoll-bench"

// upgradeAccessKey signs the upgrade's AWS calls.
const upgradeAccessKey = "AKIDNODEROLLBENCHUPGRADE"

// ownIdentity gives the upgrade a ServiceAccount of its own, bound to
// cluster-admin, and a FlowSchema that matches only it: the API server's
// own per-flow-schema request counter then counts its requests and nothing
// else's. It returns a kubeconfig with the account's token.
func ownIdentity(ctx context.Context, kube kubernetes.Interface, adminKubeconfig, dir string) (string, error) {
	path := filepath.Join(dir, "upgrade.kubeconfig")
	return path, sandbox.Identity{Name: identity, PriorityLevel: "workload-high"}.Kubeconfig(ctx, kube, adminKubeconfig, path)
}

// requestsOf reads the requests the API server dispatched for the
// upgrade's flow schema, from its own metrics.
func requestsOf(ctx context.Context, kube kubernetes.Interface) (int, error) {
	return sandbox.Identity{Name: identity}.Count(ctx, kube, "apiserver_flowcontrol_dispatched_requests_total")
}

// budgeted lists the workloads behind budgets as the upgrade starts: every
// node is old then, so all their pods count (those on nodes on says yes
// to; nil: every node). moved counts every pod a drain evicts, budgeted or
// not: all but DaemonSets'.
func budgeted(ctx context.Context, kube kubernetes.Interface, on func(node string) bool) (out []Budgeted, moved int, err error) {
	pdbs, err := kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	counted := func(p *corev1.Pod) bool { return p.Spec.NodeName != "" && (on == nil || on(p.Spec.NodeName)) }
	for k := range pods.Items {
		if p := &pods.Items[k]; counted(p) && disruption.Evicts(p) {
			moved++
		}
	}
	for _, b := range pdbs.Items {
		w := Budgeted{Name: b.Namespace + "/" + b.Name, Allowed: int(b.Status.DisruptionsAllowed)}
		for _, p := range pods.Items {
			if disruption.Selects(&b, &p) && counted(&p) && disruption.Evicts(&p) {
				w.OnOld++
				w.Ordered = w.Ordered || disruption.StatefulSetPod(&p)
			}
		}
		out = append(out, w)
	}
	return out, moved, nil
}

// measure reads the delays of the run from what it left: B+R from the
// launch time of each instance launched during the run to its node's Ready
// transition, S from each new pod's scheduling to its Ready transition.
func measure(ctx context.Context, kube kubernetes.Interface, ec2c *ec2.Client, since time.Time) (Delays, error) {
	var d Delays
	launched := map[string]time.Time{}
	out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		return d, err
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if i.LaunchTime != nil && i.LaunchTime.After(since) {
				launched[aws.ToString(i.InstanceId)] = *i.LaunchTime
			}
		}
	}
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return d, err
	}
	var br, ps, rp []time.Duration
	for _, n := range nodes.Items {
		id := n.Spec.ProviderID[strings.LastIndex(n.Spec.ProviderID, "/")+1:]
		t, ok := launched[id]
		if !ok {
			continue
		}
		if at := conditions.NodeReadySince(&n); !at.IsZero() {
			br = append(br, bootToReady(t, at))
		}
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return d, err
	}
	for _, p := range pods.Items {
		if p.CreationTimestamp.Time.Before(since) || disruption.DaemonSetPod(&p) {
			continue
		}
		scheduled, ready := conditions.PodTrueSince(&p, corev1.PodScheduled), conditions.PodTrueSince(&p, corev1.PodReady)
		if !scheduled.IsZero() && !ready.IsZero() {
			ps = append(ps, ready.Sub(scheduled))
			rp = append(rp, ready.Sub(p.CreationTimestamp.Time))
		}
	}
	// S is a pod's start when the control plane keeps up: the fastest
	// tenth of the run's. Its median also counts the queues of a control
	// plane saturated by the run itself (29 s against 4 s for blue-green
	// at 300 nodes), which would put the bound above what was done; that
	// limit is the ceiling's, measured apart.
	d.BootReady, d.PodStart, d.PodStartMedian, d.Replace = median(br), percentile(ps, 10), median(ps), median(rp)
	return d, nil
}

// bootToReady is an instance's launch until its node's Ready, both to the
// second as the Ready condition is dated: a launch time to the millisecond
// against a Ready time cut to the second read B+R half a second short on
// average.
func bootToReady(launched, ready time.Time) time.Duration {
	return ready.Truncate(time.Second).Sub(launched.Truncate(time.Second))
}

// memPeak keeps the highest RssAnon and VmHWM (peak RSS) a process showed
// in /proc.
type memPeak struct{ kB, hwmKB int64 }

func (m *memPeak) sample(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return // gone, or not Linux
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			if kB, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
				m.kB = max(m.kB, kB)
			}
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if kB, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
				m.hwmKB = max(m.hwmKB, kB)
			}
		}
	}
}

func (m *memPeak) mib() float64 { return float64(m.kB) / 1024 }

func (m *memPeak) hwmMiB() float64 { return float64(m.hwmKB) / 1024 }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
