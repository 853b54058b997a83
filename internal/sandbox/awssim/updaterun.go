package awssim

import (
	"context"
	"sync"
	"time"
)

// updateRun is one EKS update of a managed node group being played, phase
// by phase (runUpdate): new nodes in every zone, old nodes tainted, then
// replaced a batch at a time, the surplus scaled back, the terminated
// instances gone.
type updateRun struct {
	a     *Account
	ctx   context.Context
	u     *Update
	ops   NodeOps
	group string
	image string // the AMI the update moves the group to
	t     ManagedTimings
}

// fail ends the update Failed with EKS's error.
func (r *updateRun) fail(code, msg string, ids ...string) {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	r.u.Status = "Failed"
	r.u.Errors = append(r.u.Errors, UpdateError{Code: code, Message: msg, ResourceIDs: ids})
}

// sleep waits, false when the update is cut short meanwhile.
func (r *updateRun) sleep(d time.Duration) bool {
	select {
	case <-r.ctx.Done():
		return false
	case <-r.a.clock.After(d):
		return true
	}
}

// settled: every instance of the group in service is registered and
// Ready, and, when needZones, each zone has one of the new version.
func (r *updateRun) settled(needZones bool) (bool, error) {
	a := r.a
	a.mu.Lock()
	g := a.groups[r.group]
	var names []string
	zones := map[string]bool{}
	active := 0
	for _, i := range a.groupInstances(r.group) {
		if i.Lifecycle != LifecyclePending && i.Lifecycle != LifecycleInService {
			continue
		}
		active++
		if i.Lifecycle != LifecycleInService || !i.Registered {
			a.mu.Unlock()
			return false, nil
		}
		names = append(names, i.NodeName(a.Region))
		if i.ImageID == r.image {
			zones[i.AZ] = true
		}
	}
	want, azs := g.Desired, len(g.AZs)
	a.mu.Unlock()
	if active < want || (needZones && len(zones) < azs) {
		return false, nil
	}
	for _, n := range names {
		if ok, err := r.ops.NodeReady(r.ctx, n); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// waitSettled waits until settled, failing the update as EKS does when
// nodes do not join in time.
func (r *updateRun) waitSettled(needZones bool) bool {
	deadline := r.a.clock.Now().Add(r.t.NodeReady)
	for {
		if ok, _ := r.settled(needZones); ok {
			return true
		}
		if r.a.clock.Now().After(deadline) {
			r.fail("NodeCreationFailure", "Instances failed to join the kubernetes cluster")
			return false
		}
		if !r.sleep(250 * time.Millisecond) {
			return false
		}
	}
}

// old lists the group's instances in service on another AMI.
func (r *updateRun) old() []*Instance {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	var out []*Instance
	for _, i := range r.a.groupInstances(r.group) {
		if i.Lifecycle == LifecycleInService && i.ImageID != r.image {
			out = append(out, i)
		}
	}
	return out
}

// taintOld keeps pods off the old nodes.
func (r *updateRun) taintOld() bool {
	for _, i := range r.old() {
		if err := r.ops.TaintNode(r.ctx, i.NodeName(r.a.Region)); err != nil {
			r.fail("InternalFailure", "tainting node "+i.NodeName(r.a.Region)+": "+err.Error())
			return false
		}
	}
	return true
}

// replaceOld replaces the old nodes: up to the group's maxUnavailable at
// once, picked at random, each drained (evict, cordon), then after the
// wait terminated through the group; then their replacements awaited.
func (r *updateRun) replaceOld() bool {
	a := r.a
	for {
		left := r.old()
		if len(left) == 0 {
			return true
		}
		a.mu.Lock()
		a.rng.Shuffle(len(left), func(i, j int) { left[i], left[j] = left[j], left[i] })
		a.mu.Unlock()
		batch := left[:min(len(left), max(r.u.unavailable, 1))]
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for k, victim := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = r.ops.DrainNode(r.ctx, victim.NodeName(a.Region), r.t.EvictionTimeout)
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil && !r.u.force {
				r.fail("PodEvictionFailure", "Reached max retries while trying to evict pods from nodes in node group "+r.u.Nodegroup+": "+err.Error(), batch[k].ID)
				return false
			}
		}
		if !r.sleep(r.t.PostCordon) {
			return false
		}
		a.mu.Lock()
		for _, victim := range batch {
			if victim.Lifecycle == LifecycleInService {
				a.terminate(victim, a.clock.Now(), "an instance was taken out of service in response to a user request")
			}
		}
		a.mu.Unlock()
		if !r.waitSettled(false) {
			return false
		}
	}
}

// scaleBack removes the surge, one node at a time: the group's lifecycle
// hook drains each surplus node before it goes, lowering desired capacity.
func (r *updateRun) scaleBack() bool {
	a := r.a
	for k := 0; k < r.u.surge; k++ {
		a.mu.Lock()
		var surplus *Instance
		perAZ := map[string]int{}
		for _, i := range a.groupInstances(r.group) {
			if i.Lifecycle == LifecycleInService {
				perAZ[i.AZ]++
			}
		}
		for _, i := range a.groupInstances(r.group) {
			if i.Lifecycle == LifecycleInService && (surplus == nil || perAZ[i.AZ] > perAZ[surplus.AZ]) {
				surplus = i
			}
		}
		a.mu.Unlock()
		if surplus == nil {
			return true
		}
		// Kept from taking pods back first (the group's lifecycle hook
		// cordons it), or evicted pods could land on it again and be lost
		// with it.
		name := surplus.NodeName(a.Region)
		if err := r.ops.TaintNode(r.ctx, name); err != nil {
			r.fail("InternalFailure", "tainting node "+name+": "+err.Error())
			return false
		}
		if err := r.ops.DrainNode(r.ctx, name, r.t.EvictionTimeout); err != nil && !r.u.force {
			r.fail("PodEvictionFailure", "Reached max retries while trying to evict pods from nodes in node group "+r.u.Nodegroup+": "+err.Error(), surplus.ID)
			return false
		}
		a.mu.Lock()
		if g := a.groups[r.group]; g != nil && surplus.Lifecycle == LifecycleInService {
			a.terminate(surplus, a.clock.Now(), "an instance was taken out of service in response to a user request, shrinking the capacity")
			g.Desired--
		}
		a.mu.Unlock()
	}
	return true
}

// waitGone: the update ends once the instances it terminated are gone
// (or NodeReady has passed).
func (r *updateRun) waitGone() bool {
	a := r.a
	for deadline := a.clock.Now().Add(r.t.NodeReady); ; {
		a.mu.Lock()
		leaving := 0
		for _, i := range a.groupInstances(r.group) {
			if i.Lifecycle == LifecycleTerminating {
				leaving++
			}
		}
		a.mu.Unlock()
		if leaving == 0 || a.clock.Now().After(deadline) {
			return true
		}
		if !r.sleep(250 * time.Millisecond) {
			return false
		}
	}
}

// succeed gives the group its max back and ends the update Successful.
func (r *updateRun) succeed() {
	a := r.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if g := a.groups[r.group]; g != nil {
		g.Max -= r.u.surge
	}
	r.u.Status = "Successful"
	a.poke()
}
