package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/conditions"
)

// Ceiling is how many pods a second the sandbox's control plane moves at
// most, measured apart from the upgrade, before it, on the same sandbox:
// every pod of the workload no budget covers is evicted, 16 at a time (the
// fastest of 1-96 tried), and the clock stops when all are back Ready
// elsewhere. No budget holds them, so nothing but the control plane sets
// the pace (the API server, the controllers, the scheduler, kwok, on the
// machine's cores); a budgeted pod costs it more (its budget's status is
// written in each eviction), so the figure is an upper limit on the rate
// any orchestrator could move the run's pods at.
type Ceiling struct {
	Pods     int           `json:"pods"`
	Took     time.Duration `json:"took"`
	PerSec   float64       `json:"podsPerSecond"`
	Workload string        `json:"workload"`
	// Term is the shortest time the control plane needs to move the run's
	// evicted pods at that rate, framed as the bound's terms are: B+R
	// (the first new capacity), then the longer of evictions/rate and W
	// (which runs alongside, from each node's cordon). It is not part of
	// the lower bound, whose terms the issue fixes; it is shown beside it,
	// because on a small machine it binds.
	Term time.Duration `json:"term"`
	// BudgetPerSec is how many evictions a second one budget took: a
	// budget allowing every disruption is put over BudgetPods of the same
	// workload's pods, which are evicted, BudgetConcurrency at a time,
	// while its other pods are evicted over and over to keep the control
	// plane as busy as an upgrade does; timed from the first budgeted
	// eviction asked to the last answered. Each eviction
	// writes the budget's status, writes to one object go one after
	// another, and one that collides (with another eviction's, or the
	// disruption controller's) is retried by the API server half a second
	// later: a budget over many pods can take longer than the control
	// plane takes to move them.
	BudgetPods        int           `json:"budgetPods,omitempty"`
	BudgetConcurrency int           `json:"budgetConcurrency,omitempty"`
	BudgetTook        time.Duration `json:"budgetTook,omitempty"`
	BudgetPerSec      float64       `json:"budgetEvictionsPerSecond,omitempty"`
	// BudgetUpgradePerSec is the rate an upgrade's budget is expected to
	// go at on this sandbox: the probe's, times probeToUpgrade. It is what
	// the plan is told.
	BudgetUpgradePerSec float64 `json:"budgetEvictionsPerSecondInAnUpgrade,omitempty"`
	// BudgetTerm is the time the largest budget's evictions take at the
	// upgrade's expected rate, framed as Term is. It is no bound: it is
	// what the plan is told, and a run may beat it.
	BudgetTerm time.Duration `json:"budgetTerm,omitempty"`
}

const ceilingConcurrency = 16

// probeSaturation is how many of the workload's other pods the budget
// probe evicts at a time meanwhile: the ceiling's 16, a load as heavy as
// the control plane takes, so that the probe reads the budget's rate at a
// steady worst rather than at whatever else happens to be moving. A
// lighter load (4 at a time, with 60 in flight) read 5.5, 6.6 and 3.9
// evictions a second on three 300-node sandboxes whose runs went at 5.3,
// 4.5 and 3.9: it follows the moment's load, not the run's.
const probeSaturation = ceilingConcurrency

// probeToUpgrade is how much faster an upgrade's largest budget has gone
// than the probe read under its saturating load, on the same sandbox: an
// upgrade loads the control plane less than the probe does. Read off the
// sandbox's 300-node rows, the probe (30 in flight, 16 saturating)
// against the web budget's 1,200 evictions in the run's timeline (first
// to last pod terminating): 3.0 and 4.4 a second (the CLI's, 4518f51),
// 3.5 and 5.3 (the CLI's, 9d632ed), 3.0 and 4.4 (the controller's,
// 9d632ed), 3.7 and 4.6 (the CLI's, with this factor at 1.5), 3.5 and
// 4.1 (the controller's, the same run): 1.47, 1.51, 1.47, 1.24, 1.17;
// the middle of that spread, so that the budget's term errs by 15% at
// most either way on those rows (docs/performance.md).
const probeToUpgrade = 1.35

// minCeilingPods is the fewest pods a ceiling is a rate for. With fewer, the
// clock mostly measures one pod's start (45 pods of a 30-node group come
// back in 2 s, a pod starting in 1): a latency, not what the control plane
// moves a second, and its term would come out above what was done.
const minCeilingPods = 100

// Meaningful says whether the ceiling was measured on enough pods to be a
// rate.
func (c Ceiling) Meaningful() bool { return c.Pods >= minCeilingPods && c.PerSec > 0 }

