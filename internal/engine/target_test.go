package engine

import (
	"strings"
	"testing"

	"github.com/noderoll/noderoll/internal/terms"
)

func TestCheckSkew(t *testing.T) {
	for _, c := range []struct {
		kubelet, cp, err string
	}{
		{"1.37", "1.37", ""}, {"1.34", "1.37", ""}, {"1.36", "1.37", ""},
		{"1.38", "1.37", "newer than the control plane"},
		{"1.33", "1.37", "more than 3 minor versions older"},
		{"2.0", "1.37", "cannot compare"},
	} {
		err := checkSkew(c.kubelet, c.cp)
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("checkSkew(%s, %s) = %v, want %q", c.kubelet, c.cp, err, c.err)
		}
	}
}

func TestTargetSpecValidate(t *testing.T) {
	ok := []TargetSpec{{KubernetesVersion: "1.37"}, {KubernetesVersion: "v1.37.2"}, {ReleaseVersion: "1.37.2-20261115"}, {LaunchTemplateVersion: 3}, {AMI: "ami-0abc"}, {KubernetesVersion: "1.37", Family: "bottlerocket"}}
	for _, s := range ok {
		if err := s.Validate(nil); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := map[string]TargetSpec{
		"exactly one of":                  {KubernetesVersion: "1.37", AMI: "ami-0abc"},
		"want a version":                  {KubernetesVersion: "latest"},
		"al2023, bottlerocket or windows": {KubernetesVersion: "1.37", Family: "ubuntu"},
		"goes with":                       {AMI: "ami-0abc", Family: "bottlerocket"},
		"want a version num":              {LaunchTemplateVersion: -1},
	}
	bad["exactly one of (none)"] = TargetSpec{}
	for want, s := range bad {
		err := s.Validate(nil)
		if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(want, " (none)")) {
			t.Errorf("%+v: got %v, want %q", s, err, want)
		}
	}
	// The CLI's users read its flags; a front end with other names, those.
	if err := (TargetSpec{KubernetesVersion: "latest"}).Validate(nil); err == nil || !strings.Contains(err.Error(), `--kubernetes-version="latest"`) {
		t.Errorf("the CLI's words: %v", err)
	}
	named := terms.Terms{"ami-family": "spec.target.amiFamily", "kubernetes-version": "spec.target.kubernetesVersion"}
	if err := (TargetSpec{AMI: "ami-0abc", Family: "windows"}).Validate(named); err == nil || err.Error() != "spec.target.amiFamily: windows goes with spec.target.kubernetesVersion" {
		t.Errorf("a resource's words: %v", err)
	}
}
