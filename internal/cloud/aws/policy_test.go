package aws

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// checkedOnTheCaller are actions noderoll never calls that AWS checks on it
// all the same: pointing an Auto Scaling group at a launch template version
// requires ec2:RunInstances on the caller, ec2:CreateTags when the template
// tags what it launches and iam:PassRole for its instance profile
// ("Control Amazon EC2 launch template usage in Auto Scaling groups").
var checkedOnTheCaller = []string{"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"}

// callsOfTheCode lists every AWS action the provider can make: the methods
// of the narrow SDK surfaces it is built on, as "service:Action".
func callsOfTheCode() []string {
	var out []string
	for prefix, api := range map[string]reflect.Type{
		"autoscaling":   reflect.TypeOf((*autoscalingAPI)(nil)).Elem(),
		"ec2":           reflect.TypeOf((*ec2API)(nil)).Elem(),
		"ssm":           reflect.TypeOf((*ssmAPI)(nil)).Elem(),
		"eks":           reflect.TypeOf((*eksAPI)(nil)).Elem(),
		"servicequotas": reflect.TypeOf((*servicequotasAPI)(nil)).Elem(),
	} {
		for k := 0; k < api.NumMethod(); k++ {
			out = append(out, prefix+":"+api.Method(k).Name)
		}
	}
	sort.Strings(out)
	return out
}

type policyDoc struct {
	Version   string
	Statement []struct {
		Sid, Effect string
		Action      []string
		Resource    any
		Condition   map[string]map[string]any
	}
}

// TestTheIAMPolicyAllowsEveryCallAndNothingElse: docs/iam-policy.json, the
// least-privilege policy docs/aws.md tells users to attach, allows every
// action the code can call, and no action the code never needs.
func TestTheIAMPolicyAllowsEveryCallAndNothingElse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "iam-policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc policyDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/iam-policy.json is not a policy document: %v", err)
	}
	if doc.Version != "2012-10-17" {
		t.Errorf("policy version %q, want 2012-10-17", doc.Version)
	}
	allowed := map[string]bool{}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			t.Errorf("statement %s: effect %q; the policy only allows", st.Sid, st.Effect)
		}
		for _, a := range st.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("statement %s allows %q: name each action, wildcards grant more than noderoll calls", st.Sid, a)
			}
			allowed[a] = true
		}
	}
	calls := callsOfTheCode()
	if len(calls) < 12 {
		t.Fatalf("found only %d calls in the code: the SDK surfaces were not read", len(calls))
	}
	for _, c := range calls {
		if !allowed[c] {
			t.Errorf("the code can call %s, which the policy does not allow", c)
		}
	}
	for a := range allowed {
		if !slices.Contains(calls, a) && !slices.Contains(checkedOnTheCaller, a) {
			t.Errorf("the policy allows %s, which noderoll never calls nor needs", a)
		}
	}
}
