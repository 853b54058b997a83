package clusterupgrade

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/noderoll/noderoll/internal/conditions"
)

// Health is what a soak holds the upgraded groups to. A node of theirs not
// Ready, or a pod on their nodes that restarts or stays not Ready beyond
// these, is a regression: the upgrade halts before the next wave.
type Health struct {
	// Restarts is how many container restarts of one pod during the soak
	// count as crash-looping (default 3).
	Restarts int32
	// PodReady is how long a pod on the groups' nodes may be not Ready
	// since its creation (default 2m).
	PodReady time.Duration
}

func (h Health) withDefaults() Health {
	if h.Restarts <= 0 {
		h.Restarts = 3
	}
	if h.PodReady <= 0 {
		h.PodReady = 2 * time.Minute
	}
	return h
}

// restarts is a pod's container restarts so far.
func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// Judge names the regressions the groups' nodes and the pods on them
// show now: nodes not Ready, pods restarting more than allowed since the
// soak began (baseline: their restarts then, by pod UID), pods not Ready
// longer than allowed. Pure: the caller reads the cluster.
func (h Health) Judge(now time.Time, nodes []corev1.Node, pods []corev1.Pod, baseline map[string]int32) []string {
	h = h.withDefaults()
	var out []string
	for k := range nodes {
		n := &nodes[k]
		if !conditions.NodeReady(n) && n.DeletionTimestamp == nil {
			out = append(out, fmt.Sprintf("node %s is not Ready", n.Name))
		}
	}
	for k := range pods {
		p := &pods[k]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if d := restarts(p) - baseline[string(p.UID)]; d >= h.Restarts {
			out = append(out, fmt.Sprintf("pod %s/%s on %s restarted %d times during the soak (crash-looping)", p.Namespace, p.Name, p.Spec.NodeName, d))
			continue
		}
		ready := conditions.PodReady(p)
		if age := now.Sub(p.CreationTimestamp.Time); !ready && age >= h.PodReady {
			out = append(out, fmt.Sprintf("pod %s/%s on %s not Ready %s after it was created", p.Namespace, p.Name, p.Spec.NodeName, age.Round(time.Second)))
		}
	}
	sort.Strings(out)
	return out
}
