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

	"github.com/aws/aws-sdk-go-v2/aws"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
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

// policyWatch is one policy a test creates and waits on.
type policyWatch struct {
	t   *testing.T
	c   client.Client
	key client.ObjectKey
	// settled says a halt is an old one the test knows of (nil: every
	// halt stops the test, unless it is what the test waits for).
	settled func(*v1alpha1.NodeGroupUpgradePolicy) bool
}

// createPolicy creates p and watches it.
func createPolicy(t *testing.T, c client.Client, p *v1alpha1.NodeGroupUpgradePolicy) *policyWatch {
	t.Helper()
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return &policyWatch{t: t, c: c, key: client.ObjectKeyFromObject(p)}
}

func (w *policyWatch) get() *v1alpha1.NodeGroupUpgradePolicy {
	w.t.Helper()
	var got v1alpha1.NodeGroupUpgradePolicy
	if err := w.c.Get(context.Background(), w.key, &got); err != nil {
		w.t.Fatal(err)
	}
	return &got
}

// until waits for ok; a policy Invalid, or Halted when ok does not want
// it, ends the test at once.
func (w *policyWatch) until(within time.Duration, what string, ok func(*v1alpha1.NodeGroupUpgradePolicy) bool) *v1alpha1.NodeGroupUpgradePolicy {
	w.t.Helper()
	var last *v1alpha1.NodeGroupUpgradePolicy
	eventually(w.t, within, what, func() (bool, string) {
		last = w.get()
		if ok(last) {
			return true, ""
		}
		if last.Status.State == v1alpha1.PolicyInvalid || last.Status.State == v1alpha1.PolicyHalted && (w.settled == nil || !w.settled(last)) {
			w.t.Fatalf("%s: the policy is %s", what, policyState(last))
		}
		return false, policyState(last)
	})
	return last
}

