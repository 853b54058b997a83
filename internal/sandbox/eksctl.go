package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// EksctlVersion is the eksctl the sandbox builds for users and tests to
// run the seed's own command (eksctl upgrade nodegroup) against its EKS.
const EksctlVersion = "v0.215.0"

// eksctlModule is eksctl's Go module (the repository moved to eksctl-io;
// the module path did not).
const eksctlModule = "github.com/weaveworks/eksctl"

// EksctlPath is where the built eksctl lives under the toolchain's home:
// beside the control plane's binaries, one folder per version.
func (t Toolchain) EksctlPath() string {
	return filepath.Join(filepath.Dir(filepath.Dir(t.BinDir)), "eksctl-"+EksctlVersion, "bin", "eksctl")
}

// EnsureEksctl builds eksctl from its Go module when it is not built yet,
// and returns its path. eksctl's go.mod replaces modules, which `go
// install module@version` refuses, so the module is downloaded, copied out
// of the read-only module cache and built as the main module there.
func (t Toolchain) EnsureEksctl(ctx context.Context, progress io.Writer) (string, error) {
	bin := t.EksctlPath()
	if st, err := os.Stat(bin); err == nil && st.Size() > 0 {
		return bin, nil
	}
	start := time.Now()
	fmt.Fprintf(progress, "Building eksctl %s from its Go module into %s; first time only (about 8 min on 2 cores with cold Go caches, 30 s with warm ones).\n", EksctlVersion, filepath.Dir(bin))
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", eksctlModule+"@"+EksctlVersion)
	var out bytes.Buffer
	dl.Stdout, dl.Stderr = &out, &out
	if err := dl.Run(); err != nil {
		return "", fmt.Errorf("downloading %s@%s: %w\n%s", eksctlModule, EksctlVersion, err, out.String())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out.Bytes(), &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("downloading %s@%s: no module folder in %q (%v)", eksctlModule, EksctlVersion, out.String(), err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	src, err := os.MkdirTemp(filepath.Dir(filepath.Dir(bin)), "src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := copyTree(mod.Dir, src); err != nil {
		return "", fmt.Errorf("copying eksctl's module: %w", err)
	}
	// A name of this build's own: two builds at once never write one file,
	// and an interrupted one never leaves a binary that looks complete.
	part := fmt.Sprintf("%s.part-%d", bin, os.Getpid())
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", part, "./cmd/eksctl")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if err := run(build); err != nil {
		_ = os.Remove(part)
		return "", fmt.Errorf("building eksctl: %w", err)
	}
	if err := os.Rename(part, bin); err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "  eksctl built in %s\n", time.Since(start).Round(time.Second))
	return bin, nil
}

// copyTree copies a folder of regular files, made writable (the module
// cache's are read-only).
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasPrefix(rel, ".git") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
