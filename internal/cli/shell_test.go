package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// asCLI makes the test binary act as noderoll when a test runs it under
// another name (a shell's completion, kubectl's plugin lookup).
const asCLI = "NODEROLL_TEST_BINARY_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		os.Exit(Execute())
	}
	os.Exit(m.Run())
}

// installAs puts the test binary on a fresh PATH under name, acting as
// noderoll, and returns the environment that finds it and its path.
func installAs(t *testing.T, name string) ([]string, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), asCLI+"=1", "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH")), filepath.Join(dir, name)
}

// bash completes noderoll's commands, flags and flag values through the
// script `noderoll completion bash` writes, as a user's shell would.
func TestBashCompletesCommandsFlagsAndValues(t *testing.T) {
	env, _ := installAs(t, "noderoll")
	complete := func(line string) []string {
		t.Helper()
		// As a user's .bashrc has it: Debian's bash-completion, then
		// noderoll's script.
		script := `source /usr/share/bash-completion/bash_completion || exit 3
source <(noderoll completion bash) || exit 3
read -r -a COMP_WORDS <<< "$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE="$LINE"; COMP_POINT=${#LINE}
__start_noderoll
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "--norc", "-c", script)
		cmd.Env = append(env, "LINE="+line)
		// compopt, outside a real completion, complains on stderr.
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	for line, want := range map[string][]string{
		"noderoll up":                                  {"upgrade"},
		"noderoll upgrade ":                            {"cluster", "nodegroup"},
		"noderoll upgrade nodegroup --strategy ":       {"surge", "bluegreen", "eks"},
		"noderoll upgrade nodegroup --strategy blue":   {"bluegreen"},
		"noderoll upgrade nodegroup --kubernetes-vers": {"--kubernetes-version"},
		"noderoll version -o ":                         {"text", "json"},
	} {
		got := complete(line)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
}

// zsh and fish get scripts of their own (no zsh or fish here to run them).
func TestCompletionScriptsForEachShell(t *testing.T) {
	env, bin := installAs(t, "noderoll")
	for shell, want := range map[string]string{"zsh": "#compdef noderoll", "fish": "complete -c noderoll", "bash": "__start_noderoll"} {
		cmd := exec.Command(bin, "completion", shell)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("noderoll completion %s: %v, want a script with %q", shell, err, want)
		}
	}
}

// Run as kubectl-noderoll (how kubectl finds a plugin), noderoll speaks
// as `kubectl noderoll` in its usage and examples.
func TestAsAKubectlPluginItNamesItselfSo(t *testing.T) {
	env, bin := installAs(t, PluginName)
	cmd := exec.Command(bin, "upgrade", "nodegroup", "--help")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	help := string(out)
	if !strings.Contains(help, "kubectl noderoll upgrade nodegroup [flags]") || !strings.Contains(help, "  kubectl noderoll upgrade nodegroup --cluster") {
		t.Errorf("the plugin's help does not say kubectl noderoll:\n%s", help)
	}
	if strings.Contains(strings.ReplaceAll(help, "kubectl noderoll", ""), "\n  noderoll ") {
		t.Errorf("an example still runs noderoll on its own:\n%s", help)
	}
}

// kubectl completes `kubectl noderoll ...` by running
// kubectl_complete-noderoll with the words typed: the binary under that
// name answers as cobra's completion does.
func TestKubectlCompletesThePluginThroughItsCompletionName(t *testing.T) {
	env, bin := installAs(t, completionName)
	cmd := exec.Command(bin, "upgrade", "nodegroup", "--strategy", "")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"surge", "bluegreen", "eks", ":4"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("completion lacks %q:\n%s", want, out)
		}
	}
}
