package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/noderoll/noderoll/internal/sandbox"
)

// eksctl is built once per test process, from its Go module, into the
// tools cache the control plane's binaries live in (and reused by every
// later run).
var eksctlBuild struct {
	once sync.Once
	path string
	err  error
}

func eksctlBinary(t *testing.T) string {
	t.Helper()
	noderollBinary(t) // the control plane first: one build at a time
	eksctlBuild.once.Do(func() {
		home, checkout := sandbox.Home()
		tc := sandbox.NewToolchain(home, sandbox.ToolsModuleDir(checkout))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		eksctlBuild.path, eksctlBuild.err = tc.EnsureEksctl(ctx, os.Stderr)
	})
	if eksctlBuild.err != nil {
		t.Fatal(eksctlBuild.err)
	}
	return eksctlBuild.path
}

// TestTheSeedsOwnEksctlCommandUpgradesTheSandboxsGroup: the seed's command
// as written, run by the real eksctl against the sandbox's EKS, upgrades
// the managed group to the recommended 1.37 AMI within its budgets, and
// eksctl reads the group and the cluster back. `noderoll watch` follows
// EKS's update from the nodes, as the seed follows it with kubectl get
// nodes --watch. The group is made as EKS makes one given no template of
// the user's (--eks-template): eksctl refuses --kubernetes-version on a
// group whose launch template names its AMI, as the default seed's does.
func TestTheSeedsOwnEksctlCommandUpgradesTheSandboxsGroup(t *testing.T) {
	t.Parallel() // a sandbox of its own
	built := eksctlBinary(t)
	s := StartSandbox(t, "--eks-template", "--with-eksctl")
	eksctl := filepath.Join(s.Dir, "bin", "eksctl")
	if target, err := os.Readlink(eksctl); err != nil || target != built {
		t.Fatalf("sandbox up --with-eksctl put %s -> %q (%v) on the PATH, want the built %s", eksctl, target, err, built)
	}
	env := append(cleanEnv(), s.env...)
	target := s.RecommendedAMI("1.37")
	budgets := WatchBudgets(t, s.Kube)
	watch := s.Start("watch", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--wait")
	eventually(t, time.Minute, "watch waiting for an update", func() (bool, string) {
		return strings.Contains(watch.out.String(), "waiting for an upgrade"), watch.out.String() + watch.err.String()
	})

	r := runBinary(t, eksctl, "", env, "upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37")
	if r.Code != 0 || !strings.Contains(r.Stdout+r.Stderr, "nodegroup successfully upgraded") {
		t.Fatalf("eksctl upgrade nodegroup: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if violations, _, checks := budgets.Stop(); len(violations) > 0 || checks < 10 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	allOnTarget(t, s, 3)
	for _, n := range groupNodes(t, s) {
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		if !ready || n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
			t.Errorf("node %s after EKS's update: ready %v, unschedulable %v, taints %v", n.Name, ready, n.Spec.Unschedulable, n.Spec.Taints)
		}
	}
	// eksctl took EKS's API path (no stack made the group): one update,
	// after reading the cluster and looking for the group's stack.
	if n := len(s.Calls("UpdateNodegroupVersion")); n != 1 {
		t.Errorf("the endpoint saw %d UpdateNodegroupVersion calls, want 1", n)
	}
	for _, action := range []string{"DescribeCluster", "ListStacks", "DescribeNodegroup", "DescribeUpdate"} {
		if len(s.Calls(action)) == 0 {
			t.Errorf("the endpoint saw no %s call from eksctl", action)
		}
	}

	r = runBinary(t, eksctl, "", env, "get", "nodegroup", "--cluster=eksworkshop-eksctl", "-o", "json")
	var ngs []struct{ Name, Status, Version, Type string }
	if err := json.Unmarshal([]byte(r.Stdout), &ngs); r.Code != 0 || err != nil || len(ngs) != 1 ||
		ngs[0].Name != "nodegroup" || ngs[0].Status != "ACTIVE" || ngs[0].Version != "1.37" || ngs[0].Type != "managed" {
		t.Errorf("eksctl get nodegroup: exit %d, %+v (%v); want nodegroup ACTIVE on 1.37, managed\n%s", r.Code, ngs, err, r.Stderr)
	}
	u := s.Kube.Discovery().RESTClient().Get().URL()
	apiServer := u.Scheme + "://" + u.Host
	r = runBinary(t, eksctl, "", env, "get", "cluster", "--name=eksworkshop-eksctl", "-o", "json")
	var cls []struct {
		Name, Version, Status string
		Endpoint              string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &cls); r.Code != 0 || err != nil || len(cls) != 1 || cls[0].Name != "eksworkshop-eksctl" ||
		cls[0].Version != "1.37" || cls[0].Status != "ACTIVE" || cls[0].Endpoint != apiServer {
		t.Errorf("eksctl get cluster: exit %d, %+v (%v); want eksworkshop-eksctl ACTIVE on 1.37 at %s\n%s", r.Code, cls, err, apiServer, r.Stdout)
	}

	if len(s.Calls("DescribeClusterVersions")) == 0 {
		t.Error("eksctl get cluster resolved its versions without DescribeClusterVersions")
	}

	// watch followed EKS's update to its end, node by node.
	done := make(chan int, 1)
	go func() { done <- watch.Wait() }()
	select {
	case code := <-done:
		out := watch.out.String()
		if code != 0 {
			t.Fatalf("watch exited %d:\n%s\n%s", code, out, watch.err.String())
		}
		for _, want := range []string{"EKS is updating the managed group itself", "tainted by EKS", "Ready,SchedulingDisabled",
			"Completed: nodes 3 -> 6 -> 3", "every one of its 3 nodes runs " + target} {
			if !strings.Contains(out, want) {
				t.Errorf("watch did not say %q:\n%s", want, out)
			}
		}
		if gone, joined := strings.Count(out, " gone\n"), strings.Count(out, "+ ip-"); gone < 3 || joined < 3 {
			t.Errorf("watch showed %d nodes joining and %d gone, want at least 3 of each:\n%s", joined, gone, out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("watch did not end within 3 minutes of EKS's update:\n%s", watch.out.String())
	}
}
