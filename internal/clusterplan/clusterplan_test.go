package clusterplan

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/noderoll/noderoll/internal/cloud"
	cloudfake "github.com/noderoll/noderoll/internal/cloud/fake"
	"github.com/noderoll/noderoll/internal/engine"
)

// The canary goes alone, first; the others follow in waves of at most
// the given size, in their order; groups with nothing to do are in none;
// a canary not among the cluster's groups is refused, naming them.
func TestCanaryFirstThenWaves(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	show := func(ws []Wave) string {
		var out []string
		for _, w := range ws {
			s := strings.Join(w.Groups, "+")
			if w.Canary {
				s = "canary " + s
			}
			out = append(out, s)
		}
		return strings.Join(out, ", ")
	}
	for _, tc := range []struct {
		behind, canary []string
		n              int
		want           string
	}{
		{all, []string{"c"}, 2, "canary c, a+b, d+e"},
		{all, nil, 2, "a+b, c+d, e"},
		{all, []string{"a", "e"}, 3, "canary a+e, b+c+d"},
		{[]string{"b", "d"}, []string{"a"}, 1, "b, d"}, // the canary is up to date: no canary wave
		{nil, []string{"a"}, 2, ""},
	} {
		ws, err := Waves(all, tc.behind, tc.canary, tc.n)
		if err != nil || show(ws) != tc.want {
			t.Errorf("behind %v, canary %v, %d at once: %q, %v; want %q", tc.behind, tc.canary, tc.n, show(ws), err, tc.want)
		}
	}
	if _, err := Waves(all, all, []string{"x"}, 2); err == nil || !strings.Contains(err.Error(), `canary "x" is not a node group of the cluster (its groups: a, b, c, d, e)`) {
		t.Errorf("an unknown canary: %v", err)
	}
	if _, err := Waves(all, all, nil, 0); err == nil {
		t.Error("0 groups at once: accepted")
	}
}

// A cluster of three groups, one of them already on the target: the two
// behind are named with their AMI now and the target, the canary goes
// first, the up-to-date group in no wave, and the whole is the waves'
// predictions plus a soak after each.
func TestAClustersPlanNamesTheGroupsBehindAndTheirOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		kube := k8sfake.NewClientset()
		kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{Major: "1", Minor: "37"}
		p := cloudfake.New(kube, "prod", "1.37")
		p.AddImage(cloudfake.Image{ID: "ami-0000000000000old", Name: "al2023-1.36-v20261115", Minor: "1.36", Release: "1.36.5-20261115"}, true)
		p.AddImage(cloudfake.Image{ID: "ami-0000000000000new", Name: "al2023-1.37-v20261115", Minor: "1.37", Release: "1.37.2-20261115"}, true)
		for name, ami := range map[string]string{"apps": "ami-0000000000000old", "batch": "ami-0000000000000old", "system": "ami-0000000000000new"} {
			if err := p.AddGroup(ctx, name, 2, []string{"a", "b"}, ami); err != nil {
				t.Fatal(err)
			}
		}
		forecasts := 0
		forecast := func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) (*engine.Forecast, error) {
			forecasts++
			return engine.New(kube, p, engine.Options{Strategy: engine.StrategySurge, PostCordonWait: 10 * time.Second}).Forecast(ctx, engine.Request{Group: ref, Target: target},
				engine.Assumed{PodStop: 5 * time.Second, Shutdown: 30 * time.Second})
		}
		plan, err := Make(ctx, p, forecast, Request{Cluster: "prod", Canary: []string{"batch"}, MaxConcurrent: 2, Soak: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, g := range plan.Groups {
			got += fmt.Sprintf("%s: %s -> %s wave %d uptodate=%v; ", g.Name, g.Current.Name, g.Target.Name, g.Wave, g.UpToDate)
			if !g.UpToDate && (g.Predicted <= 0 || g.Blocked != "" || g.Nodes != 2) {
				t.Errorf("%s: predicted %s, blocked %q, %d nodes", g.Name, g.Predicted, g.Blocked, g.Nodes)
			}
		}
		want := "apps: al2023-1.36-v20261115 -> al2023-1.37-v20261115 wave 1 uptodate=false; batch: al2023-1.36-v20261115 -> al2023-1.37-v20261115 wave 0 uptodate=false; system: al2023-1.37-v20261115 -> al2023-1.37-v20261115 wave -1 uptodate=true; "
		if got != want || plan.KubernetesVersion != "1.37" || plan.ControlPlane != "1.37" {
			t.Errorf("got  %s\nwant %s (minor %s)", got, want, plan.KubernetesVersion)
		}
		if len(plan.Waves) != 2 || !plan.Waves[0].Canary || plan.Predicted != plan.Waves[0].Predicted+plan.Waves[1].Predicted+2*time.Minute {
			t.Errorf("waves %+v, whole %s; want the canary, then apps, each with its soak", plan.Waves, plan.Predicted)
		}
		forecasts = 0
		if _, err := Make(ctx, p, forecast, Request{Cluster: "prod", Canary: []string{"web"}, MaxConcurrent: 1}); err == nil || !strings.Contains(err.Error(), "its groups: apps, batch, system") || forecasts != 0 {
			t.Errorf("an unknown canary: %v after %d forecasts; want refused before any", err, forecasts)
		}
	})
}
