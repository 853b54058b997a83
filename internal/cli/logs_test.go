package cli

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// The level each command gives controller-runtime's lines: errors only,
// informational ones too for the controller, everything with -v.
func TestLibraryLogLevelPerCommand(t *testing.T) {
	root := NewRoot(Streams{Out: io.Discard, Err: io.Discard})
	for _, tc := range []struct {
		args []string
		want slog.Level
	}{
		{[]string{"version"}, slog.LevelError},
		{[]string{"plan", "nodegroup"}, slog.LevelError},
		{[]string{"upgrade", "nodegroup", "-v"}, slog.LevelDebug},
		{[]string{"controller"}, slog.LevelInfo},
		{[]string{"controller", "-v"}, slog.LevelDebug},
	} {
		cmd, rest, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		if got := libraryLogLevel(cmd); got != tc.want {
			t.Errorf("%v: controller-runtime's lines at %v, want %v", tc.args, got, tc.want)
		}
	}
}

// Run as a process of its own (controller-runtime takes one logger a
// process), a command leaves controller-runtime's logger set to the CLI's
// stderr: without it, the library's first line 30 s in is a warning and a
// goroutine dump.
func TestControllerRuntimeLogsGoToTheCLIsStderr(t *testing.T) {
	if args := os.Getenv("NODEROLL_LOGS_TEST_ARGS"); args != "" {
		root := NewRoot(Streams{Out: io.Discard, Err: os.Stderr})
		root.SetArgs(strings.Fields(args))
		_ = root.Execute() // it may fail: the hook runs before the command
		ctrllog.Log.Info("an informational line")
		ctrllog.Log.Error(errors.New("boom"), "an error line")
		return
	}
	run := func(args string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestControllerRuntimeLogsGoToTheCLIsStderr$")
		cmd.Env = append(os.Environ(), "NODEROLL_LOGS_TEST_ARGS="+args)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", args, err, out)
		}
		return string(out)
	}
	quiet := run("version")
	if !strings.Contains(quiet, `msg="an error line" err=boom`) || strings.Contains(quiet, "an informational line") {
		t.Errorf("without -v, want controller-runtime's errors only on stderr, got:\n%s", quiet)
	}
	// upgrade fails on the kubeconfig it cannot read, after the hook ran.
	loud := run("upgrade nodegroup -v --cluster=c --name=g --kubernetes-version=1.37 --kubeconfig=" + t.TempDir() + "/none")
	if !strings.Contains(loud, "an error line") || !strings.Contains(loud, `msg="an informational line"`) {
		t.Errorf("with -v, want every controller-runtime line on stderr, got:\n%s", loud)
	}
}
