package awssim

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// NodeSpec is what a booted instance registers with the cluster, as a kubelet
// on an EKS node would.
type NodeSpec struct {
	Name, InstanceID, AZ, Region, InstanceType, ImageID string
	KubeletVersion, OSImage, Nodegroup, Cluster         string
	CapacityType                                        string
	Labels                                              map[string]string
}

// ProviderID is the node's spec.providerID as the AWS cloud provider sets it.
func (n NodeSpec) ProviderID() string { return "aws:///" + n.AZ + "/" + n.InstanceID }

// Registrar connects instances to the cluster: the sandbox implements it with
// kwok-managed Nodes. Both methods must be idempotent: they are retried.
type Registrar interface {
	Register(ctx context.Context, n NodeSpec) error
	Deregister(ctx context.Context, nodeName string) error
}

// launchRetry is how long a group waits after a failed launch, as ASGs back off.
const launchRetry = 5 * time.Second

// Run drives instance lifecycles until ctx ends: groups converge on their
// desired capacity, pending instances boot and register, terminating ones
// deregister and end. reg may be nil when no cluster is attached.
func (a *Account) Run(ctx context.Context, reg Registrar, log *slog.Logger) {
	a.mu.Lock()
	a.runCtx = ctx
	a.ops, _ = reg.(NodeOps)
	a.mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		a.Step(ctx, reg, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.changed:
		}
	}
}

type pendingCall struct {
	inst     *Instance
	spec     NodeSpec
	register bool
}

// Step runs one pass of the lifecycle. Calls to reg happen outside the lock so
// the API stays responsive while the cluster is slow.
func (a *Account) Step(ctx context.Context, reg Registrar, log *slog.Logger) {
	a.mu.Lock()
	now := a.clock.Now()
	names := make([]string, 0, len(a.groups))
	for n := range a.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a.converge(a.groups[n], now)
	}
	var calls []pendingCall
	for _, i := range a.instances {
		switch {
		case i.State == StatePending && now.Sub(i.Launched) >= a.delays.Boot+a.slow:
			if a.badBoots > 0 && !i.NoKubelet {
				a.badBoots--
				i.NoKubelet = true
			}
			if i.NoKubelet {
				// Running and healthy to EC2 and the group; no node ever.
				i.State, i.StateChanged = StateRunning, now
				if i.Lifecycle == LifecyclePending {
					i.Lifecycle = LifecycleInService
				}
				a.endActivity(i.ID, "Launching", now)
				continue
			}
			calls = append(calls, pendingCall{inst: i, spec: a.nodeSpec(i), register: true})
		case i.State == StateShuttingDown && now.Sub(i.StateChanged) >= a.delays.Shutdown+a.slow:
			calls = append(calls, pendingCall{inst: i, spec: NodeSpec{Name: i.NodeName(a.Region)}})
		}
	}
	a.mu.Unlock()

	// EC2 boots instances side by side: the node calls go out in parallel
	// (bounded), or a wave of hundreds would queue behind one another and
	// the sandbox, not the orchestrator, would set the pace. Step waits for
	// them all, so no instance is ever in two calls at once.
	var wg sync.WaitGroup
	slots := make(chan struct{}, registrarParallelism)
	for _, c := range calls {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			var err error
			if reg != nil {
				if c.register {
					err = reg.Register(ctx, c.spec)
				} else {
					err = reg.Deregister(ctx, c.spec.Name)
				}
			}
			if err != nil {
				if log != nil && ctx.Err() == nil {
					log.Warn("node registration call failed; will retry", "instance", c.inst.ID, "err", err)
				}
				return
			}
			a.mu.Lock()
			a.finish(c.inst, c.register, a.clock.Now())
			a.mu.Unlock()
		}()
	}
	wg.Wait()
}

// registrarParallelism bounds the node calls in flight at once.
const registrarParallelism = 16

