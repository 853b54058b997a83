package awssim

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// A published release moves every family's recommended (latest)
// parameter to a new image of it, and EC2 describes the new images; the
// images before it stay, and a release not after the newest is refused
// with nothing changed.
func TestAPublishedReleaseMovesEveryFamilysRecommendedAMI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	param := func(name string) string {
		t.Helper()
		out, err := e.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return aws.ToString(out.Parameter.Value)
	}
	al := "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/"
	paths := []string{al + "x86_64/standard/recommended/image_id", al + "arm64/nvidia/recommended/image_id", al + "x86_64/neuron/recommended/image_id",
		"/aws/service/bottlerocket/aws-k8s-1.37/x86_64/latest/image_id", "/aws/service/bottlerocket/aws-k8s-1.37-nvidia/arm64/latest/image_id",
		"/aws/service/ami-windows-latest/Windows_Server-2022-English-Core-EKS_Optimized-1.37/image_id"}
	before := map[string]string{}
	for _, p := range paths {
		before[p] = param(p)
	}
	other := param("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")

	r, err := e.acct.PublishRelease("1.37", "20261201")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "1.37.2-20261201" || r.Bottlerocket != "1.51.0" || r.Windows != "2026.12.01" {
		t.Errorf("release %+v; want 1.37.2-20261201, Bottlerocket 1.51.0, Windows 2026.12.01", r)
	}
	for _, p := range paths {
		id := param(p)
		img, ok := e.acct.Image(id)
		if id == before[p] || !ok || img.KubeMinor != "1.37" || !strings.HasPrefix(img.CreationDate, "2026-12-01") {
			t.Errorf("%s: %s (%+v), was %s; want a new image of 1.37 created 2026-12-01", p, id, img, before[p])
		}
	}
	if got := param(al + "x86_64/standard/recommended/release_version"); got != "1.37.2-20261201" {
		t.Errorf("recommended release %s", got)
	}
	if got := param(al + "x86_64/standard/amazon-eks-node-al2023-x86_64-standard-1.37-v20261201/image_id"); got != param(paths[0]) {
		t.Errorf("the release's own parameter names %s, the recommended one %s", got, param(paths[0]))
	}
	if got := param("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id"); got != other {
		t.Errorf("another minor's AMI moved: %s -> %s", other, got)
	}
	// EC2 knows the new image and still the old one.
	out, err := e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{param(paths[0]), before[paths[0]]}})
	if err != nil || len(out.Images) != 2 || out.Images[0].State != ec2types.ImageStateAvailable {
		t.Fatalf("DescribeImages of the new and the old AMI: %v, %+v", err, out)
	}

	for date, want := range map[string]string{
		"20261201":   "newest release is 1.37.2-20261201 already",
		"20261130":   "newest release is 1.37.2-20261201 already",
		"2026-12-02": "want YYYYMMDD",
	} {
		if _, err := e.acct.PublishRelease("1.37", date); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("release %s: %v; want refused saying %q", date, err, want)
		}
	}
	if _, err := e.acct.PublishRelease("1.99", "20261202"); err == nil || !strings.Contains(err.Error(), "the sandbox publishes AMIs for 1.33") {
		t.Errorf("an unknown minor: %v", err)
	}
	if got := param(paths[0]); got == before[paths[0]] || !strings.Contains(param(al+"x86_64/standard/recommended/release_version"), "20261201") {
		t.Errorf("a refused release changed the recommended AMI: %s", got)
	}
	if r, err := e.acct.PublishRelease("1.37", "20261215"); err != nil || r.Bottlerocket != "1.52.0" {
		t.Errorf("the next release: %+v, %v; want Bottlerocket 1.52.0", r, err)
	}
}
