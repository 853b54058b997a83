package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A model of a node group and its cluster that applies a strategy's actions
// and moves on by itself, with seeded faults: instances slow or never Ready,
// calls that never take, nodes going NotReady or vanishing, the process
// restarting (losing what it held in memory). The strategies are run over
// many seeded shapes; the invariants are checked after every step, in the
// manner of Cluster API's rollout sequence tests.

type simInstance struct {
	Instance
	readyAt   int // step its node becomes Ready; -1 never (until repaired)
	drainLeft int
	leaveLeft int
}

type world struct {
	t                 *testing.T
	rng               *rand.Rand
	strategy          Strategy
	step              int
	base              time.Time
	phase             string
	min, max, desired int
	orig              State
	surge, unav       int
	azs               []string
	inst              []*simInstance
	budgets           []Budget
	nextID            int
	terms             map[string]int // terminations that took
	oldIDs            []string
	faults            bool
	neverReady        bool // a launch that never becomes Ready (repaired after a stop)
	log               []string
	batch             int
	batchSoak, soak   time.Duration
	repointed         bool
}

func newWorld(t *testing.T, seed uint64, strategy func(*rand.Rand) Strategy, faults bool) *world {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	w := &world{t: t, rng: rng, base: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), phase: PhaseStarted, terms: map[string]int{}, faults: faults}
	w.strategy = strategy(rng)
	nAZ := 1 + rng.IntN(3)
	for k := range nAZ {
		w.azs = append(w.azs, fmt.Sprintf("az-%c", 'a'+k))
	}
	n := 1 + rng.IntN(30)
	for k := range 1 + rng.IntN(4) {
		w.budgets = append(w.budgets, Budget{Name: fmt.Sprintf("pdb-%d", k), Allowed: rng.IntN(3)})
	}
	for k := range n {
		i := w.launch(w.azs[k%nAZ], true)
		i.readyAt = 0
	}
	w.min = rng.IntN(n + 1)
	w.max = n + rng.IntN(3)
	w.desired = n
	w.orig = State{OrigMin: w.min, OrigMax: w.max, OrigDesired: n}
	w.batch, w.batchSoak, w.soak = rng.IntN(4), time.Duration(rng.IntN(4))*time.Second, time.Duration(rng.IntN(6))*time.Second
	if _, eks := w.strategy.(EKS); eks {
		w.surge = max(nAZ, rng.IntN(3))
	} else if _, bg := w.strategy.(BlueGreen); bg {
		w.surge = n
	} else {
		w.surge = rng.IntN(n + 1)
		w.unav = rng.IntN(n/2 + 1)
		if w.surge+w.unav == 0 {
			w.surge = 1
		}
	}
	return w
}

func (w *world) launch(az string, old bool) *simInstance {
	w.nextID++
	i := &simInstance{Instance: Instance{ID: fmt.Sprintf("i-%03d", w.nextID), AZ: az, Old: old, HasNode: true, PDBPods: map[string]int{}}}
	i.readyAt = w.step + 1 + w.rng.IntN(4)
	if old {
		w.oldIDs = append(w.oldIDs, i.ID)
		for _, b := range w.budgets {
			if w.rng.IntN(2) == 0 {
				i.PDBPods[b.Name] = 1 + w.rng.IntN(2)
				i.Pods += i.PDBPods[b.Name]
			}
		}
		i.Pods += w.rng.IntN(5)
	} else if w.faults && !w.neverReady && w.rng.IntN(40) == 0 {
		i.readyAt = -1
		w.neverReady = true
	}
	w.inst = append(w.inst, i)
	return i
}

func (w *world) now() time.Time { return w.base.Add(time.Duration(w.step) * time.Second) }

func (w *world) state() State {
	s := w.orig
	s.Now, s.Phase, s.Min, s.Max, s.Desired = w.now(), w.phase, w.min, w.max, w.desired
	s.Surge, s.Unavailable, s.AZs, s.Budgets = w.surge, w.unav, w.azs, w.budgets
	s.PostCordonWait = 2 * time.Second
	s.BatchSize, s.BatchSoak, s.Soak = w.batch, w.batchSoak, w.soak
	for _, i := range w.inst {
		c := i.Instance
		c.Ready = i.HasNode && i.readyAt >= 0 && w.step >= i.readyAt
		s.Instances = append(s.Instances, c)
	}
	return s
}

func (w *world) find(id string) *simInstance {
	for _, i := range w.inst {
		if i.ID == id {
			return i
		}
	}
	w.t.Fatalf("step %d: action on unknown instance %s", w.step, id)
	return nil
}

func serves(i *simInstance, step int) bool {
	return i.InService() && i.HasNode && i.readyAt >= 0 && step >= i.readyAt && !i.Cordoned && i.Mark == Unmarked
}

func (w *world) count(f func(*simInstance) bool) int {
	n := 0
	for _, i := range w.inst {
		if f(i) {
			n++
		}
	}
	return n
}