// minBudgetPods is the fewest evictions a budget's rate is measured on:
// with fewer, a few at a time, the clock measures a few evictions'
// latency, not a rate.
const minBudgetPods = 60

// BudgetMeaningful says whether one budget's rate was measured on enough
// evictions to be a rate.
func (c Ceiling) BudgetMeaningful() bool { return c.BudgetPods >= minBudgetPods && c.BudgetPerSec > 0 }

// measureCeiling evicts the unbudgeted workload's pods and times their
// return; then, under a budget of its own, evicts some of them again and
// times the evictions (see BudgetPerSec).
func measureCeiling(ctx context.Context, kube kubernetes.Interface, probe int) (Ceiling, error) {
	var c Ceiling
	d, err := unbudgeted(ctx, kube)
	if err != nil {
		return c, err
	}
	c.Workload = d.Namespace + "/" + d.Name
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return c, err
	}
	names, uids, err := podsOf(ctx, kube, d.Namespace, sel)
	if err != nil {
		return c, err
	}
	old := map[types.UID]bool{}
	for _, u := range uids {
		old[u] = true
	}
	began := time.Now()
	if _, err := evictAll(ctx, kube, d.Namespace, names, ceilingConcurrency); err != nil {
		return c, err
	}
	if err := awaitBack(ctx, kube, d, sel, old); err != nil {
		return c, err
	}
	c.Pods, c.Took = len(old), time.Since(began)
	if c.Took > 0 {
		c.PerSec = float64(c.Pods) / c.Took.Seconds()
	}
	c.BudgetConcurrency = probe
	if c.BudgetPods, c.BudgetTook, err = measureBudget(ctx, kube, d, sel, probe); err != nil {
		return c, err
	}
	if c.BudgetTook > 0 {
		c.BudgetPerSec = float64(c.BudgetPods) / c.BudgetTook.Seconds()
		c.BudgetUpgradePerSec = c.BudgetPerSec * probeToUpgrade
	}
	return c, nil
}

// budgetProbe names the budget the ceiling puts over some of the
// unbudgeted workload's pods for a while (and the label that picks them);
// budgetProbePods is how many (enough for a rate, few enough to take
// seconds).
const (
	budgetProbe     = "noderoll-bench-budget-probe"
	budgetProbePods = 120
)

// measureBudget times one budget's evictions with the control plane as
// busy as during an upgrade: budgetProbePods of the workload's pods are
// labelled and put under a budget of their own allowing every
// disruption, and evicted, concurrency at a time (as many as the
// upgrade keeps in flight under its largest budget), while the
// workload's other pods are evicted over and over, probeSaturation at a
// time. The clock runs from the first budgeted
// eviction asked to the last answered. Then the pods are awaited back
// and the budget taken away.
func measureBudget(ctx context.Context, kube kubernetes.Interface, d *appsv1.Deployment, sel labels.Selector, concurrency int) (int, time.Duration, error) {
	names, uids, err := podsOf(ctx, kube, d.Namespace, sel)
	if err != nil {
		return 0, 0, err
	}
	// A third of them at least keep the control plane busy meanwhile.
	n := min(len(names)*2/3, budgetProbePods)
	if n == 0 {
		return 0, 0, nil
	}
	// Only the probe's pods are awaited gone: the saturation's last round
	// is cut short, and its pods not evicted stay.
	probed, old := map[string]bool{}, map[types.UID]bool{}
	for k := range n {
		patch := []byte(`{"metadata":{"labels":{"` + budgetProbe + `":"true"}}}`)
		if _, err := kube.CoreV1().Pods(d.Namespace).Patch(ctx, names[k], types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return 0, 0, fmt.Errorf("labelling %s/%s for the budget probe: %w", d.Namespace, names[k], err)
		}
		probed[names[k]], old[uids[k]] = true, true
	}
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[budgetProbe] = "true"
	all := intstr.FromString("100%")
	pdbs := kube.PolicyV1().PodDisruptionBudgets(d.Namespace)
	if _, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: budgetProbe, Namespace: d.Namespace},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: selector, MaxUnavailable: &all}}, metav1.CreateOptions{}); err != nil {
		return 0, 0, fmt.Errorf("putting a budget over %s/%s: %w", d.Namespace, d.Name, err)
	}
	defer func() {
		_ = pdbs.Delete(context.WithoutCancel(ctx), budgetProbe, metav1.DeleteOptions{})
	}()
	// The eviction API refuses until the disruption controller has
	// counted the budget's pods.
	deadline := time.Now().Add(time.Minute)
	for {
		pdb, err := pdbs.Get(ctx, budgetProbe, metav1.GetOptions{})
		if err != nil {
			return 0, 0, err
		}
		if pdb.Status.ObservedGeneration >= pdb.Generation && int(pdb.Status.DisruptionsAllowed) >= n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("budget %s/%s not counted by the disruption controller after a minute", d.Namespace, budgetProbe)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, 0, err
		}
	}
	busy, stop := context.WithCancel(ctx)
	defer stop()
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		for busy.Err() == nil {
			others, _, err := podsOf(busy, kube, d.Namespace, sel)
			if err != nil {
				return
			}
			var batch []string
			for _, name := range others {
				if !probed[name] {
					batch = append(batch, name)
				}
			}
			_, _ = evictAll(busy, kube, d.Namespace, batch, probeSaturation)
			_ = sleep(busy, 200*time.Millisecond)
		}
	}()
	took, err := evictAll(ctx, kube, d.Namespace, names[:n], concurrency)
	stop()
	swg.Wait()
	if err != nil {
		return 0, 0, err
	}
	if err := awaitBack(ctx, kube, d, sel, old); err != nil {
		return 0, 0, err
	}
	return n, took, nil
}