func inState(state string) func(*v1alpha1.NodeGroupUpgradePolicy) bool {
	return func(p *v1alpha1.NodeGroupUpgradePolicy) bool { return p.Status.State == state }
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
	w := createPolicy(t, c, p)
	get, until := w.get, w.until

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
	// Together: the second of the wave began before the first had ended.
	if wave[0].Status.CompletionTime == nil || wave[1].CreationTimestamp.After(wave[0].Status.CompletionTime.Time) {
		t.Errorf("the wave's two groups ran one after the other: %s created %s, %s completed %v",
			wave[1].Spec.NodeGroup, wave[1].CreationTimestamp, wave[0].Spec.NodeGroup, wave[0].Status.CompletionTime)
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
		return p.Status.WaitingReason == "MaintenanceWindow" && ptr.Deref(p.Status.GroupsUpToDate, -1) == 0
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
	// Two more reads of the releases, each finding the window closed.
	for k := 0; k < 2; k++ {
		seen := get().Status.LastChecked
		until(time.Minute, "another read of the releases", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
			return p.Status.LastChecked != nil && seen != nil && p.Status.LastChecked.After(seen.Time)
		})
	}
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
		return p.Status.State == v1alpha1.PolicyUpToDate && ptr.Deref(p.Status.GroupsUpToDate, -1) == 3
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
	if ptr.Deref(paused.Status.GroupsUpToDate, -1) != 0 || len(paused.Status.Groups) != 3 || paused.Status.Groups[2].TargetRelease != version {
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

	// A group made later is picked up by the policy that names none.
	first2, err := s.EKS.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EKS.CreateNodegroup(ctx, &eks.CreateNodegroupInput{
		ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("workers-b"),
		Subnets: first2.Nodegroup.Subnets[:2], NodeRole: first2.Nodegroup.NodeRole,
		ScalingConfig: &ekstypes.NodegroupScalingConfig{MinSize: aws.Int32(2), MaxSize: aws.Int32(4), DesiredSize: aws.Int32(2)},
		InstanceTypes: []string{"m5.large"}, AmiType: ekstypes.AMITypesAl2023X8664Standard, Version: aws.String("1.36"),
	}); err != nil {
		t.Fatal(err)
	}
	later := until(5*time.Minute, "the group made later upgraded", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyUpToDate && ptr.Deref(p.Status.GroupsTotal, -1) == 4 && p.Status.LastRollout != nil && slices.Equal(p.Status.LastRollout.Groups, []string{"workers-b"})
	})
	if imgs := nodeImages(t, s); imgs[third] != 11 {
		t.Errorf("nodes by AMI with the new group: %v; want all 11 on %s (%s)", imgs, third, policyState(later))
	}
	// Four rollouts made 10 NodeGroupUpgrades; those of the last two are kept.
	if kept := policyUpgrades(t, c, p.Name); len(kept) != 4 {
		var names []string
		for _, u := range kept {
			names = append(names, u.Name+"="+u.Labels["noderoll.io/rollout"])
		}
		t.Errorf("NodeGroupUpgrades kept: %v; want the last two rollouts' 4", names)
	}

	// The leader's metrics say how far behind the groups are and how the
	// rollouts ended.
	for k, ctl := range s.State.Controllers {
		if k == leader {
			continue // killed
		}
		metrics := scrape(t, "http://"+ctl.Metrics+"/metrics")
		for _, want := range []string{`noderoll_policy_groups_behind{policy="keep-current"} 0`, `noderoll_policy_group_behind_seconds{group="workers-b",policy="keep-current"} 0`,
			`noderoll_policy_halted{policy="keep-current"} 0`, `noderoll_policy_rollouts_total{outcome="Completed",policy="keep-current"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("the leader's /metrics has no %s:\n%s", want, grepLines(metrics, "noderoll_policy"))
			}
		}
	}
	for k := range s.State.Controllers {
		if strings.Contains(logOf(k), "forbidden") {
			t.Errorf("replica %d was refused something:\n%s", k, grepLines(logOf(k), "forbidden"))
		}
	}
}

// Specs that cannot work are refused: by the API server where its rules
// can see it, else by the controller in the policy's status, each naming
// the field.
func TestBadPoliciesAreRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--controllers=1")
	c := s.Client()
	ctx := context.Background()
	window := func(schedule string, d time.Duration, zone string) []v1alpha1.MaintenanceWindow {
		return []v1alpha1.MaintenanceWindow{{Schedule: schedule, Duration: metav1.Duration{Duration: d}, TimeZone: zone}}
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.NodeGroupUpgradePolicySpec)
		want   string
	}{
		{"not a cron", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.MaintenanceWindows = window("every saturday", time.Hour, "")
		}, "schedule: a cron expression of five fields"},
		{"duration 0", func(s *v1alpha1.NodeGroupUpgradePolicySpec) { s.MaintenanceWindows = window("0 2 * * 6", 0, "") }, "duration: more than 0"},
		{"backwards exclusion", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.Exclusions = []v1alpha1.Exclusion{{Start: metav1.Time{Time: time.Now().Add(time.Hour)}, End: metav1.Time{Time: time.Now()}}}
		}, "an exclusion must end after it starts"},
		{"a canary not kept", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.NodeGroups, s.Rollout.Canary = []string{"nodegroup"}, []string{"other"}
		}, "every canary must be one of spec.nodeGroups"},
		{"a negative soak", func(s *v1alpha1.NodeGroupUpgradePolicySpec) {
			s.Rollout.Soak = &metav1.Duration{Duration: -time.Minute}
		}, "spec.rollout.soak: a duration of 0 or more"},
		{"a bad minor", func(s *v1alpha1.NodeGroupUpgradePolicySpec) { s.KubernetesVersion = "latest" }, "spec.kubernetesVersion"},
		{"a bad skip", func(s *v1alpha1.NodeGroupUpgradePolicySpec) { s.SkipReleases = []string{"20261201"} }, "spec.skipReleases[0]"},
		{"an unknown onFailure", func(s *v1alpha1.NodeGroupUpgradePolicySpec) { s.OnFailure = "Retry" }, `Unsupported value: "Retry"`},
	} {
		p := seedPolicy("bad-"+strings.ReplaceAll(tc.name, " ", "-"), time.Minute)
		tc.change(&p.Spec)
		if err := c.Create(ctx, p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: created with %v; want refused saying %q", tc.name, err, tc.want)
		}
	}
	// What only the controller can tell: it writes why, and acts on nothing.
	for _, tc := range []struct {
		name    string
		windows []v1alpha1.MaintenanceWindow
		want    string
	}{
		{"unknown-zone", window("0 2 * * 6", time.Hour, "Mars/Olympus"), `spec.maintenanceWindows[0].timeZone "Mars/Olympus": not a known time zone`},
		{"no-hour-25", window("0 25 * * *", time.Hour, ""), `spec.maintenanceWindows[0].schedule "0 25 * * *"`},
		{"never-opens", window("0 2 30 2 *", time.Hour, "UTC"), "leave no time at all"},
	} {
		p := seedPolicy(tc.name, time.Minute)
		p.Spec.MaintenanceWindows = tc.windows
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("%s: refused by the API server: %v", tc.name, err)
		}
		eventually(t, time.Minute, tc.name+" marked Invalid", func() (bool, string) {
			var got v1alpha1.NodeGroupUpgradePolicy
			if err := c.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
				return false, err.Error()
			}
			return got.Status.State == v1alpha1.PolicyInvalid && strings.Contains(got.Status.Message, tc.want), policyState(&got)
		})
	}
	if n := len(policyUpgrades(t, c, "unknown-zone")) + len(policyUpgrades(t, c, "no-hour-25")) + len(policyUpgrades(t, c, "never-opens")); n != 0 {
		t.Errorf("invalid policies made %d NodeGroupUpgrades", n)
	}
}

// The canary's new nodes never join: its upgrade fails, the policy halts
// with the other group untouched and, with onFailure Abort, takes the
// canary back to the AMI it ran. Once the user clears the halt, the
// rollout goes on from there and finishes.
func TestAPolicyHaltsOnAFailedCanaryAndAbortTakesItBack(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups=2", "--controllers=1")
	c := s.Client()
	ctx := context.Background()
	before := s.Groups()
	original := nodeImages(t, s)
	if r := s.Noderoll("sandbox", "bad-boot", "--dir", s.Dir, "3"); r.Code != 0 {
		t.Fatalf("bad-boot: %s", r.LastLine())
	}
	p := seedPolicy("halts", 5*time.Second, "nodegroup")
	p.Spec.OnFailure = "Abort"
	p.Spec.Upgrade.NodeReadyTimeout = &metav1.Duration{Duration: 15 * time.Second}
	w := createPolicy(t, c, p)
	got := w.until(3*time.Minute, "the policy halted", inState(v1alpha1.PolicyHalted))
	if got.Status.WaitingReason != "Halted" || !strings.Contains(got.Status.Message, "nodegroup") || !strings.Contains(got.Status.Message, "noderoll.io/resume=now") {
		t.Errorf("halted: %s", policyState(got))
	}
	ngus := policyUpgrades(t, c, p.Name)
	if len(ngus) != 1 || ngus[0].Spec.NodeGroup != "nodegroup" {
		t.Fatalf("NodeGroupUpgrades at the halt: %d (want the canary's alone)", len(ngus))
	}
	// Taken back: the failed upgrade is aborted to the AMI it ran.
	eventually(t, 3*time.Minute, "the canary taken back", func() (bool, string) {
		var u v1alpha1.NodeGroupUpgrade
		if err := c.Get(ctx, client.ObjectKeyFromObject(&ngus[0]), &u); err != nil {
			return false, err.Error()
		}
		return u.Spec.Action == "Abort" && u.Status.Phase == v1alpha1.PhaseAborted, fmt.Sprintf("%s %s: %s", u.Spec.Action, u.Status.Phase, u.Status.Message)
	})
	if imgs := nodeImages(t, s); !sameCounts(imgs, original) {
		t.Errorf("nodes by AMI after the take-back: %v; want as before %v", imgs, original)
	}
	after := s.Groups()
	for _, i := range after["nodegroup-2"].Instances {
		if !slices.ContainsFunc(before["nodegroup-2"].Instances, func(b astypes.Instance) bool { return *b.InstanceId == *i.InstanceId }) {
			t.Errorf("nodegroup-2 was touched: a new instance %s", *i.InstanceId)
		}
	}
	// The user clears the halt: the rollout goes on and finishes.
	first := got.Status.Rollout.Halted.At
	// As kubectl annotate does: a patch, whatever the policy's version.
	resume := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+v1alpha1.ResumeAnnotation+`":"now"}}}`))
	if err := c.Patch(ctx, got, resume); err != nil {
		t.Fatal(err)
	}
	w.settled = func(p *v1alpha1.NodeGroupUpgradePolicy) bool { return p.Status.Rollout.Halted.At.Equal(&first) }
	got = w.until(5*time.Minute, "the resumed rollout finished", func(p *v1alpha1.NodeGroupUpgradePolicy) bool {
		return p.Status.State == v1alpha1.PolicyUpToDate && p.Status.LastRollout != nil
	})
	if _, ok := got.Annotations[v1alpha1.ResumeAnnotation]; ok {
		t.Errorf("the resume annotation was left on the policy")
	}
	if imgs := nodeImages(t, s); imgs[s.RecommendedAMI("1.37")] != 6 {
		t.Errorf("nodes by AMI at the end: %v", imgs)
	}
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Pods crash-loop on the canary's new nodes alone (the test reports their
// restarts as a kubelet would): the soak sees it and halts before the
// other group, naming the pod; onFailure Abort upgrades the canary back to
// the AMI it ran.
func TestAPolicyHaltsOnARegressionInTheCanarysSoak(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups=2", "--controllers=1")
	c := s.Client()
	ctx := context.Background()
	original := nodeImages(t, s)
	p := seedPolicy("regression", 2*time.Minute, "nodegroup")
	p.Spec.OnFailure = "Abort"
	w := createPolicy(t, c, p)
	w.until(3*time.Minute, "the canary soaking", inState(v1alpha1.PolicySoaking))
	target := s.RecommendedAMI("1.37")
	nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "eks.amazonaws.com/nodegroup-image=" + target})
	if err != nil || len(nodes.Items) != 3 {
		t.Fatalf("the canary's new nodes: %v %d", err, len(nodes.Items))
	}
	pods, err := s.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodes.Items[0].Name})
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for k := range pods.Items {
		pod := &pods.Items[k]
		if len(pod.Status.ContainerStatuses) == 0 || len(pod.OwnerReferences) == 0 || pod.OwnerReferences[0].Kind == "DaemonSet" {
			continue
		}
		pod.Status.ContainerStatuses[0].RestartCount = 5
		if _, err := s.Kube.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		victim = pod.Namespace + "/" + pod.Name
		break
	}
	if victim == "" {
		t.Fatalf("no pod to crash-loop on %s", nodes.Items[0].Name)
	}
	got := w.until(time.Minute, "halted on the regression", inState(v1alpha1.PolicyHalted))
	if h := got.Status.Rollout.Halted; h.Reason != "Regression" || !strings.Contains(h.Message, victim) || !strings.Contains(h.Message, "crash-looping") {
		t.Errorf("the halt: %+v", h)
	}
	for _, u := range policyUpgrades(t, c, p.Name) {
		if u.Spec.NodeGroup == "nodegroup-2" {
			t.Errorf("nodegroup-2 was started after the canary regressed: %s", u.Name)
		}
	}
	eventually(t, 3*time.Minute, "the canary taken back", func() (bool, string) {
		for _, u := range policyUpgrades(t, c, p.Name) {
			if u.Labels["noderoll.io/take-back"] == "true" {
				return u.Status.Phase == v1alpha1.PhaseComplete && sameCounts(nodeImages(t, s), original), fmt.Sprintf("%s %s: %s", u.Name, u.Status.Phase, u.Status.Message)
			}
		}
		return false, "no take-back yet: " + policyState(w.get())
	})
	if got = w.get(); got.Status.State != v1alpha1.PolicyHalted {
		t.Errorf("after the take-back: %s; want it halted until the user resumes", policyState(got))
	}
}
