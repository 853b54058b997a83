package engine

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/noderoll/noderoll/internal/cloud"
)

// upgradeTaint keeps pods off old nodes, as EKS taints them.
var upgradeTaint = corev1.Taint{Key: "eks.amazonaws.com/nodegroup", Value: "unschedulable", Effect: corev1.TaintEffectNoSchedule}

// Node annotations that record per-node progress, so a resumed run finishes
// the nodes it was on before it starts others. annPhase holds a
// rollout.Mark; annCordonedAt is when the node was drained and cordoned (its
// presence says it is drained); annCordonedFirstAt is when it was cordoned
// before its drain, which starts its post-cordon wait.
const (
	annPhase           = "noderoll.io/phase"
	annCordonedAt      = "noderoll.io/cordoned-at"
	annCordonedFirstAt = "noderoll.io/cordoned-before-drain-at"
)

// updateNode applies fn to a fresh copy of the node and writes it, retrying
// on conflict; fn returns false when there is nothing to change.
func (u *upgrade) updateNode(ctx context.Context, name string, fn func(*corev1.Node) bool) (bool, error) {
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := u.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if changed = fn(n); !changed {
			return nil
		}
		_, err = u.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("updating node %s: %w", name, err)
	}
	return changed, nil
}

func (u *upgrade) taint(ctx context.Context, n *corev1.Node) (bool, error) {
	return u.updateNode(ctx, n.Name, func(n *corev1.Node) bool {
		for _, t := range n.Spec.Taints {
			if t.MatchTaint(&upgradeTaint) {
				return false
			}
		}
		n.Spec.Taints = append(n.Spec.Taints, upgradeTaint)
		return true
	})
}

// mark records the node's phase and, with cordon, cordons it and records
// when (kept from a first cordon on a resumed run), in one write.
func (u *upgrade) mark(ctx context.Context, n *corev1.Node, phase string, cordon bool) error {
	now := u.clock.Now().UTC()
	_, err := u.updateNode(ctx, n.Name, func(n *corev1.Node) bool {
		changed := false
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		if n.Annotations[annPhase] != phase {
			n.Annotations[annPhase] = phase
			changed = true
		}
		if cordon && !n.Spec.Unschedulable {
			n.Spec.Unschedulable = true
			changed = true
		}
		if _, ok := n.Annotations[annCordonedFirstAt]; cordon && !ok {
			n.Annotations[annCordonedFirstAt] = now.Format(time.RFC3339Nano)
			changed = true
		}
		return changed
	})
	return err
}

// cordonedAt returns when the node was cordoned, recording now if no time is
// recorded yet: a resumed run waits only what is left of the post-cordon wait.
func (u *upgrade) cordonedAt(ctx context.Context, n *corev1.Node) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, n.Annotations[annCordonedAt]); err == nil {
		return t, nil
	}
	now := u.clock.Now().UTC()
	_, err := u.updateNode(ctx, n.Name, func(n *corev1.Node) bool {
		if _, ok := n.Annotations[annCordonedAt]; ok {
			return false
		}
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		// To the nanosecond: whole seconds would cut the wait short.
		n.Annotations[annCordonedAt] = now.Format(time.RFC3339Nano)
		return true
	})
	return now, err
}

func instanceOf(n *corev1.Node) string { return cloud.InstanceIDOf(n.Spec.ProviderID) }

func hasUpgradeTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.MatchTaint(&upgradeTaint) {
			return true
		}
	}
	return false
}

// uncordon gives a node back its work: the upgrade's taint, the cordon and
// noderoll's marks removed.
func (u *upgrade) uncordon(ctx context.Context, n *corev1.Node) (bool, error) {
	return u.updateNode(ctx, n.Name, func(n *corev1.Node) bool {
		changed := n.Spec.Unschedulable
		n.Spec.Unschedulable = false
		var keep []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.MatchTaint(&upgradeTaint) {
				changed = true
				continue
			}
			keep = append(keep, t)
		}
		n.Spec.Taints = keep
		for _, k := range []string{annPhase, annCordonedAt, annCordonedFirstAt} {
			if _, ok := n.Annotations[k]; ok {
				delete(n.Annotations, k)
				changed = true
			}
		}
		return changed
	})
}
