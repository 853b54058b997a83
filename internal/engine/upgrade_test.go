package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/cloud"
	cloudfake "github.com/noderoll/noderoll/internal/cloud/fake"
	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/kubefake"
	"github.com/noderoll/noderoll/internal/preflight"
	"github.com/noderoll/noderoll/internal/terms"
)

// The engine's state machine on a stateful fake cloud and client-go's fake
// clientset: resume and record logic in milliseconds. Each test runs in a
// testing/synctest bubble, on virtual time, with the engine's default polls
// and timeouts. Real evictions and real instances are proven end to end in
// test/e2e.

const (
	amiOld = "ami-old136"
	amiA   = "ami-a13720261020"
	amiB   = "ami-b13720261115"
)

type world struct {
	strategy       string // eks unless a test sets it
	allowDowngrade bool
	t              *testing.T
	kube           *k8sfake.Clientset
	p              *cloudfake.Provider
	ref            cloud.NodeGroupRef
}

func newWorld(t *testing.T, size int, azs ...string) *world {
	t.Helper()
	kube := k8sfake.NewClientset(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-autoscaler", Namespace: "kube-system"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(1))},
	})
	kube.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods/eviction", Kind: "Eviction", Group: "policy", Version: "v1"}}}}
	kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{Major: "1", Minor: "37"}
	withResourceVersions(kube)
	p := cloudfake.New(kube, "c1", "1.37")
	p.AddImage(cloudfake.Image{ID: amiOld, Name: "al2023-1.36-v20261115", Minor: "1.36", Release: "1.36.5-20261115"}, true)
	p.AddImage(cloudfake.Image{ID: amiA, Name: "al2023-1.37-v20261020", Minor: "1.37", Release: "1.37.2-20261020"}, false)
	p.AddImage(cloudfake.Image{ID: amiB, Name: "al2023-1.37-v20261115", Minor: "1.37", Release: "1.37.2-20261115"}, true)
	if err := p.AddGroup(context.Background(), "ng", size, azs, amiOld); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, kube: kube, p: p, ref: cloud.NodeGroupRef{Cluster: "c1", Name: "ng"}}
}

func (w *world) engine() *Engine {
	strategy := w.strategy
	if strategy == "" {
		strategy = StrategyEKS
	}
	// Every test runs in a synctest bubble: time is virtual and moves only
	// when every goroutine of the test waits, so the defaults' polls and
	// timeouts cost no wall-clock time and a busy machine cannot trip them.
	return New(w.kube, w.p, Options{Strategy: strategy, PostCordonWait: 0, Seed: 1, AllowDowngrade: w.allowDowngrade})
}

func (w *world) upgrade(spec TargetSpec) (*Result, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	return w.engine().Upgrade(ctx, Request{Group: w.ref, Target: spec})
}

// recordVersion is the record ConfigMap's resourceVersion.
func (w *world) recordVersion() string {
	w.t.Helper()
	cm, err := w.kube.CoreV1().ConfigMaps(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return cm.ResourceVersion
}

func (w *world) record() *Record {
	w.t.Helper()
	cm, err := w.kube.CoreV1().ConfigMaps(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal([]byte(cm.Data[recordKey]), &r); err != nil {
		w.t.Fatal(err)
	}
	return &r
}

func ids(g cloudfake.Group) []string {
	var out []string
	for _, i := range g.Instances {
		out = append(out, i.ID)
	}
	return out
}

// done checks the end state of a finished upgrade to image: every instance
// on it, sizes and processes as before, the autoscaler restored, no node
// left marked, each old instance terminated exactly once.
func (w *world) done(image string, size int, old []string) {
	w.t.Helper()
	g := w.p.Group("ng")
	if g.Min != size || g.Max != size || g.Desired != size || len(g.Instances) != size {
		w.t.Errorf("group sizes %d/%d/%d with %d instances, want %d", g.Min, g.Max, g.Desired, len(g.Instances), size)
	}
	for _, i := range g.Instances {
		if i.ImageID != image {
			w.t.Errorf("instance %s on %s, want %s", i.ID, i.ImageID, image)
		}
	}
	if vs := w.p.TemplateVersions(g.TemplateID); vs[g.TemplateVersion-1] != image {
		w.t.Errorf("group launches version %d (%s), want one with %s", g.TemplateVersion, vs[g.TemplateVersion-1], image)
	}
	if g.Suspended["AZRebalance"] {
		w.t.Error("AZRebalance left suspended")
	}
	// EKS records the version the group launches, and the group's update
	// strategy is the user's again (EKSRecord).
	if max(1, g.RecordedVersion) != g.TemplateVersion || g.Strategy != "" && g.Strategy != cloud.StrategyDefault {
		w.t.Errorf("EKS records version %d of the template, strategy %q; want %d, DEFAULT as before", g.RecordedVersion, g.Strategy, g.TemplateVersion)
	}
	terms := w.p.Terminations()
	for _, id := range old {
		if terms[id] != 1 {
			w.t.Errorf("old instance %s terminated %d times, want exactly once", id, terms[id])
		}
	}
	ca, err := w.kube.AppsV1().Deployments("kube-system").Get(context.Background(), "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations[annPausedReplicas] != "" {
		w.t.Errorf("cluster-autoscaler not restored: %v", err)
	}
	nodes, _ := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 || n.Annotations[annPhase] != "" {
			w.t.Errorf("node %s left cordoned, tainted or marked", n.Name)
		}
	}
	if r := w.record(); r.Phase != PhaseCompleted || r.Target.ImageID != image {
		w.t.Errorf("record: phase %s target %s", r.Phase, r.Target.ImageID)
	}
}

// A second upgrade of a group must really upgrade it: a new launch template
// version, the group pointed at it, every node replaced; then a third run on
// the same target changes nothing.
func TestASecondUpgradeOfTheGroupReallyUpgradesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		first := ids(w.p.Group("ng"))
		res, err := w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261020"})
		if err != nil {
			t.Fatal(err)
		}
		w.done(amiA, 3, first)
		if len(res.Replaced) != 3 || len(res.Removed) != 3 {
			t.Fatalf("first run: replaced %v removed %v", res.Replaced, res.Removed)
		}
		// Each replacement is a step that says its action and instance
		// in fields, not only in its name.
		var acted []string
		for _, st := range res.Steps {
			if st.Action == "replace" && st.Name == "replace "+st.Instance {
				acted = append(acted, st.Instance)
			}
		}
		slices.Sort(acted)
		if want := slices.Sorted(slices.Values(res.Replaced)); !slices.Equal(acted, want) {
			t.Errorf("replace steps on %v, want one on each replaced instance %v", acted, want)
		}

		second := ids(w.p.Group("ng"))
		res, err = w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261115"})
		if err != nil {
			t.Fatal(err)
		}
		if res.UpToDate || len(res.Replaced) != 3 || slices.ContainsFunc(res.Replaced, func(id string) bool { return slices.Contains(first, id) }) {
			t.Fatalf("second run reported up to date or the first run's instances: %+v", res)
		}
		w.done(amiB, 3, second)
		if vs := w.p.TemplateVersions(w.p.Group("ng").TemplateID); len(vs) != 3 || w.p.Group("ng").TemplateVersion != 3 {
			t.Fatalf("template versions %v, group on %d; want a third version launched", vs, w.p.Group("ng").TemplateVersion)
		}

		calls := len(w.p.Calls())
		res, err = w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261115"})
		if err != nil || !res.UpToDate || len(w.p.Calls()) != calls {
			t.Fatalf("third run on the same target: %+v, %v, %d new calls", res, err, len(w.p.Calls())-calls)
		}
	})
}

