package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/sandbox"
)

// apiCounters are counters of the API server's own /metrics, summed by a
// label: who asked (flow schema) and what for (verb, resource).
type apiCounters map[string]float64

// readAPICounters reads, from the API server's metrics, the requests it
// dispatched per flow schema and the requests it served per verb and
// resource (with subresource), and the time it spent serving them.
func readAPICounters(ctx context.Context, kube kubernetes.Interface) (apiCounters, error) {
	samples, err := sandbox.APIServerMetrics(ctx, kube, "apiserver_flowcontrol_dispatched_requests_total", "apiserver_request_total", "apiserver_request_duration_seconds_sum")
	if err != nil {
		return nil, err
	}
	out := apiCounters{}
	for _, s := range samples {
		switch s.Name {
		case "apiserver_flowcontrol_dispatched_requests_total":
			out["by client: "+s.Labels["flow_schema"]] += s.Value
		case "apiserver_request_total":
			out["by request: "+requestKey(s.Labels)] += s.Value
		case "apiserver_request_duration_seconds_sum":
			out["seconds serving: "+requestKey(s.Labels)] += s.Value
		}
	}
	return out, nil
}

func requestKey(l map[string]string) string {
	k := l["verb"] + " " + l["resource"]
	if l["subresource"] != "" {
		k += "/" + l["subresource"]
	}
	return k
}

// writeDelta writes what the counters grew by between two readings,
// largest first within each kind.
func writeDelta(w io.Writer, before, after apiCounters) {
	type row struct {
		key string
		v   float64
	}
	var rows []row
	for k, v := range after {
		if d := v - before[k]; d >= 0.5 {
			rows = append(rows, row{k, d})
		}
	}
	sort.Slice(rows, func(a, b int) bool {
		ka, _, _ := strings.Cut(rows[a].key, ": ")
		kb, _, _ := strings.Cut(rows[b].key, ": ")
		if ka != kb {
			return ka < kb
		}
		return rows[a].v > rows[b].v
	})
	for _, r := range rows {
		fmt.Fprintf(w, "%10.1f  %s\n", r.v, r.key)
	}
}

// EvictionStats are the evictions an API server served.
type EvictionStats struct {
	Count int `json:"count"`
	// MeanSeconds is the mean time an eviction took in the API server.
	MeanSeconds float64 `json:"meanSeconds"`
	// BudgetRereads is how many times per eviction a budget was read
	// again (GET poddisruptionbudgets): the eviction's retry after its
	// write of the budget's status collided with another's. Nothing else
	// in the sandbox reads a budget by name.
	BudgetRereads float64 `json:"budgetRereadsPerEviction"`
}

func evictionStats(before, after apiCounters) EvictionStats {
	n := after["by request: POST pods/eviction"] - before["by request: POST pods/eviction"]
	if n < 1 {
		return EvictionStats{}
	}
	secs := after["seconds serving: POST pods/eviction"] - before["seconds serving: POST pods/eviction"]
	gets := after["by request: GET poddisruptionbudgets"] - before["by request: GET poddisruptionbudgets"]
	return EvictionStats{Count: int(n), MeanSeconds: secs / n, BudgetRereads: gets / n}
}
