package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/records"
)

// Finalizer keeps a NodeGroupUpgrade until its worker stopped: a deleted
// resource leaves its group as the record says, never mid-call.
const Finalizer = "noderoll.io/stop-upgrade"

// Reconciler starts, pauses and stops the workers that run upgrades.
// Reconcile never waits on an upgrade: each runs in a worker of its own for
// as long as it takes, and writes the resource's status as it goes.
type Reconciler struct {
	Client client.Client // the manager's: cached reads
	// Reader reads as the API server has it now (the manager's API
	// reader): the records a worker resumes and hands back (default Client).
	Reader client.Reader
	Kube   kubernetes.Interface // the engine's
	Cloud  cloud.Provider
	Events events.EventRecorder
	Log    *slog.Logger
	Clock  clock.WithTicker
	// MaxConcurrent caps the upgrades running at once; more wait Pending.
	MaxConcurrent int
	// Lock is who holds the groups' locks: the process, of which each
	// worker holds its locks as a Worker of its own.
	Lock grouplock.Options
	// StatusEvery is how often a worker writes its status (default 2s).
	StatusEvery time.Duration
	// Metrics counts what the workers do (nil: counted nowhere).
	Metrics *Metrics
	// View is the cluster's caches and budget tracker, shared by every
	// upgrade (nil: each its own). Started with the leader's work.
	View *engine.ClusterView

	// wake asks for a resource's reconcile when its worker has ended, so
	// that what comes next (a retry, a hand-back, a new spec's worker)
	// follows from Reconcile's own results, never from waiting on a worker.
	wake chan event.GenericEvent

	mu        sync.Mutex
	base      context.Context // the manager's, set by Start
	workers   map[types.UID]*worker
	notBefore map[types.UID]time.Time       // a worker waits for another's lock to expire
	timed     map[types.UID]map[string]bool // steps already in the step metric, by resource
}

type worker struct {
	group      cloud.NodeGroupRef
	name       string // the resource's
	generation int64
	cancel     context.CancelFunc
	done       chan struct{}
}

// SetupWithManager registers the reconciler, and its workers' lifetime,
// with the manager: workers start only on the leader and stop with it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.StatusEvery <= 0 {
		r.StatusEvery = 2 * time.Second
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.MaxConcurrent <= 0 {
		r.MaxConcurrent = 10
	}
	if r.Reader == nil {
		r.Reader = r.Client
	}
	r.workers = map[types.UID]*worker{}
	r.notBefore = map[types.UID]time.Time{}
	r.timed = map[types.UID]map[string]bool{}
	if r.Metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return err
		}
		r.Metrics = m
	}
	if err := mgr.Add(r); err != nil {
		return err
	}
	r.wake = make(chan event.GenericEvent, 1024)
	return ctrl.NewControllerManagedBy(mgr).For(&v1alpha1.NodeGroupUpgrade{}).Named("nodegroupupgrade").
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).Complete(r)
}

// Start holds the manager's context for the workers and, when the manager
// stops (shutdown, lost leadership), stops them between actions.
func (r *Reconciler) Start(ctx context.Context) error {
	if r.View != nil {
		r.View.Start(ctx)
	}
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
	r.Log.Info("leading: this replica runs the NodeGroupUpgrades")
	<-ctx.Done()
	r.mu.Lock()
	var all []*worker
	for _, w := range r.workers {
		all = append(all, w)
	}
	r.mu.Unlock()
	// Workers stop between actions and write their last status; a worker
	// that cannot (an API server gone) is not waited for past the deadline.
	deadline := r.Clock.After(cleanupDeadline)
	for _, w := range all {
		w.cancel()
	}
	for _, w := range all {
		select {
		case <-w.done:
		case <-deadline:
			r.Log.Warn("stopping with workers still cleaning up", "nodegroupupgrade", w.name)
			return nil
		}
	}
	return nil
}

// cleanupDeadline bounds what a stopped worker writes on its way out.
const cleanupDeadline = 30 * time.Second

