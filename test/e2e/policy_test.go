package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
)

// seedPolicy keeps the sandbox's groups current, quick on the sandbox.
func seedPolicy(name string, soak time.Duration, canary ...string) *v1alpha1.NodeGroupUpgradePolicy {
	return &v1alpha1.NodeGroupUpgradePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.NodeGroupUpgradePolicySpec{
			Cluster: "eksworkshop-eksctl",
			Rollout: v1alpha1.Rollout{Canary: canary, Soak: &metav1.Duration{Duration: soak}, MaxConcurrentGroups: 2},
			Upgrade: v1alpha1.UpgradeSettings{Strategy: v1alpha1.Strategy{Type: "Surge"}, PostCordonWait: &metav1.Duration{Duration: 2 * time.Second},
				NodeReadyTimeout: &metav1.Duration{Duration: 20 * time.Second}},
		},
	}
}

// policyUpgrades are the NodeGroupUpgrades a policy made, by group, in the
// order they were made.
func policyUpgrades(t *testing.T, c client.Client, policy string) []v1alpha1.NodeGroupUpgrade {
	t.Helper()
	var list v1alpha1.NodeGroupUpgradeList
	if err := c.List(context.Background(), &list, client.MatchingLabels{v1alpha1.PolicyLabel: policy}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(a, b int) bool {
		return list.Items[a].CreationTimestamp.Before(&list.Items[b].CreationTimestamp) ||
			list.Items[a].CreationTimestamp.Equal(&list.Items[b].CreationTimestamp) && list.Items[a].Name < list.Items[b].Name
	})
	return list.Items
}

// nodeImages counts the sandbox's nodes by the AMI they run.
func nodeImages(t *testing.T, s *Sandbox) map[string]int {
	t.Helper()
	nodes, err := s.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, n := range nodes.Items {
		if img := n.Labels["eks.amazonaws.com/nodegroup-image"]; img != "" && n.DeletionTimestamp == nil {
			out[img]++
		}
	}
	return out
}

func policyState(p *v1alpha1.NodeGroupUpgradePolicy) string {
	var groups []string
	for _, g := range p.Status.Groups {
		groups = append(groups, fmt.Sprintf("%s=%s(%s)", g.Name, g.State, g.Message))
	}
	return fmt.Sprintf("%s/%s: %s [%s]", p.Status.State, p.Status.WaitingReason, p.Status.Message, strings.Join(groups, " "))
}

