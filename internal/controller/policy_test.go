package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
