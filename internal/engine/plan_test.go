package engine

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/cloud"
)

func TestSurgeIsOnePerAZOrMaxUnavailable(t *testing.T) {
	for _, c := range []struct{ azs, maxUnavailable, want int }{{3, 1, 3}, {3, 0, 3}, {2, 5, 5}, {1, 1, 1}, {0, 0, 1}} {
		if got := surgeSize(c.azs, c.maxUnavailable); got != c.want {
			t.Errorf("surgeSize(%d AZs, maxUnavailable %d) = %d, want %d", c.azs, c.maxUnavailable, got, c.want)
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

func TestPickOldResumesFirstThenPicksEveryOneAtRandom(t *testing.T) {
	old := instances("i-1/a/old", "i-2/b/old", "i-3/c/old")
	if got := pickOld(old, map[string]bool{"i-3": true}, rand.New(rand.NewPCG(1, 2))); got.ID != "i-3" {
		t.Fatalf("an instance in progress must be finished first, got %s", got.ID)
	}
	seen := map[string]int{}
	rng := rand.New(rand.NewPCG(7, 7))
	for k := 0; k < 300; k++ {
		seen[pickOld(old, nil, rng).ID]++
	}
	for _, id := range []string{"i-1", "i-2", "i-3"} {
		if seen[id] < 50 {
			t.Errorf("random pick is skewed: %v", seen)
		}
	}
}

func TestPickSurplusKeepsAZsBalancedAndMovesFewestPods(t *testing.T) {
	in := instances("i-1/a/new", "i-2/a/new", "i-3/b/new", "i-4/b/new", "i-5/c/new", "i-6/c/new")
	pods := map[string]int{"i-1": 5, "i-2": 1, "i-3": 0, "i-4": 4, "i-5": 3, "i-6": 2}
	got := pickSurplus(in, pods, nil, 3)
	azs := map[string]int{}
	for _, i := range got {
		azs[i.AZ]++
	}
	if len(got) != 3 || azs["a"] != 1 || azs["b"] != 1 || azs["c"] != 1 {
		t.Fatalf("want one surplus node from each AZ, got %+v", got)
	}
	ids := map[string]bool{}
	for _, i := range got {
		ids[i.ID] = true
	}
	if !ids["i-2"] || !ids["i-3"] || !ids["i-6"] {
		t.Fatalf("want the emptiest node of each AZ (i-2, i-3, i-6), got %+v", got)
	}
	if r := pickSurplus(in, pods, map[string]bool{"i-1": true}, 1); r[0].ID != "i-1" {
		t.Fatalf("a removal in progress must be finished first, got %s", r[0].ID)
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
