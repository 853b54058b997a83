package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	awscloud "github.com/noderoll/noderoll/internal/cloud/aws"
	"github.com/noderoll/noderoll/internal/sandbox"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// sandboxFlags are shared by the sandbox commands and the demo.
type sandboxFlags struct {
	dir, name    string
	sc           sandbox.Scenario
	selfManaged  bool
	readyTimeout time.Duration
	controllers  int
	eksctl       bool
}

// defaultSandboxDir is where the sandbox commands look without --dir.
func defaultSandboxDir() string {
	home, _ := sandbox.Home()
	return envOr("NODEROLL_SANDBOX", filepath.Join(home, "sandbox"))
}

// dirFlag is the --dir a later command needs to find the sandbox in dir:
// none when it is where they look anyway.
func dirFlag(dir string) string {
	if d, err := filepath.Abs(defaultSandboxDir()); err == nil && d == dir {
		return ""
	}
	return " --dir " + dir
}

func (f *sandboxFlags) addLocation(fs *pflag.FlagSet) {
	fs.StringVar(&f.dir, "dir", defaultSandboxDir(), "folder holding the sandbox's state, kubeconfig and logs (env NODEROLL_SANDBOX)")
	fs.StringVar(&f.name, "name", "noderoll", "name of the sandbox's control plane")
}

func (f *sandboxFlags) addScenario(fs *pflag.FlagSet) {
	f.sc = sandbox.SeedScenario()
	fs.StringVar(&f.sc.Cluster, "cluster", f.sc.Cluster, "EKS cluster name to simulate")
	fs.StringVar(&f.sc.Nodegroup, "nodegroup", f.sc.Nodegroup, "node group name to simulate")
	fs.IntVar(&f.sc.Nodes, "nodes", f.sc.Nodes, "nodes in the group (in each group, with --groups)")
	fs.IntVar(&f.sc.Groups, "groups", 1, "node groups in the cluster, alike: --nodegroup, then --nodegroup-2, -3...; more can be made on the running sandbox with aws eks create-nodegroup")
	fs.IntVar(&f.sc.AZs, "azs", f.sc.AZs, "availability zones the group spans")
	fs.IntVar(&f.sc.PodsPerNode, "pods-per-node", f.sc.PodsPerNode, "application pods per node (besides DaemonSets)")
	fs.Var(mixFlag{&f.sc.Mix}, "mix", "workloads and their PodDisruptionBudgets: seed (the workshop's, each allowing one pod down) or teams (maxUnavailable 1, 10%, 25%, minAvailable 50%, and none)")
	fs.StringVar(&f.sc.NodeVersion, "node-version", f.sc.NodeVersion, "Kubernetes minor of the group's AMI (the control plane runs "+sandbox.ControlPlaneMinor+")")
	fs.BoolVar(&f.selfManaged, "self-managed", false, "simulate a self-managed Auto Scaling group instead of an EKS managed node group")
	fs.BoolVar(&f.sc.EKSTemplate, "eks-template", false, "make the managed group as EKS does when given no launch template of yours: EKS generates the template and picks the AMI, so EKS's own updates (eksctl upgrade nodegroup --kubernetes-version, noderoll --mode=managed) take it; noderoll's own strategies stop at preflight on such a group")
	fs.BoolVar(&f.sc.Plain, "plain", false, "with --self-managed: a group made without eksctl (Terraform, CloudFormation), named by its Auto Scaling group, whose nodes carry no node group label")
	fs.DurationVar(&f.sc.BootDelay.Duration, "boot-delay", f.sc.BootDelay.Duration, "instance launch until its Node registers")
	fs.DurationVar(&f.sc.NodeReadyDelay.Duration, "node-ready-delay", f.sc.NodeReadyDelay.Duration, "Node registered until Ready")
	fs.DurationVar(&f.sc.ShutdownDelay.Duration, "shutdown-delay", f.sc.ShutdownDelay.Duration, "instance terminate until its Node is gone")
	fs.DurationVar(&f.sc.PodStartDelay.Duration, "pod-start-delay", f.sc.PodStartDelay.Duration, "pod scheduled until Ready")
	fs.DurationVar(&f.sc.PodStopDelay.Duration, "pod-stop-delay", f.sc.PodStopDelay.Duration, "pod deleted until gone")
	fs.BoolVar(&f.eksctl, "with-eksctl", false, "build eksctl "+sandbox.EksctlVersion+" from its Go module (once; minutes the first time) and put it on the PATH that sandbox env gives, to run your own eksctl commands (the seed's eksctl upgrade nodegroup) against the sandbox's EKS; see --eks-template")
	fs.IntVar(&f.controllers, "controllers", 0, "install the Helm chart's CRD and RBAC and run this many controller replicas on the host (one leads), each acting only as the chart's ServiceAccount (0: none; see docs/controller.md)")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", 0, "fail (and stop what started) when the scenario is not Ready within this time (0: 5m plus 1s per node)")
}