// errInjected is what a failing fake call returns.
var errInjected = errors.New("injected failure")

// Every changing call failing once, before it takes effect or after it did
// (a lost answer, a crash before the record is saved): the rerun finishes
// the same upgrade, terminates no instance twice and counts every one.
func TestAFailureAtEveryStepIsResumed(t *testing.T) {
	for _, c := range []struct {
		strategy      string
		size, removed int
	}{
		{StrategyEKS, 3, 3},
		// 6 nodes surge 3: three replaced keeping desired, three lowering it.
		{StrategySurge, 6, 0},
	} {
		t.Run(c.strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { failEveryStep(t, c.strategy, c.size, c.removed) })
		})
	}
}

func failEveryStep(t *testing.T, strategy string, size, removed int) {
	interrupted := 0
	for _, after := range []bool{false, true} {
		for k := 1; ; k++ {
			w := newWorld(t, size, "a", "b", "c")
			w.strategy = strategy
			old := ids(w.p.Group("ng"))
			n := 0
			var failedOn string
			fail := func(op string) error {
				if n++; n == k {
					failedOn = op
					return errInjected
				}
				return nil
			}
			if after {
				w.p.After = fail
			} else {
				w.p.Before = fail
			}
			_, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
			if err == nil {
				if k < 10 {
					t.Fatalf("only %d changing calls: the test does not cover the run", k-1)
				}
				break // k is past the last changing call
			}
			if !errors.Is(err, errInjected) {
				t.Fatalf("after=%v k=%d (%s): %v", after, k, failedOn, err)
			}
			w.p.Before, w.p.After = nil, nil
			res, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
			if err != nil {
				t.Fatalf("after=%v, failed on call %d (%s); the rerun: %v", after, k, failedOn, err)
			}
			w.done(amiB, size, old)
			slices.Sort(res.Replaced)
			if !slices.Equal(res.Replaced, old) || len(res.Removed) != removed {
				t.Errorf("after=%v, failed on call %d (%s): replaced %v removed %v; want every old instance and %d surplus", after, k, failedOn, res.Replaced, res.Removed, removed)
			}
			// A step the failure cut short is not left running in the
			// record of a finished run: its next attempt ended it.
			for j, st := range res.Steps {
				rerun := slices.ContainsFunc(res.Steps[j+1:], func(later Step) bool { return strings.HasPrefix(later.Name, st.Name+" (attempt ") })
				if st.End.IsZero() || st.Interrupted != rerun {
					t.Errorf("after=%v, failed on call %d (%s): step %+v (run again later: %v)", after, k, failedOn, st, rerun)
				}
				if st.Interrupted {
					interrupted++
				}
			}
		}
	}
	if interrupted == 0 {
		t.Error("no failure cut a step short: the test does not cover it")
	}
}

// A resume goes on to the recorded target even when the same request now
// resolves to a newer AMI; the run after it moves on to that one.
func TestAResumeKeepsTheRecordedTargetWhenRecommendedMovesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 2, "a", "b")
		w.p.AddImage(cloudfake.Image{ID: amiA, Name: "al2023-1.37-v20261020", Minor: "1.37", Release: "1.37.2-20261020"}, true)
		terminations := 0
		w.p.Before = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") {
				if terminations++; terminations == 2 {
					return errInjected
				}
			}
			return nil
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); !errors.Is(err, errInjected) {
			t.Fatalf("want the injected failure, got %v", err)
		}
		w.p.Before = nil
		w.p.AddImage(cloudfake.Image{ID: amiB, Name: "al2023-1.37-v20261115", Minor: "1.37", Release: "1.37.2-20261115"}, true) // published meanwhile
		told := &progressLog{kind: ProgressInfo}
		e := New(w.kube, w.p, Options{Strategy: StrategyEKS, PostCordonWait: 0, Seed: 1}, WithReporter(told))
		res, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err != nil {
			t.Fatalf("the resume was refused: %v", err)
		}
		// Said once, though the record is judged before the lock and again
		// under it.
		if n := told.count("now resolves to " + amiB); n != 1 {
			t.Errorf("the newer AMI the request resolves to was told %d times, want once:\n%s", n, strings.Join(told.lines, "\n"))
		}
		if res.Target.ImageID != amiA {
			t.Fatalf("the resume went to %s, want the recorded %s", res.Target.ImageID, amiA)
		}
		for _, i := range w.p.Group("ng").Instances {
			if i.ImageID != amiA {
				t.Fatalf("instance %s on %s after the resume", i.ID, i.ImageID)
			}
		}
		res, err = w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
		if err != nil || res.UpToDate || res.Target.ImageID != amiB {
			t.Fatalf("the next run should move on to %s: %+v %v", amiB, res, err)
		}
		// Another target while one is under way is still refused (the first
		// goes back a release, on purpose).
		w.allowDowngrade = true
		w.p.Before = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") {
				return errInjected
			}
			return nil
		}
		if _, err := w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261020"}); !errors.Is(err, errInjected) {
			t.Fatalf("want the injected failure, got %v", err)
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); !errors.Is(err, ErrTargetMismatch) {
			t.Fatalf("another target mid-upgrade: want ErrTargetMismatch, got %v", err)
		}
	})
}

