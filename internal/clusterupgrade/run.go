package clusterupgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/clusterplan"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
)

// Runner upgrades a cluster's groups, wave by wave.
type Runner struct {
	Kube  kubernetes.Interface
	Cloud cloud.Provider
	// Plan plans the cluster when a new upgrade starts (not on a resume:
	// the record has the plan it froze).
	Plan func(ctx context.Context) (*clusterplan.Plan, error)
	// Upgrade runs one group's upgrade to a target to its end.
	Upgrade func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) error
	Clock   clock.Clock
	// Tell says what the upgrade does; group is "" for the cluster's own
	// news. Called from several groups' runs at once.
	Tell   func(group, msg string)
	Soak   time.Duration // after each wave, for a new upgrade
	Health Health
	// View is the cluster's caches the waves drain through and the soak
	// reads (started by the caller).
	View *engine.ClusterView
	// PollEvery is how often a soak looks at the groups' health (default 2s).
	PollEvery time.Duration
}

// HaltedError says a soak saw the upgraded groups regress.
type HaltedError struct {
	Wave   string // "the canary", "wave 1"...
	Groups []string
	Seen   []string
}

func (e *HaltedError) Error() string {
	return fmt.Sprintf("halted in the soak after %s (%s): %s; no later wave was started. Fix what is wrong (or take a group back: noderoll upgrade nodegroup --abort --name=GROUP), then rerun to go on",
		e.Wave, strings.Join(e.Groups, ", "), strings.Join(e.Seen, "; "))
}

