package engine

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/permissions"
)

type autoscalerWorld struct {
	t    *testing.T
	kube *fake.Clientset
	live map[string]bool
}

func newAutoscalerWorld(t *testing.T) *autoscalerWorld {
	return &autoscalerWorld{t: t, live: map[string]bool{}, kube: fake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-autoscaler", Namespace: "kube-system"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))},
	})}
}

func (w *autoscalerWorld) hold(group string) autoscalerHold {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	return autoscalerHold{kube: w.kube, report: teller{to: nopReporter{}, now: clk.Now}, spec: "auto", holder: cloud.NodeGroupRef{Cluster: "c1", Name: group},
		clock: clk,
		live:  func(_ context.Context, h string) (bool, error) { return w.live[h], nil }}
}

// state is the autoscaler's replicas and holders, as "2 [c1/a c1/b]".
func (w *autoscalerWorld) state() (int32, []string) {
	w.t.Helper()
	d, err := w.kube.AppsV1().Deployments("kube-system").Get(context.Background(), "cluster-autoscaler", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var hs []string
	for h := range readHolders(d) {
		hs = append(hs, h)
	}
	if _, ok := d.Annotations[annPausedReplicas]; !ok && len(hs) > 0 {
		w.t.Errorf("holders %v recorded without the replicas to restore", hs)
	}
	return *d.Spec.Replicas, hs
}

func (w *autoscalerWorld) want(replicas int32, holders ...string) {
	w.t.Helper()
	got, hs := w.state()
	if got != replicas || len(hs) != len(holders) {
		w.t.Fatalf("autoscaler at %d held by %v; want %d held by %v", got, hs, replicas, holders)
	}
	for _, h := range holders {
		if !strings.Contains(strings.Join(hs, " "), h) {
			w.t.Fatalf("autoscaler held by %v; want %v", hs, holders)
		}
	}
}

// Two upgrades of one cluster hold the autoscaler: the first to end keeps
// it at 0 for the other, the last gives it back; a resumed holder holds
// once; a holder whose upgrade is over (killed and abandoned, aborted
// elsewhere) no longer keeps it.
func TestTheAutoscalerIsGivenBackByTheLastHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w := newAutoscalerWorld(t)
		a, b := w.hold("a"), w.hold("b")
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(a.pause(ctx))
		must(b.pause(ctx))
		w.want(0, "c1/a", "c1/b")
		// a is killed (nothing runs its restore) and resumed: it holds once.
		must(a.pause(ctx))
		w.want(0, "c1/a", "c1/b")
		w.live["c1/a"] = true
		must(b.restore(ctx))
		w.want(0, "c1/a")
		must(a.restore(ctx))
		w.want(2)

		// b's upgrade is gone without restoring (its record ended elsewhere):
		// a's end gives the autoscaler back.
		must(a.pause(ctx))
		must(b.pause(ctx))
		w.live["c1/b"] = false
		must(a.restore(ctx))
		w.want(2)
		// A restore with nothing held changes nothing.
		must(b.restore(ctx))
		w.want(2)
	})
}

// On the engine: group ng's upgrade is held mid-run while group ng2's
// upgrade runs to its end; ng2's end leaves the autoscaler at 0 (ng's
// record is active), and ng's end gives it back.
func TestTwoGroupsUpgradingShareTheAutoscaler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 2, "a", "b")
		if err := w.p.AddGroup(context.Background(), "ng2", 2, []string{"a", "b"}, amiOld); err != nil {
			t.Fatal(err)
		}
		release, held := make(chan struct{}), make(chan struct{})
		w.p.Holding = func(ctx context.Context, op string) error {
			if !strings.HasPrefix(op, "TerminateInstance") || !strings.Contains(op, "i-000001 ") {
				return nil
			}
			close(held)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ca := func() (int32, string) {
			d, err := w.kube.AppsV1().Deployments("kube-system").Get(context.Background(), "cluster-autoscaler", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return *d.Spec.Replicas, d.Annotations[annHolders]
		}
		first := make(chan error, 1)
		go func() {
			_, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
			first <- err
		}()
		<-held
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		defer cancel()
		if _, err := w.engine().Upgrade(ctx, Request{Group: cloud.NodeGroupRef{Cluster: "c1", Name: "ng2"}, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil {
			t.Fatalf("upgrading ng2 beside ng: %v", err)
		}
		if n, holders := ca(); n != 0 || !strings.Contains(holders, "c1/ng") || strings.Contains(holders, "c1/ng2") {
			t.Fatalf("after ng2's end, beside ng's upgrade: autoscaler at %d, holders %s; want 0 held by c1/ng alone", n, holders)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("ng's upgrade: %v", err)
		}
		if n, holders := ca(); n != 1 || holders != "" {
			t.Fatalf("after both: autoscaler at %d, holders %q; want 1 and none", n, holders)
		}
	})
}

// The records and locks live where the permissions grant them.
func TestRecordsLiveWhereThePermissionsSay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		if Namespace != permissions.Namespace {
			t.Fatalf("records and locks in %s, permissions granted in %s", Namespace, permissions.Namespace)
		}
	})
}
