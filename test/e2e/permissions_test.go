package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/noderoll/noderoll/internal/permissions"
	"github.com/noderoll/noderoll/internal/sandbox"
)

// TestAnUpgradeRunsWithOnlyItsPermissions: a token bound to nothing but
// the roles of package permissions (what `noderoll permissions` prints and
// docs/aws.md lists) runs the seed's upgrade end to end, its dry run and
// its rerun, on a real API server enforcing RBAC; the same token is refused
// what the roles leave out.
func TestAnUpgradeRunsWithOnlyItsPermissions(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	cr, r := permissions.Roles("noderoll-least")
	if _, err := s.Kube.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Kube.RbacV1().Roles(r.Namespace).Create(ctx, r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(s.Dir, "least.kubeconfig")
	id := sandbox.Identity{Name: "noderoll-least", PriorityLevel: "workload-high", ClusterRole: cr.Name, Role: r.Name}
	if err := id.Kubeconfig(ctx, s.Kube, s.State.Kubeconfig, kubeconfig); err != nil {
		t.Fatal(err)
	}
	least := func(args ...string) Result {
		t.Helper()
		return s.run(append(slices.Clone(s.env), "KUBECONFIG="+kubeconfig), args...)
	}
	upgrade := append(slices.Clone(seedUpgrade), "--strategy=surge")

	if r := least(append(slices.Clone(upgrade), "--dry-run")...); r.Code != 0 {
		t.Fatalf("--dry-run with only noderoll's permissions: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stderr, 20))
	}
	if r := least(upgrade...); r.Code != 0 {
		t.Fatalf("the upgrade with only noderoll's permissions: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stderr, 30))
	} else if strings.Contains(r.Stderr, "forbidden") {
		t.Errorf("the upgrade passed but was refused something on the way:\n%s", tail(r.Stderr, 30))
	}
	allOnTarget(t, s, 3)
	if r := least(upgrade...); r.Code != 0 || !strings.Contains(r.Stdout, "Up to date") {
		t.Fatalf("the rerun with only noderoll's permissions: exit %d %s", r.Code, r.LastLine())
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler not restored under noderoll's permissions: %v", err)
	}
	// What the roles leave out is refused by the API server.
	if _, err := leastClient(t, kubeconfig).CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets with noderoll's permissions: %v, want 403 Forbidden", err)
	}
}

// leastClient is a client acting as the kubeconfig's identity.
func leastClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
