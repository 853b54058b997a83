package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/clusterupgrade"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/keepcurrent"
)

// Labels on the NodeGroupUpgrades a policy makes.
const (
	rolloutLabel  = "noderoll.io/rollout"
	takeBackLabel = "noderoll.io/take-back"
)

// PolicyReconciler carries out NodeGroupUpgradePolicies: it reads the
// groups and their releases from the cloud, lets keepcurrent decide, and
// makes, aborts or deletes the NodeGroupUpgrades that decision asks for.
// The rollout's state is the policy's status: a restarted controller goes
// on from it.
type PolicyReconciler struct {
	Client client.Client // cached reads, writes
	Reader client.Reader // the API server as it is now (the policy's upgrades)
	// View is the cluster's caches the upgrades share (started with the
	// leader's work): a soak reads the groups' nodes and pods from it.
	View   *engine.ClusterView
	Cloud  cloud.Provider
	Events events.EventRecorder
	Log    *slog.Logger
	Clock  clock.PassiveClock
	// PollEvery is how often the groups' releases are read again (default
	// 10m): how soon a new release is seen.
	PollEvery time.Duration
	Metrics   *PolicyMetrics

	mu   sync.Mutex
	seen map[types.UID]groupsRead // the cloud's last answer, by policy
}

// groupsRead is the groups as read at a time, for a policy's generation
// and rollout step: reread when any changes or PollEvery passes.
type groupsRead struct {
	at     time.Time
	key    string
	minor  string
	groups []keepcurrent.Group
}

