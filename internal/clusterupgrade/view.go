package clusterupgrade

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// clusterView is a soak's informer caches of the cluster's nodes and pods,
// with the pods' status whole (the engine's own view keeps only what its
// drains read, not the conditions and restarts a soak judges).
type clusterView struct {
	nodes  listersv1.NodeLister
	pods   cache.Indexer
	cancel context.CancelFunc
	shut   func()
}

const byNode = "node"

func watchCluster(ctx context.Context, kube kubernetes.Interface) (*clusterView, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTransform(func(obj any) (any, error) {
		if a, err := meta.Accessor(obj); err == nil {
			a.SetManagedFields(nil)
		}
		return obj, nil
	}))
	pods := factory.Core().V1().Pods().Informer()
	if err := pods.AddIndexers(cache.Indexers{byNode: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	nodes := factory.Core().V1().Nodes()
	nodeInformer := nodes.Informer()
	vctx, cancel := context.WithCancel(ctx)
	factory.Start(vctx.Done())
	if !cache.WaitForCacheSync(vctx.Done(), pods.HasSynced, nodeInformer.HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, fmt.Errorf("listing nodes and pods: %w", context.Cause(ctx))
	}
	return &clusterView{nodes: nodes.Lister(), pods: pods.GetIndexer(), cancel: cancel, shut: factory.Shutdown}, nil
}

// look returns the named nodes the cache has (a node not registered yet,
// or gone, is the engine's concern) and the pods on them.
func (v *clusterView) look(names []string) ([]corev1.Node, []corev1.Pod) {
	var nodes []corev1.Node
	var pods []corev1.Pod
	for _, n := range names {
		node, err := v.nodes.Get(n)
		if err != nil {
			continue
		}
		nodes = append(nodes, *node)
		objs, _ := v.pods.ByIndex(byNode, n)
		for _, o := range objs {
			if p, ok := o.(*corev1.Pod); ok {
				pods = append(pods, *p)
			}
		}
	}
	return nodes, pods
}

func (v *clusterView) close() {
	v.cancel()
	v.shut()
}
