package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	awscloud "github.com/noderoll/noderoll/internal/cloud/aws"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/progress"
	"github.com/noderoll/noderoll/internal/sandbox"
)

func newDemoCmd(s Streams) *cobra.Command {
	sf := &sandboxFlags{}
	uf := &upgradeFlags{opts: engine.DefaultOptions(), output: "text"}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the seed's node group upgrade on the local sandbox, live",
		Long: `The demo brings up the sandbox if it is not running (the first time it builds
the control plane, about 20 minutes on 2 cores), then upgrades the EKS workshop's
managed node group eksworkshop-eksctl/nodegroup from Kubernetes 1.36 to 1.37, the
seed's story: 3 nodes in 3 AZs go to 6, old nodes are drained within their
PodDisruptionBudgets, then back to 3. By default with noderoll's surge strategy
(the old nodes drain at once, as capacity comes); --strategy eks shows the seed's
exact algorithm, one old node at a time.

It shows every step and every node as it happens, prints a summary, and leaves
the sandbox running so you can look around. The wait between cordon and
terminate is 5s here instead of EKS's 60s, to keep the demo short.`,
		Example: `  noderoll demo
  # in another terminal, the seed's view of the same story:
  eval "$(noderoll sandbox env)" && kubectl get nodes --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			o, err := sf.options(s)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "noderoll demo: the seed's managed node group upgrade, on a local sandbox (no AWS account needed).\n\n")
			st, err := sandbox.Up(ctx, o)
			switch {
			case errors.Is(err, sandbox.ErrRunning):
				fmt.Fprintf(s.Out, "Using the sandbox already running in %s.\n", st.Dir)
			case err != nil:
				return err
			}
			uf.cluster, uf.name = st.Scenario.Cluster, st.Scenario.Nodegroup
			uf.target.KubernetesVersion = sandbox.ControlPlaneMinor
			uf.kubeconfig = st.Kubeconfig
			uf.aws = awscloud.Options{Region: st.Region, Endpoint: st.AWSEndpoint, AccessKeyID: sandbox.AccessKeyID, SecretAccessKey: sandbox.SecretAccessKey}
			self := selfCommand()
			intro := func(v *progress.View) {
				fmt.Fprintf(s.Out, `
Upgrading %s/%s to Kubernetes %s. To watch it as the seed does, in another terminal:
  eval "$(%s sandbox env --dir %s)" && kubectl get nodes --watch

`, uf.cluster, uf.name, sandbox.ControlPlaneMinor, self, st.Dir)
			}
			runErr := runUpgrade(ctx, s, uf, intro)
			fmt.Fprintf(s.Out, `
The sandbox is still running. Look around:
  eval "$(%[1]s sandbox env --dir %[2]s)"
  kubectl get nodes -L topology.kubernetes.io/zone,eks.amazonaws.com/nodegroup-image
  kubectl get events --field-selector involvedObject.kind=Node
  %[1]s sandbox status --dir %[2]s
Stop it with:  %[1]s sandbox down --dir %[2]s
`, self, st.Dir)
			return runErr
		},
	}
	sf.addLocation(cmd.Flags())
	sf.addScenario(cmd.Flags())
	cmd.Flags().DurationVar(&uf.opts.PostCordonWait, "post-cordon-wait", 5*time.Second, "wait between cordoning a drained node and terminating it (EKS: 60s)")
	cmd.Flags().Uint64Var(&uf.opts.Seed, "seed", 0, "seed for the random choice of old nodes (0: random)")
	addStrategyFlags(cmd.Flags(), &uf.opts)
	uf.strategySet = func() bool { return cmd.Flags().Changed("strategy") }
	return cmd
}

// selfCommand is how the user can run this binary again: `go run` builds it
// into a temporary folder that is gone after the run, so the hints then name
// `go run ./cmd/noderoll` instead.
func selfCommand() string {
	exe, err := os.Executable()
	if err == nil && strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return "go run ./cmd/noderoll"
	}
	return "noderoll"
}
