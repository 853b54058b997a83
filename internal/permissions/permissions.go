// Package permissions is the one list of what noderoll asks of the
// Kubernetes API: the ClusterRole `noderoll permissions` prints, the table
// in docs/aws.md and the role the end-to-end test runs an upgrade under,
// with nothing else granted, are all made from Rules.
package permissions

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Namespace is where noderoll keeps its records and locks (engine.Namespace).
const Namespace = "kube-system"

// Rule is a permission noderoll needs, where, and why.
type Rule struct {
	rbacv1.PolicyRule
	// Namespace "" is cluster-wide (a ClusterRole); otherwise a Role there.
	Namespace string
	Why       string
	// Force rules are granted only to an identity that runs with force:
	// the roles leave them out unless asked.
	Force bool
}

var (
	readWatch = []string{"get", "list", "watch"}
)

// Rules lists every Kubernetes permission an upgrade from the CLI uses, in
// every mode.
func Rules() []Rule {
	return append(shared(),
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgrades"}, Verbs: []string{"get", "list"}},
			Why: "find the record of an upgrade the controller runs, to follow it or take it over (none is read where the CRD is not installed)"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgrades/status"}, Verbs: []string{"update"}},
			Why: "take over an upgrade a NodeGroupUpgrade's controller left (paused, or the controller down): its record moves to the ConfigMap"},
	)
}

// shared are the permissions both front ends use.
func shared() []Rule {
	return []Rule{
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
			Why: "see the group's nodes come and go; taint, cordon and mark the old ones (the marks are how a rerun resumes)"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: readWatch},
			Why: "find what each drain must move, and wait for it to go"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}}, Force: true,
			Why: "only with --force: delete, at --eviction-timeout, the pods a budget still holds (granted only when asked: `noderoll permissions --force`, the chart's rbac.allowForce); without it a pod leaves only by eviction, within its budgets"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/eviction"}, Verbs: []string{"create"}},
			Why: "evict pods through the Eviction API, which holds every eviction to the pods' PodDisruptionBudgets"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}, Verbs: readWatch},
			Why: "preflight the budgets, name the one that blocks a drain, and wake a blocked drain the moment its budget frees"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"daemonsets"}, Verbs: readWatch},
			Why: "leave DaemonSet pods where they are, as kubectl drain does"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "update"}},
			Why: "find the cluster-autoscaler (in kube-system, or wherever --cluster-autoscaler names it), hold it at 0 and give it back"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "list"}},
			Why: "preflight: a pod's volume tied to a zone that gets no new node"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			Why: "say on the nodes what happened to them (EvictionBlocked, NoderollDrainFailed)"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update"}},
			Namespace: Namespace, Why: "the upgrade's record, which a rerun resumes from"},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "create", "update"}},
			Namespace: Namespace, Why: "the lock that keeps one run per node group"},
	}
}

// controllerRules are Rules and what the controller adds to them: its
// resources, their status and the events it writes on them, and its leader
// Lease (beside the groups' locks, so the same Role covers it).
func controllerRules() []Rule {
	return append(shared(),
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"delete"}},
			Namespace: Namespace, Why: "controller: take over an upgrade a CLI run left, moving its record from the ConfigMap into the resource's status"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgrades"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
			Why: "controller: watch the declared upgrades; add and remove its finalizer"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgrades/status"}, Verbs: []string{"get", "update", "patch"}},
			Why: "controller: write each upgrade's progress"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			Why: "controller: say on each NodeGroupUpgrade and NodeGroupUpgradePolicy what happened to it"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgrades"}, Verbs: []string{"create", "delete"}},
			Why: "controller: a NodeGroupUpgradePolicy's rollouts create one NodeGroupUpgrade per group, and retire those of older rollouts"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgradepolicies"}, Verbs: []string{"get", "list", "watch", "patch"}},
			Why: "controller: watch the policies; clear the resume annotation of a halted one"},
		Rule{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{"noderoll.io"}, Resources: []string{"nodegroupupgradepolicies/status"}, Verbs: []string{"get", "update", "patch"}},
			Why: "controller: keep each policy's rollout, groups and waiting reason in its status"},
	)
}

