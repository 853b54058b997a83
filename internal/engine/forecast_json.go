package engine

import (
	"math"
	"time"

	"github.com/noderoll/noderoll/internal/predict"
)

// ForecastJSON is a Forecast as `noderoll plan -o json|yaml` writes it.
// Durations are seconds, JSON numbers whose names end in Seconds, as in
// every machine-readable output of noderoll (docs/output.md); times of a
// predicted run's phases are seconds since its start.
type ForecastJSON struct {
	*PreflightReport
	Observed ObservedJSON `json:"observed"`
	// Assumed names the delays taken as assumptions (no history of the
	// group shows them), Given those the command line gave.
	Assumed          []string           `json:"assumed"`
	Given            []string           `json:"given"`
	Delays           DelaysJSON         `json:"delays"`
	Budgets          []Headroom         `json:"budgets"`
	Predictions      []PredictionJSON   `json:"predictions"`
	PredictedSeconds map[string]float64 `json:"predictedSeconds"`
}

// ObservedJSON is Observed in seconds.
type ObservedJSON struct {
	BootReadySeconds float64    `json:"bootReadySeconds"`
	BootReadySamples int        `json:"bootReadySamples"`
	PodStartSeconds  float64    `json:"podStartSeconds"`
	PodStartSamples  int        `json:"podStartSamples"`
	PodStopSeconds   float64    `json:"podStopSeconds,omitempty"`
	PodStopSamples   int        `json:"podStopSamples"`
	PodStopFrom      *time.Time `json:"podStopFromUpgradeStarted,omitempty"`
	ShutdownSeconds  float64    `json:"shutdownSeconds,omitempty"`
	ShutdownSamples  int        `json:"shutdownSamples"`
}

// DelaysJSON is predict.Delays in seconds.
type DelaysJSON struct {
	BootReady float64 `json:"bootReadySeconds"`
	PodStart  float64 `json:"podStartSeconds"`
	PodStop   float64 `json:"podStopSeconds"`
	Shutdown  float64 `json:"shutdownSeconds"`
	Evict     float64 `json:"evictSeconds"`
	Recount   float64 `json:"recountSeconds"`
	Contend   float64 `json:"contendSeconds"`
	Poll      float64 `json:"pollSeconds"`
	Call      float64 `json:"callSeconds"`
	Setup     float64 `json:"setupSeconds"`
	// PodsPerSecond is the control plane's rate of moved pods the
	// prediction holds to (0: not limited).
	PodsPerSecond float64 `json:"podsPerSecond"`
	// BudgetEvictionsPerSecond is one budget's rate of evictions the
	// prediction holds to (0: not limited).
	BudgetEvictionsPerSecond float64 `json:"budgetEvictionsPerSecond"`
}

// PredictionJSON is one strategy's Prediction in seconds.
type PredictionJSON struct {
	Strategy        string         `json:"strategy"`
	DurationSeconds float64        `json:"durationSeconds"`
	PeakInstances   int            `json:"peakInstances"`
	Blocked         string         `json:"blocked,omitempty"`
	Milestones      MilestonesJSON `json:"milestones"`
	MaxSurge        int            `json:"maxSurge"`
	MaxUnavailable  int            `json:"maxUnavailable"`
	Chosen          bool           `json:"chosen,omitempty"`
}

// MilestonesJSON are predict.Milestones as seconds since the run's start
// (absent: the phase does not happen).
type MilestonesJSON struct {
	Launched   float64 `json:"launchedSeconds,omitempty"`
	Ready      float64 `json:"readySeconds,omitempty"`
	FirstDrain float64 `json:"firstDrainSeconds,omitempty"`
	LastDrain  float64 `json:"lastDrainSeconds,omitempty"`
	Drained    float64 `json:"drainedSeconds,omitempty"`
	Terminated float64 `json:"terminatedSeconds,omitempty"`
	End        float64 `json:"endSeconds,omitempty"`
}

// JSON is the forecast as plan writes it.
func (f *Forecast) JSON() ForecastJSON {
	o := f.Observed
	out := ForecastJSON{PreflightReport: f.PreflightReport, Assumed: f.Assumed, Given: f.Given, Budgets: f.Budgets,
		Observed: ObservedJSON{BootReadySeconds: secs(o.BootReady), BootReadySamples: o.BootReadySamples,
			PodStartSeconds: secs(o.PodStart), PodStartSamples: o.PodStartSamples,
			PodStopSeconds: secs(o.PodStop), PodStopSamples: o.PodStopSamples,
			ShutdownSeconds: secs(o.Shutdown), ShutdownSamples: o.ShutdownSamples},
		Delays: DelaysJSON{BootReady: secs(f.Delays.BootReady), PodStart: secs(f.Delays.PodStart), PodStop: secs(f.Delays.PodStop),
			Shutdown: secs(f.Delays.Shutdown), Evict: secs(f.Delays.Evict), Recount: secs(f.Delays.Recount), Contend: secs(f.Delays.Contend),
			Poll: secs(f.Delays.Poll), Call: secs(f.Delays.Call), Setup: secs(f.Delays.Setup), PodsPerSecond: f.Delays.PodsPerSecond,
			BudgetEvictionsPerSecond: f.Delays.BudgetEvictionsPerSecond},
		Predictions: []PredictionJSON{}, PredictedSeconds: map[string]float64{}}
	if !o.PodStopFrom.IsZero() {
		out.Observed.PodStopFrom = &o.PodStopFrom
	}
	for _, l := range []*[]string{&out.Assumed, &out.Given} {
		if *l == nil {
			*l = []string{}
		}
	}
	if out.Budgets == nil {
		out.Budgets = []Headroom{}
	}
	for _, p := range f.Predictions {
		m := p.Milestones
		out.Predictions = append(out.Predictions, PredictionJSON{Strategy: p.Strategy, DurationSeconds: secs(p.Duration),
			PeakInstances: p.PeakInstances, Blocked: p.Blocked, MaxSurge: p.MaxSurge, MaxUnavailable: p.MaxUnavailable, Chosen: p.Chosen,
			Milestones: MilestonesJSON{Launched: secs(m.Launched), Ready: secs(m.Ready), FirstDrain: secs(m.FirstDrain),
				LastDrain: secs(m.LastDrain), Drained: secs(m.Drained), Terminated: secs(m.Terminated), End: secs(m.End)}})
		if p.Blocked == "" {
			out.PredictedSeconds[p.Strategy] = secs(p.Duration)
		}
	}
	return out
}

// secs is a duration in seconds, to the millisecond: no float noise in
// what a script reads.
func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// Result reads a strategy's prediction back from the plan's JSON.
func (p PredictionJSON) Result() predict.Result {
	s := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)).Round(time.Millisecond) }
	m := p.Milestones
	return predict.Result{Strategy: p.Strategy, Duration: s(p.DurationSeconds), PeakInstances: p.PeakInstances, Blocked: p.Blocked,
		Milestones: predict.Milestones{Launched: s(m.Launched), Ready: s(m.Ready), FirstDrain: s(m.FirstDrain), LastDrain: s(m.LastDrain),
			Drained: s(m.Drained), Terminated: s(m.Terminated), End: s(m.End)}}
}
