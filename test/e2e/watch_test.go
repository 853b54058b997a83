package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/noderoll/noderoll/internal/conditions"
)

// BudgetWatch checks every PodDisruptionBudget against the pods themselves,
// on every pod change, for as long as it runs: a pod counts as healthy when
// it is Ready and not being deleted, as the disruption controller counts.
// It also counts as a violation any pod that vanished without a graceful
// deletion first (no eviction, no drain): one lost with its machine, or
// removed by name in place of another (DaemonSets' pods go with their
// nodes and are left out).
type BudgetWatch struct {
	mu          sync.Mutex
	budgets     []policyv1.PodDisruptionBudget
	violations  []string
	lowest      map[string]int
	checks      int
	terminating map[types.UID]bool
	stop        context.CancelFunc
}

// WatchBudgets starts sampling; it stops when the test ends or Stop is called.
func WatchBudgets(t *testing.T, c kubernetes.Interface) *BudgetWatch {
	t.Helper()
	list, err := c.PolicyV1().PodDisruptionBudgets("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) == 0 {
		t.Fatal("the scenario has no PodDisruptionBudget to watch")
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &BudgetWatch{budgets: list.Items, lowest: map[string]int{}, terminating: map[types.UID]bool{}, stop: cancel}
	factory := informers.NewSharedInformerFactory(c, 0)
	inf := factory.Core().V1().Pods().Informer()
	lister := factory.Core().V1().Pods().Lister()
	check := func(obj any) {
		w.seen(obj)
		w.check(lister.List(labels.Everything()))
	}
	// Checks begin once the cache holds every pod: a cache still filling
	// would count budgets short.
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("pod informer did not sync")
	}
	gone := func(obj any) {
		w.gone(obj)
		w.check(lister.List(labels.Everything()))
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }, DeleteFunc: gone}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return w
}

// seen remembers the pods whose graceful deletion began.
func (w *BudgetWatch) seen(obj any) {
	if p, ok := obj.(*corev1.Pod); ok && p.DeletionTimestamp != nil {
		w.mu.Lock()
		w.terminating[p.UID] = true
		w.mu.Unlock()
	}
}

// gone counts a pod that vanished without a graceful deletion first.
func (w *BudgetWatch) gone(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			p, _ = d.Obj.(*corev1.Pod)
		}
	}
	if p == nil {
		return
	}
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "DaemonSet" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.terminating[p.UID] && p.DeletionTimestamp == nil {
		w.violations = append(w.violations, fmt.Sprintf("%s pod %s/%s (uid %s) on node %s vanished without being evicted or deleted gracefully",
			time.Now().Format("15:04:05.000"), p.Namespace, p.Name, p.UID, p.Spec.NodeName))
	}
	delete(w.terminating, p.UID)
}

// minimum is the fewest healthy pods a budget allows.
func minimum(b policyv1.PodDisruptionBudget, expected int) int {
	if b.Spec.MinAvailable != nil {
		v, _ := intstr.GetScaledValueFromIntOrPercent(b.Spec.MinAvailable, expected, true)
		return v
	}
	v, _ := intstr.GetScaledValueFromIntOrPercent(b.Spec.MaxUnavailable, expected, true)
	return expected - v
}

func (w *BudgetWatch) check(pods []*corev1.Pod, _ error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks++
	for _, b := range w.budgets {
		sel, _ := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		healthy := 0
		for _, p := range pods {
			if p.Namespace != b.Namespace || !sel.Matches(labels.Set(p.Labels)) || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					healthy++
				}
			}
		}
		key := b.Namespace + "/" + b.Name
		if low, ok := w.lowest[key]; !ok || healthy < low {
			w.lowest[key] = healthy
		}
		if min := minimum(b, int(b.Status.ExpectedPods)); healthy < min {
			w.violations = append(w.violations, fmt.Sprintf("%s %s: %d healthy, minimum %d", time.Now().Format("15:04:05.000"), key, healthy, min))
		}
	}
}

// Stop ends sampling and returns what it saw: violations, the lowest healthy
// count per budget, and how many times it checked.
func (w *BudgetWatch) Stop() ([]string, map[string]int, int) {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.violations, w.lowest, w.checks
}

