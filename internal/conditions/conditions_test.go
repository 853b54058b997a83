package conditions

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(st corev1.ConditionStatus, at time.Time) *corev1.Node {
	return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
		{Type: corev1.NodeReady, Status: st, LastTransitionTime: metav1.NewTime(at)},
	}}}
}

func TestWhatANodesReadyConditionSays(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		n                  *corev1.Node
		ready, unreachable bool
		since              time.Time
	}{
		{node(corev1.ConditionTrue, at), true, false, at},
		{node(corev1.ConditionFalse, at), false, false, time.Time{}},
		{node(corev1.ConditionUnknown, at), false, true, time.Time{}},
		{&corev1.Node{}, false, false, time.Time{}}, // a node registered, not reported yet
	} {
		if NodeReady(c.n) != c.ready || NodeUnreachable(c.n) != c.unreachable || !NodeReadySince(c.n).Equal(c.since) {
			t.Errorf("%+v: ready %v unreachable %v since %v", c.n.Status.Conditions, NodeReady(c.n), NodeUnreachable(c.n), NodeReadySince(c.n))
		}
	}
	if Node(node(corev1.ConditionTrue, at), corev1.NodeDiskPressure) != nil {
		t.Error("a condition the node lacks was found")
	}
}

func TestWhatAPodsConditionsSay(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	p := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(at.Add(time.Second))},
	}}}
	if PodReady(p) || !PodTrueSince(p, corev1.PodScheduled).Equal(at) || !PodTrueSince(p, corev1.PodReady).IsZero() {
		t.Fatalf("not Ready yet: ready %v scheduled %v", PodReady(p), PodTrueSince(p, corev1.PodScheduled))
	}
	p.Status.Conditions[1].Status = corev1.ConditionTrue
	if !PodReady(p) || !PodTrueSince(p, corev1.PodReady).Equal(at.Add(time.Second)) {
		t.Fatalf("Ready: %v", p.Status.Conditions)
	}
}
