package drain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	policylisters "k8s.io/client-go/listers/policy/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// The fake clientset stands in for eviction verdicts only: that blockers are
// named and force deletes. Real evictions are proven end to end.

func pod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u", Controller: ptrTrue()}}},
		Spec: corev1.PodSpec{NodeName: "node-1"},
	}
}

func ptrTrue() *bool { b := true; return &b }

// fakeCluster refuses evictions of pods labelled app=locked with a 429 and
// deletes the others.
func fakeCluster() *fake.Clientset {
	one := intstr.FromInt32(2)
	c := fake.NewClientset(
		pod("web-1", map[string]string{"app": "web"}),
		pod("db-1", map[string]string{"app": "locked"}),
		&policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "locked"}}},
			Status:     policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 2, ExpectedPods: 2},
		},
	)
	c.Resources = []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}},
		{GroupVersion: "policy/v1", APIResources: []metav1.APIResource{{Name: "poddisruptionbudgets", Kind: "PodDisruptionBudget"}}},
	}
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if ev.Name == "db-1" {
			return true, nil, budgetRefusal("db")
		}
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	return c
}

// budgetRefusal is the error the API server answers an eviction a budget
// refuses with (pkg/registry/core/pod/storage/eviction.go): a 429 marked
// with a DisruptionBudget cause.
func budgetRefusal(pdb string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget " + pdb + " needs 2 healthy pods and has 2 currently"})
	return err
}

func TestBlockedEvictionNamesPodAndBudget(t *testing.T) {
	c := fakeCluster()
	var reported []Blocker
	d := New(c, clock.RealClock{}, Options{Timeout: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond},
		Hooks{Blocked: func(_ string, b []Blocker) { reported = append(reported, b...) }}, nil)
	err := d.Drain(context.Background(), "node-1")
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("want a BlockedError, got %v", err)
	}
	if len(be.Blockers) != 1 || be.Blockers[0].Pod != "db-1" || len(be.Blockers[0].PDBs) != 1 || !strings.HasPrefix(be.Blockers[0].PDBs[0], "default/db (minAvailable 2") {
		t.Fatalf("blockers: %+v", be.Blockers)
	}
	if !strings.Contains(err.Error(), "pod default/db-1 blocked by PodDisruptionBudget default/db") {
		t.Fatalf("message: %v", err)
	}
	if len(reported) == 0 {
		t.Fatal("the blocker was not reported before the timeout")
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the unblocked pod was not evicted: %v", err)
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "db-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("a blocked pod must stay: %v", err)
	}
}

func TestACancelledDrainStillNamesWhatBlocks(t *testing.T) {
	d := New(fakeCluster(), clock.RealClock{}, Options{Timeout: time.Hour, RetryDelay: 50 * time.Millisecond}, Hooks{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := d.Drain(ctx, "node-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if !strings.Contains(err.Error(), "stopped while pod default/db-1 blocked by PodDisruptionBudget default/db") {
		t.Fatalf("the error does not say what blocked: %v", err)
	}
}

func TestForceDeletesWhatTheBudgetHolds(t *testing.T) {
	c := fakeCluster()
	var forced []string
	d := New(c, clock.RealClock{}, Options{Timeout: 200 * time.Millisecond, RetryDelay: 50 * time.Millisecond, Force: true},
		Hooks{Forced: func(_ string, p *corev1.Pod) { forced = append(forced, p.Name) }}, nil)
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if len(forced) != 1 || forced[0] != "db-1" {
		t.Fatalf("forced: %v", forced)
	}
	pods, _ := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Fatalf("pods left: %d", len(pods.Items))
	}
}

func TestZeroRetryDelayIsNotKept(t *testing.T) {
	d := New(fake.NewClientset(), clock.RealClock{}, Options{Timeout: time.Second}, Hooks{}, nil)
	if d.opts.RetryDelay != 5*time.Second {
		t.Fatalf("retry delay %s: the library's zero value would spin on 429s", d.opts.RetryDelay)
	}
}

// A pod under two budgets is refused by the API server every time with a
// bare 500: the drain fails at once naming both budgets, not at its timeout.
func TestAPodUnderTwoBudgetsFailsFastNamingBoth(t *testing.T) {
	two := intstr.FromInt32(1)
	c := fake.NewClientset(
		pod("api-1", map[string]string{"app": "api", "tier": "front"}),
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "front", Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}}},
	)
	c.Resources = fakeCluster().Resources
	attempts := 0
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		attempts++
		return true, nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 500,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}
	})
	d := New(c, clock.RealClock{}, Options{Timeout: time.Hour, RetryDelay: 10 * time.Millisecond}, Hooks{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Drain(ctx, "node-1")
	var mb *MultipleBudgetsError
	if !errors.As(err, &mb) {
		t.Fatalf("want a MultipleBudgetsError at once, got %v", err)
	}
	if attempts != 1 || len(mb.PDBs) != 2 || !strings.Contains(err.Error(), "default/api (") || !strings.Contains(err.Error(), "default/front (") {
		t.Fatalf("after %d attempts: %v", attempts, err)
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "api-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("the pod must stay: %v", err)
	}
}

// A 429 without a DisruptionBudget cause is the API server shedding load:
// the drain backs off and goes on, and names no budget for it.
func TestThrottledEvictionIsNotReportedAsABudget(t *testing.T) {
	c := fake.NewClientset(pod("web-1", map[string]string{"app": "web"}))
	c.Resources = fakeCluster().Resources
	throttles := 2
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if throttles > 0 {
			throttles--
			return true, nil, apierrors.NewTooManyRequests("Too many requests, please try again later.", 1)
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	var blocked []Blocker
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: 10 * time.Millisecond},
		Hooks{Blocked: func(_ string, b []Blocker) { blocked = append(blocked, b...) }}, nil)
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	if throttles != 0 || len(blocked) != 0 {
		t.Fatalf("throttles left %d, reported as blocked: %v", throttles, blocked)
	}
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the pod was not evicted after the throttling: %v", err)
	}
}

