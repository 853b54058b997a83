package predict

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/noderoll/noderoll/internal/rollout"
)

// group is n old instances over azs AZs, each with pods of the given
// budgets (and more unbudgeted), sized for a surge of surge.
func group(n, azs, surge int, pods map[string]int, unbudgeted int) rollout.State {
	s := rollout.State{Now: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), Phase: rollout.PhaseStarted,
		Min: n, Max: n, Desired: n, OrigMin: n, OrigMax: n, OrigDesired: n, Surge: surge, PostCordonWait: 4 * time.Second}
	for k := range azs {
		s.AZs = append(s.AZs, fmt.Sprintf("az-%c", 'a'+k))
	}
	for k := range n {
		i := rollout.Instance{ID: fmt.Sprintf("i-old-%03d", k), AZ: s.AZs[k%azs], Old: true, HasNode: true, Ready: true, PDBPods: map[string]int{}}
		for b, c := range pods {
			i.PDBPods[b] = c
			i.Pods += c
		}
		i.Pods += unbudgeted
		s.Instances = append(s.Instances, i)
	}
	return s
}

var quick = Delays{BootReady: 3 * time.Second, PodStart: time.Second, PodStop: time.Second, Shutdown: 2 * time.Second, Poll: 2 * time.Second}

// With nothing to move, a surge of the whole group is one wave: the new
// nodes Ready (3s), the old ones cordoned and drained at once, their
// post-cordon wait (4s), the terminations (2s to leave).
func TestASurgeOfTheWholeGroupIsOneWave(t *testing.T) {
	r := Run(Input{Start: group(3, 3, 3, nil, 0), Delays: quick}, rollout.Surge{})
	if r.Duration != 9*time.Second || r.PeakInstances != 6 || r.Blocked != "" {
		t.Errorf("%+v; want 9s, 6 instances at the peak", r)
	}
}

// Each wave costs its launch, its drain and its wait: a surge of one per
// AZ replaces 9 nodes in three waves, each about a third of the whole.
func TestWavesAddUp(t *testing.T) {
	one := Run(Input{Start: group(3, 3, 3, nil, 0), Delays: quick}, rollout.Surge{})
	three := Run(Input{Start: group(9, 3, 3, nil, 0), Delays: quick}, rollout.Surge{})
	if three.Duration < 2*one.Duration || three.Duration > 4*one.Duration || three.PeakInstances != 12 {
		t.Errorf("9 nodes by 3: %+v; 3 nodes by 3: %+v", three, one)
	}
}

// A budget that allows one disruption at a time sets the pace: 12 pods
// of it on the group move one per pod start.
func TestATightBudgetSetsThePace(t *testing.T) {
	in := Input{Start: group(3, 3, 3, map[string]int{"web": 4}, 0), Budgets: []Budget{{Name: "web", Allowed: 1}}, Delays: quick}
	r := Run(in, rollout.Surge{})
	free := Run(Input{Start: group(3, 3, 3, nil, 0), Delays: quick}, rollout.Surge{})
	// 12 evictions, one per second of pod start: the last at 3s+11s,
	// gone 1s later (the post-cordon wait ran from the cordon, alongside),
	// then the shutdown.
	if want := 3*time.Second + 11*time.Second + time.Second + 2*time.Second; r.Duration != want {
		t.Errorf("%s with web allowing 1 (none: %s); want about %s", r.Duration, free.Duration, want)
	}
	in.Budgets[0].Ordered = true // a StatefulSet's pod starts once the old one is gone
	if ordered := Run(in, rollout.Surge{}); ordered.Duration <= r.Duration+5*time.Second {
		t.Errorf("ordered: %s, not slower than %s", ordered.Duration, r.Duration)
	}
}