// SetupWithManager registers the reconciler; a policy is reconciled again
// whenever one of its NodeGroupUpgrades changes.
func (r *PolicyReconciler) SetupWithManager(mgr manager.Manager) error {
	if r.PollEvery <= 0 {
		r.PollEvery = 10 * time.Minute
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Reader == nil {
		r.Reader = r.Client
	}
	r.seen = map[types.UID]groupsRead{}
	if r.View != nil {
		// Started with the leader's work (the upgrades' reconciler starts
		// the same view; it runs once).
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			r.View.Start(ctx)
			<-ctx.Done()
			return nil
		})); err != nil {
			return err
		}
	}
	// An upgrade's progress is written every few seconds; the policy
	// cares only when its phase or spec changes, or it goes.
	phaseChanged := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, okO := e.ObjectOld.(*v1alpha1.NodeGroupUpgrade)
		n, okN := e.ObjectNew.(*v1alpha1.NodeGroupUpgrade)
		return !okO || !okN || o.Status.Phase != n.Status.Phase || o.Generation != n.Generation ||
			o.Status.ObservedGeneration != n.Status.ObservedGeneration || !n.DeletionTimestamp.IsZero()
	}}
	return ctrl.ControllerManagedBy(mgr).For(&v1alpha1.NodeGroupUpgradePolicy{}).Named("nodegroupupgradepolicy").
		Owns(&v1alpha1.NodeGroupUpgrade{}, ctrl.WithPredicates(phaseChanged)).Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *PolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p v1alpha1.NodeGroupUpgradePolicy
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil // its NodeGroupUpgrades go with it (owner references)
	}
	now := r.Clock.Now()
	log := r.Log.With("nodegroupupgradepolicy", p.Name)
	spec, err := keepcurrent.Parse(p.Spec, now)
	if err != nil {
		return reconcile.Result{}, r.invalid(ctx, &p, err.Error())
	}
	read, err := r.groups(ctx, &p, spec)
	if err != nil {
		// The cloud out of reach: say so, and look again soon.
		log.Warn("reading the node groups", "err", err)
		return reconcile.Result{RequeueAfter: 30 * time.Second}, r.writeStatus(ctx, &p, func(s *v1alpha1.NodeGroupUpgradePolicyStatus) {
			s.Message = fmt.Sprintf("could not read the node groups of %s: %v; looking again in 30s", spec.Cluster, err)
			setPolicyCondition(s, v1alpha1.PolicyConditionValid, metav1.ConditionTrue, "Valid", "", p.Generation)
		})
	}
	var others v1alpha1.NodeGroupUpgradePolicyList
	if err := r.Client.List(ctx, &others); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing the other NodeGroupUpgradePolicies: %w", err)
	}
	in := keepcurrent.Input{Now: now, Spec: spec, Minor: read.minor, Groups: keptElsewhere(&p, others.Items, read.groups), Rollout: p.Status.Rollout.DeepCopy(),
		Resume: p.Annotations[v1alpha1.ResumeAnnotation] != ""}
	if in.Upgrades, in.TakeBacks, err = r.upgrades(ctx, &p); err != nil {
		return reconcile.Result{}, err
	}
	if soaking := keepcurrent.Soaking(in.Rollout, in.Upgrades); len(soaking) > 0 {
		if in.Regressions, err = r.health(ctx, spec, soaking); err != nil {
			return reconcile.Result{}, err
		}
	}
	out := keepcurrent.Decide(in)
	// A resume deletes first: the halt is cleared only once the upgrades
	// it stood on are gone (a failed one left would halt it again).
	for _, name := range out.Delete {
		u := &v1alpha1.NodeGroupUpgrade{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := r.Client.Delete(ctx, u); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("deleting NodeGroupUpgrade %s to resume: %w", name, err)
		}
	}
	// The status as it was: writing the decision changes p.
	prev := p.Status.DeepCopy()
	began := prev.Rollout == nil && out.Rollout != nil
	// The decision is kept before it is acted on: a status refused (a
	// newer copy) is decided again, and what it asks for is made under
	// names that make a second try change nothing.
	if err := r.writeStatus(ctx, &p, func(s *v1alpha1.NodeGroupUpgradePolicyStatus) { r.fill(s, &p, out, now) }); err != nil {
		return reconcile.Result{}, err
	}
	created, err := r.act(ctx, &p, out, began, prev.LastRollout, log)
	if err != nil {
		return reconcile.Result{}, err
	}
	if in.Resume {
		patch := client.MergeFrom(p.DeepCopy())
		delete(p.Annotations, v1alpha1.ResumeAnnotation)
		if err := r.Client.Patch(ctx, &p, patch); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, err
		}
	}
	for _, e := range out.Events {
		if e.OnCreate && created == 0 {
			continue // made by an earlier look already
		}
		typ := corev1.EventTypeNormal
		if e.Warning {
			typ = corev1.EventTypeWarning
		}
		r.Events.Eventf(&p, nil, typ, e.Reason, "Rollout", "%s", truncate(e.Message, 1000))
		log.Info(e.Message, "reason", e.Reason)
	}
	r.Metrics.observe(p.Name, prev, out, now)
	wait := r.PollEvery
	if out.Requeue > 0 {
		wait = min(wait, max(out.Requeue, time.Second))
	}
	return reconcile.Result{RequeueAfter: wait}, nil
}

// keptElsewhere marks each group an older policy of the same cluster keeps
// too: two policies would each upgrade it in their own windows and waves
// (the second finding it done, its canary and soak meaning nothing). The
// older one keeps it; this one leaves it, saying which and what to do.
func keptElsewhere(p *v1alpha1.NodeGroupUpgradePolicy, others []v1alpha1.NodeGroupUpgradePolicy, groups []keepcurrent.Group) []keepcurrent.Group {
	out := slices.Clone(groups)
	for i := range out {
		if out[i].Err != "" {
			continue
		}
		for k := range others {
			o := &others[k]
			if o.UID == p.UID || o.Spec.Cluster != p.Spec.Cluster || !o.DeletionTimestamp.IsZero() || o.Status.State == v1alpha1.PolicyInvalid || !older(o, p) {
				continue
			}
			if len(o.Spec.NodeGroups) == 0 || slices.Contains(o.Spec.NodeGroups, out[i].Name) {
				out[i].Err = fmt.Sprintf("kept by NodeGroupUpgradePolicy %s too, which is older: left to it (a group is kept by one policy; take it out of one of them with spec.nodeGroups)", o.Name)
				break
			}
		}
	}
	return out
}

