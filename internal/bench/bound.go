// Package bench measures upgrade strategies side by side on the sandbox:
// each strategy on a fresh group of each size, under the same delays, with
// samplers outside the engine, against the shortest makespan any
// orchestrator could reach under the same budgets.
package bench

import (
	"math"
	"time"
)

// Delays are the times a run measured: instance boot until its node is
// Ready (B+R), a pod's start (scheduled until Ready, S) and stop (deletion
// until gone, T), and the post-cordon wait (W) every strategy is given.
type Delays struct {
	BootReady time.Duration `json:"bootReady"`
	PodStart  time.Duration `json:"podStart"`
	// PodStartMedian is the median pod start of the run, queues included.
	PodStartMedian time.Duration `json:"podStartMedian"`
	PodStop        time.Duration `json:"podStop"`
	Wait           time.Duration `json:"postCordonWait"`
	// Replace is a moved pod's whole way back, from the replacement's
	// creation (its controller reacting to the eviction) through scheduling
	// to Ready: not a term of the bound, which counts S only, but what a
	// budget's round takes in fact on a busy control plane.
	Replace time.Duration `json:"podReplace"`
}

// Budgeted is one workload behind a disruption budget: its pods on old
// nodes when the upgrade starts (m), the disruptions its budget allows (d),
// and whether a replacement waits for the old pod to be gone (a
// StatefulSet's, c = T+S) or starts at once (a Deployment's, c = S).
type Budgeted struct {
	Name     string `json:"name"`
	OnOld    int    `json:"onOld"`
	Allowed  int    `json:"allowed"`
	Ordered  bool   `json:"statefulSet"`
	Rounds   int    `json:"rounds"`
	Duration time.Duration
}

// Bound is the lower bound on an upgrade's makespan and its terms.
type Bound struct {
	Waves      time.Duration `json:"waves"`
	Budgets    time.Duration `json:"budgets"`
	First      time.Duration `json:"firstCapacity"`
	Bottleneck string        `json:"bottleneck"` // the workload whose budget binds
	Makespan   time.Duration `json:"makespan"`
}

// lowerBound is the shortest makespan any orchestrator could reach
// replacing n old nodes with at most p of them in flight (surge +
// unavailable) and no ready capacity missing, under the measured delays
// and the workloads' budgets (docs/performance.md derives it). The
// post-cordon wait runs from a node's cordon, which may come before its
// drain, so a slot holds a node for the longer of its drain and its wait:
//
//	first capacity: B+R + max(T, W)  (nothing spare exists at the start)
//	waves:          ceil(n/p) * (B+R + max(T, W)): each slot waits for
//	                new capacity, then drains (at least one pod stop)
//	                while its wait runs
//	budgets:        B+R + max_w (ceil(m_w/d_w) - 1) * c_w + T: a budget
//	                of d frees one slot per replacement Ready; the last
//	                round's pods still stop
func lowerBound(n, p int, d Delays, workloads []Budgeted) Bound {
	var b Bound
	hold := max(d.PodStop, d.Wait)
	b.First = d.BootReady + hold
	if n > 0 && p > 0 {
		waves := int(math.Ceil(float64(n) / float64(p)))
		b.Waves = time.Duration(waves) * (d.BootReady + hold)
	}
	var worst time.Duration
	for k := range workloads {
		w := &workloads[k]
		if w.OnOld == 0 {
			continue
		}
		c := d.PodStart
		if w.Ordered {
			c = d.PodStop + d.PodStart
		}
		w.Rounds = int(math.Ceil(float64(w.OnOld) / float64(max(w.Allowed, 1))))
		w.Duration = time.Duration(w.Rounds-1)*c + d.PodStop
		if w.Duration > worst {
			worst, b.Bottleneck = w.Duration, w.Name
		}
	}
	if worst > 0 {
		b.Budgets = d.BootReady + worst
	}
	b.Makespan = max(b.First, b.Waves, b.Budgets)
	return b
}
