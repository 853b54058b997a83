package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// apiCounters are counters of the API server's own /metrics, summed by a
// label: who asked (flow schema) and what for (verb, resource).
type apiCounters map[string]float64

// readAPICounters reads, from the API server's metrics, the requests it
// dispatched per flow schema and the requests it served per verb and
// resource (with subresource), and the time it spent serving them.
func readAPICounters(ctx context.Context, kube kubernetes.Interface) (apiCounters, error) {
	b, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	out := apiCounters{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, labels, value, ok := parseSample(line)
		if !ok {
			continue
		}
		switch name {
		case "apiserver_flowcontrol_dispatched_requests_total":
			out["by client: "+labels["flow_schema"]] += value
		case "apiserver_request_total":
			out["by request: "+requestKey(labels)] += value
		case "apiserver_request_duration_seconds_sum":
			out["seconds serving: "+requestKey(labels)] += value
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

// parseSample reads one Prometheus text sample: name{labels} value.
func parseSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	open := strings.IndexByte(line, '{')
	shut := strings.LastIndexByte(line, '}')
	if open < 0 || shut < open {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(line[shut+1:]), 64)
	if err != nil {
		return "", nil, 0, false
	}
	labels = map[string]string{}
	for _, kv := range strings.Split(line[open+1:shut], ",") {
		k, val, found := strings.Cut(kv, "=")
		if found {
			labels[k] = strings.Trim(val, `"`)
		}
	}
	return line[:open], labels, v, true
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
