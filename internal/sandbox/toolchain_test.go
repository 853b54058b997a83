package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The tools module inside the binary is tools/ of the checkout, byte for
// byte: `go generate ./internal/sandbox` copies it after a change there.
func TestTheEmbeddedToolsModuleIsTheCheckouts(t *testing.T) {
	dir := t.TempDir()
	if err := writeToolsModule(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum", "tools.go"} {
		want, err := os.ReadFile(filepath.Join("..", "..", "tools", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the embedded %s differs from tools/%s: run go generate ./internal/sandbox", name, name)
		}
	}
}