func (f *sandboxFlags) options(s Streams) (sandbox.Options, error) {
	home, checkout := sandbox.Home()
	self, err := os.Executable()
	if err != nil {
		return sandbox.Options{}, err
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return sandbox.Options{}, err
	}
	if f.controllers < 0 || f.controllers > 5 {
		return sandbox.Options{}, fmt.Errorf("--controllers %d: want 0 to 5", f.controllers)
	}
	sc := f.sc
	sc.Managed = !f.selfManaged
	return sandbox.Options{
		Dir: dir, Name: f.name, Self: self, Scenario: sc, Out: s.Err, ReadyTimeout: f.readyTimeout, Controllers: f.controllers, Eksctl: f.eksctl,
		Tools: sandbox.NewToolchain(home, sandbox.ToolsModuleDir(checkout)),
	}, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newSandboxCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "A local Kubernetes control plane and AWS endpoint to try noderoll on",
		Long: `The sandbox is a real Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler; kwok stands in for kubelets) and a local
AWS-compatible endpoint (Auto Scaling, EC2, SSM, EKS) whose instances register
as Nodes. Everything listens on 127.0.0.1. No AWS account is needed.`,
		Example: `  noderoll sandbox up                       # the seed: 3 nodes in 3 AZs
  eval "$(noderoll sandbox env)"            # kubectl and the AWS CLI now reach it
  noderoll sandbox status
  noderoll sandbox down`,
	}
	cmd.AddCommand(newSandboxUp(s), newSandboxDown(s), newSandboxStatus(s), newSandboxEnv(s), newSandboxCapacity(s), newSandboxThrottle(s), newSandboxBadBoot(s), newSandboxKillInstance(s), newSandboxSlowScaling(s), newSandboxFailCall(s), newSandboxQuota(s), newSandboxReleaseAMI(s, time.Now), newServeAWS(s))
	return cmd
}

