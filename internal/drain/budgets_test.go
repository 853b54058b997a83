package drain

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	blocked := make(chan struct{})
	var once sync.Once
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: time.Hour},
		Hooks{Blocked: func(string, []Blocker) { once.Do(func() { close(blocked) }) }}, nil)
	d.Watch(b, gone)

	done := make(chan error, 1)
	go func() { done <- d.Drain(context.Background(), "node-1") }()
	// The drain's first pass ends saying db-1 is blocked; by then it must
	// not have asked the API server to evict db-1.
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain never said db-1 is blocked")
	}
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
	case <-time.After(10 * time.Minute):
		// RetryDelay is an hour: ending at all means it woke on the change.
		t.Fatal("the drain did not wake when the budget changed")
	}
	if n := evictions.Load(); n != 2 {
		t.Errorf("%d eviction requests, want 2 (one per pod)", n)
	}
}

// webBudget is a tracker over one budget, default/web (app=web), allowing
// that many disruptions, with the index its lister reads.
func webBudget(allowed int32) (cache.Indexer, *policyv1.PodDisruptionBudget, *Budgets) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "1"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
	}
	_ = idx.Add(pdb)
	return idx, pdb, NewBudgets(policylisters.NewPodDisruptionBudgetLister(idx))
}

// refuses asks Take whether the pod's eviction would be refused now, and
// gives back what it reserved when it would not.
func refuses(b *Budgets, p *corev1.Pod) []string {
	r, refusing := b.Take(p, 1)
	if refusing == nil {
		b.Return(r)
	}
	b.Forget(p)
	return refusing
}

func TestBudgetsCountEvictionsUntilTheStatusChanges(t *testing.T) {
	idx, pdb, b := webBudget(2)
	p := pod("web-1", map[string]string{"app": "web"})
	var taken []Reservation
	for k := range 2 {
		r, refusing := b.Take(p, 1)
		if refusing != nil {
			t.Fatalf("eviction %d refused: %v", k+1, refusing)
		}
		taken = append(taken, r)
	}
	if r, refusing := b.Take(p, 1); len(refusing) != 1 || r != nil {
		t.Fatalf("a third eviction within a budget of 2 is not refused: %v", refusing)
	}
	// An eviction that did not happen gives its disruption back.
	b.Return(taken[1])
	if r := refuses(b, p); r != nil {
		t.Fatalf("a returned reservation is still counted: %v", r)
	}
	taken[1], _ = b.Take(p, 1)
	if r := refuses(b, pod("other", map[string]string{"app": "db"})); r != nil {
		t.Errorf("a pod no budget selects is refused: %v", r)
	}
	next := pdb.DeepCopy()
	next.ResourceVersion, next.Status.DisruptionsAllowed = "2", 1
	_ = idx.Update(next)
	if r := refuses(b, p); r != nil {
		t.Errorf("a new status resets the count: %v", r)
	}
	// A reservation made against the old status is not taken off the
	// fresh count: the new status already knows what happened.
	b.Return(taken[0])
	if _, refusing := b.Take(p, 1); refusing != nil {
		t.Fatalf("the one disruption of the new status: %v", refusing)
	}
	if _, refusing := b.Take(p, 1); len(refusing) != 1 {
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

// Drains take a budget's disruptions in the order they began: a drain that
// began later waits while an earlier one waits for the same budget, so the
// first nodes finish first instead of every node finishing late.
func TestDrainsTakeABudgetInTheOrderTheyBegan(t *testing.T) {
	idx, pdb, b := webBudget(0)
	web := map[string]string{"app": "web"}
	first, second := b.Turn(), b.Turn()
	a1, a2, b1 := pod("a1", web), pod("a2", web), pod("b1", web)
	for _, p := range []*corev1.Pod{a1, a2} {
		if _, refusing := b.Take(p, first); len(refusing) != 1 {
			t.Fatalf("%s taken from a budget allowing 0", p.Name)
		}
	}
	free := func(rv string, n int32) {
		next := pdb.DeepCopy()
		next.ResourceVersion, next.Status.DisruptionsAllowed = rv, n
		_ = idx.Update(next)
	}
	// Two disruptions free: both are the first drain's, though the second
	// asks first.
	free("2", 2)
	if _, refusing := b.Take(b1, second); len(refusing) != 1 {
		t.Fatal("a drain that began later took a disruption an earlier one waits for")
	} else if !strings.Contains(refusing[0], "allowed disruptions 2, all awaited by 2 pods of nodes whose drains began earlier)") {
		// A user reading "blocked by ... allowed disruptions 2" alone
		// would not see why.
		t.Errorf("the refusal does not say the budget's disruptions are awaited by earlier drains: %s", refusing[0])
	}
	if _, refusing := b.Take(a1, first); refusing != nil {
		t.Fatalf("the first drain's pod is refused: %v", refusing)
	}
	if _, refusing := b.Take(b1, second); len(refusing) != 1 {
		t.Fatal("a drain that began later took the disruption the earlier one still waits for")
	}
	if _, refusing := b.Take(a2, first); refusing != nil {
		t.Fatalf("the first drain's second pod is refused: %v", refusing)
	}
	// Nothing waits ahead of it now, but the status allows no more.
	if _, refusing := b.Take(b1, second); len(refusing) != 1 {
		t.Fatal("a third disruption taken from a budget allowing 2")
	}
	// A disruption frees: the later drain's pod, first in the queue now, gets it.
	free("3", 1)
	if _, refusing := b.Take(b1, second); refusing != nil {
		t.Fatalf("the later drain waits although no earlier one does: %v", refusing)
	}

	// A pod the first drain has yet to ask for is left its disruption.
	free("3a", 0)
	early, late := b.Turn(), b.Turn()
	e1, l1 := pod("e1", web), pod("l1", web)
	b.Want(e1, early)
	free("3b", 1)
	if _, refusing := b.Take(l1, late); len(refusing) != 1 {
		t.Fatal("a drain that began later took the disruption an earlier one is about to ask for")
	}
	if _, refusing := b.Take(e1, early); refusing != nil {
		t.Fatalf("the earlier drain's pod is refused: %v", refusing)
	}
	b.Done(early)
	b.Done(late)

	// A drain that ends, or a pod evicted anyway (the API server is asked
	// now and then whatever the status says), waits for nothing any more.
	third, fourth := b.Turn(), b.Turn()
	c1, d1 := pod("c1", web), pod("d1", web)
	free("4", 0)
	b.Take(c1, third)
	free("5", 1)
	b.Done(third)
	if _, refusing := b.Take(d1, fourth); refusing != nil {
		t.Fatalf("a drain that ended still holds its place: %v", refusing)
	}
	free("6", 0)
	b.Take(c1, third)
	b.Forget(c1)
	free("7", 1)
	if _, refusing := b.Take(d1, fourth); refusing != nil {
		t.Fatalf("an evicted pod still holds its place: %v", refusing)
	}
}
