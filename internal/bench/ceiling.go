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
}

const ceilingConcurrency = 16

// minCeilingPods is the fewest pods a ceiling is a rate for. With fewer, the
// clock mostly measures one pod's start (45 pods of a 30-node group come
// back in 2 s, a pod starting in 1): a latency, not what the control plane
// moves a second, and its term would come out above what was done.
const minCeilingPods = 100

// Meaningful says whether the ceiling was measured on enough pods to be a
// rate.
func (c Ceiling) Meaningful() bool { return c.Pods >= minCeilingPods && c.PerSec > 0 }

// measureCeiling evicts the unbudgeted workload's pods and times their
// return.
func measureCeiling(ctx context.Context, kube kubernetes.Interface) (Ceiling, error) {
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
	pods, err := kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return c, err
	}
	old := map[types.UID]bool{}
	work := make(chan string, len(pods.Items))
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			old[p.UID] = true
			work <- p.Name
		}
	}
	close(work)
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range ceilingConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := kube.PolicyV1().Evictions(d.Namespace).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace}})
				if err != nil && !apierrors.IsNotFound(err) {
					mu.Lock()
					first = cmpErr(first, fmt.Errorf("evicting %s/%s: %w", d.Namespace, name, err))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return c, first
	}
	want := int(*d.Spec.Replicas)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		back, err := backReady(ctx, kube, d.Namespace, sel, old)
		if err != nil {
			return c, err
		}
		if back >= want {
			break
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("%s: %d of %d pods back Ready after 5 minutes", c.Workload, back, want)
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	c.Pods, c.Took = len(old), time.Since(began)
	if c.Took > 0 {
		c.PerSec = float64(c.Pods) / c.Took.Seconds()
	}
	return c, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// backReady counts the workload's Ready pods, and none while an evicted
// one is still there.
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
		if conditions.PodReady(&p) {
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