// NeedLeaderElection: only the leader runs upgrades.
func (r *Reconciler) NeedLeaderElection() bool { return true }

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var u v1alpha1.NodeGroupUpgrade
	if err := r.Client.Get(ctx, req.NamespacedName, &u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&u, Finalizer) {
			return ctrl.Result{}, nil
		}
		if !r.halt(u.UID) {
			return ctrl.Result{RequeueAfter: time.Second}, nil // its end wakes this resource too
		}
		r.mu.Lock()
		delete(r.notBefore, u.UID)
		delete(r.timed, u.UID)
		r.mu.Unlock()
		if err := r.handBack(ctx, req.NamespacedName); err != nil {
			return ctrl.Result{}, err
		}
		controllerutil.RemoveFinalizer(&u, Finalizer)
		return ctrl.Result{}, r.Client.Update(ctx, &u)
	}
	if controllerutil.AddFinalizer(&u, Finalizer) {
		if err := r.Client.Update(ctx, &u); err != nil {
			return ctrl.Result{}, err
		}
	}
	if ended(&u) {
		return ctrl.Result{}, nil
	}
	run, err := Translate(u.Spec)
	if err != nil {
		if !r.halt(u.UID) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		return ctrl.Result{}, r.finish(ctx, &u, v1alpha1.PhaseFailed, "InvalidSpec", err.Error())
	}
	if u.Spec.Paused {
		if !r.halt(u.UID) {
			return ctrl.Result{RequeueAfter: time.Second}, nil // stopping between actions
		}
		return ctrl.Result{}, r.setStatus(ctx, client.ObjectKeyFromObject(&u), func(s *v1alpha1.NodeGroupUpgradeStatus) {
			s.ObservedGeneration, s.Phase = u.Generation, v1alpha1.PhasePaused
			s.Message = "paused by spec.paused; set it to false to go on from where the upgrade stopped"
			setCondition(s, v1alpha1.ConditionPaused, metav1.ConditionTrue, "Paused", s.Message, u.Generation)
			setCondition(s, v1alpha1.ConditionProgressing, metav1.ConditionFalse, "Paused", s.Message, u.Generation)
		})
	}
	// A worker that found the group locked by another set when to look
	// again (it may still be on its way out).
	r.mu.Lock()
	wait := r.notBefore[u.UID].Sub(r.Clock.Now())
	r.mu.Unlock()
	if wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	r.mu.Lock()
	w := r.workers[u.UID]
	running := len(r.workers)
	base := r.base
	r.mu.Unlock()
	if w != nil && w.generation == u.Generation {
		return ctrl.Result{}, nil // running as asked
	}
	if w != nil {
		// The spec changed (an action, a budget, a timeout): the worker
		// stops between actions and a new one goes on with the new spec.
		if !r.halt(u.UID) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		running--
	}
	if base == nil {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if other := r.runningFor(run.Group, u.UID); other != "" {
		// Two resources of one group: the lock lets only one act; the
		// second waits here rather than trying the lock every few seconds.
		msg := fmt.Sprintf("waiting: NodeGroupUpgrade %s is upgrading %s; this one starts when that one ends", other, run.Group)
		return ctrl.Result{RequeueAfter: 10 * time.Second}, r.pending(ctx, &u, "GroupBusy", msg)
	}
	if running >= r.MaxConcurrent {
		msg := fmt.Sprintf("waiting for a free worker: %d upgrades run (the controller's --max-concurrent-upgrades)", running)
		return ctrl.Result{RequeueAfter: 10 * time.Second}, r.pending(ctx, &u, "Pending", msg)
	}
	// The cache may not yet hold the end a worker just wrote (its end
	// wakes this reconcile at once): ask the API server before starting
	// the same upgrade again.
	var live v1alpha1.NodeGroupUpgrade
	if err := r.Reader.Get(ctx, req.NamespacedName, &live); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ended(&live) || live.Generation != u.Generation || !live.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the watch brings the newer copy back here
	}
	r.start(base, u.DeepCopy(), run)
	return ctrl.Result{}, nil
}

// ended says the resource's upgrade is over for this generation of its
// spec: finished, or failed until the spec is edited.
func ended(u *v1alpha1.NodeGroupUpgrade) bool {
	if u.Status.ObservedGeneration != u.Generation {
		return false
	}
	switch u.Status.Phase {
	case v1alpha1.PhaseComplete, v1alpha1.PhaseAborted, v1alpha1.PhaseRolledBack, v1alpha1.PhaseFailed:
		return true
	}
	return false
}

// runningFor names the resource whose worker upgrades group ("" none),
// other than uid.
func (r *Reconciler) runningFor(group cloud.NodeGroupRef, uid types.UID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.workers {
		if id != uid && w.group == group {
			return w.name
		}
	}
	return ""
}

