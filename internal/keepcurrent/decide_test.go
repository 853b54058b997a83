package keepcurrent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noderoll/noderoll/api/v1alpha1"
)

var (
	old   = Release{ImageID: "ami-old", Version: "1.37.1-20261101", Published: at("2026-11-01T00:00:00Z")}
	fresh = Release{ImageID: "ami-new", Version: "1.37.2-20261201", Published: at("2026-12-01T00:00:00Z")}
	newer = Release{ImageID: "ami-newer", Version: "1.37.3-20261205", Published: at("2026-12-05T00:00:00Z")}
)

func threeBehind(now time.Time) Input {
	return Input{Now: now, Minor: "1.37",
		Spec: Spec{Canary: []string{"a"}, MaxConcurrent: 2, Soak: 20 * time.Second},
		Groups: []Group{
			{Name: "a", Current: old, Newest: fresh},
			{Name: "b", Current: old, Newest: fresh},
			{Name: "c", Current: old, Newest: fresh},
		}}
}

func groupsCreated(out Output) []string {
	var g []string
	for _, c := range out.Create {
		g = append(g, c.Group)
	}
	return g
}

// The canary alone, its soak, then the other two at once, each to the
// release frozen when the rollout began, even once a newer one is out.
func TestARolloutGoesCanaryFirstThenWavesToItsFrozenTargets(t *testing.T) {
	now := at("2026-12-06T21:00:00Z")
	in := threeBehind(now)
	out := Decide(in)
	if out.Rollout == nil || len(out.Rollout.Waves) != 2 || !out.Rollout.Waves[0].Canary {
		t.Fatalf("rollout: %+v", out.Rollout)
	}
	if got := groupsCreated(out); !slices.Equal(got, []string{"a"}) || out.Create[0].ImageID != "ami-new" {
		t.Fatalf("first: create %+v", out.Create)
	}
	// A newer release is out; the canary completes and soaks.
	in.Rollout = out.Rollout
	for k := range in.Groups {
		in.Groups[k].Newest = newer
	}
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseComplete}}
	if got := Soaking(in.Rollout, in.Upgrades); !slices.Equal(got, []string{"a"}) {
		t.Errorf("soaking %v", got)
	}
	out = Decide(in)
	if out.State != v1alpha1.PolicySoaking || out.Waiting != WaitingSoak || len(out.Create) != 0 || out.Rollout.SoakStarted == nil {
		t.Fatalf("soak: %s %s %+v", out.State, out.Waiting, out.Create)
	}
	in.Rollout = out.Rollout
	in.Now = now.Add(21 * time.Second)
	out = Decide(in)
	if out.Rollout.Wave != 1 || len(out.Create) != 0 {
		t.Fatalf("after the soak: wave %d create %+v", out.Rollout.Wave, out.Create)
	}
	in.Rollout = out.Rollout
	out = Decide(in)
	if got := groupsCreated(out); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("wave 1: %v", got)
	}
	for _, c := range out.Create {
		if c.ImageID != "ami-new" {
			t.Errorf("%s goes to %s, not the frozen ami-new", c.Group, c.ImageID)
		}
	}
	in.Rollout = out.Rollout
	in.Upgrades["b"] = Upgrade{Name: "p-b", Phase: v1alpha1.PhaseComplete}
	in.Upgrades["c"] = Upgrade{Name: "p-c", Phase: v1alpha1.PhaseComplete}
	out = Decide(in)
	in.Rollout, in.Now = out.Rollout, in.Now.Add(21*time.Second)
	out = Decide(in)
	if out.Rollout != nil || out.Ended == nil || out.Ended.Outcome != "Completed" || !slices.Equal(out.Ended.Releases, []string{"1.37.2-20261201"}) {
		t.Fatalf("end: %+v %+v", out.Rollout, out.Ended)
	}
	if out.UpToDate != 3 || out.Requeue != time.Second {
		t.Errorf("at the end, the groups read before their wave are not taken as behind: %d up to date, requeue %s: %+v", out.UpToDate, out.Requeue, out.Groups)
	}
	// The next look starts a rollout of the newer release.
	in.Rollout, in.Upgrades = nil, nil
	for k := range in.Groups {
		in.Groups[k].Current = fresh
	}
	out = Decide(in)
	if out.Rollout == nil || out.Rollout.Targets[0].ImageID != "ami-newer" {
		t.Fatalf("the next release: %+v", out.Rollout)
	}
}

