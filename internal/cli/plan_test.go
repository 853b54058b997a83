package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/predict"
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

// The chosen strategy's predicted run is told phase by phase.
func TestPlanTellsTheRunsPhases(t *testing.T) {
	s := time.Second
	got := phases(predict.Milestones{Launched: s / 2, Ready: 3 * s, FirstDrain: 3 * s, LastDrain: 5 * s, Drained: 12 * s, Terminated: 16 * s, End: 19 * s})
	want := "first new node Ready at 3s; drains start from 3s to 5s, the last done at 12s; last old instance terminated at 16s; done at 19s"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := phases(predict.Milestones{Ready: 3 * s, FirstDrain: 3 * s, LastDrain: 3 * s, Drained: 4 * s, Terminated: 8 * s, End: 90 * s}); !strings.Contains(got, "drains start at 3s, the last done at 4s") || !strings.HasSuffix(got, "done at 1m30s") {
		t.Errorf("one wave: %q", got)
	}
}

// The upgrade's "Predicted" line names what its prediction assumed for
// want of the group's history, and nothing when it assumed nothing.
func TestThePredictionSaysWhatItAssumed(t *testing.T) {
	fc := &engine.Forecast{Assumed: []string{engine.DelayPodStop, engine.DelayShutdown}, Delays: predict.Delays{PodStop: 5 * time.Second, Shutdown: 30 * time.Second}}
	if got, want := assuming(fc), "a pod's stop of 5s and an instance's shutdown of 30s, which the group's history does not show yet"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := assuming(&engine.Forecast{}); got != "" {
		t.Errorf("nothing assumed: %q", got)
	}
}