func newSandboxUp(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the sandbox and seed a scenario (the seed's cluster by default)",
		Long: `Start the sandbox and seed it. The default scenario is the seed's: EKS cluster
eksworkshop-eksctl with managed node group "nodegroup", 3 nodes in 3 AZs on the
Kubernetes 1.36 AMI under a 1.37 control plane, with EKS DaemonSets, CoreDNS,
a cluster-autoscaler and the workshop's ecsdemo apps behind PodDisruptionBudgets.

The first run builds the control plane from Go modules (about 20 minutes on
2 cores); later runs start in seconds. On a running sandbox, up says so and
changes nothing but starts again the controller replicas that are gone (killed
to see another take over).`,
		Example: `  noderoll sandbox up
  noderoll sandbox up --nodes 30 --azs 3 --pods-per-node 8 --boot-delay 20s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(s)
			if err != nil {
				return err
			}
			st, err := sandbox.Up(cmd.Context(), o)
			var running *sandbox.RunningError
			if errors.As(err, &running) {
				printStillRunning(s, st, running.Restarted)
				return nil
			}
			if err != nil {
				return err
			}
			printNextSteps(s, st)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	f.addScenario(cmd.Flags())
	return cmd
}

// printStillRunning answers up on a running sandbox: nothing changed, but
// the controller replicas that were gone and are started again.
func printStillRunning(s Streams, st *sandbox.State, restarted []int) {
	since := st.Started.Local().Format(time.Kitchen)
	if len(restarted) == 0 {
		fmt.Fprintf(s.Out, "The sandbox is already running in %s (since %s); nothing changed.\n", st.Dir, since)
		return
	}
	fmt.Fprintf(s.Out, "The sandbox is already running in %s (since %s); nothing changed but its controller replicas that were gone:\n", st.Dir, since)
	for _, k := range restarted {
		c := st.Controllers[k]
		fmt.Fprintf(s.Out, "  controller-%d started again (pid %d, as pod noderoll-controller-%d; log %s)\n", k, c.Pid, k, c.Log)
	}
}

func printNextSteps(s Streams, st *sandbox.State) {
	self, dir := selfCommand(), dirFlag(st.Dir)
	fmt.Fprintf(s.Out, "The sandbox is running in %s.\n", st.Dir)
	tw := tabwriter.NewWriter(s.Out, 0, 4, 3, ' ', 0)
	for _, l := range [][2]string{
		{`eval "$(` + self + " sandbox env" + dir + `)"`, "point kubectl and the AWS SDK at it"},
		{self + " sandbox status" + dir, "what runs, where, and the node groups"},
		{self + " sandbox down" + dir, "stop it"},
	} {
		fmt.Fprintf(tw, "  %s\t# %s\n", l[0], l[1])
	}
	tw.Flush()
	fmt.Fprintln(s.Out, "  kubectl get nodes -L topology.kubernetes.io/zone,eks.amazonaws.com/nodegroup-image")
}

func newSandboxDown(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process the sandbox started and remove its state",
		Example: `  noderoll sandbox down
  noderoll sandbox down --dir /tmp/big   # the sandbox brought up with --dir /tmp/big`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := f.options(s)
			if err != nil {
				return err
			}
			_, loadErr := sandbox.Load(o.Dir)
			if err := sandbox.Down(cmd.Context(), o); err != nil {
				return err
			}
			if errors.Is(loadErr, os.ErrNotExist) {
				fmt.Fprintf(s.Out, "No sandbox was running in %s; nothing to stop.\n", o.Dir)
				return nil
			}
			fmt.Fprintf(s.Out, "The sandbox in %s is stopped.\n", o.Dir)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func loadRunning(dir string) (*sandbox.State, error) {
	st, err := sandbox.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		abs, _ := filepath.Abs(dir)
		return nil, fmt.Errorf("no sandbox runs in %s: start one with `%s sandbox up%s`, or pass the --dir of a running one", dir, selfCommand(), dirFlag(abs))
	}
	return st, err
}

func newSandboxEnv(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Print shell exports that point kubectl, the AWS SDK and noderoll at the sandbox",
		Example: `  eval "$(noderoll sandbox env)"
  kubectl get nodes --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(s.Out, "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE")
			for _, kv := range st.Env() {
				fmt.Fprintf(s.Out, "export %s=%s\n", kv[0], shellQuote(kv[1]))
			}
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func shellQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }

type statusReport struct {
	Dir         string         `json:"dir"`
	Running     bool           `json:"running"`
	Started     time.Time      `json:"started"`
	Kubeconfig  string         `json:"kubeconfig"`
	AWSEndpoint string         `json:"awsEndpoint"`
	Region      string         `json:"region"`
	Processes   map[string]int `json:"processes"` // 0: gone
	// GoneControllers are the controller replicas that no longer run
	// (killed to see another take over); the sandbox runs without them,
	// and up starts them again.
	GoneControllers []string      `json:"goneControllers,omitempty"`
	NodeGroups      []groupStatus `json:"nodeGroups"`
	Problem         string        `json:"problem,omitempty"`
}

type groupStatus struct {
	Cluster          string `json:"cluster"`
	Name             string `json:"name"`
	Managed          bool   `json:"managed"`
	AutoScalingGroup string `json:"autoScalingGroup"`
	Min              int    `json:"min"`
	Max              int    `json:"max"`
	Desired          int    `json:"desired"`
	Instances        int    `json:"instances"`
	ImageID          string `json:"imageId"`
	TemplateVersion  int64  `json:"launchTemplateVersion"`
}

func newSandboxStatus(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the sandbox runs, where, and the node groups of its AWS account",
		Example: `  noderoll sandbox status
  noderoll sandbox status -o json | jq '.nodeGroups'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			rep := statusReport{Dir: st.Dir, Started: st.Started, Kubeconfig: st.Kubeconfig, AWSEndpoint: st.AWSEndpoint, Region: st.Region}
			rep.Processes, _ = st.LiveProcesses()
			rep.Running = coreRunning(rep.Processes)
			for _, k := range st.GoneControllers() {
				rep.GoneControllers = append(rep.GoneControllers, fmt.Sprintf("controller-%d", k))
			}
			if rep.Running {
				// A status answers at once: an endpoint that does not is said,
				// not retried for a minute.
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				groups, err := sandboxGroups(ctx, st)
				cancel()
				if err != nil {
					rep.Problem = "the AWS endpoint did not answer: " + err.Error()
				}
				rep.NodeGroups = groups
			}
			if output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printStatus(s, rep)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func sandboxGroups(ctx context.Context, st *sandbox.State) ([]groupStatus, error) {
	p, err := awscloud.New(ctx, awscloud.Options{Region: st.Region, Endpoint: st.AWSEndpoint, AccessKeyID: sandbox.AccessKeyID, SecretAccessKey: sandbox.SecretAccessKey})
	if err != nil {
		return nil, err
	}
	refs, err := p.ListNodeGroups(ctx, st.Scenario.Cluster)
	if err != nil {
		return nil, err
	}
	var out []groupStatus
	for _, ref := range refs {
		g, err := p.NodeGroup(ctx, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, groupStatus{
			Cluster: g.Cluster, Name: g.Name, Managed: g.Managed, AutoScalingGroup: g.ASGName,
			Min: g.Min, Max: g.Max, Desired: g.Desired, Instances: len(g.Instances),
			ImageID: g.ImageID, TemplateVersion: g.TemplateVersion,
		})
	}
	return out, nil
}

// coreRunning says whether every process of the sandbox but its controller
// replicas runs: it works without them.
func coreRunning(pids map[string]int) bool {
	for name, pid := range pids {
		if pid == 0 && !strings.HasPrefix(name, "controller-") {
			return false
		}
	}
	return true
}

func printStatus(s Streams, r statusReport) {
	state := "running"
	self, dir := selfCommand(), dirFlag(r.Dir)
	if !r.Running {
		state = fmt.Sprintf("NOT running (some processes are gone; run `%[1]s sandbox down%[2]s`, then `%[1]s sandbox up%[2]s`)", self, dir)
	}
	fmt.Fprintf(s.Out, "Sandbox %s in %s, started %s\n", state, r.Dir, r.Started.Local().Format(time.DateTime))
	fmt.Fprintf(s.Out, "  Kubernetes %s  kubeconfig %s\n", sandbox.KubeVersion, r.Kubeconfig)
	fmt.Fprintf(s.Out, "  AWS endpoint %s (region %s)\n", r.AWSEndpoint, r.Region)
	names := make([]string, 0, len(r.Processes))
	for n := range r.Processes {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(s.Out, "  Processes:")
	for _, n := range names {
		if r.Processes[n] == 0 {
			fmt.Fprintf(s.Out, " %s=gone", n)
			continue
		}
		fmt.Fprintf(s.Out, " %s=%d", n, r.Processes[n])
	}
	fmt.Fprintln(s.Out)
	if r.Running && len(r.GoneControllers) > 0 {
		replicas := 0
		for n := range r.Processes {
			if strings.HasPrefix(n, "controller-") {
				replicas++
			}
		}
		what, them := "the other replicas go on without it", "it"
		if len(r.GoneControllers) > 1 {
			what, them = "the other replicas go on without them", "them"
		}
		if len(r.GoneControllers) == replicas {
			what = "no controller runs: NodeGroupUpgrades and policies wait"
		}
		fmt.Fprintf(s.Out, "  Gone: %s (%s); `%s sandbox up%s` starts %s again\n", strings.Join(r.GoneControllers, ", "), what, self, dir, them)
	}
	if r.Problem != "" {
		fmt.Fprintf(s.Out, "  Problem: %s\n", r.Problem)
	}
	if len(r.NodeGroups) == 0 {
		return
	}
	fmt.Fprintln(s.Out, "Node groups:")
	tw := tabwriter.NewWriter(s.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLUSTER\tNODEGROUP\tKIND\tAUTO SCALING GROUP\tMIN\tMAX\tDESIRED\tINSTANCES\tLT VERSION\tAMI")
	for _, g := range r.NodeGroups {
		kind := "self-managed"
		if g.Managed {
			kind = "managed"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", g.Cluster, g.Name, kind, g.AutoScalingGroup, g.Min, g.Max, g.Desired, g.Instances, g.TemplateVersion, g.ImageID)
	}
	tw.Flush()
}

func newServeAWS(s Streams) *cobra.Command {
	var dir, kubeconfig string
	var verbose bool
	cmd := &cobra.Command{
		Use:    "serve-aws",
		Short:  "Serve the sandbox's AWS endpoint (started by `sandbox up`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sandbox.ServeAWS(cmd.Context(), dir, kubeconfig, newLogger(s.Err, verbose))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the sandbox folder")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "the sandbox cluster's kubeconfig")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every call")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}

func newSandboxCapacity(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "capacity AZ|all COUNT|unlimited",
		Short: "Simulate an EC2 capacity shortage: limit how many more instances launch in an AZ",
		Long: `Limit how many more instances the sandbox's account launches in an AZ, to see
what an upgrade does when its new nodes do not come. Launches beyond the limit
fail as AWS reports them, in the Auto Scaling group's activities
(InsufficientInstanceCapacity), and the group keeps retrying until the limit
is lifted.`,
		Example: `  noderoll sandbox capacity all 0              # no more instances anywhere
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup \
      --kubernetes-version=1.37 --node-ready-timeout=1m   # fails before any drain, saying why
  noderoll sandbox capacity all unlimited      # capacity is back; rerun to resume`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			count := -1
			if args[1] != "unlimited" {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 0 {
					return fmt.Errorf("COUNT %q: want a number of instances (0 or more) or unlimited", args[1])
				}
				count = n
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			azs := []string{args[0]}
			if args[0] == "all" {
				azs = st.Scenario.AZNames()
			}
			for _, az := range azs {
				if err := st.SetCapacity(cmd.Context(), az, count); err != nil {
					return err
				}
			}
			what := "no limit"
			if count >= 0 {
				what = fmt.Sprintf("%d more instance(s) each", count)
			}
			fmt.Fprintf(s.Out, "EC2 capacity in %s: %s.\n", strings.Join(azs, ", "), what)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxThrottle(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "throttle PERCENT|off",
		Short: "Simulate API throttling: answer a share of AWS calls as a throttled account does",
		Long: `Answer a share of the calls to the sandbox's AWS APIs as AWS answers a
throttled account (Auto Scaling: Throttling; EC2: RequestLimitExceeded; EKS and
SSM: ThrottlingException), picked at random, until turned off. noderoll's AWS
SDK retries them with backoff (adaptive mode, up to 8 attempts); the endpoint's
log of calls shows each throttled one.`,
		Example: `  noderoll sandbox throttle 30%   # three calls in ten are throttled
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37
  noderoll sandbox throttle off`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rate := 0.0
			if args[0] != "off" {
				n, err := strconv.ParseFloat(strings.TrimSuffix(args[0], "%"), 64)
				if err != nil || !strings.HasSuffix(args[0], "%") || n < 0 || n > 100 {
					return fmt.Errorf("%q: want a percentage from 0%% to 100%% (e.g. 30%%) or off", args[0])
				}
				rate = n / 100
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.SetThrottle(cmd.Context(), rate); err != nil {
				return err
			}
			if rate == 0 {
				fmt.Fprintln(s.Out, "AWS calls are no longer throttled.")
			} else {
				fmt.Fprintf(s.Out, "%s of AWS calls are answered as throttled.\n", args[0])
			}
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxBadBoot(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "bad-boot COUNT",
		Short: "Simulate a broken bootstrap: the next COUNT instances run but never join the cluster",
		Long: `The next COUNT instances the sandbox's account launches boot and run, healthy to
EC2 and their Auto Scaling group, but their kubelet never registers a node: a
broken user data script, a node IAM role the cluster does not map. 0 ends it.
An upgrade waiting for them stops at --node-ready-timeout naming each instance
without a node; terminate it through the group and rerun to resume.`,
		Example: `  noderoll sandbox bad-boot 1
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37 --node-ready-timeout=1m
  aws autoscaling terminate-instance-in-auto-scaling-group --instance-id i-... --no-should-decrement-desired-capacity
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 {
				return fmt.Errorf("COUNT %q: want a number of instances, 0 or more", args[0])
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.BadBoots(cmd.Context(), n); err != nil {
				return err
			}
			if n == 0 {
				fmt.Fprintln(s.Out, "Instances launched from now on join the cluster again.")
				return nil
			}
			fmt.Fprintf(s.Out, "The next %d instance(s) launched will not join the cluster.\n", n)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxKillInstance(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "kill-instance INSTANCE-ID",
		Short: "Simulate a hardware failure: end a running instance outside its group",
		Long: `End a running instance of the sandbox's account as a hardware failure or an EC2
retirement does: not through its Auto Scaling group, which finds it unhealthy,
takes it out and launches another. Its node goes with it, pods and all (those
pods are lost, as on a real failure).`,
		Example: `  noderoll sandbox kill-instance i-0123456789abcdef0`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.KillInstance(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "Instance %s is shutting down; its group will replace it.\n", args[0])
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxSlowScaling(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "slow-scaling DURATION|off",
		Short: "Simulate slow scaling activities: every launch and termination takes DURATION longer",
		Long: `Every instance the sandbox's account launches takes DURATION longer to boot, and
every one it terminates DURATION longer to go, their Auto Scaling activities
InProgress meanwhile: what lifecycle hooks, a slow bootstrap or a busy EC2 do to
a group. Instances already on their way take the new pace too. An upgrade waits
for new capacity up to --node-ready-timeout (before any drain while none has
come), and for a terminated node to leave up to its own bound.`,
		Example: `  noderoll sandbox slow-scaling 45s
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37
  noderoll sandbox slow-scaling off`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := time.Duration(0)
			if args[0] != "off" {
				var err error
				if d, err = time.ParseDuration(args[0]); err != nil || d <= 0 {
					return fmt.Errorf("%q: want a duration above zero (e.g. 45s, 2m) or off", args[0])
				}
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.SlowScaling(cmd.Context(), d); err != nil {
				return err
			}
			if d == 0 {
				fmt.Fprintln(s.Out, "Launches and terminations take their usual time again.")
			} else {
				fmt.Fprintf(s.Out, "Every launch and termination takes %s longer.\n", d)
			}
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxQuota(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	cmd := &cobra.Command{
		Use:   "quota CODE VCPUS",
		Short: "Simulate an account's EC2 vCPU quota: set one, as Service Quotas holds it",
		Long: `Set one of the sandbox account's EC2 vCPU quotas, by its Service Quotas code:
L-1216C47A (Running On-Demand Standard instances: A, C, D, H, I, M, R, T, Z),
L-34B43A08 (Standard Spot), L-DB2E81BA (On-Demand G and VT), L-417A185B
(On-Demand P). Running and pending instances of that kind may hold at most
VCPUS vCPUs; a launch past it fails as EC2's do (VcpuLimitExceeded). The
upgrade's preflight reads the quota and blocks a surge that would not fit.`,
		Example: `  noderoll sandbox quota L-1216C47A 8     # 3 m5.large use 6 of 8 vCPUs: no room to surge by 3
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37 --dry-run
  noderoll sandbox quota L-1216C47A 10000`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseFloat(args[1], 64)
			if err != nil || v < 0 {
				return fmt.Errorf("VCPUS %q: want a number of vCPUs, 0 or more", args[1])
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.SetQuota(cmd.Context(), args[0], v); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "EC2 quota %s is %g vCPUs.\n", args[0], v)
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	return cmd
}

func newSandboxReleaseAMI(s Streams, now func() time.Time) *cobra.Command {
	f := &sandboxFlags{}
	var minor, date string
	cmd := &cobra.Command{
		Use:   "release-ami",
		Short: "Publish a new EKS AMI release in the sandbox, as AWS does about twice a month",
		Long: `Publish a new EKS-optimized AMI release for a Kubernetes minor in the sandbox's
account, as AWS does: new images of every family the sandbox knows (AL2023 for
x86_64 and arm64, standard, NVIDIA and Neuron; the next Bottlerocket version;
Windows Server 2022 Core and Full) and the SSM parameters that name each
family's recommended or latest image moved to them. Groups already running
keep their AMI: they are now one release behind, as a real group is when a
release lands. 'noderoll plan nodegroup --kubernetes-version=MINOR' shows the
new target; the next upgrade takes it.

Without flags: the control plane's minor (` + sandbox.ControlPlaneMinor + `), dated today. A date
not after the minor's newest release is refused: releases only move forward.
A second release the same day needs a later date; policies (which count a
release's age from its date) wait until that date.`,
		Example: `  noderoll sandbox release-ami                       # the control plane's minor, dated today
  noderoll sandbox release-ami --kubernetes-version 1.36 --release 20261201
  aws ssm get-parameter --name /aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/release_version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if date == "" {
				date = now().UTC().Format("20060102")
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			r, err := st.PublishRelease(cmd.Context(), minor, date)
			if err != nil {
				if strings.Contains(err.Error(), "newest release is") {
					err = fmt.Errorf("%w: pass --release with a later date", err)
				}
				return err
			}
			fmt.Fprintf(s.Out, "Published EKS AMI release %s for Kubernetes %s: AL2023 %s, Bottlerocket %s, Windows %s.\n", r.Version, r.Minor, r.Version, r.Bottlerocket, r.Windows)
			fmt.Fprintf(s.Out, "The recommended SSM parameters now name it; groups on an older release are behind:\n  %s plan nodegroup --cluster=%s --name=%s --kubernetes-version=%s\n",
				selfCommand(), st.Scenario.Cluster, st.Scenario.Nodegroup, r.Minor)
			if day, err := time.Parse("20060102", date); err == nil && day.After(now().UTC()) {
				// Two releases in one day need a later date; policies
				// count a release's age from its date.
				fmt.Fprintf(s.Out, "It is dated after now: plan and upgrade take it at once, but a NodeGroupUpgradePolicy counts its age from %s and waits until then (plus its spec.minReleaseAge).\n",
					day.Format(time.RFC3339))
			}
			return nil
		},
	}
	f.addLocation(cmd.Flags())
	cmd.Flags().StringVar(&minor, "kubernetes-version", sandbox.ControlPlaneMinor, "the Kubernetes minor whose AMIs the release is of, 1.33 to "+sandbox.ControlPlaneMinor)
	cmd.Flags().StringVar(&date, "release", "", "the release's date, YYYYMMDD, after the minor's newest release (default: today)")
	return cmd
}

func newSandboxFailCall(s Streams) *cobra.Command {
	f := &sandboxFlags{}
	var fault awssim.Fault
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "fail-call SERVICE ACTION [CODE]",
		Short: "Simulate an API error: the next call(s) of one AWS action fail",
		Long: `The next --count calls of ACTION on SERVICE (autoscaling, ec2, eks, ssm) answer
with the error CODE, as AWS would (HTTP --status, --message). With --after the
call is applied first and only its answer fails, as when a response is lost on
the way back: the caller cannot tell whether it took. With --delay the answer
comes that much later (a stall; alone, without CODE, the call then succeeds).
The endpoint's log of calls shows each one.

Codes a caller should retry (InternalFailure with status 500, ServiceUnavailable
503) are retried by noderoll's AWS SDK; others stop the upgrade with the call
and the error named, resumable by running the same command again.`,
		Example: `  noderoll sandbox fail-call autoscaling TerminateInstanceInAutoScalingGroup InternalFailure --status 500 --after
  noderoll sandbox fail-call ec2 CreateLaunchTemplateVersion UnauthorizedOperation --status 403 --message "You are not authorized to perform this operation."
  noderoll sandbox fail-call autoscaling UpdateAutoScalingGroup --delay 20s`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "autoscaling", "ec2", "eks", "ssm":
			default:
				return fmt.Errorf("SERVICE %q: want autoscaling, ec2, eks or ssm", args[0])
			}
			fault.Service, fault.Action = args[0], args[1]
			if len(args) == 3 {
				fault.Code = args[2]
			}
			if delay < 0 || fault.Count < 1 || (fault.Status != 0 && (fault.Status < 400 || fault.Status > 599)) {
				return fmt.Errorf("--delay %s, --count %d, --status %d: want a delay of 0 or more, a count of 1 or more, a status from 400 to 599", delay, fault.Count, fault.Status)
			}
			fault.DelaySeconds = delay.Seconds()
			if fault.Code == "" && delay == 0 {
				return fmt.Errorf("nothing to inject: give an error CODE, a --delay, or both")
			}
			if fault.Code != "" && fault.Message == "" {
				fault.Message = "Injected by noderoll sandbox fail-call."
			}
			st, err := loadRunning(f.dir)
			if err != nil {
				return err
			}
			if err := st.FailCall(cmd.Context(), fault); err != nil {
				return err
			}
			what := "answer late"
			if fault.Code != "" {
				what = "fail with " + fault.Code
			}
			fmt.Fprintf(s.Out, "The next %d call(s) of %s %s will %s.\n", fault.Count, fault.Service, fault.Action, what)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&fault.Count, "count", 1, "how many calls fail")
	fl.IntVar(&fault.Status, "status", 400, "the HTTP status of the error answer")
	fl.StringVar(&fault.Message, "message", "", "the error's message")
	fl.BoolVar(&fault.After, "after", false, "apply the call, then fail its answer (Auto Scaling and EC2)")
	fl.DurationVar(&delay, "delay", 0, "hold the answer back this long")
	f.addLocation(fl)
	return cmd
}

// mixFlag reads --mix: "seed" is the scenario's default mix.
type mixFlag struct{ v *string }

func (m mixFlag) String() string {
	if m.v == nil || *m.v == sandbox.MixSeed {
		return "seed"
	}
	return *m.v
}

func (m mixFlag) Set(s string) error {
	if s == "seed" {
		s = sandbox.MixSeed
	}
	*m.v = s
	return nil
}

func (mixFlag) Type() string { return "seed|teams" }