// NodeWatch counts the group's nodes on every change.
type NodeWatch struct {
	mu    sync.Mutex
	names map[string]bool
	peak  int
}

// WatchNodes starts counting nodes whose label key has the value value;
// every node when key is "".
func WatchNodes(t *testing.T, c kubernetes.Interface, key, value string) *NodeWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &NodeWatch{names: map[string]bool{}}
	factory := informers.NewSharedInformerFactory(c, 0)
	inf := factory.Core().V1().Nodes().Informer()
	update := func(obj any, gone bool) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				n, _ = d.Obj.(*corev1.Node)
			}
		}
		if n == nil || (key != "" && n.Labels[key] != value) {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if gone {
			delete(w.names, n.Name)
		} else {
			w.names[n.Name] = true
		}
		w.peak = max(w.peak, len(w.names))
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { update(o, false) }, UpdateFunc: func(_, o any) { update(o, false) }, DeleteFunc: func(o any) { update(o, true) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("node informer did not sync")
	}
	return w
}

// Peak is the most nodes seen at once.
func (w *NodeWatch) Peak() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// GroupWatch samples the group from outside the engine, every 200ms: the
// instances the Auto Scaling group holds in service (as the endpoint
// describes them), the group's nodes that are Ready and schedulable, and
// the nodes noderoll is replacing at once (marked by it).
type GroupWatch struct {
	mu                    sync.Mutex
	peakInService         int
	lowestReady           int
	peakInFlight, samples int
	cordoned              map[string]time.Time // instance -> when its node was first seen cordoned
	stop                  context.CancelFunc
	done                  chan struct{}
}

// WatchGroup starts sampling the sandbox's group.
func WatchGroup(t *testing.T, s *Sandbox) *GroupWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &GroupWatch{lowestReady: 1 << 30, cordoned: map[string]time.Time{}, stop: cancel, done: make(chan struct{})}
	factory := informers.NewSharedInformerFactory(s.Kube, 0)
	nodes := factory.Core().V1().Nodes()
	lister := nodes.Lister()
	inf := nodes.Informer()
	seen := func(obj any) {
		n, ok := obj.(*corev1.Node)
		if !ok || !n.Spec.Unschedulable {
			return
		}
		id := n.Spec.ProviderID[strings.LastIndex(n.Spec.ProviderID, "/")+1:]
		w.mu.Lock()
		if _, ok := w.cordoned[id]; !ok {
			w.cordoned[id] = time.Now()
		}
		w.mu.Unlock()
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: seen, UpdateFunc: func(_, n any) { seen(n) }}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("node informer did not sync")
	}
	members := map[string]bool{}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			out, err := s.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
			if err == nil && len(out.AutoScalingGroups) == 1 {
				inService := 0
				for _, i := range out.AutoScalingGroups[0].Instances {
					members[aws.ToString(i.InstanceId)] = true
					if !strings.HasPrefix(string(i.LifecycleState), "Terminating") {
						inService++
					}
				}
				list, _ := lister.List(labels.Everything())
				ready, inFlight := 0, 0
				for _, n := range list {
					id := n.Spec.ProviderID[strings.LastIndex(n.Spec.ProviderID, "/")+1:]
					if !members[id] {
						continue
					}
					if conditions.NodeReady(n) && !n.Spec.Unschedulable {
						ready++
					}
					if n.Annotations["noderoll.io/phase"] != "" {
						inFlight++
					}
				}
				w.mu.Lock()
				w.samples++
				w.peakInService = max(w.peakInService, inService)
				w.lowestReady = min(w.lowestReady, ready)
				w.peakInFlight = max(w.peakInFlight, inFlight)
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// Cordoned is when each instance's node was first seen cordoned.
func (w *GroupWatch) Cordoned() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.cordoned)
}

// Stop ends sampling and returns the peak instances in service, the lowest
// count of Ready schedulable nodes, the peak nodes in flight and the samples.
func (w *GroupWatch) Stop() (peakInService, lowestReady, peakInFlight, samples int) {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peakInService, w.lowestReady, w.peakInFlight, w.samples
}
