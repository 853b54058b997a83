package engine

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Two upgrades of two groups at once, through one view of the cluster (the
// controller's): both finish, each group on the target, and the view's
// handlers of each upgrade are gone with it.
func TestTwoUpgradesShareOneViewOfTheCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		if err := w.p.AddGroup(context.Background(), "ng2", 3, []string{"a", "b", "c"}, amiOld); err != nil {
			t.Fatal(err)
		}
		view, err := NewClusterView(w.kube)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		view.Start(ctx)
		w.strategy = StrategySurge
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k, name := range []string{"ng", "ng2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := w.engine()
				e.view = view
				_, errs[k] = e.Upgrade(ctx, Request{Group: cloud.NodeGroupRef{Cluster: "c1", Name: name}, Target: TargetSpec{KubernetesVersion: "1.37"}})
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("upgrade %d: %v", k, err)
			}
		}
		for _, name := range []string{"ng", "ng2"} {
			for _, i := range w.p.Group(name).Instances {
				if i.ImageID != amiB {
					t.Errorf("%s: instance %s on %s", name, i.ID, i.ImageID)
				}
			}
		}
		// The view outlives the upgrades, and each removed its handlers.
		if view.nodes.IsStopped() {
			t.Error("the shared view stopped with an upgrade")
		}
		if n := view.watchers.Load(); n != 0 {
			t.Errorf("%d upgrades still watch the view after both ended", n)
		}
		cancel()
	})
}

// A pod's stop is timed from the moment the cache sees it deleted to the
// moment it sees it gone; a pod already being deleted when the timing
// starts is not timed, and after the handler is removed nothing is.
func TestThePodsStopsAreTimedFromDeletionToGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kube := k8sfake.NewClientset()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pod := func(name string, deleting bool) *corev1.Pod {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}, Spec: corev1.PodSpec{NodeName: "n1"}}
			if deleting {
				p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			}
			return p
		}
		for _, p := range []*corev1.Pod{pod("web", false), pod("late", true)} {
			if _, err := kube.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		view, err := NewClusterView(kube)
		if err != nil {
			t.Fatal(err)
		}
		view.Start(ctx)
		if err := view.synced(ctx); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []string
		stop, err := view.watchPodStops(clock.RealClock{}, func(node string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, node+" "+d.String())
		})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := kube.CoreV1().Pods("default").Update(ctx, pod("web", true), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(2 * time.Second) // virtual: the bubble's clock
		for _, name := range []string{"web", "late"} {
			if err := kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		stop()
		if _, err := kube.CoreV1().Pods("default").Create(ctx, pod("after", false), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().Pods("default").Update(ctx, pod("after", true), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := kube.CoreV1().Pods("default").Delete(ctx, "after", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0] != "n1 2s" {
			t.Errorf("timed %q; want web's 2s on n1 alone (not late's, deleted before, nor after's, deleted once the timing stopped)", got)
		}
	})
}

// The view keeps of a pod what drains and a soak's health watch read: its
// node, phase, Ready condition and restarts, not the rest of its spec and
// status.
func TestTheViewKeepsWhatASoakJudges(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "app", Image: "big"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Message: "long",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionFalse, Message: "m"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 4, Image: "big"}}}}
	obj, err := slim(p)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*corev1.Pod)
	if got.Spec.NodeName != "n1" || len(got.Spec.Containers) != 0 || got.Status.Message != "" {
		t.Errorf("kept more than it reads: %+v", got)
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Type != corev1.PodReady || got.Status.Conditions[0].Status != corev1.ConditionFalse {
		t.Errorf("conditions %+v, want Ready=False alone", got.Status.Conditions)
	}
	if len(got.Status.ContainerStatuses) != 1 || got.Status.ContainerStatuses[0].RestartCount != 4 || got.Status.ContainerStatuses[0].Image != "" {
		t.Errorf("container statuses %+v, want the restarts alone", got.Status.ContainerStatuses)
	}
}