// Outside the windows nothing starts and the next window is named; so in
// an exclusion.
func TestNothingStartsOutsideAWindowOrInAnExclusion(t *testing.T) {
	now := at("2026-12-06T21:00:00Z") // a Sunday
	in := threeBehind(now)
	in.Spec.Calendar = Calendar{Windows: []Window{window(t, "0 2 * * 6", 4*time.Hour, "Europe/Berlin")}}
	out := Decide(in)
	if out.Rollout != nil || len(out.Create) != 0 || out.State != v1alpha1.PolicyWaiting || out.Waiting != WaitingMaintenanceWindow {
		t.Fatalf("closed: %+v", out)
	}
	if !out.NextWindow.Equal(at("2026-12-12T01:00:00Z")) || out.Requeue != out.NextWindow.Sub(now) {
		t.Errorf("next window %s, requeue %s", out.NextWindow, out.Requeue)
	}
	in.Spec.Calendar = Calendar{Exclusions: []Exclusion{{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Reason: "code freeze"}}}
	out = Decide(in)
	if len(out.Create) != 0 || out.Waiting != WaitingExclusion || !strings.Contains(out.Message, "code freeze") || !out.NextWindow.Equal(now.Add(time.Hour)) {
		t.Fatalf("excluded: %s %s %s", out.Waiting, out.Message, out.NextWindow)
	}
	// A group in flight when its window closes goes on; no other starts.
	in = threeBehind(now)
	out = Decide(in)
	in.Rollout = out.Rollout
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseRunning}}
	in.Spec.Calendar = Calendar{Exclusions: []Exclusion{{Start: now, End: now.Add(time.Hour)}}}
	if out = Decide(in); out.State != v1alpha1.PolicyUpgrading || len(out.Abort)+len(out.Delete)+len(out.Create) != 0 {
		t.Errorf("in flight as the window closes: %s %+v", out.State, out)
	}
}

func TestAYoungOrSkippedReleaseIsNotTaken(t *testing.T) {
	now := at("2026-12-02T00:00:00Z") // fresh is a day old
	in := threeBehind(now)
	in.Spec.MinReleaseAge = 72 * time.Hour
	out := Decide(in)
	if out.Rollout != nil || out.Waiting != WaitingReleaseAge || out.Requeue != 48*time.Hour {
		t.Fatalf("young: %+v", out)
	}
	if g := out.Groups[0]; g.State != v1alpha1.PolicyWaiting || !strings.Contains(g.Message, "taken from 2026-12-04T00:00:00Z") || g.BehindSince == nil {
		t.Errorf("a young release's group: %+v", g)
	}
	if g := out.Groups[0]; !strings.Contains(g.Message, "was published 24h0m0s ago") {
		t.Errorf("a young release's age: %q", g.Message)
	}
	in.Now = at("2026-12-04T00:00:00Z")
	if out = Decide(in); out.Rollout == nil {
		t.Errorf("once old enough it is taken: %+v", out)
	}
	// A release dated after now (a clock behind, or published ahead of its
	// date) waits for its date and says so, not "published -7h ago".
	in.Now, in.Spec.MinReleaseAge = at("2026-11-30T17:00:00Z"), 0
	out = Decide(in)
	if g := out.Groups[0]; out.Rollout != nil || !strings.Contains(g.Message, "is dated 2026-12-01T00:00:00Z, 7h0m0s from now; taken from 2026-12-01T00:00:00Z") {
		t.Errorf("a release dated tomorrow: rollout %v, %q", out.Rollout, g.Message)
	}
	in = threeBehind(now)
	in.Spec.Skip = []string{"1.37.2-20261201"}
	out = Decide(in)
	if out.Rollout != nil || out.State != v1alpha1.PolicyUpToDate || out.UpToDate != 3 || !strings.Contains(out.Groups[0].Message, "skipped") {
		t.Fatalf("skipped: %+v", out)
	}
}

// A failed canary halts before any other group; with onFailure Abort it
// is turned around. A resume makes it again.
func TestAFailedCanaryHaltsAndAbortTakesItBack(t *testing.T) {
	now := at("2026-12-06T21:00:00Z")
	in := threeBehind(now)
	in.Spec.Abort = true
	in.Rollout = Decide(in).Rollout
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseFailed, Message: "new nodes not Ready"}}
	out := Decide(in)
	if out.State != v1alpha1.PolicyHalted || out.Waiting != WaitingHalted || len(out.Create) != 0 || !slices.Equal(out.Abort, []string{"p-a"}) {
		t.Fatalf("halt: %s %s create %+v abort %v", out.State, out.Waiting, out.Create, out.Abort)
	}
	if !strings.Contains(out.Message, "new nodes not Ready") || !strings.Contains(out.Message, "noderoll.io/resume=now") {
		t.Errorf("message: %s", out.Message)
	}
	// Halted stays halted, and starts nothing.
	in.Rollout = out.Rollout
	in.Upgrades["a"] = Upgrade{Name: "p-a", Phase: v1alpha1.PhaseAborted, Action: "Abort"}
	if out = Decide(in); out.State != v1alpha1.PolicyHalted || len(out.Create) != 0 {
		t.Fatalf("still halted: %+v", out)
	}
	in.Resume = true
	out = Decide(in)
	if out.Rollout.Halted != nil || !slices.Equal(out.Delete, []string{"p-a"}) {
		t.Fatalf("resume: %+v delete %v", out.Rollout.Halted, out.Delete)
	}
}