// Drains racing for one budget slow its rounds: each pod other drains wait
// to evict under it adds Contend. Three drains of 4 pods on a budget
// allowing 1: the first eviction is taken as the first drain starts,
// alone; the first drain's three other rounds race the other two drains'
// eight pods, the second's four race the third's four, the last's none.
func TestDrainsRacingForABudgetSlowItsRounds(t *testing.T) {
	in := Input{Start: group(3, 3, 3, map[string]int{"web": 4}, 0), Budgets: []Budget{{Name: "web", Allowed: 1}}, Delays: quick}
	alone := Run(in, rollout.Surge{})
	in.Delays.Contend = 100 * time.Millisecond
	in.Budgets = []Budget{{Name: "web", Allowed: 1}}
	raced := Run(in, rollout.Surge{})
	if want := alone.Duration + (3*8+4*4)*100*time.Millisecond; raced.Duration != want {
		t.Errorf("raced %s, alone %s; want %s", raced.Duration, alone.Duration, want)
	}
}

// A budget that allows nothing holds the run forever: the model says so,
// naming the budget, instead of a number.
func TestABudgetThatAllowsNothingIsNamed(t *testing.T) {
	in := Input{Start: group(3, 3, 3, map[string]int{"db": 1}, 2), Budgets: []Budget{{Name: "db", Allowed: 0}}, Delays: quick}
	r := Run(in, rollout.Surge{})
	if r.Blocked == "" || !strings.Contains(r.Blocked, "budget db allows no disruption") {
		t.Errorf("%+v", r)
	}
}

// The seed's one-at-a-time algorithm is slower than surge by about the
// group's size, and blue-green keeps every old node through its soak.
func TestStrategiesRankAsTheyShould(t *testing.T) {
	pods := map[string]int{"web": 4, "worker": 3}
	budgets := []Budget{{Name: "web", Allowed: 2}, {Name: "worker", Allowed: 2}}
	for _, n := range []int{3, 30} {
		surge := Run(Input{Start: group(n, 3, max((n+3)/4, 3), pods, 3), Budgets: budgets, Delays: quick}, rollout.Surge{})
		bg := group(n, 3, n, pods, 3)
		bg.Soak = 4 * time.Second
		blue := Run(Input{Start: bg, Budgets: budgets, Delays: quick}, rollout.BlueGreen{})
		eks := Run(Input{Start: group(n, 3, 3, pods, 3), Budgets: budgets, Delays: quick}, rollout.EKS{Intn: func(int) int { return 0 }})
		t.Logf("%d nodes: surge %s (peak %d), bluegreen %s (peak %d), eks %s (peak %d)", n, surge.Duration, surge.PeakInstances, blue.Duration, blue.PeakInstances, eks.Duration, eks.PeakInstances)
		for _, r := range []Result{surge, blue, eks} {
			if r.Blocked != "" {
				t.Errorf("%d nodes, %s blocked: %s", n, r.Strategy, r.Blocked)
			}
		}
		if eks.Duration < time.Duration(n)*4*time.Second || eks.Duration < surge.Duration || blue.PeakInstances != 2*n {
			t.Errorf("%d nodes: surge %s, bluegreen %s (peak %d), eks %s", n, surge.Duration, blue.Duration, blue.PeakInstances, eks.Duration)
		}
	}
}

// The milestones tell the one wave of a whole-group surge phase by phase:
// launched at once, Ready after the boot, drained at once (nothing to
// move: the drain's own cost), terminated after the post-cordon wait, and
// the end once the old instances have left.
func TestMilestonesFollowTheWave(t *testing.T) {
	d := quick
	d.Evict = 500 * time.Millisecond
	r := Run(Input{Start: group(3, 3, 3, nil, 0), Delays: d}, rollout.Surge{})
	want := Milestones{Launched: 0, Ready: 3 * time.Second, FirstDrain: 3 * time.Second, LastDrain: 3 * time.Second,
		Drained: 3500 * time.Millisecond, Terminated: 7 * time.Second, End: 9 * time.Second}
	if r.Milestones != want {
		t.Errorf("milestones %+v; want %+v", r.Milestones, want)
	}
}

