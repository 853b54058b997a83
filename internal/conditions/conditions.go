// Package conditions reads what nodes' and pods' status conditions say,
// defined once for every part of noderoll (the engine, the drain, the
// live view, the controller's status, the sandbox and the bench): a node
// Ready and since when, a node whose kubelet stopped reporting, a pod Ready.
package conditions

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Node is the node's condition of a type, nil when it has none.
func Node(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for k := range n.Status.Conditions {
		if n.Status.Conditions[k].Type == t {
			return &n.Status.Conditions[k]
		}
	}
	return nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	c := Node(n, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// NodeReadySince is when the node's Ready condition last turned True
// (dated to the second, as the API server keeps it); zero when it is not
// Ready.
func NodeReadySince(n *corev1.Node) time.Time {
	if c := Node(n, corev1.NodeReady); c != nil && c.Status == corev1.ConditionTrue {
		return c.LastTransitionTime.Time
	}
	return time.Time{}
}

// NodeUnreachable reports whether the node's Ready condition is Unknown:
// its kubelet stopped reporting, so pods there will not end by themselves.
func NodeUnreachable(n *corev1.Node) bool {
	c := Node(n, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionUnknown
}

// PodTrueSince is when the pod's condition of a type last turned True;
// zero when it is not True.
func PodTrueSince(p *corev1.Pod, t corev1.PodConditionType) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
