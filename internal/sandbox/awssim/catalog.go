package awssim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Image is an AMI in the simulated account. KubeletVersion is what a node
// booted from it reports, so the control plane shows old and new versions.
type Image struct {
	ID             string
	Name           string
	Family         string // "al2023", "bottlerocket" or "windows"
	Architecture   string // "x86_64" or "arm64", as DescribeImages says it
	Variant        string // "standard", "nvidia" or "neuron"; "core" or "full" for Windows
	KubeMinor      string // "1.37"
	KubeletVersion string // "v1.37.2-eks-4f1c2a9"
	ReleaseVersion string // "1.37.2-20261115"
	CreationDate   string
}

// kubePatch is the patch release each minor's AMIs ship, as EKS pins it.
var kubePatch = map[string]int{"1.33": 15, "1.34": 12, "1.35": 9, "1.36": 5, "1.37": 2}

// releaseDates are the AMI releases published for every minor; the last is
// the one SSM calls "recommended".
var releaseDates = []string{"20261020", "20261115"}

// Releases lists the EKS AMI releases the catalog publishes for a minor,
// oldest first: the last is the recommended one.
func Releases(minor string) []string {
	var out []string
	for _, date := range releaseDates {
		out = append(out, fmt.Sprintf("%s.%d-%s", minor, kubePatch[minor], date))
	}
	return out
}

// SupportedMinors lists the Kubernetes minors the catalog publishes AMIs for.
func SupportedMinors() []string { return []string{"1.33", "1.34", "1.35", "1.36", "1.37"} }

func amiID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "ami-0" + hex.EncodeToString(sum[:])[:16]
}

// al2023Kinds are the EKS-optimized AL2023 AMIs published per minor.
var al2023Kinds = []struct{ arch, variant string }{
	{"x86_64", "standard"}, {"arm64", "standard"}, {"x86_64", "nvidia"}, {"arm64", "nvidia"}, {"x86_64", "neuron"},
}

// buildCatalog returns the AMIs and the SSM public parameters that point at
// them, under the same paths and names AWS publishes: EKS-optimized AL2023
// (/aws/service/eks/optimized-ami/MINOR/amazon-linux-2023/ARCH/VARIANT/),
// Bottlerocket (/aws/service/bottlerocket/aws-k8s-MINOR[-nvidia]/ARCH/latest/)
// and Windows (/aws/service/ami-windows-latest/Windows_Server-2022-English-
// Core|Full-EKS_Optimized-MINOR/).
func buildCatalog() (map[string]*Image, map[string]string) {
	images := map[string]*Image{}
	params := map[string]string{}
	add := func(img *Image) *Image {
		img.ID = amiID(img.Name)
		images[img.ID] = img
		return img
	}
	for _, minor := range SupportedMinors() {
		patch := kubePatch[minor]
		kubelet := fmt.Sprintf("v%s.%d-eks-%s", minor, patch, amiID(minor)[5:12])
		for _, k := range al2023Kinds {
			base := "/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/" + k.arch + "/" + k.variant + "/"
			for i, date := range releaseDates {
				img := add(&Image{
					Name: fmt.Sprintf("amazon-eks-node-al2023-%s-%s-%s-v%s", k.arch, k.variant, minor, date), Family: "al2023",
					Architecture: k.arch, Variant: k.variant, KubeMinor: minor, KubeletVersion: kubelet,
					ReleaseVersion: fmt.Sprintf("%s.%d-%s", minor, patch, date),
					CreationDate:   date[:4] + "-" + date[4:6] + "-" + date[6:] + "T00:00:00.000Z",
				})
				params[base+img.Name+"/image_id"] = img.ID
				params[base+img.Name+"/release_version"] = img.ReleaseVersion
				if i == len(releaseDates)-1 {
					params[base+"recommended/image_id"] = img.ID
					params[base+"recommended/release_version"] = img.ReleaseVersion
				}
			}
		}
		for _, arch := range []string{"x86_64", "arm64"} {
			for _, variant := range []string{"standard", "nvidia"} {
				flavour, nameArch := minor, arch
				if variant == "nvidia" {
					flavour += "-nvidia"
				}
				if arch == "arm64" {
					nameArch = "aarch64" // Bottlerocket's names say aarch64, its parameters arm64
				}
				name := fmt.Sprintf("bottlerocket-aws-k8s-%s-%s-v1.50.0", flavour, nameArch)
				img := add(&Image{
					Name: name, Family: "bottlerocket", Architecture: arch, Variant: variant, KubeMinor: minor,
					KubeletVersion: fmt.Sprintf("v%s.%d-eks-%s", minor, patch, amiID(name)[5:12]),
					ReleaseVersion: "1.50.0-" + amiID(name)[5:13], CreationDate: "2026-11-15T00:00:00.000Z",
				})
				params["/aws/service/bottlerocket/aws-k8s-"+flavour+"/"+arch+"/latest/image_id"] = img.ID
				params["/aws/service/bottlerocket/aws-k8s-"+flavour+"/"+arch+"/latest/image_version"] = img.ReleaseVersion
			}
		}
		for _, edition := range []string{"Core", "Full"} {
			base := "Windows_Server-2022-English-" + edition + "-EKS_Optimized-" + minor
			img := add(&Image{
				Name: base + "-2026.11.12", Family: "windows", Architecture: "x86_64", Variant: strings.ToLower(edition), KubeMinor: minor,
				KubeletVersion: fmt.Sprintf("v%s.%d-eks-%s", minor, patch, amiID(base)[5:12]),
				ReleaseVersion: "2026.11.12", CreationDate: "2026-11-12T00:00:00.000Z",
			})
			params["/aws/service/ami-windows-latest/"+base+"/image_id"] = img.ID
		}
	}
	return images, params
}

// instanceTypes are the EC2 instance types the account knows, with the
// architectures they run (DescribeInstanceTypes' ProcessorInfo).
var instanceTypes = map[string]string{
	"t3.medium": "x86_64", "m5.large": "x86_64", "m5.xlarge": "x86_64", "m5a.large": "x86_64", "m6i.large": "x86_64",
	"c5.large": "x86_64", "c6i.large": "x86_64", "r6i.large": "x86_64", "g5.xlarge": "x86_64", "p4d.24xlarge": "x86_64",
	"inf2.xlarge": "x86_64", "trn1.2xlarge": "x86_64",
	"t4g.medium": "arm64", "m6g.large": "arm64", "m7g.large": "arm64", "c7g.large": "arm64", "r7g.large": "arm64", "g5g.xlarge": "arm64",
}

// instanceVCPUs are the types' default vCPUs (DescribeInstanceTypes'
// VCpuInfo), which EC2's vCPU quotas count.
var instanceVCPUs = map[string]int{
	"t3.medium": 2, "m5.large": 2, "m5.xlarge": 4, "m5a.large": 2, "m6i.large": 2,
	"c5.large": 2, "c6i.large": 2, "r6i.large": 2, "g5.xlarge": 4, "p4d.24xlarge": 96,
	"inf2.xlarge": 4, "trn1.2xlarge": 8,
	"t4g.medium": 2, "m6g.large": 2, "m7g.large": 2, "c7g.large": 2, "r7g.large": 2, "g5g.xlarge": 4,
}