// podsOf lists the names and UIDs of the selected pods not being deleted,
// in the same order.
func podsOf(ctx context.Context, kube kubernetes.Interface, ns string, sel labels.Selector) ([]string, []types.UID, error) {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var uids []types.UID
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names, uids = append(names, p.Name), append(uids, p.UID)
		}
	}
	return names, uids, nil
}

// evictAll evicts the pods, at most concurrency at a time, and returns
// how long until the last eviction was answered.
func evictAll(ctx context.Context, kube kubernetes.Interface, ns string, names []string, concurrency int) (time.Duration, error) {
	work := make(chan string, len(names))
	for _, n := range names {
		work <- n
	}
	close(work)
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := kube.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
				// A budget's status written by another first, past the API
				// server's own retries, or a busy server: asked again, as
				// an upgrade's drain does.
				for retryable(err) && ctx.Err() == nil {
					_ = sleep(ctx, 100*time.Millisecond)
					err = kube.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
				}
				if err != nil && !apierrors.IsNotFound(err) {
					mu.Lock()
					first = cmpErr(first, fmt.Errorf("evicting %s/%s: %w", ns, name, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(began), first
}

// awaitBack waits until all of the Deployment's replicas are Ready and
// none of the evicted pods is left.
func awaitBack(ctx context.Context, kube kubernetes.Interface, d *appsv1.Deployment, sel labels.Selector, old map[types.UID]bool) error {
	want := int(*d.Spec.Replicas)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		back, err := backReady(ctx, kube, d.Namespace, sel, old)
		if err != nil {
			return err
		}
		if back >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s: %d of %d pods back Ready after 5 minutes", d.Namespace, d.Name, back, want)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func retryable(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsTooManyRequests(err) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsServiceUnavailable(err)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// backReady counts the workload's Ready pods not being deleted, and none
// while an evicted one is still there.
func backReady(ctx context.Context, kube kubernetes.Interface, ns string, sel labels.Selector, old map[types.UID]bool) (int, error) {
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range list.Items {
		if old[p.UID] {
			return 0, nil
		}
		if p.DeletionTimestamp == nil && conditions.PodReady(&p) {
			n++
		}
	}
	return n, nil
}

// unbudgeted is the Deployment with the most replicas that no budget
// selects.
func unbudgeted(ctx context.Context, kube kubernetes.Interface) (*appsv1.Deployment, error) {
	deps, err := kube.AppsV1().Deployments(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	pdbs, err := kube.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var best *appsv1.Deployment
	for k := range deps.Items {
		d := &deps.Items[k]
		if d.Spec.Replicas == nil || covered(d, pdbs.Items) {
			continue
		}
		if best == nil || *d.Spec.Replicas > *best.Spec.Replicas {
			best = d
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no Deployment without a disruption budget to measure the control plane with (the bench seeds one: --mix teams)")
	}
	return best, nil
}

func covered(d *appsv1.Deployment, pdbs []policyv1.PodDisruptionBudget) bool {
	podLabels := labels.Set(d.Spec.Template.Labels)
	for _, pdb := range pdbs {
		if pdb.Namespace != d.Namespace || pdb.Spec.Selector == nil {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && sel.Matches(podLabels) {
			return true
		}
	}
	return false
}
