package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	corev1 "k8s.io/api/core/v1"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/rollout"
)

// rollState is what this process holds in memory while it applies a
// strategy: only what keeps it from doing a thing twice before the caches
// catch up. Everything a restarted process needs is in the cluster (node
// annotations, the record) or the cloud.
type rollState struct {
	jobs       map[string]*drainJob // drains started by this process, by instance
	results    chan drainResult
	wg         sync.WaitGroup
	tainted    map[string]bool
	terminated map[string]bool      // terminate calls this process made
	noNode     map[string]noNode    // instances without a node: nothing to drain
	leaving    map[string]time.Time // first seen on the way out
	stepped    map[string]bool      // instances whose step this process began
	numbered   map[string]bool      // instances this process numbered in the view
}

type drainJob struct {
	node     string
	finished bool
	// mark and cordonedFirst are what this process wrote on the node as
	// it began the drain. The cache may show them a moment later; until
	// then the strategy must still see the node in flight, or it starts
	// a second drain where the rule is one at a time.
	mark          rollout.Mark
	cordonedFirst time.Time
}

type drainResult struct {
	instance, node string
	err            error
}

func newRollState() *rollState {
	return &rollState{jobs: map[string]*drainJob{}, numbered: map[string]bool{}, results: make(chan drainResult), tainted: map[string]bool{},
		terminated: map[string]bool{}, noNode: map[string]noNode{}, leaving: map[string]time.Time{}, stepped: map[string]bool{}}
}

// roll replaces the old nodes: observe, ask the strategy, apply, wait for
// something to change, again, until the strategy says done. Waits are
// driven by the informers' events, drains ending and the time the strategy
// names, with the cloud described at most once per PollInterval unless
// noderoll itself just changed it.
func (u *upgrade) roll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	rs := newRollState()
	defer func() {
		cancel()
		// Drains cut short leave their nodes marked: a rerun resumes them.
		go func() {
			for range rs.results {
			}
		}()
		rs.wg.Wait()
		close(rs.results)
	}()
	stale, lastRefresh := true, time.Time{}
	var capacity capacityWatch
	var pace leavePace
	lastWaiting, toldSoak, soaking := "", false, false
	for {
		// Checked here too: a plan that acts on every pass never reaches
		// the wait below, and must still end with the run.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replacing nodes: %w", err)
		}
		if stale || u.clock.Since(lastRefresh) >= u.opts.PollInterval {
			if err := u.refresh(ctx); err != nil {
				return err
			}
			stale, lastRefresh = false, u.clock.Now()
		}
		state := u.observe(rs)
		if u.tl != nil {
			u.tl.flush(ctx, u.rec, false)
		}
		plan := u.strategy.Plan(state)
		acted, err := u.applyTaints(ctx, rs, plan.Actions)
		if err != nil {
			return err
		}
		for _, a := range plan.Actions {
			did, cloudCall, err := u.apply(ctx, rs, state, a)
			if err != nil {
				return err
			}
			acted = acted || did
			stale = stale || cloudCall
		}
		if plan.Done {
			return nil
		}
		if w := strings.Join(plan.Waiting, "; "); w != lastWaiting {
			lastWaiting = w
			toldSoak = u.sayWaiting(plan.Waiting, toldSoak)
		}
		soaking = u.trackSoak(plan.Waiting, soaking)
		if err := u.checkLeaving(state, rs); err != nil {
			return err
		}
		if err := u.watchCapacity(ctx, &capacity, state, plan, plan.NeedCapacity && !acted && !rs.busy()); err != nil {
			return err
		}
		if pace.nodeWent(state) {
			stale, acted = true, true
		}
		if acted {
			continue
		}
		wait := u.opts.PollInterval
		if retry, ok := pace.retry(state, wait); ok {
			wait, stale = retry, true
		}
		if !plan.WakeAt.IsZero() {
			wait = min(wait, max(plan.WakeAt.Sub(u.clock.Now()), 0))
		}
		if err := u.waitForChange(ctx, rs, plan, wait); err != nil {
			return err
		}
	}
}

