package clusterupgrade

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
)

// A soak's regressions: a node not Ready; a pod whose containers restarted
// as often as allowed since the soak began (restarts before it do not
// count); a pod not Ready longer than allowed since its creation. A
// healthy group, a young pod starting and a pod being deleted are none.
func TestASoakJudgesTheGroupsNodesAndPods(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	node := func(name string, ready corev1.ConditionStatus) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	pod := func(name string, age time.Duration, ready bool, restarts int32) corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: k8stypes.UID("uid-" + name), CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
				ContainerStatuses: []corev1.ContainerStatus{{RestartCount: restarts}}}}
	}
	h := Health{Restarts: 3, PodReady: time.Minute}
	healthy := h.Judge(now, []corev1.Node{node("n1", corev1.ConditionTrue)},
		[]corev1.Pod{pod("web", time.Hour, true, 7), pod("young", 10*time.Second, false, 0)}, map[string]int32{"uid-web": 7})
	if len(healthy) != 0 {
		t.Errorf("a healthy group: %q", healthy)
	}
	deleting := pod("old", time.Hour, false, 9)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	got := h.Judge(now, []corev1.Node{node("n1", corev1.ConditionTrue), node("n2", corev1.ConditionUnknown)},
		[]corev1.Pod{pod("crash", time.Hour, true, 5), pod("stuck", 2*time.Minute, false, 0), deleting}, map[string]int32{"uid-crash": 2})
	want := []string{"node n2 is not Ready", "pod default/crash on n1 restarted 3 times during the soak (crash-looping)", "pod default/stuck on n1 not Ready 2m0s after it was created"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
