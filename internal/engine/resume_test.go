package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/cloud"
	cloudfake "github.com/noderoll/noderoll/internal/cloud/fake"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/preflight"
)

// A resumed bluegreen run is judged, and run, by what it recorded: its
// strategy and surge, not today's default surge of 25%. The account quota,
// full with the group's own surge already launched, does not stop it; a
// flag that says otherwise is refused naming what the record holds.
func TestAResumeIsJudgedByItsRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 8, "a", "b")
		w.strategy = StrategyBlueGreen
		spec := TargetSpec{KubernetesVersion: "1.37"}
		w.stopAtFirstTerminate(spec)
		if g := w.p.Group("ng"); len(g.Instances) != 16 {
			t.Fatalf("the interrupted bluegreen run left %d instances, want 16", len(g.Instances))
		}
		// 16 instances of 2 vCPUs use the whole quota.
		w.p.Quota = &cloud.Quota{Code: "L-1216C47A", Name: "Running On-Demand Standard instances", Limit: 32, Used: 32, PerInstance: 2}

		// Today's flags left at their defaults: surge, not chosen.
		defaults := func() Options {
			o := w.engine().opts
			o.Strategy, o.StrategySet = StrategySurge, false
			return o
		}
		rep, err := New(w.kube, w.p, defaults()).Preflight(context.Background(), Request{Group: w.ref, Target: spec})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Resuming || rep.Strategy != StrategyBlueGreen || rep.MaxSurge != 8 {
			t.Errorf("the resume is judged as strategy %s with max surge %d (resuming %v), want bluegreen's recorded 8", rep.Strategy, rep.MaxSurge, rep.Resuming)
		}
		if b := preflight.Blocked(rep.Findings, nil); len(b) != 0 {
			t.Errorf("the resume, with nothing left to launch, is blocked: %+v", b)
		}

		for _, c := range []struct {
			name string
			opt  func(*Options)
			want string
		}{
			{"another strategy", func(o *Options) { o.Strategy, o.StrategySet = StrategySurge, true }, "uses strategy bluegreen"},
		} {
			o := defaults()
			c.opt(&o)
			before := len(w.p.Calls())
			_, err := New(w.kube, w.p, o).Upgrade(context.Background(), Request{Group: w.ref, Target: spec})
			if !errors.Is(err, ErrTargetMismatch) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s on resume: got %v, want a refusal saying %q", c.name, err, c.want)
			}
			if calls := w.p.Calls()[before:]; len(calls) != 0 {
				t.Errorf("%s: the refused resume changed %v", c.name, calls)
			}
		}

		// The same flags as recorded resume it.
		o := defaults()
		o.Strategy, o.StrategySet = StrategyBlueGreen, true
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		defer cancel()
		began := w.record().Started
		time.Sleep(time.Minute) // virtual: the resume comes a minute later
		res, err := New(w.kube, w.p, o).Upgrade(ctx, Request{Group: w.ref, Target: spec})
		if err != nil {
			t.Fatalf("resuming with the recorded strategy: %v", err)
		}
		if g := w.p.Group("ng"); len(g.Instances) != 8 {
			t.Errorf("%d instances after the resume, want 8", len(g.Instances))
		}
		// It says it resumed the upgrade the first run began.
		if began.IsZero() || !res.Resumed.Equal(began) {
			t.Errorf("the resume's result says it resumed an upgrade begun %v; the record began %v", res.Resumed, began)
		}
		// The next upgrade (the quota raised) is one of its own.
		w.p.Quota = nil
		w.p.AddImage(cloudfake.Image{ID: "ami-c13720261201", Name: "al2023-1.37-v20261201", Minor: "1.37", Release: "1.37.2-20261201"}, true)
		res, err = New(w.kube, w.p, o).Upgrade(ctx, Request{Group: w.ref, Target: spec})
		if err != nil || res.UpToDate || !res.Resumed.IsZero() {
			t.Errorf("a new upgrade after it: %+v %v; want one begun by its own run", res, err)
		}
	})
}

