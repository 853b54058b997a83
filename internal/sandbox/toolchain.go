// Package sandbox runs noderoll's local world: a real Kubernetes control
// plane (kwokctl's binary runtime, kwok standing in for kubelets) and the
// local AWS-compatible endpoint, seeded with a scenario.
package sandbox

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Pinned versions of the control plane the sandbox runs.
const (
	KubeVersion = "v1.37.2"
	KwokVersion = "v0.8.0"
	toolsModule = "github.com/noderoll/noderoll/tools"
)

// toolsModule travels inside the binary, so that a noderoll installed with
// `go install` or copied anywhere can build the sandbox's control plane
// without a checkout. It is tools/ of the checkout, copied by go generate
// (names end in .txt: a go.mod here would make this folder a module of its
// own); a test keeps the two identical.
//
//go:generate sh -c "cp ../../tools/go.mod toolsmodule/go.mod.txt && cp ../../tools/go.sum toolsmodule/go.sum.txt && cp ../../tools/tools.go toolsmodule/tools.go.txt"
//go:embed toolsmodule/go.mod.txt toolsmodule/go.sum.txt toolsmodule/tools.go.txt
var embeddedTools embed.FS

// writeToolsModule writes the embedded tools module into dir.
func writeToolsModule(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"go.mod", "go.sum", "tools.go"} {
		b, err := embeddedTools.ReadFile("toolsmodule/" + name + ".txt")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("writing the tools module to %s: %w", dir, err)
		}
	}
	return nil
}

type tool struct{ name, pkg string }

// kubeTools are built from the tools module (it pins k8s.io/kubernetes and
// replaces its staging modules); kwok is installed from its own module.
var kubeTools = []tool{
	{"etcd", "go.etcd.io/etcd/server/v3"},
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"},
	{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"},
	{"kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"},
	{"kubectl", "k8s.io/kubernetes/cmd/kubectl"},
}

var kwokTools = []tool{
	{"kwok", "sigs.k8s.io/kwok/cmd/kwok@" + KwokVersion},
	{"kwokctl", "sigs.k8s.io/kwok/cmd/kwokctl@" + KwokVersion},
}

// Toolchain locates, and builds when missing, the control-plane binaries.
type Toolchain struct {
	// BinDir holds the binaries, one folder per pinned version set.
	BinDir string
	// ModuleDir is the tools module (tools/ of a noderoll checkout); only
	// needed to build. Empty: the copy embedded in the binary is written
	// next to BinDir and built there.
	ModuleDir string
}

// NewToolchain returns the toolchain kept under home.
func NewToolchain(home, moduleDir string) Toolchain {
	return Toolchain{
		BinDir:    filepath.Join(home, "tools", "k8s-"+KubeVersion+"_kwok-"+KwokVersion, "bin"),
		ModuleDir: moduleDir,
	}
}

// Path returns where a named binary lives.
func (t Toolchain) Path(name string) string { return filepath.Join(t.BinDir, name) }

// Missing lists the binaries not built yet.
func (t Toolchain) Missing() []string {
	var out []string
	for _, tl := range append(append([]tool{}, kubeTools...), kwokTools...) {
		if st, err := os.Stat(t.Path(tl.name)); err != nil || st.Size() == 0 {
			out = append(out, tl.name)
		}
	}
	return out
}

// Ensure builds what is missing, printing a line per binary to progress. It
// does nothing when every binary of the pinned versions is present.
func (t Toolchain) Ensure(ctx context.Context, progress io.Writer) error {
	missing := t.Missing()
	if len(missing) == 0 {
		return nil
	}
	if t.ModuleDir == "" {
		t.ModuleDir = filepath.Join(filepath.Dir(t.BinDir), "module")
		if err := writeToolsModule(t.ModuleDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(t.BinDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", t.BinDir, err)
	}
	fmt.Fprintf(progress, "Building the sandbox's control plane (Kubernetes %s, kwok %s) into %s; first time only, ~20 min on 2 cores with cold Go caches.\n", KubeVersion, KwokVersion, t.BinDir)
	ver := strings.TrimPrefix(KubeVersion, "v")
	minor := strings.Split(ver, ".")[1]
	var ld []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld, "-X", pkg+".gitVersion="+KubeVersion, "-X", pkg+".gitMajor=1", "-X", pkg+".gitMinor="+minor)
	}
	ldflags := "-s -w " + strings.Join(ld, " ")
	for k, name := range missing {
		start := time.Now()
		fmt.Fprintf(progress, "  [%d/%d] %s ...", k+1, len(missing), name)
		var cmd *exec.Cmd
		if tl, ok := find(kubeTools, name); ok {
			// Build to a temporary name first so an interrupted build never
			// leaves a binary that looks complete.
			tmp := t.Path(name) + ".part"
			cmd = exec.CommandContext(ctx, "go", "build", "-ldflags", ldflags, "-o", tmp, tl.pkg)
			cmd.Dir = t.ModuleDir
			if err := run(cmd); err != nil {
				fmt.Fprintln(progress, " failed")
				return fmt.Errorf("building %s: %w", name, err)
			}
			if err := os.Rename(tmp, t.Path(name)); err != nil {
				return err
			}
		} else {
			tl, _ := find(kwokTools, name)
			cmd = exec.CommandContext(ctx, "go", "install", "-ldflags", "-s -w", tl.pkg)
			cmd.Env = append(os.Environ(), "GOBIN="+t.BinDir)
			if err := run(cmd); err != nil {
				fmt.Fprintln(progress, " failed")
				return fmt.Errorf("installing %s: %w", name, err)
			}
		}
		fmt.Fprintf(progress, " done in %s\n", time.Since(start).Round(time.Second))
	}
	return nil
}

func find(ts []tool, name string) (tool, bool) {
	for _, t := range ts {
		if t.name == name {
			return t, true
		}
	}
	return tool{}, false
}

func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail)
	}
	return nil
}

// findCheckout walks up from dir to the root of a noderoll checkout, the
// folder whose tools/go.mod declares the tools module. It returns "" when
// dir is not inside one.
func findCheckout(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "tools", "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+toolsModule+"\n")) {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Home is where noderoll keeps built tools and sandbox state: $NODEROLL_HOME,
// else .cache/ of the checkout it runs in, else ~/.cache/noderoll.
func Home() (home, checkout string) {
	cwd, _ := os.Getwd()
	checkout = findCheckout(cwd)
	if checkout == "" {
		if exe, err := os.Executable(); err == nil {
			checkout = findCheckout(filepath.Dir(exe))
		}
	}
	if h := os.Getenv("NODEROLL_HOME"); h != "" {
		return h, checkout
	}
	if checkout != "" {
		return filepath.Join(checkout, ".cache"), checkout
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "noderoll"), ""
	}
	return filepath.Join(os.TempDir(), "noderoll"), ""
}

// ToolsModuleDir returns the tools module to build from: $NODEROLL_TOOLS_MODULE
// or tools/ of the checkout.
func ToolsModuleDir(checkout string) string {
	if d := os.Getenv("NODEROLL_TOOLS_MODULE"); d != "" {
		return d
	}
	if checkout == "" {
		return ""
	}
	return filepath.Join(checkout, "tools")
}
