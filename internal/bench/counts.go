package bench

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
)

// counters are the API server's request counters read before a row's
// upgrade: what the upgrade asked for is their difference after.
type counters struct {
	requests int // by the upgrade's own identity
	api      apiCounters
}

func readCounters(ctx context.Context, kube kubernetes.Interface) (counters, error) {
	requests, err := requestsOf(ctx, kube)
	if err != nil {
		return counters{}, err
	}
	api, err := readAPICounters(ctx, kube)
	if err != nil {
		return counters{}, err
	}
	return counters{requests: requests, api: api}, nil
}

// count fills in the row's API requests, evictions and AWS calls since the
// counters were read, and writes who asked the API server for what to
// dir/api-requests.txt: on a small machine the control plane's own work is
// what a strategy waits on.
func (before counters) count(ctx context.Context, row *Row, sb *sandboxed, dir string) {
	if after, err := requestsOf(ctx, sb.kube); err == nil {
		row.APIRequests = after - before.requests
	}
	if after, err := readAPICounters(ctx, sb.kube); err == nil {
		if f, err := os.Create(filepath.Join(dir, "api-requests.txt")); err == nil {
			writeDelta(f, before.api, after)
			_ = f.Close()
		}
		row.Evictions = evictionStats(before.api, after)
	}
	if calls, err := sb.st.Calls(ctx); err == nil {
		for _, c := range calls {
			if c.AccessKey == upgradeAccessKey {
				row.AWSCalls++
			}
		}
	}
}

// perNode divides the row's requests and calls by the nodes it replaced.
func (row *Row) perNode() {
	if row.Replaced > 0 {
		row.PerNode = float64(row.APIRequests) / float64(row.Replaced)
		row.AWSPerNode = float64(row.AWSCalls) / float64(row.Replaced)
	}
}

// bound measures the delays the run showed since began (a pod's stop at
// least the longest the sampler saw) and holds the makespan to the lower
// bound they give a group of n nodes.
func (row *Row) bound(ctx context.Context, sb *sandboxed, began time.Time, podStop, wait time.Duration, n int) error {
	d, err := measure(ctx, sb.kube, sb.ec2, began)
	if err != nil {
		return err
	}
	d.PodStop = max(d.PodStop, podStop)
	d.Wait = wait
	row.Delays = d
	row.InFlight = defaultInFlight(n, 3)
	row.Bound = lowerBound(n, row.InFlight, row.Delays, row.Workloads)
	if row.Bound.Makespan > 0 {
		row.Ratio = float64(row.Makespan) / float64(row.Bound.Makespan)
	}
	return nil
}

// sampled takes what the row's samplers outside the engine saw: budget
// breaches and the peak of instances in service; it returns the longest
// pod stop seen.
func (row *Row) sampled(smp *sampler) time.Duration {
	breaches, peak, podStop := smp.finish()
	row.Breaches, row.PeakInstances = breaches, peak
	if row.Breaches == nil {
		row.Breaches = []string{}
	}
	return podStop
}
