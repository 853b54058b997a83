package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/sandbox"
)

// TestTheBinaryWorksOutsideACheckout: a noderoll installed with `go install`
// or copied anywhere has no checkout beside it. Copied to a folder of its
// own, with a home of its own, it builds the control plane from the tools
// module it carries (here only kube-scheduler is missing, so the test stays
// quick on a warm build cache), starts the sandbox from one folder, runs the
// demo's upgrade from another, and is stopped from a third by
// `sandbox down --dir` alone, with no home that knows the toolchain.
func TestTheBinaryWorksOutsideACheckout(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	built := noderollBinary(t)
	work := t.TempDir()
	exe := filepath.Join(work, "bin", "noderoll")
	copyFile(t, built, exe)

	checkoutHome, _ := sandbox.Home()
	have := sandbox.NewToolchain(checkoutHome, "").BinDir
	home := filepath.Join(work, "home")
	fresh := sandbox.NewToolchain(home, "").BinDir
	if err := os.MkdirAll(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "kwok", "kwokctl"} {
		if err := os.Symlink(filepath.Join(have, name), filepath.Join(fresh, name)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(work, "sandbox")
	env := append(cleanEnv(), "NODEROLL_HOME="+home)
	run := func(cwd string, env []string, args ...string) Result {
		t.Helper()
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			t.Fatal(err)
		}
		return runBinary(t, exe, cwd, env, args...)
	}
	var pids map[string]int
	t.Cleanup(func() {
		if st, err := sandbox.Load(dir); err == nil { // the test failed before down: stop it all the same
			pids = st.Processes()
			_ = exec.Command(built, "sandbox", "down", "--dir", dir).Run()
		}
		for comp, pid := range pids {
			if alive(pid) {
				t.Errorf("%s (pid %d) still runs after sandbox down", comp, pid)
			}
		}
	})

	up := run(filepath.Join(work, "a"), env, append([]string{"sandbox", "up", "--dir", dir, "--name", "outside", "--nodes=2", "--azs=2", "--pods-per-node=1"}, fastDelays...)...)
	if up.Code != 0 {
		t.Fatalf("sandbox up outside a checkout: %s", up.LastLine())
	}
	if !strings.Contains(up.Stderr, "kube-scheduler ... done") {
		t.Errorf("up did not build the missing kube-scheduler from the module it carries:\n%s", up.Stderr)
	}
	if _, err := os.Stat(filepath.Join(fresh, "kube-scheduler")); err != nil {
		t.Errorf("kube-scheduler was not built into the fresh home: %v", err)
	}
	for _, hint := range []string{"sandbox env --dir " + dir, "sandbox down --dir " + dir} {
		if !strings.Contains(up.Stdout, hint) {
			t.Errorf("up's next steps lack %q, so they would not find the sandbox from another folder:\n%s", hint, up.Stdout)
		}
	}
	st, err := sandbox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pids = st.Processes()

	demo := run(filepath.Join(work, "b"), env, "demo", "--dir", dir, "--name", "outside", "--post-cordon-wait=1s", "--seed=7")
	if demo.Code != 0 {
		t.Fatalf("the demo's upgrade outside a checkout: %s", demo.LastLine())
	}
	kube, err := st.KubeClient()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 {
		t.Errorf("%d nodes after the demo, want 2", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		if !strings.HasPrefix(n.Status.NodeInfo.KubeletVersion, "v1.37.") {
			t.Errorf("node %s runs kubelet %s after the demo, want 1.37", n.Name, n.Status.NodeInfo.KubeletVersion)
		}
	}

	// Another folder, and a home that knows no toolchain: down finds what
	// to stop from what the sandbox recorded.
	otherHome := filepath.Join(work, "other-home")
	var bare []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			bare = append(bare, kv)
		}
	}
	down := run(filepath.Join(work, "c"), append(bare, "HOME="+otherHome), "sandbox", "down", "--dir", dir)
	if down.Code != 0 {
		t.Fatalf("sandbox down --dir from elsewhere: %s", down.LastLine())
	}
	deadline := time.Now().Add(10 * time.Second)
	for comp, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("sandbox down from elsewhere left %s (pid %d) running", comp, pid)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
