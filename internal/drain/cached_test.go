package drain

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// daemonPod is a pod of DaemonSet aws-node on node-1.
func daemonPod() *corev1.Pod {
	p := pod("aws-node-x", map[string]string{"k8s-app": "aws-node"})
	p.Namespace = "kube-system"
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "aws-node", UID: "ds", Controller: ptrTrue()}}
	return p
}

// trackerPods lists node-1's pods as the fake API server holds them,
// without recording a request: a cache that is never stale.
func trackerPods(c *fake.Clientset) func(string) []*corev1.Pod {
	return func(node string) []*corev1.Pod {
		obj, err := c.Tracker().List(podsResource, corev1.SchemeGroupVersion.WithKind("Pod"), "")
		if err != nil {
			return nil
		}
		var out []*corev1.Pod
		for k := range obj.(*corev1.PodList).Items {
			if p := &obj.(*corev1.PodList).Items[k]; p.Spec.NodeName == node {
				out = append(out, p)
			}
		}
		return out
	}
}

func daemonSets(objs ...*appsv1.DaemonSet) appslisters.DaemonSetLister {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, o := range objs {
		_ = idx.Add(o)
	}
	return appslisters.NewDaemonSetLister(idx)
}

func requests(c *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == "" {
			n++
		}
	}
	return n
}

// withDaemonSet is node-1 with web-1 and a pod of DaemonSet aws-node, and
// a drainer for it.
func withDaemonSet(t *testing.T) (*fake.Clientset, *appsv1.DaemonSet, *Drainer) {
	t.Helper()
	c := fakeCluster()
	_ = c.Tracker().Delete(podsResource, "default", "db-1")
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "aws-node", Namespace: "kube-system"}}
	if err := c.Tracker().Add(daemonPod()); err != nil {
		t.Fatal(err)
	}
	if err := c.Tracker().Add(ds); err != nil {
		t.Fatal(err)
	}
	return c, ds, New(c, clock.RealClock{}, Options{Timeout: 5 * time.Second, RetryDelay: 10 * time.Millisecond}, Hooks{}, nil)
}

func TestADrainReadingCachesAsksOnlyToEvictAndOnceToConfirm(t *testing.T) {
	c, ds, d := withDaemonSet(t)
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	_ = nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}})
	d.Read(Reads{PodsOn: trackerPods(c), DaemonSets: daemonSets(ds), Nodes: listersv1.NewNodeLister(nodes)})
	c.ClearActions()
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("web-1 was not evicted: %v", err)
	}
	if _, err := c.CoreV1().Pods("kube-system").Get(context.Background(), "aws-node-x", metav1.GetOptions{}); err != nil {
		t.Fatalf("the DaemonSet's pod must stay: %v", err)
	}
	if n := requests(c, "list", "pods"); n != 1 {
		t.Errorf("%d pod listings reached the API server, want 1 (the look before saying the node is empty)", n)
	}
	if n := requests(c, "get", "daemonsets") + requests(c, "get", "nodes"); n != 0 {
		t.Errorf("%d DaemonSet or node reads reached the API server, want 0", n)
	}
}

// A cache that has not seen a pod bound a moment ago must not end the
// drain while the pod is there.
func TestADrainDoesNotEndOnAStaleCache(t *testing.T) {
	c := fakeCluster()
	_ = c.Tracker().Delete(podsResource, "default", "db-1")
	var evicted []string
	d := New(c, clock.RealClock{}, Options{Timeout: 5 * time.Second, RetryDelay: 10 * time.Millisecond},
		Hooks{Evicted: func(_ string, p *corev1.Pod) { evicted = append(evicted, p.Name) }}, nil)
	d.Read(Reads{PodsOn: func(string) []*corev1.Pod { return nil }, DaemonSets: daemonSets()})
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if len(evicted) != 1 || evicted[0] != "web-1" {
		t.Fatalf("evicted %v, want web-1: the API server still had it", evicted)
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("web-1 is still there: %v", err)
	}
}

// A DaemonSet the cache does not know yet is asked for: its pod is not
// taken for an orphan and evicted.
func TestADaemonSetMissingFromTheCacheIsAskedFor(t *testing.T) {
	c, _, d := withDaemonSet(t)
	d.Read(Reads{PodsOn: trackerPods(c), DaemonSets: daemonSets()})
	c.ClearActions()
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("kube-system").Get(context.Background(), "aws-node-x", metav1.GetOptions{}); err != nil {
		t.Fatalf("the DaemonSet's pod was evicted: %v", err)
	}
	if requests(c, "get", "daemonsets") == 0 {
		t.Fatal("the DaemonSet missing from the cache was not asked for")
	}
}
