// Package predict says how long an upgrade will take before it starts. It
// runs the engine's own decisions (a rollout.Strategy, the very code the
// engine asks) against a model of the group and its cluster on a virtual
// clock: instances become Ready nodes after the boot delay the cluster
// showed, pods move within their disruption budgets at the pace their
// replacements start, the cloud is seen at the engine's poll, and the
// post-cordon wait, soak and shutdown run their course. Nothing here talks
// to a cluster or a cloud.
package predict

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/rollout"
)

// Delays are the times the model charges.
type Delays struct {
	// BootReady is an instance's launch until its node is Ready.
	BootReady time.Duration `json:"bootReady"`
	// PodStart is an evicted pod's replacement created until Ready: what
	// a budget waits for before it allows the next disruption.
	PodStart time.Duration `json:"podStart"`
	// PodStop is an evicted pod's eviction until it is gone.
	PodStop time.Duration `json:"podStop"`
	// Shutdown is a terminated instance's call until it has left the
	// group.
	Shutdown time.Duration `json:"shutdown"`
	// Evict is what a drain costs beyond its pods' stop: the evictions
	// asked and the pods' deletion seen.
	Evict time.Duration `json:"evict"`
	// Recount is how long after a replacement pod is Ready its budget
	// allows the next disruption: the disruption controller's count and
	// the drain's retry.
	Recount time.Duration `json:"recount"`
	// Contend is what each pod other drains wait to evict under the same
	// budget adds to its rounds: a disruption given back wakes every drain
	// that waits on it, each asks again for its pods held there, one
	// eviction wins, the others are refused, and the API server answers
	// them all. Nothing else charges for many drains on few budgets
	// (blue-green's every old node at once).
	Contend time.Duration `json:"contend"`
	// Poll is how often the engine asks the cloud (its PollInterval).
	Poll time.Duration `json:"poll"`
	// Call is what one call to the cloud or the API server costs the
	// engine's loop.
	Call time.Duration `json:"call"`
	// Setup is the work before the first replacement and after the last
	// (preflight, the lock, the launch template version, the group
	// pointed at it, the cluster-autoscaler held and given back).
	Setup time.Duration `json:"setup"`
	// PodsPerSecond is how many pods a second the control plane can move
	// (evict, delete, create, schedule, start, report), the upgrade's
	// own traffic included: each moved pod takes 1/PodsPerSecond of it,
	// one after another. 0: no limit. On a small control plane this,
	// not the waves nor the budgets, decides a large group's time.
	PodsPerSecond float64 `json:"podsPerSecond,omitempty"`
	// BudgetEvictionsPerSecond is how many evictions a second one budget
	// takes: each eviction writes the budget's status, writes to one
	// object go one after another, and one that collides with another
	// (an eviction's, the disruption controller's) is retried by the API
	// server half a second later. 0: no limit. On a busy control plane a
	// large budget's pods, not the waves, decide a large group's time.
	BudgetEvictionsPerSecond float64 `json:"budgetEvictionsPerSecond,omitempty"`
}

// Budget is a disruption budget over the group's pods.
type Budget struct {
	Name    string `json:"name"`
	Allowed int    `json:"allowed"` // status.disruptionsAllowed now
	// Ordered is a StatefulSet's: a replacement starts only once the
	// evicted pod is gone.
	Ordered bool `json:"ordered,omitempty"`
}

// Input is the group as it is and the upgrade asked for.
type Input struct {
	// Start is the group's rollout state as the engine would see it at
	// the start: instances (old ones with their pods), sizes, surge,
	// unavailable, AZs, post-cordon wait, blue-green's batches and soak.
	Start   rollout.State
	Budgets []Budget
	Delays  Delays
}

