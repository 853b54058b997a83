package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/engine"
)

func spec() v1alpha1.NodeGroupUpgradeSpec {
	return v1alpha1.NodeGroupUpgradeSpec{Cluster: "c1", NodeGroup: "ng", Mode: "Noderoll",
		Target: v1alpha1.Target{KubernetesVersion: "1.37"}, UpgradeSettings: v1alpha1.UpgradeSettings{Strategy: v1alpha1.Strategy{Type: "Surge"}}}
}

// A resource left at its defaults runs as the CLI does with its flags left
// at theirs: one meaning for both front ends.
func TestASpecAtItsDefaultsRunsAsTheCLIDoes(t *testing.T) {
	r, err := Translate(spec())
	if err != nil {
		t.Fatal(err)
	}
	want := engine.DefaultOptions()
	o := r.Options
	if o.Strategy != engine.StrategySurge || o.PostCordonWait != want.PostCordonWait || o.Drain.Timeout != want.Drain.Timeout ||
		o.NodeReadyTimeout != want.NodeReadyTimeout || o.ClusterAutoscaler != "auto" || o.Soak != 10*time.Minute || o.MaxSurge.Given || o.MaxUnavailable.Given {
		t.Errorf("defaults differ from the CLI's: %+v", o)
	}
	if !o.StrategySet {
		t.Error("a resource's strategy is not taken as chosen: a resume with another strategy would go unnoticed")
	}
	if r.Group.String() != "c1/ng" || r.Target.KubernetesVersion != "1.37" || r.Managed || r.Action != "" {
		t.Errorf("run %+v", r)
	}
}

func TestASpecSaysWhatTheFlagsSay(t *testing.T) {
	s := spec()
	s.Mode, s.Force, s.AllowDowngrade, s.ClusterAutoscaler = "Managed", true, true, "none"
	s.Strategy = v1alpha1.Strategy{Type: "BlueGreen", MaxSurge: ptr.To(intstr.FromString("50%")), MaxUnavailable: ptr.To(intstr.FromInt32(2)),
		BatchSize: 3, BatchSoak: &metav1.Duration{Duration: time.Minute}, Soak: &metav1.Duration{Duration: 0}}
	s.PostCordonWait = &metav1.Duration{Duration: 0}
	s.EvictionTimeout = &metav1.Duration{Duration: 3 * time.Minute}
	s.IgnorePreflight = []string{"eks-template"}
	r, err := Translate(s)
	if err != nil {
		t.Fatal(err)
	}
	o := r.Options
	if o.Strategy != engine.StrategyBlueGreen || o.MaxSurge != (engine.Amount{Value: 50, Percent: true, Given: true}) || o.MaxUnavailable != (engine.Amount{Value: 2, Given: true}) ||
		o.BatchSize != 3 || o.BatchSoak != time.Minute || o.Soak != 0 || o.PostCordonWait != 0 || o.Drain.Timeout != 3*time.Minute ||
		!o.Drain.Force || !o.AllowDowngrade || o.ClusterAutoscaler != "none" || !o.Managed || !r.Managed || !r.Force || o.IgnorePreflight[0] != "eks-template" {
		t.Errorf("options %+v", o)
	}
}

// What the API server's schema cannot judge is refused naming the field.
func TestASpecTheSchemaLetsThroughIsStillChecked(t *testing.T) {
	for _, c := range []struct {
		change func(*v1alpha1.NodeGroupUpgradeSpec)
		want   string
	}{
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.Strategy.MaxSurge = ptr.To(intstr.FromString("150%")) }, "spec.strategy.maxSurge"},
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.PostCordonWait = &metav1.Duration{Duration: -time.Second} }, "spec.postCordonWait: -1s: a duration cannot be negative"},
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.Target.AMI = "ami-0123456789abcdef0" }, "exactly one of spec.target.kubernetesVersion, spec.target.releaseVersion"},
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.Target.KubernetesVersion = "latest" }, `spec.target.kubernetesVersion: "latest": want a version like 1.37`},
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.Target.AMIFamily = "ubuntu" }, `spec.target.amiFamily: "ubuntu": want al2023`},
		{func(s *v1alpha1.NodeGroupUpgradeSpec) { s.Strategy.Type = "Fast" }, "want Surge, BlueGreen or EKS"},
	} {
		s := spec()
		c.change(&s)
		if _, err := Translate(s); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "--") {
			t.Errorf("%+v: %v, want an error naming %q", s, err, c.want)
		}
	}
}