// One NotReady old node (often the reason to upgrade) does not hold the
// surge's wait for new nodes.
func TestANotReadyOldNodeDoesNotBlockTheSurge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		n, err := w.kube.CoreV1().Nodes().Get(context.Background(), cloudfake.NodeName(old[0]), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions[0].Status = corev1.ConditionUnknown
		if _, err := w.kube.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 3, old)
	})
}

// Launches failing after the surge stop the run before the next old node
// loses its pods, with the group's own reason; nothing else is terminated.
func TestLaunchesFailingMidRunStopBeforeTheNextDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		w.p.After = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") && strings.HasSuffix(op, "decrement=false") {
				_ = w.p.SetGroup(context.Background(), "ng", func(g *cloudfake.Group) { g.LaunchFailure = "InsufficientInstanceCapacity" })
			}
			return nil
		}
		// The fake launches the first replacement within the terminate call,
		// before the failure is set: the second one fails.
		_, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
		var nce *NodeCreationError
		if !errors.As(err, &nce) || nce.Replaced != 2 || !strings.Contains(err.Error(), "so no further old node was drained") || !strings.Contains(err.Error(), "InsufficientInstanceCapacity") {
			t.Fatalf("want a NodeCreationError after 2 replaced naming the cause, got %v", err)
		}
		total := 0
		for _, c := range w.p.Terminations() {
			total += c
		}
		if total != 2 {
			t.Fatalf("%d instances terminated; want 2: the third old node must keep its pods", total)
		}
	})
}

// Someone else resizing the group mid-run stops it with a recorded error;
// noderoll does not undo the change, and with --accept-resize goes on with
// the group as it is.
func TestAForeignResizeMidRunStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		resized := false
		w.p.After = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") && !resized {
				resized = true
				_ = w.p.SetGroup(context.Background(), "ng", func(g *cloudfake.Group) { g.Max, g.Desired = 8, 8 })
			}
			return nil
		}
		_, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
		var sc *SizesChangedError
		if !errors.As(err, &sc) || sc.Desired != 8 || sc.WantDesired != 6 {
			t.Fatalf("want a SizesChangedError (desired 8, held at 6), got %v", err)
		}
		if g := w.p.Group("ng"); g.Desired != 8 || g.Max != 8 {
			t.Fatalf("noderoll undid the change: max %d desired %d", g.Max, g.Desired)
		}
		if r := w.record(); !strings.Contains(r.Message, "resized by someone else") || !strings.Contains(r.Message, "--accept-resize") {
			t.Fatalf("the record does not keep the cause and the way on: %q", r.Message)
		}
		// A plain rerun stops again; --accept-resize takes the group as it is and
		// removes the two extra nodes drained, through noderoll, at scale back.
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); !errors.As(err, &sc) {
			t.Fatalf("a rerun without --accept-resize: want the same stop, got %v", err)
		}
		eng := w.engine()
		eng.opts.AcceptResize = true
		res, err := eng.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err != nil {
			t.Fatalf("--accept-resize: %v", err)
		}
		w.done(amiB, 3, old)
		if len(res.Removed) != 5 {
			t.Fatalf("removed %v at scale back; want the 3 of the surge and the 2 someone added", res.Removed)
		}
	})
}

// --accept-resize takes over a larger group only: a new min or a desired
// below the original is someone deciding the group should shrink.
func TestAcceptResizeRefusesAShrunkGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		w.p.After = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") {
				_ = w.p.SetGroup(context.Background(), "ng", func(g *cloudfake.Group) { g.Min, g.Desired = 2, 2 })
				return errInjected
			}
			return nil
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); !errors.Is(err, errInjected) {
			t.Fatalf("want the injected stop, got %v", err)
		}
		w.p.After = nil
		eng := w.engine()
		eng.opts.AcceptResize = true
		_, err := eng.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err == nil || !strings.Contains(err.Error(), "takes over a larger group only") {
			t.Fatalf("want a refusal to take over a shrunk group, got %v", err)
		}
	})
}

// The record is written with the resourceVersion it was read at: a second
// writer in between makes the save fail instead of being overwritten.
func TestTheRecordRefusesAStaleWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kube := k8sfake.NewClientset()
		withResourceVersions(kube)
		ctx := context.Background()
		a := &ConfigMapStore{client: kube, name: "rec"}
		if err := a.Save(ctx, &Record{Phase: PhaseStarted}); err != nil {
			t.Fatal(err)
		}
		b := &ConfigMapStore{client: kube, name: "rec"}
		if _, err := b.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Save(ctx, &Record{Phase: PhaseSurging}); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(ctx, &Record{Phase: PhaseStarted}); !errors.Is(err, ErrRecordChanged) {
			t.Fatalf("a stale write: want ErrRecordChanged, got %v", err)
		}
		if err := (&ConfigMapStore{client: kube, name: "rec"}).Save(ctx, &Record{}); !errors.Is(err, ErrRecordChanged) {
			t.Fatalf("a create over an existing record: want ErrRecordChanged, got %v", err)
		}
		r, _ := (&ConfigMapStore{client: kube, name: "rec"}).Load(ctx)
		if r.Phase != PhaseSurging {
			t.Fatalf("the record was overwritten: phase %s", r.Phase)
		}
	})
}