func (w *world) apply(p Plan) {
	servingBefore := w.count(func(i *simInstance) bool { return serves(i, w.step) })
	drainedServing := 0
	for _, a := range p.Actions {
		w.log = append(w.log, fmt.Sprintf("%d: %s", w.step, a))
		switch a.Kind {
		case Resize:
			w.max, w.desired = a.Max, a.Desired
		case Restore:
			w.min, w.max, w.desired = w.orig.OrigMin, w.orig.OrigMax, w.orig.OrigDesired
		case SetPhase:
			w.phase = a.Phase
		case Taint:
			w.find(a.Instance).Tainted = true
		case Drain:
			i := w.find(a.Instance)
			if i.Draining || !i.InService() {
				w.t.Fatalf("step %d: drain of %s, already draining or leaving", w.step, i.ID)
			}
			if serves(i, w.step) {
				drainedServing++
			}
			i.Mark, i.Draining = a.Mark, true
			if a.CordonFirst && !i.Cordoned {
				i.CordonedAt = w.now()
			}
			i.Cordoned = i.Cordoned || a.CordonFirst
			i.drainLeft = w.rng.IntN(4)
		case Uncordon:
			i := w.find(a.Instance)
			i.Tainted, i.Cordoned, i.Mark, i.DrainedAt, i.CordonedAt = false, false, Unmarked, time.Time{}, time.Time{}
		case Repoint:
			w.repointed = true
		case Terminate:
			i := w.find(a.Instance)
			if _, bg := w.strategy.(BlueGreen); bg && i.Old && w.phase == PhaseReplacing && !i.Terminated {
				w.checkSoaked(i)
			}
			if !i.InService() {
				w.t.Fatalf("step %d: terminate of %s, already leaving", w.step, i.ID)
			}
			if i.DrainedAt.IsZero() && i.HasNode && !i.Terminated {
				w.t.Fatalf("step %d: terminate of %s before it was drained", w.step, i.ID)
			}
			// Every drained node, old or new (a surplus one, or one going
			// back removes), waits it out. The post-cordon wait runs from
			// the cordon: before the drain when cordoned first, else when
			// drained.
			cordoned := i.DrainedAt
			if !i.CordonedAt.IsZero() {
				cordoned = i.CordonedAt
			}
			if wait := w.state().PostCordonWait; i.HasNode && !i.Terminated && w.now().Before(cordoned.Add(wait)) {
				w.t.Fatalf("step %d: terminate of %s %s after its cordon, before the %s post-cordon wait", w.step, i.ID, w.now().Sub(cordoned), wait)
			}
			i.Terminated, i.Decrement = true, a.Decrement
			if w.faults && w.rng.IntN(10) == 0 {
				continue // the call never took
			}
			w.terms[i.ID]++
			i.Leaving, i.leaveLeft = true, w.rng.IntN(3)
			if a.Decrement {
				w.desired--
			}
		}
	}
	if !slices.ContainsFunc(p.Actions, func(a Action) bool { return a.Kind == Drain }) {
		return
	}
	// The strategy may not take ready capacity below what it may miss.
	if _, eks := w.strategy.(EKS); !eks && drainedServing > 0 && servingBefore-drainedServing < w.orig.OrigDesired-w.unav {
		w.t.Fatalf("step %d: %d serving, drains %d of them, below original %d - max unavailable %d\n%s", w.step, servingBefore, drainedServing, w.orig.OrigDesired, w.unav, w.trace())
	}
}

func (w *world) trace() string {
	from := max(0, len(w.log)-40)
	return fmt.Sprint(w.log[from:])
}

// advance moves the world one step: launches, drains, leaving instances, faults.
func (w *world) advance() {
	w.step++
	var keep []*simInstance
	for _, i := range w.inst {
		if i.Leaving {
			if i.leaveLeft--; i.leaveLeft < 0 {
				continue
			}
		}
		if i.Draining {
			if i.drainLeft--; i.drainLeft < 0 {
				i.Draining, i.Cordoned, i.DrainedAt = false, true, w.now()
			}
		}
		keep = append(keep, i)
	}
	w.inst = keep
	// The group launches what desired asks for, in its least used AZ.
	for w.count(func(i *simInstance) bool { return i.InService() }) < w.desired {
		perAZ := map[string]int{}
		for _, i := range w.inst {
			if i.InService() {
				perAZ[i.AZ]++
			}
		}
		az := w.azs[0]
		for _, a := range w.azs {
			if perAZ[a] < perAZ[az] {
				az = a
			}
		}
		w.launch(az, false)
	}
	if !w.faults {
		return
	}
	switch w.rng.IntN(25) {
	case 0: // an old node goes NotReady
		for _, i := range w.inst {
			if i.Old && i.InService() && i.readyAt >= 0 {
				i.readyAt = -1
				break
			}
		}
	case 1: // the process restarts: drains in flight are forgotten
		for _, i := range w.inst {
			i.Draining = false
		}
	case 3: // an old node vanishes from the cluster, its instance stays
		for _, i := range w.inst {
			if i.Old && i.InService() && i.Mark == Unmarked && i.HasNode {
				i.HasNode = false
				break
			}
		}
	case 2: // a budget's allowed disruptions change
		if len(w.budgets) > 0 {
			w.budgets[w.rng.IntN(len(w.budgets))].Allowed = w.rng.IntN(3)
		}
	}
}