// sayWaiting logs what the plan waits for, and says once what a soak is
// (a long wait by design) and how to cut it short; it returns whether the
// soak was told.
func (u *upgrade) sayWaiting(waiting []string, toldSoak bool) bool {
	u.log.Debug("waiting", "phase", u.rec.Phase, "for", strings.Join(waiting, "; "))
	for _, x := range waiting {
		if strings.HasPrefix(x, "soak:") && !toldSoak {
			toldSoak = true
			// The controller's spec.action reaches the run itself; a CLI's
			// --rollback from another terminal asks this run to stop.
			goBack := u.opts.Terms.Of("rollback") + " goes back meanwhile"
			if goBack == "--rollback goes back meanwhile" {
				goBack = "the same command with --rollback, from another terminal, stops this run and goes back meanwhile"
			}
			u.report.Info(x + " (" + goBack + ")")
		}
	}
	return toldSoak
}

// trackSoak records the blue-green soak as a step of its own, from the
// first plan that waits on it to the first that no longer does (soak over,
// or going back), so that no node's replace step carries it; it returns
// whether the plan waits on the soak.
func (u *upgrade) trackSoak(waiting []string, open bool) bool {
	soak := waitsOnSoak(waiting)
	switch {
	case soak && !open:
		u.startStep("soak")
	case !soak:
		// Also one an earlier run left open: stopped in its soak, then
		// run again to go back.
		u.endStep("soak")
	}
	return soak
}

// waitsOnSoak says whether a plan waits on blue-green's soak (the
// strategy's own words: "soak: ...").
func waitsOnSoak(waiting []string) bool {
	return slices.ContainsFunc(waiting, func(x string) bool { return strings.HasPrefix(x, "soak:") })
}

// capacityWatch is how long the plan has waited for new capacity, and
// what the group's launches said meanwhile.
type capacityWatch struct {
	since     time.Time
	failures  []string
	reported  map[string]bool
	nextCheck time.Time
}

// watchCapacity times a wait for new capacity (waiting says the plan waits
// for it, and nothing else is going on): the group's launch failures are
// told as soon as seen, and the wait fails at NodeReadyTimeout; capacity
// come is told with how long it took.
func (u *upgrade) watchCapacity(ctx context.Context, c *capacityWatch, state rollout.State, plan rollout.Plan, waiting bool) error {
	switch {
	case waiting:
		if c.since.IsZero() {
			c.since = u.clock.Now()
		}
		// Instances that never launch leave their cause only in the
		// group's scaling activities; ask now and then, say it at once.
		if launched(state) < state.Desired && !u.clock.Now().Before(c.nextCheck) {
			c.nextCheck = u.clock.Now().Add(launchFailureCheckEvery)
			if f, err := u.cloud.LaunchFailures(ctx, u.group, c.since); err != nil {
				u.log.Debug("asking for launch failures", "err", err)
			} else {
				c.failures = f
				if c.reported == nil {
					c.reported = map[string]bool{}
				}
				for _, msg := range f {
					if !c.reported[msg] {
						c.reported[msg] = true
						u.report.Warn("", "launch failed, the Auto Scaling group retries: "+msg)
					}
				}
			}
		}
		if u.clock.Since(c.since) >= u.opts.NodeReadyTimeout {
			return &NodeCreationError{After: u.opts.NodeReadyTimeout, Missing: withoutNodes(state, plan.Waiting), LaunchFailures: c.failures, Replaced: len(u.rec.Replaced)}
		}
	case !plan.NeedCapacity && !c.since.IsZero():
		u.report.Info(fmt.Sprintf("new nodes Ready after %s; %d instances in service", u.clock.Since(c.since).Round(time.Second), launched(state)))
		c.since = time.Time{}
	}
	return nil
}

// leavePace paces the looks at the group while it scales down: what is
// left then is terminated instances leaving, so the group is asked again
// as soon as one's node is gone (its instance leaves the group about
// then), and again soon after, backing off to the poll, not only at the
// next poll.
type leavePace struct {
	lastLeavingNodes int
	retryWait        time.Duration
}

// nodeWent says whether, scaling down, a leaving instance's node went
// since the last look: the group is then described again at once.
func (l *leavePace) nodeWent(state rollout.State) bool {
	leavingNodes := 0
	for _, i := range state.Instances {
		if i.Leaving && i.HasNode {
			leavingNodes++
		}
	}
	went := state.Phase == rollout.PhaseScalingDown && leavingNodes < l.lastLeavingNodes
	if went {
		l.retryWait = 100 * time.Millisecond
	}
	l.lastLeavingNodes = leavingNodes
	return went
}