// A regression in the canary's soak halts; Abort makes an upgrade back to
// the AMI it ran before.
func TestARegressionInTheSoakHalts(t *testing.T) {
	now := at("2026-12-06T21:00:00Z")
	in := threeBehind(now)
	in.Rollout = Decide(in).Rollout
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseComplete}}
	in.Rollout = Decide(in).Rollout // soaking
	in.Regressions = []string{"node n1 is not Ready"}
	out := Decide(in)
	if out.State != v1alpha1.PolicyHalted || len(out.Create) != 0 || out.Rollout.Halted.Reason != "Regression" {
		t.Fatalf("halt (Halt): %+v", out)
	}
	in.Spec.Abort = true
	out = Decide(in)
	if len(out.Create) != 1 || !out.Create[0].TakeBack || out.Create[0].ImageID != "ami-old" {
		t.Fatalf("halt (Abort): %+v", out.Create)
	}
}

func TestAPausedPolicyStartsNothingButSaysWhy(t *testing.T) {
	in := threeBehind(at("2026-12-06T21:00:00Z"))
	in.Spec.Paused = true
	out := Decide(in)
	if out.Rollout != nil || len(out.Create) != 0 || out.State != v1alpha1.PolicyPaused || out.Waiting != WaitingPaused || len(out.Groups) != 3 {
		t.Fatalf("paused: %+v", out)
	}
	if out.Groups[1].State != v1alpha1.PolicyWaiting || out.Groups[1].TargetRelease != "1.37.2-20261201" {
		t.Errorf("a group's status is kept current: %+v", out.Groups[1])
	}
}

// A group being created or resized is not rolled before it settles.
func TestAnUnsettledGroupWaits(t *testing.T) {
	in := threeBehind(at("2026-12-06T21:00:00Z"))
	in.Spec.Canary = nil
	in.Groups[2].Unsettled = "1 of its 2 instances in service"
	out := Decide(in)
	if out.Rollout == nil || slices.ContainsFunc(out.Rollout.Targets, func(t v1alpha1.RolloutTarget) bool { return t.Group == "c" }) {
		t.Fatalf("rollout: %+v", out.Rollout)
	}
	if g := out.Groups[2]; g.State != v1alpha1.PolicyWaiting || !strings.Contains(g.Message, "in service") {
		t.Errorf("the unsettled group: %+v", g)
	}
	// Alone, it keeps the policy Waiting, not UpToDate.
	in.Groups = in.Groups[2:]
	if out = Decide(in); out.State != v1alpha1.PolicyWaiting || !strings.Contains(out.Message, "c: 1 of its 2 instances in service") {
		t.Errorf("a policy whose only group settles: %s %s", out.State, out.Message)
	}
}

// A group EKS updates itself goes by EKS's update, to the release; it
// cannot be aborted nor taken back, and the halt says so.
func TestAGroupEKSUpdatesIsUpdatedByEKS(t *testing.T) {
	in := threeBehind(at("2026-12-06T21:00:00Z"))
	in.Spec.Abort = true
	in.Groups[0].EKSUpdates = true
	out := Decide(in)
	if len(out.Create) != 1 || !out.Create[0].EKS || out.Create[0].Release != "1.37.2-20261201" {
		t.Fatalf("create: %+v", out.Create)
	}
	in.Rollout = out.Rollout
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseFailed}}
	if out = Decide(in); out.State != v1alpha1.PolicyHalted || len(out.Abort) != 0 {
		t.Errorf("a failed EKS update: %s abort %v", out.State, out.Abort)
	}
	in.Upgrades = map[string]Upgrade{"a": {Name: "p-a", Phase: v1alpha1.PhaseComplete}}
	in.Rollout = Decide(in).Rollout
	in.Regressions = []string{"node n1 is not Ready"}
	out = Decide(in)
	if len(out.Create) != 0 || !strings.Contains(out.Message, "but for a: EKS updates it itself") {
		t.Errorf("an EKS-updated group cannot be taken back: %+v\n%s", out.Create, out.Message)
	}
}