// withResourceVersions gives records and leases the API server's
// optimistic concurrency (a lock taken over refuses the old holder's
// renewal).
func withResourceVersions(kube *k8sfake.Clientset) {
	kubefake.WithResourceVersions(kube, "configmaps", "leases")
}

// The surge strategy replaces nodes concurrently within its budgets: at no
// call does the group hold more instances than original + surge, nor fewer
// Ready schedulable nodes than original - unavailable; the last old
// instances go lowering desired capacity, so no surplus is drained twice.
func TestSurgeReplacesConcurrentlyWithinItsBudgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 12, "a", "b", "c")
		w.strategy = StrategySurge
		old := ids(w.p.Group("ng"))
		peakIn, lowReady, terminateCalls, peakMarked := 0, 12, 0, 0
		w.p.Before = func(op string) error {
			// The fake group drops a terminated instance at once.
			peakIn = max(peakIn, len(w.p.Group("ng").Instances))
			nodes, _ := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			ready, marked := 0, 0
			for _, n := range nodes.Items {
				if conditions.NodeReady(&n) && !n.Spec.Unschedulable {
					ready++
				}
				if n.Annotations[annPhase] != "" {
					marked++
				}
			}
			lowReady, peakMarked = min(lowReady, ready), max(peakMarked, marked)
			if strings.HasPrefix(op, "TerminateInstance") {
				terminateCalls++
			}
			return nil
		}
		e := w.engine()
		e.opts.MaxSurge, e.opts.MaxUnavailable = Amount{Value: 3, Given: true}, Amount{Value: 1, Given: true}
		res, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 12, old)
		if peakIn > 15 || lowReady < 11 || peakMarked < 2 || peakMarked > 4 {
			t.Errorf("peak %d instances in service (max 12+3), lowest %d ready schedulable nodes (min 12-1), peak %d nodes in flight (want 2 to 3+1)", peakIn, lowReady, peakMarked)
		}
		if len(res.Removed) != 0 || len(w.record().Decremented) != 3 || terminateCalls != 12 {
			t.Errorf("removed %v, decremented %v, %d terminate calls: want the last 3 old instances to lower desired, 12 calls", res.Removed, w.record().Decremented, terminateCalls)
		}
		if r := w.record(); r.Strategy != StrategySurge || r.Surge != 3 || r.Unavailable != 1 {
			t.Errorf("record: strategy %q surge %d unavailable %d", r.Strategy, r.Surge, r.Unavailable)
		}
	})
}

// Budgets that cannot work are refused before anything changes.
func TestBadBudgetsChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, c := range []struct {
			surge, unavailable Amount
			strategy, want     string
		}{
			{Amount{Value: 0, Given: true}, Amount{Value: 0, Given: true}, StrategySurge, "leave no node to replace with"},
			{Amount{Value: 7, Given: true}, Amount{}, StrategySurge, "more than the 6 the group has"},
			{Amount{}, Amount{Value: 9, Given: true}, StrategySurge, "--max-unavailable=9 is 9 nodes, more than the 6"},
			{Amount{}, Amount{}, "fast", `--strategy "fast"`},
		} {
			w := newWorld(t, 6, "a", "b")
			e := w.engine()
			e.opts.Strategy, e.opts.MaxSurge, e.opts.MaxUnavailable = c.strategy, c.surge, c.unavailable
			_, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s surge %v unavailable %v: got %v, want %q", c.strategy, c.surge, c.unavailable, err, c.want)
			}
			if calls := w.p.Calls(); len(calls) != 0 {
				t.Errorf("%s: changed %v", c.want, calls)
			}
			if _, err := w.kube.CoreV1().ConfigMaps(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("%s: a record was written", c.want)
			}
		}
	})
}

// A front end's terms name the options in the engine's messages: a
// resource's user reads spec fields, never the CLI's flags.
func TestMessagesNameOptionsInTheFrontEndsTerms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 6, "a", "b")
		e := w.engine()
		e.opts.Strategy, e.opts.MaxSurge, e.opts.MaxUnavailable = StrategySurge, Amount{Value: 0, Given: true}, Amount{Value: 0, Given: true}
		e.opts.Terms = terms.Terms{"max-surge": "spec.strategy.maxSurge", "max-unavailable": "spec.strategy.maxUnavailable"}
		_, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err == nil || !strings.Contains(err.Error(), "spec.strategy.maxSurge: 0 and spec.strategy.maxUnavailable: 0 leave no node") || strings.Contains(err.Error(), "--") {
			t.Errorf("got %v; want the budgets named as the resource's fields", err)
		}
		d := &DowngradeError{Group: w.ref, From: cloud.Image{KubeMinor: "1.37"}, To: cloud.Image{KubeMinor: "1.36"},
			Terms: terms.Terms{"allow-downgrade": "spec.allowDowngrade", "abort": "spec.action: Abort"}}
		if msg := d.Error(); !strings.Contains(msg, "set spec.allowDowngrade") || !strings.Contains(msg, "spec.action: Abort takes back") || strings.Contains(msg, "--") {
			t.Errorf("a downgrade refused in the resource's terms reads %q", msg)
		}
	})
}

