// Package clusterplan plans the upgrade of a whole cluster's node groups:
// which are behind the newest recommended AMI release of their own family,
// since when, in what order they would go (canary groups alone first, then
// waves), and how long each wave and the whole would take, from each
// group's own prediction (engine.Forecast). It changes nothing. The order is
// decided by Waves, apart from anything that reads the cloud.
package clusterplan

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
)

// Request says what to plan.
type Request struct {
	Cluster string
	// KubernetesVersion is the minor every group goes to ("": the control
	// plane's).
	KubernetesVersion string
	// Canary groups go first, alone; the rest follow in waves of at most
	// MaxConcurrent groups (at least 1), Soak apart.
	Canary        []string
	MaxConcurrent int
	Soak          time.Duration
	// Family switches every group's AMI family ("": each keeps its own).
	Family string
}

// Group is one node group as the plan sees it.
type Group struct {
	Name    string
	Managed bool
	Nodes   int
	// Current and Target are the AMIs the group runs and would go to.
	Current, Target cloud.Image
	UpToDate        bool
	// BehindSince is when the target release was published: the group
	// has been behind since at least then (zero when up to date or not
	// known).
	BehindSince time.Time
	// Predicted is the group's upgrade with its chosen strategy (0 when up
	// to date, or when Blocked).
	Predicted time.Duration
	Strategy  string
	// Blocked says what would stop the group's upgrade: blocking preflight
	// findings or a budget that allows no disruption.
	Blocked string
	// Wave is the group's place in the order: 0 the canary, then 1, 2...;
	// -1 for a group with nothing to do.
	Wave int
}

// Wave is groups upgraded together.
type Wave struct {
	Canary bool
	Groups []string
	// Predicted is the slowest of its groups'.
	Predicted time.Duration
}

// Plan is the cluster's plan.
type Plan struct {
	Cluster           string
	KubernetesVersion string // the minor the groups go to
	ControlPlane      string // the control plane's minor
	Groups            []Group
	Waves             []Wave
	Soak              time.Duration
	// Predicted is every wave and the soak after each, end to end; when
	// Blocked names groups, only of the others.
	Predicted time.Duration
	// Blocked are the groups behind whose upgrade would not end.
	Blocked []string
}

// Waves orders the groups that are behind: the canary groups alone first
// (when any of them is behind), then the rest in waves of at most
// maxConcurrent, in the order given. A canary that names no group of the
// cluster is refused.
func Waves(all, behind, canary []string, maxConcurrent int) ([]Wave, error) {
	if maxConcurrent < 1 {
		return nil, fmt.Errorf("at most %d groups at once: want at least 1", maxConcurrent)
	}
	for _, c := range canary {
		if !slices.Contains(all, c) {
			return nil, fmt.Errorf("canary %q is not a node group of the cluster (its groups: %s)", c, strings.Join(all, ", "))
		}
	}
	var waves []Wave
	var first, rest []string
	for _, g := range behind {
		if slices.Contains(canary, g) {
			first = append(first, g)
		} else {
			rest = append(rest, g)
		}
	}
	if len(first) > 0 {
		waves = append(waves, Wave{Canary: true, Groups: first})
	}
	for len(rest) > 0 {
		n := min(maxConcurrent, len(rest))
		waves = append(waves, Wave{Groups: rest[:n:n]})
		rest = rest[n:]
	}
	return waves, nil
}

// Forecaster predicts one group's upgrade to a target, as `plan nodegroup`
// does.
type Forecaster func(ctx context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) (*engine.Forecast, error)

// Make plans the cluster: every group the cloud lists for it, each
// forecast to the newest recommended release of its family at the minor.
func Make(ctx context.Context, p cloud.Provider, forecast Forecaster, req Request) (*Plan, error) {
	cl, err := p.Cluster(ctx, req.Cluster)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Cluster: req.Cluster, ControlPlane: cl.Version, KubernetesVersion: req.KubernetesVersion, Soak: req.Soak}
	if plan.KubernetesVersion == "" {
		plan.KubernetesVersion = cl.Version
	}
	refs, err := p.ListNodeGroups(ctx, req.Cluster)
	if err != nil {
		return nil, fmt.Errorf("listing the node groups of %s: %w", req.Cluster, err)
	}
	sort.Slice(refs, func(a, b int) bool { return refs[a].Name < refs[b].Name })
	var all, behind []string
	for _, ref := range refs {
		all = append(all, ref.Name)
	}
	// A canary that names no group is refused before any group is read.
	if _, err := Waves(all, nil, req.Canary, req.MaxConcurrent); err != nil {
		return nil, err
	}
	for _, ref := range refs {
		g, err := planGroup(ctx, p, forecast, ref, engine.TargetSpec{KubernetesVersion: plan.KubernetesVersion, Family: req.Family})
		if err != nil {
			return nil, err
		}
		if !g.UpToDate {
			behind = append(behind, g.Name)
		}
		plan.Groups = append(plan.Groups, g)
	}
	if plan.Waves, err = Waves(all, behind, req.Canary, req.MaxConcurrent); err != nil {
		return nil, err
	}
	wave := map[string]int{}
	for k := range plan.Waves {
		w := &plan.Waves[k]
		for _, name := range w.Groups {
			wave[name] = k
		}
	}
	for k := range plan.Groups {
		g := &plan.Groups[k]
		g.Wave = -1
		if g.Blocked != "" && !g.UpToDate {
			plan.Blocked = append(plan.Blocked, g.Name)
		}
		if n, ok := wave[g.Name]; ok {
			g.Wave = n
			w := &plan.Waves[n]
			w.Predicted = max(w.Predicted, g.Predicted)
		}
	}
	for _, w := range plan.Waves {
		plan.Predicted += w.Predicted + req.Soak
	}
	return plan, nil
}

func planGroup(ctx context.Context, p cloud.Provider, forecast Forecaster, ref cloud.NodeGroupRef, target engine.TargetSpec) (Group, error) {
	ng, err := p.NodeGroup(ctx, ref)
	if err != nil {
		return Group{}, err
	}
	g := Group{Name: ref.Name, Managed: ng.Managed, Nodes: len(ng.Instances), Current: cloud.Image{ID: ng.ImageID}}
	if img, err := p.ResolveImage(ctx, cloud.ImageQuery{ImageID: ng.ImageID}); err == nil {
		g.Current = img
	}
	fc, err := forecast(ctx, ref, target)
	if err != nil {
		return Group{}, fmt.Errorf("planning %s: %w", ref, err)
	}
	g.UpToDate, g.Strategy = fc.UpToDate, fc.Strategy
	g.Target = cloud.Image{ID: fc.Target.ImageID, Name: fc.Target.ImageName}
	if img, err := p.ResolveImage(ctx, cloud.ImageQuery{ImageID: fc.Target.ImageID}); err == nil {
		g.Target = img
	}
	if g.UpToDate {
		return g, nil
	}
	g.BehindSince = g.Target.Created
	var blocked []string
	if fc.Blocking > 0 {
		blocked = append(blocked, fmt.Sprintf("%d blocking preflight finding(s): noderoll plan nodegroup --name=%s says which", fc.Blocking, ref.Name))
	}
	if len(fc.Predictions) > 0 {
		if pr := fc.Predictions[0]; pr.Blocked != "" {
			blocked = append(blocked, pr.Blocked)
		} else {
			g.Predicted = pr.Duration
		}
	}
	g.Blocked = strings.Join(blocked, "; ")
	return g, nil
}
