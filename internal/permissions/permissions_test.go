package permissions

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite docs/aws.md's permission table from Rules")

const (
	docs  = "../../docs/aws.md"
	begin = "<!-- permissions:begin (generated: go test ./internal/permissions -update) -->\n"
	end   = "<!-- permissions:end -->"
)

// docs/aws.md's table is Rules, as generated: a permission added to the
// code's list without the docs (or the reverse) fails here.
func TestTheDocsListThePermissions(t *testing.T) {
	b, err := os.ReadFile(docs)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no generated permission section (%q ... %q)", docs, begin, end)
	}
	want := s[:i+len(begin)] + Table() + s[j:]
	if *update {
		if err := os.WriteFile(docs, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Fatalf("%s's permission table is not Rules(): run go test ./internal/permissions -update", docs)
	}
}

// The manifest holds every rule once, each where it belongs, and the
// permissions the field's reviews found missing are there; deleting pods
// only when asked for force.
func TestTheRolesHoldEveryRule(t *testing.T) {
	cr, r := Roles("noderoll", true)
	if len(cr.Rules)+len(r.Rules) != len(Rules()) || r.Namespace != Namespace {
		t.Fatalf("ClusterRole %d rules + Role %d rules in %s, want %d", len(cr.Rules), len(r.Rules), r.Namespace, len(Rules()))
	}
	if !deletesPods(cr.Rules) {
		t.Error("with force, the ClusterRole does not let pods be deleted")
	}
	if cr, _ := Roles("noderoll", false); deletesPods(cr.Rules) || len(cr.Rules) != len(Rules())-len(r.Rules)-1 {
		t.Errorf("without force: %d rules, deleting pods %v; want one rule fewer and no delete", len(cr.Rules), deletesPods(cr.Rules))
	}
	out, err := YAML("noderoll", false, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(out, "---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil || m["kind"] == nil {
			t.Fatalf("not a manifest: %v\n%s", err, doc)
		}
	}
	for _, want := range []string{"leases", "watch", "daemonsets", "persistentvolumes", "pods/eviction", "deployments"} {
		if !strings.Contains(out, want) {
			t.Errorf("the manifest grants nothing on %s", want)
		}
	}
}

// The controller's roles are what both front ends use and its own
// resources, nothing more cluster-wide than it needs: no Secrets, no
// workloads created.
func TestTheControllerGetsTheCLIsRulesAndItsOwn(t *testing.T) {
	cr, r := ControllerRoles("noderoll-controller", true)
	if len(cr.Rules)+len(r.Rules) != len(shared())+7 {
		t.Errorf("%d rules, want the %d both front ends use and 7 of the controller's (3 for the policies)", len(cr.Rules)+len(r.Rules), len(shared()))
	}
	if cr, _ := ControllerRoles("noderoll-controller", false); deletesPods(cr.Rules) {
		t.Error("the controller may delete pods without rbac.allowForce")
	}
	out, err := YAML("noderoll-controller", true, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nodegroupupgrades/status", "nodegroupupgradepolicies/status", "events.k8s.io", "pods/eviction"} {
		if !strings.Contains(out, want) {
			t.Errorf("the controller's manifest grants nothing on %s", want)
		}
	}
	for _, rule := range append(cr.Rules, r.Rules...) {
		for _, res := range rule.Resources {
			if res == "secrets" || res == "*" {
				t.Errorf("the controller is granted %s", res)
			}
		}
	}
}

const chartRBACFile = "../../charts/noderoll/templates/rbac.yaml"

// The chart grants the controller exactly controllerRules: the roles the
// e2e tests run the controller under.
func TestTheChartGrantsTheControllersRules(t *testing.T) {
	want, err := chartRBAC()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(chartRBACFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(chartRBACFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not controllerRules(): run go test ./internal/permissions -update", chartRBACFile)
	}
	for _, kind := range []string{"kind: ClusterRole\n", "kind: Role\n", "kind: ClusterRoleBinding", "kind: RoleBinding", "nodegroupupgrades/status", "name: {{ .Values.serviceAccount.name }}"} {
		if !strings.Contains(want, kind) {
			t.Errorf("the chart's RBAC lacks %q", kind)
		}
	}
}

func deletesPods(rules []rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if slices.Contains(r.Resources, "pods") && (slices.Contains(r.Verbs, "delete") || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}