// retry is the next look's wait after a node went, doubling up to the
// poll; false once it reaches the poll (or while not scaling down).
func (l *leavePace) retry(state rollout.State, poll time.Duration) (time.Duration, bool) {
	if state.Phase != rollout.PhaseScalingDown || l.retryWait <= 0 || l.retryWait >= poll {
		return 0, false
	}
	wait := l.retryWait
	l.retryWait *= 2
	return wait, true
}

// waitForChange waits up to wait for a drain to end, an informer's event
// or the run to be stopped; a stopped run says what it waited for and what
// held its drains.
func (u *upgrade) waitForChange(ctx context.Context, rs *rollState, plan rollout.Plan, wait time.Duration) error {
	select {
	case <-ctx.Done():
		// Drains cut short say what held them: that is the news.
		if err := u.collectDrains(rs); err != nil {
			return err
		}
		what := "waiting"
		if len(plan.Waiting) > 0 {
			what = "waiting for " + strings.Join(plan.Waiting, "; ")
		}
		if waitsOnSoak(plan.Waiting) {
			return &StoppedInSoakError{Err: fmt.Errorf("%s: %w", what, ctx.Err())}
		}
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case r := <-rs.results:
		return u.drained(ctx, rs, r)
	case <-u.kick:
	case <-u.clock.After(wait):
	}
	return nil
}

// StoppedInSoakError says a blue-green run was stopped in its soak: its
// old nodes are still there, cordoned, to go back to.
type StoppedInSoakError struct{ Err error }

func (e *StoppedInSoakError) Error() string { return e.Err.Error() }
func (e *StoppedInSoakError) Unwrap() error { return e.Err }

func (rs *rollState) busy() bool {
	for _, j := range rs.jobs {
		if !j.finished {
			return true
		}
	}
	return false
}

func launched(s rollout.State) int {
	n := 0
	for _, i := range s.Instances {
		if i.InService() && i.AZ != "" {
			n++
		}
	}
	return n
}

// checkLeaving bounds the wait for terminated instances to leave the group
// and their nodes the cluster.
func (u *upgrade) checkLeaving(s rollout.State, rs *rollState) error {
	now := u.clock.Now()
	seen := map[string]bool{}
	for _, i := range s.Instances {
		if !i.Leaving {
			continue
		}
		seen[i.ID] = true
		since, ok := rs.leaving[i.ID]
		if !ok {
			rs.leaving[i.ID] = now
			continue
		}
		if now.Sub(since) >= u.opts.NodeGoneTimeout {
			return fmt.Errorf("instance %s was terminated but is still in the group or the cluster after %s", i.ID, u.opts.NodeGoneTimeout)
		}
	}
	for id := range rs.leaving {
		if !seen[id] {
			delete(rs.leaving, id)
		}
	}
	return nil
}

// taintsAtOnce is how many old nodes are tainted at once: a plan taints
// every old node up front, and one after another (a patch and an event
// each) 300 nodes held the first drain 17 s.
const taintsAtOnce = 16

