package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestAnUpgradeFinishesUnderThrottling: with three AWS calls in ten answered
// as a throttled account's are, the default upgrade still finishes: the
// SDK's retryer backs off and retries, no step gives up, every old instance
// is terminated exactly once (counted from the calls the endpoint applied),
// and no budget goes below its minimum.
func TestAnUpgradeFinishesUnderThrottling(t *testing.T) {
	s := StartSandbox(t)
	before := s.Group()
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "30%"); r.Code != 0 || !strings.Contains(r.Stdout, "30% of AWS calls are answered as throttled") {
		t.Fatalf("sandbox throttle 30%%: %s %s", r.Stdout, r.LastLine())
	}
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "30"); r.Code == 0 || !strings.Contains(r.LastLine(), "want a percentage") {
		t.Fatalf("a rate without %%: exit %d %s", r.Code, r.LastLine())
	}
	budgets := WatchBudgets(t, s.Kube)
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.Noderoll(upgrade...)
	if r.Code != 0 {
		t.Fatalf("the upgrade under throttling failed: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	if r := s.Noderoll("sandbox", "throttle", "--dir", s.Dir, "off"); r.Code != 0 {
		t.Fatal(r.LastLine())
	}
	throttled, applied := 0, map[string]int{}
	for _, c := range s.Calls("") {
		switch {
		case c.Error == "Throttling" || c.Error == "RequestLimitExceeded" || c.Error == "ThrottlingException":
			throttled++
		case c.Error == "" && c.Action == "TerminateInstanceInAutoScalingGroup":
			applied[c.Params["InstanceId"]]++
		}
	}
	if throttled < 10 {
		t.Fatalf("only %d calls were throttled: the run did not meet throttling", throttled)
	}
	t.Logf("%d calls throttled, retried by the SDK", throttled)
	terminatedOnce(t, before, applied)
	allOnTarget(t, s, 3)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	if r := s.Noderoll(upgrade...); r.Code != 0 || !slices.ContainsFunc(strings.Split(r.Stdout, "\n"), func(l string) bool { return strings.Contains(l, "Up to date") }) {
		t.Fatalf("a rerun: exit %d\n%s", r.Code, r.Stdout)
	}
}
