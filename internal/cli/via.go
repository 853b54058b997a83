package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/progress"
)

// notInTheResource are the flags a NodeGroupUpgrade has no field for: with
// --via-controller they are refused, not silently dropped.
var notInTheResource = []string{"eviction-retry-delay", "skip-wait-for-delete-timeout", "seed"}

// resourceFromFlags is the NodeGroupUpgrade the flags describe.
func resourceFromFlags(f *upgradeFlags, changed func(string) bool) (*v1alpha1.NodeGroupUpgrade, error) {
	for _, name := range notInTheResource {
		if changed(name) {
			return nil, fmt.Errorf("--%s has no field in a NodeGroupUpgrade: the controller runs with its own (drop the flag, or run without --via-controller)", name)
		}
	}
	strategy := map[string]string{engine.StrategySurge: "Surge", engine.StrategyBlueGreen: "BlueGreen", engine.StrategyEKS: "EKS"}[f.opts.Strategy]
	if strategy == "" {
		return nil, fmt.Errorf("--strategy %q: want surge, bluegreen or eks", f.opts.Strategy)
	}
	spec := v1alpha1.NodeGroupUpgradeSpec{
		Cluster: f.cluster, NodeGroup: f.name, Mode: "Noderoll",
		Target: v1alpha1.Target{KubernetesVersion: f.target.KubernetesVersion, ReleaseVersion: f.target.ReleaseVersion,
			LaunchTemplateVersion: f.target.LaunchTemplateVersion, AMI: f.target.AMI, AMIFamily: f.target.Family},
		UpgradeSettings: v1alpha1.UpgradeSettings{
			Strategy:          v1alpha1.Strategy{Type: strategy, BatchSize: int32(f.opts.BatchSize)},
			PostCordonWait:    &metav1.Duration{Duration: f.opts.PostCordonWait},
			EvictionTimeout:   &metav1.Duration{Duration: f.opts.Drain.Timeout},
			NodeReadyTimeout:  &metav1.Duration{Duration: f.opts.NodeReadyTimeout},
			Force:             f.force,
			ClusterAutoscaler: f.opts.ClusterAutoscaler,
			AllowDowngrade:    f.opts.AllowDowngrade,
			AcceptResize:      f.opts.AcceptResize,
			IgnorePreflight:   f.opts.IgnorePreflight,
		},
	}
	if f.mode == "managed" {
		spec.Mode = "Managed"
	}
	if strategy == "BlueGreen" {
		spec.Strategy.BatchSoak = &metav1.Duration{Duration: f.opts.BatchSoak}
		spec.Strategy.Soak = &metav1.Duration{Duration: f.opts.Soak}
	}
	for _, b := range []struct {
		amount engine.Amount
		field  **intstr.IntOrString
	}{{f.opts.MaxSurge, &spec.Strategy.MaxSurge}, {f.opts.MaxUnavailable, &spec.Strategy.MaxUnavailable}} {
		if !b.amount.Given {
			continue
		}
		v := intstr.FromInt32(int32(b.amount.Value))
		if b.amount.Percent {
			v = intstr.FromString(b.amount.String())
		}
		*b.field = ptr.To(v)
	}
	switch {
	case f.abort:
		spec.Action = "Abort"
	case f.rollback:
		spec.Action = "Rollback"
	}
	return &v1alpha1.NodeGroupUpgrade{ObjectMeta: metav1.ObjectMeta{GenerateName: resourcePrefix(f.name)}, Spec: spec}, nil
}

// resourcePrefix makes a group's name a valid start of a resource's name.
func resourcePrefix(group string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(group) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 {
		s = s[:40]
	}
	return s + "-"
}