// A post-cordon wait of 0 is none (the world's runs, 0 here, would take
// 60 s a node otherwise); a negative one is refused, changing nothing.
func TestANegativeWaitIsRefusedAndZeroIsNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 2, "a", "b")
		e := w.engine()
		if e.opts.PostCordonWait != 0 {
			t.Fatalf("a post-cordon wait of 0 became %s", e.opts.PostCordonWait)
		}
		o := e.opts
		o.PostCordonWait = -5 * time.Second
		_, err := New(w.kube, w.p, o).Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err == nil || !strings.Contains(err.Error(), "--post-cordon-wait=-5s: a duration cannot be negative") {
			t.Fatalf("a negative post-cordon wait: got %v", err)
		}
		if calls := w.p.Calls(); len(calls) != 0 {
			t.Errorf("the refused run changed %v", calls)
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseAmount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for in, want := range map[string]string{"3": "3", "25%": "25%", " 100% ": "100%", "0": "0"} {
			a, err := ParseAmount(in)
			if err != nil || a.String() != want || !a.Given {
				t.Errorf("ParseAmount(%q) = %v, %v", in, a, err)
			}
		}
		for in, want := range map[string]string{"-1": "negative", "101%": "over 100%", "x": "neither a count", "": "neither"} {
			if _, err := ParseAmount(in); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ParseAmount(%q): %v, want %q", in, err, want)
			}
		}
		if got := (Amount{Value: 25, Percent: true}).of(30, true); got != 8 {
			t.Errorf("25%% of 30 rounded up = %d", got)
		}
		if got := (Amount{Value: 25, Percent: true}).of(30, false); got != 7 {
			t.Errorf("25%% of 30 rounded down = %d", got)
		}
	})
}

// Blue-green: the whole new set first, then every old node drained and
// kept for the soak, then terminated lowering desired capacity.
func TestBlueGreenReplacesTheWholeSetThenTheOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 6, "a", "b", "c")
		w.strategy = StrategyBlueGreen
		old := ids(w.p.Group("ng"))
		peak := 0
		w.p.Before = func(op string) error {
			peak = max(peak, len(w.p.Group("ng").Instances))
			if strings.HasPrefix(op, "TerminateInstance") && len(w.p.Group("ng").Instances) < 12 && !strings.Contains(op, "decrement=true") {
				t.Errorf("%s: an old instance terminated keeping desired capacity", op)
			}
			return nil
		}
		e := w.engine()
		e.opts.BatchSize, e.opts.Soak = 2, 50*time.Millisecond
		res, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 6, old)
		if peak != 12 || len(res.Removed) != 0 || len(w.record().Decremented) != 6 {
			t.Errorf("peak %d instances (want 12), removed %v, decremented %v", peak, res.Removed, w.record().Decremented)
		}
		// The soak is a step of its own, at least its length; no node's
		// replace step carries it (each ends drained, before it began).
		var soak *Step
		for k, st := range w.record().Steps {
			if st.Name == "soak" {
				soak = &w.record().Steps[k]
			}
		}
		if soak == nil || soak.End.IsZero() || soak.End.Sub(soak.Start) < 50*time.Millisecond {
			t.Fatalf("the soak's step: %+v in %+v", soak, w.record().Steps)
		}
		for _, st := range w.record().Steps {
			if st.Action == "replace" && (st.End.IsZero() || st.End.After(soak.Start)) {
				t.Errorf("step %s (%s to %s) runs into the soak begun %s", st.Name, st.Start, st.End, soak.Start)
			}
		}
	})
}

// Going back during the soak: old nodes take pods again, the new ones go,
// the group launches its original version; nothing old is terminated. The
// next upgrade of the group then starts afresh.
func TestBlueGreenGoesBackDuringTheSoak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 4, "a", "b")
		w.strategy = StrategyBlueGreen
		old := ids(w.p.Group("ng"))
		origVersion := w.p.Group("ng").TemplateVersion
		e := w.engine()
		e.opts.Soak = time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := e.Upgrade(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
			done <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			nodes, _ := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			cordoned := 0
			for _, n := range nodes.Items {
				if n.Annotations[annCordonedAt] != "" {
					cordoned++
				}
			}
			if cordoned == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the old nodes were never all drained (%d)", cordoned)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		var inSoak *StoppedInSoakError
		if err := <-done; !errors.Is(err, context.Canceled) || !errors.As(err, &inSoak) {
			t.Fatalf("the soaking upgrade ended with %v, want a StoppedInSoakError", err)
		}
		if len(w.p.Terminations()) != 0 {
			t.Fatalf("terminated during the soak: %v", w.p.Terminations())
		}

		// Each removal takes a second: the going back takes time the
		// soak's step must not count.
		w.p.Before = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") {
				time.Sleep(time.Second)
			}
			return nil
		}
		res, err := w.engine().RollBack(context.Background(), Request{Group: w.ref})
		if err != nil {
			t.Fatal(err)
		}
		w.p.Before = nil
		g := w.p.Group("ng")
		now := ids(g)
		slices.Sort(now)
		slices.Sort(old)
		if !slices.Equal(now, old) || g.Min != 4 || g.Max != 4 || g.Desired != 4 || g.TemplateVersion != origVersion {
			t.Errorf("after going back: instances %v (want %v), sizes %d/%d/%d, version %d (want %d)", now, old, g.Min, g.Max, g.Desired, g.TemplateVersion, origVersion)
		}
		for _, id := range old {
			if w.p.Terminations()[id] != 0 {
				t.Errorf("old instance %s terminated", id)
			}
		}
		if len(res.Removed) != 4 {
			t.Errorf("removed %v, want the 4 new instances", res.Removed)
		}
		nodes, _ := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		for _, n := range nodes.Items {
			if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 || n.Annotations[annPhase] != "" || n.Annotations[annCordonedAt] != "" {
				t.Errorf("node %s left cordoned, tainted or marked", n.Name)
			}
		}
		if r := w.record(); r.Phase != PhaseRolledBack {
			t.Errorf("record phase %s", r.Phase)
		}
		// The soak the stopped run began ends as the going back begins,
		// before the new nodes' removal; no step is left open.
		soaks, removals := []Step{}, []Step{}
		for _, st := range w.record().Steps {
			switch {
			case st.End.IsZero():
				t.Errorf("step %s left open", st.Name)
			case st.Name == "soak":
				soaks = append(soaks, st)
			case st.Action == "remove":
				removals = append(removals, st)
			}
		}
		if len(soaks) != 1 || len(removals) != 4 || soaks[0].End.After(removals[0].Start) {
			t.Errorf("soak steps %+v, removals %+v: want one soak ended before the first removal began", soaks, removals)
		}
		if _, err := w.engine().RollBack(context.Background(), Request{Group: w.ref}); err == nil || !strings.Contains(err.Error(), "no upgrade of c1/ng is under way") {
			t.Errorf("a second go-back: %v", err)
		}
		e = w.engine()
		e.opts.Soak = 0
		if _, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 4, old)
	})
}

