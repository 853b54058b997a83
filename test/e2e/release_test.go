package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// `sandbox release-ami` publishes a new EKS AMI release as AWS does: the
// AWS CLI reads the new recommended release from SSM, and the next plan of
// the group goes to it. A release not after the newest is refused, saying
// what to pass.
func TestTheSandboxPublishesANewAMIRelease(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t)
	target := func() string {
		t.Helper()
		r := s.Noderoll("plan", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "-o", "json")
		if r.Code != 0 {
			t.Fatalf("plan: exit %d: %s", r.Code, r.LastLine())
		}
		var p struct {
			Target struct {
				ImageName      string `json:"imageName"`
				ReleaseVersion string `json:"releaseVersion"`
			} `json:"target"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &p); err != nil {
			t.Fatal(err)
		}
		return p.Target.ImageName
	}
	if got := target(); !strings.HasSuffix(got, "-1.37-v20261115") {
		t.Fatalf("before: the plan goes to %s; want the catalog's newest, v20261115", got)
	}
	r := s.Noderoll("sandbox", "release-ami", "--dir", s.Dir, "--release", "20261201")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Published EKS AMI release 1.37.2-20261201 for Kubernetes 1.37") {
		t.Fatalf("release-ami: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var param struct{ Parameter struct{ Value string } }
	s.AWSCLI(&param, "ssm", "get-parameter", "--name", "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/release_version")
	if param.Parameter.Value != "1.37.2-20261201" {
		t.Errorf("the AWS CLI reads the recommended release %q; want 1.37.2-20261201", param.Parameter.Value)
	}
	if got := target(); got != "amazon-eks-node-al2023-x86_64-standard-1.37-v20261201" {
		t.Errorf("after: the plan goes to %s; want the new release", got)
	}
	r = s.Noderoll("sandbox", "release-ami", "--dir", s.Dir, "--release", "20261120")
	if r.Code == 0 || !strings.Contains(r.Stderr, "newest release is 1.37.2-20261201 already") || !strings.Contains(r.Stderr, "pass --release with a later date") {
		t.Errorf("an older release: exit %d\n%s", r.Code, r.Stderr)
	}
	// Without flags: the control plane's minor, dated today.
	today := time.Now().UTC().Format("20060102")
	if r = s.Noderoll("sandbox", "release-ami", "--dir", s.Dir); r.Code != 0 || !strings.Contains(r.Stdout, "1.37.2-"+today) {
		t.Errorf("release-ami without flags: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