// SlowScaling makes every launch and termination take d longer, their
// scaling activities staying InProgress meanwhile, as a group's lifecycle
// hooks or a slow EC2 make them; 0 ends it. Instances already on their way
// take the new pace too.
func (a *Account) SlowScaling(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slow = max(d, 0)
}

// BadBoots makes the next count instances boot without their kubelet ever
// joining the cluster; 0 ends it.
func (a *Account) BadBoots(count int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.badBoots = count
}

// KillInstance ends a running instance as a hardware failure or EC2 does:
// not through its group, which finds it unhealthy, takes it out and launches
// another. Its node goes with it, pods and all.
func (a *Account) KillInstance(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.instances[id]
	if !ok || i.State == StateTerminated || i.State == StateShuttingDown {
		return fmt.Errorf("no running instance %s", id)
	}
	a.terminate(i, a.clock.Now(), "an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped")
	return nil
}

// finish moves an instance on once its node call succeeded; callers hold mu.
func (a *Account) finish(i *Instance, registered bool, now time.Time) {
	if registered {
		if i.State != StatePending {
			return // terminated while booting: the shutdown path owns it now
		}
		i.State, i.StateChanged, i.Registered = StateRunning, now, true
		if i.Lifecycle == LifecyclePending {
			i.Lifecycle = LifecycleInService
		}
		a.endActivity(i.ID, "Launching", now)
		return
	}
	if i.State != StateShuttingDown {
		return
	}
	i.State, i.StateChanged, i.Registered, i.Lifecycle = StateTerminated, now, false, ""
	a.endActivity(i.ID, "Terminating", now)
}

func (a *Account) endActivity(instanceID, verb string, now time.Time) {
	for _, act := range a.activities {
		if act.instanceID == instanceID && act.Status == "InProgress" && len(act.Description) >= len(verb) && act.Description[:len(verb)] == verb {
			act.Status, act.End, act.Progress = "Successful", now, 100
		}
	}
}

func (a *Account) nodeSpec(i *Instance) NodeSpec {
	img := a.images[i.ImageID]
	spec := NodeSpec{
		Name: i.NodeName(a.Region), InstanceID: i.ID, AZ: i.AZ, Region: a.Region,
		InstanceType: i.InstanceType, ImageID: i.ImageID, CapacityType: "ON_DEMAND",
		Labels: map[string]string{},
	}
	if img != nil {
		spec.KubeletVersion = img.KubeletVersion
		spec.OSImage = "Amazon Linux 2023.9.20261110"
		switch img.Family {
		case "bottlerocket":
			spec.OSImage = "Bottlerocket OS 1.50.0 (aws-k8s-" + img.KubeMinor + ")"
		case "windows":
			spec.OSImage = "Windows Server 2022 Datacenter"
		}
	}
	// Labels as EKS and eksctl put them: managed groups carry the
	// eks.amazonaws.com ones, self-managed ones only eksctl's.
	if ng := a.nodegroupFor(i.Group); ng != nil {
		spec.Nodegroup, spec.Cluster, spec.CapacityType = ng.Name, ng.Cluster, ng.CapacityType
		for k, v := range ng.Labels {
			spec.Labels[k] = v
		}
		spec.Labels["eks.amazonaws.com/nodegroup"] = ng.Name
		spec.Labels["eks.amazonaws.com/nodegroup-image"] = i.ImageID
		spec.Labels["eks.amazonaws.com/capacityType"] = ng.CapacityType
	}
	for _, t := range i.Tags {
		switch t.Key {
		case "eks:cluster-name":
			spec.Cluster = t.Value
			spec.Labels["alpha.eksctl.io/cluster-name"] = t.Value
		case "alpha.eksctl.io/nodegroup-name":
			spec.Labels["alpha.eksctl.io/nodegroup-name"] = t.Value
		}
	}
	return spec
}