// viaController declares the upgrade as a NodeGroupUpgrade and follows its
// status with the live view until it ends: the controller runs it.
func viaController(ctx context.Context, f *upgradeFlags, cfg *rest.Config, view *progress.View, log *slog.Logger) error {
	u, err := resourceFromFlags(f, f.changed)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, u); err != nil {
		return fmt.Errorf("declaring the upgrade as a NodeGroupUpgrade (is the CRD installed? kubectl apply -f charts/noderoll/crds/): %w", err)
	}
	view.Info(fmt.Sprintf("declared NodeGroupUpgrade %s; the controller runs it (Ctrl-C stops following, not the upgrade: kubectl get ngu %s)", u.Name, u.Name))
	f2 := follower{view: view, said: map[string]bool{}}
	for {
		w, err := c.Watch(ctx, &v1alpha1.NodeGroupUpgradeList{}, &client.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", u.Name)})
		if err != nil {
			return fmt.Errorf("following NodeGroupUpgrade %s: %w", u.Name, err)
		}
		done, err := f2.follow(ctx, w)
		w.Stop()
		if done || err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following NodeGroupUpgrade %s; it goes on in the cluster: %w", u.Name, ctx.Err())
		}
		select { // the watch ended (its timeout): watch again
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// follower turns status changes into the view's lines, each said once.
type follower struct {
	view             *progress.View
	step, msg, phase string
	said             map[string]bool
}

// follow reads one watch until the upgrade ends (done) or the watch does.
func (f *follower) follow(ctx context.Context, w watch.Interface) (done bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			u, isUpgrade := ev.Object.(*v1alpha1.NodeGroupUpgrade)
			if !isUpgrade {
				continue
			}
			if ev.Type == watch.Deleted {
				return true, fmt.Errorf("NodeGroupUpgrade %s was deleted; its group is left as its record says (rerun to resume)", u.Name)
			}
			if done, err := f.show(u); done {
				return true, err
			}
		}
	}
}

func (f *follower) show(u *v1alpha1.NodeGroupUpgrade) (bool, error) {
	st := u.Status
	if st.Step != f.step && st.Step != "" {
		n, title := 0, st.Step
		if num, rest, ok := strings.Cut(st.Step, "/9 "); ok {
			if v, err := strconv.Atoi(num); err == nil {
				n, title = v, rest
			}
		}
		f.view.Step(n, title, st.Message)
		f.step, f.msg = st.Step, st.Message
	} else if st.Message != f.msg && st.Message != "" {
		f.view.Info(st.Message)
		f.msg = st.Message
	}
	for _, n := range st.Nodes {
		if n.BlockedBy != "" && !f.said[n.Name+n.BlockedBy] {
			f.said[n.Name+n.BlockedBy] = true
			f.view.Info(fmt.Sprintf("! %s waits: %s", n.Name, n.BlockedBy))
		}
	}
	if st.Phase != f.phase {
		f.phase = st.Phase
		if st.Phase == v1alpha1.PhasePaused || st.Phase == v1alpha1.PhasePending {
			f.view.Info(fmt.Sprintf("%s: %s", st.Phase, st.Message))
		}
	}
	if st.ObservedGeneration != u.Generation {
		return false, nil
	}
	switch st.Phase {
	case v1alpha1.PhaseComplete, v1alpha1.PhaseAborted, v1alpha1.PhaseRolledBack:
		f.view.Info(fmt.Sprintf("NodeGroupUpgrade %s: %s, %d of %d nodes up to date, %d replaced", u.Name, st.Phase, st.UpToDateNodes, st.TotalNodes, st.Replaced))
		return true, nil
	case v1alpha1.PhaseFailed:
		return true, fmt.Errorf("NodeGroupUpgrade %s failed: %s", u.Name, st.Message)
	}
	return false, nil
}

// followController runs viaController with the view's node watch kept on
// the group's instances as the controller launches them.
func followController(ctx context.Context, f *upgradeFlags, p cloud.Provider, ref cloud.NodeGroupRef, members *engine.Members, view *progress.View, log *slog.Logger) error {
	cfg, err := restConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	grow, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-grow.Done():
				return
			case <-t.C:
				if g, err := p.NodeGroup(grow, ref); err == nil {
					members.Add(g.Instances)
				}
			}
		}
	}()
	err = viaController(ctx, f, cfg, view, log)
	stop()
	view.Close()
	return err
}
