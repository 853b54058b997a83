package engine

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/cloud"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func readyNode(name string, at time.Time) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}}}}}
}

func runningPod(name, node string, scheduled, ready time.Time, labels map[string]string, owner string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels}, Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: scheduled}},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: ready}}}}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x", Controller: ptr.To(true)}}
	}
	return p
}

// The plan's delays are the cluster's own: each of the group's instances
// from its launch to its node's Ready, each pod from scheduled to Ready
// (medians); DaemonSets' pods and other groups' nodes do not count.
func TestAPlanMeasuresTheDelaysTheClusterShows(t *testing.T) {
	instances := []cloud.Instance{
		{ID: "i-1", NodeName: "n1", Launched: t0}, {ID: "i-2", NodeName: "n2", Launched: t0}, {ID: "i-3", NodeName: "n3", Launched: t0.Add(time.Minute)},
	}
	nodes := []corev1.Node{readyNode("n1", t0.Add(80*time.Second)), readyNode("n2", t0.Add(95*time.Second)), readyNode("n3", t0.Add(time.Minute+100*time.Second)),
		readyNode("other-group", t0.Add(time.Hour))}
	pods := []corev1.Pod{
		runningPod("a", "n1", t0, t0.Add(4*time.Second), nil, "ReplicaSet"),
		runningPod("b", "n2", t0, t0.Add(6*time.Second), nil, "ReplicaSet"),
		runningPod("c", "n3", t0, t0.Add(8*time.Second), nil, "StatefulSet"),
		runningPod("ds", "n3", t0, t0.Add(time.Hour), nil, "DaemonSet"),
	}
	o := observeDelays(instances, nodes, pods)
	if o.BootReady != 95*time.Second || o.BootReadySamples != 3 || o.PodStart != 6*time.Second || o.PodStartSamples != 3 {
		t.Errorf("%+v; want 95s over 3 nodes, 6s over 3 pods", o)
	}
	// A cloud that dates launches to the millisecond (the sandbox's): a
	// Ready stamped at 2s most likely came at 2.5s, so a node launched at
	// 0.4s booted in 2.1s (not the 1.6s the stamps say).
	fine := []cloud.Instance{{ID: "i-1", NodeName: "n1", Launched: t0.Add(400 * time.Millisecond)}}
	if o := observeDelays(fine, []corev1.Node{readyNode("n1", t0.Add(2*time.Second))}, nil); o.BootReady != 2100*time.Millisecond {
		t.Errorf("boot to Ready %s; want 2.1s: Ready stamped 2s is 2.5s most likely, 2.1s after a launch at 0.4s", o.BootReady)
	}
	if o := observeDelays(nil, nil, nil); o.BootReady != defaultBootReady || o.PodStart != defaultPodStart || o.BootReadySamples != 0 {
		t.Errorf("nothing to measure: %+v; want the defaults, said to be so", o)
	}
}

// The model starts from the group as the engine's first look sees it:
// old instances with the pods a drain moves (no DaemonSet's), each budget
// over them with its headroom and rounds, a StatefulSet's marked ordered,
// and budgets over no pod of the group left out.
func TestAPlanStartsFromTheGroupAsItIs(t *testing.T) {
	p := &prepared{group: cloud.NodeGroup{Min: 2, Max: 4, Desired: 2, AZs: []string{"a", "b"}, Instances: []cloud.Instance{
		{ID: "i-old", AZ: "a", ImageID: "ami-old", NodeName: "n1", Lifecycle: "InService"},
		{ID: "i-new", AZ: "b", ImageID: "ami-new", NodeName: "n2", Lifecycle: "InService"},
		{ID: "i-gone", AZ: "b", ImageID: "ami-old", NodeName: "n3", Lifecycle: "Terminating"},
	}}}
	web := map[string]string{"app": "web"}
	pods := []corev1.Pod{
		runningPod("w1", "n1", t0, t0, web, "ReplicaSet"), runningPod("w2", "n1", t0, t0, web, "ReplicaSet"),
		runningPod("db", "n1", t0, t0, map[string]string{"app": "db"}, "StatefulSet"),
		runningPod("ds", "n1", t0, t0, web, "DaemonSet"),
		runningPod("w3", "n2", t0, t0, web, "ReplicaSet"),
	}
	budget := func(name, app string, allowed int32) policyv1.PodDisruptionBudget {
		one := intstr.FromInt32(1)
		return policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:   policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed}}
	}
	s, heads, inputs := startState(p, "ami-new", pods, []policyv1.PodDisruptionBudget{budget("web", "web", 1), budget("db", "db", 0), budget("none", "nothing", 1)})
	if len(s.Instances) != 2 || !s.Instances[0].Old || s.Instances[1].Old {
		t.Fatalf("instances %+v; want the old one and the new one, not the leaving one", s.Instances)
	}
	old := s.Instances[0]
	if old.Pods != 3 || old.PDBPods["default/web"] != 2 || old.PDBPods["default/db"] != 1 {
		t.Errorf("old node's pods: %d, by budget %v; want 3 (no DaemonSet's): web 2, db 1", old.Pods, old.PDBPods)
	}
	if s.Instances[1].Pods != 0 {
		t.Errorf("a new node's pods are not moved: %+v", s.Instances[1])
	}
	if len(heads) != 2 || heads[0].Name != "default/web" || heads[0].OnGroup != 2 || heads[0].Rounds != 2 ||
		heads[1].Name != "default/db" || !heads[1].Ordered || heads[1].Rounds != 0 || !inputs[1].Ordered {
		t.Errorf("budgets %+v (%+v); want web: 2 pods, 2 rounds; db: a StatefulSet's, allowing nothing", heads, inputs)
	}
}

