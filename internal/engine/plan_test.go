package engine

import (
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/cloud"
)

func TestSurgeIsOnePerAZOrMaxUnavailable(t *testing.T) {
	for _, c := range []struct{ azs, maxUnavailable, want int }{{3, 1, 3}, {3, 0, 3}, {2, 5, 5}, {1, 1, 1}, {0, 0, 1}} {
		if got, _, _ := budgets(StrategyEKS, Options{}, 10, c.azs, c.maxUnavailable); got != c.want {
			t.Errorf("eks surge (%d AZs, group maxUnavailable %d) = %d, want %d", c.azs, c.maxUnavailable, got, c.want)
		}
	}
	if got, _, _ := budgets(StrategyEKS, Options{MaxUnavailable: Amount{Value: 4, Given: true}}, 10, 3, 1); got != 4 {
		t.Errorf("eks: --max-unavailable 4 overrides the group's 1: surge %d", got)
	}
	for _, c := range []struct{ desired, azs, want int }{{3, 3, 3}, {30, 3, 8}, {300, 3, 75}, {2, 3, 2}, {8, 1, 2}} {
		if got, unav, err := budgets(StrategySurge, Options{}, c.desired, c.azs, 0); got != c.want || unav != 0 || err != nil {
			t.Errorf("surge default for %d nodes in %d AZs = %d/%d (%v), want %d/0", c.desired, c.azs, got, unav, err, c.want)
		}
	}
	maxSize, desired := surgedSizes(&Record{OriginalMax: 3, OriginalDesired: 3, Surge: 3})
	if maxSize != 6 || desired != 6 {
		t.Errorf("seed: 3 nodes in 3 AZs surge to max %d desired %d, want 6/6", maxSize, desired)
	}
	maxSize, desired = surgedSizes(&Record{OriginalMax: 10, OriginalDesired: 3, Surge: 3})
	if maxSize != 10 || desired != 6 {
		t.Errorf("a roomy max is kept: got max %d desired %d", maxSize, desired)
	}
}

func instances(spec ...string) []cloud.Instance {
	var out []cloud.Instance
	for _, s := range spec { // "id/az/image[/Terminating]"
		p := strings.Split(s, "/")
		i := cloud.Instance{ID: p[0], AZ: p[1], ImageID: p[2], Lifecycle: "InService"}
		if len(p) > 3 {
			i.Lifecycle = p[3]
		}
		out = append(out, i)
	}
	return out
}

func TestOldInstancesSkipTargetAndTerminating(t *testing.T) {
	g := cloud.NodeGroup{Instances: instances("i-1/a/old", "i-2/b/new", "i-3/c/old/Terminating:Wait", "i-4/a/old")}
	old := oldInstances(g, "new")
	if len(old) != 2 || old[0].ID != "i-1" || old[1].ID != "i-4" {
		t.Fatalf("old instances: %+v", old)
	}
}

func TestUpToDate(t *testing.T) {
	g := cloud.NodeGroup{ImageID: "new", Desired: 2, Instances: instances("i-1/a/new", "i-2/b/new")}
	if !upToDate(g, Target{ImageID: "new"}) {
		t.Fatal("a group all on the target is up to date")
	}
	for name, h := range map[string]cloud.NodeGroup{
		"an old instance":         {ImageID: "new", Desired: 2, Instances: instances("i-1/a/new", "i-2/b/old")},
		"the template elsewhere":  {ImageID: "old", Desired: 2, Instances: instances("i-1/a/new", "i-2/b/new")},
		"still surged":            {ImageID: "new", Desired: 3, Instances: instances("i-1/a/new", "i-2/b/new")},
		"an instance terminating": {ImageID: "new", Desired: 2, Instances: instances("i-1/a/new", "i-2/b/new/Terminating")},
	} {
		if upToDate(h, Target{ImageID: "new"}) {
			t.Errorf("%s: not up to date", name)
		}
	}
}
