package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// Amount is a count of nodes or a percentage of the group, as Cluster API,
// GKE and AKS take maxSurge and maxUnavailable.
type Amount struct {
	Value   int
	Percent bool
	Given   bool // given by the user; the zero Amount is "not given"
}

// ParseAmount reads "3" or "25%".
func ParseAmount(s string) (Amount, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(v)
	if err != nil {
		return Amount{}, fmt.Errorf("%q is neither a count of nodes nor a percentage (e.g. 3 or 25%%)", s)
	}
	if n < 0 {
		return Amount{}, fmt.Errorf("%q is negative", s)
	}
	if pct && n > 100 {
		return Amount{}, fmt.Errorf("%q is over 100%%", s)
	}
	return Amount{Value: n, Percent: pct, Given: true}, nil
}

func (a Amount) String() string {
	if a.Percent {
		return fmt.Sprintf("%d%%", a.Value)
	}
	return strconv.Itoa(a.Value)
}

// Set implements pflag.Value.
func (a *Amount) Set(s string) error {
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Type implements pflag.Value.
func (a *Amount) Type() string { return "count|percent" }

// of resolves the amount against a group of n nodes, a percentage rounded
// up (surge) or down (unavailable), as Cluster API rounds them.
func (a Amount) of(n int, roundUp bool) int {
	if !a.Percent {
		return a.Value
	}
	if roundUp {
		return (a.Value*n + 99) / 100
	}
	return a.Value * n / 100
}

// Strategies noderoll knows.
const (
	StrategySurge     = "surge"
	StrategyEKS       = "eks"
	StrategyBlueGreen = "bluegreen"
)

// DefaultMaxSurge is the surge strategy's default: a quarter of the group,
// at least one instance per AZ. A quarter keeps the extra cost and the EC2
// capacity asked for at once moderate (AKS recommends 33%, GKE defaults to
// one node), while four waves cover the group; one per AZ lets every AZ's
// pods move at once, as EKS's own surge does.
var defaultMaxSurge = Amount{Value: 25, Percent: true}

// budgets resolves the surge and unavailable budgets of a strategy for a
// group, or says what is wrong with them before anything changes.
func budgets(strategy string, o Options, desired, azs, groupMaxUnavailable int) (surge, unavailable int, err error) {
	switch strategy {
	case StrategyEKS:
		// EKS surges one per AZ, or its maxUnavailable if larger, and
		// replaces one node at a time.
		mu := o.MaxUnavailable.of(desired, false)
		if !o.MaxUnavailable.Given {
			mu = groupMaxUnavailable
		}
		return max(azs, mu, 1), 0, nil
	case StrategyBlueGreen:
		// The whole replacement set; nothing of the original goes missing.
		if o.BatchSize < 0 || o.BatchSoak < 0 || o.Soak < 0 {
			return 0, 0, fmt.Errorf("%s, %s, %s: none may be negative", o.Terms.With("batch-size", fmt.Sprint(o.BatchSize)), o.Terms.With("batch-soak", o.BatchSoak.String()), o.Terms.With("soak", o.Soak.String()))
		}
		return max(desired, 1), 0, nil
	case StrategySurge:
	default:
		return 0, 0, fmt.Errorf("%s %q: want %s (the default: many nodes at once, PDB-aware), %s (the whole new set first, old nodes kept for a soak) or %s (the seed's: one node at a time)",
			o.Terms.Of("strategy"), strategy, StrategySurge, StrategyBlueGreen, StrategyEKS)
	}
	ms := o.MaxSurge
	if !ms.Given {
		ms = defaultMaxSurge
	}
	surge = ms.of(desired, true)
	if !o.MaxSurge.Given {
		surge = min(max(surge, azs), max(desired, 1))
	}
	unavailable = o.MaxUnavailable.of(desired, false)
	switch {
	case surge == 0 && unavailable == 0:
		return 0, 0, fmt.Errorf("%s and %s leave no node to replace with (both 0 on a group of %d): raise either", o.Terms.With("max-surge", ms.String()), o.Terms.With("max-unavailable", o.MaxUnavailable.String()), desired)
	case surge > desired && desired > 0:
		return 0, 0, fmt.Errorf("%s is %d instances, more than the %d the group has: surge replaces at most every node at once; use at most %d (or 100%%)", o.Terms.With("max-surge", ms.String()), surge, desired, desired)
	case unavailable > desired:
		return 0, 0, fmt.Errorf("%s is %d nodes, more than the %d the group has; use at most %d (or 100%%)", o.Terms.With("max-unavailable", o.MaxUnavailable.String()), unavailable, desired, desired)
	}
	return surge, unavailable, nil
}
