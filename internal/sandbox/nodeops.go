package sandbox

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kdrain "k8s.io/kubectl/pkg/drain"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// The sandbox's account plays EKS's managed node group updates on the
// cluster through these, as EKS does on a real one: kubectl's drain, the
// Eviction API, PodDisruptionBudgets honoured.
var _ awssim.NodeOps = KwokRegistrar{}

// eksUpdateTaint is the taint EKS puts on a node group's old nodes.
var eksUpdateTaint = corev1.Taint{Key: "eks.amazonaws.com/nodegroup", Value: "unschedulable", Effect: corev1.TaintEffectNoSchedule}

// NodeReady implements awssim.NodeOps.
func (r KwokRegistrar) NodeReady(ctx context.Context, name string) (bool, error) {
	n, err := r.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return conditions.NodeReady(n), nil
}

// TaintNode implements awssim.NodeOps.
func (r KwokRegistrar) TaintNode(ctx context.Context, name string) error {
	n, err := r.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, t := range n.Spec.Taints {
		if t.Key == eksUpdateTaint.Key && t.Effect == eksUpdateTaint.Effect {
			return nil
		}
	}
	n.Spec.Taints = append(n.Spec.Taints, eksUpdateTaint)
	_, err = r.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	return err
}

// DrainNode implements awssim.NodeOps: pods evicted first, then the node
// cordoned, as EKS orders it.
func (r KwokRegistrar) DrainNode(ctx context.Context, name string, timeout time.Duration) error {
	h := &kdrain.Helper{
		Ctx: ctx, Client: r.Client, Force: false, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		GracePeriodSeconds: -1, Timeout: timeout, Out: io.Discard, ErrOut: io.Discard,
	}
	if err := kdrain.RunNodeDrain(h, name); err != nil {
		return fmt.Errorf("draining node %s: %w", name, err)
	}
	n, err := r.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return kdrain.RunCordonOrUncordon(h, n, true)
}
