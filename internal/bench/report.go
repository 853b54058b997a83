package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Markdown writes the rows as the table of docs/performance.md.
func Markdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| nodes | strategy | makespan | predicted (error) | lower bound | ratio to bound | control plane's ceiling | ratio to the larger | speedup over eks | peak instances | PDB breaches | API requests per replaced node | AWS calls per replaced node | peak RSS | own memory (RssAnon) |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "| %d | %s | failed: %s | | | | | | | | | | | | |\n", r.Nodes, r.Strategy, strings.ReplaceAll(r.Error, "|", "/"))
			continue
		}
		speedup := "-"
		if r.Strategy != "eks" && r.Speedup > 0 {
			speedup = fmt.Sprintf("%.1fx", r.Speedup)
		}
		ceiling, larger := "-", "-"
		if c := r.Ceiling; c != nil && c.Meaningful() {
			ceiling, larger = short(c.Term), fmt.Sprintf("%.2f", float64(r.Makespan)/float64(max(r.Bound.Makespan, c.Term)))
		}
		predicted := "-"
		if r.Predicted > 0 {
			predicted = fmt.Sprintf("%s (%+.0f%%)", short(r.Predicted), 100*r.PredictionError)
		}
		makespan := short(r.Makespan)
		if len(r.Makespans) > 1 {
			makespan += " (" + spread(r.Makespans) + ")"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.2f | %s | %s | %s | %d | %d | %.0f | %.1f | %.0f MiB | %.0f MiB |\n", r.Nodes, r.Strategy, makespan, predicted, short(r.Bound.Makespan),
			r.Ratio, ceiling, larger, speedup, r.PeakInstances, len(r.Breaches), r.PerNode, r.AWSPerNode, r.PeakRSSMiB, r.PeakAnonMiB)
	}
}

// Details writes, per row, the measured delays and the bound's terms.
func Details(w io.Writer, rows []Row) {
	for _, r := range rows {
		if r.Error != "" {
			continue
		}
		d, b := r.Delays, r.Bound
		fmt.Fprintf(w, "- %d nodes, %s: B+R %s, S %s (median %s), T %s, W %s, p %d; bound terms: first capacity %s, waves %s, budgets %s",
			r.Nodes, r.Strategy, short(d.BootReady), short(d.PodStart), short(d.PodStartMedian), short(d.PodStop), short(d.Wait), r.InFlight, short(b.First), short(b.Waves), short(b.Budgets))
		if b.Bottleneck != "" {
			for _, x := range r.Workloads {
				if x.Name == b.Bottleneck {
					fmt.Fprintf(w, " (%s: %d pods, %d allowed, %d rounds)", x.Name, x.OnOld, x.Allowed, x.Rounds)
				}
			}
		}
		if e := r.Evictions; e.Count > 0 {
			fmt.Fprintf(w, "; %d evictions, %.2fs each in the API server, %.1f rereads of a budget each", e.Count, e.MeanSeconds, e.BudgetRereads)
		}
		if c := r.Ceiling; c != nil && c.Meaningful() {
			fmt.Fprintf(w, "; control plane's ceiling %.1f pods/s (%d pods of %s back Ready in %s), so %d pods take at least %s",
				c.PerSec, c.Pods, c.Workload, short(c.Took), r.Moved, short(c.Term))
		} else if c != nil {
			fmt.Fprintf(w, "; control plane's ceiling not measured: %d pods of %s back in %s, too few for a rate", c.Pods, c.Workload, short(c.Took))
		}
		if c := r.Ceiling; c != nil && c.BudgetMeaningful() {
			fmt.Fprintf(w, "; one budget's evictions %.1f a second under the probe's load (%d under a budget of their own, %d at a time, answered in %s)",
				c.BudgetPerSec, c.BudgetPods, c.BudgetConcurrency, short(c.BudgetTook))
			if c.BudgetUpgradePerSec > 0 { // older JSON kept the probe's rate only
				fmt.Fprintf(w, ", %.1f expected in an upgrade", c.BudgetUpgradePerSec)
			}
			fmt.Fprintf(w, ": the largest budget's pods take %s at that rate", short(c.BudgetTerm))
			if c.BudgetTerm > 0 { // older JSON kept no ratio to it; the makespan says it
				fmt.Fprintf(w, ", the run %.2fx that", float64(r.Makespan)/float64(c.BudgetTerm))
			}
		}
		if d.Replace > 0 {
			fmt.Fprintf(w, "; a moved pod back Ready %s after its replacement was created (median)", short(d.Replace))
		}
		switch {
		case r.Predicted > 0 && r.PlanFromHistory:
			fmt.Fprintf(w, "; predicted %s (%+.0f%%) from the group's history, told nothing", short(r.Predicted), 100*r.PredictionError)
		case r.Predicted > 0:
			fmt.Fprintf(w, "; predicted %s (%+.0f%%) told the sandbox's pod start", short(r.Predicted), 100*r.PredictionError)
			if r.PredictedOwnStart > 0 { // the controller's row makes no such prediction
				fmt.Fprintf(w, ", %s with the start its pods show", short(r.PredictedOwnStart))
			}
		}
		if len(r.Makespans) > 1 {
			fmt.Fprintf(w, "; %d runs: makespans %s, predictions %s (medians compared)", len(r.Makespans), shorts(r.Makespans), shorts(r.Predictions))
		}
		fmt.Fprintf(w, "; %d replaced, %d API requests\n", r.Replaced, r.APIRequests)
		for _, g := range r.Groups {
			fmt.Fprintf(w, "  - group %s (%d nodes): %s, %d replaced in %s; its bound alone %s (first capacity %s, waves %s, budgets %s), ratio %.2f\n",
				g.Name, g.Nodes, g.Phase, g.Replaced, short(g.Makespan), short(g.Bound.Makespan), short(g.Bound.First), short(g.Bound.Waves), short(g.Bound.Budgets), g.Ratio)
		}
	}
}

// spread is the least and the most of several runs.
func spread(ds []time.Duration) string {
	return short(slices.Min(ds)) + "-" + short(slices.Max(ds))
}

func shorts(ds []time.Duration) string {
	out := make([]string, len(ds))
	for k, d := range ds {
		out[k] = short(d)
	}
	return strings.Join(out, ", ")
}

func short(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