// Run starts the cluster's upgrade, or resumes the one its record keeps.
func (r *Runner) Run(ctx context.Context, cluster string) (*Record, error) {
	if r.PollEvery <= 0 {
		r.PollEvery = 2 * time.Second
	}
	// One upgrade of a cluster at a time: a second run would resume the
	// same record and race the first for its groups.
	ctx, release, err := r.lock(ctx, cluster)
	if err != nil {
		return nil, err
	}
	defer release()
	st := &store{kube: r.Kube, cluster: cluster}
	rec, err := st.load(ctx)
	if err != nil {
		return nil, err
	}
	if rec.Active() {
		r.Tell("", fmt.Sprintf("resuming the upgrade of cluster %s begun %s (phase %s, %d of %d waves done), to the AMIs frozen then, with its waves and soak as it began (--canary, --max-concurrent-groups and --soak apply to the next upgrade)",
			cluster, rec.Started.Local().Format(time.DateTime), rec.Phase, rec.Done, len(rec.Waves)))
	} else {
		if rec, err = r.start(ctx, cluster); err != nil || rec == nil {
			return nil, err
		}
		if err := st.save(ctx, rec); err != nil {
			return nil, err
		}
	}
	soak, err := time.ParseDuration(rec.Soak)
	if err != nil {
		soak = r.Soak
	}
	rec.Phase, rec.Message = PhaseRunning, ""
	for k := rec.Done; k < len(rec.Waves); k++ {
		w := rec.Waves[k]
		if err := r.wave(ctx, rec, k); err != nil {
			return rec, r.stop(ctx, st, rec, PhaseFailed, err)
		}
		name := waveName(rec, k)
		if soak > 0 {
			r.Tell("", fmt.Sprintf("%s (%s) upgraded; soaking %s, watching their nodes and the pods on them", name, strings.Join(w.Groups, ", "), soak))
			if err := r.soak(ctx, rec, k, soak); err != nil {
				phase := PhaseFailed
				var halted *HaltedError
				if errors.As(err, &halted) {
					phase = PhaseHalted
				}
				return rec, r.stop(ctx, st, rec, phase, err)
			}
		}
		rec.Done = k + 1
		rec.Updated = r.Clock.Now().UTC()
		if err := st.save(ctx, rec); err != nil {
			return rec, err
		}
		r.Tell("", fmt.Sprintf("%s done: %s on the target%s", name, strings.Join(w.Groups, ", "), map[bool]string{true: ", healthy through the soak", false: ""}[soak > 0]))
	}
	rec.Phase, rec.Updated = PhaseCompleted, r.Clock.Now().UTC()
	if err := st.save(ctx, rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// lock holds the cluster upgrade's Lease (beside its record) for the run,
// as each group's run holds its own.
func (r *Runner) lock(ctx context.Context, cluster string) (context.Context, func(), error) {
	held, err := grouplock.Acquire(ctx, r.Kube, recordName(cluster), "cluster "+cluster, map[string]string{"app.kubernetes.io/managed-by": "noderoll"},
		grouplock.Options{Namespace: engine.Namespace, Clock: r.Clock})
	var busy *grouplock.HeldError
	if errors.As(err, &busy) {
		return nil, nil, fmt.Errorf("cluster %s is being upgraded by %s (lease %s, since %s): wait for that run to finish or stop it, then rerun to go on from its record; "+
			"if its process died, the lock is taken over %s after its last renewal (at once on the same host)", cluster, busy.Holder, busy.Lease, busy.Since.UTC().Format(time.RFC3339), busy.Expires)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("locking the upgrade of cluster %s: %w", cluster, err)
	}
	guarded, cancel := held.Guard(ctx)
	return guarded, func() {
		cancel()
		held.Release()
	}, nil
}

// start plans a new upgrade and freezes its targets; nil when no group is
// behind.
func (r *Runner) start(ctx context.Context, cluster string) (*Record, error) {
	plan, err := r.Plan(ctx)
	if err != nil {
		return nil, err
	}
	if len(plan.Waves) == 0 {
		r.Tell("", fmt.Sprintf("cluster %s: all %d node groups run the newest recommended AMIs of Kubernetes %s; nothing was changed", cluster, len(plan.Groups), plan.KubernetesVersion))
		return nil, nil
	}
	if len(plan.Blocked) > 0 {
		return nil, fmt.Errorf("the upgrades of %s would not end (noderoll plan cluster --cluster=%s says why); nothing was changed", strings.Join(plan.Blocked, ", "), cluster)
	}
	now := r.Clock.Now().UTC()
	rec := &Record{Cluster: cluster, Minor: plan.KubernetesVersion, Started: now, Updated: now, Targets: map[string]Target{}, Soak: plan.Soak.String(), Phase: PhaseRunning}
	for _, g := range plan.Groups {
		if !g.UpToDate {
			rec.Targets[g.Name] = Target{ImageID: g.Target.ID, ImageName: g.Target.Name}
		}
	}
	var order []string
	for k, w := range plan.Waves {
		rec.Waves = append(rec.Waves, Wave{Canary: w.Canary, Groups: w.Groups})
		order = append(order, fmt.Sprintf("%s: %s", waveName(rec, k), strings.Join(w.Groups, ", ")))
	}
	r.Tell("", fmt.Sprintf("cluster %s: %d node groups to Kubernetes %s, targets frozen now (a release published meanwhile waits for the next run); %s; a %s soak after each",
		cluster, len(rec.Targets), rec.Minor, strings.Join(order, "; "), plan.Soak))
	return rec, nil
}

// wave upgrades a wave's groups at once and waits for all of them; any
// failure fails the wave, after the others ended.
func (r *Runner) wave(ctx context.Context, rec *Record, k int) error {
	w := rec.Waves[k]
	r.Tell("", fmt.Sprintf("%s: upgrading %s", waveName(rec, k), strings.Join(w.Groups, ", ")))
	errs := make([]error, len(w.Groups))
	var wg sync.WaitGroup
	for i, g := range w.Groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := rec.Targets[g]
			if err := r.Upgrade(ctx, cloud.NodeGroupRef{Cluster: rec.Cluster, Name: g}, engine.TargetSpec{AMI: t.ImageID}); err != nil {
				errs[i] = fmt.Errorf("%s: %w", g, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		next := "Once that is fixed, the same command resumes from here"
		if asked := new(grouplock.AskedError); errors.As(err, &asked) {
			// Taken on purpose (an abort, a rollback): a rerun would
			// upgrade that group again, to the frozen target.
			next = "The same command resumes from here, and upgrades again a group another run took back"
		}
		return fmt.Errorf("%s failed, so no later wave starts: %w. %s", waveName(rec, k), err, next)
	}
	return nil
}

// soak watches the wave's groups for the soak's length: their nodes and
// the pods on them, against r.Health, read from the view's informers (not
// requests a node every look); which nodes are the groups' the cloud says,
// asked again every membershipEvery.
func (r *Runner) soak(ctx context.Context, rec *Record, k int, d time.Duration) error {
	w := rec.Waves[k]
	var err error
	baseline := map[string]int32{}
	end := r.Clock.Now().Add(d)
	var names []string
	var asked time.Time
	first := true
	for {
		if names == nil || r.Clock.Since(asked) >= membershipEvery {
			if names, err = r.members(ctx, rec.Cluster, w.Groups); err != nil {
				return err
			}
			asked = r.Clock.Now()
		}
		nodes, pods, err := r.View.Look(ctx, names)
		if err != nil {
			return fmt.Errorf("soaking %s: %w", waveName(rec, k), err)
		}
		if first {
			for k := range pods {
				baseline[string(pods[k].UID)] = restarts(&pods[k])
			}
			first = false
		}
		if seen := r.Health.Judge(r.Clock.Now(), nodes, pods, baseline); len(seen) > 0 {
			return &HaltedError{Wave: waveName(rec, k), Groups: w.Groups, Seen: seen}
		}
		if !r.Clock.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("soaking %s: %w", waveName(rec, k), ctx.Err())
		case <-r.Clock.After(min(r.PollEvery, end.Sub(r.Clock.Now()))):
		}
	}
}

// membershipEvery is how often a soak asks the cloud which nodes are the
// groups': instances come and go rarely once a wave is done.
const membershipEvery = 15 * time.Second

// members are the nodes of the groups' instances in service.
func (r *Runner) members(ctx context.Context, cluster string, groups []string) ([]string, error) {
	names := []string{}
	for _, g := range groups {
		ng, err := r.Cloud.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: cluster, Name: g})
		if err != nil {
			return nil, err
		}
		for _, i := range ng.Instances {
			if i.NodeName != "" && !i.Terminating() {
				names = append(names, i.NodeName)
			}
		}
	}
	return names, nil
}

// stop records why the upgrade stopped, and returns it.
func (r *Runner) stop(ctx context.Context, st *store, rec *Record, phase string, cause error) error {
	rec.Phase, rec.Message, rec.Updated = phase, cause.Error(), r.Clock.Now().UTC()
	if err := st.save(context.WithoutCancel(ctx), rec); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// waveName is "the canary", "wave 1", ...
func waveName(rec *Record, k int) string {
	switch {
	case rec.Waves[k].Canary:
		return "the canary"
	case slices.ContainsFunc(rec.Waves[:1], func(w Wave) bool { return w.Canary }):
		return fmt.Sprintf("wave %d", k)
	}
	return fmt.Sprintf("wave %d", k+1)
}
