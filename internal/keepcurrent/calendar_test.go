package keepcurrent

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/api/v1alpha1"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func window(t *testing.T, expr string, d time.Duration, zone string) Window {
	t.Helper()
	w, err := parseWindow("w", expr, d, zone)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Saturdays 02:00-06:00 in Berlin (UTC+1 in December) are 01:00-05:00 UTC.
func TestAWindowOpensInItsTimeZone(t *testing.T) {
	c := Calendar{Windows: []Window{window(t, "0 2 * * 6", 4*time.Hour, "Europe/Berlin")}}
	for _, tc := range []struct {
		now  string
		open bool
		next string
	}{
		{"2026-12-05T00:59:00Z", false, "2026-12-05T01:00:00Z"}, // Saturday, 01:59 in Berlin
		{"2026-12-05T01:00:00Z", true, "2026-12-05T01:00:00Z"},
		{"2026-12-05T04:59:00Z", true, "2026-12-05T04:59:00Z"},
		{"2026-12-05T05:00:00Z", false, "2026-12-12T01:00:00Z"}, // closed: next Saturday
		{"2026-12-06T21:00:00Z", false, "2026-12-12T01:00:00Z"},
	} {
		reason, _ := c.Why(at(tc.now))
		if (reason == "") != tc.open {
			t.Errorf("%s: reason %q, want open=%v", tc.now, reason, tc.open)
		}
		if reason != "" && reason != WaitingMaintenanceWindow {
			t.Errorf("%s: reason %q", tc.now, reason)
		}
		if got := c.Next(at(tc.now)); !got.Equal(at(tc.next)) {
			t.Errorf("%s: next %s, want %s", tc.now, got.UTC().Format(time.RFC3339), tc.next)
		}
	}
}

func TestAnExclusionHoldsEvenInsideAWindowAndNextSkipsIt(t *testing.T) {
	c := Calendar{
		Windows:    []Window{window(t, "0 2 * * *", 4*time.Hour, "UTC")},
		Exclusions: []Exclusion{{Start: at("2026-12-20T00:00:00Z"), End: at("2027-01-04T00:00:00Z"), Reason: "code freeze"}},
	}
	reason, msg := c.Why(at("2026-12-21T03:00:00Z"))
	if reason != WaitingExclusion || !strings.Contains(msg, "code freeze") {
		t.Errorf("inside the exclusion: %q %q", reason, msg)
	}
	if got := c.Next(at("2026-12-21T03:00:00Z")); !got.Equal(at("2027-01-04T02:00:00Z")) {
		t.Errorf("next after the exclusion: %s", got)
	}
	// No windows: always open, but for the exclusion, which ends it.
	free := Calendar{Exclusions: c.Exclusions}
	if got := free.Next(at("2026-12-21T03:00:00Z")); !got.Equal(at("2027-01-04T00:00:00Z")) {
		t.Errorf("next without windows: %s", got)
	}
	if reason, _ := free.Why(at("2027-01-05T00:00:00Z")); reason != "" {
		t.Errorf("after the exclusion without windows: %q", reason)
	}
}

func TestParseRefusesWhatCannotWorkNamingTheField(t *testing.T) {
	now := at("2026-12-06T21:00:00Z")
	good := v1alpha1.NodeGroupUpgradePolicySpec{Cluster: "c", KubernetesVersion: "ControlPlane"}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.NodeGroupUpgradePolicySpec)
		want   string
	}{
		{"a bad cron", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: "0 25 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
		}, "spec.maintenanceWindows[0].schedule \"0 25 * * *\""},
		{"an unknown zone", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Mars/Olympus"}}
		}, "spec.maintenanceWindows[0].timeZone \"Mars/Olympus\": not a known time zone"},
		{"duration 0", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *"}}
		}, "spec.maintenanceWindows[0].duration 0s"},
		{"an exclusion backwards", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.Exclusions = []v1alpha1.Exclusion{{Start: metav1.Time{Time: at("2027-01-04T00:00:00Z")}, End: metav1.Time{Time: at("2026-12-20T00:00:00Z")}}}
		}, "spec.exclusions[0]: ends"},
		{"a canary not kept", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.NodeGroups, s.Rollout.Canary = []string{"a", "b"}, []string{"c"}
		}, "spec.rollout.canary \"c\": not one of spec.nodeGroups"},
		{"a window that never opens", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 30 2 *", Duration: metav1.Duration{Duration: time.Hour}}}
		}, "leave no time at all"},
		{"windows all excluded", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
			s.Exclusions = []v1alpha1.Exclusion{{Start: metav1.Time{Time: at("2026-01-01T00:00:00Z")}, End: metav1.Time{Time: at("2030-01-01T00:00:00Z")}}}
		}, "leave no time at all"},
	} {
		s := good
		tc.change(&s)
		if _, err := Parse(s, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Parse(good, now); err != nil {
		t.Errorf("a good spec: %v", err)
	}
}