// older says whether a was made before b (by name on the same second).
func older(a, b *v1alpha1.NodeGroupUpgradePolicy) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// invalid writes a spec the controller cannot follow, once.
func (r *PolicyReconciler) invalid(ctx context.Context, p *v1alpha1.NodeGroupUpgradePolicy, msg string) error {
	if p.Status.State != v1alpha1.PolicyInvalid || p.Status.Message != msg {
		r.Events.Eventf(p, nil, corev1.EventTypeWarning, "InvalidSpec", "Validate", "%s", truncate(msg, 1000))
	}
	return r.writeStatus(ctx, p, func(s *v1alpha1.NodeGroupUpgradePolicyStatus) {
		s.ObservedGeneration, s.State, s.WaitingReason, s.Message, s.NextWindow = p.Generation, v1alpha1.PolicyInvalid, "", msg, nil
		setPolicyCondition(s, v1alpha1.PolicyConditionValid, metav1.ConditionFalse, "InvalidSpec", msg, p.Generation)
	})
}

// fill writes a decision into the status.
func (r *PolicyReconciler) fill(s *v1alpha1.NodeGroupUpgradePolicyStatus, p *v1alpha1.NodeGroupUpgradePolicy, out keepcurrent.Output, now time.Time) {
	s.ObservedGeneration = p.Generation
	s.State, s.WaitingReason, s.Message = out.State, out.Waiting, out.Message
	s.NextWindow = nil
	if !out.NextWindow.IsZero() {
		s.NextWindow = &metav1.Time{Time: out.NextWindow}
	}
	s.Groups, s.GroupsUpToDate, s.GroupsTotal = out.Groups, ptr.To(int32(out.UpToDate)), ptr.To(int32(len(out.Groups)))
	s.Rollout = out.Rollout
	if out.Ended != nil {
		s.LastRollout = out.Ended
	}
	s.LastChecked = &metav1.Time{Time: r.checked(p.UID, now)}
	gen := p.Generation
	setPolicyCondition(s, v1alpha1.PolicyConditionValid, metav1.ConditionTrue, "Valid", "", gen)
	if out.State == v1alpha1.PolicyUpToDate {
		setPolicyCondition(s, v1alpha1.PolicyConditionReady, metav1.ConditionTrue, "UpToDate", out.Message, gen)
	} else {
		setPolicyCondition(s, v1alpha1.PolicyConditionReady, metav1.ConditionFalse, reasonOr(out.Waiting, out.State), out.Message, gen)
	}
	if out.Rollout != nil {
		setPolicyCondition(s, v1alpha1.PolicyConditionRollout, metav1.ConditionTrue, out.State, out.Message, gen)
	} else {
		setPolicyCondition(s, v1alpha1.PolicyConditionRollout, metav1.ConditionFalse, "NoRollout", "", gen)
	}
	if out.Rollout != nil && out.Rollout.Halted != nil {
		setPolicyCondition(s, v1alpha1.PolicyConditionHalted, metav1.ConditionTrue, out.Rollout.Halted.Reason, out.Message, gen)
	} else {
		setPolicyCondition(s, v1alpha1.PolicyConditionHalted, metav1.ConditionFalse, "NotHalted", "", gen)
	}
}

func reasonOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func setPolicyCondition(s *v1alpha1.NodeGroupUpgradePolicyStatus, typ string, status metav1.ConditionStatus, reason, msg string, gen int64) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: truncate(msg, 32768), ObservedGeneration: gen})
}

// writeStatus patches the policy's status from the copy it was decided on:
// a newer copy refuses it (the decision is made again from that one).
func (r *PolicyReconciler) writeStatus(ctx context.Context, p *v1alpha1.NodeGroupUpgradePolicy, change func(*v1alpha1.NodeGroupUpgradePolicyStatus)) error {
	before := p.DeepCopy()
	change(&p.Status)
	if equality.Semantic.DeepEqual(before.Status, p.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})))
}

