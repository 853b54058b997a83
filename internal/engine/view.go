package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/disruption"
	"github.com/noderoll/noderoll/internal/drain"
)

// ClusterView is what upgrades read of a cluster: informer caches of its
// nodes, pods, budgets and DaemonSets, and the budget tracker their drains
// share. One view serves every upgrade of a process (the controller's
// several groups at once): one cache per cluster instead of one per
// upgrade, and one tracker, so that two groups draining at once never both
// wait on, or spend, the same disruption of a budget whose pods span both.
// The CLI's engine makes a private view per run.
type ClusterView struct {
	factory informers.SharedInformerFactory
	nodes   cache.SharedIndexInformer
	pods    cache.SharedIndexInformer
	pdbs    cache.SharedIndexInformer
	ds      cache.SharedIndexInformer

	nodeLister listersv1.NodeLister
	pdbLister  policylisters.PodDisruptionBudgetLister
	dsLister   appslisters.DaemonSetLister

	budgets *drain.Budgets
	gone    *drain.NodeBroadcast

	startOnce sync.Once
	watchers  atomic.Int32 // upgrades watching now
}

// NewClusterView registers the informers and the tracker; Start runs them.
func NewClusterView(kube kubernetes.Interface) (*ClusterView, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTransform(slim))
	v := &ClusterView{factory: factory,
		nodes: factory.Core().V1().Nodes().Informer(), pods: factory.Core().V1().Pods().Informer(),
		pdbs: factory.Policy().V1().PodDisruptionBudgets().Informer(), ds: factory.Apps().V1().DaemonSets().Informer(),
		nodeLister: factory.Core().V1().Nodes().Lister(), pdbLister: factory.Policy().V1().PodDisruptionBudgets().Lister(),
		dsLister: factory.Apps().V1().DaemonSets().Lister(), gone: drain.NewNodeBroadcast()}
	if err := v.pods.AddIndexers(cache.Indexers{podNodeIndex: indexPodsByNode}); err != nil {
		return nil, err
	}
	v.budgets = drain.NewBudgets(v.pdbLister)
	if _, err := v.pdbs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.budgets.Changed.Notify() },
		UpdateFunc: func(any, any) { v.budgets.Changed.Notify() },
		DeleteFunc: func(any) { v.budgets.Changed.Notify() },
	}); err != nil {
		return nil, err
	}
	if _, err := v.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				v.gone.Notify(p.Spec.NodeName)
			}
		},
	}); err != nil {
		return nil, err
	}
	return v, nil
}

// Start runs the informers until ctx ends (once; later calls do nothing).
func (v *ClusterView) Start(ctx context.Context) {
	v.startOnce.Do(func() { v.factory.Start(ctx.Done()) })
}

// synced waits until every cache has listed its objects.
func (v *ClusterView) synced(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), v.nodes.HasSynced, v.pods.HasSynced, v.pdbs.HasSynced, v.ds.HasSynced) {
		return fmt.Errorf("listing nodes, pods, disruption budgets and DaemonSets: %w", ctx.Err())
	}
	return nil
}

// watch calls poke on every change of a node or a budget, until the
// returned function removes the handlers.
func (v *ClusterView) watch(poke func()) (func(), error) {
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	nodeReg, err := v.nodes.AddEventHandler(h)
	if err != nil {
		return nil, err
	}
	pdbReg, err := v.pdbs.AddEventHandler(h)
	if err != nil {
		_ = v.nodes.RemoveEventHandler(nodeReg)
		return nil, err
	}
	v.watchers.Add(1)
	return func() {
		_ = v.nodes.RemoveEventHandler(nodeReg)
		_ = v.pdbs.RemoveEventHandler(pdbReg)
		v.watchers.Add(-1)
	}, nil
}

// watchPodStops calls took for every pod a drain would evict that the cache
// sees deleted and then gone, with how long that took (its deletion to its
// disappearance, what a plan charges for a pod's stop), until the returned
// function removes the handler. Pods already being deleted when it starts
// are not timed.
func (v *ClusterView) watchPodStops(clk clock.Clock, took func(node string, d time.Duration)) (func(), error) {
	// An informer calls one handler's functions one at a time: the map
	// needs no lock.
	deleted := map[types.UID]time.Time{}
	reg, err := v.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			was, _ := oldObj.(*corev1.Pod)
			p, _ := newObj.(*corev1.Pod)
			// Pods a drain evicts: a DaemonSet's go with their node, at once.
			if was != nil && p != nil && disruption.Evicts(was) && p.DeletionTimestamp != nil {
				deleted[p.UID] = clk.Now()
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			if at, ok := deleted[p.UID]; ok {
				delete(deleted, p.UID)
				took(p.Spec.NodeName, clk.Since(at))
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = v.pods.RemoveEventHandler(reg) }, nil
}

// Nodes lists the cluster's nodes from the cache (slimmed: see slim),
// waiting for the caches to list first; the view must be started.
func (v *ClusterView) Nodes(ctx context.Context) ([]corev1.Node, error) {
	if err := v.synced(ctx); err != nil {
		return nil, err
	}
	list, err := v.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]corev1.Node, len(list))
	for k, n := range list {
		out[k] = *n
	}
	return out, nil
}

// Look returns the named nodes the cache holds (one not registered yet,
// or gone, is left out) and the pods on them, as a soak judges them: their
// Ready condition and restarts are kept (see slim). It waits for the caches
// to list first; the view must be started.
func (v *ClusterView) Look(ctx context.Context, names []string) ([]corev1.Node, []corev1.Pod, error) {
	if err := v.synced(ctx); err != nil {
		return nil, nil, err
	}
	var nodes []corev1.Node
	var pods []corev1.Pod
	for _, n := range names {
		node, err := v.nodeLister.Get(n)
		if err != nil {
			continue
		}
		nodes = append(nodes, *node)
		objs, _ := v.pods.GetIndexer().ByIndex(podNodeIndex, n)
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok {
				pods = append(pods, *p)
			}
		}
	}
	return nodes, pods, nil
}

// WithClusterView has the engine read the cluster through a view shared
// with other engines of the process; the caller starts it (Start) and
// keeps it running for as long as upgrades use it.
func WithClusterView(v *ClusterView) Option { return func(e *Engine) { e.view = v } }
