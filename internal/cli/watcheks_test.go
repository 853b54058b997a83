package cli

import (
	"context"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/progress"
)

func groupNode(name, image string, created time.Time, tainted, cordoned bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created),
		Labels: map[string]string{eksGroupLabel: "ng", eksImageLabel: image}}}
	n.Spec.Unschedulable = cordoned
	if tainted {
		n.Spec.Taints = []corev1.Taint{{Key: eksGroupLabel, Value: "unschedulable", Effect: corev1.TaintEffectNoSchedule}}
	}
	return n
}

// What watch reads of an EKS update from a group's nodes: under way while
// two AMIs run or EKS's taint is on a node, the target the newest node's
// AMI; settled on one AMI with nothing tainted or cordoned. Nodes of other
// groups do not count.
func TestTheNodesTellAnEKSUpdate(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	other := groupNode("x", "ami-other", t0.Add(time.Hour), true, true)
	other.Labels[eksGroupLabel] = "other"
	kube := k8sfake.NewClientset(other,
		groupNode("a", "ami-old", t0, false, false), groupNode("b", "ami-old", t0, false, false))
	ctx := context.Background()
	p, err := lookAtGroup(ctx, kube, "ng")
	if err != nil || p.nodes != 2 || p.updating() || !p.settled() {
		t.Fatalf("before: %+v %v", p, err)
	}
	for _, n := range []*corev1.Node{groupNode("c", "ami-new", t0.Add(time.Minute), false, false)} {
		if _, err := kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := kube.CoreV1().Nodes().Get(ctx, "a", metav1.GetOptions{})
	old.Spec.Unschedulable = true
	old.Spec.Taints = groupNode("a", "", t0, true, false).Spec.Taints
	if _, err := kube.CoreV1().Nodes().Update(ctx, old, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p, _ = lookAtGroup(ctx, kube, "ng")
	if !p.updating() || p.settled() || p.target != "ami-new" || p.tainted != 1 || p.cordon != 1 ||
		p.String() != "3 nodes: 1 on ami-new, 2 on ami-old; 1 tainted by EKS, 1 cordoned" {
		t.Fatalf("during: %+v %q", p, p.String())
	}
	for _, name := range []string{"a", "b"} {
		if err := kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if p, _ = lookAtGroup(ctx, kube, "ng"); p.updating() || !p.settled() || p.nodes != 1 {
		t.Fatalf("after: %+v", p)
	}
}

// Following EKS's update, watch reads the group's nodes from the view's
// node watch, not from a list a second: the watch's slimmed nodes tell the
// same picture (the newest node's AMI, EKS's taint, the cordon), and other
// groups' nodes are not in it.
func TestTheNodeWatchTellsTheSamePictureAsAList(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	other := groupNode("x", "ami-other", t0.Add(time.Hour), true, true)
	other.Labels[eksGroupLabel] = "other"
	kube := k8sfake.NewClientset(other, groupNode("a", "ami-old", t0, true, true),
		groupNode("b", "ami-old", t0, false, false), groupNode("c", "ami-new", t0.Add(time.Minute), false, false))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	view := progress.NewView(io.Discard, false, clock.RealClock{})
	if got := view.Watched(); got != nil {
		t.Fatalf("nodes before any watch: %v", got)
	}
	if err := view.WatchNodes(ctx, kube, func(n *corev1.Node) bool { return n.Labels[eksGroupLabel] == "ng" }); err != nil {
		t.Fatal(err)
	}
	listed, err := lookAtGroup(ctx, kube, "ng")
	if err != nil {
		t.Fatal(err)
	}
	watched := pictureOf(view.Watched())
	if watched.String() != listed.String() || watched.target != "ami-new" ||
		watched.String() != "3 nodes: 1 on ami-new, 2 on ami-old; 1 tainted by EKS, 1 cordoned" {
		t.Errorf("from the watch %q (target %s), from a list %q", watched, watched.target, listed)
	}
}
