package charts

import (
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/noderoll/noderoll/internal/controllercmd"
	"github.com/noderoll/noderoll/internal/permissions"
)

func as[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []*T {
	t.Helper()
	var out []*T
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
			t.Fatalf("%s %s: %v", kind, o.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

// What `helm install nr charts/noderoll -n noderoll-system` would create,
// rendered by Helm's engine: the CRD, a ServiceAccount with its IRSA
// annotation, exactly the controller's permissions bound to it, two
// leader-electing replicas with probes, requests and limits, and the
// metrics Service.
func TestTheChartRendersTheController(t *testing.T) {
	objs, err := Render("nr", "noderoll-system", map[string]any{
		"serviceAccount": map[string]any{"annotations": map[string]any{"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/noderoll"}},
		"aws":            map[string]any{"region": "eu-west-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	want := map[string]int{"CustomResourceDefinition": 2, "ServiceAccount": 1, "ClusterRole": 1, "Role": 1, "ClusterRoleBinding": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("rendered %v, want %v", kinds, want)
	}
	// The CRDs come first, as generated from api/v1alpha1.
	for k, file := range []string{"noderoll/crds/noderoll.io_nodegroupupgradepolicies.yaml", "noderoll/crds/noderoll.io_nodegroupupgrades.yaml"} {
		crd, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crdObj map[string]any
		if err := yaml.Unmarshal(crd, &crdObj); err != nil || !reflect.DeepEqual(objs[k].Object, crdObj) {
			t.Errorf("the chart's object %d is not the generated %s (%v)", k, file, err)
		}
	}

	sa := as[corev1.ServiceAccount](t, objs, "ServiceAccount")[0]
	if sa.Namespace != "noderoll-system" || sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Errorf("ServiceAccount %s/%s annotations %v", sa.Namespace, sa.Name, sa.Annotations)
	}
	cr := as[rbacv1.ClusterRole](t, objs, "ClusterRole")[0]
	role := as[rbacv1.Role](t, objs, "Role")[0]
	wantCR, wantRole := permissions.ControllerRoles("nr-controller", false)
	if cr.Name != "nr-controller" || !reflect.DeepEqual(cr.Rules, wantCR.Rules) || role.Namespace != "kube-system" || !reflect.DeepEqual(role.Rules, wantRole.Rules) {
		t.Errorf("the chart's roles are not the controller's permissions:\n%+v\n%+v", cr, role)
	}
	for _, b := range as[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding") {
		if b.RoleRef.Name != cr.Name || len(b.Subjects) != 1 || b.Subjects[0].Name != sa.Name || b.Subjects[0].Namespace != "noderoll-system" {
			t.Errorf("ClusterRoleBinding %+v does not bind the ServiceAccount", b)
		}
	}
	for _, b := range as[rbacv1.RoleBinding](t, objs, "RoleBinding") {
		if b.RoleRef.Name != role.Name || b.Namespace != "kube-system" || b.Subjects[0].Name != sa.Name || b.Subjects[0].Namespace != "noderoll-system" {
			t.Errorf("RoleBinding %+v does not bind the ServiceAccount", b)
		}
	}

	d := as[appsv1.Deployment](t, objs, "Deployment")[0]
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.ServiceAccountName != sa.Name || c.Image != "ghcr.io/noderoll/noderoll:0.1.0" {
		t.Errorf("Deployment: %d replicas, account %s, image %s", *d.Spec.Replicas, d.Spec.Template.Spec.ServiceAccountName, c.Image)
	}
	for _, arg := range []string{"--region=eu-west-1", "--leader-election-lease-duration=15s", "--release-poll-interval=10m", "--metrics-bind-address=:8080"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("the controller's args %v lack %s", c.Args, arg)
		}
	}
	// The image runs noderoll-controller, whose command is the
	// controller's: every arg the chart passes is one of its flags.
	if err := controllercmd.New(io.Discard).ParseFlags(c.Args); err != nil || len(c.Command) != 0 {
		t.Errorf("the controller's args %v (command %v) do not parse as noderoll-controller's flags: %v", c.Args, c.Command, err)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() || c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("container: resources %+v, probes %v %v", c.Resources, c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.Env) == 0 || c.Env[0].Name != "POD_NAME" {
		t.Errorf("env %+v: the pod's name is the lock holder's", c.Env)
	}
	svc := as[corev1.Service](t, objs, "Service")[0]
	if svc.Spec.Ports[0].Port != 8080 || !strings.Contains(svc.Name, "metrics") {
		t.Errorf("Service %s ports %+v", svc.Name, svc.Spec.Ports)
	}
}

// Without the optional values, nothing optional is rendered.
func TestTheChartsDefaultsRenderNoEmptyFields(t *testing.T) {
	objs, err := Render("noderoll", "kube-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := as[appsv1.Deployment](t, objs, "Deployment")[0]
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--region") || strings.HasPrefix(a, "--role-arn") {
			t.Errorf("unset value rendered as %s", a)
		}
	}
	if sa := as[corev1.ServiceAccount](t, objs, "ServiceAccount")[0]; len(sa.Annotations) != 0 {
		t.Errorf("ServiceAccount annotations %v", sa.Annotations)
	}
}

// Deleting pods is granted only with rbac.allowForce, in a ClusterRole of
// its own bound to the same ServiceAccount: with it, the two ClusterRoles
// together are the controller's permissions with force.
func TestTheChartGrantsDeletingPodsOnlyWithAllowForce(t *testing.T) {
	objs, err := Render("nr", "noderoll-system", map[string]any{"rbac": map[string]any{"allowForce": true}})
	if err != nil {
		t.Fatal(err)
	}
	crs := as[rbacv1.ClusterRole](t, objs, "ClusterRole")
	if len(crs) != 2 || crs[1].Name != "nr-controller-force" {
		t.Fatalf("%d ClusterRoles; want the controller's and nr-controller-force", len(crs))
	}
	withForce, _ := permissions.ControllerRoles("nr-controller", true)
	if got := append(append([]rbacv1.PolicyRule(nil), crs[0].Rules...), crs[1].Rules...); len(got) != len(withForce.Rules) {
		t.Errorf("%d rules in the two ClusterRoles; want the %d of the controller's permissions with force", len(got), len(withForce.Rules))
	}
	bound := false
	for _, b := range as[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding") {
		bound = bound || (b.RoleRef.Name == "nr-controller-force" && b.Subjects[0].Name == "noderoll-controller" && b.Subjects[0].Namespace == "noderoll-system")
	}
	if !bound {
		t.Error("nr-controller-force is bound to no ServiceAccount")
	}
	plain, err := Render("nr", "noderoll-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range as[rbacv1.ClusterRole](t, plain, "ClusterRole") {
		for _, r := range cr.Rules {
			if slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "delete") {
				t.Errorf("without rbac.allowForce, ClusterRole %s lets pods be deleted", cr.Name)
			}
		}
	}
}