// halt cancels a resource's worker, if it has one, and says whether none
// is left running. It never waits: a worker stops between actions, and its
// end wakes the resource's reconcile.
func (r *Reconciler) halt(uid types.UID) bool {
	r.mu.Lock()
	w := r.workers[uid]
	r.mu.Unlock()
	if w == nil {
		return true
	}
	w.cancel()
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (r *Reconciler) start(base context.Context, u *v1alpha1.NodeGroupUpgrade, run Run) {
	ctx, cancel := context.WithCancel(base)
	w := &worker{group: run.Group, name: u.Name, generation: u.Generation, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.workers[u.UID] = w
	r.mu.Unlock()
	go func() {
		defer cancel()
		r.work(ctx, u, run)
		r.mu.Lock()
		if r.workers[u.UID] == w {
			delete(r.workers, u.UID)
		}
		r.mu.Unlock()
		close(w.done)
		// What comes next is Reconcile's to decide.
		if r.wake != nil {
			select {
			case r.wake <- event.GenericEvent{Object: u}:
			case <-base.Done():
			}
		}
	}()
}

// work runs one upgrade to its end, or until its context ends (paused,
// deleted, the controller stopping), writing status every StatusEvery.
func (r *Reconciler) work(ctx context.Context, u *v1alpha1.NodeGroupUpgrade, run Run) {
	j := &job{r: r, u: u, run: run, key: client.ObjectKeyFromObject(u), replaced: -1,
		log: r.Log.With("nodegroupupgrade", u.Name, "group", run.Group.String()), members: engine.NewMembers()}
	j.rep = r.reportsOn(u)
	r.Metrics.running.Inc()
	// Counted out before the final status is written: whoever reads
	// Complete there reads no upgrade running in the metrics.
	notRunning := sync.OnceFunc(r.Metrics.running.Dec)
	defer notRunning()
	j.began = r.Clock.Now()
	j.startTime = metav1.NewTime(j.began)
	j.log.Info("upgrade started", "generation", u.Generation, "strategy", run.Options.Strategy, "action", run.Action)
	if g, err := r.Cloud.NodeGroup(ctx, run.Group); err == nil {
		j.members.Add(g.Instances)
	}
	result := j.start(ctx)
	tick := r.Clock.NewTicker(r.StatusEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C():
			if j.markRunning(ctx); j.started {
				j.count(r.writeProgress(ctx, j.key, run, j.members, j.rep, u.Generation, j.began, nil))
			}
		case o := <-result:
			// The final word is written even as the controller stops, but
			// not past the cleanup deadline.
			fin, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupDeadline)
			defer cancel()
			if j.markRunning(ctx); j.started || o.err == nil {
				j.count(r.writeProgress(fin, j.key, run, j.members, j.rep, u.Generation, j.began, o.res))
			}
			notRunning()
			if ctx.Err() != nil {
				// Paused, deleted or stopping: the record holds the run;
				// whoever goes on resumes it.
				j.log.Info("upgrade stopped between actions", "cause", context.Cause(ctx))
				return
			}
			if phase := r.conclude(fin, u, run, o.res, o.err, j.rep, j.log); phase != "" {
				r.Metrics.ended.WithLabelValues(phase).Inc()
				r.Metrics.duration.WithLabelValues(phase).Observe(r.Clock.Since(j.began).Seconds())
				j.log.Info("upgrade ended", "phase", phase)
			}
			return
		}
	}
}

// reportsOn collects the engine's reports of an upgrade: refusals counted
// by budget, and the group's own steps as Events on the resource (a
// node's steps are Events on the node, from the engine).
func (r *Reconciler) reportsOn(u *v1alpha1.NodeGroupUpgrade) *reports {
	rep := newReports(r.Clock.Now)
	rep.refused = func(budget string) { r.Metrics.refused.WithLabelValues(budget).Inc() }
	rep.grouped = func(p engine.Progress) {
		if p.Warning {
			r.Events.Eventf(u, nil, corev1.EventTypeWarning, "Retrying", "Upgrade", "%s", truncate(p.Message, 1000))
			return
		}
		r.Events.Eventf(u, nil, corev1.EventTypeNormal, eventReason(p.Title), "Upgrade", "%s", truncate(p.Message, 1000))
	}
	return rep
}

