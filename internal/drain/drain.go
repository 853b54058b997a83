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
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	kdrain "k8s.io/kubectl/pkg/drain"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/disruption"
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
	// SkipWaitForDelete gives up waiting on a pod that is still there this
	// long after its deletion was due (a finalizer that never clears, a dead
	// kubelet), as kubectl drain's --skip-wait-for-delete-timeout does. On a
	// node whose kubelet stopped reporting, nothing will ever finish the
	// pod, so the wait there is one second, as Cluster API does.
	SkipWaitForDelete time.Duration
}

// DefaultOptions are EKS's: 15 minutes, retried every 5 seconds, no force;
// pods stuck terminating are left behind after a minute.
func DefaultOptions() Options {
	return Options{Timeout: 15 * time.Minute, RetryDelay: 5 * time.Second, SkipWaitForDelete: time.Minute}
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

// Budgets names the budgets that refused the eviction, without their
// counts of the moment.
func (b Blocker) Budgets() []string {
	var names []string
	for _, p := range b.PDBs {
		name, _, _ := strings.Cut(p, " (")
		names = append(names, name)
	}
	return names
}

// WaitKey names a drain's wait: on the budgets named or, when none is, on
// the pod. A refused eviction retried has the same key, so it is told once.
func WaitKey(node string, budgets []string, pod string) string {
	if len(budgets) == 0 {
		return node + "|" + pod
	}
	return node + "|" + strings.Join(budgets, ",")
}

// BlockedError says a node could not be drained in time.
type BlockedError struct {
	Node      string
	After     time.Duration
	Blockers  []Blocker
	Waiting   []string // pods evicted but not yet gone
	Throttled []string // pods whose evictions the API server throttled (not a budget)
}

func (e *BlockedError) Error() string {
	var parts []string
	if len(e.Blockers) > 0 {
		parts = append(parts, joinBlockers(e.Blockers))
	}
	for _, w := range e.Waiting {
		parts = append(parts, "pod "+w+" still terminating")
	}
	if len(e.Throttled) > 0 {
		parts = append(parts, "evictions of "+strings.Join(e.Throttled, ", ")+" throttled by the API server (429 without a disruption budget: API priority and fairness or a rate limit)")
	}
	return fmt.Sprintf("eviction from node %s did not finish within %s: %s", e.Node, e.After, strings.Join(parts, "; "))
}

// MultipleBudgetsError says a pod is selected by more than one
// PodDisruptionBudget: the Eviction API refuses such a pod every time, so
// retrying cannot help.
type MultipleBudgetsError struct {
	Node, Namespace, Pod string
	PDBs                 []string
}

func (e *MultipleBudgetsError) Error() string {
	return fmt.Sprintf("pod %s/%s on node %s is selected by more than one PodDisruptionBudget (%s), and the Eviction API refuses to evict such a pod: change the budgets' selectors so that at most one selects it, then rerun",
		e.Namespace, e.Pod, e.Node, strings.Join(e.PDBs, "; "))
}

// Hooks report progress; any may be nil.
type Hooks struct {
	Evicted func(node string, pod *corev1.Pod)
	Blocked func(node string, blockers []Blocker)
	Forced  func(node string, pod *corev1.Pod)
	// GaveUp reports a pod left terminating after SkipWaitForDelete.
	GaveUp func(node string, pod *corev1.Pod, terminatingFor time.Duration)
	// Waited reports, as a drain ends with its node empty, how long its
	// evictions were held by disruption budgets in all and by which: the
	// end of the waits Blocked told as they began.
	Waited func(node string, waited time.Duration, budgets []string)
}

// Drainer drains nodes.
type Drainer struct {
	gvMu       sync.Mutex
	evictionGV schema.GroupVersion // found once, on first drain
	budgets    *Budgets            // nil: budgets are learnt from refusals only
	podsGone   *NodeBroadcast      // nil: pods' going is polled
	reads      *Reads              // nil: nodes, pods and DaemonSets are asked for
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
	if o.SkipWaitForDelete <= 0 {
		o.SkipWaitForDelete = DefaultOptions().SkipWaitForDelete
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Drainer{client: c, clock: clk, opts: o, hooks: h, log: log}
}

func (d *Drainer) helper(ctx context.Context) *kdrain.Helper {
	return d.helperReading(ctx, false)
}

// helperReading is the drain helper, reading from the caches when there are
// some; livePods lists the node's pods from the API server all the same.
func (d *Drainer) helperReading(ctx context.Context, livePods bool) *kdrain.Helper {
	var client kubernetes.Interface = d.client
	if d.reads != nil {
		client = cachedClient{Interface: d.client, reads: d.reads, livePods: livePods}
	}
	return &kdrain.Helper{
		Ctx: ctx, Client: client,
		// As EKS: every pod goes, DaemonSet and mirror pods excepted; pods
		// with emptyDir or no controller are evicted too.
		Force: true, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		GracePeriodSeconds: -1, Out: io.Discard, ErrOut: io.Discard,
		SkipWaitForDeleteTimeoutSeconds: max(1, int(d.opts.SkipWaitForDelete/time.Second)),
	}
}

// unreachable reports a node whose kubelet no longer reports: its pods will
// never finish terminating by themselves.
func (d *Drainer) unreachable(ctx context.Context, node string) bool {
	var n *corev1.Node
	var err error
	if d.reads != nil && d.reads.Nodes != nil {
		n, err = d.reads.Nodes.Get(node)
	} else {
		n, err = d.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	}
	if err != nil {
		return false
	}
	return conditions.NodeUnreachable(n)
}

// Watch makes drains react to changes instead of polling: b tracks the
// disruption budgets (evictions they refuse are not sent; blocked drains
// wake when one changes), gone is notified when a pod of a node is deleted.
func (d *Drainer) Watch(b *Budgets, gone *NodeBroadcast) {
	d.budgets, d.podsGone = b, gone
}

// Read makes drains read nodes, pods and DaemonSets from the caller's
// informers. A drain still lists its node's pods from the API server once
// before it says the node is empty: a pod bound a moment ago may not be in
// the cache yet.
func (d *Drainer) Read(r Reads) { d.reads = &r }

// askEvery is how often an eviction its budget's status refuses is sent
// anyway: every RetryDelay when budgets are not watched, else rarely, in
// case the watch lags (a budget that frees wakes the drain at once).
func (d *Drainer) askEvery() time.Duration {
	if d.budgets == nil {
		return d.opts.RetryDelay
	}
	return max(d.opts.RetryDelay, 15*time.Second)
}

func (d *Drainer) evictionVersion() (schema.GroupVersion, error) {
	d.gvMu.Lock()
	defer d.gvMu.Unlock()
	if d.evictionGV.Empty() {
		gv, err := kdrain.CheckEvictionSupport(d.client)
		if err != nil {
			return gv, fmt.Errorf("checking eviction support: %w", err)
		}
		if gv.Empty() {
			return gv, fmt.Errorf("the API server does not serve the Eviction API (pods/eviction); noderoll drains only through it")
		}
		d.evictionGV = gv
	}
	return d.evictionGV, nil
}

// Cordon marks a node unschedulable; idempotent.
func (d *Drainer) Cordon(ctx context.Context, node *corev1.Node) error {
	if node.Spec.Unschedulable {
		return nil
	}
	// The helper writes to the node it is given; callers pass informer
	// cache objects, which must stay untouched.
	if err := kdrain.RunCordonOrUncordon(d.helper(ctx), node.DeepCopy(), true); err != nil {
		return fmt.Errorf("cordoning node %s: %w", node.Name, err)
	}
	return nil
}

func (d *Drainer) pending(h *kdrain.Helper, node string) ([]corev1.Pod, error) {
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return nil, fmt.Errorf("listing pods of node %s: %w", node, errors.Join(errs...))
	}
	return list.Pods(), nil
}

// remaining is what the node still holds: from the caches, when drains read
// them, but asked of the API server before saying the node is empty, as
// the cache may not have a pod bound a moment ago.
func (d *Drainer) remaining(ctx context.Context, h *kdrain.Helper, node string) ([]corev1.Pod, error) {
	pods, err := d.pending(h, node)
	if err != nil || len(pods) > 0 || d.reads == nil {
		return pods, err
	}
	live := d.helperReading(ctx, true)
	live.SkipWaitForDeleteTimeoutSeconds = h.SkipWaitForDeleteTimeoutSeconds
	return d.pending(live, node)
}

// gaveUp reports, once each, the pods of the node still terminating past
// the helper's skip timeout: Pending no longer lists them.
func (d *Drainer) gaveUp(ctx context.Context, h *kdrain.Helper, node string, told map[string]bool) {
	if d.hooks.GaveUp == nil {
		return
	}
	pods, err := h.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return
	}
	skip := time.Duration(h.SkipWaitForDeleteTimeoutSeconds) * time.Second
	for k := range pods.Items {
		p := &pods.Items[k]
		if p.DeletionTimestamp == nil || p.Spec.NodeName != node || told[p.Namespace+"/"+p.Name] {
			continue
		}
		if late := d.clock.Since(p.DeletionTimestamp.Time); late > skip {
			told[p.Namespace+"/"+p.Name] = true
			d.hooks.GaveUp(node, p, late)
		}
	}
}