func TestGoingBackIsRefusedWhenOldNodesAreGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
		_, err := w.engine().RollBack(context.Background(), Request{Group: w.ref})
		if err == nil || !strings.Contains(err.Error(), "no upgrade of c1/ng is under way") {
			t.Errorf("going back after a completed upgrade: %v", err)
		}
	})
}

// The second use, for the strategies that terminate old nodes lowering
// desired capacity: a second upgrade of the group really upgrades it,
// and a third on the same target changes nothing.
func TestSurgeAndBlueGreenUpgradeTheSameGroupAgain(t *testing.T) {
	for _, strategy := range []string{StrategySurge, StrategyBlueGreen} {
		t.Run(strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, 6, "a", "b", "c")
				w.strategy = strategy
				for _, step := range []struct{ release, image string }{{"1.37.2-20261020", amiA}, {"1.37.2-20261115", amiB}} {
					old := ids(w.p.Group("ng"))
					res, err := w.upgrade(TargetSpec{ReleaseVersion: step.release})
					if err != nil {
						t.Fatal(err)
					}
					w.done(step.image, 6, old)
					slices.Sort(res.Replaced)
					if res.UpToDate || !slices.Equal(res.Replaced, old) || len(res.Removed) != 0 {
						t.Fatalf("to %s: replaced %v (want %v), removed %v", step.release, res.Replaced, old, res.Removed)
					}
				}
				calls := len(w.p.Calls())
				res, err := w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261115"})
				if err != nil || !res.UpToDate || len(w.p.Calls()) != calls {
					t.Fatalf("third run on the same target: %+v, %v, %d new calls", res, err, len(w.p.Calls())-calls)
				}
			})
		})
	}
}

// One run per group: while one upgrades it, a second is refused naming the
// holder, and changes nothing; once the first is over the lock is free.
func TestASecondRunIsRefusedWhileOneHoldsTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		held, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		w.p.After = func(op string) error {
			if strings.HasPrefix(op, "TerminateInstance") {
				once.Do(func() {
					close(held)
					<-release
				})
			}
			return nil
		}
		first := make(chan error, 1)
		go func() {
			_, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
			first <- err
		}()
		<-held
		groupBefore := w.p.Group("ng")
		recBefore, err := w.kube.CoreV1().ConfigMaps(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.engine().Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		var refused *grouplock.HeldError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "c1/ng is being upgraded by noderoll (pid") {
			t.Fatalf("a second run while the first holds the group: want it refused naming the holder, got %v", err)
		}
		_, err = w.engine().RollBack(context.Background(), Request{Group: w.ref})
		if !errors.As(err, &refused) {
			t.Fatalf("going back while another run holds the group: want it refused, got %v", err)
		}
		recAfter, _ := w.kube.CoreV1().ConfigMaps(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{})
		if !reflect.DeepEqual(w.p.Group("ng"), groupBefore) || recAfter.ResourceVersion != recBefore.ResourceVersion {
			t.Fatal("the refused runs changed the group or its record")
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("the first run: %v", err)
		}
		w.done(amiB, 3, old)
		lease, err := w.kube.CoordinationV1().Leases(Namespace).Get(context.Background(), recordName("c1", "ng"), metav1.GetOptions{})
		if err != nil || ptr.Deref(lease.Spec.HolderIdentity, "") != "" {
			t.Fatalf("the lock was not released at the end: %v %v", lease, err)
		}
		if res, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil || !res.UpToDate {
			t.Fatalf("the next run after the first: %+v %v", res, err)
		}
	})
}

// Preflight: a pod nothing would recreate stops a real run before anything
// changes (no record, no lock, the group as it was); --dry-run's report names
// it; --ignore-preflight=bare-pod lets the run go on.
func TestABlockingPreflightFindingStopsTheRunBeforeAnyChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		ctx := context.Background()
		if _, err := w.kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "debug", Namespace: "default"},
			Spec:       corev1.PodSpec{NodeName: cloudfake.NodeName(old[0])},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		before := w.p.Group("ng")

		rep, err := w.engine().Preflight(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		if err != nil {
			t.Fatal(err)
		}
		// It alone: a managed group on its own template gets no warning,
		// since the run has EKS record the new version at its end.
		if rep.Blocking != 1 || len(rep.Findings) != 1 || rep.Findings[0].Object != "Pod default/debug" ||
			rep.ToReplace != 3 || rep.Target.ImageID != amiB {
			t.Fatalf("report: %+v", rep)
		}

		_, err = w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
		var blocked *preflight.BlockedError
		if !errors.As(err, &blocked) || !strings.Contains(err.Error(), "--ignore-preflight=bare-pod") {
			t.Fatalf("want the run stopped by preflight, got %v", err)
		}
		if !reflect.DeepEqual(w.p.Group("ng"), before) {
			t.Fatal("the stopped run changed the group")
		}
		cms, _ := w.kube.CoreV1().ConfigMaps(Namespace).List(ctx, metav1.ListOptions{})
		leases, _ := w.kube.CoordinationV1().Leases(Namespace).List(ctx, metav1.ListOptions{})
		if len(cms.Items) != 0 || len(leases.Items) != 0 {
			t.Fatalf("the stopped run left %d records and %d leases", len(cms.Items), len(leases.Items))
		}

		// The fake clientset admits an eviction without deleting the pod: do
		// what the API server would.
		w.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "eviction" {
				name := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction).Name
				return true, nil, w.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), a.GetNamespace(), name)
			}
			return false, nil, nil
		})
		eng := w.engine()
		eng.opts.IgnorePreflight = []string{preflight.CheckBarePod}
		if rep, err := eng.Preflight(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil || rep.Blocking != 0 || len(rep.Findings) != 1 {
			t.Fatalf("the report with bare-pod ignored: %+v %v", rep, err)
		}
		if _, err := eng.Upgrade(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil {
			t.Fatalf("with the check ignored: %v", err)
		}
		w.done(amiB, 3, old)
	})
}

