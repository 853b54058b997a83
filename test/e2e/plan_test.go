package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/noderoll/noderoll/internal/cli"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/sandbox"
)

// plan is what `noderoll plan nodegroup -o json|yaml` says, as far as
// these tests read it.
type plan struct {
	ToReplace int `json:"toReplace"`
	Observed  struct {
		BootReadySamples int     `json:"bootReadySamples"`
		PodStartSamples  int     `json:"podStartSamples"`
		PodStopSeconds   float64 `json:"podStopSeconds"`
		PodStopSamples   int     `json:"podStopSamples"`
		ShutdownSeconds  float64 `json:"shutdownSeconds"`
		ShutdownSamples  int     `json:"shutdownSamples"`
	} `json:"observed"`
	Assumed []string `json:"assumed"`
	Delays  struct {
		PodStopSeconds  float64 `json:"podStopSeconds"`
		ShutdownSeconds float64 `json:"shutdownSeconds"`
	} `json:"delays"`
	Budgets []struct {
		Name    string `json:"name"`
		OnGroup int    `json:"podsOnOldNodes"`
	} `json:"budgets"`
	Predictions []struct {
		Strategy        string  `json:"strategy"`
		DurationSeconds float64 `json:"durationSeconds"`
		PeakInstances   int     `json:"peakInstances"`
		Chosen          bool    `json:"chosen"`
		Blocked         string  `json:"blocked"`
	} `json:"predictions"`
	PredictedSeconds map[string]float64 `json:"predictedSeconds"`
}

// The seed's group planned: what would be replaced, the budgets over its
// pods, a prediction for each strategy from delays measured on the
// cluster itself, and nothing changed. kubectl runs the same command as a
// plugin, found on the PATH as kubectl-noderoll.
func TestPlanPredictsTheSeedAndKubectlRunsItAsAPlugin(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t)
	ctx := context.Background()
	groupBefore := s.Groups()["nodegroup"]
	args := []string{"plan", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--post-cordon-wait=2s", "--soak=2s"}
	r := s.Noderoll(append(args, "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("plan: exit %d: %s", r.Code, r.LastLine())
	}
	var p plan
	if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
		t.Fatalf("%v\n%s", err, r.Stdout)
	}
	if p.ToReplace != 3 || p.Observed.BootReadySamples != 3 || p.Observed.PodStartSamples == 0 {
		t.Errorf("plan: %d to replace, delays measured on %d nodes and %d pods; want 3, 3 and some", p.ToReplace, p.Observed.BootReadySamples, p.Observed.PodStartSamples)
	}
	strategies := ""
	for _, x := range p.Predictions {
		strategies += x.Strategy + " "
		if x.Blocked != "" || p.PredictedSeconds[x.Strategy] <= 0 || x.PeakInstances != 6 {
			t.Errorf("%s: blocked %q, %vs, peak %d; want a duration and 6 instances at the peak", x.Strategy, x.Blocked, p.PredictedSeconds[x.Strategy], x.PeakInstances)
		}
	}
	if strategies != "surge bluegreen eks " || !p.Predictions[0].Chosen {
		t.Errorf("predictions for %q, the first chosen: %v; want the chosen surge first, then bluegreen and eks", strategies, p.Predictions[0].Chosen)
	}
	// One at a time is the slowest; the seed's budgets are all named.
	if p.PredictedSeconds["eks"] <= p.PredictedSeconds["surge"] {
		t.Errorf("eks predicted %vs, surge %vs", p.PredictedSeconds["eks"], p.PredictedSeconds["surge"])
	}
	names := ""
	for _, b := range p.Budgets {
		names += b.Name + " "
	}
	if !strings.Contains(names, "kube-system/coredns") {
		t.Errorf("budgets over the group's pods: %s", names)
	}
	// Nothing changed: the group, its instances, and no record of an upgrade.
	after := s.Groups()["nodegroup"]
	if aws.ToInt32(after.DesiredCapacity) != 3 || aws.ToInt32(after.MaxSize) != aws.ToInt32(groupBefore.MaxSize) || len(after.Instances) != 3 {
		t.Errorf("the plan changed the group: desired %d, max %d, %d instances", aws.ToInt32(after.DesiredCapacity), aws.ToInt32(after.MaxSize), len(after.Instances))
	}
	cms, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		if strings.HasPrefix(cm.Name, "noderoll-upgrade-") || strings.HasPrefix(cm.Name, "noderoll-timeline-") {
			t.Errorf("the plan left a record: %s", cm.Name)
		}
	}

	// kubectl (the sandbox's, built from Kubernetes' own module) finds the
	// plugin on the PATH and runs it with the same flags.
	home, _ := sandbox.Home()
	kubectl := sandbox.NewToolchain(home, "").Path("kubectl")
	plugins := t.TempDir()
	if err := os.Symlink(noderollBinary(t), filepath.Join(plugins, cli.PluginName)); err != nil {
		t.Fatal(err)
	}
	env := append(append(cleanEnv(), s.env...), "PATH="+plugins+string(os.PathListSeparator)+os.Getenv("PATH"))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("plugin", "list"); !strings.Contains(out, filepath.Join(plugins, cli.PluginName)) {
		t.Errorf("kubectl plugin list does not show noderoll:\n%s", out)
	}
	out := run(append(append([]string{"noderoll"}, args...), "-o", "yaml")...)
	var viaKubectl plan
	if err := yaml.Unmarshal([]byte(out), &viaKubectl); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if viaKubectl.ToReplace != 3 || len(viaKubectl.Predictions) != 3 {
		t.Errorf("kubectl noderoll plan: %d to replace, %d predictions\n%s", viaKubectl.ToReplace, len(viaKubectl.Predictions), out)
	}
	if help := run("noderoll", "plan", "nodegroup", "--help"); !strings.Contains(help, "kubectl noderoll plan nodegroup [flags]") {
		t.Errorf("kubectl noderoll's help does not name itself so:\n%s", help)
	}

	// The binary says what it was built from.
	v := s.Noderoll("version", "-o", "json")
	var version struct{ Version, GoVersion, Kubernetes, ClientGo, AWSSDK string }
	if err := json.Unmarshal([]byte(v.Stdout), &version); err != nil || version.ClientGo == "" || version.Kubernetes == "" || version.AWSSDK == "" || version.GoVersion == "" {
		t.Errorf("noderoll version -o json: %v %+v\n%s", err, version, v.Stdout)
	}
}

