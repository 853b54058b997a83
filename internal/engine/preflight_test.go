package engine

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/noderoll/noderoll/internal/preflight"
)

// The preflight keeps a slim copy of every pod of the group: the checks
// find on the copies exactly what they find on the pods as the API server
// sends them.
func TestPreflightsPodCopiesKeepWhatTheChecksRead(t *testing.T) {
	yes := true
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "rs", Controller: &yes}}
	full := func(name string, mod func(p *corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: "uid-" + "name", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{"team": "a"}, OwnerReferences: owner,
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "web:1"}},
				Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
		if mod != nil {
			mod(p)
		}
		return p
	}
	pods := []*corev1.Pod{
		full("plain", nil),
		full("bare", func(p *corev1.Pod) { p.OwnerReferences = nil }),
		full("scratch", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				corev1.Volume{Name: "logs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}})
		}),
		full("data", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-0"}}})
		}),
		full("pinned", func(p *corev1.Pod) { p.Annotations["karpenter.sh/do-not-disrupt"] = "true" }),
		full("done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded; p.OwnerReferences = nil }),
		full("going", func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now; p.OwnerReferences = nil }),
		full("mirror", func(p *corev1.Pod) { p.Annotations[corev1.MirrorPodAnnotationKey] = "x"; p.OwnerReferences = nil }),
	}
	one, two := intstr.FromInt32(1), intstr.FromInt32(0)
	budgets := []*policyv1.PodDisruptionBudget{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "all-web"}, Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
	}
	facts := func(ps []*corev1.Pod) preflight.Facts {
		return preflight.Facts{Group: "c/g", AZs: []string{"us-west-2a"}, Desired: 1, Surge: 1, Pods: ps, Budgets: budgets,
			VolumeZones: map[string]string{"default/data-0": "us-west-2c"}}
	}
	var slim []*corev1.Pod
	for _, p := range pods {
		s := preflightPod(p)
		if s.ManagedFields != nil || s.Spec.Containers != nil || s.Status.Conditions != nil {
			t.Errorf("%s: the copy keeps what no check reads: %+v", p.Name, s)
		}
		slim = append(slim, s)
	}
	want, got := preflight.Check(facts(pods)), preflight.Check(facts(slim))
	if len(want) < 6 {
		t.Fatalf("the pods should give findings of every kind the copies keep; got %d: %+v", len(want), want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("on the copies:\n%+v\non the pods:\n%+v", got, want)
	}
}