// applyTaints carries out the plan's taints before its other actions, up
// to taintsAtOnce at a time, and reports whether it tainted any.
func (u *upgrade) applyTaints(ctx context.Context, rs *rollState, actions []rollout.Action) (bool, error) {
	var todo []rollout.Action
	for _, a := range actions {
		if a.Kind == rollout.Taint && !rs.tainted[a.Instance] {
			todo = append(todo, a)
		}
	}
	if len(todo) == 0 {
		return false, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(taintsAtOnce)
	done := make([]bool, len(todo))
	for k, a := range todo {
		g.Go(func() error {
			n := u.nodeOf(a.Instance)
			if n == nil {
				return nil
			}
			changed, err := u.taint(gctx, n)
			if err != nil {
				return err
			}
			done[k] = true
			if changed {
				u.report.NodeStep(4, "Taint", n.Name, "", fmt.Sprintf("%s on old node %s", upgradeTaint.ToString(), n.Name))
				u.events.node(gctx, n, corev1.EventTypeNormal, "NoderollTainted", "tainted "+upgradeTaint.ToString()+": replaced by the upgrade to "+describeTarget(u.target))
			}
			return nil
		})
	}
	err := g.Wait()
	tainted := false
	for k, a := range todo {
		if done[k] {
			rs.tainted[a.Instance], tainted = true, true
		}
	}
	return tainted, err
}

// apply carries out one action. It reports whether it did anything (an
// action the caches do not reflect yet is not done twice) and whether it
// changed the cloud, whose description is then stale.
func (u *upgrade) apply(ctx context.Context, rs *rollState, s rollout.State, a rollout.Action) (did, cloudCall bool, err error) {
	switch a.Kind {
	case rollout.Resize:
		maxSize, desired := a.Max, a.Desired
		if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{Max: &maxSize, Desired: &desired}); err != nil {
			return false, false, err
		}
		u.startStep("surge")
		detail := fmt.Sprintf("desired %d -> %d, max %d -> %d", u.group.Desired, desired, u.group.Max, maxSize)
		if u.rec.Strategy == StrategyEKS {
			detail += "; waiting for a Ready node on the new AMI in every AZ"
		} else {
			detail += fmt.Sprintf("; replacing up to %d nodes at once (max surge %d + max unavailable %d) as capacity comes", u.rec.Surge+u.rec.Unavailable, u.rec.Surge, u.rec.Unavailable)
		}
		u.report.Step(3, "Surge", detail)
		return true, true, nil
	case rollout.SetPhase:
		if a.Phase == PhaseReplacing {
			u.endStep("surge")
		}
		if a.Phase == PhaseScalingDown {
			u.report.Step(8, "Replaced", fmt.Sprintf("no node of %s/%s is left on an old AMI", u.rec.Cluster, u.rec.Nodegroup))
		}
		u.rec.Phase = a.Phase
		return true, false, u.save(ctx)
	case rollout.Taint:
		if rs.tainted[a.Instance] {
			return false, false, nil
		}
		n := u.nodeOf(a.Instance)
		if n == nil {
			return false, false, nil
		}
		changed, err := u.taint(ctx, n)
		if err != nil {
			return false, false, err
		}
		rs.tainted[a.Instance] = true
		if changed {
			u.report.NodeStep(4, "Taint", n.Name, "", fmt.Sprintf("%s on old node %s", upgradeTaint.ToString(), n.Name))
			u.events.node(ctx, n, corev1.EventTypeNormal, "NoderollTainted", "tainted "+upgradeTaint.ToString()+": replaced by the upgrade to "+describeTarget(u.target))
		}
		return true, false, nil
	case rollout.Drain:
		return u.startDrain(ctx, rs, s, a)
	case rollout.Terminate:
		if rs.terminated[a.Instance] {
			return false, false, nil
		}
		// The group is described again before the next pass: whether its
		// replacement launches (or fails to) is what the plan must see
		// before it drains another node.
		return true, true, u.terminate(ctx, rs, s, a)
	case rollout.Uncordon:
		n := u.nodeOf(a.Instance)
		if n == nil {
			return false, false, nil
		}
		changed, err := u.uncordon(ctx, n)
		if err != nil || !changed {
			return false, false, err
		}
		u.report.NodeStep(0, "Going back", n.Name, "", fmt.Sprintf("old node %s takes pods again (untainted, uncordoned)", n.Name))
		u.events.node(ctx, n, corev1.EventTypeNormal, "NoderollRestored", "the upgrade went back: this node takes pods again")
		return true, false, nil
	case rollout.Repoint:
		v := u.rec.OriginalTemplateVersion
		if u.group.TemplateVersion == v {
			return false, false, nil
		}
		if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{TemplateVersion: &v}); err != nil {
			return false, false, err
		}
		u.report.Step(0, "Going back", fmt.Sprintf("%s launches launch template version %d again", u.group.ASGName, v))
		return true, true, nil
	case rollout.Restore:
		minSize, maxSize, desired := u.rec.OriginalMin, u.rec.OriginalMax, u.rec.OriginalDesired
		if err := u.cloud.UpdateGroup(ctx, u.group, cloud.GroupUpdate{Min: &minSize, Max: &maxSize, Desired: &desired}); err != nil {
			return false, false, err
		}
		u.endStep("scale back")
		u.report.Step(9, "Sizes restored", fmt.Sprintf("%s back to min %d, max %d, desired %d", u.group.ASGName, minSize, maxSize, desired))
		return true, true, nil
	}
	return false, false, fmt.Errorf("unknown action %v", a)
}

