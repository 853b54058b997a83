package aws

// Images: the AMI a target names, looked up where eksctl looks.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

var (
	minorInName      = regexp.MustCompile(`(?:-|aws-k8s-|EKS_Optimized-)(1\.\d+)(?:-|$)`)
	releaseFormat    = regexp.MustCompile(`^(1\.\d+)\.\d+-(\d{8})$`)
	al2023Name       = regexp.MustCompile(`^amazon-eks-node-al2023-(x86_64|arm64)-(standard|nvidia|neuron)-`)
	bottlerocketName = regexp.MustCompile(`^bottlerocket-aws-k8s-[0-9.]+(-nvidia)?-(x86_64|aarch64)-`)
	windowsName      = regexp.MustCompile(`^Windows_Server-2022-English-(Core|Full)-EKS_Optimized-`)
)

// kind is what an EKS node AMI is: its family, architecture and variant.
type kind struct{ family, arch, variant string }

// kindOf reads an AMI's kind from its name, as AWS names the EKS-optimized
// AL2023, Bottlerocket and Windows AMIs; the architecture DescribeImages
// gives stands when the name says nothing (a custom AMI).
func kindOf(name, arch string) kind {
	if m := al2023Name.FindStringSubmatch(name); m != nil {
		return kind{"al2023", m[1], m[2]}
	}
	if m := bottlerocketName.FindStringSubmatch(name); m != nil {
		k := kind{"bottlerocket", "x86_64", "standard"}
		if m[2] == "aarch64" {
			k.arch = "arm64"
		}
		if m[1] != "" {
			k.variant = "nvidia"
		}
		return k
	}
	if m := windowsName.FindStringSubmatch(name); m != nil {
		return kind{"windows", "x86_64", strings.ToLower(m[1])}
	}
	return kind{arch: arch}
}

// ResolveImage implements cloud.Provider, looking AMIs up where eksctl does:
// the SSM public parameters of the EKS-optimized AL2023 (by architecture and
// variant), Bottlerocket and Windows AMIs. The new AMI is of the kind the
// group runs now (q.Like) unless q.Family switches family, and its
// architecture must run on the group's instance types.
func (p *Provider) ResolveImage(ctx context.Context, q cloud.ImageQuery) (cloud.Image, error) {
	want := kind{"al2023", "", "standard"}
	if q.Like != "" {
		if cur, err := p.describeImage(ctx, q.Like); err == nil {
			if k := kindOf(aws.ToString(cur.Name), string(cur.Architecture)); k.family != "" {
				want = k
			} else {
				want.arch = k.arch
			}
		}
	}
	if want.arch == "" {
		want.arch = "x86_64"
		if len(q.InstanceTypes) > 0 {
			if archs, err := p.instanceArchs(ctx, q.InstanceTypes[:1]); err == nil && !slices.Contains(archs[q.InstanceTypes[0]], "x86_64") && slices.Contains(archs[q.InstanceTypes[0]], "arm64") {
				want.arch = "arm64"
			}
		}
	}
	if q.Family != "" && q.Family != want.family {
		switched, err := switchFamily(want, q.Family, q.Terms)
		if err != nil {
			return cloud.Image{}, err
		}
		want = switched
	}
	id := q.ImageID
	var err error
	switch {
	case id != "":
	case q.KubernetesVersion != "":
		id, err = p.param(ctx, recommendedPath(want, q.KubernetesVersion), fmt.Sprintf("%s AMI for Kubernetes %s", describeKind(want), q.KubernetesVersion))
	case q.ReleaseVersion != "":
		m := releaseFormat.FindStringSubmatch(q.ReleaseVersion)
		if m == nil {
			return cloud.Image{}, fmt.Errorf("release version %q: want the EKS AMI form <kubernetes version>-<date>, e.g. 1.37.2-20261115", q.ReleaseVersion)
		}
		if want.family != "al2023" {
			return cloud.Image{}, fmt.Errorf("%s names EKS-optimized AL2023 releases, but the group runs %s: use %s or %s",
				q.Terms.Of("release-version"), describeKind(want), q.Terms.Of("kubernetes-version"), q.Terms.Of("ami"))
		}
		name := fmt.Sprintf("amazon-eks-node-al2023-%s-%s-%s-v%s", want.arch, want.variant, m[1], m[2])
		id, err = p.param(ctx, al2023Path(m[1], want, name)+"/image_id", fmt.Sprintf("%s AMI release %s", describeKind(want), q.ReleaseVersion))
	default:
		return cloud.Image{}, fmt.Errorf("no target: give a Kubernetes version, a release version or an AMI ID")
	}
	if err != nil {
		return cloud.Image{}, err
	}
	out, err := p.describeImage(ctx, id)
	if err != nil {
		return cloud.Image{}, err
	}
	k := kindOf(aws.ToString(out.Name), string(out.Architecture))
	img := cloud.Image{ID: id, Name: aws.ToString(out.Name), ReleaseVersion: q.ReleaseVersion, Family: k.family, Architecture: string(out.Architecture), Variant: k.variant}
	if t, err := time.Parse(time.RFC3339, aws.ToString(out.CreationDate)); err == nil {
		img.Created = t
	}
	if m := minorInName.FindStringSubmatch(img.Name); m != nil {
		img.KubeMinor = m[1]
	}
	if img.ReleaseVersion == "" && k.family == "al2023" && img.KubeMinor != "" {
		// An EKS AL2023 AMI's release ("1.37.2-20261201", what a policy's
		// skipReleases names) is kept beside it in SSM; best effort.
		if rv, err := p.param(ctx, al2023Path(img.KubeMinor, k, img.Name)+"/release_version", "release"); err == nil {
			img.ReleaseVersion = rv
		}
	}
	if err := p.checkArchitecture(ctx, img, q.InstanceTypes); err != nil {
		return cloud.Image{}, err
	}
	return img, nil
}