// A plan charges a pod's stop and an instance's shutdown as the group's
// history shows them: the pods' stops its last upgrade timed (the
// timeline), its terminations as its cloud remembers them. Without
// history it takes the assumptions and names them; given ones stand over
// history.
func TestAPlanReadsAPodsStopAndAnInstancesShutdownFromTheGroupsHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		ctx := context.Background()
		req := Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}}
		assumed := Assumed{PodStop: 5 * time.Second, Shutdown: 30 * time.Second}
		none, err := w.engine().Forecast(ctx, req, assumed)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(none.Assumed, DelayPodStop) || !slices.Contains(none.Assumed, DelayShutdown) ||
			none.Delays.PodStop != 5*time.Second || none.Delays.Shutdown != 30*time.Second || none.Observed.PodStopSamples != 0 || none.Observed.ShutdownSamples != 0 {
			t.Fatalf("no history: assumed %v, delays %+v, observed %+v; want the assumptions, named", none.Assumed, none.Delays, none.Observed)
		}

		// The last upgrade timed five pods' stops; the cloud remembers
		// three terminations.
		started := t0.Add(-time.Hour)
		b, err := encodeTimeline(&Timeline{Cluster: "c1", Nodegroup: "ng", Phase: PhaseCompleted, Started: started, PodStops: []int64{1800, 2100, 2000, 9000, 1900}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.kube.CoreV1().ConfigMaps(Namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: timelineName("c1", "ng"), Namespace: Namespace},
			BinaryData: map[string][]byte{timelineKey: b}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w.p.SetTerminationTimes("ng", 3*time.Second, 4*time.Second, 3500*time.Millisecond)
		seen, err := w.engine().Forecast(ctx, req, assumed)
		if err != nil {
			t.Fatal(err)
		}
		o := seen.Observed
		if o.PodStop != 2*time.Second || o.PodStopSamples != 5 || !o.PodStopFrom.Equal(started) || o.Shutdown != 3500*time.Millisecond || o.ShutdownSamples != 3 {
			t.Errorf("observed %+v; want pods' stops 2s (median of 5, from the upgrade started %s), shutdown 3.5s (median of 3)", o, started)
		}
		if seen.Delays.PodStop != 2*time.Second || seen.Delays.Shutdown != 3500*time.Millisecond || slices.Contains(seen.Assumed, DelayPodStop) || slices.Contains(seen.Assumed, DelayShutdown) {
			t.Errorf("with history: delays %+v, assumed %v; want the history's 2s and 3.5s, nothing of them assumed", seen.Delays, seen.Assumed)
		}
		if seen.Predictions[0].Duration >= none.Predictions[0].Duration {
			t.Errorf("predicted %s with a 3.5s shutdown, %s with 30s: want it shorter", seen.Predictions[0].Duration, none.Predictions[0].Duration)
		}

		assumed.PodStopGiven, assumed.ShutdownGiven = true, true
		given, err := w.engine().Forecast(ctx, req, assumed)
		if err != nil {
			t.Fatal(err)
		}
		if given.Delays.PodStop != 5*time.Second || given.Delays.Shutdown != 30*time.Second || !slices.Equal(given.Given, []string{DelayPodStop, DelayShutdown}) {
			t.Errorf("given: delays %+v, given %v; want the given 5s and 30s over history, named", given.Delays, given.Given)
		}
	})
}