// Scaling down, a leaving instance's node going wakes the engine to ask
// the cloud at once (internal/engine's roll), so the run ends about a
// shutdown after its last termination, not at the poll after it.
func TestScalingDownEndsAShutdownAfterTheLastTermination(t *testing.T) {
	slow := quick
	slow.Poll = 10 * time.Second
	for _, s := range []rollout.Strategy{rollout.Surge{}, rollout.BlueGreen{}} {
		r := Run(Input{Start: group(3, 3, 3, nil, 0), Delays: slow}, s)
		if tail := r.Milestones.End - r.Milestones.Terminated; r.Blocked != "" || tail < slow.Shutdown || tail >= slow.Shutdown+time.Second {
			t.Errorf("%s: %+v; want the end %s after the last termination, not at the next 10s poll", s.Name(), r, slow.Shutdown)
		}
	}
}

// A control plane that moves pods at a fixed rate decides a large group's
// time once that rate, not the waves nor the budgets, is the slowest:
// 300 nodes of 10 unbudgeted pods each, one wave, at 100 pods a second
// take the 30 s the 3,000 pods need, beside the 9 s the wave alone takes.
func TestTheControlPlanesRateBoundsTheMoves(t *testing.T) {
	free := Run(Input{Start: group(300, 3, 300, nil, 10), Delays: quick}, rollout.Surge{})
	limited := quick
	limited.PodsPerSecond = 100
	r := Run(Input{Start: group(300, 3, 300, nil, 10), Delays: limited}, rollout.Surge{})
	if free.Duration > 15*time.Second {
		t.Fatalf("without a limit: %s, want one wave (under 15s)", free.Duration)
	}
	// 3 s until the new nodes are Ready, 30 s of moves, the termination's 2 s.
	if r.Duration < 33*time.Second || r.Duration > 38*time.Second {
		t.Errorf("at 100 pods a second: %s, want 33s to 38s", r.Duration)
	}
	// Budgets get their disruptions back only once the control plane has
	// moved the pods: a budget allowing everything at once still waits.
	in := Input{Start: group(30, 3, 30, map[string]int{"web": 10}, 0), Budgets: []Budget{{Name: "web", Allowed: 150}}, Delays: limited}
	b := Run(in, rollout.Surge{})
	// 300 pods in two rounds of 150; the second starts when the first's
	// 150 are moved (1.5 s) and ends 1.5 s later.
	if b.Duration < 3*time.Second+3*time.Second || b.Blocked != "" {
		t.Errorf("a budget's rounds under the rate: %+v", b)
	}
}

// One budget's evictions go one after another at its rate, each budget at
// its own: a large budget's pods, not the waves, decide the time, and a
// second budget's pods go alongside the first's, not after them.
func TestABudgetsRateBoundsItsEvictions(t *testing.T) {
	in := Input{Start: group(30, 3, 30, map[string]int{"web": 10}, 0), Budgets: []Budget{{Name: "web", Allowed: 300}}, Delays: quick}
	free := Run(in, rollout.Surge{})
	limited := quick
	limited.BudgetEvictionsPerSecond = 10
	in.Delays = limited
	r := Run(in, rollout.Surge{})
	if free.Duration > 15*time.Second {
		t.Fatalf("without a limit: %s, want one wave (under 15s)", free.Duration)
	}
	// 3 s until the new nodes are Ready, 30 s of evictions, the last
	// pod's stop and the termination.
	if r.Duration < 33*time.Second || r.Duration > 40*time.Second || r.Blocked != "" {
		t.Errorf("300 evictions of one budget at 10 a second: %+v, want 33s to 40s", r)
	}
	two := Input{Start: group(30, 3, 30, map[string]int{"web": 5, "worker": 5}, 0),
		Budgets: []Budget{{Name: "web", Allowed: 300}, {Name: "worker", Allowed: 300}}, Delays: limited}
	if r2 := Run(two, rollout.Surge{}); r2.Duration < 18*time.Second || r2.Duration > 25*time.Second {
		t.Errorf("150 evictions of each of two budgets at 10 a second each: %s, want 18s to 25s (alongside)", r2.Duration)
	}
}
