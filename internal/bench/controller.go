package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/sandbox"
)

// GroupRow is one group of the controller's row: its own upgrade's time
// (the resource's start to completion) against the bound of that group
// upgraded alone.
type GroupRow struct {
	Name     string        `json:"name"`
	Nodes    int           `json:"nodes"`
	Makespan time.Duration `json:"makespan"`
	Bound    Bound         `json:"bound"`
	Ratio    float64       `json:"ratioToBound"`
	Replaced int           `json:"replaced"`
	Phase    string        `json:"phase"`
}

// controllerStrategy names the controller's row in the tables.
func controllerStrategy(groups, nodes int) string {
	return fmt.Sprintf("surge, controller, %dx%d", groups, nodes)
}

// controllerRow measures one controller process upgrading groups groups of
// n nodes of one cluster at once, each declared as a NodeGroupUpgrade of
// the surge strategy. The controller acts as a ServiceAccount bound to the
// chart's roles, with a FlowSchema of its own that counts its requests.
// The row's bound is the groups' joint one: their waves run side by side,
// and the budgets, whose pods span the groups, are spent by all of them.
// Each group's own bound (that group alone, its pods only) is in Groups.
func (o Options) controllerRow(ctx context.Context, groups, n int) (Row, error) {
	row := Row{Nodes: groups * n, Strategy: controllerStrategy(groups, n)}
	dir := filepath.Join(o.Dir, fmt.Sprintf("controller-%dx%d", groups, n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return row, err
	}
	wait := o.scaled(RealWorld.PostCordon)
	sb, err := o.upSandbox(ctx, dir, fmt.Sprintf("bench-controller-%dx%d", groups, n), n, groups)
	if err != nil {
		return row, err
	}
	defer sb.down()
	st, kube := sb.st, sb.kube
	if _, err := sandbox.InstallChart(ctx, st, kube); err != nil {
		return row, err
	}
	kubeconfig := filepath.Join(dir, "controller.kubeconfig")
	if err := (sandbox.Identity{Name: identity, PriorityLevel: "workload-high", ClusterRole: chartRoles, Role: chartRoles}).
		Kubeconfig(ctx, kube, st.Kubeconfig, kubeconfig); err != nil {
		return row, fmt.Errorf("giving the controller its own identity (to count its requests): %w", err)
	}
	c, err := resourceClient(st)
	if err != nil {
		return row, err
	}
	names := st.Scenario.GroupNames()
	if row.Workloads, row.Moved, err = budgeted(ctx, kube, nil); err != nil {
		return row, err
	}
	own, err := budgetedByGroup(ctx, kube, names)
	if err != nil {
		return row, err
	}
	ce := o.measureCeiling(ctx, kube, probeConcurrency(row, groups*defaultInFlight(n, 3)))
	o.predictGroups(ctx, dir, sb, names, ce, &row)
	smp, err := startSampler(ctx, sb.kube, sb.asg, filepath.Join(dir, "timeline.tsv"))
	if err != nil {
		return row, err
	}
	before, err := readCounters(ctx, kube)
	if err != nil {
		return row, err
	}
	procs := st.Processes()
	procs["bench"] = os.Getpid()
	cpuBefore := snapshotCPU(procs)
	env := append(slices.Clip(sb.env), "KUBECONFIG="+kubeconfig, "AWS_ACCESS_KEY_ID="+upgradeAccessKey, "POD_NAME=noderoll-bench-controller")
	ctl, err := o.startController(dir, env, groups, wait)
	if err != nil {
		return row, err
	}
	defer ctl.stop()
	procs["noderoll controller"] = ctl.pid()

	began := time.Now()
	if err := declareUpgrades(ctx, c, st, names, wait); err != nil {
		return row, err
	}
	var mem memPeak
	list, runErr := o.awaitUpgrades(ctx, c, groups, ctl.pid(), &mem, ctl.exited)
	row.Makespan = time.Since(began).Round(10 * time.Millisecond)
	// Read while the controller still runs: an exited process has no
	// /proc entry, and its CPU read 0.
	row.CPU = snapshotCPU(procs).since(cpuBefore)
	ctl.stop()
	row.PeakRSSMiB, row.PeakAnonMiB = mem.hwmMiB(), mem.mib()
	podStop := row.sampled(smp)
	before.count(ctx, &row, sb, dir)
	for _, u := range list {
		row.Replaced += int(u.Status.Replaced)
	}
	row.perNode()
	if runErr != nil {
		return row, fmt.Errorf("%w (controller log in %s)", runErr, dir)
	}
	if err := row.bound(ctx, sb, began, podStop, wait, n); err != nil {
		return row, err
	}
	row.Groups = groupRows(list, own, n, row.InFlight, row.Delays)
	o.ceiling(&row, ce)
	if row.Predicted > 0 {
		row.PredictionError = float64(row.Predicted-row.Makespan) / float64(row.Makespan)
	}
	fmt.Fprintf(o.Out, "   %d groups in %s (joint bound %s, %.2fx); peak %d instances; %d budget breaches; %d API requests (%.0f a node); controller's peak RSS %.0f MiB (own memory %.0f MiB)\n",
		groups, row.Makespan, short(row.Bound.Makespan), row.Ratio, row.PeakInstances, len(row.Breaches), row.APIRequests, row.PerNode, row.PeakRSSMiB, row.PeakAnonMiB)
	for _, g := range row.Groups {
		fmt.Fprintf(o.Out, "   %s: %s, %d replaced in %s (its bound alone %s, %.2fx)\n", g.Name, g.Phase, g.Replaced, short(g.Makespan), short(g.Bound.Makespan), g.Ratio)
	}
	fmt.Fprintf(o.Out, "   CPU while it ran: %s\n", cpuLine(row.CPU))
	return row, nil
}

// budgetedByGroup is each group's own share of the budgeted workloads:
// the pods on its nodes.
func budgetedByGroup(ctx context.Context, kube kubernetes.Interface, names []string) (map[string][]Budgeted, error) {
	groupOf, err := nodeGroups(ctx, kube)
	if err != nil {
		return nil, err
	}
	own := map[string][]Budgeted{}
	for _, g := range names {
		if own[g], _, err = budgeted(ctx, kube, func(node string) bool { return groupOf[node] == g }); err != nil {
			return nil, err
		}
	}
	return own, nil
}

// controllerProc is the row's controller process, its log in dir.
type controllerProc struct {
	cmd     *exec.Cmd
	log     *os.File
	exited  chan error
	stopped bool
}

// startController starts the controller as the chart would run it, with
// as many upgrades at once as there are groups.
func (o Options) startController(dir string, env []string, groups int, wait time.Duration) (*controllerProc, error) {
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		return nil, err
	}
	bin, binArgs := controllerBinary(o.Self)
	cmd := exec.Command(bin, append(binArgs, "--metrics-bind-address=0", "--health-probe-bind-address=0", "--max-concurrent-upgrades", fmt.Sprint(groups))...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	fmt.Fprintf(o.Out, "   %s; %d NodeGroupUpgrades (surge to Kubernetes %s, post-cordon wait %s)\n", strings.Join(append([]string{bin}, binArgs...), " "), groups, sandbox.ControlPlaneMinor, wait)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting the controller: %w", err)
	}
	p := &controllerProc{cmd: cmd, log: logf, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	return p, nil
}

func (p *controllerProc) pid() int { return p.cmd.Process.Pid }

// stop interrupts the controller, as Kubernetes would, and kills it if it
// has not exited within 30s; once.
func (p *controllerProc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = p.log.Close()
}

// declareUpgrades creates a NodeGroupUpgrade (surge, the bench's wait)
// for each group.
func declareUpgrades(ctx context.Context, c client.Client, st *sandbox.State, names []string, wait time.Duration) error {
	for _, g := range names {
		u := &v1alpha1.NodeGroupUpgrade{
			ObjectMeta: metav1.ObjectMeta{Name: "bench-" + g},
			Spec: v1alpha1.NodeGroupUpgradeSpec{
				Cluster: st.Scenario.Cluster, NodeGroup: g,
				Target:          v1alpha1.Target{KubernetesVersion: sandbox.ControlPlaneMinor},
				UpgradeSettings: v1alpha1.UpgradeSettings{Strategy: v1alpha1.Strategy{Type: "Surge"}, PostCordonWait: &metav1.Duration{Duration: wait}},
			},
		}
		if err := c.Create(ctx, u); err != nil {
			return fmt.Errorf("declaring the upgrade of %s: %w", g, err)
		}
	}
	return nil
}

// predictGroups asks noderoll plan for each group's upgrade, as the
// controller will run it (surge, the same wait), told the sandbox's delays
// and a share of the control plane's rate: the groups upgrade at once and
// share it. The row's prediction is the slowest group's.
func (o Options) predictGroups(ctx context.Context, dir string, sb *sandboxed, names []string, ce *Ceiling, row *Row) {
	env := append(slices.Clip(sb.env), "KUBECONFIG="+sb.st.Kubeconfig) // never into sb.env's array, which the row appends to too
	for _, g := range names {
		args := []string{"upgrade", "nodegroup", "--cluster", sb.st.Scenario.Cluster, "--name", g, "--kubernetes-version", sandbox.ControlPlaneMinor,
			"--strategy", "surge", "--post-cordon-wait", o.scaled(RealWorld.PostCordon).String(), "--eviction-retry-delay", "1s", "-o", "json"}
		p, err := o.predict(ctx, dir, env, "surge", args, append(rateArgs(ce, len(names)), "--assume-pod-stop", o.scaled(RealWorld.PodStop).String(),
			"--assume-instance-shutdown", o.scaled(RealWorld.Shutdown).String(), "--assume-pod-start", o.scaled(RealWorld.PodStart).String())...)
		if err != nil {
			fmt.Fprintf(o.Out, "   no prediction for %s: %v\n", g, err)
			row.Predicted = 0
			return
		}
		if p.Duration > row.Predicted {
			row.Predicted, row.PredictedPhases = p.Duration, p.Milestones
		}
	}
	fmt.Fprintf(o.Out, "   predicted by noderoll plan (each group given 1/%d of the control plane's rate, as they share it): %s\n", len(names), short(row.Predicted))
}

// controllerBinary is what the row runs as the controller: the
// controller's own binary (cmd/noderoll-controller, the image's) when one
// sits beside the CLI's, else the CLI's controller command.
func controllerBinary(self string) (string, []string) {
	own := filepath.Join(filepath.Dir(self), "noderoll-controller")
	if fi, err := os.Stat(own); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return own, nil
	}
	return self, []string{"controller"}
}

