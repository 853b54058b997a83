package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

// annPausedReplicas on the cluster-autoscaler Deployment records its replica
// count while noderoll holds it at 0, so any later run can restore it;
// annHolders records who holds it there: one entry per node group under
// upgrade, as JSON. Two upgrades of one cluster share the autoscaler, and
// it is given back only when the last of them is done or gone.
const (
	annPausedReplicas = "noderoll.io/paused-replicas"
	annHolders        = "noderoll.io/autoscaler-holders"
)

// holdEntry is one upgrade holding the autoscaler at 0.
type holdEntry struct {
	Since time.Time `json:"since"`
}

// autoscalerHold pauses and restores the cluster-autoscaler for a run, be
// it noderoll's own upgrade or one it asked EKS for.
type autoscalerHold struct {
	kube   kubernetes.Interface
	report teller
	spec   string // --cluster-autoscaler
	terms  terms.Terms
	holder cloud.NodeGroupRef
	clock  clock.Clock
	// live says whether another group's upgrade still goes on (its record
	// active or its lock held): a holder killed and not resumed keeps its
	// hold only while its upgrade is unfinished.
	live func(ctx context.Context, holder string) (bool, error)
}

func (e *Engine) autoscalerHold(g cloud.NodeGroupRef) autoscalerHold {
	return autoscalerHold{kube: e.kube, report: e.report, spec: e.opts.ClusterAutoscaler, terms: e.opts.Terms, holder: g, clock: e.clock, live: e.upgradeLive}
}

func (u *upgrade) autoscaler() autoscalerHold {
	h := u.autoscalerHold(cloud.NodeGroupRef{Cluster: u.group.Cluster, Name: u.group.Name})
	h.report = u.report // the run's journal: a watch elsewhere tells it too
	return h
}

func (u *upgrade) pauseAutoscaler(ctx context.Context) error   { return u.autoscaler().pause(ctx) }
func (u *upgrade) restoreAutoscaler(ctx context.Context) error { return u.autoscaler().restore(ctx) }

// upgradeLive says whether the upgrade of a group ("cluster/name") goes on:
// its record is active, or a run holds its lock (managed mode keeps no
// record).
func (e *Engine) upgradeLive(ctx context.Context, holder string) (bool, error) {
	cluster, name, ok := strings.Cut(holder, "/")
	if !ok {
		return false, nil
	}
	store := e.records(cloud.NodeGroupRef{Cluster: cluster, Name: name})
	rec, err := store.Load(ctx)
	if err != nil {
		return true, err
	}
	if rec.Active() {
		return true, nil
	}
	l, err := e.kube.CoordinationV1().Leases(Namespace).Get(ctx, recordName(cluster, name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false, nil
	}
	expires := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
	return e.clock.Now().Before(expires), nil
}

func readHolders(d *appsv1.Deployment) map[string]holdEntry {
	h := map[string]holdEntry{}
	if v := d.Annotations[annHolders]; v != "" {
		_ = json.Unmarshal([]byte(v), &h) // unreadable: no holder known
	}
	return h
}

func writeHolders(d *appsv1.Deployment, h map[string]holdEntry) {
	b, _ := json.Marshal(h)
	d.Annotations[annHolders] = string(b)
}

// findAutoscaler finds the Deployment spec names: "none" (nil), "auto" (one
// in kube-system that looks like it, or nil) or "namespace/name".
func findAutoscaler(ctx context.Context, kube kubernetes.Interface, spec string, t terms.Terms) (*appsv1.Deployment, error) {
	if spec == "none" {
		return nil, nil
	}
	if spec != "auto" {
		ns, name, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("%s %q: want auto, none or namespace/name", t.Of("cluster-autoscaler"), spec)
		}
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("finding cluster-autoscaler %s: %w", spec, err)
		}
		return d, nil
	}
	list, err := kube.AppsV1().Deployments("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("looking for the cluster-autoscaler in kube-system: %w", err)
	}
	for k := range list.Items {
		d := &list.Items[k]
		l := d.Labels
		if strings.Contains(d.Name, "cluster-autoscaler") || l["app"] == "cluster-autoscaler" ||
			l["app.kubernetes.io/name"] == "cluster-autoscaler" || l["app.kubernetes.io/name"] == "aws-cluster-autoscaler" {
			return d, nil
		}
	}
	return nil, nil
}

