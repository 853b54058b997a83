package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestRequestKeyNamesVerbResourceAndSubresource(t *testing.T) {
	if k := requestKey(map[string]string{"verb": "POST", "resource": "pods", "subresource": "eviction"}); k != "POST pods/eviction" {
		t.Fatal(k)
	}
	if k := requestKey(map[string]string{"verb": "LIST", "resource": "pods"}); k != "LIST pods" {
		t.Fatal(k)
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