// podGoneFallback is how often a drain told of its pods' going lists them
// anyway while they stop.
const podGoneFallback = 5 * time.Second

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
	if d.unreachable(ctx, node) {
		h.SkipWaitForDeleteTimeoutSeconds = 1
	}
	gv, err := d.evictionVersion()
	if err != nil {
		return err
	}
	start := d.clock.Now()
	lastReport := ""
	var held holds
	told := map[string]bool{}
	// Evictions a budget's status says it refuses are not sent; the API
	// server, which has the last word, is asked again every RetryDelay.
	lastAsked := start
	var pods []corev1.Pod
	relist := true
	// Pods this drain evicted: a cache may still show one as it was for a
	// moment, and it is not evicted twice.
	evicted := map[string]bool{}
	turn := d.budgets.Turn()
	defer d.budgets.Done(turn)
	for {
		budgetChanged := d.budgets.changed()
		podGone := d.podsGone.Changed(node)
		if relist {
			if pods, err = d.remaining(ctx, h, node); err != nil {
				return err
			}
		}
		if len(pods) == 0 {
			d.gaveUp(ctx, h, node, told)
			if held.pass(d.clock.Now(), nil); held.total > 0 && d.hooks.Waited != nil {
				d.hooks.Waited(node, held.total, held.budgets)
			}
			return nil
		}
		ask := d.clock.Since(lastAsked) >= d.askEvery()
		if ask {
			lastAsked = d.clock.Now()
		}
		// Every pod still to evict is queued for its budgets first: a
		// drain that began later does not take a disruption this one will
		// ask for a moment later, while it evicts its pods in turn.
		for k := range pods {
			if p := &pods[k]; p.DeletionTimestamp == nil && !evicted[podKey(p)] {
				d.budgets.Want(p, turn)
			}
		}
		ps, err := d.evictPass(ctx, h, gv, node, pods, passState{ask: ask, turn: turn, evicted: evicted})
		if err != nil {
			return err
		}
		blockers, waiting, throttled, backoff := ps.blockers, ps.waiting, ps.throttled, ps.backoff
		lastBlockers = blockers
		held.pass(d.clock.Now(), blockers)
		if len(blockers) > 0 && d.hooks.Blocked != nil {
			if rep := blockerKey(blockers); rep != lastReport {
				d.hooks.Blocked(node, blockers)
				lastReport = rep
			}
		}
		if elapsed := d.clock.Since(start); elapsed >= d.opts.Timeout {
			if !d.opts.Force {
				return &BlockedError{Node: node, After: d.opts.Timeout, Blockers: blockers, Waiting: waiting, Throttled: throttled}
			}
			return d.forceDelete(ctx, h, node, told)
		}
		delay := d.nextDelay(ps, start)
		if len(blockers) == 0 {
			budgetChanged = nil
		}
		relist = true
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining node %s: %w", node, ctx.Err())
		case <-d.clock.After(delay):
		case <-podGone:
			// Pods of a node often go together: one listing for the lot.
			select {
			case <-ctx.Done():
			case <-d.clock.After(100 * time.Millisecond):
			}
		case <-budgetChanged:
			// Only the blocked pods' evictions may pass now: no listing.
			relist = backoff > 0
		}
	}
}

