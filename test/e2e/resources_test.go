package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/bench"
)

// resourceRecord is testdata/resource-use.json: per bench row, the figures
// that do not depend on the machine's speed, as last measured, and how far
// each may go above it before the test fails.
type resourceRecord struct {
	Note string                       `json:"note"`
	Rows map[string]map[string]figure `json:"rows"`
}

// figure is one recorded figure: a run may reach Recorded x (1 + Margin)
// + Slack (the slack keeps a small figure's noise from failing it).
type figure struct {
	Recorded float64 `json:"recorded"`
	Margin   float64 `json:"margin"`
	Slack    float64 `json:"slack"`
}

func (f figure) limit() float64 { return f.Recorded*(1+f.Margin) + f.Slack }

// figuresOf reads a row's guarded figures.
func figuresOf(r bench.Row) map[string]float64 {
	return map[string]float64{
		"apiRequestsPerReplacedNode": r.PerNode,
		"awsCallsPerReplacedNode":    r.AWSPerNode,
		"budgetRereadsPerEviction":   r.Evictions.BudgetRereads,
		"peakRSSMiB":                 r.PeakRSSMiB,
		"peakAnonMiB":                r.PeakAnonMiB,
	}
}

// A regression in what an upgrade costs is seen when it happens, not in
// the next benchmark weeks later: the benchmark's own rows, at a fixed
// small size (one CLI run of 30 nodes, one controller upgrading 3 groups of
// 10), must hold the API requests and AWS calls per replaced node, the
// budgets' rereads per eviction and the process's peak memory to the
// figures recorded in testdata/resource-use.json, within their margins;
// and no budget may be breached. Times are the benchmark's to measure,
// not this test's. It runs alone (not parallel), so that nothing else
// makes the API server slower and its evictions collide more.
func TestResourceUseHoldsToItsRecord(t *testing.T) {
	bin := noderollBinary(t)
	// The controller's row runs the image's binary when it sits beside
	// the CLI's.
	ctl := filepath.Join(filepath.Dir(bin), "noderoll-controller")
	build := exec.Command("go", "build", "-o", ctl, "../../cmd/noderoll-controller")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building noderoll-controller: %v\n%s", err, out)
	}
	raw, err := os.ReadFile("testdata/resource-use.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec resourceRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("testdata/resource-use.json: %v", err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.json")
	res := runBinary(t, bin, dir, cleanEnv(), "bench", "--sizes", "30", "--strategies", "surge", "--controller-row", "3x10", "--dir", dir, "--json", out)
	if res.Code != 0 {
		t.Fatalf("noderoll bench: exit %d\n%s", res.Code, tail(res.Stdout+res.Stderr, 40))
	}
	var doc struct{ Rows []bench.Row }
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	seen := map[string]bool{}
	var table []string
	for _, r := range doc.Rows {
		name := fmt.Sprintf("%d %s", r.Nodes, r.Strategy)
		seen[name] = true
		if len(r.Breaches) > 0 {
			t.Errorf("%s: budgets breached: %v", name, r.Breaches)
		}
		if r.Replaced != r.Nodes {
			t.Errorf("%s: %d nodes replaced, want %d", name, r.Replaced, r.Nodes)
		}
		want, ok := rec.Rows[name]
		if !ok {
			t.Errorf("row %q has no record in testdata/resource-use.json", name)
			continue
		}
		got := figuresOf(r)
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f := want[k]
			v, ok := got[k]
			if !ok {
				t.Errorf("%s: the record names %q, which the bench does not measure", name, k)
				continue
			}
			verdict := "ok"
			if v > f.limit() {
				verdict = "SLIPPED"
				t.Errorf("%s: %s is %.2f, above its limit %.2f (recorded %.2f, margin %.0f%% + %.2f): "+
					"something made the upgrade cost more; find it (bench's api-requests.txt, NODEROLL_HEAP_PROFILE) "+
					"or, if the cost is meant, record the new figure in test/e2e/testdata/resource-use.json and say why in the commit",
					name, k, v, f.limit(), f.Recorded, 100*f.Margin, f.Slack)
			}
			table = append(table, fmt.Sprintf("%-36s %-28s %8.2f  recorded %8.2f  limit %8.2f  %s", name, k, v, f.Recorded, f.limit(), verdict))
		}
	}
	for name := range rec.Rows {
		if !seen[name] {
			t.Errorf("no row %q in the bench's output: the record and the test's command disagree", name)
		}
	}
	t.Logf("resource use against testdata/resource-use.json:\n%s", strings.Join(table, "\n"))
}