// aborted checks the end of an abort: every instance on the original AMI,
// the group launching its original version at its original sizes, nothing
// left suspended, marked, tainted or cordoned, the autoscaler restored, the
// record Aborted, and no instance of the original AMI terminated by the
// abort.
func (w *world) aborted(size int) {
	w.t.Helper()
	g := w.p.Group("ng")
	if g.Min != size || g.Max != size || g.Desired != size || len(g.Instances) != size {
		w.t.Errorf("group sizes %d/%d/%d with %d instances, want %d", g.Min, g.Max, g.Desired, len(g.Instances), size)
	}
	for _, i := range g.Instances {
		if i.ImageID != amiOld {
			w.t.Errorf("instance %s on %s after the abort, want %s", i.ID, i.ImageID, amiOld)
		}
	}
	if g.TemplateVersion != 1 || g.Suspended["AZRebalance"] {
		w.t.Errorf("group launches version %d (want the original 1), AZRebalance suspended %v", g.TemplateVersion, g.Suspended["AZRebalance"])
	}
	ca, err := w.kube.AppsV1().Deployments("kube-system").Get(context.Background(), "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations[annPausedReplicas] != "" {
		w.t.Errorf("cluster-autoscaler not restored: %v", err)
	}
	nodes, _ := w.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 || n.Annotations[annPhase] != "" {
			w.t.Errorf("node %s left cordoned, tainted or marked", n.Name)
		}
	}
	r := w.record()
	wentBack := r.Phase == PhaseRolledBack && r.Strategy == StrategyBlueGreen && r.Abort == nil
	if !wentBack && (r.Phase != PhaseAborted || r.Abort == nil || r.Target.ImageID != amiOld) {
		w.t.Errorf("record: phase %s, abort %+v, target %s", r.Phase, r.Abort, r.Target.ImageID)
	}
	for id, n := range w.p.Terminations() {
		for _, i := range g.Instances {
			if i.ID == id {
				w.t.Errorf("instance %s, still in the group, was terminated %d times", id, n)
			}
		}
	}
}

func (w *world) abort() (*Result, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	return w.engine().Abort(ctx, Request{Group: w.ref})
}

// --abort from any moment of an upgrade that stopped (a cloud call failed,
// before or after it took effect, at each changing call in turn) takes the
// group back to its original AMI and version; an abort that itself stops is
// resumed by running it again; afterwards the upgrade can be run afresh.
func TestAbortFromAnyMomentRestoresTheGroup(t *testing.T) {
	for _, strategy := range []string{StrategyEKS, StrategySurge, StrategyBlueGreen} {
		t.Run(strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				for k := 1; ; k += 2 {
					w := newWorld(t, 3, "a", "b", "c")
					w.strategy = strategy
					n := 0
					w.p.Before = func(op string) error {
						if n++; n == k {
							return errInjected
						}
						return nil
					}
					if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err == nil {
						if k < 8 {
							t.Fatalf("only %d changing calls", k-1)
						}
						break
					}
					// The abort itself fails once, at its third changing call.
					m := 0
					w.p.Before = func(op string) error {
						if m++; m == 3 {
							return errInjected
						}
						return nil
					}
					_, err := w.abort()
					if err != nil && !errors.Is(err, errInjected) {
						t.Fatalf("k=%d: the abort's injected failure: %v", k, err)
					}
					w.p.Before = nil
					if err != nil {
						// A bluegreen upgrade that still has its old nodes goes
						// back to them (as --rollback): resumed by the upgrade's
						// own --rollback, or --abort alike.
						if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err == nil || !strings.Contains(err.Error(), "--abort") && !strings.Contains(err.Error(), "another upgrade") {
							t.Fatalf("k=%d: the upgrade rerun during an abort: %v", k, err)
						}
						if _, err := w.abort(); err != nil {
							t.Fatalf("k=%d: the abort rerun: %v", k, err)
						}
					}
					w.aborted(3)
					if _, err := w.abort(); !errors.As(err, new(*ErrNothingToAbort)) {
						t.Fatalf("k=%d: a second abort: %v", k, err)
					}
					old := ids(w.p.Group("ng"))
					if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
						t.Fatalf("k=%d: the upgrade afresh after the abort: %v", k, err)
					}
					w.done(amiB, 3, old)
				}
			})
		})
	}
}

// An old instance whose node is gone (deleted by someone, or never
// registered) is terminated without a drain, once, and the upgrade ends; it
// used to be picked again and again, never terminated.
func TestAnOldInstanceWithoutANodeIsReplacedToo(t *testing.T) {
	for _, strategy := range []string{StrategyEKS, StrategySurge} {
		t.Run(strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t, 3, "a", "b", "c")
				w.strategy = strategy
				old := ids(w.p.Group("ng"))
				if err := w.kube.CoreV1().Nodes().Delete(context.Background(), cloudfake.NodeName(old[1]), metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
					t.Fatal(err)
				}
				w.done(amiB, 3, old)
			})
		})
	}
}

// progressLog keeps what an upgrade reports of one kind, in order: steps
// as "[n] Title: message", notes as their message.
type progressLog struct {
	kind  string
	mu    sync.Mutex
	lines []string
}