func instanceIn(s rollout.State, id string) rollout.Instance {
	for _, i := range s.Instances {
		if i.ID == id {
			return i
		}
	}
	return rollout.Instance{ID: id}
}

// startDrain marks the node, cordons it first if asked, and drains it in
// the background; drained() takes it from there.
func (u *upgrade) startDrain(ctx context.Context, rs *rollState, s rollout.State, a rollout.Action) (bool, bool, error) {
	if rs.jobs[a.Instance] != nil {
		return false, false, nil
	}
	inst := instanceIn(s, a.Instance)
	removing := a.Mark == rollout.Removing
	verb, step := "Replace", 5
	if removing {
		verb, step = "Remove surplus", 9
		if steps := u.rec.Steps; len(u.rec.Removed) == 0 && u.rec.Phase == PhaseScalingDown && (len(steps) == 0 || steps[len(steps)-1].Name != "scale back") {
			u.startStep("scale back")
			u.report.Step(9, "Scale back", fmt.Sprintf("desired %d -> %d: draining %d surplus nodes, then max %d -> %d",
				u.group.Desired, u.rec.OriginalDesired, u.group.Desired-u.rec.OriginalDesired, u.group.Max, u.rec.OriginalMax))
		}
	}
	k, of := u.progressOf(rs, s, removing)
	rs.numbered[a.Instance] = true
	n := u.nodeOf(a.Instance)
	if !rs.stepped[a.Instance] {
		u.startInstanceStep(strings.ToLower(strings.Fields(verb)[0]), a.Instance)
		rs.stepped[a.Instance] = true
	}
	if n == nil {
		// No node ever registered (or it is gone): nothing to drain, no
		// reason to wait before terminating.
		rs.noNode[a.Instance] = noNode{drained: u.clock.Now().Add(-u.opts.PostCordonWait), mark: a.Mark}
		u.report.NodeStep(step, fmt.Sprintf("%s node %d/%d", verb, k, of), "", a.Instance, fmt.Sprintf("instance %s (%s) has no node: nothing to evict", a.Instance, inst.AZ))
		return true, false, nil
	}
	job := &drainJob{node: n.Name, mark: a.Mark}
	if a.CordonFirst {
		job.cordonedFirst = u.clock.Now().UTC()
		if t, err := time.Parse(time.RFC3339, n.Annotations[annCordonedFirstAt]); err == nil {
			job.cordonedFirst = t // a resumed drain: the wait runs from the first cordon
		}
	}
	if err := u.mark(ctx, n, string(a.Mark), a.CordonFirst); err != nil {
		return false, false, err
	}
	if u.tl != nil {
		u.tl.at(a.Instance, atDraining, a.CordonFirst)
	}
	u.report.NodeStep(step, fmt.Sprintf("%s node %d/%d", verb, k, of), n.Name, a.Instance, fmt.Sprintf("%s (%s, %s): evicting its pods%s", n.Name, inst.AZ, a.Instance, why(a)))
	u.events.node(ctx, n, corev1.EventTypeNormal, "NoderollDraining", "evicting pods: "+strings.ToLower(verb)+" of instance "+a.Instance)
	rs.jobs[a.Instance] = job
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		err := u.drainer.Drain(ctx, n.Name)
		if err == nil {
			err = u.cordonAfterDrain(ctx, a.Instance)
		}
		if err == nil && u.tl != nil {
			u.tl.at(a.Instance, atDrained, true)
		}
		rs.results <- drainResult{instance: a.Instance, node: n.Name, err: err}
	}()
	return true, false, nil
}

func why(a rollout.Action) string {
	if a.Why == "" {
		return ""
	}
	return " (" + a.Why + ")"
}