// chartRoles is the name of the chart's ClusterRole and Role when it is
// installed as release "noderoll".
const chartRoles = "noderoll-controller"

// groupRows is each group's own upgrade against its own bound: its nodes,
// its pods only, under the same delays.
func groupRows(list []v1alpha1.NodeGroupUpgrade, own map[string][]Budgeted, n, p int, d Delays) []GroupRow {
	var out []GroupRow
	for _, u := range list {
		g := GroupRow{Name: u.Spec.NodeGroup, Nodes: n, Replaced: int(u.Status.Replaced), Phase: u.Status.Phase}
		if u.Status.StartTime != nil && u.Status.CompletionTime != nil {
			g.Makespan = u.Status.CompletionTime.Sub(u.Status.StartTime.Time)
		}
		g.Bound = lowerBound(n, p, d, append([]Budgeted(nil), own[g.Name]...))
		if g.Bound.Makespan > 0 && g.Makespan > 0 {
			g.Ratio = float64(g.Makespan) / float64(g.Bound.Makespan)
		}
		out = append(out, g)
	}
	return out
}

// awaitUpgrades waits until every declared upgrade has ended, sampling the
// controller's memory meanwhile and printing progress every 30s.
func (o Options) awaitUpgrades(ctx context.Context, c client.Client, want, pid int, mem *memPeak, exited <-chan error) ([]v1alpha1.NodeGroupUpgrade, error) {
	sample := time.NewTicker(250 * time.Millisecond)
	defer sample.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	began, said := time.Now(), time.Now()
	mem.sample(pid)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-exited:
			return nil, fmt.Errorf("the controller exited while upgrades ran: %v", err)
		case <-sample.C:
			mem.sample(pid)
		case <-poll.C:
			var list v1alpha1.NodeGroupUpgradeList
			if err := c.List(ctx, &list); err != nil {
				continue // the API server is busy; the next poll asks again
			}
			ended, state := 0, []string{}
			var failed []string
			for _, u := range list.Items {
				switch u.Status.Phase {
				case v1alpha1.PhaseComplete:
					ended++
				case v1alpha1.PhaseFailed, v1alpha1.PhaseAborted, v1alpha1.PhaseRolledBack:
					ended++
					failed = append(failed, fmt.Sprintf("%s %s: %s", u.Spec.NodeGroup, u.Status.Phase, u.Status.Message))
				}
				state = append(state, fmt.Sprintf("%s %s %d/%d", u.Spec.NodeGroup, u.Status.Phase, u.Status.UpToDateNodes, u.Status.TotalNodes))
			}
			if len(list.Items) == want && ended == want {
				if len(failed) > 0 {
					return list.Items, errors.New(strings.Join(failed, "; "))
				}
				return list.Items, nil
			}
			if time.Since(said) >= 30*time.Second {
				said = time.Now()
				fmt.Fprintf(o.Out, "   ... %s: %s\n", time.Since(began).Round(time.Second), strings.Join(state, ", "))
			}
		}
	}
}

// resourceClient is a client for NodeGroupUpgrades as the sandbox's admin
// (controller-runtime's logger is the CLI's to set: see cli.routeLibraryLogs).
func resourceClient(st *sandbox.State) (client.Client, error) {
	cfg, err := st.RestConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// nodeGroups maps each node to the EKS node group its label names.
func nodeGroups(ctx context.Context, kube kubernetes.Interface) (map[string]string, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range nodes.Items {
		out[n.Name] = n.Labels[nodeGroupLabel]
	}
	return out, nil
}

const nodeGroupLabel = "eks.amazonaws.com/nodegroup"
