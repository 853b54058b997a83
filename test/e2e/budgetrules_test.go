package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/disruption"
)

// TestBudgetRulesAreTheAPIServers: which budgets cover a pod is what the
// real API server's Eviction API enforces (package disruption, asked by
// preflight, the planner and the drain alike): a budget with selector {}
// covers every pod of its namespace, one matching no pod covers none, a pod
// under two is refused. So a {} budget allowing 0 fails --dry-run naming it,
// before anything changes; allowing 1, the upgrade finishes within it.
func TestBudgetRulesAreTheAPIServers(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	workload := func(ns, app string, replicas int32) {
		t.Helper()
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		labels := map[string]string{"app": app}
		if _, err := s.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: app},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: app, Image: app + ":1"}}, TerminationGracePeriodSeconds: ptr.To(int64(1))}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pdb := func(ns, name string, sel *metav1.LabelSelector, maxUnavailable int32) {
		t.Helper()
		if _, err := s.Kube.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: ptr.To(intstr.FromInt32(maxUnavailable))},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	workload("batch", "worker", 3)
	pdb("batch", "everything", &metav1.LabelSelector{}, 0)
	workload("shop", "api", 2)
	pdb("shop", "nothing", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "absent"}}, 0)
	workload("dup", "dup", 2)
	pdb("dup", "dup", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dup"}}, 1)
	pdb("dup", "all", &metav1.LabelSelector{}, 1)
	waitWorkloads(t, s)
	for _, ns := range []string{"batch", "shop", "dup"} {
		eventually(t, time.Minute, "the disruption controller's status on every budget of "+ns, func() (bool, string) {
			list, err := s.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, b := range list.Items {
				// (Of two budgets over the same pods, the disruption
				// controller counts the pods for one only: dup's may read 0.)
				if b.Status.ObservedGeneration < b.Generation || b.Status.ExpectedPods == 0 && b.Name == "everything" {
					return false, fmt.Sprintf("%s: observed %d of %d, expects %d", b.Name, b.Status.ObservedGeneration, b.Generation, b.Status.ExpectedPods)
				}
			}
			return true, ""
		})
	}

	// For one pod of each namespace, package disruption's verdict and the
	// Eviction API's (a dry run: nothing is evicted) agree.
	for _, c := range []struct {
		ns, app string
		covers  []string
		code    int // the Eviction API's answer
	}{
		{"batch", "worker", []string{"everything"}, 429},
		{"shop", "api", nil, 201},
		{"dup", "dup", []string{"all", "dup"}, 500},
	} {
		pods, err := s.Kube.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + c.app})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("no pod of %s/%s: %v", c.ns, c.app, err)
		}
		p := &pods.Items[0]
		budgets, err := s.Kube.PolicyV1().PodDisruptionBudgets(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var all []*policyv1.PodDisruptionBudget
		for k := range budgets.Items {
			all = append(all, &budgets.Items[k])
		}
		var covers []string
		for _, b := range disruption.Covering(all, p) {
			covers = append(covers, b.Name)
		}
		slices.Sort(covers)
		if !slices.Equal(covers, c.covers) {
			t.Errorf("pod %s/%s: disruption.Covering says %v, want %v", c.ns, p.Name, covers, c.covers)
		}
		err = s.Kube.CoreV1().Pods(c.ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: c.ns},
			DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}})
		code := 201
		if st, ok := err.(apierrors.APIStatus); ok {
			code = int(st.Status().Code)
		} else if err != nil {
			t.Fatalf("evicting %s/%s: %v", c.ns, p.Name, err)
		}
		if code != c.code {
			t.Errorf("pod %s/%s under %v: the Eviction API answered %d (%v), want %d", c.ns, p.Name, covers, code, err, c.code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, name := range []string{"dup", "all"} {
		if err := s.Kube.PolicyV1().PodDisruptionBudgets("dup").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The {} budget allowing 0: --dry-run names it and changes nothing.
	upgrade := append(slices.Clone(seedUpgrade), "--strategy=surge")
	before, beforeCluster := snapshot(t, s), clusterState(t, s)
	r := s.Noderoll(append(slices.Clone(upgrade), "--dry-run")...)
	if r.Code == 0 {
		t.Fatalf("--dry-run passed a {} budget allowing no disruption:\n%s", tail(r.Stdout, 30))
	}
	if out := r.Stdout + r.Stderr; !strings.Contains(out, "PodDisruptionBudget batch/everything") || !strings.Contains(out, "maxUnavailable is 0") {
		t.Fatalf("--dry-run does not name batch/everything and why:\n%s\n%s", tail(r.Stdout, 30), tail(r.Stderr, 10))
	}
	if after, afterCluster := snapshot(t, s), clusterState(t, s); after != before || !maps.Equal(afterCluster.nodes, beforeCluster.nodes) || afterCluster.leases != beforeCluster.leases {
		t.Fatalf("--dry-run changed something: %+v -> %+v", before, after)
	}

	// Allowing 1, the run drains through it with no breach.
	b, err := s.Kube.PolicyV1().PodDisruptionBudgets("batch").Get(ctx, "everything", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(1))
	if _, err := s.Kube.PolicyV1().PodDisruptionBudgets("batch").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "batch/everything allowing one disruption", func() (bool, string) {
		b, err := s.Kube.PolicyV1().PodDisruptionBudgets("batch").Get(ctx, "everything", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return b.Status.DisruptionsAllowed == 1, fmt.Sprintf("allowed %d", b.Status.DisruptionsAllowed)
	})
	watch := WatchBudgets(t, s.Kube)
	if r := s.Noderoll(upgrade...); r.Code != 0 {
		t.Fatalf("the upgrade under a {} budget allowing 1 failed: %s\n%s", r.LastLine(), tail(r.Stderr, 20))
	}
	violations, lowest, checks := watch.Stop()
	if len(violations) > 0 {
		t.Errorf("budgets breached (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	if lowest["batch/everything"] != 2 {
		t.Errorf("batch/everything went down to %d healthy pods, want exactly 2 (3 less its 1 disruption)", lowest["batch/everything"])
	}
	allOnTarget(t, s, 3)
}