// holds adds up the spells a drain's evictions were held by budgets.
type holds struct {
	since   time.Time // the current spell's start; zero when none is held
	total   time.Duration
	budgets []string // each budget that held, in the order first seen
}

// pass takes one eviction pass's blockers at now.
func (h *holds) pass(now time.Time, blockers []Blocker) {
	if len(blockers) == 0 {
		if !h.since.IsZero() {
			h.total += now.Sub(h.since)
			h.since = time.Time{}
		}
		return
	}
	if h.since.IsZero() {
		h.since = now
	}
	for _, b := range blockers {
		for _, name := range b.Budgets() {
			if !slices.Contains(h.budgets, name) {
				h.budgets = append(h.budgets, name)
			}
		}
	}
}

// passState is what an eviction pass reads of its drain: whether to ask
// the API server whatever the budgets' statuses say, the drain's turn in
// the budgets' queues, and the pods it evicted already.
type passState struct {
	ask     bool
	turn    int64
	evicted map[string]bool
}

// pass is what one eviction pass over a node's pods found: pods blocked
// (and by what), pods on their way out, evictions to ask again soon, and
// how long the API server asked to be left alone.
type pass struct {
	blockers           []Blocker
	waiting, throttled []string
	backoff            time.Duration
}

// evictPass asks once to evict each pod of the node still there; an error
// is one no later pass can change.
func (d *Drainer) evictPass(ctx context.Context, h *kdrain.Helper, gv schema.GroupVersion, node string, pods []corev1.Pod, st passState) (pass, error) {
	var ps pass
	// A node's evictions go one after another, unlike kubectl's drain:
	// the API server writes a budget's status in each eviction and,
	// when another write came first, retries it after half a second.
	// Many drains at once already keep a budget's evictions coming;
	// at 300 nodes, evicting each node's pods together (and, apart,
	// at most 8 a budget at once) made more of them collide, took CPU
	// from the control plane and made the upgrade slower (3m16s and
	// 3m6s against 2m21s one after another: docs/performance.md).
	for k := range pods {
		p := &pods[k]
		if p.DeletionTimestamp != nil || st.evicted[podKey(p)] {
			ps.waiting = append(ps.waiting, p.Namespace+"/"+p.Name)
			continue
		}
		var taken Reservation
		if !st.ask {
			var refusing []string
			if taken, refusing = d.budgets.Take(p, st.turn); len(refusing) > 0 {
				sort.Strings(refusing)
				ps.blockers = append(ps.blockers, Blocker{Namespace: p.Namespace, Pod: p.Name, PDBs: refusing, Reason: "its budget allows no disruption now"})
				continue
			}
		}
		err := h.EvictPod(*p, gv)
		if err != nil {
			d.budgets.Return(taken)
		}
		switch {
		case err == nil:
			st.evicted[podKey(p)] = true
			d.budgets.Forget(p)
			d.log.Debug("evicted", "node", node, "pod", p.Namespace+"/"+p.Name)
			if d.hooks.Evicted != nil {
				d.hooks.Evicted(node, p)
			}
			ps.waiting = append(ps.waiting, p.Namespace+"/"+p.Name)
		case apierrors.IsNotFound(err):
			d.budgets.Forget(p)
		case isMultiplePDBs(err):
			// The API server will say this forever: fail now.
			return ps, &MultipleBudgetsError{Node: node, Namespace: p.Namespace, Pod: p.Name, PDBs: d.blocker(ctx, p, err).PDBs}
		case isBudgetRefusal(err):
			ps.blockers = append(ps.blockers, d.blocker(ctx, p, err))
		case isAdmissionDenial(err):
			// A policy (an admission webhook: a change freeze, a
			// guard of its own) said no. Like a budget it may say yes
			// later: retried every RetryDelay, reported, and failing
			// the drain only at Timeout.
			ps.blockers = append(ps.blockers, Blocker{Namespace: p.Namespace, Pod: p.Name, Reason: "eviction denied by " + apiMessage(err)})
		case apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsServiceUnavailable(err):
			// An API server too busy to finish the eviction in time (504,
			// 503): seen at 300 nodes. Whether or not it took, the next
			// pass lists the pod again and asks again if it is still there.
			ps.throttled = append(ps.throttled, p.Namespace+"/"+p.Name)
			d.log.Debug("eviction timed out on the API server", "node", node, "pod", p.Namespace+"/"+p.Name, "err", err)
		case apierrors.IsConflict(err):
			// The API server writes the budget's status as part of an
			// eviction; many evictions against one budget at once collide
			// there (409: "the object has been modified"), past its own
			// retries. Nothing was evicted: asked again on the next pass.
			ps.throttled = append(ps.throttled, p.Namespace+"/"+p.Name)
			d.log.Debug("eviction conflicted on its budget's status", "node", node, "pod", p.Namespace+"/"+p.Name)
		case apierrors.IsTooManyRequests(err):
			// Throttled (API priority and fairness), not refused by a
			// budget: back off as the server suggests, name no budget.
			ps.throttled = append(ps.throttled, p.Namespace+"/"+p.Name)
			wait := d.opts.RetryDelay
			if s, ok := apierrors.SuggestsClientDelay(err); ok && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			ps.backoff = max(ps.backoff, wait)
			d.log.Debug("eviction throttled", "node", node, "pod", p.Namespace+"/"+p.Name, "retryAfter", wait)
		default:
			return ps, fmt.Errorf("evicting pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err)
		}
	}
	return ps, nil
}

// nextDelay is how long a drain sleeps after a pass, unless a pod of the
// node goes or a blocking budget changes first.
func (d *Drainer) nextDelay(ps pass, start time.Time) time.Duration {
	// Wake when a pod of the node is gone, when a budget changes (a
	// refused eviction may pass now), or after a delay in case an event
	// was missed: a second while pods are on their way, RetryDelay while
	// only budgets hold them.
	delay := time.Second
	if d.podsGone != nil {
		// Told when a pod of the node goes: the timer only covers a
		// missed event. Relisting every second for each of 75 drains
		// at once was a third of the API requests at 300 nodes.
		delay = podGoneFallback
	}
	if len(ps.blockers) > 0 && len(ps.waiting) == 0 {
		delay = d.opts.RetryDelay
	}
	if len(ps.throttled) > 0 {
		// A conflict or a busy API server: ask again soon (a 429's
		// own delay, below, still holds).
		delay = min(delay, time.Second)
	}
	delay = max(delay, ps.backoff)
	if remaining := d.opts.Timeout - d.clock.Since(start); remaining < delay {
		delay = max(remaining, 0)
	}
	return delay
}

// podKey tells pods apart, a StatefulSet's pod of the same name
// recreated included.
func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name + "/" + string(p.UID) }

