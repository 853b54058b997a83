package keepcurrent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/noderoll/noderoll/api/v1alpha1"
)

// Waiting reasons of a policy's status.
const (
	WaitingMaintenanceWindow = "MaintenanceWindow"
	WaitingExclusion         = "Exclusion"
	WaitingReleaseAge        = "ReleaseAge"
	WaitingSoak              = "Soak"
	WaitingHalted            = "Halted"
	WaitingPaused            = "Paused"
)

// Spec is a policy's spec, read and checked.
type Spec struct {
	Cluster       string
	NodeGroups    []string // empty: all
	Minor         string   // "" follows the control plane
	MinReleaseAge time.Duration
	Skip          []string
	Calendar      Calendar
	Canary        []string
	Soak          time.Duration
	MaxConcurrent int
	MaxRestarts   int32
	PodReady      time.Duration
	Abort         bool // onFailure: Abort
	Paused        bool
}

// Parse reads a policy's spec and refuses, naming the field, what the API
// server's rules could not see: a schedule cron cannot read, a time zone
// this process does not know, windows that never open.
func Parse(s v1alpha1.NodeGroupUpgradePolicySpec, now time.Time) (Spec, error) {
	out := Spec{Cluster: s.Cluster, NodeGroups: s.NodeGroups, Skip: s.SkipReleases, Canary: s.Rollout.Canary,
		MaxConcurrent: int(s.Rollout.MaxConcurrentGroups), MaxRestarts: s.Rollout.MaxRestarts,
		Abort: s.OnFailure == "Abort", Paused: s.Paused, Soak: 30 * time.Minute, PodReady: 2 * time.Minute}
	if s.KubernetesVersion != "ControlPlane" {
		out.Minor = s.KubernetesVersion
	}
	if s.MinReleaseAge != nil {
		out.MinReleaseAge = s.MinReleaseAge.Duration
	}
	if s.Rollout.Soak != nil {
		out.Soak = s.Rollout.Soak.Duration
	}
	if s.Rollout.PodReadyTimeout != nil {
		out.PodReady = s.Rollout.PodReadyTimeout.Duration
	}
	if out.MaxConcurrent < 1 {
		out.MaxConcurrent = 1
	}
	if out.MaxRestarts < 1 {
		out.MaxRestarts = 3
	}
	var errs []error
	if out.MinReleaseAge < 0 {
		errs = append(errs, fmt.Errorf("spec.minReleaseAge %s: want 0 or more", out.MinReleaseAge))
	}
	if out.Soak < 0 {
		errs = append(errs, fmt.Errorf("spec.rollout.soak %s: want 0 or more", out.Soak))
	}
	for _, c := range out.Canary {
		if len(out.NodeGroups) > 0 && !slices.Contains(out.NodeGroups, c) {
			errs = append(errs, fmt.Errorf("spec.rollout.canary %q: not one of spec.nodeGroups", c))
		}
	}
	for k, w := range s.MaintenanceWindows {
		win, err := parseWindow(fmt.Sprintf("spec.maintenanceWindows[%d]", k), w.Schedule, w.Duration.Duration, w.TimeZone)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Calendar.Windows = append(out.Calendar.Windows, win)
	}
	for k, e := range s.Exclusions {
		if !e.End.After(e.Start.Time) {
			errs = append(errs, fmt.Errorf("spec.exclusions[%d]: ends (%s) before it starts (%s)", k, e.End.UTC().Format(time.RFC3339), e.Start.UTC().Format(time.RFC3339)))
			continue
		}
		out.Calendar.Exclusions = append(out.Calendar.Exclusions, Exclusion{Start: e.Start.Time, End: e.End.Time, Reason: e.Reason})
	}
	if len(errs) == 0 && out.Calendar.Next(now).IsZero() {
		errs = append(errs, errors.New("spec.maintenanceWindows: with spec.exclusions they leave no time at all in the next two years; widen a window or shorten an exclusion"))
	}
	return out, errors.Join(errs...)
}