// act makes, aborts and retires NodeGroupUpgrades as decided.
func (r *PolicyReconciler) act(ctx context.Context, p *v1alpha1.NodeGroupUpgradePolicy, out keepcurrent.Output, began bool, lastRollout *v1alpha1.PolicyRolloutEnd, log *slog.Logger) (created int, err error) {
	for _, c := range out.Create {
		u, err := r.upgradeFor(p, out.Rollout, c)
		if err != nil {
			return created, err
		}
		if err := r.Client.Create(ctx, u); apierrors.IsAlreadyExists(err) {
			continue
		} else if err != nil {
			return created, fmt.Errorf("creating NodeGroupUpgrade %s of %s: %w", u.Name, c.Group, err)
		}
		created++
		log.Info("created a NodeGroupUpgrade", "name", u.Name, "group", c.Group, "ami", c.ImageID, "takeBack", c.TakeBack)
	}
	for _, name := range out.Abort {
		var u v1alpha1.NodeGroupUpgrade
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &u); err != nil {
			return created, client.IgnoreNotFound(err)
		}
		if u.Spec.Action == "Abort" {
			continue
		}
		patch := client.MergeFrom(u.DeepCopy())
		u.Spec.Action = "Abort"
		if err := r.Client.Patch(ctx, &u, patch); err != nil {
			return created, fmt.Errorf("aborting NodeGroupUpgrade %s: %w", name, err)
		}
	}
	// A new rollout retires the ended upgrades of older ones, so that
	// `kubectl get ngu` shows this rollout's and the one before's.
	if began {
		var list v1alpha1.NodeGroupUpgradeList
		if err := r.Client.List(ctx, &list, client.MatchingLabels{v1alpha1.PolicyLabel: p.Name}); err != nil {
			return created, err
		}
		keep := rolloutID(&out.Rollout.Started)
		last := ""
		if lastRollout != nil {
			last = rolloutID(&lastRollout.Started)
		}
		for k := range list.Items {
			u := &list.Items[k]
			if id := u.Labels[rolloutLabel]; id != keep && id != last && ended(u) {
				if err := r.Client.Delete(ctx, u); client.IgnoreNotFound(err) != nil {
					return created, err
				}
			}
		}
	}
	return created, nil
}

// upgradeFor is the NodeGroupUpgrade of one group in a rollout, owned by
// the policy.
func (r *PolicyReconciler) upgradeFor(p *v1alpha1.NodeGroupUpgradePolicy, ro *v1alpha1.PolicyRollout, c keepcurrent.Create) (*v1alpha1.NodeGroupUpgrade, error) {
	if ro == nil {
		return nil, errors.New("a NodeGroupUpgrade asked for outside a rollout")
	}
	id := rolloutID(&ro.Started)
	u := &v1alpha1.NodeGroupUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: upgradeName(p.Name, c.Group, id, c.TakeBack),
			Labels:      map[string]string{v1alpha1.PolicyLabel: p.Name, rolloutLabel: id, "app.kubernetes.io/managed-by": "noderoll"},
			Annotations: map[string]string{"noderoll.io/release": c.Release}},
		Spec: v1alpha1.NodeGroupUpgradeSpec{Cluster: p.Spec.Cluster, NodeGroup: c.Group, Mode: "Noderoll",
			Target: v1alpha1.Target{AMI: c.ImageID}, UpgradeSettings: *p.Spec.Upgrade.DeepCopy()},
	}
	if c.TakeBack {
		u.Labels[takeBackLabel] = "true"
		u.Spec.AllowDowngrade = true
	}
	if c.EKS {
		// EKS updates to a release (or, for a family without EKS release
		// numbers, to the minor's newest).
		u.Spec.Mode = "Managed"
		u.Spec.Target = v1alpha1.Target{ReleaseVersion: c.Release}
		if !releaseRE.MatchString(c.Release) {
			u.Spec.Target = v1alpha1.Target{KubernetesVersion: ro.KubernetesVersion}
		}
	}
	if u.Spec.Strategy.Type == "" {
		u.Spec.Strategy.Type = "Surge"
	}
	return u, controllerutil.SetControllerReference(p, u, r.Client.Scheme())
}

var (
	notInName = regexp.MustCompile(`[^a-z0-9-]+`)
	releaseRE = regexp.MustCompile(`^1\.[0-9]+\.[0-9]+-[0-9]{8}$`)
)