// switchFamily keeps the architecture and, where the new family has it,
// the variant.
func switchFamily(k kind, family string, tm terms.Terms) (kind, error) {
	from := describeKind(k)
	switch family {
	case "al2023", "bottlerocket":
		if family == "bottlerocket" && k.variant == "neuron" {
			return k, fmt.Errorf("%s: the group runs %s, and Bottlerocket publishes no Neuron variant; pick an AMI with %s", tm.With("ami-family", family), from, tm.Of("ami"))
		}
		if k.family == "windows" || k.variant == "" {
			k.variant = "standard"
		}
	case "windows":
		if k.arch != "x86_64" {
			return k, fmt.Errorf("%s: the group runs %s, and the EKS-optimized Windows AMIs are x86_64 only", tm.With("ami-family", family), from)
		}
		k.variant = "core"
	}
	k.family = family
	return k, nil
}

func describeKind(k kind) string {
	switch k.family {
	case "al2023":
		return fmt.Sprintf("EKS-optimized AL2023 (%s, %s)", k.arch, k.variant)
	case "bottlerocket":
		return fmt.Sprintf("Bottlerocket (%s, %s)", k.arch, k.variant)
	case "windows":
		return "EKS-optimized Windows Server 2022 " + titled(k.variant)
	}
	return k.arch + " AMI"
}

func titled(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// recommendedPath is the SSM parameter of the latest AMI of a kind.
func recommendedPath(k kind, minor string) string {
	switch k.family {
	case "bottlerocket":
		flavour := minor
		if k.variant == "nvidia" {
			flavour += "-nvidia"
		}
		return "/aws/service/bottlerocket/aws-k8s-" + flavour + "/" + k.arch + "/latest/image_id"
	case "windows":
		return "/aws/service/ami-windows-latest/Windows_Server-2022-English-" + titled(k.variant) + "-EKS_Optimized-" + minor + "/image_id"
	}
	return al2023Path(minor, k, "recommended") + "/image_id"
}

func al2023Path(minor string, k kind, leaf string) string {
	return "/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/" + k.arch + "/" + k.variant + "/" + leaf
}

func (p *Provider) describeImage(ctx context.Context, id string) (ec2types.Image, error) {
	out, err := p.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if isNotFound(err) {
		return ec2types.Image{}, cloud.NotFoundf(err, "AMI %q", id)
	}
	if err != nil {
		return ec2types.Image{}, fmt.Errorf("describing AMI %s: %w", id, err)
	}
	if len(out.Images) == 0 {
		return ec2types.Image{}, cloud.NotFoundf(nil, "AMI %q", id)
	}
	return out.Images[0], nil
}

// instanceArchs returns the architectures each instance type runs.
func (p *Provider) instanceArchs(ctx context.Context, types []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(types) == 0 {
		return out, nil
	}
	in := &ec2.DescribeInstanceTypesInput{}
	for _, t := range types {
		in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
	}
	pager := ec2.NewDescribeInstanceTypesPaginator(p.ec2, in)
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing instance types %v: %w", types, err)
		}
		for _, it := range page.InstanceTypes {
			var archs []string
			if it.ProcessorInfo != nil {
				for _, a := range it.ProcessorInfo.SupportedArchitectures {
					archs = append(archs, string(a))
				}
			}
			out[string(it.InstanceType)] = archs
		}
	}
	return out, nil
}

// checkArchitecture refuses an AMI the group's instance types cannot run.
func (p *Provider) checkArchitecture(ctx context.Context, img cloud.Image, types []string) error {
	archs, err := p.instanceArchs(ctx, types)
	if err != nil {
		return err
	}
	var misfits []string
	fits := ""
	for _, t := range types {
		if !slices.Contains(archs[t], img.Architecture) {
			misfits = append(misfits, fmt.Sprintf("%s (%s)", t, strings.Join(archs[t], ", ")))
			fits = strings.Join(archs[t], " or ")
		}
	}
	if len(misfits) > 0 {
		return fmt.Errorf("AMI %s (%s) is %s, but the group launches %s: pick an %s AMI, or change the group's instance types first",
			img.ID, img.Name, img.Architecture, strings.Join(misfits, ", "), fits)
	}
	return nil
}

func (p *Provider) param(ctx context.Context, name, what string) (string, error) {
	out, err := p.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if isNotFound(err) {
		return "", cloud.NotFoundf(nil, "%s (SSM parameter %s)", what, name)
	}
	if err != nil {
		return "", fmt.Errorf("reading SSM parameter %s: %w", name, err)
	}
	return aws.ToString(out.Parameter.Value), nil
}