// converge launches or retires instances so the group holds Desired active
// ones; callers hold mu.
func (a *Account) converge(g *Group, now time.Time) {
	var active []*Instance
	for _, i := range a.groupInstances(g.Name) {
		if i.Lifecycle == LifecyclePending || i.Lifecycle == LifecycleInService {
			active = append(active, i)
		}
	}
	switch {
	case len(active) < g.Desired && !g.Suspended["Launch"] && !now.Before(g.retryAt):
		for n := len(active); n < g.Desired; n++ {
			if !a.launch(g, now) {
				g.retryAt = now.Add(launchRetry)
				return
			}
		}
	case len(active) > g.Desired && !g.Suspended["Terminate"]:
		for _, victim := range a.pickVictims(g, active, len(active)-g.Desired) {
			a.terminate(victim, now, fmt.Sprintf("an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d", len(active), g.Desired))
		}
	}
}

// launch starts one instance in the AZ that holds the fewest of the group's,
// skipping AZs without capacity, as an ASG balances; callers hold mu.
func (a *Account) launch(g *Group, now time.Time) bool {
	perAZ := map[string]int{}
	for _, i := range a.groupInstances(g.Name) {
		if i.Lifecycle != LifecycleTerminating {
			perAZ[i.AZ]++
		}
	}
	lt := a.findTemplate(g.Template.ID, g.Template.Name)
	act := &Activity{
		ID: a.uuid(), Group: g.Name, Start: now,
		Cause: fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity to %d.", now.UTC().Format(time.RFC3339), g.Desired),
	}
	fail := func(msg string) bool {
		act.Description, act.Status, act.Message, act.End = "Launching a new EC2 instance.  Status Reason: "+msg, "Failed", msg, now
		a.activities = append(a.activities, act)
		return false
	}
	if g.LaunchConfiguration != "" {
		return fail("The sandbox does not launch from launch configurations. Launching EC2 instance failed.")
	}
	if lt == nil {
		return fail("The specified launch template does not exist. Launching EC2 instance failed.")
	}
	ver, ok := lt.resolve(g.Template.Version)
	if !ok {
		return fail(fmt.Sprintf("The specified launch template version %q does not exist. Launching EC2 instance failed.", g.Template.Version))
	}
	if _, ok := a.images[ver.Data.ImageID]; !ok {
		return fail(fmt.Sprintf("The image id '[%s]' does not exist. Launching EC2 instance failed.", ver.Data.ImageID))
	}
	az := ""
	for _, cand := range g.AZs {
		if left, limited := a.capacity[cand]; limited && left <= 0 {
			continue
		}
		if az == "" || perAZ[cand] < perAZ[az] {
			az = cand
		}
	}
	if az == "" {
		// Worded as a launch-template group reports EC2's error code.
		return fail(fmt.Sprintf("Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient %s capacity in the Availability Zones you requested (%s). Our system will be working on provisioning additional capacity. Launching EC2 instance failed.", ver.Data.InstanceType, strings.Join(g.AZs, ", ")))
	}
	spot := false
	if ng := a.nodegroupFor(g.Name); ng != nil {
		spot = ng.CapacityType == "SPOT"
	}
	instanceType := ver.Data.InstanceType
	if g.Mixed != nil && len(g.Mixed.InstanceTypes) > 0 {
		// The overrides in turn, as a prioritized strategy spreads launches.
		instanceType = g.Mixed.InstanceTypes[g.Mixed.launchesStarted%len(g.Mixed.InstanceTypes)]
	}
	if code := quotaOf(instanceType, spot); code != "" {
		if limit := a.quotas[code]; float64(a.vcpusInUse(code)+instanceVCPUs[instanceType]) > limit {
			kind := "On-Demand"
			if spot {
				kind = "Spot"
			}
			return fail(fmt.Sprintf("Could not launch %s Instances. VcpuLimitExceeded - You have requested more vCPU capacity than your current vCPU limit of %g allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. Launching EC2 instance failed.", kind, limit))
		}
	}
	if _, limited := a.capacity[az]; limited {
		a.capacity[az]--
	}
	azIdx := 0
	for k, cand := range g.AZs {
		if cand == az {
			azIdx = k
		}
	}
	if g.Mixed != nil && len(g.Mixed.InstanceTypes) > 0 {
		g.Mixed.launchesStarted++
	}
	inst := &Instance{
		ID: a.nextID("i-0", 16), ImageID: ver.Data.ImageID, InstanceType: instanceType,
		AZ: az, PrivateIP: a.freeIP(azIdx),
		State: StatePending, Lifecycle: LifecyclePending, Group: g.Name, Spot: spot,
		Template: TemplateRef{ID: lt.ID, Name: lt.Name, Version: fmt.Sprint(ver.Number)},
		Launched: now, StateChanged: now,
	}
	inst.Tags = append([]Tag{
		{"aws:autoscaling:groupName", g.Name},
		{"aws:ec2launchtemplate:id", lt.ID},
		{"aws:ec2launchtemplate:version", fmt.Sprint(ver.Number)},
	}, ver.Data.InstanceTags...)
	for _, t := range g.Tags {
		inst.Tags = append(inst.Tags, t)
	}
	a.instances[inst.ID] = inst
	act.Description, act.Status, act.Progress, act.instanceID = "Launching a new EC2 instance: "+inst.ID, "InProgress", 30, inst.ID
	a.activities = append(a.activities, act)
	return true
}