// upgradeName names a group's NodeGroupUpgrade in a rollout: the same on
// every try, at most 63 characters.
func upgradeName(policy, group, rollout string, takeBack bool) string {
	g := strings.Trim(notInName.ReplaceAllString(strings.ToLower(group), "-"), "-")
	suffix := "-" + rollout
	if takeBack {
		suffix += "-back"
	}
	// Two groups that read alike once cut tell apart by a hash of the name.
	h := sha256.Sum256([]byte(group))
	room := 63 - len(policy) - 1 - len(suffix)
	if len(g) > room {
		g = strings.Trim(g[:max(room-5, 1)], "-") + "-" + hex.EncodeToString(h[:])[:4]
	}
	return policy + "-" + g + suffix
}

// rolloutID tells a rollout's NodeGroupUpgrades from another's.
func rolloutID(started *metav1.Time) string {
	h := sha256.Sum256([]byte(started.UTC().Format(time.RFC3339)))
	return hex.EncodeToString(h[:])[:6]
}

// upgrades are the policy's NodeGroupUpgrades of the rollout under way, by
// group: the forward ones and the take-backs apart. One being deleted is
// gone already for the decision.
func (r *PolicyReconciler) upgrades(ctx context.Context, p *v1alpha1.NodeGroupUpgradePolicy) (map[string]keepcurrent.Upgrade, map[string]keepcurrent.Upgrade, error) {
	fwd, back := map[string]keepcurrent.Upgrade{}, map[string]keepcurrent.Upgrade{}
	if p.Status.Rollout == nil {
		return fwd, back, nil
	}
	// Read from the API server, not the cache: a cache behind the
	// policy's own status (an upgrade deleted for a resume, still there
	// Failed) would halt a rollout again, or start one twice.
	var list v1alpha1.NodeGroupUpgradeList
	if err := r.Reader.List(ctx, &list, client.MatchingLabels{v1alpha1.PolicyLabel: p.Name, rolloutLabel: rolloutID(&p.Status.Rollout.Started)}); err != nil {
		return nil, nil, fmt.Errorf("listing the policy's NodeGroupUpgrades: %w", err)
	}
	for k := range list.Items {
		u := &list.Items[k]
		if !u.DeletionTimestamp.IsZero() || !metav1.IsControlledBy(u, p) {
			continue
		}
		phase := u.Status.Phase
		if u.Status.ObservedGeneration != u.Generation && phase != v1alpha1.PhaseRunning {
			phase = v1alpha1.PhasePending // a new spec (an Abort) not yet taken up
		}
		up := keepcurrent.Upgrade{Name: u.Name, Phase: phase, Message: u.Status.Message, Action: u.Spec.Action}
		if u.Labels[takeBackLabel] == "true" {
			back[u.Spec.NodeGroup] = up
		} else {
			fwd[u.Spec.NodeGroup] = up
		}
	}
	return fwd, back, nil
}

// groups are the policy's groups with their releases, read from the cloud
// at most every PollEvery, and again when the spec or the rollout's step
// changed (a wave done changes what the groups run).
func (r *PolicyReconciler) groups(ctx context.Context, p *v1alpha1.NodeGroupUpgradePolicy, spec keepcurrent.Spec) (groupsRead, error) {
	key := fmt.Sprint(p.Generation)
	if ro := p.Status.Rollout; ro != nil {
		key += fmt.Sprintf("/%s/%d/%v", rolloutID(&ro.Started), ro.Wave, ro.Halted != nil)
	}
	now := r.Clock.Now()
	r.mu.Lock()
	last, ok := r.seen[p.UID]
	r.mu.Unlock()
	if ok && last.key == key && now.Sub(last.at) < r.PollEvery {
		return last, nil
	}
	read := groupsRead{at: now, key: key, minor: spec.Minor}
	if read.minor == "" {
		cl, err := r.Cloud.Cluster(ctx, spec.Cluster)
		if err != nil {
			return read, err
		}
		read.minor = cl.Version
	}
	refs, err := r.Cloud.ListNodeGroups(ctx, spec.Cluster)
	if err != nil {
		return read, err
	}
	var names []string
	for _, ref := range refs {
		names = append(names, ref.Name)
	}
	want := spec.NodeGroups
	if len(want) == 0 {
		want = names
	}
	slices.Sort(want)
	for _, name := range slices.Compact(slices.Clone(want)) {
		g := keepcurrent.Group{Name: name}
		if !slices.Contains(names, name) {
			g.Err = fmt.Sprintf("no node group %s in cluster %s (spec.nodeGroups names it)", name, spec.Cluster)
		} else if err := r.releases(ctx, cloud.NodeGroupRef{Cluster: spec.Cluster, Name: name}, read.minor, &g); err != nil {
			g.Err = err.Error()
		}
		read.groups = append(read.groups, g)
	}
	r.mu.Lock()
	r.seen[p.UID] = read
	r.mu.Unlock()
	return read, nil
}

