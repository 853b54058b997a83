package engine

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/noderoll/noderoll/internal/rollout"
)

// lagWatch holds each watch event of resource for lag before a watcher
// sees it, as a busy machine's informers lag the API server's writes.
func lagWatch(kube *k8sfake.Clientset, resource string, lag time.Duration) {
	kube.PrependWatchReactor(resource, func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		inner, err := kube.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return true, nil, err
		}
		l := &laggedWatch{inner: inner, out: make(chan watch.Event), stop: make(chan struct{})}
		type due struct {
			ev watch.Event
			at time.Time
		}
		queue := make(chan due, 1000)
		go func() {
			defer close(queue)
			for ev := range inner.ResultChan() {
				queue <- due{ev, time.Now().Add(lag)}
			}
		}()
		go func() {
			defer close(l.out)
			for d := range queue {
				time.Sleep(time.Until(d.at))
				select {
				case l.out <- d.ev:
				case <-l.stop:
					return
				}
			}
		}()
		return true, l, nil
	})
}

type laggedWatch struct {
	inner watch.Interface
	out   chan watch.Event
	stop  chan struct{}
	once  sync.Once
}

func (l *laggedWatch) ResultChan() <-chan watch.Event { return l.out }

func (l *laggedWatch) Stop() {
	l.once.Do(func() {
		close(l.stop)
		l.inner.Stop()
	})
}

// The eks strategy takes one old node at a time. A drain this process
// began is in flight from the moment it marks its node, not from the
// moment the node cache shows the mark: with the cache five seconds late,
// no node is ever marked while another marked one is still in the cluster.
func TestOneNodeAtATimeHoldsWhileTheNodeCacheLags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		lagWatch(w.kube, "nodes", 5*time.Second)
		var mu sync.Mutex
		most, marks := 0, 0
		w.kube.PrependReactor("update", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
			n := a.(k8stesting.UpdateAction).GetObject().(*corev1.Node)
			if n.Annotations[annPhase] != string(rollout.Replacing) {
				return false, nil, nil
			}
			// The tracker is the API server's truth, whatever the cache shows.
			stored, err := w.kube.Tracker().List(corev1.SchemeGroupVersion.WithResource("nodes"), corev1.SchemeGroupVersion.WithKind("Node"), "")
			if err != nil {
				t.Errorf("listing the stored nodes: %v", err)
				return false, nil, nil
			}
			marked := 1
			for _, s := range stored.(*corev1.NodeList).Items {
				if s.Name != n.Name && s.Annotations[annPhase] == string(rollout.Replacing) {
					marked++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			most, marks = max(most, marked), marks+1
			return false, nil, nil
		})
		if _, err := w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261115"}); err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 3, old)
		mu.Lock()
		defer mu.Unlock()
		if marks < 3 {
			t.Fatalf("saw %d updates marking an old node for replacement; want at least one for each of the 3", marks)
		}
		if most != 1 {
			t.Errorf("up to %d old nodes were marked for replacement at once; the eks strategy takes one at a time", most)
		}
	})
}