// job is one upgrade as a worker runs it.
type job struct {
	r         *Reconciler
	u         *v1alpha1.NodeGroupUpgrade
	key       client.ObjectKey
	run       Run
	log       *slog.Logger
	rep       *reports
	members   *engine.Members
	began     time.Time
	startTime metav1.Time
	started   bool
	replaced  int32 // what the record held when this worker first read it; -1 before
}

// outcome is what the engine returned.
type outcome struct {
	res *engine.Result
	err error
}

// start runs the engine's action on the group in the background; its
// outcome comes on the channel.
func (j *job) start(ctx context.Context) <-chan outcome {
	r := j.r
	// The worker's own identity: the lock excludes two workers, and two
	// replicas, by itself.
	lock := r.Lock
	lock.Self = lock.Self.Worker()
	opts := []engine.Option{engine.WithReporter(j.rep), engine.WithLogger(j.log), engine.WithMembers(j.members), engine.WithLock(lock), engine.WithClock(r.Clock),
		engine.WithRecords(r.keeper(func(from string) {
			j.log.Info("took the upgrade over", "from", from)
			r.Events.Eventf(j.u, nil, corev1.EventTypeNormal, "TookOver", "Upgrade", "took the upgrade of %s over from %s, resuming its record", j.run.Group, from)
		}).Resource(j.key, j.run.Group))}
	if r.View != nil {
		opts = append(opts, engine.WithClusterView(r.View))
	}
	eng := engine.New(r.Kube, r.Cloud, j.run.Options, opts...)
	req := engine.Request{Group: j.run.Group, Target: j.run.Target}
	result := make(chan outcome, 1)
	go func() {
		var o outcome
		switch {
		case j.run.Managed:
			o.res, o.err = eng.UpgradeManaged(ctx, req, j.run.Force)
		case j.run.Action == "Abort":
			o.res, o.err = eng.Abort(ctx, req)
		case j.run.Action == "Rollback":
			o.res, o.err = eng.RollBack(ctx, req)
		default:
			o.res, o.err = eng.Upgrade(ctx, req)
		}
		result <- o
	}()
	return result
}

// markRunning writes the Running status once the engine holds the group's
// lock (it reports nothing before): a group a CLI run holds leaves the
// resource Pending, naming the holder, not Running then Pending again on
// every try.
func (j *job) markRunning(ctx context.Context) {
	if j.started || !j.rep.running() {
		return
	}
	j.started = true
	gen := j.u.Generation
	if err := j.r.setStatus(ctx, j.key, func(s *v1alpha1.NodeGroupUpgradeStatus) {
		s.ObservedGeneration, s.Phase, s.Message = gen, v1alpha1.PhaseRunning, "starting"
		if s.StartTime == nil {
			s.StartTime = &j.startTime
		}
		s.CompletionTime = nil
		setCondition(s, v1alpha1.ConditionPaused, metav1.ConditionFalse, "Running", "", gen)
		setCondition(s, v1alpha1.ConditionProgressing, metav1.ConditionTrue, "Running", "the upgrade is under way", gen)
		meta.RemoveStatusCondition(&s.Conditions, v1alpha1.ConditionFailed)
	}); err != nil && ctx.Err() == nil {
		j.log.Error("writing status", "err", err)
	}
	j.r.Events.Eventf(j.u, nil, corev1.EventTypeNormal, "Started", "Upgrade", "upgrading %s (strategy %s)", j.run.Group, j.run.Options.Strategy)
}

// count times the steps the status shows and counts the nodes replaced
// since it was last written.
func (j *job) count(p *progress) {
	if p == nil {
		return
	}
	j.r.timeSteps(j.u.UID, p.Steps)
	if j.replaced >= 0 && p.Replaced > j.replaced {
		j.r.Metrics.replaced.Add(float64(p.Replaced - j.replaced))
	}
	j.replaced = p.Replaced
}

