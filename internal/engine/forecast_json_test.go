package engine

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/noderoll/noderoll/internal/predict"
)

// plan -o json writes durations as seconds under names that say so, as the
// upgrade's summary and watch do: no nanosecond counts, no float noise, and
// a prediction read back as it was.
func TestThePlansJSONWritesDurationsInSeconds(t *testing.T) {
	ms := time.Millisecond
	f := &Forecast{PreflightReport: &PreflightReport{Nodegroup: "c1/ng"},
		Observed:    Observed{BootReady: 10 * time.Second, BootReadySamples: 3, PodStop: 1235 * ms, PodStopSamples: 24, PodStopFrom: t0},
		Assumed:     []string{DelayShutdown},
		Delays:      predict.Delays{BootReady: 10 * time.Second, PodStop: 1235 * ms, Shutdown: 30 * time.Second, Contend: 24 * ms, PodsPerSecond: 35.5, BudgetEvictionsPerSecond: 4.5},
		Predictions: []Prediction{{Result: predict.Result{Strategy: "surge", Duration: 101900 * ms, Milestones: predict.Milestones{Ready: 10700 * ms, End: 101900 * ms}}, Chosen: true}},
	}
	b, err := json.Marshal(f.JSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// Every number in the document is a count, a flag's value, seconds
	// named so, or a rate a second named so.
	counts := map[string]bool{"instances": true, "toReplace": true, "maxSurge": true, "maxUnavailable": true, "blocking": true, "peakInstances": true,
		"bootReadySamples": true, "podStartSamples": true, "podStopSamples": true, "shutdownSamples": true}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if _, num := e.(float64); num && !counts[k] && !strings.HasSuffix(k, "Seconds") && !strings.HasSuffix(k, "PerSecond") && !strings.HasPrefix(path, ".predictedSeconds") {
					t.Errorf("%s.%s = %v: a number that is neither a count, seconds nor a rate named so", path, k, e)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	walk("", doc)
	for _, want := range []string{`"durationSeconds":101.9`, `"podStopSeconds":1.235`, `"readySeconds":10.7`, `"contendSeconds":0.024`, `"podsPerSecond":35.5`, `"budgetEvictionsPerSecond":4.5`,
		`"predictedSeconds":{"surge":101.9}`, `"assumed":["shutdown"]`, `"podStopFromUpgradeStarted":"2026-12-05T10:00:00Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("want %s in\n%s", want, b)
		}
	}
	var back ForecastJSON
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if r := back.Predictions[0].Result(); r.Duration != 101900*ms || r.Milestones.Ready != 10700*ms || r.Milestones.End != 101900*ms {
		t.Errorf("read back: %+v", r)
	}
}
