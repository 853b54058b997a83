package controller

import (
	"github.com/prometheus/client_golang/prometheus"
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
