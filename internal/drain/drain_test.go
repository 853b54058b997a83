package drain

import (
	"context"
	"errors"
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
	k8stesting "k8s.io/client-go/testing"
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
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		return true, nil, c.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, ev.Namespace, ev.Name)
	})
	return c
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