// pickVictims follows the Default termination policy: the AZ with the most
// instances, then instances from an older launch template version, then the
// oldest; callers hold mu.
func (a *Account) pickVictims(g *Group, active []*Instance, n int) []*Instance {
	pool := append([]*Instance(nil), active...)
	var out []*Instance
	for ; n > 0 && len(pool) > 0; n-- {
		perAZ := map[string]int{}
		for _, i := range pool {
			perAZ[i.AZ]++
		}
		current := ""
		if lt := a.findTemplate(g.Template.ID, g.Template.Name); lt != nil {
			if v, ok := lt.resolve(g.Template.Version); ok {
				current = fmt.Sprint(v.Number)
			}
		}
		sort.SliceStable(pool, func(x, y int) bool {
			px, py := pool[x], pool[y]
			if perAZ[px.AZ] != perAZ[py.AZ] {
				return perAZ[px.AZ] > perAZ[py.AZ]
			}
			ox, oy := px.Template.Version != current, py.Template.Version != current
			if ox != oy {
				return ox
			}
			return px.Launched.Before(py.Launched)
		})
		out = append(out, pool[0])
		pool = pool[1:]
	}
	return out
}

// terminate starts shutting an instance down and records why; callers hold mu.
func (a *Account) terminate(i *Instance, now time.Time, cause string) {
	i.Lifecycle, i.State, i.StateChanged = LifecycleTerminating, StateShuttingDown, now
	a.activities = append(a.activities, &Activity{
		ID: a.uuid(), Group: i.Group, Start: now,
		Description: "Terminating EC2 instance: " + i.ID, Status: "InProgress", Progress: 50,
		Cause: fmt.Sprintf("At %s %s.", now.UTC().Format(time.RFC3339), cause), instanceID: i.ID,
	})
	a.poke()
}

// freeIP returns an address of the AZ's /19 (192.168.32k.0/19) that no
// instance holds, from a counter per AZ: the node's name is made of it, so
// two instances sharing one would share a Node, and the second would never
// get its own. Callers hold mu.
func (a *Account) freeIP(azIdx int) string {
	if a.ipSeq == nil {
		a.ipSeq = map[int]int{}
	}
	used := map[string]bool{}
	for _, i := range a.instances {
		if i.State != StateTerminated {
			used[i.PrivateIP] = true
		}
	}
	for range 32 * 250 {
		n := a.ipSeq[azIdx]
		a.ipSeq[azIdx] = (n + 1) % (32 * 250)
		ip := fmt.Sprintf("192.168.%d.%d", azIdx*32+n/250, n%250+4)
		if !used[ip] {
			return ip
		}
	}
	// 8000 instances in one AZ: past what the sandbox is for.
	panic(fmt.Sprintf("awssim: no free address left in AZ %d", azIdx))
}