// releases reads what a group runs and the newest recommended release of
// its family at the minor, as `plan cluster` does.
func (r *PolicyReconciler) releases(ctx context.Context, ref cloud.NodeGroupRef, minor string, g *keepcurrent.Group) error {
	ng, err := r.Cloud.NodeGroup(ctx, ref)
	if err != nil {
		return err
	}
	// A group being created or resized is left until it settles: an
	// upgrade would fail its preflight on the instances still coming.
	inService := 0
	for _, i := range ng.Instances {
		if i.Lifecycle == "InService" {
			inService++
		}
	}
	// noderoll's strategies would change a template EKS generated; EKS
	// updates such a group itself.
	g.EKSUpdates = ng.Managed && ng.EKSTemplateID == ""
	if inService != ng.Desired || len(ng.Instances) != ng.Desired {
		g.Unsettled = fmt.Sprintf("%d of its %d instances in service (being created or resized); it is weighed once settled", inService, ng.Desired)
	}
	g.Current = keepcurrent.Release{ImageID: ng.ImageID}
	if img, err := r.Cloud.ResolveImage(ctx, cloud.ImageQuery{ImageID: ng.ImageID}); err == nil {
		g.Current = release(img)
	}
	img, err := r.Cloud.ResolveImage(ctx, cloud.ImageQuery{KubernetesVersion: minor, Like: ng.ImageID, InstanceTypes: ng.InstanceTypes})
	if err != nil {
		return fmt.Errorf("finding the newest recommended AMI of Kubernetes %s for %s: %w", minor, ref.Name, err)
	}
	g.Newest = release(img)
	return nil
}

func release(img cloud.Image) keepcurrent.Release {
	return keepcurrent.Release{ImageID: img.ID, ImageName: img.Name, Version: img.ReleaseVersion, Published: img.Created}
}

// checked is when the policy's groups were last read.
func (r *PolicyReconciler) checked(uid types.UID, now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.seen[uid]; ok {
		return s.at
	}
	return now
}

func (r *PolicyReconciler) forget(name string) {
	r.Metrics.forget(name)
}

// health reads the soaking groups' nodes and the pods on them from the
// controller's cluster view (informers, not requests a node every look)
// and names their regressions: every node of a group whose upgrade
// completed is new, so a pod's restarts are all since the upgrade.
func (r *PolicyReconciler) health(ctx context.Context, spec keepcurrent.Spec, groups []string) ([]string, error) {
	var names []string
	for _, name := range groups {
		ng, err := r.Cloud.NodeGroup(ctx, cloud.NodeGroupRef{Cluster: spec.Cluster, Name: name})
		if err != nil {
			return nil, fmt.Errorf("reading %s for its soak: %w", name, err)
		}
		for _, i := range ng.Instances {
			if i.NodeName != "" && !i.Terminating() {
				names = append(names, i.NodeName)
			}
		}
	}
	nodes, pods, err := r.View.Look(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("reading the soaking groups' nodes: %w", err)
	}
	h := clusterupgrade.Health{Restarts: spec.MaxRestarts, PodReady: spec.PodReady}
	return h.Judge(r.Clock.Now(), nodes, pods, nil), nil
}