// A group upgraded once has a history, and the next plan stands on it: the
// pods' stops the upgrade timed and the terminations the group's scaling
// activities remember, where a group with none takes assumptions and says
// so. The upgrade that follows predicts the same from the same history,
// and keeps it in its timeline with nothing assumed. How close the
// prediction lands is the benchmark's to measure (bench --history,
// docs/performance.md), not a test's beside others on a busy machine.
func TestAPlanStandsOnTheGroupsHistory(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t) // pods stop in 1s, instances shut down in 1s
	planOf := func(target ...string) plan {
		t.Helper()
		r := s.Noderoll(append([]string{"plan", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--post-cordon-wait=2s", "-o", "json"}, target...)...)
		if r.Code != 0 {
			t.Fatalf("plan: exit %d: %s", r.Code, r.LastLine())
		}
		var p plan
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout)
		}
		return p
	}
	fresh := planOf("--kubernetes-version=1.37")
	if strings.Join(fresh.Assumed, ",") != "podStop,shutdown" || fresh.Observed.PodStopSamples != 0 || fresh.Observed.ShutdownSamples != 0 || fresh.Delays.ShutdownSeconds != 30 {
		t.Errorf("a group without history: assumed %v, observed %+v, delays %+v; want a pod's stop and the shutdown assumed (30s), and said so", fresh.Assumed, fresh.Observed, fresh.Delays)
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--release-version=1.37.2-20261020", "--post-cordon-wait=2s"); r.Code != 0 {
		t.Fatalf("the first upgrade: exit %d: %s", r.Code, r.LastLine())
	}
	p := planOf("--kubernetes-version=1.37")
	o := p.Observed
	// 12 application pods moved off the old nodes, coredns's too. A pod
	// stops in 1s, cut short at the end of its 1s grace period, which the
	// API server dates to the second (so about half a second on average).
	if len(p.Assumed) != 0 || o.PodStopSamples < 12 || o.PodStopSeconds <= 0 || o.PodStopSeconds > 1.5 || o.ShutdownSamples != 3 || o.ShutdownSeconds < 0.9 || o.ShutdownSeconds > 3 {
		t.Errorf("after an upgrade: assumed %v, observed %+v; want nothing assumed, at least 12 pods' stops of at most about 1s and 3 shutdowns of about 1s", p.Assumed, o)
	}
	if p.Delays.PodStopSeconds != o.PodStopSeconds || p.Delays.ShutdownSeconds != o.ShutdownSeconds {
		t.Errorf("delays %+v; want the observed %+v", p.Delays, o)
	}
	predicted := p.PredictedSeconds["surge"]
	// The 30s shutdown assumed without history is gone from the one wave.
	if predicted > fresh.PredictedSeconds["surge"]-20 {
		t.Errorf("predicted %.1fs from history, %.1fs without: want the assumed 30s shutdown gone", predicted, fresh.PredictedSeconds["surge"])
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--post-cordon-wait=2s"); r.Code != 0 {
		t.Fatalf("the second upgrade: exit %d: %s", r.Code, r.LastLine())
	}
	tl, err := engine.LoadTimeline(context.Background(), s.Kube, cloud.NodeGroupRef{Cluster: "eksworkshop-eksctl", Name: "nodegroup"})
	if err != nil || tl == nil {
		t.Fatalf("the second upgrade's timeline: %v", err)
	}
	if got := time.Duration(tl.Predicted).Seconds(); got < predicted-1 || got > predicted+1 || tl.PredictedAssuming != "" || len(tl.PodStops) < 12 {
		t.Errorf("the upgrade predicted %.1fs assuming %q, timing %d pods' stops; want the plan's %.1fs, nothing assumed, and the pods it moved timed for the next plan",
			got, tl.PredictedAssuming, len(tl.PodStops), predicted)
	}
}