// Result is one strategy's predicted run.
type Result struct {
	Strategy string        `json:"strategy"`
	Duration time.Duration `json:"duration"`
	// PeakInstances is the most instances in service at once.
	PeakInstances int `json:"peakInstances"`
	// Blocked, when set, says what would hold the run forever: a budget
	// that allows no disruption, say. Duration is then how far it got.
	Blocked string `json:"blocked,omitempty"`
	// Milestones are when the run's phases begin and end, so that a
	// measured run can be held against the model phase by phase, not
	// only as a whole.
	Milestones Milestones `json:"milestones"`
}

// Milestones are times since the start of a run (0: it did not happen).
type Milestones struct {
	// Launched is the first replacement instance's launch.
	Launched time.Duration `json:"launched,omitempty"`
	// Ready is the first replacement's node Ready.
	Ready time.Duration `json:"ready,omitempty"`
	// FirstDrain and LastDrain are the first and the last old node's
	// drain started; Drained is the last old node's drain done (a
	// scale-back's drains of surplus new nodes count in none of them).
	FirstDrain time.Duration `json:"firstDrain,omitempty"`
	LastDrain  time.Duration `json:"lastDrain,omitempty"`
	Drained    time.Duration `json:"drained,omitempty"`
	// Terminated is the last old instance's termination asked.
	Terminated time.Duration `json:"terminated,omitempty"`
	// End is the end of the run.
	End time.Duration `json:"end,omitempty"`
}

// steps bounds a run of the model: far more loops than any group needs.
const steps = 200000

// Run predicts a run of strategy over in.
func Run(in Input, strategy rollout.Strategy) Result {
	m := newModel(in)
	res := Result{Strategy: strategy.Name()}
	t := m.d.Setup / 2
	lastRefresh := time.Duration(-1 << 62)
	stale := true
	for range steps {
		m.advance(t)
		if stale || m.nodeGoneWhileScalingDown || t-lastRefresh >= m.d.Poll {
			m.refresh()
			lastRefresh, stale, m.nodeGoneWhileScalingDown = t, false, false
		}
		res.PeakInstances = max(res.PeakInstances, m.inService())
		plan := strategy.Plan(m.state(t))
		calls := 0
		for _, a := range plan.Actions {
			c, cloud := m.apply(t, a)
			calls += c
			stale = stale || cloud
		}
		if plan.Done {
			res.Duration = t + m.d.Setup - m.d.Setup/2
			res.Milestones = m.ms
			res.Milestones.End = res.Duration
			return res
		}
		if calls > 0 {
			t += time.Duration(calls) * m.d.Call
			continue
		}
		next := lastRefresh + m.d.Poll
		if !plan.WakeAt.IsZero() {
			next = min(next, m.at(plan.WakeAt))
		}
		if e, ok := m.nextEvent(t); ok {
			next = min(next, e)
		}
		if next <= t {
			next = t + time.Millisecond
		}
		if stuck, holding := m.stuck(t, plan); stuck {
			res.Duration, res.Blocked = t, strings.Join(append(holding, plan.Waiting...), "; ")
			res.Milestones = m.ms
			if res.Blocked == "" {
				res.Blocked = "no progress"
			}
			return res
		}
		t = next
	}
	res.Blocked = fmt.Sprintf("no end after %d steps of the model", steps)
	return res
}

// instance is one instance of the model: what the cloud knows of it, its
// node, and its pods.
type instance struct {
	rollout.Instance
	launched   time.Duration
	leaveAt    time.Duration // when it has left the group; -1 while in service
	gone       bool          // it has left the group
	seenGone   bool          // the engine's view: it has left
	seenLeave  bool          // the engine's view: it is leaving
	left       map[string]int
	unbudgeted int
	lastGone   time.Duration // the last evicted pod is gone then
	drainStart time.Duration
}

