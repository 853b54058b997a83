package drain

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	policylisters "k8s.io/client-go/listers/policy/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// A budget whose status allows no disruption is not asked again and again:
// the drain waits for the budget to change (or RetryDelay), and evicts the
// moment it does.
func TestABlockedDrainWaitsForItsBudgetNotForATimer(t *testing.T) {
	c := fakeCluster()
	var evictions atomic.Int32
	allowed := atomic.Bool{}
	gone := NewNodeBroadcast() // fed here as the engine's pod informer feeds it
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		evictions.Add(1)
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if ev.Name == "db-1" && !allowed.Load() {
			return true, nil, budgetRefusal("db")
		}
		err := c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
		gone.Notify("node-1")
		return true, nil, err
	})
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pdb, _ := c.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "db", metav1.GetOptions{})
	pdb.ResourceVersion = "1"
	_ = idx.Add(pdb)
	b := NewBudgets(policylisters.NewPodDisruptionBudgetLister(idx))
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: time.Hour}, Hooks{}, nil)
	d.Watch(b, gone)

	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- d.Drain(context.Background(), "node-1") }()
	time.Sleep(300 * time.Millisecond)
	if n := evictions.Load(); n != 1 {
		t.Fatalf("%d eviction requests while the budget allows none: want only web-1's", n)
	}
	// The budget frees (a replacement became Ready): the drain goes on at once.
	allowed.Store(true)
	freed := pdb.DeepCopy()
	freed.ResourceVersion, freed.Status.DisruptionsAllowed = "2", 1
	_ = idx.Update(freed)
	b.Changed.Notify()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the drain did not wake when the budget changed")
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("drain took %s", took)
	}
	if n := evictions.Load(); n != 2 {
		t.Errorf("%d eviction requests, want 2 (one per pod)", n)
	}
}

func TestBudgetsCountEvictionsUntilTheStatusChanges(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2},
	}
	_ = idx.Add(pdb)
	b := NewBudgets(policylisters.NewPodDisruptionBudgetLister(idx))
	p := pod("web-1", map[string]string{"app": "web"})
	var taken []Reservation
	for k := range 2 {
		r, refusing := b.Take(p)
		if refusing != nil {
			t.Fatalf("eviction %d refused: %v", k+1, refusing)
		}
		taken = append(taken, r)
	}
	if r, refusing := b.Take(p); len(refusing) != 1 || r != nil {
		t.Fatalf("a third eviction within a budget of 2 is not refused: %v", refusing)
	}
	if r := b.Refuses(p); len(r) != 1 {
		t.Fatalf("Refuses disagrees with Take: %v", r)
	}
	// An eviction that did not happen gives its disruption back.
	b.Return(taken[1])
	if r := b.Refuses(p); r != nil {
		t.Fatalf("a returned reservation is still counted: %v", r)
	}
	taken[1], _ = b.Take(p)
	if r := b.Refuses(pod("other", map[string]string{"app": "db"})); r != nil {
		t.Errorf("a pod no budget selects is refused: %v", r)
	}
	next := pdb.DeepCopy()
	next.ResourceVersion, next.Status.DisruptionsAllowed = "2", 1
	_ = idx.Update(next)
	if r := b.Refuses(p); r != nil {
		t.Errorf("a new status resets the count: %v", r)
	}
	// A reservation made against the old status is not taken off the
	// fresh count: the new status already knows what happened.
	b.Return(taken[0])
	if _, refusing := b.Take(p); refusing != nil {
		t.Fatalf("the one disruption of the new status: %v", refusing)
	}
	if _, refusing := b.Take(p); len(refusing) != 1 {
		t.Fatalf("a stale return made room the new status does not give: %v", refusing)
	}
}

// An eviction the API server refuses although the cached status allowed
// it (the cache lags) names its budget from the cache: no listing of the
// namespace's budgets for every refusal.
func TestARefusalNamesItsBudgetFromTheCache(t *testing.T) {
	c := fakeCluster()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pdb, _ := c.PolicyV1().PodDisruptionBudgets("default").Get(context.Background(), "db", metav1.GetOptions{})
	pdb.ResourceVersion, pdb.Status.DisruptionsAllowed = "1", 1 // stale: the API server refuses
	_ = idx.Add(pdb)
	var named []string
	d := New(c, clock.RealClock{}, Options{Timeout: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond},
		Hooks{Blocked: func(_ string, bs []Blocker) {
			for _, b := range bs {
				named = append(named, b.PDBs...)
			}
		}}, nil)
	d.Watch(NewBudgets(policylisters.NewPodDisruptionBudgetLister(idx)), NewNodeBroadcast())
	c.ClearActions()
	_ = d.Drain(context.Background(), "node-1")
	if len(named) == 0 || !strings.HasPrefix(named[0], "default/db (minAvailable 2") {
		t.Fatalf("blockers named %v, want default/db", named)
	}
	if n := requests(c, "list", "poddisruptionbudgets"); n != 0 {
		t.Errorf("%d listings of budgets reached the API server, want 0", n)
	}
}