func (l *progressLog) Report(p Progress) {
	if p.Kind != l.kind {
		return
	}
	line := p.Message
	if p.Kind == ProgressStep {
		line = fmt.Sprintf("[%d] %s: %s", p.Step, p.Title, p.Message)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *progressLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

// A node's steps are told in the order they happened: its drain's end
// (Cordon) before its termination, even when its post-cordon wait is over
// by the time the drain ends (surge cordons first) and the strategy would
// terminate it at its next look.
func TestEachNodesStepsAreToldInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 12, "a", "b", "c")
		log := &progressLog{kind: ProgressStep}
		e := New(w.kube, w.p, Options{Strategy: StrategySurge, PostCordonWait: 0, Seed: 1}, WithReporter(log))
		e.opts.MaxSurge = Amount{Value: 6, Given: true}
		if _, err := e.Upgrade(context.Background(), Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil {
			t.Fatal(err)
		}
		cordoned := map[string]bool{}
		terminated := 0
		for _, line := range log.lines {
			switch {
			case strings.HasPrefix(line, "[6] Cordon: "):
				node, _, _ := strings.Cut(strings.TrimPrefix(line, "[6] Cordon: "), " ")
				cordoned[node] = true
			case strings.HasPrefix(line, "[7] Terminate: "):
				terminated++
				_, rest, _ := strings.Cut(line, "(")
				node, _, _ := strings.Cut(rest, ")")
				if !cordoned[node] {
					t.Errorf("%q told before its node's Cordon:\n%s", line, strings.Join(log.lines, "\n"))
				}
			}
		}
		if terminated != 12 {
			t.Errorf("%d terminations told, want 12:\n%s", terminated, strings.Join(log.lines, "\n"))
		}
	})
}

// A node whose drain a budget held says so on its Cordon line, once, with
// how long and which budget: the wait's end, told where the drain ends.
func TestACordonSaysWhichBudgetHeldItsDrainAndHowLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		held := cloudfake.NodeName(old[1])
		ctx := context.Background()
		if _, err := w.kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", Labels: map[string]string{"app": "db"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "db-uid", Controller: ptr.To(true)}}},
			Spec:   corev1.PodSpec{NodeName: held},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.kube.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
			Status:     policyv1.PodDisruptionBudgetStatus{CurrentHealthy: 3, DesiredHealthy: 2, ExpectedPods: 3, DisruptionsAllowed: 1},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The API server refuses the eviction three times (the budget's
		// other pods not yet healthy), then admits it.
		refusals := 3
		w.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "eviction" {
				return false, nil, nil
			}
			name := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction).Name
			if refusals > 0 {
				refusals--
				err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
				err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
					Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget db needs 2 healthy pods and has 2 currently"})
				return true, nil, err
			}
			return true, nil, w.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), a.GetNamespace(), name)
		})
		log := &progressLog{kind: ProgressStep}
		e := New(w.kube, w.p, Options{Strategy: StrategyEKS, PostCordonWait: 0, Seed: 1}, WithReporter(log))
		if _, err := e.Upgrade(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}); err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 3, old)
		var cordons []string
		for _, line := range log.lines {
			if strings.HasPrefix(line, "[6] Cordon: ") {
				cordons = append(cordons, line)
			}
		}
		if len(cordons) != 3 {
			t.Fatalf("%d Cordon lines, want 3:\n%s", len(cordons), strings.Join(log.lines, "\n"))
		}
		for _, line := range cordons {
			says := strings.Contains(line, " held by default/db;")
			if strings.HasPrefix(line, "[6] Cordon: "+held+" ") {
				// Three refusals, a retry delay (5s by default) after each.
				if !says || !strings.Contains(line, "drained and cordoned after 15s held by default/db;") {
					t.Errorf("the held node's line %q; want it drained and cordoned after 15s held by default/db", line)
				}
			} else if says || strings.Contains(line, "held by") {
				t.Errorf("a node no budget held says it was held: %q", line)
			}
		}
	})
}

// A termination names the instance's node, or says it had none, rather
// than name the instance twice.
func TestATerminationOfAnInstanceWithoutANodeSaysSo(t *testing.T) {
	if node, line := terminateLine("i-1", "ip-10-0-0-1", "decrementing desired capacity"); node != "ip-10-0-0-1" || line != "i-1 (ip-10-0-0-1) decrementing desired capacity" {
		t.Errorf("with a node: %q, %q", node, line)
	}
	if node, line := terminateLine("i-2", "i-2", "decrementing desired capacity"); node != "" || line != "i-2 (no node) decrementing desired capacity" {
		t.Errorf("without a node: %q, %q", node, line)
	}
}

// A way back does not ask a run that already takes the group back to
// stop: it is told to wait for it. Any other record (none, an upgrade
// under way, an abort that ended) lets it ask.
func TestAWayBackDoesNotStopAnotherWayBack(t *testing.T) {
	w := newWorld(t, 3, "a")
	e := New(w.kube, w.p, DefaultOptions())
	ctx := context.Background()
	if err := e.goingBackAlready(ctx, w.ref); err != nil {
		t.Fatalf("no record: %v", err)
	}
	for _, c := range []struct {
		rec  Record
		want string // "" lets it ask
	}{
		{Record{Phase: PhaseReplacing}, ""},
		{Record{Phase: PhaseAborted, Abort: &Abort{}}, ""},
		{Record{Phase: PhaseRollingBack}, "is being rolled back already: wait for that run to end"},
		{Record{Phase: PhaseReplacing, Abort: &Abort{}}, "is being aborted already: wait for that run to end"},
	} {
		store := e.records(w.ref)
		if _, err := store.Load(ctx); err != nil {
			t.Fatal(err)
		}
		rec := c.rec
		if err := store.Save(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		err := e.goingBackAlready(ctx, w.ref)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("record in %s (abort %v): got %v, want %q", c.rec.Phase, c.rec.Abort != nil, err, c.want)
		}
	}
}
