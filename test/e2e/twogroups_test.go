package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/conditions"
)

// TestTwoGroupsShareTheAutoscaler: a second managed group is made on the
// running sandbox with the AWS CLI's create-nodegroup (the first group's
// subnets and node role), and the two groups are upgraded by two
// concurrent CLI runs. The first is killed with SIGKILL mid-upgrade; the
// second finishes, and the cluster-autoscaler stays at 0 (the killed
// upgrade still holds it); the first is resumed and finishes, and only then
// is the autoscaler back at its replicas.
func TestTwoGroupsShareTheAutoscaler(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()

	var first struct {
		Nodegroup struct {
			Subnets  []string `json:"subnets"`
			NodeRole string   `json:"nodeRole"`
		} `json:"nodegroup"`
	}
	s.AWSCLI(&first, "eks", "describe-nodegroup", "--cluster-name", "eksworkshop-eksctl", "--nodegroup-name", "nodegroup")
	var created struct {
		Nodegroup struct {
			Status  string `json:"status"`
			Version string `json:"version"`
		} `json:"nodegroup"`
	}
	s.AWSCLI(&created, "eks", "create-nodegroup", "--cluster-name", "eksworkshop-eksctl", "--nodegroup-name", "nodegroup-b",
		"--subnets", first.Nodegroup.Subnets[0], first.Nodegroup.Subnets[1], "--node-role", first.Nodegroup.NodeRole,
		"--kubernetes-version", "1.36", "--ami-type", "AL2023_x86_64_STANDARD", "--instance-types", "m5.large",
		"--scaling-config", "minSize=2,maxSize=2,desiredSize=2")
	if created.Nodegroup.Status != "CREATING" || created.Nodegroup.Version != "1.36" {
		t.Fatalf("create-nodegroup answered %+v", created.Nodegroup)
	}
	eventually(t, 3*time.Minute, "nodegroup-b's 2 nodes Ready", func() (bool, string) {
		nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "eks.amazonaws.com/nodegroup=nodegroup-b"})
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes.Items {
			if conditions.NodeReady(&n) {
				ready++
			}
		}
		return ready == 2, fmt.Sprintf("%d of %d Ready", ready, len(nodes.Items))
	})
	waitWorkloads(t, s)
	budgets := WatchBudgets(t, s.Kube)
	autoscaler := func() (int32, string) {
		ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *ca.Spec.Replicas, ca.Annotations["noderoll.io/autoscaler-holders"]
	}

	// nodegroup's run is slowed by a long post-cordon wait, so that it is
	// still under way when it is killed. nodegroup-b runs on the launch
	// template EKS made for it, which preflight stops unless told.
	upgradeA := append(slices.Clone(seedUpgrade), "--strategy=surge", "--post-cordon-wait=30s")
	upgradeB := []string{"upgrade", "nodegroup", "--name=nodegroup-b", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=3s", "--eviction-retry-delay=1s", "--ignore-preflight=eks-template"}
	a := s.Start(upgradeA...)
	eventually(t, 3*time.Minute, "nodegroup's upgrade holding the autoscaler", func() (bool, string) {
		n, holders := autoscaler()
		return n == 0 && strings.Contains(holders, `"eksworkshop-eksctl/nodegroup"`), fmt.Sprintf("replicas %d, holders %s; %s", n, holders, tail(a.out.String(), 3))
	})
	b := s.Start(upgradeB...)
	eventually(t, 3*time.Minute, "both upgrades holding the autoscaler", func() (bool, string) {
		n, holders := autoscaler()
		return n == 0 && strings.Contains(holders, `"eksworkshop-eksctl/nodegroup"`) && strings.Contains(holders, `"eksworkshop-eksctl/nodegroup-b"`),
			fmt.Sprintf("replicas %d, holders %s; b: %s %s", n, holders, tail(b.out.String(), 3), tail(b.err.String(), 3))
	})
	eventually(t, 3*time.Minute, "the first upgrade draining", func() (bool, string) {
		return strings.Contains(a.out.String(), "Replace node 1/3"), tail(a.out.String(), 5)
	})
	a.Kill(t)
	if code := b.Wait(); code != 0 {
		t.Fatalf("nodegroup-b's upgrade beside the killed one: exit %d\n%s\n%s", code, tail(b.out.String(), 20), tail(b.err.String(), 10))
	}
	if n, holders := autoscaler(); n != 0 || !strings.Contains(holders, `"eksworkshop-eksctl/nodegroup"`) || strings.Contains(holders, "nodegroup-b") {
		t.Fatalf("after nodegroup-b's end, nodegroup's killed upgrade unfinished: autoscaler at %d, holders %s; want 0, held by nodegroup alone", n, holders)
	}
	if !strings.Contains(b.out.String(), "stays at 0: the upgrades of eksworkshop-eksctl/nodegroup still hold it") {
		t.Errorf("nodegroup-b's run did not say why it left the autoscaler at 0:\n%s", tail(b.out.String(), 10))
	}

	r := s.Noderoll(upgradeA...)
	if r.Code != 0 {
		t.Fatalf("resuming nodegroup's upgrade: %s\n%s", r.LastLine(), tail(r.Stderr, 20))
	}
	if n, holders := autoscaler(); n != 1 || holders != "" {
		t.Fatalf("after both: autoscaler at %d, holders %q; want its 1 replica back and no holder", n, holders)
	}
	allOnTarget(t, s, 3)
	for _, group := range []string{"nodegroup", "nodegroup-b"} {
		nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "eks.amazonaws.com/nodegroup=" + group})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			if v := n.Status.NodeInfo.KubeletVersion; !strings.HasPrefix(v, "v1.37.") {
				t.Errorf("node %s of %s runs %s after both upgrades", n.Name, group, v)
			}
		}
	}
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("budgets below their minimum or pods lost (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}