// progressOf numbers a node among those the run replaces (or removes).
func (u *upgrade) progressOf(rs *rollState, s rollout.State, removing bool) (k, of int) {
	if removing {
		done := len(u.rec.Removed)
		return done + 1, done + max(s.Desired-s.OrigDesired, 1)
	}
	return replaceNumber(u.rec.Replaced, s.Instances, func(id string) bool { return rs.numbered[id] })
}

// replaceNumber is the next drain's number and the run's total: the old
// instances terminated, plus those this process numbered that are not yet,
// plus one; out of those terminated plus the old ones still in service.
// Numbered counts from the moment of numbering, not from the state (observed
// before this round's actions), or every node of a wave would be numbered
// alike; and through the post-cordon wait, when a node's drain is over, or
// the next node would take its number. Nodes a killed run had started count
// only once numbered again, or every resumed drain would get the same
// number; an instance recorded terminated but still listed in service
// counts once. Numbers never repeat; one may be skipped when a node the
// killed run had drained is terminated without being numbered again.
func replaceNumber(replaced []string, instances []rollout.Instance, started func(id string) bool) (k, of int) {
	gone := make(map[string]bool, len(replaced))
	for _, id := range replaced {
		gone[id] = true
	}
	inflight, left := 0, 0
	for _, i := range instances {
		if i.Old && i.InService() && !i.Terminated && !gone[i.ID] {
			left++
			if started(i.ID) {
				inflight++
			}
		}
	}
	return len(gone) + inflight + 1, len(gone) + left
}

// cordonAfterDrain cordons a drained node and records when, which starts
// its post-cordon wait (kept on the node, so a restart waits only the rest).
func (u *upgrade) cordonAfterDrain(ctx context.Context, instance string) error {
	n := u.nodeOf(instance)
	if n == nil {
		return nil
	}
	if err := u.drainer.Cordon(ctx, n); err != nil {
		return err
	}
	_, err := u.cordonedAt(ctx, n)
	return err
}

// drained takes a finished drain: reported, and its node left for the
// strategy to terminate once its post-cordon wait is over.
func (u *upgrade) drained(ctx context.Context, rs *rollState, r drainResult) error {
	if job := rs.jobs[r.instance]; job != nil {
		job.finished = true
	}
	if r.err != nil {
		// Recorded also when the run's own deadline is what ended the drain,
		// but not once the lock is another run's.
		if !lockLost(ctx) {
			u.events.nodeNamed(context.WithoutCancel(ctx), r.node, corev1.EventTypeWarning, "NoderollDrainFailed", r.err.Error())
		}
		return r.err
	}
	// What the drain wrote on its node as it began, from this process's
	// memory where the cache does not show it yet.
	mark, cordonedFirst := rollout.Unmarked, time.Time{}
	if job := rs.jobs[r.instance]; job != nil {
		mark, cordonedFirst = job.mark, job.cordonedFirst
	}
	if n := u.nodeOf(r.instance); n != nil {
		if m := rollout.Mark(n.Annotations[annPhase]); m != rollout.Unmarked {
			mark = m
		}
		if t, err := time.Parse(time.RFC3339, n.Annotations[annCordonedFirstAt]); err == nil {
			cordonedFirst = t
		}
	}
	step := 6
	if mark == rollout.Removing {
		step = 9
	}
	then := fmt.Sprintf("terminating in %s", u.opts.PostCordonWait.Round(time.Second))
	if !cordonedFirst.IsZero() {
		left := max(cordonedFirst.Add(u.opts.PostCordonWait).Sub(u.clock.Now()), 0)
		then = fmt.Sprintf("terminating in %s (the %s post-cordon wait runs from its cordon, before the drain)",
			left.Round(100*time.Millisecond), u.opts.PostCordonWait.Round(time.Second))
	}
	if u.rec.Strategy == StrategyBlueGreen && u.rec.Phase == PhaseReplacing {
		then = fmt.Sprintf("kept until the %s soak after the last old node is drained", time.Duration(u.rec.Soak))
		// Its replace step ends drained: the soak is a step of its own.
		u.endLatestStep(func(st Step) bool { return st.Instance == r.instance })
	}
	u.report.NodeStep(step, "Cordon", r.node, "", fmt.Sprintf("%s drained and cordoned%s; %s", r.node, u.heldFor(r.node), then))
	u.events.nodeNamed(ctx, r.node, corev1.EventTypeNormal, "NoderollCordoned", "all pods evicted; node cordoned")
	return nil
}

