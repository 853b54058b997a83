package cli

import (
	"bytes"
	"strings"
	"testing"
)

// A controller replica killed leaves the sandbox running: status names the
// replica gone and how to start it again; another process gone is the
// sandbox down.
func TestSandboxStatusTellsAGoneReplicaFromADeadSandbox(t *testing.T) {
	pids := map[string]int{"kube-apiserver": 10, "etcd": 11, "aws-endpoint": 12, "controller-0": 0, "controller-1": 14}
	if !coreRunning(pids) {
		t.Fatalf("a replica gone counted as the sandbox down: %v", pids)
	}
	var out bytes.Buffer
	printStatus(Streams{Out: &out}, statusReport{Dir: "/d", Running: true, Processes: pids, GoneControllers: []string{"controller-0"}})
	for _, want := range []string{"Sandbox running in /d", "controller-0=gone", "controller-1=14", "Gone: controller-0", "sandbox up --dir /d` starts it again"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	pids["controller-1"] = 0
	out.Reset()
	printStatus(Streams{Out: &out}, statusReport{Dir: "/d", Running: true, Processes: pids, GoneControllers: []string{"controller-0", "controller-1"}})
	if !strings.Contains(out.String(), "Gone: controller-0, controller-1 (no controller runs") || !strings.Contains(out.String(), "starts them again") {
		t.Errorf("every replica gone:\n%s", out.String())
	}

	pids["etcd"] = 0
	if coreRunning(pids) {
		t.Fatalf("etcd gone counted as running: %v", pids)
	}
	out.Reset()
	printStatus(Streams{Out: &out}, statusReport{Dir: "/d", Running: false, Processes: pids, GoneControllers: []string{"controller-0"}})
	if !strings.Contains(out.String(), "NOT running") || strings.Contains(out.String(), "Gone:") {
		t.Errorf("a sandbox down, want NOT running and no replica advice:\n%s", out.String())
	}
}
