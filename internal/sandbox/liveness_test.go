package sandbox

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// A process counts as running only while it runs and is the one recorded:
// not once gone, not as a zombie, not when its pid now names another
// program.
func TestLiveProcessesTellsWhatStillRuns(t *testing.T) {
	dir := t.TempDir()
	ours := exec.Command("sh", "-c", "sleep 30 # serve-aws")
	if err := ours.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ours.Process.Kill(); _ = ours.Wait() })
	st := &State{Name: "n", Dir: dir, AWSPid: ours.Process.Pid}
	// Until the child has exec'd, its command line is still this test's.
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, all := st.LiveProcesses()
		if all && pids["aws-endpoint"] == ours.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a running endpoint: %v, all %v", pids, all)
		}
		time.Sleep(20 * time.Millisecond)
	}

	st.AWSPid = os.Getpid() // a live pid, but not an endpoint's
	if pids, all := st.LiveProcesses(); all || pids["aws-endpoint"] != 0 {
		t.Fatalf("a pid that names another program: %v, all %v", pids, all)
	}

	st.AWSPid = ours.Process.Pid
	if err := ours.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // killed, not yet waited for: a zombie
	if pids, all := st.LiveProcesses(); all || pids["aws-endpoint"] != 0 {
		t.Fatalf("a zombie: %v, all %v", pids, all)
	}
	_ = ours.Wait()
	if pids, all := st.LiveProcesses(); all || pids["aws-endpoint"] != 0 {
		t.Fatalf("a process gone: %v, all %v", pids, all)
	}
}
