package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// Sample is one series of a Prometheus text exposition: a metric's name,
// its labels and its value.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// APIServerMetrics reads the API server's own /metrics and returns the
// samples of the named metrics.
func APIServerMetrics(ctx context.Context, kube kubernetes.Interface, names ...string) ([]Sample, error) {
	b, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	var out []Sample
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok && slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Count sums an API Priority and Fairness counter of the API server
// (apiserver_flowcontrol_dispatched_requests_total, ..._rejected_requests_total)
// over the identity's flow schema: its requests alone.
func (id Identity) Count(ctx context.Context, kube kubernetes.Interface, metric string) (int, error) {
	samples, err := APIServerMetrics(ctx, kube, metric)
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, s := range samples {
		if s.Labels["flow_schema"] == id.Name {
			total += s.Value
		}
	}
	return int(total), nil
}

// parseSample reads one line of a Prometheus text exposition with labels,
// name{labels} value; comments, blank lines and series without labels are
// not samples here.
func parseSample(line string) (Sample, bool) {
	if line == "" || line[0] == '#' {
		return Sample{}, false
	}
	open := strings.IndexByte(line, '{')
	shut := strings.LastIndexByte(line, '}')
	if open < 0 || shut < open {
		return Sample{}, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(line[shut+1:]), 64)
	if err != nil {
		return Sample{}, false
	}
	labels := map[string]string{}
	for _, kv := range strings.Split(line[open+1:shut], ",") {
		if k, val, found := strings.Cut(kv, "="); found {
			labels[k] = strings.Trim(val, `"`)
		}
	}
	return Sample{Name: line[:open], Labels: labels, Value: v}, true
}
