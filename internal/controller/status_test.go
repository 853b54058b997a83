package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/drain"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/preflight"
)

func node(name, id string, ready, cordoned bool) corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: "us-west-2a"}},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///us-west-2a/" + id, Unschedulable: cordoned},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}},
	}
}

// Counts come from the group's own Nodes and the record; only nodes in
// flight are listed, the blocked first, with the pods and budgets named.
func TestStatusCountsTheGroupAndListsOnlyNodesInFlight(t *testing.T) {
	m := engine.NewMembers()
	m.Add([]cloud.Instance{{ID: "i-old1", ImageID: "ami-old"}, {ID: "i-old2", ImageID: "ami-old"}, {ID: "i-old3", ImageID: "ami-old"},
		{ID: "i-new1", ImageID: "ami-new"}, {ID: "i-new2", ImageID: "ami-new"}})
	nodes := []corev1.Node{
		node("old1", "i-old1", true, true),   // draining, blocked
		node("old2", "i-old2", true, true),   // draining
		node("old3", "i-old3", true, false),  // waiting its turn: not listed
		node("new1", "i-new1", true, false),  // up to date
		node("new2", "i-new2", false, false), // launching
		node("other", "i-x", false, true),    // another group's: ignored
	}
	rec := &engine.Record{OriginalDesired: 3, Replaced: []string{"i-old0"}, Target: engine.Target{ImageID: "ami-new", ImageName: "al2023-1.37", KubeMinor: "1.37"}}
	since := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	bl := map[string]blocked{"old1": {by: "pod shop/web-1 blocked by PodDisruptionBudget shop/web (allowed disruptions 0)", since: since}}
	p := observe(rec, nodes, m, "5/9 Replace", "draining", bl)
	// Three old nodes are still there in a group that ends at three: none
	// of its final nodes is done yet, however many new ones came.
	if p.Total != 3 || p.UpToDate != 0 || p.InFlight != 3 || p.Blocked != 1 || p.Replaced != 1 {
		t.Errorf("counts total %d up to date %d in flight %d blocked %d replaced %d; want 3 0 3 1 1", p.Total, p.UpToDate, p.InFlight, p.Blocked, p.Replaced)
	}
	// The seed's surge, one old node replaced: four new nodes Ready and two
	// old left make one of three done, not four of three.
	m.Add([]cloud.Instance{{ID: "i-new3", ImageID: "ami-new"}, {ID: "i-new4", ImageID: "ami-new"}})
	surged := []corev1.Node{node("old2", "i-old2", true, false), node("old3", "i-old3", true, false),
		node("new1", "i-new1", true, false), node("new2", "i-new2", true, false), node("new3", "i-new3", true, false), node("new4", "i-new4", true, false)}
	if p := observe(rec, surged, m, "", "", nil); p.UpToDate != 1 || p.Total != 3 {
		t.Errorf("mid-surge: %d of %d up to date, want 1 of 3", p.UpToDate, p.Total)
	}
	// Scaling back: every old node gone, three of the surge's four new
	// nodes are the group's final three.
	if p := observe(rec, surged[2:], m, "", "", nil); p.UpToDate != 3 {
		t.Errorf("scaling back: %d of 3 up to date, want 3", p.UpToDate)
	}
	var got []string
	for _, n := range p.Nodes {
		got = append(got, n.Name+":"+n.State)
	}
	if strings.Join(got, ",") != "old1:Blocked,new2:Launching,old2:Draining" {
		t.Errorf("listed %v; want the blocked node first, then the others in flight by name", got)
	}
	if p.Nodes[0].InstanceID != "i-old1" || p.Nodes[0].Zone != "us-west-2a" || !p.Nodes[0].Since.Time.Equal(since) {
		t.Errorf("blocked node %+v", p.Nodes[0])
	}
	if !strings.Contains(p.BlockedBy, "node old1: pod shop/web-1 blocked by PodDisruptionBudget shop/web") {
		t.Errorf("the Blocked condition would say %q", p.BlockedBy)
	}
	if p.Target == nil || p.Target.ImageID != "ami-new" || p.Target.KubernetesVersion != "1.37" {
		t.Errorf("target %+v", p.Target)
	}
}

// A 1,000-node group's status lists at most maxListedNodes nodes.
func TestStatusStaysSmallForALargeGroup(t *testing.T) {
	m := engine.NewMembers()
	var nodes []corev1.Node
	for i := range 1000 {
		id := fmt.Sprintf("i-%04d", i)
		m.Add([]cloud.Instance{{ID: id, ImageID: "ami-old"}})
		nodes = append(nodes, node(fmt.Sprintf("n%04d", i), id, true, true))
	}
	p := observe(&engine.Record{OriginalDesired: 1000, Target: engine.Target{ImageID: "ami-new"}}, nodes, m, "", "", nil)
	if p.InFlight != 1000 || len(p.Nodes) != maxListedNodes {
		t.Errorf("in flight %d, listed %d; want 1000 counted, %d listed", p.InFlight, len(p.Nodes), maxListedNodes)
	}
}