// In policy/v1 a budget with an empty selector selects every pod of its
// namespace: it is named as the blocker.
func TestAnEmptySelectorBudgetIsNamed(t *testing.T) {
	all := intstr.FromString("100%")
	c := fake.NewClientset(
		pod("job-1", map[string]string{"app": "job"}),
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "everything", Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{}}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "nothing", Namespace: "default"},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &all}},
	)
	c.Resources = fakeCluster().Resources
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		return true, nil, budgetRefusal("everything")
	})
	d := New(c, clock.RealClock{}, Options{Timeout: 100 * time.Millisecond, RetryDelay: 10 * time.Millisecond}, Hooks{}, nil)
	err := d.Drain(context.Background(), "node-1")
	var be *BlockedError
	if !errors.As(err, &be) || len(be.Blockers) != 1 || len(be.Blockers[0].PDBs) != 1 || !strings.HasPrefix(be.Blockers[0].PDBs[0], "default/everything (") {
		t.Fatalf("want the empty-selector budget (and only it) named: %v", err)
	}
}

// A pod whose deletion never finishes (a finalizer, a dead kubelet) is left
// behind once it is SkipWaitForDelete past due, and said, instead of holding
// the drain until its timeout; with --force too.
func TestAPodStuckTerminatingIsLeftBehindAndSaid(t *testing.T) {
	for _, force := range []bool{false, true} {
		stuck := pod("stuck-1", map[string]string{"app": "stuck"})
		stuck.Finalizers = []string{"example.com/never"}
		since := metav1.NewTime(time.Now().Add(-3 * time.Second))
		stuck.DeletionTimestamp = &since
		c := fakeCluster()
		if err := c.Tracker().Add(stuck); err != nil {
			t.Fatal(err)
		}
		var gaveUp []string
		d := New(c, clock.RealClock{}, Options{Timeout: 200 * time.Millisecond, RetryDelay: 10 * time.Millisecond, Force: force, SkipWaitForDelete: time.Second},
			Hooks{GaveUp: func(_ string, p *corev1.Pod, _ time.Duration) { gaveUp = append(gaveUp, p.Name) }}, nil)
		if !force {
			// db-1's budget would fail this drain anyway: take it out.
			_ = c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "default", "db-1")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := d.Drain(ctx, "node-1")
		cancel()
		if err != nil {
			t.Fatalf("force=%v: %v", force, err)
		}
		if len(gaveUp) != 1 || gaveUp[0] != "stuck-1" {
			t.Fatalf("force=%v: gave up on %v, want stuck-1 said once", force, gaveUp)
		}
	}
}