// heldFor says how long the node's drain waited on budgets, once: the end
// of the waits the view told as they began ("" when none held it).
func (u *upgrade) heldFor(node string) string {
	u.heldMu.Lock()
	defer u.heldMu.Unlock()
	h, ok := u.held[node]
	if !ok {
		return ""
	}
	delete(u.held, node)
	return " " + h
}

// terminate records the instance, then terminates it through the group: a
// crash between the two can then not under-count, and a termination that
// never happened is done again on resume.
func (u *upgrade) terminate(ctx context.Context, rs *rollState, s rollout.State, a rollout.Action) error {
	inst := instanceIn(s, a.Instance)
	name := a.Instance
	n := u.nodeOf(a.Instance)
	if n != nil {
		name = n.Name
		u.events.node(ctx, n, corev1.EventTypeNormal, "NoderollTerminating", fmt.Sprintf("terminating instance %s through Auto Scaling group %s", a.Instance, u.group.ASGName))
	}
	removing := !inst.Old
	tally := &u.rec.Replaced
	if removing {
		tally = &u.rec.Removed
	}
	if !slices.Contains(*tally, a.Instance) {
		*tally = append(*tally, a.Instance)
	}
	if a.Decrement && !removing && !slices.Contains(u.rec.Decremented, a.Instance) {
		u.rec.Decremented = append(u.rec.Decremented, a.Instance)
	}
	// This run's step on the instance, or the one an earlier run began (a
	// resumed run that finds the node drained goes on to terminate it).
	u.endLatestStep(func(st Step) bool { return st.Instance == a.Instance })
	if err := u.save(ctx); err != nil {
		return err
	}
	if err := u.cloud.TerminateInstance(ctx, a.Instance, a.Decrement); err != nil {
		return err
	}
	if u.tl != nil {
		u.tl.at(a.Instance, atTerminated, false)
	}
	rs.terminated[a.Instance] = true
	how := "without decrementing desired capacity (the group launches a replacement)"
	if a.Decrement {
		how = "decrementing desired capacity"
	}
	step := 7
	if removing {
		step = 9
	}
	node, line := terminateLine(a.Instance, name, how)
	u.report.NodeStep(step, "Terminate", node, a.Instance, line)
	return nil
}

// terminateLine says an instance's termination, naming its node (name is
// the instance's own ID when it never had one: a launch cut short).
func terminateLine(instance, name, how string) (node, line string) {
	if name == instance {
		return "", instance + " (no node) " + how
	}
	return name, fmt.Sprintf("%s (%s) %s", instance, name, how)
}

// collectDrains waits for the drains in flight, which end once the run's
// context does, and returns their errors as one.
func (u *upgrade) collectDrains(rs *rollState) error {
	var errs drainErrors
	running := 0
	for _, job := range rs.jobs {
		if !job.finished {
			running++
		}
	}
	for range running {
		r := <-rs.results
		if j := rs.jobs[r.instance]; j != nil {
			j.finished = true
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errs
}

// drainErrors are the causes of several drains cut short at once, each
// said once and each found by errors.Is and errors.As.
type drainErrors []error

func (d drainErrors) Error() string {
	var msgs []string
	for _, err := range d {
		if m := err.Error(); !slices.Contains(msgs, m) {
			msgs = append(msgs, m)
		}
	}
	return strings.Join(msgs, "; ")
}

func (d drainErrors) Unwrap() []error { return d }

// withoutNodes adds to what the plan waits for the new instances in service
// that have no Ready node: a strategy waiting on its capacity floor says
// so, and the instance to look at (a broken bootstrap) must be named too.
func withoutNodes(s rollout.State, waiting []string) []string {
	out := slices.Clone(waiting)
	for _, i := range s.Instances {
		if i.Old || !i.InService() || (i.HasNode && i.Ready) {
			continue
		}
		msg := fmt.Sprintf("instance %s (%s) has no Ready node", i.ID, i.AZ)
		if !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// noNode is an instance taken out without a node to drain (none ever
// registered, or it was deleted): it counts as drained, and in flight with
// the mark its drain was given, until it is terminated.
type noNode struct {
	drained time.Time
	mark    rollout.Mark
}
