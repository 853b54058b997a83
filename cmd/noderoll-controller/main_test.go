package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTheControllersBinaryCarriesNoWorkshop: the product image's binary
// imports none of the CLI's workshop (the sandbox, the AWS simulator, the
// benchmark, the chart's rendering with Helm's engine, the CLI itself),
// directly or through anything it imports.
func TestTheControllersBinaryCarriesNoWorkshop(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list named only %d packages: %v", len(deps), deps)
	}
	workshop := []string{"github.com/noderoll/noderoll/internal/sandbox", "github.com/noderoll/noderoll/internal/bench",
		"github.com/noderoll/noderoll/internal/cli", "github.com/noderoll/noderoll/charts", "github.com/noderoll/noderoll/internal/kubefake", "helm.sh/"}
	product := map[string]bool{}
	for _, d := range deps {
		for _, w := range workshop {
			if d == w || strings.HasPrefix(d, w+"/") || strings.HasSuffix(w, "/") && strings.HasPrefix(d, w) {
				t.Errorf("the controller's binary imports %s", d)
			}
		}
		product[d] = true
	}
	for _, want := range []string{"github.com/noderoll/noderoll/internal/controller", "github.com/noderoll/noderoll/internal/engine", "github.com/noderoll/noderoll/internal/cloud/aws"} {
		if !product[want] {
			t.Errorf("the controller's binary lacks %s", want)
		}
	}
}
