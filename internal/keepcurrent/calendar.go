// Package keepcurrent decides how a NodeGroupUpgradePolicy keeps a
// cluster's node groups on the newest recommended AMI release: when a group
// may start (maintenance windows, exclusions), which release it takes
// (minimum age, skipped releases), in what order (canary, waves), and when a
// rollout halts. It is pure: the controller reads the cloud and the cluster,
// hands what it saw to Decide, and carries out what comes back.
package keepcurrent

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Window opens each time its schedule fires, for its duration.
type Window struct {
	Expr     string
	schedule cron.Schedule
	Duration time.Duration
	Location *time.Location
}

// Exclusion is a span in which nothing starts.
type Exclusion struct {
	Start, End time.Time
	Reason     string
}

// Calendar says when a group may start: inside a window (always, when
// there is none) and outside every exclusion.
type Calendar struct {
	Windows    []Window
	Exclusions []Exclusion
}

// parseWindow reads a window as the policy's spec gives it; field names
// the spec's field in the error.
func parseWindow(field, schedule string, d time.Duration, zone string) (Window, error) {
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return Window{}, fmt.Errorf("%s.timeZone %q: not a known time zone; use an IANA name such as Europe/Berlin or UTC", field, zone)
	}
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return Window{}, fmt.Errorf("%s.schedule %q: %v; want five fields (minute hour day-of-month month day-of-week), such as \"0 2 * * 6\"", field, schedule, err)
	}
	if d <= 0 {
		return Window{}, fmt.Errorf("%s.duration %s: want more than 0, such as 4h", field, d)
	}
	return Window{Expr: schedule, schedule: s, Duration: d, Location: loc}, nil
}

// next is the first time the window opens after t (zero: never again).
func (w Window) next(t time.Time) time.Time {
	return w.schedule.Next(t.In(w.Location))
}

// openAt says whether the window is open at t, and until when: it opened
// at a time after t-Duration and not after t.
func (w Window) openAt(t time.Time) (bool, time.Time) {
	opened := w.next(t.Add(-w.Duration))
	if opened.IsZero() || opened.After(t) {
		return false, time.Time{}
	}
	// A window that fires again before it closes stays open longer.
	end := opened.Add(w.Duration)
	for i := 0; i < 1000; i++ {
		again := w.next(opened)
		if again.IsZero() || again.After(end) {
			break
		}
		opened, end = again, again.Add(w.Duration)
	}
	return true, end
}

// Why says why nothing may start at t: "" when something may; else
// WaitingMaintenanceWindow or WaitingExclusion, with words for people.
func (c Calendar) Why(t time.Time) (reason, msg string) {
	for _, e := range c.Exclusions {
		if !t.Before(e.Start) && t.Before(e.End) {
			msg := fmt.Sprintf("in the exclusion from %s to %s", e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339))
			if e.Reason != "" {
				msg += " (" + e.Reason + ")"
			}
			return WaitingExclusion, msg
		}
	}
	if len(c.Windows) == 0 {
		return "", ""
	}
	for _, w := range c.Windows {
		if open, _ := w.openAt(t); open {
			return "", ""
		}
	}
	return WaitingMaintenanceWindow, "outside every maintenance window"
}

// horizon is how far ahead Next looks for a time to start.
const horizon = 2 * 366 * 24 * time.Hour

// Next is the first time at or after t when something may start (t itself
// when it may now); zero when none comes within two years.
func (c Calendar) Next(t time.Time) time.Time {
	limit := t.Add(horizon)
	for i := 0; i < 10000 && !t.After(limit); i++ {
		if excl, ok := c.excludedAt(t); ok {
			t = excl
			continue
		}
		if reason, _ := c.Why(t); reason == "" {
			return t
		}
		// The earliest opening of any window after t.
		var soonest time.Time
		for _, w := range c.Windows {
			if n := w.next(t); !n.IsZero() && (soonest.IsZero() || n.Before(soonest)) {
				soonest = n
			}
		}
		if soonest.IsZero() {
			return time.Time{}
		}
		t = soonest
	}
	return time.Time{}
}

// excludedAt returns the end of the exclusion holding t, if one does.
func (c Calendar) excludedAt(t time.Time) (time.Time, bool) {
	for _, e := range c.Exclusions {
		if !t.Before(e.Start) && t.Before(e.End) {
			return e.End, true
		}
	}
	return time.Time{}, false
}
