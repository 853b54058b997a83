// Package drain evicts a node's pods through the Eviction API within their
// PodDisruptionBudgets. It builds on k8s.io/kubectl/pkg/drain for pod
// filtering, eviction and cordoning, and adds what an upgrade needs on top:
// the pods and budgets that block, named from the first refusal, and a
// retry delay that is never zero.
package drain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	kdrain "k8s.io/kubectl/pkg/drain"
	"k8s.io/utils/clock"
)

// Options tune a drain.
type Options struct {
	// Timeout bounds the whole eviction of one node (EKS: 15 minutes).
	Timeout time.Duration
	// RetryDelay is the wait between eviction attempts a budget refused.
	// kubectl's CLI uses 5s; the library's zero value would spin.
	RetryDelay time.Duration
	// Force deletes the pods still there at Timeout, bypassing their budgets,
	// instead of failing.
	Force bool
}

// DefaultOptions are EKS's: 15 minutes, retried every 5 seconds, no force.
func DefaultOptions() Options {
	return Options{Timeout: 15 * time.Minute, RetryDelay: 5 * time.Second}
}

// Blocker is a pod whose eviction was refused, and why.
type Blocker struct {
	Namespace, Pod string
	PDBs           []string // budgets selecting the pod, "ns/name (allowed disruptions N)"
	Reason         string   // the API server's word
}

func (b Blocker) String() string {
	s := "pod " + b.Namespace + "/" + b.Pod
	if len(b.PDBs) > 0 {
		s += " blocked by PodDisruptionBudget " + strings.Join(b.PDBs, ", ")
	} else {
		s += ": " + b.Reason
	}
	return s
}

// BlockedError says a node could not be drained in time.
type BlockedError struct {
	Node     string
	After    time.Duration
	Blockers []Blocker
	Waiting  []string // pods evicted but not yet gone
}

func (e *BlockedError) Error() string {
	var parts []string
	if len(e.Blockers) > 0 {
		parts = append(parts, joinBlockers(e.Blockers))
	}
	for _, w := range e.Waiting {
		parts = append(parts, "pod "+w+" still terminating")
	}
	return fmt.Sprintf("eviction from node %s did not finish within %s: %s", e.Node, e.After, strings.Join(parts, "; "))
}

// Hooks report progress; any may be nil.
type Hooks struct {
	Evicted func(node string, pod *corev1.Pod)
	Blocked func(node string, blockers []Blocker)
	Forced  func(node string, pod *corev1.Pod)
}

// Drainer drains nodes.
type Drainer struct {
	evictionGV schema.GroupVersion // found once, on first drain
	client     kubernetes.Interface
	clock      clock.Clock
	opts       Options
	hooks      Hooks
	log        *slog.Logger
}