// Roles returns the ClusterRole and the Role (in Namespace) that grant
// Rules, named name; the force rules only with force.
func Roles(name string, force bool) (*rbacv1.ClusterRole, *rbacv1.Role) {
	return roles(name, Rules(), force)
}

// ControllerRoles returns the ClusterRole and the Role (in Namespace) that
// grant controllerRules: what the Helm chart binds the controller to (the
// force rules with rbac.allowForce).
func ControllerRoles(name string, force bool) (*rbacv1.ClusterRole, *rbacv1.Role) {
	return roles(name, controllerRules(), force)
}

func roles(name string, rules []Rule, force bool) (*rbacv1.ClusterRole, *rbacv1.Role) {
	labels := map[string]string{"app.kubernetes.io/name": "noderoll"}
	cr := &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	r := &rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: labels}}
	for _, rule := range rules {
		switch {
		case rule.Force && !force:
		case rule.Namespace == "":
			cr.Rules = append(cr.Rules, rule.PolicyRule)
		default:
			r.Rules = append(r.Rules, rule.PolicyRule)
		}
	}
	return cr, r
}

// forceRules are the force rules alone, all cluster-wide.
func forceRules(name string) *rbacv1.ClusterRole {
	cr := &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "noderoll"}}}
	for _, rule := range Rules() {
		if rule.Force {
			cr.Rules = append(cr.Rules, rule.PolicyRule)
		}
	}
	return cr
}

// YAML is the ClusterRole and the Role as one multi-document manifest: the
// CLI's, or with controller the controller's; the force rules with force.
func YAML(name string, controller, force bool) (string, error) {
	cr, r := Roles(name, force)
	if controller {
		cr, r = ControllerRoles(name, force)
	}
	a, err := yaml.Marshal(cr)
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(r)
	if err != nil {
		return "", err
	}
	return "# What noderoll asks of the Kubernetes API (noderoll permissions).\n" + string(a) + "---\n" + string(b), nil
}

// Table is Rules as the Markdown table docs/aws.md holds.
func Table() string {
	var b strings.Builder
	b.WriteString("| where | API group | resources | verbs | why |\n|---|---|---|---|---|\n")
	for _, r := range Rules() {
		where := "cluster"
		if r.Namespace != "" {
			where = r.Namespace
		}
		if r.Force {
			where += ", with --force only"
		}
		group := r.APIGroups[0]
		if group == "" {
			group = "core"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", where, group, strings.Join(r.Resources, ", "), strings.Join(r.Verbs, ", "), r.Why)
	}
	return b.String()
}

// chartRBAC is the Helm chart's templates/rbac.yaml: ControllerRoles,
// named after the release, bound to the chart's ServiceAccount, and the
// force rules in a ClusterRole of their own rendered only with
// rbac.allowForce.
func chartRBAC() (string, error) {
	const name = "NAME-controller"
	cr, r := ControllerRoles(name, false)
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "SERVICEACCOUNT", Namespace: "RELEASE-NAMESPACE"}}
	binding := func(role string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: role}, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role}}
	}
	rb := &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}}
	marshal := func(objs ...any) (string, error) {
		var docs []string
		for _, o := range objs {
			b, err := yaml.Marshal(o)
			if err != nil {
				return "", err
			}
			docs = append(docs, string(b))
		}
		return strings.Join(docs, "---\n"), nil
	}
	always, err := marshal(cr, r, binding(name), rb)
	if err != nil {
		return "", err
	}
	force, err := marshal(forceRules(name+"-force"), binding(name+"-force"))
	if err != nil {
		return "", err
	}
	out := "# Generated from internal/permissions (go test ./internal/permissions -update): do not edit.\n" + always +
		"{{- if .Values.rbac.allowForce }}\n---\n" + force + "{{- end }}\n"
	return strings.NewReplacer("NAME-controller", "{{ .Release.Name }}-controller", "SERVICEACCOUNT", "{{ .Values.serviceAccount.name }}",
		"RELEASE-NAMESPACE", "{{ .Release.Namespace }}").Replace(out), nil
}
