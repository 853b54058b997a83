package cli

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/progress"
)

type watchFlags struct {
	cluster, name       string
	kubeconfig, kubeCtx string
	output              string
	wait                bool
	stoppedAfter        time.Duration
}

func newWatchCmd(s Streams) *cobra.Command {
	f := &watchFlags{output: "text", stoppedAfter: 5 * time.Second}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow an upgrade under way, whoever runs it, from what the cluster records",
		Long: `Attach to a node group's upgrade wherever it runs (a noderoll upgrade in
another terminal or a CI job, or the controller) and show its live view: the
steps as the run tells them, every node of the group coming and going with
its zone, AMI and state, old and new nodes per zone, the ETA from the plan's
prediction, and each wait on a disruption budget, the budget named.

It reads only the cluster: the run's timeline (a ConfigMap beside its
record in kube-system) and the nodes. It needs no AWS credentials and
changes nothing; Ctrl-C stops watching, not the upgrade.

It ends with the run: exit 0 when the upgrade completed (or was rolled back
or aborted as asked), 1 when it stopped on a failure or its process died.
With no upgrade under way it says what the last one did and exits 0, or with
--wait waits for the next one to start.

Lines are for people; -o json writes one event a line for tools (kinds step,
info, wait, node, predicted, end; each with the group's node count, old and
new nodes per zone, elapsed seconds and the ETA).`,
		Example: `  noderoll watch nodegroup --cluster=eksworkshop-eksctl --name=nodegroup

  # Wait for the next upgrade of the group and follow it, for a script:
  noderoll watch nodegroup --cluster=prod --name=workers --wait -o json

  # An upgrade the controller runs, by its resource:
  noderoll watch nodegroupupgrade workers-x7k2p`,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.kubeCtx, "context", "", "kubeconfig context (default: the current one)")
	fl.StringVarP(&f.output, "output", "o", f.output, "text (lines for people) or json (one event a line)")
	fl.BoolVar(&f.wait, "wait", false, "with no upgrade under way, wait for the next one to start instead of exiting")
	completeWith(cmd, "output", "text", "json")

	cmd.AddCommand(byGroupOrResource(f, namedBy{
		groupShort: "Follow the upgrade of a node group, by cluster and group name",
		groupExample: `  noderoll watch nodegroup --cluster=eksworkshop-eksctl --name=nodegroup
  noderoll watch nodegroup --cluster=prod --name=workers --wait -o json`,
		resourceShort: "Follow the upgrade a NodeGroupUpgrade declared, by the resource's name",
		resourceExample: `  noderoll watch nodegroupupgrade workers-x7k2p
  kubectl noderoll watch ngu workers-x7k2p -o json`,
	}, func(ctx context.Context, ref cloud.NodeGroupRef) error { return runWatch(ctx, s, f, ref) })...)
	return cmd
}

// namedBy is the help of a command's two ways to name an upgrade.
type namedBy struct {
	groupShort, groupExample, resourceShort, resourceExample string
}

// byGroupOrResource makes the two subcommands of watch and report: an
// upgrade named by its cluster and group (nodegroup), or by the
// NodeGroupUpgrade that declared it (nodegroupupgrade NAME).
func byGroupOrResource(f *watchFlags, help namedBy, run func(context.Context, cloud.NodeGroupRef) error) []*cobra.Command {
	group := &cobra.Command{
		Use: "nodegroup", Short: help.groupShort, Example: help.groupExample, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cloud.NodeGroupRef{Cluster: f.cluster, Name: f.name})
		},
	}
	group.Flags().StringVar(&f.cluster, "cluster", "", "EKS cluster name (required)")
	group.Flags().StringVar(&f.name, "name", "", "node group name, as given to upgrade (required)")
	_ = group.MarkFlagRequired("cluster")
	_ = group.MarkFlagRequired("name")
	resource := &cobra.Command{
		Use: "nodegroupupgrade NAME", Aliases: []string{"ngu"}, Short: help.resourceShort, Example: help.resourceExample, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := resourceGroup(cmd.Context(), f, args[0])
			if err != nil {
				return err
			}
			return run(cmd.Context(), ref)
		},
	}
	return []*cobra.Command{group, resource}
}

// resourceGroup is the group a NodeGroupUpgrade names.
func resourceGroup(ctx context.Context, f *watchFlags, name string) (cloud.NodeGroupRef, error) {
	cfg, err := restConfig(f.kubeconfig, f.kubeCtx)
	if err != nil {
		return cloud.NodeGroupRef{}, err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return cloud.NodeGroupRef{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return cloud.NodeGroupRef{}, err
	}
	var u v1alpha1.NodeGroupUpgrade
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &u); err != nil {
		return cloud.NodeGroupRef{}, fmt.Errorf("reading NodeGroupUpgrade %s (kubectl get nodegroupupgrades lists them; the CRD comes with the chart, docs/controller.md): %w", name, err)
	}
	return cloud.NodeGroupRef{Cluster: u.Spec.Cluster, Name: u.Spec.NodeGroup}, nil
}

