package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/keepcurrent"
)

// A rollout's NodeGroupUpgrades are found again by the id of its start as
// the status keeps it (whole seconds), whatever precision it began with.
func TestARolloutsIDIsItsStartAsKept(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 0, 0, 123456789, time.UTC)
	if rolloutID(&metav1.Time{Time: at}) != rolloutID(&metav1.Time{Time: at.Truncate(time.Second)}) {
		t.Error("a rollout's id changes once its start is written")
	}
	if rolloutID(&metav1.Time{Time: at}) == rolloutID(&metav1.Time{Time: at.Add(time.Second)}) {
		t.Error("two rollouts a second apart share an id")
	}
}

func TestUpgradeNamesAreValidAndTellGroupsApart(t *testing.T) {
	long := strings.Repeat("a", 60)
	for _, tc := range []struct{ policy, group string }{
		{"keep-current", "nodegroup"},
		{"keep-current", "Workers_On_Spot"},
		{strings.Repeat("p", 40), long + "-1"},
	} {
		name := upgradeName(tc.policy, tc.group, "abc123", true)
		if len(name) > 63 || strings.ContainsAny(name, "_ABCDEFGHIJKLMNOPQRSTUVWXYZ") || !strings.HasSuffix(name, "-abc123-back") {
			t.Errorf("%s/%s: %q", tc.policy, tc.group, name)
		}
	}
	a := upgradeName(strings.Repeat("p", 40), long+"-1", "abc123", false)
	b := upgradeName(strings.Repeat("p", 40), long+"-2", "abc123", false)
	if a == b {
		t.Errorf("two long groups share the name %s", a)
	}
}

// A rollout is counted once when it halts and once when it completes; a
// group's lag is the age of the release it lacks.
func TestPolicyMetricsCountEachRolloutsEndOnce(t *testing.T) {
	m, err := NewPolicyMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	halted := &v1alpha1.PolicyRollout{Halted: &v1alpha1.PolicyHalt{Reason: "Regression"}}
	behind := keepcurrent.Output{Rollout: halted, Groups: []v1alpha1.PolicyGroupStatus{
		{Name: "a", State: v1alpha1.PolicyHalted, BehindSince: &metav1.Time{Time: now.Add(-time.Hour)}},
		{Name: "b", State: v1alpha1.PolicyUpToDate},
	}}
	m.observe("p", &v1alpha1.NodeGroupUpgradePolicyStatus{}, behind, now)
	m.observe("p", &v1alpha1.NodeGroupUpgradePolicyStatus{Rollout: halted}, behind, now) // still halted: not again
	if got := testutil.ToFloat64(m.rollouts.WithLabelValues("p", "Halted")); got != 1 {
		t.Errorf("halted rollouts %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.behindFor.WithLabelValues("p", "a")); got != 3600 {
		t.Errorf("a behind %v s, want 3600", got)
	}
	if got := testutil.ToFloat64(m.behind.WithLabelValues("p")); got != 1 {
		t.Errorf("groups behind %v, want 1", got)
	}
	m.observe("p", &v1alpha1.NodeGroupUpgradePolicyStatus{}, keepcurrent.Output{Ended: &v1alpha1.PolicyRolloutEnd{Outcome: "Completed"},
		Groups: []v1alpha1.PolicyGroupStatus{{Name: "b", State: v1alpha1.PolicyUpToDate}}}, now)
	if got := testutil.ToFloat64(m.rollouts.WithLabelValues("p", "Completed")); got != 1 {
		t.Errorf("completed rollouts %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.behindFor); n != 1 {
		t.Errorf("%d group series, want b's alone once a is gone", n)
	}
	m.forget("p")
	if n := testutil.CollectAndCount(m.behindFor) + testutil.CollectAndCount(m.behind); n != 0 {
		t.Errorf("%d series left of a deleted policy", n)
	}
}

// A group two policies of one cluster keep is left by the younger one,
// which says which policy keeps it; other clusters' policies, invalid
// ones and groups the older one does not name are not affected.
func TestAGroupTwoPoliciesKeepIsLeftByTheYounger(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	policy := func(name, uid, cluster string, at metav1.Time, groups ...string) v1alpha1.NodeGroupUpgradePolicy {
		return v1alpha1.NodeGroupUpgradePolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid), CreationTimestamp: at},
			Spec:       v1alpha1.NodeGroupUpgradePolicySpec{Cluster: cluster, NodeGroups: groups},
		}
	}
	groups := []keepcurrent.Group{{Name: "a"}, {Name: "b"}, {Name: "c", Err: "no node group c"}}
	young := policy("young", "2", "prod", t1)
	old := policy("old", "1", "prod", t0, "a", "c")
	others := []v1alpha1.NodeGroupUpgradePolicy{young, old, policy("elsewhere", "3", "dev", t0), policy("broken", "4", "prod", t0)}
	others[3].Status.State = v1alpha1.PolicyInvalid

	got := keptElsewhere(&young, others, groups)
	if !strings.Contains(got[0].Err, "kept by NodeGroupUpgradePolicy old too") {
		t.Errorf("group a, which the older policy names: %q", got[0].Err)
	}
	if got[1].Err != "" || got[2].Err != "no node group c" {
		t.Errorf("groups b and c: %q, %q", got[1].Err, got[2].Err)
	}
	if groups[0].Err != "" {
		t.Error("the groups read were changed in place (they are the cache's)")
	}
	if got := keptElsewhere(&old, others, groups); got[0].Err != "" || got[1].Err != "" {
		t.Errorf("the older policy leaves nothing: %+v", got)
	}
	// Made the same second: the name decides, the same way for both.
	twin := policy("a-twin", "5", "prod", t0)
	if got := keptElsewhere(&old, append(others, twin), groups); !strings.Contains(got[0].Err, "a-twin") {
		t.Errorf("a same-second twin with the lesser name keeps it: %q", got[0].Err)
	}
	if got := keptElsewhere(&twin, append(others, twin), groups); got[0].Err != "" {
		t.Errorf("the twin itself: %q", got[0].Err)
	}
}