// On a node whose kubelet stopped reporting (Ready Unknown), nothing will
// ever finish a terminating pod: it is left behind after a second, not
// after SkipWaitForDelete, as Cluster API does.
func TestAPodOnAnUnreachableNodeIsLeftBehindAtOnce(t *testing.T) {
	stuck := pod("stuck-1", map[string]string{"app": "stuck"})
	since := metav1.NewTime(time.Now().Add(-3 * time.Second))
	stuck.DeletionTimestamp = &since
	stuck.Finalizers = []string{"example.com/never"}
	c := fakeCluster()
	_ = c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "default", "db-1")
	for _, obj := range []runtime.Object{stuck, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}}} {
		if err := c.Tracker().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	var gaveUp []string
	d := New(c, clock.RealClock{}, Options{Timeout: time.Second, RetryDelay: 10 * time.Millisecond, SkipWaitForDelete: time.Hour},
		Hooks{GaveUp: func(_ string, p *corev1.Pod, _ time.Duration) { gaveUp = append(gaveUp, p.Name) }}, nil)
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatalf("a pod on an unreachable node held the drain: %v", err)
	}
	if len(gaveUp) != 1 || gaveUp[0] != "stuck-1" {
		t.Fatalf("gave up on %v, want stuck-1 said once", gaveUp)
	}
}

// An admission webhook that denies evictions for a while (a change freeze)
// holds the drain as a budget would: reported with the webhook's words,
// retried, and the drain goes on once it allows them.
func TestAWebhookDenyingEvictionsDelaysTheDrain(t *testing.T) {
	c := fake.NewClientset(pod("web-1", map[string]string{"app": "web"}))
	c.Resources = fakeCluster().Resources
	denials := 3
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if denials > 0 {
			denials--
			// As the API server relays a webhook's denial.
			return true, nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
				Message: `admission webhook "freeze.example.com" denied the request: change freeze until 10:00`}}
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	var blocked []Blocker
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: 10 * time.Millisecond},
		Hooks{Blocked: func(_ string, b []Blocker) { blocked = append(blocked, b...) }}, nil)
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatalf("a drain a webhook held for a while: %v", err)
	}
	if denials != 0 || len(blocked) == 0 || !strings.Contains(blocked[0].String(), `pod default/web-1: eviction denied by admission webhook "freeze.example.com" denied the request: change freeze until 10:00`) {
		t.Fatalf("denials left %d; reported %v", denials, blocked)
	}

	// Denied for good: the drain fails at its timeout, naming the webhook.
	c = fake.NewClientset(pod("web-1", map[string]string{"app": "web"}))
	c.Resources = fakeCluster().Resources
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return a.GetSubresource() == "eviction", nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 400,
			Message: `admission webhook "freeze.example.com" denied the request: change freeze`}}
	})
	d = New(c, clock.RealClock{}, Options{Timeout: 200 * time.Millisecond, RetryDelay: 10 * time.Millisecond}, Hooks{}, nil)
	err := d.Drain(context.Background(), "node-1")
	var be *BlockedError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "freeze.example.com") {
		t.Fatalf("denied for good: %v", err)
	}
}

// Many evictions against one budget at once can collide on its status; the
// API server then answers 409 Conflict. Found at 300 nodes, where it failed
// the whole upgrade: it is retried like throttling, not a failure.
func TestAnEvictionConflictingOnItsBudgetIsRetried(t *testing.T) {
	c := fake.NewClientset(pod("web-1", map[string]string{"app": "web"}))
	c.Resources = fakeCluster().Resources
	// And an API server too busy to finish an eviction in time (a 504,
	// also seen at 300 nodes), or unavailable for a moment.
	transient := []error{
		apierrors.NewConflict(schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}, "web",
			errors.New("the object has been modified; please apply your changes to the latest version and try again")),
		apierrors.NewTimeoutError("request did not complete within requested timeout - context deadline exceeded", 0),
		apierrors.NewServiceUnavailable("the server is currently unable to handle the request"),
	}
	conflicts := len(transient)
	gone := NewNodeBroadcast() // fed here as the engine's pod informer feeds it
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if conflicts > 0 {
			conflicts--
			return true, nil, transient[conflicts]
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		err := c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
		gone.Notify("node-1")
		return true, nil, err
	})
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: 10 * time.Millisecond}, Hooks{}, nil)
	// Told of pods' going, as in the engine: the drain's fallback relist is
	// slow then, and a conflicted eviction must not wait for it.
	d.Watch(NewBudgets(policylisters.NewPodDisruptionBudgetLister(cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}))), gone)
	began := time.Now()
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatalf("a drain whose evictions conflicted twice: %v", err)
	}
	if conflicts != 0 {
		t.Fatalf("%d conflicts left: the eviction was not asked again", conflicts)
	}
	if took := time.Since(began); took > 3*podGoneFallback/2 {
		t.Fatalf("three transient answers took %s: each waited for the fallback relist", took)
	}
}

