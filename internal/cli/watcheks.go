package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/progress"
)

// EKS's own update of a managed node group (eksctl upgrade nodegroup, the
// console, UpdateNodegroupVersion) writes no noderoll timeline; watch
// follows it from the group's nodes alone, as `kubectl get nodes --watch`
// shows it: new nodes on the target AMI, old ones tainted by EKS, drained,
// gone.

const (
	eksGroupLabel = "eks.amazonaws.com/nodegroup"
	eksImageLabel = "eks.amazonaws.com/nodegroup-image"
)

// eksPicture is the group's nodes as an EKS update leaves them at a look.
type eksPicture struct {
	nodes   int
	byImage map[string]int
	target  string // the AMI of the newest node
	tainted int    // carrying EKS's eks.amazonaws.com/nodegroup=unschedulable taint
	cordon  int
}

func lookAtGroup(ctx context.Context, kube kubernetes.Interface, group string) (eksPicture, error) {
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: eksGroupLabel + "=" + group})
	if err != nil {
		return eksPicture{}, fmt.Errorf("listing the nodes of node group %s: %w", group, err)
	}
	nodes := make([]*corev1.Node, len(list.Items))
	for k := range list.Items {
		nodes[k] = &list.Items[k]
	}
	return pictureOf(nodes), nil
}

// pictureOf is the group's nodes at a look.
func pictureOf(nodes []*corev1.Node) eksPicture {
	p := eksPicture{byImage: map[string]int{}}
	var newest time.Time
	for _, n := range nodes {
		p.nodes++
		img := n.Labels[eksImageLabel]
		p.byImage[img]++
		if t := n.CreationTimestamp.Time; !t.Before(newest) {
			newest, p.target = t, img
		}
		if n.Spec.Unschedulable {
			p.cordon++
		}
		for _, t := range n.Spec.Taints {
			if t.Key == eksGroupLabel && t.Value == "unschedulable" && t.Effect == corev1.TaintEffectNoSchedule {
				p.tainted++
				break
			}
		}
	}
	return p
}

// updating: the nodes show an update under way (two AMIs, or EKS's taint).
func (p eksPicture) updating() bool { return len(p.byImage) > 1 || p.tainted > 0 }

// settled: one AMI, nothing tainted or cordoned.
func (p eksPicture) settled() bool { return p.nodes > 0 && !p.updating() && p.cordon == 0 }

func (p eksPicture) String() string {
	imgs := make([]string, 0, len(p.byImage))
	for img := range p.byImage {
		imgs = append(imgs, img)
	}
	// The target first, then the others by name.
	sort.Slice(imgs, func(i, j int) bool {
		if (imgs[i] == p.target) != (imgs[j] == p.target) {
			return imgs[i] == p.target
		}
		return imgs[i] < imgs[j]
	})
	parts := make([]string, len(imgs))
	for k, img := range imgs {
		parts[k] = fmt.Sprintf("%d on %s", p.byImage[img], img)
	}
	return fmt.Sprintf("%d nodes: %s; %d tainted by EKS, %d cordoned", p.nodes, strings.Join(parts, ", "), p.tainted, p.cordon)
}

// followEKS follows EKS's own update of a managed group from its nodes
// until they settle on one AMI at the group's size, or ctx ends. size is
// the group's node count before the update (0: not seen; then the old
// nodes at the first look, which EKS replaces one for one, stand for it).
// EKS scales its surge back only after the last old node is gone, so one
// AMI alone is not the end; settled nodes that change no more for quiet
// end it all the same (a size guessed too small).
func followEKS(ctx context.Context, view *progress.View, kube kubernetes.Interface, ref cloud.NodeGroupRef, every time.Duration, size int) error {
	p, err := lookAtGroup(ctx, kube, ref.Name)
	if err != nil {
		return err
	}
	if size == 0 {
		size = p.nodes - p.byImage[p.target]
	}
	const quiet = 2 * time.Minute
	since := time.Now()
	view.Info(fmt.Sprintf("no noderoll upgrade of %s is under way, but EKS is updating the managed group itself (eksctl upgrade nodegroup, the console, UpdateNodegroupVersion): following it from its nodes (label %s=%s), toward %s",
		ref, eksGroupLabel, ref.Name, p.target))
	target := p.target
	view.Old(func(n *corev1.Node) bool { return n.Labels[eksImageLabel] != target })
	if err := view.WatchNodes(ctx, kube, func(n *corev1.Node) bool { return n.Labels[eksGroupLabel] == ref.Name }); err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	view.SetInitial(size) // the nodes shown first may include EKS's surge

	last := ""
	for {
		if s := p.String(); s != last {
			view.Info("EKS update: " + s)
			last, since = s, time.Now()
		}
		if p.settled() && (p.nodes <= size || time.Since(since) > quiet) {
			view.Zones()
			view.End("Completed", fmt.Sprintf("EKS's update of %s ended: every one of its %d nodes runs %s", ref, p.nodes, p.target))
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
		// The node watch above holds the group's nodes: no list a second.
		p = pictureOf(view.Watched())
		target = p.target
	}
}