// A surge run resumed with a --max-surge that resolves otherwise than the
// recorded one is refused; the same numbers, given again, resume it.
func TestAResumeRefusesOtherBudgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 8, "a", "b")
		w.strategy = StrategySurge
		spec := TargetSpec{KubernetesVersion: "1.37"}
		w.stopAtFirstTerminate(spec)
		if r := w.record(); r.Surge != 2 || r.Unavailable != 0 {
			t.Fatalf("recorded surge %d, unavailable %d; want 25%% of 8 = 2 and 0", r.Surge, r.Unavailable)
		}
		o := w.engine().opts
		o.MaxSurge = Amount{Value: 100, Percent: true, Given: true}
		before := len(w.p.Calls())
		_, err := New(w.kube, w.p, o).Upgrade(context.Background(), Request{Group: w.ref, Target: spec})
		if !errors.Is(err, ErrTargetMismatch) || !strings.Contains(err.Error(), "records max surge 2 and max unavailable 0") ||
			!strings.Contains(err.Error(), "--max-surge=100% says otherwise: leave it out") || strings.Contains(err.Error(), "--max-unavailable") {
			t.Fatalf("--max-surge 100%% on resume, want only the flag given named: got %v", err)
		}
		if calls := w.p.Calls()[before:]; len(calls) != 0 {
			t.Errorf("the refused resume changed %v", calls)
		}
		o.MaxSurge = Amount{Value: 2, Given: true}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		defer cancel()
		if _, err := New(w.kube, w.p, o).Upgrade(ctx, Request{Group: w.ref, Target: spec}); err != nil {
			t.Fatalf("resuming with the recorded budgets given again: %v", err)
		}
		w.done(amiB, 8, nil)
	})
}

// A lower Kubernetes minor, or an older release of the same minor, is
// refused before anything changes, naming both; AllowDowngrade lets it
// through.
func TestADowngradeIsRefusedUnlessAllowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 2, "a", "b")
		w.p.AddImage(cloudfake.Image{ID: "ami-0135", Name: "al2023-1.35-v20261115", Minor: "1.35", Release: "1.35.9-20261115"}, true)
		for _, c := range []struct {
			spec TargetSpec
			want string
		}{
			{TargetSpec{KubernetesVersion: "1.35"}, "runs ami-old136 (Kubernetes 1.36, release 1.36.5-20261115); the target ami-0135 (Kubernetes 1.35, release 1.35.9-20261115) is older"},
			{TargetSpec{ReleaseVersion: "1.35.9-20261115"}, "--allow-downgrade"},
		} {
			_, err := w.upgrade(c.spec)
			var down *DowngradeError
			if !errors.As(err, &down) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: got %v, want a DowngradeError saying %q", c.spec, err, c.want)
			}
			if _, err := New(w.kube, w.p, w.engine().opts).Preflight(context.Background(), Request{Group: w.ref, Target: c.spec}); !errors.As(err, &down) {
				t.Errorf("%+v: --dry-run let the downgrade through: %v", c.spec, err)
			}
		}
		if calls := w.p.Calls(); len(calls) != 0 {
			t.Fatalf("refused downgrades changed %v", calls)
		}
		// Forward to 1.37's newest, then back one release of the same minor.
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.37"}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.upgrade(TargetSpec{ReleaseVersion: "1.37.2-20261020"}); err == nil || !strings.Contains(err.Error(), "release 1.37.2-20261020) is older") {
			t.Errorf("an older release of the same minor: got %v", err)
		}
		w.allowDowngrade = true
		if _, err := w.upgrade(TargetSpec{KubernetesVersion: "1.35"}); err != nil {
			t.Fatalf("a downgrade allowed on purpose: %v", err)
		}
		w.done("ami-0135", 2, nil)
	})
}

func TestOlderComparesMinorThenRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		img := func(minor, release string) cloud.Image { return cloud.Image{KubeMinor: minor, ReleaseVersion: release} }
		for _, c := range []struct {
			a, b cloud.Image
			want bool
		}{
			{img("1.35", ""), img("1.36", ""), true},
			{img("1.36", ""), img("1.35", ""), false},
			{img("1.9", ""), img("1.10", ""), true}, // numbers, not strings
			{img("1.37", "1.37.2-20261020"), img("1.37", "1.37.2-20261115"), true},
			{img("1.37", "1.37.10-20261201"), img("1.37", "1.37.9-20261115"), false},
			{cloud.Image{KubeMinor: "1.37", Name: "amazon-eks-node-al2023-x86_64-standard-1.37-v20261020"}, img("1.37", "1.37.2-20261115"), true}, // the date in the name
			{cloud.Image{KubeMinor: "1.37", Name: "amazon-eks-node-al2023-x86_64-standard-1.37-v20261115"}, cloud.Image{KubeMinor: "1.37", Name: "amazon-eks-node-al2023-x86_64-standard-1.37-v20261020"}, false},
			{img("1.37", "1.37.2-20261115"), img("1.37", "1.37.2-20261115"), false},
			{img("", ""), img("1.37", ""), false}, // a custom AMI says nothing
			{img("1.37", "custom"), img("1.37", "1.37.2-20261115"), false},
		} {
			if got := older(c.a, c.b); got != c.want {
				t.Errorf("older(%+v, %+v) = %v, want %v", c.a, c.b, got, c.want)
			}
		}
	})
}

// A run whose lock is taken over stops and changes nothing more: it does
// not restore the cluster-autoscaler the new holder holds, nor write its
// error into the record the new holder keeps.
func TestARunThatLostItsLockDoesNotCleanUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		e := New(w.kube, w.p, w.engine().opts, WithLock(grouplock.Options{Duration: time.Second, RenewDeadline: 300 * time.Millisecond, Retry: 50 * time.Millisecond}))
		var recordBefore string
		w.p.Holding = func(ctx context.Context, op string) error {
			if !strings.HasPrefix(op, "TerminateInstance") {
				return nil
			}
			w.p.Holding = nil
			// Another run takes the lease over, as one on another host would
			// once this one stopped renewing it.
			leases, err := w.kube.CoordinationV1().Leases(Namespace).List(ctx, metav1.ListOptions{})
			if err != nil || len(leases.Items) != 1 {
				t.Errorf("want one lease: %v", err)
				return errInjected
			}
			l := leases.Items[0]
			l.Spec.HolderIdentity = ptr.To("bastion-2/4242/ops/zzzzz")
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now().Add(time.Hour)}
			if _, err := w.kube.CoordinationV1().Leases(Namespace).Update(context.Background(), &l, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
			recordBefore = w.recordVersion()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(3 * time.Hour):
				t.Error("the run went on 20 s after its lock was taken over")
				return errInjected
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
		defer cancel()
		_, err := e.Upgrade(ctx, Request{Group: w.ref, Target: TargetSpec{KubernetesVersion: "1.37"}})
		var lost *grouplock.LostError
		if !errors.As(err, &lost) {
			t.Fatalf("want a LostError, got %v", err)
		}
		ca, err := w.kube.AppsV1().Deployments("kube-system").Get(context.Background(), "cluster-autoscaler", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *ca.Spec.Replicas != 0 || ca.Annotations[annPausedReplicas] == "" {
			t.Errorf("the run that lost its lock restored the autoscaler (replicas %d, annotations %v)", *ca.Spec.Replicas, ca.Annotations)
		}
		if now := w.recordVersion(); now != recordBefore {
			t.Errorf("the run that lost its lock wrote the record (version %s -> %s): %q", recordBefore, now, w.record().Message)
		}
	})
}

// stopAtFirstTerminate runs an upgrade that fails at its first terminate
// call, leaving it surged and unfinished on record.
func (w *world) stopAtFirstTerminate(spec TargetSpec) {
	w.t.Helper()
	w.p.Before = func(op string) error {
		if strings.HasPrefix(op, "TerminateInstance") {
			return errInjected
		}
		return nil
	}
	defer func() { w.p.Before = nil }()
	if _, err := w.upgrade(spec); !errors.Is(err, errInjected) {
		w.t.Fatalf("want the injected failure, got %v", err)
	}
}