// writeProgress writes the status of a running upgrade and returns what it
// wrote (nil when it could not see the run).
func (r *Reconciler) writeProgress(ctx context.Context, key client.ObjectKey, run Run, members *engine.Members, rep *reports, gen int64, since time.Time, res *engine.Result) *progress {
	rec, err := r.record(ctx, key, run.Group)
	if err != nil {
		r.Log.Warn("reading the upgrade record", "err", err)
		return nil
	}
	rec = thisRun(rec, since, res)
	nodes, err := r.nodes(ctx)
	if err != nil {
		r.Log.Warn("listing nodes", "err", err)
		return nil
	}
	step, msg, bl := rep.snapshot(3 * run.Options.Drain.RetryDelay)
	p := observe(rec, nodes, members, step, msg, bl)
	if err := r.setStatus(ctx, key, func(s *v1alpha1.NodeGroupUpgradeStatus) {
		// Running, also over a Pending a replica that lost the group wrote
		// meanwhile: whoever writes progress runs the upgrade.
		s.ObservedGeneration, s.Phase = gen, v1alpha1.PhaseRunning
		s.Step, s.Message = p.Step, p.Message
		s.TotalNodes, s.UpToDateNodes, s.InFlightNodes, s.BlockedNodes, s.Replaced = p.Total, p.UpToDate, p.InFlight, p.Blocked, p.Replaced
		s.Nodes, s.Target = p.Nodes, p.Target
		if p.BlockedBy != "" {
			setCondition(s, v1alpha1.ConditionBlocked, metav1.ConditionTrue, "EvictionRefused", p.BlockedBy, gen)
		} else {
			setCondition(s, v1alpha1.ConditionBlocked, metav1.ConditionFalse, "NotBlocked", "", gen)
		}
	}); err != nil && ctx.Err() == nil {
		r.Log.Warn("writing status", "err", err)
	}
	return &p
}

// nodes lists the cluster's nodes from the upgrades' own cache when there
// is one: controller-runtime's client would keep a second cache of every
// node, whole, beside it.
func (r *Reconciler) nodes(ctx context.Context) ([]corev1.Node, error) {
	if r.View != nil {
		return r.View.Nodes(ctx)
	}
	var list corev1.NodeList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// finish writes an upgrade's end.
func (r *Reconciler) finish(ctx context.Context, u *v1alpha1.NodeGroupUpgrade, phase, reason, msg string) error {
	now := metav1.NewTime(r.Clock.Now())
	failed := phase == v1alpha1.PhaseFailed
	if failed {
		r.Events.Eventf(u, nil, corev1.EventTypeWarning, reason, "Upgrade", "%s", msg)
	} else {
		r.Events.Eventf(u, nil, corev1.EventTypeNormal, reason, "Upgrade", "%s", msg)
	}
	return r.setStatus(ctx, client.ObjectKeyFromObject(u), func(s *v1alpha1.NodeGroupUpgradeStatus) {
		s.ObservedGeneration, s.Phase, s.Message = u.Generation, phase, msg
		s.CompletionTime = &now
		s.InFlightNodes, s.BlockedNodes, s.Nodes = 0, 0, nil
		setCondition(s, v1alpha1.ConditionProgressing, metav1.ConditionFalse, reason, msg, u.Generation)
		setCondition(s, v1alpha1.ConditionBlocked, metav1.ConditionFalse, reason, "", u.Generation)
		if failed {
			setCondition(s, v1alpha1.ConditionFailed, metav1.ConditionTrue, reason, msg, u.Generation)
		} else {
			setCondition(s, v1alpha1.ConditionComplete, metav1.ConditionTrue, reason, msg, u.Generation)
		}
	})
}

// setStatus changes the resource's status. It patches what changed, no
// more: the record in the status is the engine's, written under its own
// version (records), and a status written from a cache a moment old must
// not put an older record back.
//
// The patch carries the resourceVersion it was made from: a write from a
// cache a moment old (conditions written just before by another worker or
// replica) is refused rather than overwriting them, and made again from
// what the API server has now.
func (r *Reconciler) setStatus(ctx context.Context, key client.ObjectKey, change func(*v1alpha1.NodeGroupUpgradeStatus)) error {
	read := r.Client.Get
	return client.IgnoreNotFound(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var u v1alpha1.NodeGroupUpgrade
		if err := read(ctx, key, &u); err != nil {
			return err
		}
		read = r.Reader.Get // after a conflict: the API server's copy, not the cache's
		before := u.DeepCopy()
		change(&u.Status)
		if equalStatus(&before.Status, &u.Status) {
			return nil
		}
		return r.Client.Status().Patch(ctx, &u, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	}))
}