// blockerKey names which pods are blocked, not the budgets' counts of the
// moment: a report is repeated only when the set of pods changes.
func blockerKey(bs []Blocker) string {
	parts := make([]string, len(bs))
	for k, b := range bs {
		parts[k] = b.Namespace + "/" + b.Pod
	}
	return strings.Join(parts, ",")
}

func joinBlockers(bs []Blocker) string {
	parts := make([]string, len(bs))
	for k, b := range bs {
		parts[k] = b.String()
	}
	return strings.Join(parts, "; ")
}

// ComebackError says a force-deleted pod keeps coming back to the node: a
// controller binds a new one after each deletion (one that sets the pod's
// node itself, or tolerates the node's taints), so deleting never ends.
type ComebackError struct {
	Node, Pod, Owner string
	Deleted          int
}

func (e *ComebackError) Error() string {
	return fmt.Sprintf("pod %s on node %s keeps coming back: %d pods of %s were force-deleted and its controller bound another to the node each time; "+
		"stop that controller or keep it off the node (a node selector, or not tolerating the node's taints), then rerun", e.Pod, e.Node, e.Deleted, e.Owner)
}

// maxComebacks is how many pods of one owner a forced drain deletes from a
// node before it calls them a controller's doing rather than a straggler.
const maxComebacks = 3