type model struct {
	d                 Delays
	base              time.Time
	start             rollout.State
	phase             string
	min, max, desired int
	inst              []*instance
	budgets           []Budget
	allowed           map[string]int
	returns           []allowance // disruptions given back when replacements are Ready
	nextID            int
	azTurn            int
	ms                Milestones
	launchedAny       bool
	drainedAny        bool
	// movedBy is when the control plane has moved every pod evicted so
	// far, at its PodsPerSecond.
	movedBy time.Duration
	// evictedBy is, per budget, when its evictions so far are done, at
	// its BudgetEvictionsPerSecond.
	evictedBy map[string]time.Duration
	// nodeGoneWhileScalingDown: since the engine last asked the cloud, a
	// leaving instance's node went while the group scaled down.
	nodeGoneWhileScalingDown bool
}

// allowance is a disruption a budget gets back at a time.
type allowance struct {
	budget string
	at     time.Duration
}

func newModel(in Input) *model {
	s := in.Start
	m := &model{d: in.Delays, base: s.Now, start: s, phase: s.Phase, min: s.Min, max: s.Max, desired: s.Desired,
		budgets: in.Budgets, allowed: map[string]int{}, evictedBy: map[string]time.Duration{}}
	if m.phase == "" {
		m.phase = rollout.PhaseStarted
	}
	if m.d.Poll <= 0 {
		m.d.Poll = 2 * time.Second
	}
	for _, b := range in.Budgets {
		m.allowed[b.Name] = b.Allowed
	}
	for _, i := range s.Instances {
		c := &instance{Instance: i, launched: -time.Hour, leaveAt: -1}
		c.HasNode, c.Ready = true, true
		m.inst = append(m.inst, c)
	}
	return m
}

// at is a strategy's time on the model's clock.
func (m *model) at(t time.Time) time.Duration { return t.Sub(m.base) }

func (m *model) state(t time.Duration) rollout.State {
	s := m.start
	s.Now, s.Phase, s.Min, s.Max, s.Desired = m.base.Add(t), m.phase, m.min, m.max, m.desired
	s.Instances = nil
	for _, i := range m.inst {
		if i.seenGone {
			continue
		}
		c := i.Instance
		c.Leaving = i.seenLeave
		c.HasNode = t >= i.launched+m.d.BootReady && !(i.leaveAt >= 0 && t >= i.leaveAt)
		c.Ready = c.HasNode
		s.Instances = append(s.Instances, c)
	}
	s.Budgets = nil
	for _, b := range m.budgets {
		s.Budgets = append(s.Budgets, rollout.Budget{Name: b.Name, Allowed: m.allowed[b.Name]})
	}
	return s
}

func (m *model) inService() int {
	n := 0
	for _, i := range m.inst {
		if i.leaveAt < 0 {
			n++
		}
	}
	return n
}

// refresh is the engine asking the cloud: it sees who left and who is
// leaving as of now.
func (m *model) refresh() {
	for _, i := range m.inst {
		i.seenLeave = i.leaveAt >= 0
		i.seenGone = i.gone
	}
}

// apply carries out one action; it returns the calls it cost and whether
// one went to the cloud.
func (m *model) apply(t time.Duration, a rollout.Action) (calls int, cloud bool) {
	switch a.Kind {
	case rollout.Resize:
		m.max, m.desired = a.Max, a.Desired
		m.launch(t)
		return 1, true
	case rollout.Restore:
		m.min, m.max, m.desired = m.start.OrigMin, m.start.OrigMax, m.start.OrigDesired
		return 1, true
	case rollout.SetPhase:
		m.phase = a.Phase
		return 1, false
	case rollout.Taint, rollout.Uncordon:
		if i := m.find(a.Instance); i != nil {
			i.Tainted = a.Kind == rollout.Taint
		}
		return 1, false
	case rollout.Repoint:
		return 1, true
	case rollout.Drain:
		i := m.find(a.Instance)
		if i == nil {
			return 0, false
		}
		i.Mark, i.Draining, i.drainStart = a.Mark, true, t
		if a.CordonFirst && !i.Cordoned {
			i.Cordoned, i.CordonedAt = true, m.base.Add(t)
		}
		i.left = map[string]int{}
		rest := i.Pods
		for b, n := range i.PDBPods {
			i.left[b] = n
			rest -= n
		}
		i.unbudgeted = max(rest, 0)
		i.lastGone = t + m.d.Evict
		if i.Old && !m.drainedAny {
			m.drainedAny, m.ms.FirstDrain = true, t
		}
		if i.Old {
			m.ms.LastDrain = max(m.ms.LastDrain, t)
		}
		m.evict(t)
		return 1, false // the mark and the cordon, one patch
	case rollout.Terminate:
		i := m.find(a.Instance)
		if i == nil {
			return 0, false
		}
		i.Terminated, i.Decrement = true, a.Decrement
		i.leaveAt = t + m.d.Shutdown
		if i.Old {
			m.ms.Terminated = max(m.ms.Terminated, t)
		}
		if a.Decrement {
			m.desired--
		}
		m.launch(t)
		return 1, true
	}
	return 0, false
}