// keeper finds the groups' records for a worker's engine.
func (r *Reconciler) keeper(tookOver func(from string)) records.Keeper {
	return records.Keeper{Kube: r.Kube, Client: r.Client, Reader: r.Reader, TookOver: tookOver}
}

// record is the record of the upgrade a resource runs: in its status, or
// still where the run it resumes left it until its first save.
func (r *Reconciler) record(ctx context.Context, key client.ObjectKey, group cloud.NodeGroupRef) (*engine.Record, error) {
	var u v1alpha1.NodeGroupUpgrade
	if err := r.Client.Get(ctx, key, &u); err != nil {
		return nil, err
	}
	rec, err := records.Decode(&u)
	if err != nil || rec != nil {
		return rec, err
	}
	return engine.LoadRecord(ctx, r.Kube, group)
}

// handBack leaves the unfinished upgrade of a deleted resource in the
// group's ConfigMap, where the CLI resumes it.
func (r *Reconciler) handBack(ctx context.Context, key client.ObjectKey) error {
	var u v1alpha1.NodeGroupUpgrade
	if err := r.Reader.Get(ctx, key, &u); err != nil {
		return client.IgnoreNotFound(err)
	}
	rec, err := records.HandBack(ctx, r.Kube, &u)
	if err != nil {
		return err
	}
	if rec != nil {
		r.Log.Info("handed the unfinished upgrade of a deleted NodeGroupUpgrade back to its ConfigMap", "nodegroupupgrade", key.String(), "phase", rec.Phase)
		r.Events.Eventf(&u, nil, corev1.EventTypeNormal, "HandedBack", "Delete", "deleted mid-upgrade: its record (phase %s) is back in the group's ConfigMap; rerun the CLI's upgrade with the same target to resume it", rec.Phase)
	}
	return nil
}

// endedWith says what a run that ended by itself did, as the CLI's summary
// begins ("" without a result).
func endedWith(run Run, res *engine.Result) string {
	if res == nil {
		return ""
	}
	target := res.Target.ImageID
	if res.Target.ImageName != "" {
		target += " (" + res.Target.ImageName + ")"
	}
	did := fmt.Sprintf("%d nodes replaced", len(res.Replaced))
	if len(res.Removed) > 0 {
		did += fmt.Sprintf(", %d surplus removed", len(res.Removed))
	}
	took := fmt.Sprintf(" in %s", res.Duration.Round(time.Second))
	if !res.Resumed.IsZero() {
		took += fmt.Sprintf(" (resuming an upgrade begun %s)", res.Resumed.UTC().Format(time.RFC3339))
	}
	switch {
	case res.UpToDate:
		return fmt.Sprintf("%s/%s was on %s already; nothing was changed", run.Group.Cluster, run.Group.Name, target)
	case run.Action == "Abort":
		return fmt.Sprintf("aborted: %s/%s is back on %s, %s%s", run.Group.Cluster, run.Group.Name, target, did, took)
	case run.Action == "Rollback":
		return fmt.Sprintf("rolled back: %s/%s is back on its old nodes, %s%s", run.Group.Cluster, run.Group.Name, did, took)
	}
	return fmt.Sprintf("upgraded %s/%s to %s: %s%s", run.Group.Cluster, run.Group.Name, target, did, took)
}

