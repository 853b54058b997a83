package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/controller"
)

// parse runs the real flag set of `upgrade nodegroup` over args.
func parse(t *testing.T, args ...string) *upgradeFlags {
	t.Helper()
	var f *upgradeFlags
	cmd := newUpgradeNodegroupWith(Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, func(got *upgradeFlags) { f = got })
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return f
}

// The resource --via-controller declares means what the flags mean: the
// controller's reading of it gives the engine the options the CLI would.
func TestViaControllerDeclaresWhatTheFlagsSay(t *testing.T) {
	f := parse(t, "--cluster=c1", "--name=My_Group", "--kubernetes-version=1.37", "--strategy=bluegreen", "--max-surge=50%",
		"--max-unavailable=2", "--batch-size=3", "--soak=0s", "--post-cordon-wait=5s", "--eviction-timeout=3m", "--force", "--abort")
	u, err := resourceFromFlags(f, f.changed)
	if err != nil {
		t.Fatal(err)
	}
	if u.GenerateName != "my-group-" || u.Spec.Action != "Abort" {
		t.Errorf("name %q action %q", u.GenerateName, u.Spec.Action)
	}
	run, err := controller.Translate(u.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := f.opts
	got := run.Options
	if got.Strategy != want.Strategy || got.MaxSurge != want.MaxSurge || got.MaxUnavailable != want.MaxUnavailable || got.BatchSize != want.BatchSize ||
		got.Soak != want.Soak || got.PostCordonWait != want.PostCordonWait || got.Drain.Timeout != want.Drain.Timeout || !got.Drain.Force ||
		got.NodeReadyTimeout != want.NodeReadyTimeout || got.ClusterAutoscaler != want.ClusterAutoscaler {
		t.Errorf("the controller would run with\n%+v\nthe CLI with\n%+v", got, want)
	}
	if run.Target != f.target || run.Group.Cluster != "c1" || run.Group.Name != "My_Group" {
		t.Errorf("run %+v", run)
	}
}

func TestViaControllerRefusesAFlagTheResourceHasNoFieldFor(t *testing.T) {
	f := parse(t, "--cluster=c1", "--name=ng", "--kubernetes-version=1.37", "--seed=3")
	if _, err := resourceFromFlags(f, f.changed); err == nil || !strings.Contains(err.Error(), "--seed has no field in a NodeGroupUpgrade") {
		t.Errorf("--seed with --via-controller: %v", err)
	}
}
