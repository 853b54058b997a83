package engine

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/disruption"
	"github.com/noderoll/noderoll/internal/rollout"
)

// observe puts together what the strategy decides from: the group as last
// described, its nodes, pods and disruption budgets from the informers'
// caches (no request to the API server), and what this process is doing.
func (u *upgrade) observe(rs *rollState) rollout.State {
	r := u.rec
	s := rollout.State{
		Now: u.clock.Now(), Phase: r.Phase,
		Min: u.group.Min, Max: u.group.Max, Desired: u.group.Desired,
		OrigMin: r.OriginalMin, OrigMax: r.OriginalMax, OrigDesired: r.OriginalDesired, HeldMax: r.HeldMax,
		Surge: r.Surge, Unavailable: r.Unavailable, AZs: u.group.AZs, PostCordonWait: u.opts.PostCordonWait,
		BatchSize: r.BatchSize, BatchSoak: time.Duration(r.BatchSoak), Soak: time.Duration(r.Soak),
		AnyAZ: r.Abort != nil,
	}
	terminated, decremented := map[string]bool{}, map[string]bool{}
	for _, id := range r.Replaced {
		terminated[id] = true
	}
	for _, id := range r.Removed {
		terminated[id], decremented[id] = true, true
	}
	for _, id := range r.Decremented {
		decremented[id] = true
	}
	nodes := u.nodesByInstance()
	budgets := u.budgetIndex()
	for _, b := range budgets.list {
		s.Budgets = append(s.Budgets, rollout.Budget{Name: b.Namespace + "/" + b.Name, Allowed: int(b.Status.DisruptionsAllowed)})
	}
	inGroup := map[string]bool{}
	for _, i := range u.group.Instances {
		inGroup[i.ID] = true
		x := rollout.Instance{ID: i.ID, AZ: i.AZ, Old: i.ImageID != u.target.ImageID, Leaving: i.Terminating(),
			Terminated: terminated[i.ID], Decrement: decremented[i.ID]}
		n := nodes[i.ID]
		if n != nil {
			x.HasNode, x.Ready, x.Cordoned = true, conditions.NodeReady(n), n.Spec.Unschedulable
			x.Tainted = hasUpgradeTaint(n) || rs.tainted[i.ID]
			x.Mark = rollout.Mark(n.Annotations[annPhase])
			if t, err := time.Parse(time.RFC3339, n.Annotations[annCordonedAt]); err == nil {
				x.DrainedAt = t
			}
			if t, err := time.Parse(time.RFC3339, n.Annotations[annCordonedFirstAt]); err == nil {
				x.CordonedAt = t
			}
			if x.Old || x.Mark != rollout.Unmarked {
				x.Pods, x.PDBPods = u.podsToMove(n.Name, budgets)
			}
		} else if nn, ok := rs.noNode[i.ID]; ok {
			x.DrainedAt, x.Mark = nn.drained, nn.mark
		}
		if job := rs.jobs[i.ID]; job != nil {
			// What the drain wrote as it began counts before the cache
			// shows it: the node is in flight from that moment.
			if x.Mark == rollout.Unmarked {
				x.Mark = job.mark
			}
			if x.CordonedAt.IsZero() && !job.cordonedFirst.IsZero() {
				x.CordonedAt, x.Cordoned = job.cordonedFirst, true
			}
			// A finished drain counts until the cache shows its end, so
			// that it is never started twice. One the cache shows done
			// before the run has taken its result is still draining: its
			// end is told (Cordon) before anything follows from it.
			if !job.finished || x.DrainedAt.IsZero() && x.HasNode {
				x.Draining = true
				if !job.finished {
					x.DrainedAt = time.Time{}
				}
			} else {
				delete(rs.jobs, i.ID)
			}
		}
		s.Instances = append(s.Instances, x)
	}
	// Instances already gone from the group whose nodes are still there are
	// on their way out too.
	for id, n := range nodes {
		if !inGroup[id] && terminated[id] {
			s.Instances = append(s.Instances, rollout.Instance{ID: id, Leaving: true, HasNode: true, Ready: conditions.NodeReady(n)})
		}
	}
	if u.tl != nil {
		u.tl.sample(s, u.group, nodes, budgets.list)
	}
	return s
}

// nodesByInstance maps the group's instances to their nodes, by providerID.
func (u *upgrade) nodesByInstance() map[string]*corev1.Node {
	out := map[string]*corev1.Node{}
	list, _ := u.nodes.List(labels.Everything())
	for _, n := range list {
		if u.members.Owns(n) {
			out[instanceOf(n)] = n
		}
	}
	return out
}

// budgetIndex is the budgets the cache holds, in one listing per look.
type budgetIndex struct {
	list []*policyv1.PodDisruptionBudget
	byNS map[string][]*policyv1.PodDisruptionBudget
}

func (u *upgrade) budgetIndex() budgetIndex {
	list, _ := u.pdbs.List(labels.Everything())
	idx := budgetIndex{list: list, byNS: map[string][]*policyv1.PodDisruptionBudget{}}
	for _, b := range list {
		idx.byNS[b.Namespace] = append(idx.byNS[b.Namespace], b)
	}
	return idx
}

// podsToMove counts the pods a drain of the node must evict, and how many
// of them each budget covers (the rules of package disruption).
func (u *upgrade) podsToMove(node string, budgets budgetIndex) (int, map[string]int) {
	objs, _ := u.pods.ByIndex(podNodeIndex, node)
	count := 0
	var per map[string]int
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || !disruption.Evicts(p) {
			continue
		}
		count++
		for _, b := range u.selectors.Covering(budgets.byNS[p.Namespace], p) {
			if per == nil {
				per = map[string]int{}
			}
			per[b.Namespace+"/"+b.Name]++
		}
	}
	return count, per
}

const podNodeIndex = "spec.nodeName"

func indexPodsByNode(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// slim keeps in the informers' caches only what the engine reads: on a
// large cluster pods and nodes are most of the process's memory, and their
// managed fields, images and container specs most of theirs.
func slim(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		var ann map[string]string
		if v, ok := o.Annotations[corev1.MirrorPodAnnotationKey]; ok {
			ann = map[string]string{corev1.MirrorPodAnnotationKey: v}
		}
		o.Annotations = ann
		o.Spec = corev1.PodSpec{NodeName: o.Spec.NodeName}
		// A soak's health watch reads the Ready condition and the
		// containers' restarts; nothing else of the status is kept.
		st := corev1.PodStatus{Phase: o.Status.Phase}
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.PodReady {
				st.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
			}
		}
		for _, c := range o.Status.ContainerStatuses {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, RestartCount: c.RestartCount})
		}
		o.Status = st
	case *corev1.Node:
		o.Status.Images = nil
	}
	return obj, nil
}
