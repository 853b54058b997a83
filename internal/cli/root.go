// Package cli is noderoll's command line: thin cobra commands over the
// engine, the cloud providers and the sandbox.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Streams are where commands read and write, injected for tests.
type Streams struct {
	Out, Err io.Writer
}

// NewRoot returns the noderoll command tree.
func NewRoot(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "noderoll",
		Short: "Upgrade Kubernetes worker node groups safely, fast and visibly",
		Long: `noderoll replaces the nodes of a node group (an EKS managed node group or a
self-managed Auto Scaling group) with nodes on a new AMI: it surges new nodes
first, drains old ones through the Eviction API within your PodDisruptionBudgets,
and shows every node come and go. Its progress lives in the cluster, so a rerun
picks up where a stopped one left off.

Try it without an AWS account:
  noderoll demo                      # local sandbox + the seed's upgrade, live

Or step by step:
  noderoll sandbox up                # a real control plane + local AWS endpoint
  eval "$(noderoll sandbox env)"     # point kubectl and the AWS SDK at it
  noderoll upgrade nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --kubernetes-version=1.37`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.AddCommand(newSandboxCmd(s), newUpgradeCmd(s), newDemoCmd(s), newBenchCmd(s), newPermissionsCmd(s), newControllerCmd(s))
	return root
}

// Execute runs the command line and returns the process exit code. The last
// line on failure is the one-line cause.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := Streams{Out: os.Stdout, Err: os.Stderr}
	if path := os.Getenv(heapProfileEnv); path != "" {
		defer profileHeap(ctx, path)()
	}
	err := NewRoot(s).ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(s.Err, "Error: %v\n", err)
	return 1
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
