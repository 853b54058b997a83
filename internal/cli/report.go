package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/report"
)

func newReportCmd(s Streams) *cobra.Command {
	f := &watchFlags{}
	out := ""
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write an upgrade's timeline as one self-contained HTML page",
		Long: `Write one HTML file that tells a node group's last upgrade, finished or
still running, from what the run kept in the cluster (its timeline, beside its
record in kube-system): a bar per node through its states (launched, Ready,
tainted, cordoned, draining, drained, terminated), each disruption budget's
healthy pods against its minimum, the group's instances against its max size,
the steps and their durations, the plan's prediction against what happened,
and what the run told. The page loads nothing from the network: open it
anywhere, attach it to a postmortem or a change review.

'noderoll upgrade nodegroup ... --report FILE' writes the same page when the
run ends, failed runs included.`,
		Example: `  noderoll report nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --out=upgrade.html

  # The upgrade a NodeGroupUpgrade declared:
  noderoll report nodegroupupgrade workers-x7k2p --out=workers.html`,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.kubeCtx, "context", "", "kubeconfig context (default: the current one)")
	fl.StringVarP(&out, "out", "o", "", "the HTML file to write (default: <name>-upgrade.html; - for stdout)")

	cmd.AddCommand(byGroupOrResource(f, namedBy{
		groupShort:      "Report the last upgrade of a node group, by cluster and group name",
		groupExample:    `  noderoll report nodegroup --cluster=eksworkshop-eksctl --name=nodegroup --out=upgrade.html`,
		resourceShort:   "Report the upgrade a NodeGroupUpgrade declared, by the resource's name",
		resourceExample: `  noderoll report nodegroupupgrade workers-x7k2p --out=workers.html`,
	}, func(ctx context.Context, ref cloud.NodeGroupRef) error { return runReport(ctx, s, f, ref, out) })...)
	return cmd
}

func runReport(ctx context.Context, s Streams, f *watchFlags, ref cloud.NodeGroupRef, out string) error {
	kube, err := kubeClient(f.kubeconfig, f.kubeCtx)
	if err != nil {
		return err
	}
	if out == "" {
		out = ref.Name + "-upgrade.html"
	}
	path, err := writeReport(ctx, kube, ref, out, s.Out)
	if err != nil {
		return err
	}
	if path != "-" {
		fmt.Fprintf(s.Err, "wrote %s\n", path)
	}
	return nil
}

// reportAtEnd writes --report's page as a run ends; a report that cannot
// be written is said, never a reason to fail the run.
func reportAtEnd(ctx context.Context, s Streams, kube kubernetes.Interface, ref cloud.NodeGroupRef, file string) {
	if path, err := writeReport(context.WithoutCancel(ctx), kube, ref, file, s.Out); err != nil {
		fmt.Fprintf(s.Err, "no report: %v\n", err)
	} else {
		fmt.Fprintf(s.Err, "Report: %s\n", path)
	}
}

// writeReport renders a group's timeline to a file (or w, for "-").
func writeReport(ctx context.Context, kube kubernetes.Interface, ref cloud.NodeGroupRef, out string, w io.Writer) (string, error) {
	tl, err := engine.LoadTimeline(ctx, kube, ref)
	if err != nil {
		return "", err
	}
	if tl == nil {
		return "", fmt.Errorf("no timeline of an upgrade of %s in %s (ConfigMap %s): runs keep one since noderoll %s; a managed group's EKS update keeps none",
			ref, engine.Namespace, engine.TimelineName(ref), "v0.1.0")
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, tl, time.Now()); err != nil {
		return "", fmt.Errorf("rendering the report: %w", err)
	}
	if out == "-" {
		_, err := w.Write(buf.Bytes())
		return out, err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("writing the report: %w", err)
	}
	return out, nil
}