// watcher follows one group's timeline and tells it through the view.
type watcher struct {
	view    *progress.View
	kube    kubernetes.Interface
	ref     cloud.NodeGroupRef
	members *engine.Members

	mu  sync.Mutex
	old map[string]bool // instance -> replaced by the run
	// The run followed (its start), and the last event told.
	run     time.Time
	lastSeq int
	nodesOn bool
	// toReplace is the prediction's count the view has (-1: none yet;
	// the run sets it at its first look at the group).
	toReplace int
}

func runWatch(ctx context.Context, s Streams, f *watchFlags, ref cloud.NodeGroupRef) error {
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output %q: want text or json", f.output)
	}
	kube, err := kubeClient(f.kubeconfig, f.kubeCtx)
	if err != nil {
		return err
	}
	var view *progress.View
	if f.output == "json" {
		view = progress.NewJSONView(s.Out, clock.RealClock{})
	} else {
		tty := false
		if file, ok := s.Out.(*os.File); ok {
			tty = term.IsTerminal(int(file.Fd()))
		}
		view = progress.NewView(s.Out, tty, clock.RealClock{})
	}
	defer view.Close()
	w := &watcher{view: view, kube: kube, ref: ref, members: engine.NewMembers(), old: map[string]bool{}}
	view.Old(w.isOld)

	ictx, stop := context.WithCancel(ctx)
	defer stop()
	latest, first, err := watchTimeline(ictx, kube, ref)
	if err != nil {
		return err
	}
	// A run that ended before the watch began is history: said, or waited
	// past with --wait.
	var past time.Time
	size := 0 // the group's node count before any update, for EKS's own
	if first == nil || !first.Ended.IsZero() {
		if first != nil {
			past = first.Started
		}
		if p, err := lookAtGroup(ictx, kube, ref.Name); err != nil {
			return err
		} else if p.updating() {
			return followEKS(ictx, view, kube, ref, time.Second, 0)
		} else if p.settled() {
			size = p.nodes
		}
		if !f.wait {
			if first == nil {
				view.Info(fmt.Sprintf("no upgrade of %s has run with noderoll here (no timeline %s/%s); --wait waits for one", ref, engine.Namespace, engine.TimelineName(ref)))
			} else {
				view.Info(fmt.Sprintf("no upgrade of %s under way; the last one, started %s, ended %s at phase %s%s (noderoll report tells it all)",
					ref, first.Started.Local().Format(time.RFC3339), first.Ended.Local().Format(time.RFC3339), first.Phase, suffix(first.Message)))
			}
			return nil
		}
		view.Info(fmt.Sprintf("waiting for an upgrade of %s to start (noderoll's, or EKS's own)", ref))
		first = nil
	}
	check := time.NewTicker(f.stoppedAfter)
	defer check.Stop()
	tl, cur := first, first
	for {
		if tl != nil && !tl.Started.Equal(past) {
			cur = tl
			done, err := w.show(ictx, tl)
			if done {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case tl = <-latest:
		case <-check.C:
			// A run killed without a word writes nothing more: its lock,
			// no longer renewed, says so.
			if w.following() && cur != nil && cur.Ended.IsZero() {
				if holder, live, err := engine.RunHolder(ictx, kube, ref, time.Now()); err == nil && !live {
					who := "its process"
					if holder != "" {
						who = holder
					}
					view.End("Stopped", fmt.Sprintf("%s stopped renewing the group's lock without ending the run (killed?); rerun the same upgrade command to resume it", who))
					return fmt.Errorf("the upgrade of %s stopped at phase %s: its process is gone", ref, cur.Phase)
				}
			}
			tl = nil
			if !w.following() {
				// EKS's own update writes no timeline: its nodes tell it.
				if p, err := lookAtGroup(ictx, kube, ref.Name); err == nil && p.updating() {
					return followEKS(ictx, view, kube, ref, time.Second, size)
				}
			}
		}
	}
}