// A refusal not repeated within the freshness window was let through.
func TestABlockNotHeardAgainIsOver(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := newReports(func() time.Time { return now })
	blocked := func(node string, bl ...drain.Blocker) {
		r.Report(engine.Progress{Kind: engine.ProgressBlocked, Node: node, Blockers: bl})
	}
	blocked("a", drain.Blocker{Namespace: "ns", Pod: "p", PDBs: []string{"ns/b (allowed disruptions 0)"}})
	blocked("b", drain.Blocker{Namespace: "ns", Pod: "q", Reason: "webhook"})
	now = now.Add(10 * time.Second)
	blocked("b", drain.Blocker{Namespace: "ns", Pod: "q", Reason: "webhook"})
	r.Report(engine.Progress{Kind: engine.ProgressStep, Step: 5, Title: "Replace", Node: "a", Message: "node a"})
	step, msg, bl := r.snapshot(5 * time.Second)
	if step != "5/9 Replace" || msg != "node a" {
		t.Errorf("step %q message %q", step, msg)
	}
	if len(bl) != 1 || bl["b"].by == "" || !bl["b"].since.Equal(now.Add(-10*time.Second)) {
		t.Errorf("blocked %+v; want only b, blocked since its first refusal", bl)
	}
	blocked("b")
	if _, _, bl := r.snapshot(time.Hour); len(bl) != 1 || bl["a"].by == "" {
		t.Errorf("after b was let through: %+v", bl)
	}
}

// The controller says what to do in the resource's terms, not the CLI's.
func TestAStoppedUpgradeSaysWhatToDoWithTheResource(t *testing.T) {
	for _, c := range []struct {
		err          error
		reason, want string
	}{
		{&preflight.BlockedError{Findings: []preflight.Finding{{Check: "budgets"}}}, "PreflightBlocked", "spec.ignorePreflight"},
		{fmt.Errorf("x: %w", engine.ErrTargetMismatch), "AnotherUpgrade", "Finish that upgrade first"},
		{&drain.BlockedError{}, "EvictionRefused", "spec.force"},
		{errors.New("boom"), "Stopped", "Edit the spec"},
	} {
		reason, msg := explain(c.err)
		if reason != c.reason || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, c.err.Error()) {
			t.Errorf("%T: reason %s, message %q; want %s saying %q after the cause", c.err, reason, msg, c.reason, c.want)
		}
		if strings.Contains(msg[len(c.err.Error()):], "--") {
			t.Errorf("%T: advice names a CLI flag: %q", c.err, msg)
		}
	}
}

// The group's own steps are told (as Events on the resource); a node's or
// an instance's are not: a 1,000-node group would write thousands.
func TestOnlyTheGroupsStepsBecomeEvents(t *testing.T) {
	r := newReports(time.Now)
	var told []string
	r.grouped = func(p engine.Progress) { told = append(told, fmt.Sprintf("%d %s", p.Step, p.Title+p.Text())) }
	for _, p := range []engine.Progress{
		{Step: 1, Title: "Launch template", Message: "lt-1 version 2"},
		{Step: 3, Title: "Surge", Message: "3 -> 6"},
		{Step: 5, Title: "Replace node 1/3", Node: "ip-1", Instance: "i-1"},
		{Step: 6, Title: "Cordon", Node: "ip-1"},
		{Step: 7, Title: "Terminate", Instance: "i-1"},
		{Step: 0, Title: "Going back", Node: "ip-2", Message: "old node ip-2 takes pods again"},
		{Step: 9, Title: "Sizes restored", Message: "back to 3"},
		{Step: 0, Title: "Resume", Message: "resuming"},
	} {
		p.Kind = engine.ProgressStep
		r.Report(p)
	}
	r.Report(engine.Progress{Kind: engine.ProgressInfo, Message: "new nodes Ready"})
	r.Report(engine.Progress{Kind: engine.ProgressInfo, Warning: true, Message: "launch failed, retrying"})
	r.Report(engine.Progress{Kind: engine.ProgressInfo, Warning: true, Node: "ip-3", Message: "pod left terminating"})
	if got := strings.Join(told, ", "); got != "1 Launch templatelt-1 version 2, 3 Surge3 -> 6, 9 Sizes restoredback to 3, 0 Resumeresuming, 0 ! launch failed, retrying" {
		t.Errorf("told %s", got)
	}
	if eventReason("Sizes restored") != "SizesRestored" || eventReason("Launch template") != "LaunchTemplate" {
		t.Errorf("reasons %s %s", eventReason("Sizes restored"), eventReason("Launch template"))
	}
}