func (m *model) find(id string) *instance {
	for _, i := range m.inst {
		if i.ID == id {
			return i
		}
	}
	return nil
}

// launch is the group bringing its instances in service up to desired,
// in its least used AZ each.
func (m *model) launch(t time.Duration) {
	for m.inService() < m.desired {
		per := map[string]int{}
		for _, i := range m.inst {
			if i.leaveAt < 0 {
				per[i.AZ]++
			}
		}
		azs := m.start.AZs
		if len(azs) == 0 {
			azs = []string{"az"}
		}
		az := azs[0]
		for _, a := range azs {
			if per[a] < per[az] {
				az = a
			}
		}
		m.nextID++
		if !m.launchedAny {
			m.launchedAny, m.ms.Launched, m.ms.Ready = true, t, t+m.d.BootReady
		}
		m.inst = append(m.inst, &instance{Instance: rollout.Instance{ID: fmt.Sprintf("i-model-%05d", m.nextID), AZ: az, PDBPods: map[string]int{}}, launched: t, leaveAt: -1})
	}
}

// evict evicts what the budgets allow from every draining node, oldest
// drain first: each eviction takes a disruption of its budget until the
// replacement is Ready.
func (m *model) evict(t time.Duration) {
	ordered := map[string]bool{}
	for _, b := range m.budgets {
		ordered[b.Name] = b.Ordered
	}
	draining := []*instance{}
	for _, i := range m.inst {
		if i.Draining {
			draining = append(draining, i)
		}
	}
	sort.SliceStable(draining, func(a, b int) bool { return draining[a].drainStart < draining[b].drainStart })
	// The pods each budget holds now, on all drains: each is asked again
	// when the budget frees one.
	waiting := map[string]int{}
	for _, i := range draining {
		for b, n := range i.left {
			waiting[b] += n
		}
	}
	for _, i := range draining {
		if i.unbudgeted > 0 {
			moved := m.move(t, i.unbudgeted)
			i.unbudgeted = 0
			i.lastGone = max(i.lastGone, t+m.d.Evict+m.d.PodStop, moved)
		}
		for _, b := range sortedKeys(i.left) {
			n := min(i.left[b], m.allowed[b])
			if n <= 0 {
				continue
			}
			others := waiting[b] - i.left[b]
			i.left[b] -= n
			waiting[b] -= n
			m.allowed[b] -= n
			evicted := m.spend(b, t, n)
			moved := max(m.move(t, n), evicted)
			i.lastGone = max(i.lastGone, evicted+m.d.Evict+m.d.PodStop, moved)
			// The budget allows again once the replacement is Ready and
			// the disruption controller has counted it, later for every
			// pod of it other drains wait to evict (see Contend), and no
			// sooner than the control plane has moved it.
			back := evicted + m.d.Recount + m.d.PodStart + time.Duration(max(others, 0))*m.d.Contend
			if ordered[b] {
				back += m.d.PodStop
			}
			back = max(back, moved+m.d.Recount)
			for range n {
				m.returns = append(m.returns, allowance{budget: b, at: back})
			}
		}
	}
}