// forceDelete deletes what the budgets held back, as `--force` does on EKS.
// Pods already terminating are waited for only up to the skip timeout, and
// a controller that binds a new pod to the node after each deletion is
// named after maxComebacks of its pods, so it ends whatever keeps pods
// there.
func (d *Drainer) forceDelete(ctx context.Context, h *kdrain.Helper, node string, told map[string]bool) error {
	deleted := map[string]int{} // owner -> pods of it deleted from the node
	for {
		pods, err := d.remaining(ctx, h, node)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			d.gaveUp(ctx, h, node, told)
			return nil
		}
		for k := range pods {
			p := &pods[k]
			if p.DeletionTimestamp != nil {
				continue
			}
			owner := ownerOf(p)
			if deleted[owner] >= maxComebacks {
				return &ComebackError{Node: node, Pod: p.Namespace + "/" + p.Name, Owner: owner, Deleted: deleted[owner]}
			}
			if err := h.DeletePod(*p); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting pod %s/%s from node %s: %w", p.Namespace, p.Name, node, err)
			}
			deleted[owner]++
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

// ownerOf names the pod's controller as "Kind namespace/name", or the pod
// itself when it has none.
func ownerOf(p *corev1.Pod) string {
	if ref := metav1.GetControllerOf(p); ref != nil {
		return ref.Kind + " " + p.Namespace + "/" + ref.Name
	}
	return "pod " + p.Namespace + "/" + p.Name
}

func isAdmissionDenial(err error) bool {
	msg := apiMessage(err)
	return strings.HasPrefix(msg, "admission webhook ") && strings.Contains(msg, " denied the request")
}

// apiMessage is an API error's own message, without client-go's wrapping.
func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

// isMultiplePDBs recognises the API server's refusal of a pod under two
// budgets: a bare 500 status, no reason, only this message.
func isMultiplePDBs(err error) bool {
	return strings.Contains(err.Error(), "more than one PodDisruptionBudget")
}

// isBudgetRefusal recognises an eviction a budget refused: the API server
// marks it with a DisruptionBudget cause (a 429, or a 403 when the budget's
// allowed disruptions went negative).
func isBudgetRefusal(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Details == nil {
		return false
	}
	for _, c := range st.Status().Details.Causes {
		if c.Type == policyv1.DisruptionBudgetCause {
			return true
		}
	}
	return false
}

// blocker names the budgets that select a refused pod, with how many
// disruptions each allows now.
func (d *Drainer) blocker(ctx context.Context, p *corev1.Pod, cause error) Blocker {
	b := Blocker{Namespace: p.Namespace, Pod: p.Name, Reason: cause.Error()}
	if d.budgets != nil {
		// Watched already: named from the cache, as Take names them.
		for _, pdb := range d.budgets.covering(p) {
			b.PDBs = append(b.PDBs, describe(*pdb))
		}
		sort.Strings(b.PDBs)
		return b
	}
	pdbs, err := d.client.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return b
	}
	for k := range pdbs.Items {
		if disruption.Selects(&pdbs.Items[k], p) {
			b.PDBs = append(b.PDBs, describe(pdbs.Items[k]))
		}
	}
	sort.Strings(b.PDBs)
	return b
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
