package rollout

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOrderTracksBudgetHeadroomAcrossTheBatch(t *testing.T) {
	// pdb "db" allows 1 disruption and has 4 pods on old nodes (the
	// bottleneck); "web" allows 2 with 2 pods on old nodes.
	s := State{Budgets: []Budget{{Name: "db", Allowed: 1}, {Name: "web", Allowed: 2}}}
	old := func(id string, pods int, pdb map[string]int) Instance {
		return Instance{ID: id, Old: true, HasNode: true, Ready: true, Pods: pods, PDBPods: pdb}
	}
	s.Instances = []Instance{
		old("i-1", 3, map[string]int{"db": 2}), // needs 2 of db's 1: blocked
		old("i-2", 5, map[string]int{"db": 1}), // fits alone, but not after i-3 takes db's one disruption
		old("i-3", 1, map[string]int{"db": 1}), // fits, holds the bottleneck, fewer pods than i-2
		old("i-4", 9, map[string]int{"web": 2}),
		old("i-5", 0, nil),
	}
	var got []string
	var why []string
	for _, c := range order(s, s.Instances, len(s.Instances)) {
		got = append(got, c.ID)
		why = append(why, c.why)
	}
	// i-3 first (fits, bottleneck weight 4, fewer pods than i-2); then the
	// nodes that still fit once db's one disruption is spent: i-4 (web,
	// weight 2) and i-5 (none); then the blocked, heaviest first.
	want := []string{"i-3", "i-4", "i-5", "i-1", "i-2"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v (%v)", got, want, why)
	}
	if why[3] == "its pods can all move now" || why[0] != "its pods can all move now" {
		t.Errorf("reasons %v", why)
	}
}

func TestOrderCountsPodsOfNodesDrainingNow(t *testing.T) {
	s := State{Budgets: []Budget{{Name: "db", Allowed: 1}}}
	s.Instances = []Instance{
		{ID: "i-1", Old: true, HasNode: true, Draining: true, Mark: Replacing, PDBPods: map[string]int{"db": 1}},
		{ID: "i-2", Old: true, HasNode: true, Ready: true, PDBPods: map[string]int{"db": 1}, Pods: 1},
		{ID: "i-3", Old: true, HasNode: true, Ready: true, Pods: 4},
	}
	got := order(s, s.Instances[1:], len(s.Instances))
	if got[0].ID != "i-3" {
		t.Fatalf("i-1's drain takes db's only disruption; i-3 should go first, got %v", got)
	}
}

func TestSurgeTakesFewerStepsThanEKS(t *testing.T) {
	steps := func(st Strategy, surge int) int {
		w := &world{t: t, strategy: st, base: time.Unix(0, 0), phase: PhaseStarted, terms: map[string]int{}, azs: []string{"a", "b", "c"}, surge: surge}
		w.rng = newRand(1)
		for k := range 30 {
			w.launch(w.azs[k%3], true).readyAt = 0
		}
		w.min, w.max, w.desired = 30, 30, 30
		w.orig = State{OrigMin: 30, OrigMax: 30, OrigDesired: 30}
		w.run()
		return w.step
	}
	eks, surge := steps(EKS{Intn: newRand(2).IntN}, 3), steps(Surge{}, 8)
	t.Logf("30 nodes: eks %d steps, surge (8) %d steps", eks, surge)
	if surge*4 > eks {
		t.Errorf("surge took %d steps, eks %d: want at least 4x fewer", surge, eks)
	}
}

// Going back during a blue-green soak: the old nodes take work again, the
// new ones are drained and removed, the group launches the old version and
// has its sizes back; no old instance is terminated.
func TestBlueGreenGoesBackDuringTheSoak(t *testing.T) {
	for seed := range uint64(100) {
		w := newWorld(t, seed, func(*rand.Rand) Strategy { return BlueGreen{} }, false)
		w.soak = time.Hour
		soaking := false
		for range 500 {
			p := w.strategy.Plan(w.state())
			w.apply(p)
			if w.phase == PhaseReplacing && slices.ContainsFunc(p.Waiting, func(s string) bool { return strings.HasPrefix(s, "soak:") }) {
				soaking = true
				break
			}
			w.advance()
		}
		if !soaking {
			t.Fatalf("seed %d: never reached the soak\n%s", seed, w.trace())
		}
		w.phase = PhaseRollingBack
		done := false
		for range 500 {
			p := w.strategy.Plan(w.state())
			w.apply(p)
			if p.Done {
				done = true
				break
			}
			w.advance()
		}
		if !done {
			t.Fatalf("seed %d: going back never ended\n%s", seed, w.trace())
		}
		if w.anyOldTerminated() || !w.repointed {
			t.Errorf("seed %d: an old instance terminated (%v) or the group not pointed back (%v)", seed, w.terms, w.repointed)
		}
		if w.min != w.orig.OrigMin || w.max != w.orig.OrigMax || w.desired != w.orig.OrigDesired {
			t.Errorf("seed %d: sizes %d/%d/%d, want %d/%d/%d", seed, w.min, w.max, w.desired, w.orig.OrigMin, w.orig.OrigMax, w.orig.OrigDesired)
		}
		for _, i := range w.inst {
			if i.InService() && (!i.Old || i.Tainted || i.Cordoned || i.Mark != Unmarked) {
				t.Errorf("seed %d: %s in service after going back: old %v tainted %v cordoned %v mark %q", seed, i.ID, i.Old, i.Tainted, i.Cordoned, i.Mark)
			}
		}
	}
}

