package drain

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
)

// Reads are informer caches a caller already keeps; drains read nodes,
// their pods and DaemonSets from them instead of asking the API server.
// At 300 nodes the drains' pod listings, DaemonSet lookups and node reads
// were 42% of an upgrade's requests, on an API server that was the
// upgrade's bottleneck.
//
// The pods may be slimmed down to what a drain looks at (name, labels,
// owners, the mirror annotation, deletion time, node and phase): with the
// options this package gives kubectl's filters (every pod goes but
// DaemonSets' and mirror pods), nothing else decides whether a pod goes.
type Reads struct {
	// PodsOn lists the pods bound to a node.
	PodsOn     func(node string) []*corev1.Pod
	Nodes      listersv1.NodeLister
	DaemonSets appslisters.DaemonSetLister
}

// cachedClient is the client kubectl's drain helper is given: its listing
// of a node's pods and its DaemonSet lookups are answered from Reads, all
// else (evictions, deletions, cordons) goes to the API server. A DaemonSet
// the cache does not know yet is asked for, never taken as gone: a pod
// whose DaemonSet is gone is evicted.
type cachedClient struct {
	kubernetes.Interface
	reads    *Reads
	livePods bool // list pods from the API server (the last look before a drain ends)
}

func (c cachedClient) CoreV1() corev1client.CoreV1Interface {
	return cachedCore{CoreV1Interface: c.Interface.CoreV1(), c: c}
}

func (c cachedClient) AppsV1() appsv1client.AppsV1Interface {
	return cachedApps{AppsV1Interface: c.Interface.AppsV1(), c: c}
}

type cachedCore struct {
	corev1client.CoreV1Interface
	c cachedClient
}

func (x cachedCore) Pods(ns string) corev1client.PodInterface {
	return cachedPods{PodInterface: x.CoreV1Interface.Pods(ns), ns: ns, c: x.c}
}

type cachedPods struct {
	corev1client.PodInterface
	ns string
	c  cachedClient
}

// List answers a listing of one node's pods from the cache; any other
// listing goes to the API server.
func (p cachedPods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	node, ok := nodeOnly(opts)
	if !ok || p.c.livePods || p.c.reads.PodsOn == nil {
		return p.PodInterface.List(ctx, opts)
	}
	list := &corev1.PodList{}
	for _, pod := range p.c.reads.PodsOn(node) {
		if p.ns == metav1.NamespaceAll || pod.Namespace == p.ns {
			list.Items = append(list.Items, *pod.DeepCopy())
		}
	}
	return list, nil
}

// nodeOnly recognises a listing that selects by node and nothing else, as
// the drain helper's is.
func nodeOnly(opts metav1.ListOptions) (string, bool) {
	if opts.LabelSelector != "" || opts.Continue != "" || opts.ResourceVersion != "" {
		return "", false
	}
	sel, err := fields.ParseSelector(opts.FieldSelector)
	if err != nil {
		return "", false
	}
	reqs := sel.Requirements()
	if len(reqs) != 1 || reqs[0].Field != "spec.nodeName" || (reqs[0].Operator != selection.Equals && reqs[0].Operator != selection.DoubleEquals) {
		return "", false
	}
	return reqs[0].Value, reqs[0].Value != ""
}

type cachedApps struct {
	appsv1client.AppsV1Interface
	c cachedClient
}

func (x cachedApps) DaemonSets(ns string) appsv1client.DaemonSetInterface {
	return cachedDaemonSets{DaemonSetInterface: x.AppsV1Interface.DaemonSets(ns), ns: ns, c: x.c}
}

type cachedDaemonSets struct {
	appsv1client.DaemonSetInterface
	ns string
	c  cachedClient
}

func (d cachedDaemonSets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.DaemonSet, error) {
	if l := d.c.reads.DaemonSets; l != nil && opts.ResourceVersion == "" {
		if ds, err := l.DaemonSets(d.ns).Get(name); err == nil {
			return ds.DeepCopy(), nil
		} else if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return d.DaemonSetInterface.Get(ctx, name, opts)
}