// The new user's story, on a sandbox of 3 groups with two controller
// replicas: plan cluster names all three behind; a policy with canary
// nodegroup, a 20 s soak and two groups at once upgrades the canary alone,
// then the other two (read from the resources' times), to the release
// frozen when it began although a newer one is published during the
// canary's soak, while the leader is killed; then it rolls the newer one
// out with nobody touching it. A third release waits: for a window moved
// to tomorrow (the status names it), an exclusion, a minimum age; a skipped
// release is not taken; a paused policy starts nothing but keeps its status
// current, and once unpaused rolls the release out.
func TestAPolicyKeepsTheGroupsCurrentCanaryFirst(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	s := StartSandbox(t, "--groups=3", "--controllers=2")
	c := s.Client()
	ctx := context.Background()
	if r := s.Noderoll("plan", "cluster", "--cluster=eksworkshop-eksctl"); !strings.Contains(r.Stdout, "3 of 3 node groups behind") {
		t.Fatalf("plan cluster before:\n%s%s", r.Stdout, r.Stderr)
	}
	first := s.RecommendedAMI("1.37")
	logOf := func(k int) string {
		b, _ := os.ReadFile(s.State.Controllers[k].Log)
		return string(b)
	}
	p := seedPolicy("keep-current", 20*time.Second, "nodegroup")
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(p)
	get := func() *v1alpha1.NodeGroupUpgradePolicy {
		t.Helper()
		var got v1alpha1.NodeGroupUpgradePolicy
		if err := c.Get(ctx, key, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	until := func(within time.Duration, what string, ok func(*v1alpha1.NodeGroupUpgradePolicy) bool) *v1alpha1.NodeGroupUpgradePolicy {
		t.Helper()
		var last *v1alpha1.NodeGroupUpgradePolicy
		eventually(t, within, what, func() (bool, string) {
			last = get()
			if last.Status.State == v1alpha1.PolicyHalted || last.Status.State == v1alpha1.PolicyInvalid {
				t.Fatalf("%s: the policy is %s", what, policyState(last))
			}
			return ok(last), policyState(last)
		})
		return last
	}

	// The canary soaks: publish a newer release and kill the leader now.
	until(3*time.Minute, "the canary soaking", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicySoaking
	})
	if r := s.Noderoll("sandbox", "release-ami", "--dir", s.Dir, "--release", "20261201"); r.Code != 0 {
		t.Fatalf("release-ami: %s", r.Stderr)
	}
	second := s.RecommendedAMI("1.37")
	leader := -1
	for k := range s.State.Controllers {
		if strings.Contains(logOf(k), "leading: this replica runs") {
			leader = k
		}
	}
	if leader < 0 {
		t.Fatal("no replica leads")
	}
	if err := syscall.Kill(s.State.Controllers[leader].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := until(5*time.Minute, "the first rollout completed", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.LastRollout != nil
	})
	if !slices.Equal(done.Status.LastRollout.Groups, []string{"nodegroup", "nodegroup-2", "nodegroup-3"}) {
		t.Errorf("the first rollout upgraded %v", done.Status.LastRollout.Groups)
	}
	ngus := policyUpgrades(t, c, p.Name)
	if len(ngus) < 3 {
		t.Fatalf("%d NodeGroupUpgrades after the first rollout", len(ngus))
	}
	canary, wave := ngus[0], ngus[1:3]
	if canary.Spec.NodeGroup != "nodegroup" || canary.Status.CompletionTime == nil {
		t.Fatalf("the first NodeGroupUpgrade is %s's (completed %v); want the canary's", canary.Spec.NodeGroup, canary.Status.CompletionTime)
	}
	for _, u := range wave {
		if u.Spec.NodeGroup == "nodegroup" {
			t.Errorf("the canary was upgraded twice: %s", u.Name)
		}
		if soaked := canary.Status.CompletionTime.Add(20 * time.Second); u.CreationTimestamp.Time.Before(soaked) {
			t.Errorf("%s started at %s, before the canary's soak ended (completed %s + 20s)", u.Spec.NodeGroup, u.CreationTimestamp, canary.Status.CompletionTime)
		}
		if u.Spec.Target.AMI != first {
			t.Errorf("%s went to %s; want the release frozen at the start, %s (not %s, published mid-rollout)", u.Spec.NodeGroup, u.Spec.Target.AMI, first, second)
		}
	}
	if !wave[0].CreationTimestamp.Equal(&wave[1].CreationTimestamp) && wave[1].CreationTimestamp.Sub(wave[0].CreationTimestamp.Time) > 2*time.Second {
		t.Errorf("the wave's two groups started apart: %s and %s", wave[0].CreationTimestamp, wave[1].CreationTimestamp)
	}

	// The newer release goes out by itself.
	until(5*time.Minute, "the release published mid-rollout rolled out", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyUpToDate && p.Status.LastRollout != nil && slices.ContainsFunc(p.Status.LastRollout.Releases, func(r string) bool {
			return strings.HasSuffix(r, "-20261201")
		})
	})
	if imgs := nodeImages(t, s); imgs[second] != 9 || len(imgs) != 1 {
		t.Errorf("nodes by AMI after the second rollout: %v; want all 9 on %s", imgs, second)
	}

	// A third release, and a window that opens tomorrow.
	change := func(f func(*v1alpha1.NodeGroupUpgradePolicySpec)) {
		t.Helper()
		cur := get()
		f(&cur.Spec)
		if err := c.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
	}
	tomorrow := time.Now().UTC().Add(12 * time.Hour).Truncate(time.Minute)
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
		s.Rollout.Soak = &metav1.Duration{Duration: 5 * time.Second}
		s.MaintenanceWindows = []v1alpha1.MaintenanceWindow{{Schedule: fmt.Sprintf("%d %d * * *", tomorrow.Minute(), tomorrow.Hour()), Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "UTC"}}
	})
	r := s.Noderoll("sandbox", "release-ami", "--dir", s.Dir)
	if r.Code != 0 {
		t.Fatalf("release-ami: %s", r.Stderr)
	}
	third := s.RecommendedAMI("1.37")
	waiting := until(time.Minute, "waiting for the window", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.WaitingReason == "MaintenanceWindow" && p.Status.GroupsUpToDate == 0
	})
	if waiting.Status.NextWindow == nil || !waiting.Status.NextWindow.Time.Equal(tomorrow) || waiting.Status.State != v1alpha1.PolicyWaiting {
		t.Errorf("next window %v, want %s: %s", waiting.Status.NextWindow, tomorrow, policyState(waiting))
	}
	for _, g := range waiting.Status.Groups {
		if g.BehindSince == nil || g.TargetRelease == "" {
			t.Errorf("group %s: behind since %v, target %q", g.Name, g.BehindSince, g.TargetRelease)
		}
	}
	n := len(policyUpgrades(t, c, p.Name))
	time.Sleep(12 * time.Second) // two polls of the sandbox's controller
	if got := len(policyUpgrades(t, c, p.Name)); got != n || get().Status.Rollout != nil {
		t.Fatalf("a closed window started something: %d NodeGroupUpgrades, was %d", got, n)
	}

	// An exclusion holds it, naming its end.
	freeze := metav1.Time{Time: time.Now().UTC().Add(2 * time.Hour).Truncate(time.Second)}
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
		s.MaintenanceWindows = nil
		s.Exclusions = []v1alpha1.Exclusion{{Start: metav1.Time{Time: time.Now().Add(-time.Hour)}, End: freeze, Reason: "code freeze"}}
	})
	excl := until(time.Minute, "held by the exclusion", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.WaitingReason == "Exclusion"
	})
	if !strings.Contains(excl.Status.Message, "code freeze") || excl.Status.NextWindow == nil || !excl.Status.NextWindow.Equal(&freeze) {
		t.Errorf("in the exclusion: %s, next %v", policyState(excl), excl.Status.NextWindow)
	}
	// A release younger than the minimum age waits.
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
		s.Exclusions = nil
		s.MinReleaseAge = &metav1.Duration{Duration: 72 * time.Hour}
	})
	young := until(time.Minute, "waiting for the release to age", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.WaitingReason == "ReleaseAge"
	})
	if !strings.Contains(young.Status.Groups[0].Message, "spec.minReleaseAge 72h") {
		t.Errorf("a young release's group: %+v", young.Status.Groups[0])
	}
	// A skipped release is not taken.
	version := young.Status.Groups[0].TargetRelease
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
		s.MinReleaseAge = nil
		s.SkipReleases = []string{version}
	})
	skipped := until(time.Minute, "the skipped release left alone", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyUpToDate && p.Status.GroupsUpToDate == 3
	})
	if !strings.Contains(skipped.Status.Groups[0].Message, "skipped") {
		t.Errorf("a skipped release's group: %+v", skipped.Status.Groups[0])
	}
	// Paused: nothing starts, the status says what waits.
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
		s.SkipReleases = nil
		s.Paused = true
	})
	paused := until(time.Minute, "paused", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyPaused && p.Status.WaitingReason == "Paused"
	})
	if paused.Status.GroupsUpToDate != 0 || len(paused.Status.Groups) != 3 || paused.Status.Groups[2].TargetRelease != version {
		t.Errorf("paused with the groups behind: %s", policyState(paused))
	}
	if got := len(policyUpgrades(t, c, p.Name)); got != n {
		t.Errorf("a policy paused, or waiting, made NodeGroupUpgrades: %d, was %d", got, n)
	}
	change(func(s *v1alpha1.NodeGroupUpgradePolicySpec) { s.Paused = false })
	until(5*time.Minute, "the third release rolled out once unpaused", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyUpToDate && p.Status.LastRollout != nil && slices.Contains(p.Status.LastRollout.Releases, version)
	})
	if imgs := nodeImages(t, s); imgs[third] != 9 {
		t.Errorf("nodes by AMI after the third rollout: %v; want all 9 on %s", imgs, third)
	}
	for k := range s.State.Controllers {
		if strings.Contains(logOf(k), "forbidden") {
			t.Errorf("replica %d was refused something:\n%s", k, grepLines(logOf(k), "forbidden"))
		}
	}
}
