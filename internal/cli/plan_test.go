package cli

import (
	"bytes"
	"strings"
	"testing"
)

// plan takes the flags of upgrade nodegroup that say what to upgrade and
// how, none that act (abort, rollback, a dry run, the controller), and
// refuses bad input before it reads anything.
func TestPlanTakesTheUpgradesFlags(t *testing.T) {
	plan := newPlanNodegroup(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	up := newUpgradeNodegroup(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
	for _, name := range []string{"cluster", "name", "kubernetes-version", "release-version", "ami", "strategy", "max-surge", "max-unavailable", "soak", "post-cordon-wait", "ignore-preflight", "mode", "region", "kubeconfig"} {
		if plan.Flags().Lookup(name) == nil || up.Flags().Lookup(name) == nil {
			t.Errorf("--%s missing from plan or upgrade", name)
		}
	}
	for name := range notPlanned {
		if name != "output" && plan.Flags().Lookup(name) != nil {
			t.Errorf("plan takes --%s, which acts", name)
		}
	}
	for args, want := range map[string]string{
		"--cluster=c --name=n --kubernetes-version=1.37 -o xml": `--output "xml": want text, json or yaml`,
		"--cluster=c --name=n": "exactly one of --kubernetes-version",
		"--cluster=c --name=n --kubernetes-version=1.37 --abort":               "unknown flag: --abort",
		"--cluster=c --name=n --kubernetes-version=1.37 --assume-pod-stop=-1s": "none may be negative",
		"--cluster=c --name=n --kubernetes-version=1.37 --max-surge=lots":      "--max-surge",
		"--cluster=c --name=n --kubernetes-version=1.37 --strategy=rolling":    "want surge",
	} {
		cmd := newPlanNodegroup(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
		cmd.SetArgs(strings.Fields(args))
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("plan %s: %v, want an error with %q", args, err, want)
		}
	}
}