// watchTimeline follows the group's timeline ConfigMap, alone, through an
// informer until ctx ends: every write of the run arrives on the channel,
// the latest alone kept. first is the timeline as it is now (nil: none).
func watchTimeline(ctx context.Context, kube kubernetes.Interface, ref cloud.NodeGroupRef) (<-chan *engine.Timeline, *engine.Timeline, error) {
	latest := make(chan *engine.Timeline, 1)
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(engine.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + engine.TimelineName(ref) }))
	inf := factory.Core().V1().ConfigMaps().Informer()
	put := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok {
			return
		}
		tl, err := engine.DecodeTimeline(cm)
		if err != nil {
			return
		}
		select {
		case <-latest:
		default:
		}
		latest <- tl
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: put, UpdateFunc: func(_, o any) { put(o) }})
	if err != nil {
		return nil, nil, err
	}
	factory.Start(ctx.Done())
	// The handler's own sync: the timeline listed has been handed to put,
	// not only stored (else a finished run could read as none).
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil, nil, fmt.Errorf("reading the timeline of %s: %w", ref, ctx.Err())
	}
	var first *engine.Timeline
	select {
	case first = <-latest:
	default:
	}
	return latest, first, nil
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func (w *watcher) following() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.run.IsZero()
}

func (w *watcher) isOld(n *corev1.Node) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.old[cloud.InstanceIDOf(n.Spec.ProviderID)]
}

// show tells what a timeline adds to what was told; done when its run ended.
func (w *watcher) show(ctx context.Context, tl *engine.Timeline) (done bool, err error) {
	w.mu.Lock()
	if !tl.Started.Equal(w.run) {
		// A run to follow (the first, or the next after one that ended).
		w.run, w.lastSeq, w.old = tl.Started, 0, map[string]bool{}
	}
	var insts []cloud.Instance
	added := false
	replaced := 0
	for _, n := range tl.Nodes {
		if _, ok := w.old[n.Instance]; !ok {
			added = true
		}
		w.old[n.Instance] = n.Old
		insts = append(insts, cloud.Instance{ID: n.Instance})
		if n.Old && n.Terminated > tl.PredictedFrom {
			replaced++ // since the prediction: a resumed run's counts from its resume
		}
	}
	attach := !w.nodesOn
	w.nodesOn = true
	predict := attach || tl.ToReplace != w.toReplace
	w.toReplace = tl.ToReplace
	w.mu.Unlock()
	w.members.Add(insts)
	from := tl.PredictedFrom.At(tl.Started)
	if attach {
		w.view.InfoAt(tl.Started, fmt.Sprintf("watching the upgrade of %s to %s (strategy %s), started %s", w.ref, tl.Target, tl.Strategy, tl.Started.Local().Format(time.Kitchen)))
	} else if added {
		w.view.Recheck()
	}
	switch {
	case !predict || tl.Predicted <= 0 || tl.ToReplace < 0:
	case tl.PredictedFrom > 0:
		w.view.InfoAt(from, fmt.Sprintf("Predicted at its resume: about %s for the %d nodes left", time.Duration(tl.Predicted).Round(time.Second), tl.ToReplace))
	default:
		assuming := ""
		if tl.PredictedAssuming != "" {
			assuming = " (assuming " + tl.PredictedAssuming + ")"
		}
		w.view.InfoAt(from, fmt.Sprintf("Predicted: about %s for %d nodes%s", time.Duration(tl.Predicted).Round(time.Second), tl.ToReplace, assuming))
	}
	for _, e := range tl.Events {
		if e.Seq <= w.lastSeq {
			continue
		}
		w.lastSeq = e.Seq
		switch e.Kind {
		case engine.EventStep:
			w.view.StepAt(e.Time, e.Step, e.Title, e.Message)
		case engine.EventWait:
			w.view.WaitAt(e.Time, e.Node, e.Message, e.Budgets, e.Message)
		default:
			w.view.InfoAt(e.Time, e.Message)
		}
	}
	if predict {
		// After the replay: the replacements it told before the
		// prediction's start (a resumed run's first part) are not the
		// prediction's; Replaced below counts those after it.
		w.view.Attach(from, time.Duration(tl.Predicted), time.Duration(tl.PredictedTail), tl.ToReplace, 0)
	}
	if attach {
		// The nodes as they are now, after what the run told so far.
		if err := w.view.WatchNodes(ctx, w.kube, w.members.Owns); err != nil {
			return true, fmt.Errorf("watching nodes: %w", err)
		}
		if len(tl.Instances) > 0 {
			w.view.SetInitial(int(tl.Instances[0][1]))
		}
	}
	w.view.Replaced(replaced)
	if tl.Ended.IsZero() {
		return false, nil
	}
	w.view.Zones()
	w.view.End(tl.Phase, tl.Message)
	switch tl.Phase {
	case engine.PhaseCompleted, engine.PhaseRolledBack, engine.PhaseAborted:
		return true, nil
	}
	return true, fmt.Errorf("the upgrade of %s stopped at phase %s%s; rerun the same upgrade command to resume it", w.ref, tl.Phase, suffix(tl.Message))
}
