package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/keepcurrent"
)

// Metrics are the controller's own series, beside controller-runtime's
// (reconciles, work queue, client requests).
type Metrics struct {
	running  prometheus.Gauge
	ended    *prometheus.CounterVec
	replaced prometheus.Counter
	refused  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	steps    *prometheus.HistogramVec
	calls    *prometheus.CounterVec
}

// NewMetrics registers the controller's series with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "noderoll_upgrades_running",
			Help: "Upgrades this replica runs now."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "noderoll_upgrades_ended_total",
			Help: "Upgrades that ended, by phase (Complete, Failed, Aborted, RolledBack)."}, []string{"phase"}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "noderoll_nodes_replaced_total",
			Help: "Old instances terminated by the upgrades this replica ran."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "noderoll_evictions_refused_total",
			Help: "Evictions refused, by the PodDisruptionBudget that refused them (or the API server's reason)."}, []string{"budget"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "noderoll_upgrade_duration_seconds",
			Help:    "Whole upgrades, from the worker's start to their end, by phase.",
			Buckets: prometheus.ExponentialBuckets(30, 2, 10)}, []string{"phase"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "noderoll_step_duration_seconds",
			Help:    "The upgrades' recorded steps (surge, replace, scale back...), by name.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}, []string{"step"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "noderoll_cloud_api_calls_total",
			Help: "Cloud API calls, retries included in one, by service, action and result (ok or error)."}, []string{"service", "action", "result"}),
	}
	for _, c := range []prometheus.Collector{m.running, m.ended, m.replaced, m.refused, m.duration, m.steps, m.calls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// CloudCall counts one cloud API call (awscloud.Options.OnCall).
func (m *Metrics) CloudCall(service, action string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(service, action, result).Inc()
}

// PolicyMetrics are the policies' series: how far behind their groups are
// and how their rollouts end.
type PolicyMetrics struct {
	behind       *prometheus.GaugeVec
	behindFor    *prometheus.GaugeVec
	rollouts     *prometheus.CounterVec
	halted       *prometheus.GaugeVec
	mu           sync.Mutex
	groupsByName map[string][]string // the group series a policy has, to drop them
}

// NewPolicyMetrics registers the policies' series with reg.
func NewPolicyMetrics(reg prometheus.Registerer) (*PolicyMetrics, error) {
	m := &PolicyMetrics{
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "noderoll_policy_groups_behind",
			Help: "Node groups of a policy not on their newest acceptable AMI release."}, []string{"policy"}),
		behindFor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "noderoll_policy_group_behind_seconds",
			Help: "How long a policy's node group has been behind: since the release it lacks was published (0 when up to date)."}, []string{"policy", "group"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "noderoll_policy_rollouts_total",
			Help: "Rollouts of new releases that ended, by outcome (Completed, Halted)."}, []string{"policy", "outcome"}),
		halted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "noderoll_policy_halted",
			Help: "1 while a policy's rollout is halted on a failure or a regression."}, []string{"policy"}),
		groupsByName: map[string][]string{},
	}
	for _, c := range []prometheus.Collector{m.behind, m.behindFor, m.rollouts, m.halted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe sets a policy's series from a decision.
// prev is the policy's status before the decision.
func (m *PolicyMetrics) observe(policy string, prev *v1alpha1.NodeGroupUpgradePolicyStatus, out keepcurrent.Output, now time.Time) {
	if m == nil {
		return
	}
	behind := 0
	var groups []string
	for _, g := range out.Groups {
		groups = append(groups, g.Name)
		secs := 0.0
		if g.State != v1alpha1.PolicyUpToDate {
			behind++
			if g.BehindSince != nil {
				secs = now.Sub(g.BehindSince.Time).Seconds()
			}
		}
		m.behindFor.WithLabelValues(policy, g.Name).Set(secs)
	}
	m.behind.WithLabelValues(policy).Set(float64(behind))
	wasHalted := prev.Rollout != nil && prev.Rollout.Halted != nil
	isHalted := out.Rollout != nil && out.Rollout.Halted != nil
	m.halted.WithLabelValues(policy).Set(map[bool]float64{true: 1, false: 0}[isHalted])
	if isHalted && !wasHalted {
		m.rollouts.WithLabelValues(policy, "Halted").Inc()
	}
	if out.Ended != nil {
		m.rollouts.WithLabelValues(policy, out.Ended.Outcome).Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.groupsByName[policy] {
		if !slices.Contains(groups, g) {
			m.behindFor.DeleteLabelValues(policy, g)
		}
	}
	m.groupsByName[policy] = groups
}

// forget drops a deleted policy's series.
func (m *PolicyMetrics) forget(policy string) {
	if m == nil {
		return
	}
	m.behind.DeleteLabelValues(policy)
	m.halted.DeleteLabelValues(policy)
	m.behindFor.DeletePartialMatch(prometheus.Labels{"policy": policy})
	m.mu.Lock()
	delete(m.groupsByName, policy)
	m.mu.Unlock()
}
