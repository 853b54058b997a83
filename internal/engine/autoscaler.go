package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// annPausedReplicas on the cluster-autoscaler Deployment records its replica
// count while noderoll holds it at 0, so any later run can restore it.
const annPausedReplicas = "noderoll.io/paused-replicas"

// autoscalerHold pauses and restores the cluster-autoscaler for a run, be
// it noderoll's own upgrade or one it asked EKS for.
type autoscalerHold struct {
	kube   kubernetes.Interface
	report Reporter
	spec   string // --cluster-autoscaler
}

func (u *upgrade) autoscaler() autoscalerHold {
	return autoscalerHold{kube: u.kube, report: u.report, spec: u.opts.ClusterAutoscaler}
}

func (u *upgrade) pauseAutoscaler(ctx context.Context) error   { return u.autoscaler().pause(ctx) }
func (u *upgrade) restoreAutoscaler(ctx context.Context) error { return u.autoscaler().restore(ctx) }

// findAutoscaler finds the Deployment spec names: "none" (nil), "auto" (one
// in kube-system that looks like it, or nil) or "namespace/name".
func findAutoscaler(ctx context.Context, kube kubernetes.Interface, spec string) (*appsv1.Deployment, error) {
	if spec == "none" {
		return nil, nil
	}
	if spec != "auto" {
		ns, name, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("--cluster-autoscaler %q: want auto, none or namespace/name", spec)
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

// pauseAutoscaler scales the cluster-autoscaler to 0 so it does not fight the
// surge, recording its replicas on it first.
func (u autoscalerHold) pause(ctx context.Context) error {
	d, err := findAutoscaler(ctx, u.kube, u.spec)
	if err != nil || d == nil {
		return err
	}
	var before string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := u.kube.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, paused := d.Annotations[annPausedReplicas]; paused && d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
			return nil
		}
		if _, paused := d.Annotations[annPausedReplicas]; !paused {
			replicas := int32(1)
			if d.Spec.Replicas != nil {
				replicas = *d.Spec.Replicas
			}
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[annPausedReplicas] = strconv.Itoa(int(replicas))
		}
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
		u.report.Step(0, "Cluster autoscaler", fmt.Sprintf("%s/%s scaled %s -> 0 for the upgrade (restored after, even on failure)", d.Namespace, d.Name, before))
	}
	return nil
}

// restoreAutoscaler gives the cluster-autoscaler back the replicas recorded
// on it. It does nothing when noderoll did not pause it.
func (u autoscalerHold) restore(ctx context.Context) error {
	d, err := findAutoscaler(ctx, u.kube, u.spec)
	if err != nil || d == nil {
		return err
	}
	var restored string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := u.kube.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		v, paused := d.Annotations[annPausedReplicas]
		if !paused {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("annotation %s=%q is not a number", annPausedReplicas, v)
		}
		replicas := int32(n)
		d.Spec.Replicas = &replicas
		delete(d.Annotations, annPausedReplicas)
		restored = v
		_, err = u.kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("restoring cluster-autoscaler %s/%s: %w", d.Namespace, d.Name, err)
	}
	if restored != "" {
		u.report.Info(fmt.Sprintf("cluster-autoscaler %s/%s restored to %s replicas", d.Namespace, d.Name, restored))
	}
	return nil
}