// The post-cordon wait runs from the cordon: a node surge cordoned before
// its drain has waited all through it, and is terminated once drained if
// the wait is over by then; a node cordoned only once drained waits it all.
func TestThePostCordonWaitRunsFromTheCordon(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	plan := func(cordonedAt time.Time) Plan {
		return Surge{}.Plan(State{
			Phase: PhaseReplacing, Now: now, PostCordonWait: 4 * time.Second,
			OrigMin: 1, OrigMax: 2, OrigDesired: 2, Min: 1, Max: 3, Desired: 3, Surge: 1, AZs: []string{"a"},
			Instances: []Instance{
				{ID: "old-1", AZ: "a", Old: true, HasNode: true, Ready: true, Tainted: true, Cordoned: true, Mark: Replacing,
					CordonedAt: cordonedAt, DrainedAt: now.Add(-time.Second)},
				{ID: "old-2", AZ: "a", Old: true, HasNode: true, Ready: true, Tainted: true},
				{ID: "new-1", AZ: "a", HasNode: true, Ready: true},
			},
		})
	}
	terminates := func(p Plan) bool {
		return slices.ContainsFunc(p.Actions, func(a Action) bool { return a.Kind == Terminate && a.Instance == "old-1" })
	}
	if p := plan(now.Add(-5 * time.Second)); !terminates(p) {
		t.Errorf("cordoned 5s ago, drained 1s ago, wait 4s: not terminated (%+v, waiting %v)", p.Actions, p.Waiting)
	}
	p := plan(time.Time{})
	if terminates(p) {
		t.Errorf("cordoned once drained 1s ago, wait 4s: terminated")
	}
	if want := now.Add(3 * time.Second); !p.WakeAt.Equal(want) {
		t.Errorf("wakes at %v, want %v (its wait's end)", p.WakeAt, want)
	}
	if p := plan(now.Add(-2 * time.Second)); terminates(p) || !p.WakeAt.Equal(now.Add(2*time.Second)) {
		t.Errorf("cordoned 2s ago: want a wake at its wait's end in 2s, got %v (%+v)", p.WakeAt.Sub(now), p.Actions)
	}
}

// Scaling back, the sizes are restored while the last terminated instances
// are still shutting down, and the plan is done only once they are gone.
func TestScaleBackRestoresSizesWhileInstancesLeave(t *testing.T) {
	s := State{Phase: PhaseScalingDown, OrigMin: 1, OrigMax: 2, OrigDesired: 2, Min: 1, Max: 3, Desired: 2,
		Instances: []Instance{
			{ID: "new-1", AZ: "a", HasNode: true, Ready: true},
			{ID: "new-2", AZ: "a", HasNode: true, Ready: true},
			{ID: "old-1", AZ: "a", Old: true, Leaving: true, HasNode: true, Terminated: true},
		}}
	p := Surge{}.Plan(s)
	if !slices.ContainsFunc(p.Actions, func(a Action) bool { return a.Kind == Restore && a.Max == 2 && a.Desired == 2 }) {
		t.Fatalf("sizes not restored while an instance leaves: %+v, waiting %v", p.Actions, p.Waiting)
	}
	s.Max = 2
	if p := (Surge{}).Plan(s); p.Done || len(p.Waiting) == 0 {
		t.Fatalf("done while an instance is still leaving: %+v", p)
	}
	s.Instances = s.Instances[:2]
	if p := (Surge{}).Plan(s); !p.Done {
		t.Fatalf("not done with sizes restored and nothing leaving: %+v", p)
	}
}

// Ranking only the first few nodes gives the same first few as ranking
// them all: the engine asks for as many as it has free slots.
func TestOrderUpToALimitIsThePrefixOfTheWholeOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	budgets := []string{"web", "worker", "cache"}
	for trial := range 50 {
		s := State{}
		for _, b := range budgets {
			s.Budgets = append(s.Budgets, Budget{Name: b, Allowed: rng.IntN(6)})
		}
		for k := range 40 {
			i := Instance{ID: "i-" + string(rune('a'+k/26)) + string(rune('a'+k%26)), Old: true, HasNode: true, Ready: rng.IntN(5) > 0,
				Pods: rng.IntN(12), PDBPods: map[string]int{}}
			for _, b := range budgets {
				if n := rng.IntN(4); n > 0 {
					i.PDBPods[b] = n
				}
			}
			s.Instances = append(s.Instances, i)
		}
		all := order(s, s.Instances, len(s.Instances))
		if len(all) != len(s.Instances) {
			t.Fatalf("trial %d: %d ranked of %d", trial, len(all), len(s.Instances))
		}
		for _, limit := range []int{0, 1, 5, 39} {
			few := order(s, s.Instances, limit)
			if len(few) != limit {
				t.Fatalf("trial %d: %d ranked for a limit of %d", trial, len(few), limit)
			}
			for k := range few {
				if few[k].ID != all[k].ID || few[k].why != all[k].why {
					t.Fatalf("trial %d, limit %d: place %d is %s (%s), the whole order has %s (%s)", trial, limit, k, few[k].ID, few[k].why, all[k].ID, all[k].why)
				}
			}
		}
	}
}