func setCondition(s *v1alpha1.NodeGroupUpgradeStatus, typ string, status metav1.ConditionStatus, reason, msg string, gen int64) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: truncate(msg, 32768), ObservedGeneration: gen})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// conclude writes how a run that ended by itself ended, and returns the
// phase it ended in ("" when it is to be tried again).
func (r *Reconciler) conclude(ctx context.Context, u *v1alpha1.NodeGroupUpgrade, run Run, res *engine.Result, err error, rep *reports, log *slog.Logger) string {
	var held *grouplock.HeldError
	var lost *grouplock.LostError
	switch {
	case err == nil:
		phase, reason := v1alpha1.PhaseComplete, "Complete"
		switch run.Action {
		case "Abort":
			phase, reason = v1alpha1.PhaseAborted, "Aborted"
		case "Rollback":
			phase, reason = v1alpha1.PhaseRolledBack, "RolledBack"
		}
		_, msg, _ := rep.snapshot(0)
		if o := endedWith(run, res); o != "" {
			// What the run did, not its last note: that may be a moment's
			// news (the autoscaler kept at 0 for another upgrade) that is
			// stale once the others end.
			msg = o
		}
		if err := r.finish(ctx, u, phase, reason, msg); err != nil {
			log.Error("writing status", "err", err)
		}
		return phase
	case errors.As(err, &held):
		// Someone else holds the group (a CLI run, or one that died
		// elsewhere and whose lease has yet to expire): not a failure; try
		// again once the lease could have expired.
		wait := max(held.Renewed.Add(held.Expires).Sub(r.Clock.Now()), 2*time.Second)
		r.retryAfter(u, wait)
		// The same words on every try, so that the status is written once
		// while the holder keeps the group.
		msg := fmt.Sprintf("waiting for the group's lock, held by %s since %s (lease %s); this upgrade starts once it is free",
			held.Holder.String(), held.Since.UTC().Format(time.RFC3339), held.Lease)
		log.Info("group held by another", "holder", held.Holder.String(), "retryIn", wait)
		if err := r.pending(ctx, u, "GroupLocked", msg); err != nil {
			log.Error("writing status", "err", err)
		}
		return ""
	case errors.As(err, &lost):
		// Another took the group while this run held it (a new leader
		// while this replica lost its lease, or renewals that failed): the
		// run changed nothing since, and neither does its status, which
		// the new holder writes. Look again later.
		log.Warn("lost the group's lock; leaving the upgrade to its new holder", "err", err)
		r.retryAfter(u, 30*time.Second)
		msg := fmt.Sprintf("%v; looking again in 30s", err)
		if err := r.pending(ctx, u, "LockLost", msg); err != nil {
			log.Error("writing status", "err", err)
		}
		return ""
	}
	reason, msg := explain(err)
	if err := r.finish(ctx, u, v1alpha1.PhaseFailed, reason, msg); err != nil {
		log.Error("writing status", "err", err)
	}
	return v1alpha1.PhaseFailed
}

// timeSteps puts each step the record timed into the step metric once per
// resource, whichever of its workers (a pause, a new spec) saw it first.
func (r *Reconciler) timeSteps(uid types.UID, steps []engine.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.timed[uid]
	if seen == nil {
		seen = map[string]bool{}
		r.timed[uid] = seen
	}
	for _, s := range steps {
		if key := s.Name + "@" + s.Start.String(); !s.End.IsZero() && !seen[key] {
			seen[key] = true
			r.Metrics.steps.WithLabelValues(s.Name).Observe(s.End.Sub(s.Start).Seconds())
		}
	}
}

// thisRun is the record of the upgrade a worker runs: an earlier upgrade's
// finished record is history, not this run's (a run that finds the group up
// to date writes none), and then the run's result says what it resolved.
func thisRun(rec *engine.Record, since time.Time, res *engine.Result) *engine.Record {
	if rec != nil && !rec.Active() && rec.Updated.Before(since) {
		rec = nil
	}
	if rec == nil && res != nil {
		rec = &engine.Record{Target: res.Target, Replaced: res.Replaced}
	}
	return rec
}

// pending writes that a resource waits, why and until what.
func (r *Reconciler) pending(ctx context.Context, u *v1alpha1.NodeGroupUpgrade, reason, msg string) error {
	return r.setStatus(ctx, client.ObjectKeyFromObject(u), func(s *v1alpha1.NodeGroupUpgradeStatus) {
		s.ObservedGeneration, s.Phase, s.Message = u.Generation, v1alpha1.PhasePending, msg
		// No worker runs it: nodes in flight or blocked are a dead
		// run's last word (a leader killed mid-drain), not news.
		s.InFlightNodes, s.BlockedNodes, s.Nodes = 0, 0, nil
		setCondition(s, v1alpha1.ConditionProgressing, metav1.ConditionFalse, reason, msg, u.Generation)
		setCondition(s, v1alpha1.ConditionBlocked, metav1.ConditionFalse, reason, "", u.Generation)
	})
}

// eventReason is a step's title as an Event's reason: UpperCamelCase.
func eventReason(title string) string {
	var b strings.Builder
	for _, w := range strings.Fields(title) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// retryAfter keeps a resource's next worker from starting before wait.
func (r *Reconciler) retryAfter(u *v1alpha1.NodeGroupUpgrade, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notBefore[u.UID] = r.Clock.Now().Add(wait)
}