// plan cluster on a cluster of three groups: all three behind the control
// plane's newest AMIs, then, once one is upgraded, two behind with the
// canary first and the up-to-date group in no wave. Nothing is changed.
func TestPlanClusterNamesTheGroupsBehindAndTheirOrder(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups", "3")
	type clusterPlan struct {
		KubernetesVersion string `json:"kubernetesVersion"`
		Groups            []struct {
			Name             string  `json:"name"`
			UpToDate         bool    `json:"upToDate"`
			TargetImageName  string  `json:"targetImageName"`
			BehindSince      string  `json:"behindSince"`
			Wave             *int    `json:"wave"`
			PredictedSeconds float64 `json:"predictedSeconds"`
		} `json:"groups"`
		Waves []struct {
			Canary bool     `json:"canary"`
			Groups []string `json:"groups"`
		} `json:"waves"`
		SoakSeconds      float64 `json:"soakSeconds"`
		PredictedSeconds float64 `json:"predictedSeconds"`
	}
	planCluster := func(args ...string) clusterPlan {
		t.Helper()
		r := s.Noderoll(append([]string{"plan", "cluster", "--cluster=eksworkshop-eksctl", "--post-cordon-wait=2s", "-o", "json"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("plan cluster: exit %d: %s", r.Code, r.LastLine())
		}
		var p clusterPlan
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatalf("%v\n%s", err, r.Stdout)
		}
		return p
	}
	p := planCluster()
	if len(p.Groups) != 3 || p.KubernetesVersion != "1.37" {
		t.Fatalf("groups %+v, minor %s; want the three, to the control plane's 1.37", p.Groups, p.KubernetesVersion)
	}
	for _, g := range p.Groups {
		if g.UpToDate || g.TargetImageName != "amazon-eks-node-al2023-x86_64-standard-1.37-v20261115" || !strings.HasPrefix(g.BehindSince, "2026-11-15") || g.PredictedSeconds <= 0 {
			t.Errorf("%s: %+v; want behind since 2026-11-15, going to 1.37's v20261115, with a prediction", g.Name, g)
		}
	}
	if r := s.Noderoll("upgrade", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup-3", "--kubernetes-version=1.37", "--post-cordon-wait=2s"); r.Code != 0 {
		t.Fatalf("upgrading nodegroup-3: exit %d: %s", r.Code, r.LastLine())
	}
	before := s.Groups()
	p = planCluster("--canary=nodegroup-2", "--max-concurrent-groups=2", "--soak=20s")
	waves := ""
	for _, w := range p.Waves {
		waves += fmt.Sprintf("%v:%s ", w.Canary, strings.Join(w.Groups, "+"))
	}
	if waves != "true:nodegroup-2 false:nodegroup " || p.SoakSeconds != 20 || p.PredictedSeconds <= 40 {
		t.Errorf("waves %q, soak %vs, whole %vs; want the canary nodegroup-2 alone, then nodegroup, 20s soaks, more than 40s in all", waves, p.SoakSeconds, p.PredictedSeconds)
	}
	for _, g := range p.Groups {
		if up := g.Name == "nodegroup-3"; g.UpToDate != up || (g.Wave == nil) != up {
			t.Errorf("%s: up to date %v, wave %v", g.Name, g.UpToDate, g.Wave)
		}
	}
	if r := s.Noderoll("plan", "cluster", "--cluster=eksworkshop-eksctl", "--canary=web"); r.Code == 0 || !strings.Contains(r.Stderr, `--canary "web" is not a node group of the cluster (its groups: nodegroup, nodegroup-2, nodegroup-3)`) {
		t.Errorf("an unknown canary: exit %d %s", r.Code, r.Stderr)
	}
	after := s.Groups()
	for name, g := range before {
		if a := after[name]; len(a.Instances) != len(g.Instances) || aws.ToInt32(a.DesiredCapacity) != aws.ToInt32(g.DesiredCapacity) {
			t.Errorf("the plan changed %s", name)
		}
	}
}
