package engine

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/noderoll/noderoll/internal/cloud"
	cloudfake "github.com/noderoll/noderoll/internal/cloud/fake"
)

// eksCalls are the fake's EKS updates among its changing calls, and
// whether each came after the last termination.
func eksCalls(calls []string) (eks []string, afterTerminations bool) {
	lastTerm, firstEKS := -1, -1
	for k, c := range calls {
		switch {
		case strings.HasPrefix(c, "TerminateInstance"):
			lastTerm = k
		case strings.HasPrefix(c, "UpdateNodegroup"):
			if firstEKS < 0 {
				firstEKS = k
			}
			eks = append(eks, c)
		}
	}
	return eks, firstEKS > lastTerm
}

// After noderoll's own upgrade of a managed group on the user's template,
// EKS records the version the group launches: the group's strategy set to
// MINIMAL, the version recorded, the user's DEFAULT given back, in that
// order and after the last node was replaced. A group already on MINIMAL
// keeps it, with one update only. A rerun asks EKS for nothing.
func TestEKSRecordsTheNewVersionWithAMinimalUpdateAndGetsTheStrategyBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		res, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"})
		if err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 3, old)
		eks, after := eksCalls(w.p.Calls())
		want := []string{"UpdateNodegroupConfig ng MINIMAL", "UpdateNodegroupVersion ng 2", "UpdateNodegroupConfig ng DEFAULT"}
		if !slices.Equal(eks, want) || !after {
			t.Fatalf("EKS updates %q (after the last termination: %v), want %q after it", eks, after, want)
		}
		if res.EKSRecorded != 2 {
			t.Errorf("the result says version %d recorded, want 2", res.EKSRecorded)
		}
		rec := w.record()
		if r := rec.EKSRecord; r == nil || !r.Done || r.UserStrategy != cloud.StrategyDefault || len(r.Updates) != 3 || len(r.Replaced) != 0 {
			t.Fatalf("the record keeps %+v", rec.EKSRecord)
		}
		n := len(w.p.Calls())
		if res, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil || !res.UpToDate || len(w.p.Calls()) != n {
			t.Fatalf("the rerun: %+v %v, calls %q", res, err, w.p.Calls()[n:])
		}
	})
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 2, "a", "b")
		if err := w.p.SetGroup(context.Background(), "ng", func(g *cloudfake.Group) { g.Strategy = cloud.StrategyMinimal }); err != nil {
			t.Fatal(err)
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
		eks, _ := eksCalls(w.p.Calls())
		if g := w.p.Group("ng"); !slices.Equal(eks, []string{"UpdateNodegroupVersion ng 2"}) || g.Strategy != cloud.StrategyMinimal || g.RecordedVersion != 2 {
			t.Fatalf("a group on MINIMAL already: EKS updates %q, strategy %q, recorded %d", eks, g.Strategy, g.RecordedVersion)
		}
	})
}

// A run killed after EKS set MINIMAL for the record (the answer lost)
// gives the user's strategy back on resume, from the record: the group
// itself says MINIMAL by then.
func TestAResumeAfterAKillInTheRecordGivesTheUsersStrategyBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		old := ids(w.p.Group("ng"))
		w.p.After = func(op string) error {
			if op == "UpdateNodegroupVersion ng 2" {
				return errInjected
			}
			return nil
		}
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err == nil {
			t.Fatal("the run went through the injected failure")
		}
		if g := w.p.Group("ng"); g.Strategy != cloud.StrategyMinimal || g.RecordedVersion != 2 {
			t.Fatalf("cut after the version was recorded: strategy %q, recorded %d", g.Strategy, g.RecordedVersion)
		}
		w.p.After = nil
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
		w.done(amiB, 3, old)
		eks, _ := eksCalls(w.p.Calls())
		if want := []string{"UpdateNodegroupConfig ng MINIMAL", "UpdateNodegroupVersion ng 2", "UpdateNodegroupConfig ng DEFAULT"}; !slices.Equal(eks, want) {
			t.Fatalf("EKS updates %q, want each once: %q", eks, want)
		}
	})
}