// pause scales the cluster-autoscaler to 0 so it does not fight the
// surge, recording its replicas on it first, and this group as a holder.
func (u autoscalerHold) pause(ctx context.Context) error {
	d, err := findAutoscaler(ctx, u.kube, u.spec, u.terms)
	if err != nil || d == nil {
		return err
	}
	var before string
	var others []string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := u.kube.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		holders := readHolders(d)
		_, mine := holders[u.holder.String()]
		_, paused := d.Annotations[annPausedReplicas]
		if mine && paused && d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
			return nil
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		if !paused {
			replicas := int32(1)
			if d.Spec.Replicas != nil {
				replicas = *d.Spec.Replicas
			}
			d.Annotations[annPausedReplicas] = strconv.Itoa(int(replicas))
		}
		if !mine {
			holders[u.holder.String()] = holdEntry{Since: u.clock.Now().UTC()}
		}
		others = others[:0]
		for h := range holders {
			if h != u.holder.String() {
				others = append(others, h)
			}
		}
		writeHolders(d, holders)
		before = d.Annotations[annPausedReplicas]
		zero := int32(0)
		d.Spec.Replicas = &zero
		_, err = u.kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("pausing cluster-autoscaler %s/%s: %w", d.Namespace, d.Name, err)
	}
	if before != "" {
		also := ""
		if len(others) > 0 {
			slices.Sort(others)
			also = "; held for the upgrades of " + strings.Join(others, ", ") + " too"
		}
		u.report.Step(0, "Cluster autoscaler", fmt.Sprintf("%s/%s scaled %s -> 0 for the upgrade (restored after, even on failure, once no other upgrade holds it%s)", d.Namespace, d.Name, before, also))
	}
	return nil
}

// restore takes this group off the autoscaler's holders and, when no other
// upgrade still holds it (a holder whose upgrade ended or was abandoned is
// dropped), gives it back the replicas recorded on it. It does nothing
// when noderoll did not pause it.
func (u autoscalerHold) restore(ctx context.Context) error {
	d, err := findAutoscaler(ctx, u.kube, u.spec, u.terms)
	if err != nil || d == nil {
		return err
	}
	var restored string
	var kept []string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := u.kube.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		restored, kept = "", nil
		v, paused := d.Annotations[annPausedReplicas]
		if !paused {
			return nil
		}
		holders := readHolders(d)
		delete(holders, u.holder.String())
		for h := range holders {
			live, err := u.live(ctx, h)
			if err != nil {
				return fmt.Errorf("asking whether the upgrade of %s holding the autoscaler goes on: %w", h, err)
			}
			if live {
				kept = append(kept, h)
			} else {
				delete(holders, h)
			}
		}
		if len(kept) > 0 {
			writeHolders(d, holders)
		} else {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("annotation %s=%q is not a number", annPausedReplicas, v)
			}
			replicas := int32(n)
			d.Spec.Replicas = &replicas
			delete(d.Annotations, annPausedReplicas)
			delete(d.Annotations, annHolders)
			restored = v
		}
		_, err = u.kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("restoring cluster-autoscaler %s/%s: %w", d.Namespace, d.Name, err)
	}
	switch {
	case len(kept) > 0:
		slices.Sort(kept)
		u.report.Info(fmt.Sprintf("cluster-autoscaler %s/%s stays at 0: the upgrades of %s still hold it (the last to end restores it)", d.Namespace, d.Name, strings.Join(kept, ", ")))
	case restored != "":
		u.report.Info(fmt.Sprintf("cluster-autoscaler %s/%s restored to %s replicas", d.Namespace, d.Name, restored))
	}
	return nil
}
