package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseSampleReadsNameLabelsAndValue(t *testing.T) {
	name, l, v, ok := parseSample(`apiserver_request_total{code="201",component="apiserver",resource="pods",subresource="eviction",verb="POST"} 1234`)
	if !ok || name != "apiserver_request_total" || l["subresource"] != "eviction" || v != 1234 || requestKey(l) != "POST pods/eviction" {
		t.Fatalf("got %q %v %v %v", name, l, v, ok)
	}
	for _, bad := range []string{"# HELP x", "", "plain 3", `x{a="b"} notanumber`} {
		if _, _, _, ok := parseSample(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestEvictionStatsAreMeansPerEviction(t *testing.T) {
	before := apiCounters{"by request: POST pods/eviction": 10, "seconds serving: POST pods/eviction": 5, "by request: GET poddisruptionbudgets": 1}
	after := apiCounters{"by request: POST pods/eviction": 110, "seconds serving: POST pods/eviction": 225, "by request: GET poddisruptionbudgets": 261}
	if got := evictionStats(before, after); got != (EvictionStats{Count: 100, MeanSeconds: 2.2, BudgetRereads: 2.6}) {
		t.Fatalf("got %+v", got)
	}
	if got := evictionStats(before, before); got != (EvictionStats{}) {
		t.Fatalf("no evictions: %+v", got)
	}
}

func TestWriteDeltaListsGrowthLargestFirstPerKind(t *testing.T) {
	before := apiCounters{"by client: a": 10, "by client: b": 5, "by request: GET pods": 1}
	after := apiCounters{"by client: a": 12, "by client: b": 50, "by request: GET pods": 1, "by request: POST pods": 7}
	var out bytes.Buffer
	writeDelta(&out, before, after)
	got := strings.Fields(out.String())
	want := []string{"45.0", "by", "client:", "b", "2.0", "by", "client:", "a", "7.0", "by", "request:", "POST", "pods"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got\n%s", out.String())
	}
}
