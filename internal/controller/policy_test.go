package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