// A controller that binds a new pod to the node after each forced deletion
// would keep a forced drain deleting until its context ends; it is named
// after a few of its pods instead.
func TestAForcedDrainNamesAPodThatKeepsComingBack(t *testing.T) {
	c := fakeCluster()
	podsGVR := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	n := 1
	c.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.DeleteAction).GetName()
		if !strings.HasPrefix(name, "db-") {
			return false, nil, nil
		}
		if err := c.Tracker().Delete(podsGVR, "default", name); err != nil {
			return true, nil, err
		}
		n++
		back := pod(fmt.Sprintf("db-%d", n), map[string]string{"app": "locked"})
		back.OwnerReferences[0].Name = "db-controller"
		return true, nil, c.Tracker().Create(podsGVR, back, "default")
	})
	var forced []string
	d := New(c, clock.RealClock{}, Options{Timeout: 100 * time.Millisecond, RetryDelay: 10 * time.Millisecond, Force: true},
		Hooks{Forced: func(_ string, p *corev1.Pod) { forced = append(forced, p.Name) }}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := d.Drain(ctx, "node-1")
	var back *ComebackError
	if !errors.As(err, &back) {
		t.Fatalf("want a ComebackError, got %v (forced %v)", err, forced)
	}
	if back.Owner != "ReplicaSet default/db-controller" || back.Deleted != maxComebacks || !strings.Contains(err.Error(), "keeps coming back") {
		t.Errorf("the error names owner %q after %d deletions: %v", back.Owner, back.Deleted, err)
	}
	if ctx.Err() != nil {
		t.Errorf("the drain ran until its context ended")
	}
}

// A drain held by a budget for a while says, as it ends, how long and by
// which budget: the end of the wait Blocked told at its start.
func TestADrainHeldByABudgetSaysHowLongAsItEnds(t *testing.T) {
	c := fakeCluster()
	refusals := 4
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if ev.Name == "db-1" && refusals > 0 {
			refusals--
			return true, nil, budgetRefusal("db")
		}
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	var told []string
	var held time.Duration
	d := New(c, clock.RealClock{}, Options{Timeout: time.Minute, RetryDelay: 20 * time.Millisecond}, Hooks{
		Waited: func(node string, waited time.Duration, budgets []string) {
			held = waited
			told = append(told, fmt.Sprintf("%s %v", node, budgets))
		},
	}, nil)
	began := time.Now()
	if err := d.Drain(context.Background(), "node-1"); err != nil {
		t.Fatalf("a drain held for four refusals: %v", err)
	}
	took := time.Since(began)
	if len(told) != 1 || told[0] != "node-1 [default/db]" {
		t.Fatalf("told %q; want once, node-1 held by default/db", told)
	}
	if held < 3*20*time.Millisecond || held > took {
		t.Errorf("held %s of a %s drain; want at least the three retries between four refusals", held, took)
	}
}

// The spells a drain is held add up, and each budget is named once in the
// order it first held.
func TestHoldsAddUpTheirSpells(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	web := Blocker{Pod: "web-1", PDBs: []string{"default/web (maxUnavailable 1, 0 allowed)"}}
	db := Blocker{Pod: "db-1", PDBs: []string{"default/db (minAvailable 2, 0 allowed)"}}
	var h holds
	h.pass(t0, nil)
	h.pass(t0.Add(time.Second), []Blocker{web})
	h.pass(t0.Add(2*time.Second), []Blocker{db, web})
	h.pass(t0.Add(4*time.Second), nil)
	h.pass(t0.Add(10*time.Second), []Blocker{db})
	h.pass(t0.Add(11*time.Second), nil)
	if h.total != 4*time.Second || strings.Join(h.budgets, ",") != "default/web,default/db" {
		t.Errorf("held %s by %v; want 4s by default/web then default/db", h.total, h.budgets)
	}
}
