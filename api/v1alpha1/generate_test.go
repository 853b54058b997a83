package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The checked-in deep copies and CRD are what controller-gen makes of the
// types today: a type changed without `go generate ./api/...` fails here.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("go", "tool", "controller-gen", "object", "crd", "paths=.",
		"output:object:dir="+dir, "output:crd:dir="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}
	for have, made := range map[string]string{
		"zz_generated.deepcopy.go":                                             "zz_generated.deepcopy.go",
		"../../charts/noderoll/crds/noderoll.io_nodegroupupgrades.yaml":        "noderoll.io_nodegroupupgrades.yaml",
		"../../charts/noderoll/crds/noderoll.io_nodegroupupgradepolicies.yaml": "noderoll.io_nodegroupupgradepolicies.yaml",
	} {
		want, err := os.ReadFile(filepath.Join(dir, made))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(have)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what controller-gen makes of the types now: run go generate ./api/... and commit the result", have)
		}
	}
}
