// Command noderoll-controller is the in-cluster controller alone: the
// product image's binary (Dockerfile, charts/noderoll). It runs
// NodeGroupUpgrades and NodeGroupUpgradePolicies as `noderoll controller`
// does, and carries none of the CLI's workshop: no sandbox, AWS simulator,
// benchmark or Helm engine.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	// Maintenance windows name IANA time zones; a container image without
	// a zoneinfo database still knows them.
	_ "time/tzdata"

	"github.com/spf13/cobra"

	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/controllercmd"
	"github.com/noderoll/noderoll/internal/profiles"
)

func main() {
	cmd := controllercmd.New(os.Stderr)
	cmd.Use = "noderoll-controller"
	cmd.Example = `  # As the chart runs it, in the cluster:
  noderoll-controller --metrics-bind-address=:8080 --health-probe-bind-address=:8081

  # From a host, against a cluster's kubeconfig (one replica):
  noderoll-controller --kubeconfig=$HOME/.kube/config --leader-elect=false`
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		level := slog.LevelInfo // the controller's leader election and the like
		if v, _ := cmd.Flags().GetBool("verbose"); v {
			level = slog.LevelDebug
		}
		clientcfg.RouteLibraryLogs(os.Stderr, level)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		defer profiles.FromEnv(ctx)()
		return cmd.ExecuteContext(ctx)
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
