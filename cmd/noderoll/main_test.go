package main

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Neither binary can reach a reflective method call by name (what
// text/template's and html/template's Execute do): the linker would keep
// every exported method of every type linked, in case a template calls
// it. The report's page (html/template) and the sandbox's chart rendering
// (Helm's engine) once did that to the CLI: 157 MB and 25 MB more mapped
// by every run, where 67 MB is enough.
func TestNeitherBinaryKeepsEveryMethod(t *testing.T) {
	for _, pkg := range []string{".", "../noderoll-controller"} {
		cmd := exec.Command("go", "build", "-ldflags=-dumpdep", "-o", os.DevNull, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var deps, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &errs, &deps // the linker writes its graph on stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, errs.String())
		}
		lines := strings.Split(deps.String(), "\n")
		if len(lines) < 10000 {
			t.Fatalf("the linker's graph of %s has %d lines; -dumpdep wrote no graph?", pkg, len(lines))
		}
		var reflective []string
		for _, l := range lines {
			if caller, _, ok := strings.Cut(l, " -> "); ok && strings.Contains(caller, "<ReflectMethod>") && !slices.Contains(reflective, caller) {
				reflective = append(reflective, caller)
			}
		}
		if len(reflective) > 0 {
			t.Errorf("%s links functions that call methods by a name known only at run time, so every exported method is kept: %s",
				pkg, strings.Join(reflective, "; "))
		}
	}
}
