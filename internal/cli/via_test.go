package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/api/v1alpha1"
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
	for _, strategy := range [][]string{
		{"--strategy=bluegreen", "--batch-size=3", "--soak=0s"},
		{"--strategy=surge", "--max-surge=50%", "--max-unavailable=2"},
	} {
		f := parse(t, append([]string{"--cluster=c1", "--name=My_Group", "--kubernetes-version=1.37", "--post-cordon-wait=5s", "--eviction-timeout=3m", "--force", "--abort"}, strategy...)...)
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
			t.Errorf("%v: the controller would run with\n%+v\nthe CLI with\n%+v", strategy, got, want)
		}
		if run.Target != f.target || run.Group.Cluster != "c1" || run.Group.Name != "My_Group" {
			t.Errorf("run %+v", run)
		}
	}
}

// A flag of one strategy given to another is refused before anything is
// asked of the cluster, as the resource's strategy fields are; plan, which
// predicts every strategy, takes them all.
func TestAStrategysFlagGivenToAnotherIsRefused(t *testing.T) {
	base := []string{"--cluster=c1", "--name=ng", "--kubernetes-version=1.37"}
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--soak=5m"}, "--soak: for --strategy bluegreen only"},
		{[]string{"--strategy=eks", "--batch-size=2", "--batch-soak=1m"}, "--batch-size, --batch-soak: for --strategy bluegreen only"},
		{[]string{"--strategy=eks", "--max-surge=5"}, "--strategy=eks surges as EKS does"},
		{[]string{"--strategy=bluegreen", "--max-unavailable=1"}, "--strategy=bluegreen launches the whole new set"},
		{[]string{"--strategy=bluegreen", "--soak=5m", "--batch-size=2"}, ""},
		{[]string{"--strategy=eks", "--max-unavailable=2"}, ""},
		{[]string{"--max-surge=50%", "--max-unavailable=1"}, ""},
	} {
		f := parse(t, append(slices.Clone(base), c.flags...)...)
		err := f.validateStrategyFlags("soak", "batch-size", "batch-soak")
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.flags, err, c.want)
		}
	}
	// upgrade cluster's --soak is its waves': only its batches are blue-green's.
	if err := parse(t, append(slices.Clone(base), "--soak=5m")...).validateStrategyFlags("batch-size", "batch-soak"); err != nil {
		t.Errorf("a cluster's wave soak refused: %v", err)
	}
	for _, c := range []struct {
		spec v1alpha1.Strategy
		want string
	}{
		{v1alpha1.Strategy{Type: "EKS", MaxSurge: ptr.To(intstr.FromInt32(5))}, "spec.strategy.maxSurge: spec.strategy.type: EKS"},
		{v1alpha1.Strategy{Type: "BlueGreen", MaxUnavailable: ptr.To(intstr.FromInt32(1))}, "spec.strategy.type: BlueGreen launches the whole new set"},
	} {
		_, err := controller.Translate(v1alpha1.NodeGroupUpgradeSpec{Cluster: "c1", NodeGroup: "ng", Target: v1alpha1.Target{KubernetesVersion: "1.37"}, UpgradeSettings: v1alpha1.UpgradeSettings{Strategy: c.spec}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}

func TestViaControllerRefusesAFlagTheResourceHasNoFieldFor(t *testing.T) {
	f := parse(t, "--cluster=c1", "--name=ng", "--kubernetes-version=1.37", "--seed=3")
	if _, err := resourceFromFlags(f, f.changed); err == nil || !strings.Contains(err.Error(), "--seed has no field in a NodeGroupUpgrade") {
		t.Errorf("--seed with --via-controller: %v", err)
	}
}
