// Package controller runs NodeGroupUpgrades in the cluster: a
// controller-runtime reconciler that starts each upgrade in a worker of its
// own, driving the same engine as the CLI, and writes the upgrade's status
// from what the engine reports and records.
package controller

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/terms"
)

// Run is what a NodeGroupUpgrade's spec asks of the engine.
type Run struct {
	Group   cloud.NodeGroupRef
	Target  engine.TargetSpec
	Options engine.Options
	Managed bool   // EKS's own update, followed
	Force   bool   // for a managed update: EKS's force
	Action  string // "", Abort or Rollback
}

// Translate reads a spec as the CLI reads its flags: the same names, the
// same defaults. The API server's validation refused most bad specs
// already; what it cannot judge (a budget's number) is refused here.
func Translate(spec v1alpha1.NodeGroupUpgradeSpec) (Run, error) {
	o := engine.DefaultOptions()
	o.Soak = 10 * time.Minute // the CLI's --soak default
	r := Run{
		Group:   cloud.NodeGroupRef{Cluster: spec.Cluster, Name: spec.NodeGroup},
		Managed: spec.Mode == "Managed",
		Force:   spec.Force,
		Action:  spec.Action,
		Target: engine.TargetSpec{
			KubernetesVersion:     spec.Target.KubernetesVersion,
			ReleaseVersion:        spec.Target.ReleaseVersion,
			LaunchTemplateVersion: spec.Target.LaunchTemplateVersion,
			AMI:                   spec.Target.AMI,
			Family:                spec.Target.AMIFamily,
		},
	}
	if err := r.Target.Validate(resourceTerms()); err != nil {
		return Run{}, err
	}
	switch spec.Strategy.Type {
	case "", "Surge":
		o.Strategy = engine.StrategySurge
	case "BlueGreen":
		o.Strategy = engine.StrategyBlueGreen
	case "EKS":
		o.Strategy = engine.StrategyEKS
	default:
		return Run{}, fmt.Errorf("spec.strategy.type %q: want Surge, BlueGreen or EKS", spec.Strategy.Type)
	}
	// A resource always names its strategy (the API server defaults it), so
	// a resume with another one is refused rather than silently taken.
	o.StrategySet = true
	var err error
	if o.MaxSurge, err = amount("spec.strategy.maxSurge", spec.Strategy.MaxSurge); err != nil {
		return Run{}, err
	}
	if o.MaxUnavailable, err = amount("spec.strategy.maxUnavailable", spec.Strategy.MaxUnavailable); err != nil {
		return Run{}, err
	}
	o.BatchSize = int(spec.Strategy.BatchSize)
	o.BatchSoak = duration(spec.Strategy.BatchSoak, o.BatchSoak)
	o.Soak = duration(spec.Strategy.Soak, o.Soak)
	o.PostCordonWait = duration(spec.PostCordonWait, o.PostCordonWait)
	o.Drain.Timeout = duration(spec.EvictionTimeout, o.Drain.Timeout)
	o.NodeReadyTimeout = duration(spec.NodeReadyTimeout, o.NodeReadyTimeout)
	o.Drain.Force = spec.Force
	if spec.ClusterAutoscaler != "" {
		o.ClusterAutoscaler = spec.ClusterAutoscaler
	}
	o.AllowDowngrade = spec.AllowDowngrade
	o.AcceptResize = spec.AcceptResize
	o.Terms = resourceTerms()
	o.IgnorePreflight = spec.IgnorePreflight
	o.Managed = r.Managed
	if err := o.Validate(); err != nil {
		return Run{}, fmt.Errorf("spec: %w", err)
	}
	// As the API server refuses soak on a type other than BlueGreen.
	if err := o.UnusedBudgets(); err != nil {
		return Run{}, err
	}
	r.Options = o
	return r, nil
}

// resourceTerms names the options in the engine's messages as the
// resource spells them.
func resourceTerms() terms.Terms {
	return terms.Terms{
		"strategy": "spec.strategy.type", "max-surge": "spec.strategy.maxSurge", "max-unavailable": "spec.strategy.maxUnavailable",
		"batch-size": "spec.strategy.batchSize", "batch-soak": "spec.strategy.batchSoak", "soak": "spec.strategy.soak",
		"strategy=surge": "spec.strategy.type: Surge", "strategy=bluegreen": "spec.strategy.type: BlueGreen", "strategy=eks": "spec.strategy.type: EKS",
		"abort": "spec.action: Abort", "rollback": "spec.action: Rollback",
		"force": "spec.force", "eviction-timeout": "spec.evictionTimeout", "allow-downgrade": "spec.allowDowngrade", "accept-resize": "spec.acceptResize",
		"mode": "spec.mode", "mode=managed": "spec.mode: Managed",
		"kubernetes-version": "spec.target.kubernetesVersion", "release-version": "spec.target.releaseVersion",
		"launch-template-version": "spec.target.launchTemplateVersion", "ami": "spec.target.ami", "ami-family": "spec.target.amiFamily",
		"cluster-autoscaler": "spec.clusterAutoscaler", "ignore-preflight": "spec.ignorePreflight",
		"post-cordon-wait": "spec.postCordonWait", "node-ready-timeout": "spec.nodeReadyTimeout",
	}
}

func amount(field string, v *intstr.IntOrString) (engine.Amount, error) {
	if v == nil {
		return engine.Amount{}, nil
	}
	a, err := engine.ParseAmount(v.String())
	if err != nil {
		return engine.Amount{}, fmt.Errorf("%s: %w", field, err)
	}
	return a, nil
}

func duration(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