// New returns a Drainer.
func New(c kubernetes.Interface, clk clock.Clock, o Options, h Hooks, log *slog.Logger) *Drainer {
	if o.RetryDelay <= 0 {
		o.RetryDelay = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Drainer{client: c, clock: clk, opts: o, hooks: h, log: log}
}

func (d *Drainer) helper(ctx context.Context) *kdrain.Helper {
	return &kdrain.Helper{
		Ctx: ctx, Client: d.client,
		// As EKS: every pod goes, DaemonSet and mirror pods excepted; pods
		// with emptyDir or no controller are evicted too.
		Force: true, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		GracePeriodSeconds: -1, Out: io.Discard, ErrOut: io.Discard,
	}
}

// Cordon marks a node unschedulable; idempotent.
func (d *Drainer) Cordon(ctx context.Context, node *corev1.Node) error {
	if node.Spec.Unschedulable {
		return nil
	}
	if err := kdrain.RunCordonOrUncordon(d.helper(ctx), node, true); err != nil {
		return fmt.Errorf("cordoning node %s: %w", node.Name, err)
	}
	return nil
}

// Pending lists the pods an eviction of the node must still move.
func (d *Drainer) Pending(ctx context.Context, node string) ([]corev1.Pod, error) {
	list, errs := d.helper(ctx).GetPodsForDeletion(node)
	if len(errs) > 0 {
		return nil, fmt.Errorf("listing pods of node %s: %w", node, errors.Join(errs...))
	}
	return list.Pods(), nil
}

// Drain evicts every pod of the node (DaemonSet and mirror pods excepted)
// and waits until they are gone. Refused evictions are retried every
// RetryDelay and reported through Hooks.Blocked as soon as they happen.
// At Timeout it returns a *BlockedError naming the pods and their budgets,
// or, with Force, deletes what is left.
func (d *Drainer) Drain(ctx context.Context, node string) (err error) {
	// Cut short by the caller (--timeout, Ctrl-C), wherever in the loop: still
	// say what held the node up at the last look.
	var lastBlockers []Blocker
	defer func() {
		if err != nil && ctx.Err() != nil && len(lastBlockers) > 0 {
			err = fmt.Errorf("draining node %s, stopped while %s: %w", node, joinBlockers(lastBlockers), ctx.Err())
		}
	}()
	h := d.helper(ctx)
	if d.evictionGV.Empty() {
		gv, err := kdrain.CheckEvictionSupport(d.client)
		if err != nil {
			return fmt.Errorf("checking eviction support: %w", err)
		}
		if gv.Empty() {
			return fmt.Errorf("the API server does not serve the Eviction API (pods/eviction); noderoll drains only through it")
		}
		d.evictionGV = gv
	}
	gv := d.evictionGV
	start := d.clock.Now()
	lastReport := ""
	for {
		pods, err := d.Pending(ctx, node)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		var blockers []Blocker
		var waiting []string
		for k := range pods {
			p := &pods[k]
			if p.DeletionTimestamp != nil {
				waiting = append(waiting, p.Namespace+"/"+p.Name)
				continue
			}
			err := h.EvictPod(*p, gv)
			switch {
			case err == nil:
				d.log.Debug("evicted", "node", node, "pod", p.Namespace+"/"+p.Name)
				if d.hooks.Evicted != nil {
					d.hooks.Evicted(node, p)
				}
				waiting = append(waiting, p.Namespace+"/"+p.Name)
			case apierrors.IsNotFound(err):
			case apierrors.IsTooManyRequests(err) || isMultiplePDBs(err):
				blockers = append(blockers, d.blocker(ctx, p, err))
			default:
				return fmt.Errorf("evicting pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err)
			}
		}
		lastBlockers = blockers
		if len(blockers) > 0 && d.hooks.Blocked != nil {
			if rep := fmt.Sprint(blockers); rep != lastReport {
				d.hooks.Blocked(node, blockers)
				lastReport = rep
			}
		}
		if elapsed := d.clock.Since(start); elapsed >= d.opts.Timeout {
			if !d.opts.Force {
				return &BlockedError{Node: node, After: d.opts.Timeout, Blockers: blockers, Waiting: waiting}
			}
			return d.forceDelete(ctx, h, node)
		}
		delay := time.Second // evicted pods are on their way; look again soon
		if len(blockers) > 0 {
			delay = d.opts.RetryDelay
		}
		if remaining := d.opts.Timeout - d.clock.Since(start); remaining < delay {
			delay = max(remaining, 0)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining node %s: %w", node, ctx.Err())
		case <-d.clock.After(delay):
		}
	}
}

func joinBlockers(bs []Blocker) string {
	parts := make([]string, len(bs))
	for k, b := range bs {
		parts[k] = b.String()
	}
	return strings.Join(parts, "; ")
}

// forceDelete deletes what the budgets held back, as `--force` does on EKS.
func (d *Drainer) forceDelete(ctx context.Context, h *kdrain.Helper, node string) error {
	for {
		pods, err := d.Pending(ctx, node)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		for k := range pods {
			p := &pods[k]
			if p.DeletionTimestamp != nil {
				continue
			}
			if err := h.DeletePod(*p); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err)
			}
			if d.hooks.Forced != nil {
				d.hooks.Forced(node, p)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining node %s: %w", node, ctx.Err())
		case <-d.clock.After(time.Second):
		}
	}
}

func isMultiplePDBs(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "more than one PodDisruptionBudget")
}

// blocker names the budgets that select a refused pod, with how many
// disruptions each allows now.
func (d *Drainer) blocker(ctx context.Context, p *corev1.Pod, cause error) Blocker {
	b := Blocker{Namespace: p.Namespace, Pod: p.Name, Reason: cause.Error()}
	pdbs, err := d.client.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return b
	}
	for _, pdb := range matching(pdbs.Items, p) {
		b.PDBs = append(b.PDBs, describe(pdb))
	}
	sort.Strings(b.PDBs)
	return b
}

func matching(pdbs []policyv1.PodDisruptionBudget, p *corev1.Pod) []policyv1.PodDisruptionBudget {
	var out []policyv1.PodDisruptionBudget
	for _, pdb := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out
}

func describe(pdb policyv1.PodDisruptionBudget) string {
	spec := ""
	switch {
	case pdb.Spec.MinAvailable != nil:
		spec = "minAvailable " + pdb.Spec.MinAvailable.String()
	case pdb.Spec.MaxUnavailable != nil:
		spec = "maxUnavailable " + pdb.Spec.MaxUnavailable.String()
	}
	return fmt.Sprintf("%s/%s (%s, %d/%d healthy, allowed disruptions %d)", pdb.Namespace, pdb.Name, spec,
		pdb.Status.CurrentHealthy, pdb.Status.ExpectedPods, pdb.Status.DisruptionsAllowed)
}