// move hands n pods evicted at t to the control plane and returns when
// it has moved the last of them: its pods are moved one after another at
// PodsPerSecond, after those evicted before (t itself with no limit).
func (m *model) move(t time.Duration, n int) time.Duration {
	if m.d.PodsPerSecond <= 0 || n <= 0 {
		return t
	}
	m.movedBy = max(m.movedBy, t) + time.Duration(float64(n)/m.d.PodsPerSecond*float64(time.Second))
	return m.movedBy
}

// spend evicts n pods of budget b asked for at t and returns when the
// last of them is evicted: one budget's evictions one after another at
// BudgetEvictionsPerSecond, after those asked for before (t itself with
// no limit).
func (m *model) spend(b string, t time.Duration, n int) time.Duration {
	if m.d.BudgetEvictionsPerSecond <= 0 || n <= 0 {
		return t
	}
	m.evictedBy[b] = max(m.evictedBy[b], t) + time.Duration(float64(n)/m.d.BudgetEvictionsPerSecond*float64(time.Second))
	return m.evictedBy[b]
}

func sortedKeys(mp map[string]int) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// advance moves the model to t: disruptions given back, drains done,
// instances gone.
func (m *model) advance(t time.Duration) {
	kept := m.returns[:0]
	for _, r := range m.returns {
		if r.at <= t {
			m.allowed[r.budget]++
		} else {
			kept = append(kept, r)
		}
	}
	m.returns = kept
	m.evict(t)
	for _, i := range m.inst {
		if !i.Draining || t < i.lastGone {
			continue
		}
		done := i.unbudgeted == 0
		for _, n := range i.left {
			done = done && n == 0
		}
		if done {
			i.Draining, i.Cordoned, i.DrainedAt = false, true, m.base.Add(t)
			if i.Old {
				m.ms.Drained = max(m.ms.Drained, t)
			}
		}
	}
	for _, i := range m.inst {
		if i.leaveAt >= 0 && t >= i.leaveAt && !i.gone {
			i.gone = true // the engine sees it at its next look
			// Scaling down, a leaving instance's node going wakes the
			// engine to ask the cloud again at once, not at its poll.
			m.nodeGoneWhileScalingDown = m.nodeGoneWhileScalingDown || m.phase == rollout.PhaseScalingDown
		}
	}
}

// nextEvent is the next time something changes by itself after t.
func (m *model) nextEvent(t time.Duration) (time.Duration, bool) {
	next, ok := time.Duration(1<<62), false
	see := func(at time.Duration) {
		if at > t && at < next {
			next, ok = at, true
		}
	}
	for _, r := range m.returns {
		see(r.at)
	}
	for _, i := range m.inst {
		see(i.launched + m.d.BootReady)
		if i.Draining {
			see(i.lastGone)
		}
		if i.leaveAt >= 0 {
			see(i.leaveAt)
		}
	}
	return next, ok
}

// stuck says nothing will ever change: no event ahead, no instance
// leaving unseen, and every drain held by a budget that allows nothing
// and gets nothing back. It returns the budgets that hold.
func (m *model) stuck(t time.Duration, p rollout.Plan) (bool, []string) {
	if _, ok := m.nextEvent(t); ok || !p.WakeAt.IsZero() || len(p.Actions) > 0 {
		return false, nil
	}
	var holding []string
	for _, i := range m.inst {
		if i.gone != i.seenGone {
			return false, nil
		}
		if !i.Draining {
			continue
		}
		for b, n := range i.left {
			if n > 0 && m.allowed[b] <= 0 {
				holding = append(holding, fmt.Sprintf("budget %s allows no disruption (%d pods on %s to move)", b, n, i.ID))
			}
		}
	}
	sort.Strings(holding)
	return true, holding
}