func (w *world) run() {
	stuck := 0
	for range 2000 {
		s := w.state()
		p := w.strategy.Plan(s)
		w.apply(p)
		inService := w.count(func(i *simInstance) bool { return i.InService() })
		if limit := w.orig.OrigDesired + w.surge; inService > max(limit, w.orig.OrigDesired) {
			w.t.Fatalf("step %d: %d instances in service, above original %d + surge %d\n%s", w.step, inService, w.orig.OrigDesired, w.surge, w.trace())
		}
		if _, eks := w.strategy.(EKS); !eks {
			if n := w.count(func(i *simInstance) bool { return inFlight(i.Instance) }); n > w.surge+w.unav {
				w.t.Fatalf("step %d: %d nodes in flight, above surge %d + unavailable %d\n%s", w.step, n, w.surge, w.unav, w.trace())
			}
		} else if n := w.count(func(i *simInstance) bool { return inFlight(i.Instance) }); n > 1 {
			w.t.Fatalf("step %d: eks has %d nodes in flight\n%s", w.step, n, w.trace())
		}
		if p.Done {
			w.end()
			return
		}
		if len(p.Actions) == 0 && p.NeedCapacity {
			// A stop for capacity: the user fixes it and reruns.
			if stuck++; stuck > 20 {
				for _, i := range w.inst {
					if i.readyAt < 0 {
						i.readyAt = w.step
					}
				}
				stuck = 0
			}
		}
		w.advance()
	}
	w.t.Fatalf("no end after 2000 steps; phase %s\n%s", w.phase, w.trace())
}

func (w *world) end() {
	if w.min != w.orig.OrigMin || w.max != w.orig.OrigMax || w.desired != w.orig.OrigDesired {
		w.t.Errorf("sizes %d/%d/%d, want %d/%d/%d", w.min, w.max, w.desired, w.orig.OrigMin, w.orig.OrigMax, w.orig.OrigDesired)
	}
	live := 0
	for _, i := range w.inst {
		if i.InService() {
			live++
			if i.Old {
				w.t.Errorf("old instance %s still in service", i.ID)
			}
			if i.Mark != Unmarked || i.Cordoned {
				w.t.Errorf("instance %s left marked or cordoned", i.ID)
			}
		}
	}
	if live != w.orig.OrigDesired {
		w.t.Errorf("%d instances in service, want %d", live, w.orig.OrigDesired)
	}
	for _, id := range w.oldIDs {
		if w.terms[id] != 1 {
			w.t.Errorf("old instance %s terminated %d times, want once\n%s", id, w.terms[id], w.trace())
		}
	}
}

func TestStrategiesOverManySeededRuns(t *testing.T) {
	strategies := map[string]func(*rand.Rand) Strategy{
		"eks":       func(r *rand.Rand) Strategy { return EKS{Intn: r.IntN} },
		"surge":     func(*rand.Rand) Strategy { return Surge{} },
		"bluegreen": func(*rand.Rand) Strategy { return BlueGreen{} },
	}
	for name, mk := range strategies {
		for _, faults := range []bool{false, true} {
			for seed := range uint64(300) {
				t.Run(fmt.Sprintf("%s/faults=%v/seed=%d", name, faults, seed), func(t *testing.T) {
					newWorld(t, seed, mk, faults).run()
				})
			}
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// checkSoaked fails a blue-green termination of an old node before every
// new node is Ready or before the soak after the last drain is over.
func (w *world) checkSoaked(i *simInstance) {
	var last time.Time
	for _, x := range w.inst {
		if x.InService() && !x.Old && !(x.readyAt >= 0 && w.step >= x.readyAt) {
			w.t.Fatalf("step %d: old %s terminated while new %s is not Ready\n%s", w.step, i.ID, x.ID, w.trace())
		}
		if x.Old && x.DrainedAt.After(last) {
			last = x.DrainedAt
		}
		if x.Old && x.InService() && x.DrainedAt.IsZero() && !x.Terminated {
			w.t.Fatalf("step %d: old %s terminated while old %s is not drained yet\n%s", w.step, i.ID, x.ID, w.trace())
		}
	}
	if w.now().Before(last.Add(w.soak)) && !w.anyOldTerminated() {
		w.t.Fatalf("step %d: old %s terminated before the soak ended\n%s", w.step, i.ID, w.trace())
	}
}

func (w *world) anyOldTerminated() bool {
	for _, id := range w.oldIDs {
		if w.terms[id] > 0 {
			return true
		}
	}
	return false
}
