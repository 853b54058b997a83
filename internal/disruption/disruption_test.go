package disruption

import (
	"context"
	"io"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	kdrain "k8s.io/kubectl/pkg/drain"
	"k8s.io/utils/ptr"
)

func budget(ns, name string, sel *metav1.LabelSelector) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel}}
}

func pod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Spec: corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

// The cases the Eviction API of policy/v1 decides (test/e2e's
// TestBudgetSelectionIsTheAPIServers checks the same on the real API server).
func TestSelectsAsTheEvictionAPI(t *testing.T) {
	web := pod("shop", "web-1", map[string]string{"app": "web"})
	for _, c := range []struct {
		name string
		pdb  *policyv1.PodDisruptionBudget
		want bool
	}{
		{"an empty selector selects every pod of its namespace", budget("shop", "all", &metav1.LabelSelector{}), true},
		{"a missing selector selects none", budget("shop", "none", nil), false},
		{"a matching label", budget("shop", "web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}), true},
		{"another label", budget("shop", "db", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}), false},
		{"a matching expression", budget("shop", "expr", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}}), true},
		{"an empty selector in another namespace", budget("other", "all", &metav1.LabelSelector{}), false},
		{"a selector that does not parse selects none", budget("shop", "bad", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: "Resembles", Values: []string{"web"}}}}), false},
	} {
		if got := Selects(c.pdb, web); got != c.want {
			t.Errorf("%s: Selects = %v, want %v", c.name, got, c.want)
		}
		// The parsed-once form decides alike, keyed by UID or not.
		var sels Selectors
		for _, uid := range []types.UID{"", "uid-" + types.UID(c.pdb.Name)} {
			pdb := c.pdb.DeepCopy()
			pdb.UID = uid
			for range 2 {
				if got := len(sels.Covering([]*policyv1.PodDisruptionBudget{pdb}, web)) == 1; got != c.want {
					t.Errorf("%s (uid %q): Selectors.Covering selects = %v, want %v", c.name, uid, got, c.want)
				}
			}
		}
	}
}

// A budget's selector changed (its generation moves) is read anew; a
// status write (its resourceVersion moves, not its generation) is not a
// reason to.
func TestSelectorsReadABudgetsNewSelector(t *testing.T) {
	var sels Selectors
	pdb := budget("shop", "web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})
	pdb.UID, pdb.Generation = "u1", 1
	web, api := pod("shop", "web-1", map[string]string{"app": "web"}), pod("shop", "api-1", map[string]string{"app": "api"})
	list := []*policyv1.PodDisruptionBudget{pdb}
	if len(sels.Covering(list, web)) != 1 || len(sels.Covering(list, api)) != 0 {
		t.Fatal("generation 1 selects app=web")
	}
	pdb.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
	pdb.Generation = 2
	if len(sels.Covering(list, web)) != 0 || len(sels.Covering(list, api)) != 1 {
		t.Fatal("generation 2 selects app=api, and the cache still answered generation 1's")
	}
}

func TestCoveringListsEveryBudgetOfAPod(t *testing.T) {
	all := budget("shop", "all", &metav1.LabelSelector{})
	web := budget("shop", "web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}})
	db := budget("shop", "db", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}})
	got := Covering([]*policyv1.PodDisruptionBudget{all, db, web}, pod("shop", "web-1", map[string]string{"app": "web"}))
	if len(got) != 2 || got[0] != all || got[1] != web {
		t.Fatalf("a pod under the namespace's {} budget and its own: got %v", names(got))
	}
	if got := Covering([]*policyv1.PodDisruptionBudget{db}, pod("shop", "web-1", map[string]string{"app": "web"})); got != nil {
		t.Errorf("a budget matching no pod covers %v", names(got))
	}
}

func names(pdbs []*policyv1.PodDisruptionBudget) []string {
	var out []string
	for _, p := range pdbs {
		out = append(out, p.Name)
	}
	return out
}

// Evicts agrees with kubectl's drain filters, set as noderoll's drain sets
// them, on every running pod those filters list for eviction.
func TestEvictsAgreesWithKubectlsDrain(t *testing.T) {
	ctrl := func(kind, name string) []metav1.OwnerReference {
		apiVersion := "apps/v1"
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: ptr.To(true)}}
	}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-node"}}
	byDeployment := pod("shop", "web-1", nil)
	byDeployment.OwnerReferences = ctrl("ReplicaSet", "web-abc")
	byDaemonSet := pod("kube-system", "aws-node-x", nil)
	byDaemonSet.OwnerReferences = ctrl("DaemonSet", "aws-node")
	mirror := pod("kube-system", "static-n1", nil)
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
	bare := pod("shop", "bare", nil)
	withEmptyDir := pod("shop", "cache-1", nil)
	withEmptyDir.OwnerReferences = ctrl("StatefulSet", "cache")
	withEmptyDir.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pods := []*corev1.Pod{byDeployment, byDaemonSet, mirror, bare, withEmptyDir}

	objs := []runtime.Object{ds}
	for _, p := range pods {
		objs = append(objs, p)
	}
	h := &kdrain.Helper{Ctx: context.Background(), Client: fake.NewClientset(objs...), Force: true, IgnoreAllDaemonSets: true,
		DeleteEmptyDirData: true, GracePeriodSeconds: -1, Out: io.Discard, ErrOut: io.Discard}
	list, errs := h.GetPodsForDeletion("n1")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var kubectl, ours []string
	for _, p := range list.Pods() {
		kubectl = append(kubectl, p.Name)
	}
	for _, p := range pods {
		if Evicts(p) {
			ours = append(ours, p.Name)
		}
	}
	slices.Sort(kubectl)
	slices.Sort(ours)
	if !slices.Equal(kubectl, ours) {
		t.Fatalf("kubectl's drain evicts %v, Evicts says %v", kubectl, ours)
	}
	if want := []string{"bare", "cache-1", "web-1"}; !slices.Equal(ours, want) {
		t.Errorf("evicted %v, want %v", ours, want)
	}
}

// Pods that are done or going spend no budget and need no eviction.
func TestEvictsLeavesFinishedAndDeletedPods(t *testing.T) {
	done := pod("shop", "job-1", nil)
	done.Status.Phase = corev1.PodSucceeded
	failed := pod("shop", "job-2", nil)
	failed.Status.Phase = corev1.PodFailed
	going := pod("shop", "web-2", nil)
	going.DeletionTimestamp = &metav1.Time{}
	for _, p := range []*corev1.Pod{done, failed, going} {
		if Evicts(p) {
			t.Errorf("pod %s (%s, deleting %v) is counted as one a drain evicts", p.Name, p.Status.Phase, p.DeletionTimestamp != nil)
		}
	}
}
