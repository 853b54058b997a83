// Package controllercmd is the in-cluster controller's command: its flags,
// and the manager that runs the NodeGroupUpgrade and
// NodeGroupUpgradePolicy reconcilers. Both binaries serve it: the CLI as
// `noderoll controller` (for host processes such as the sandbox's), the
// product image as cmd/noderoll-controller, which carries nothing else
// (no sandbox, AWS simulator, benchmark or Helm).
package controllercmd

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/cloud"
	awscloud "github.com/noderoll/noderoll/internal/cloud/aws"
	"github.com/noderoll/noderoll/internal/controller"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
)

// leaderElectionID names the replicas' Lease.
const leaderElectionID = "noderoll-controller"

// LibraryLogsAnnotation on a command asks for controller-runtime's
// informational lines too (the controller's leader election, say), not
// only its errors.
const LibraryLogsAnnotation = "noderoll.io/library-logs"

type controllerFlags struct {
	kubeconfig, kubeContext string
	aws                     awscloud.Options
	leaderElect             bool
	leaderNamespace         string
	leaseDuration           time.Duration
	metricsAddr, probeAddr  string
	maxConcurrent           int
	releasePoll             time.Duration
	verbose                 bool
}

// New returns the controller command; its logs go to errOut.
func New(errOut io.Writer) *cobra.Command {
	f := &controllerFlags{}
	cmd := &cobra.Command{
		Use:         "controller",
		Annotations: map[string]string{LibraryLogsAnnotation: "info"},
		Short:       "Run NodeGroupUpgrades and NodeGroupUpgradePolicies declared in the cluster (the in-cluster controller)",
		Long: `Run the controller that carries out NodeGroupUpgrade resources (noderoll.io/v1alpha1):
each resource declares one upgrade of one node group, with the same target,
strategy, budgets and timeouts as 'noderoll upgrade nodegroup'. The controller
drives the same engine as the CLI, keeps the same record in the cluster (so a
run started by one is resumed by the other) and writes each upgrade's progress
into the resource's status: phase, counts, conditions, and the nodes in flight
or blocked, naming the pods and budgets that refuse their evictions.

Run several replicas: one leads (a Lease in --leader-election-namespace) and
runs the upgrades; another takes over when it dies and resumes them from their
records. A new leader takes a group over only once the lock the old leader's
worker held on it has expired (30s after its last renewal, by the old
leader's clock) and has then stayed unrenewed for 30s more by its own clock,
so clocks apart cannot shorten the wait: about a minute after the old leader
died. A leader cut off from the API server, still reaching AWS, never acts
beside it. Each upgrade
runs in a worker of its own, --max-concurrent-upgrades at a time;
spec.paused stops one between actions, deleting the resource stops it and
leaves the group as its record says.

NodeGroupUpgradePolicy resources keep a cluster's groups current by
themselves: each new EKS AMI release (read from SSM every
--release-poll-interval) is rolled out in the policy's maintenance windows,
canary first, then in waves, each group by a NodeGroupUpgrade the policy
creates, with a soak watching the upgraded groups after each; a failure or
a regression halts it (docs/keep-current.md).

The CRDs and the narrowest RBAC it needs ship in the Helm chart (charts/noderoll).`,
		Example: `  # Against the sandbox, as a host process:
  eval "$(noderoll sandbox env)"
  kubectl apply -f charts/noderoll/crds/
  noderoll controller --metrics-bind-address=127.0.0.1:8080 &
  kubectl apply -f - <<'YAML'
  apiVersion: noderoll.io/v1alpha1
  kind: NodeGroupUpgrade
  metadata: {name: nodegroup-to-1.37}
  spec: {cluster: eksworkshop-eksctl, nodeGroup: nodegroup, target: {kubernetesVersion: "1.37"}}
  YAML
  kubectl get nodegroupupgrades --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd, errOut, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fl.StringVar(&f.aws.Region, "region", "", "AWS region (default: AWS_REGION)")
	fl.StringVar(&f.aws.RoleARN, "role-arn", "", "assume this IAM role for every AWS call, with the credentials otherwise found (IRSA, EKS Pod Identity)")
	fl.StringVar(&f.aws.ExternalID, "external-id", "", "external id the --role-arn role's trust policy demands")
	fl.BoolVar(&f.leaderElect, "leader-elect", true, "hold a Lease so that one replica of several runs the upgrades")
	fl.StringVar(&f.leaderNamespace, "leader-election-namespace", "kube-system", "namespace of the leader's Lease")
	fl.DurationVar(&f.leaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a dead leader's Lease holds before another replica takes over")
	fl.StringVar(&f.metricsAddr, "metrics-bind-address", "127.0.0.1:8080", "where /metrics is served (0: not served)")
	fl.StringVar(&f.probeAddr, "health-probe-bind-address", "127.0.0.1:8081", "where /healthz and /readyz are served (0: not served)")
	fl.IntVar(&f.maxConcurrent, "max-concurrent-upgrades", 10, "upgrades run at once; more wait in phase Pending")
	fl.DurationVar(&f.releasePoll, "release-poll-interval", 10*time.Minute, "how often NodeGroupUpgradePolicies read their groups' newest AMI releases (SSM's recommended parameters) again: how soon a new release is seen")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "debug logs")
	return cmd
}

func run(cmd *cobra.Command, errOut io.Writer, f *controllerFlags) error {
	if err := f.validate(); err != nil {
		return err
	}
	ctx := cmd.Context()
	log := clientcfg.NewLogger(errOut, f.verbose)
	// client-go's own lines (leader election among them) go to the same
	// structured log; controller-runtime's were routed by the root command.
	klog.SetLogger(logr.FromSlogHandler(log.Handler()))
	cfg, err := clientcfg.RESTConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	mgr, err := newManager(cfg, f)
	if err != nil {
		return err
	}
	// The controller's series are served beside controller-runtime's own.
	metrics, err := controller.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	awsOpts := f.aws
	awsOpts.Log, awsOpts.OnCall = log, metrics.CloudCall
	p, err := awscloud.New(ctx, awsOpts)
	if err != nil {
		return err
	}
	kube, err := clientcfg.Clientset(cfg)
	if err != nil {
		return err
	}
	// The replicas' locks name the controller, the pod and the worker: a
	// new leader takes a group another replica held only once that lock
	// expired (the old leader, cut off from the API server, may still be
	// acting), and a restarted pod takes its earlier process's at once.
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	lock := grouplock.Options{Self: grouplock.ControllerHolder(f.leaderNamespace, leaderElectionID, pod)}
	// One cache of the cluster and one budget tracker for every upgrade.
	view, err := engine.NewClusterView(kube)
	if err != nil {
		return err
	}
	r := &controller.Reconciler{
		Metrics: metrics, View: view,
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Kube: kube, Cloud: p, Events: mgr.GetEventRecorder("noderoll"),
		Log: log, Clock: clock.RealClock{}, MaxConcurrent: f.maxConcurrent,
		Lock: lock,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	if err := setupPolicies(mgr, log, view, p, f.releasePoll); err != nil {
		return err
	}
	log.Info("controller starting", "leaderElection", f.leaderElect, "metrics", f.metricsAddr, "probes", f.probeAddr)
	return mgr.Start(ctx)
}

func (f *controllerFlags) validate() error {
	if f.maxConcurrent < 1 {
		return fmt.Errorf("--max-concurrent-upgrades %d: want at least 1", f.maxConcurrent)
	}
	if f.releasePoll < time.Second {
		return fmt.Errorf("--release-poll-interval %s: want at least 1s (default 10m)", f.releasePoll)
	}
	if f.leaseDuration < 2*time.Second {
		return fmt.Errorf("--leader-election-lease-duration %s: want at least 2s", f.leaseDuration)
	}
	return nil
}

// newManager is controller-runtime's manager of the replica: leader
// election among the replicas, metrics, and the health probes.
func newManager(cfg *rest.Config, f *controllerFlags) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	renew := f.leaseDuration * 2 / 3
	retry := f.leaseDuration / 7
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		LeaderElection:                f.leaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       f.leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &f.leaseDuration,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		Metrics:                       metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:        f.probeAddr,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// setupPolicies adds the NodeGroupUpgradePolicy reconciler, where its CRD
// is installed: a cluster whose CRDs predate the policy still gets its
// NodeGroupUpgrades run.
func setupPolicies(mgr ctrl.Manager, log *slog.Logger, view *engine.ClusterView, p cloud.Provider, poll time.Duration) error {
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "NodeGroupUpgradePolicy"}); meta.IsNoMatchError(err) {
		log.Warn("the NodeGroupUpgradePolicy CRD is not installed, so policies are not reconciled; install the chart's CRDs (kubectl apply -f charts/noderoll/crds/) and restart the controller to use them")
		return nil
	}
	policyMetrics, err := controller.NewPolicyMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	policies := &controller.PolicyReconciler{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), View: view, Cloud: p, Events: mgr.GetEventRecorder("noderoll"),
		Log: log, Clock: clock.RealClock{}, PollEvery: poll, Metrics: policyMetrics,
	}
	return policies.SetupWithManager(mgr)
}
