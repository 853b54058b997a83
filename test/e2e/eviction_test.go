package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// TestEvictionsTheAPIServerRefusesForGood: on the real API server, a pod
// under two PodDisruptionBudgets is refused every time, so the upgrade fails
// at once naming both budgets (not at its eviction timeout) and moves no pod
// of it. With one budget gone the rerun resumes; a pod a finalizer holds
// terminating is left behind after --skip-wait-for-delete-timeout, still
// there, and the upgrade finishes.
func TestEvictionsTheAPIServerRefusesForGood(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t, "--nodes=2", "--azs=2", "--pods-per-node=1")
	ctx := context.Background()
	labels := map[string]string{"app": "api", "tier": "front"}
	one := intstr.FromInt32(1)
	if _, err := s.Kube.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "api", Image: "api:1"}},
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					// One on each old node, so the first drain meets one.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: labels}}},
				},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, sel := range map[string]map[string]string{"api": {"app": "api"}, "front": {"tier": "front"}} {
		if _, err := s.Kube.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: sel}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitWorkloads(t, s)
	apiPods := func() []string { return s.RunningPods("default", "app=api") }
	before := apiPods()

	// Preflight would stop the run before any change (TestPreflight...); this
	// test is about the drain that meets the overlap anyway.
	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=pdb-overlap", "--eviction-timeout=10m", "--timeout=5m")...)
	if r.Code == 0 {
		t.Fatal("the upgrade went through a pod the Eviction API refuses")
	}
	last := r.LastLine()
	if !strings.Contains(last, "more than one PodDisruptionBudget") || !strings.Contains(last, "default/api (") || !strings.Contains(last, "default/front (") {
		t.Fatalf("the last line does not name the pod's two budgets:\n%s", last)
	}
	// Failed on the refusal itself, not on --eviction-timeout or --timeout.
	if strings.Contains(last, "timeout") {
		t.Fatalf("the run waited for a refusal that never changes: %s", last)
	}
	if after := apiPods(); !slices.Equal(after, before) {
		t.Fatalf("api pods moved on a refused drain: %v -> %v", before, after)
	}

	if err := s.Kube.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "front", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The disruption controller counted each api pod under one of the two
	// budgets, as it chose, and does not recount "api" when "front" goes:
	// its status may stay at 1 healthy and 0 allowed, which the Eviction API
	// obeys. Touching the budget makes the controller recount it.
	eventually(t, time.Minute, "budget default/api recounted with both pods", func() (bool, string) {
		pdb, err := s.Kube.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if pdb.Status.CurrentHealthy == 2 && pdb.Status.DisruptionsAllowed == 1 {
			return true, ""
		}
		if pdb.Annotations == nil {
			pdb.Annotations = map[string]string{}
		}
		pdb.Annotations["e2e.noderoll.io/recount"] = time.Now().Format(time.RFC3339Nano)
		_, _ = s.Kube.PolicyV1().PodDisruptionBudgets("default").Update(ctx, pdb, metav1.UpdateOptions{})
		return false, fmt.Sprintf("%d healthy, %d allowed", pdb.Status.CurrentHealthy, pdb.Status.DisruptionsAllowed)
	})
	// A pod that can never finish terminating, on an old node.
	var old string
	for _, n := range groupNodes(t, s) {
		if slices.ContainsFunc(n.Spec.Taints, func(x corev1.Taint) bool { return x.Key == "eks.amazonaws.com/nodegroup" }) {
			old = n.Name
		}
	}
	if old == "" {
		t.Fatal("no tainted old node left after the failed run")
	}
	if _, err := s.Kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"e2e.noderoll.io/hold"}},
		Spec: corev1.PodSpec{NodeName: old, Containers: []corev1.Container{{Name: "held", Image: "held:1"}},
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // let the pod go once the test is done with it
		if p, err := s.Kube.CoreV1().Pods("default").Get(context.Background(), "held", metav1.GetOptions{}); err == nil {
			p.Finalizers = nil
			_, _ = s.Kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{})
		}
	})
	// The held pod has no controller: preflight would stop the run on it.
	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=bare-pod", "--skip-wait-for-delete-timeout=3s", "--timeout=5m")...)
	if r.Code != 0 {
		t.Fatalf("the upgrade did not get past a pod held terminating: %s", r.LastLine())
	}
	if !strings.Contains(r.Stdout, "pod default/held is still terminating") {
		t.Errorf("the run did not say it left default/held behind:\n%s", tail(r.Stdout, 40))
	}
	held, err := s.Kube.CoreV1().Pods("default").Get(ctx, "held", metav1.GetOptions{})
	if err != nil || held.DeletionTimestamp == nil || len(held.Finalizers) != 1 {
		t.Fatalf("the held pod: want it still there, terminating, its finalizer untouched; got %v (err %v)", held.ObjectMeta, err)
	}
	allOnTarget(t, s, 2)
}
