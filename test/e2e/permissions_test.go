package e2e

import (
	"context"
	"maps"
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
	cr, r := permissions.Roles("noderoll-least", false)
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

	// Deleting pods is left out of the roles: a run asking for --force is
	// stopped by its preflight, on the API server's own answer, before
	// anything changes.
	account, cluster := snapshot(t, s), clusterState(t, s)
	forced := least(append(slices.Clone(upgrade), "--force")...)
	if r := forced; r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "[force-permission]") || !strings.Contains(r.Stdout+r.Stderr, "noderoll permissions --force") ||
		!strings.Contains(r.Stderr, "nothing was changed") {
		t.Fatalf("--force without leave to delete pods: exit %d; want a blocking force-permission finding naming the fix\n%s\n%s", r.Code, tail(r.Stdout, 20), tail(r.Stderr, 10))
	}
	if a, c := snapshot(t, s), clusterState(t, s); a != account || !maps.Equal(c.nodes, cluster.nodes) || c.leases != cluster.leases {
		t.Fatalf("the refused --force run changed something: account %+v -> %+v, nodes %v -> %v", account, a, cluster.nodes, c.nodes)
	}

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
	// What the roles leave out is refused by the API server: Secrets, and
	// deleting a pod outside the Eviction API (and so its budget).
	if _, err := leastClient(t, kubeconfig).CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets with noderoll's permissions: %v, want 403 Forbidden", err)
	}
	deletePodForbidden(t, leastClient(t, kubeconfig), s.Kube)
}

// deletePodForbidden deletes, as the least identity, one of the cluster's
// application pods without eviction, and wants a 403 and the pod still
// there.
func deletePodForbidden(t *testing.T, least, admin kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	pods, err := admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no pod to try: %v", err)
	}
	p := pods.Items[0]
	if err := least.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("deleting pod %s/%s without eviction: %v, want 403 Forbidden", p.Namespace, p.Name, err)
	}
	if got, err := admin.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil {
		t.Errorf("pod %s/%s after the refused delete: %v", p.Namespace, p.Name, err)
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
