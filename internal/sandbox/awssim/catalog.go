package awssim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
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

// Release is an EKS AMI release the account published: its AL2023
// release version, and the Bottlerocket and Windows versions that came
// with it.
type Release struct {
	Minor        string `json:"minor"`
	Version      string `json:"releaseVersion"` // "1.37.2-20261201"
	Bottlerocket string `json:"bottlerocket"`   // "1.51.0"
	Windows      string `json:"windows"`        // "2026.12.01"
}

// PublishRelease publishes a new EKS AMI release of a minor dated date
// (YYYYMMDD), as AWS does about twice a month: for every family the
// catalog knows, new images (each AL2023 architecture and variant, the
// next Bottlerocket version, Windows Core and Full) and the SSM parameters
// naming the recommended or latest image of each moved to them. A date not
// after the minor's newest AL2023 release is refused: releases only move
// forward.
func (a *Account) PublishRelease(minor, date string) (Release, error) {
	if _, ok := kubePatch[minor]; !ok {
		return Release{}, fmt.Errorf("Kubernetes %s: the sandbox publishes AMIs for %s", minor, strings.Join(SupportedMinors(), ", "))
	}
	day, err := time.Parse("20060102", date)
	if err != nil {
		return Release{}, fmt.Errorf("release date %q: want YYYYMMDD, such as 20261201", date)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	newest := a.params["/aws/service/eks/optimized-ami/"+minor+"/amazon-linux-2023/x86_64/standard/recommended/release_version"]
	if _, at, _ := strings.Cut(newest, "-"); at >= date {
		return Release{}, fmt.Errorf("release date %s: Kubernetes %s's newest release is %s already; a new one is dated after %s", date, minor, newest, at)
	}
	r := Release{Minor: minor, Version: addAL2023(a.images, a.params, minor, date), Windows: day.Format("2006.01.02")}
	// Bottlerocket numbers its versions: the next minor version.
	latest := a.params["/aws/service/bottlerocket/aws-k8s-"+minor+"/x86_64/latest/image_version"]
	var major, minorV int
	if _, err := fmt.Sscanf(latest, "%d.%d.", &major, &minorV); err != nil {
		major, minorV = 1, 50
	}
	r.Bottlerocket = fmt.Sprintf("%d.%d.0", major, minorV+1)
	addBottlerocket(a.images, a.params, minor, r.Bottlerocket, day.Format("2006-01-02"))
	addWindows(a.images, a.params, minor, r.Windows)
	return r, nil
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
// Core|Full-EKS_Optimized-MINOR/). Every minor has the AL2023 releases of
// releaseDates, one Bottlerocket (v1.50.0) and one Windows release.
func buildCatalog() (map[string]*Image, map[string]string) {
	images := map[string]*Image{}
	params := map[string]string{}
	for _, minor := range SupportedMinors() {
		for _, date := range releaseDates {
			addAL2023(images, params, minor, date)
		}
		addBottlerocket(images, params, minor, "1.50.0", "2026-11-15")
		addWindows(images, params, minor, "2026.11.12")
	}
	return images, params
}

func addImage(images map[string]*Image, img *Image) *Image {
	img.ID = amiID(img.Name)
	images[img.ID] = img
	return img
}

// kubeletOf is what a node booted from an image of the minor reports.
func kubeletOf(minor, name string) string {
	return fmt.Sprintf("v%s.%d-eks-%s", minor, kubePatch[minor], amiID(name)[5:12])
}

// addAL2023 publishes an EKS-optimized AL2023 release of a minor, dated
// YYYYMMDD, for every architecture and variant, and makes it the
// recommended one.
func addAL2023(images map[string]*Image, params map[string]string, minor, date string) string {
	release := fmt.Sprintf("%s.%d-%s", minor, kubePatch[minor], date)
	for _, k := range al2023Kinds {
		base := "/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/" + k.arch + "/" + k.variant + "/"
		img := addImage(images, &Image{
			Name: fmt.Sprintf("amazon-eks-node-al2023-%s-%s-%s-v%s", k.arch, k.variant, minor, date), Family: "al2023",
			Architecture: k.arch, Variant: k.variant, KubeMinor: minor, KubeletVersion: kubeletOf(minor, minor),
			ReleaseVersion: release, CreationDate: date[:4] + "-" + date[4:6] + "-" + date[6:] + "T00:00:00.000Z",
		})
		params[base+img.Name+"/image_id"] = img.ID
		params[base+img.Name+"/release_version"] = img.ReleaseVersion
		params[base+"recommended/image_id"] = img.ID
		params[base+"recommended/release_version"] = img.ReleaseVersion
	}
	return release
}

// addBottlerocket publishes a Bottlerocket version for a minor (x86_64 and
// arm64, standard and NVIDIA), created on day (YYYY-MM-DD), as the latest.
func addBottlerocket(images map[string]*Image, params map[string]string, minor, version, day string) {
	for _, arch := range []string{"x86_64", "arm64"} {
		for _, variant := range []string{"standard", "nvidia"} {
			flavour, nameArch := minor, arch
			if variant == "nvidia" {
				flavour += "-nvidia"
			}
			if arch == "arm64" {
				nameArch = "aarch64" // Bottlerocket's names say aarch64, its parameters arm64
			}
			name := fmt.Sprintf("bottlerocket-aws-k8s-%s-%s-v%s", flavour, nameArch, version)
			img := addImage(images, &Image{
				Name: name, Family: "bottlerocket", Architecture: arch, Variant: variant, KubeMinor: minor,
				KubeletVersion: kubeletOf(minor, name), ReleaseVersion: version + "-" + amiID(name)[5:13], CreationDate: day + "T00:00:00.000Z",
			})
			params["/aws/service/bottlerocket/aws-k8s-"+flavour+"/"+arch+"/latest/image_id"] = img.ID
			params["/aws/service/bottlerocket/aws-k8s-"+flavour+"/"+arch+"/latest/image_version"] = img.ReleaseVersion
		}
	}
}

// addWindows publishes the EKS-optimized Windows Server 2022 images (Core
// and Full) of a minor, versioned YYYY.MM.DD, as the latest.
func addWindows(images map[string]*Image, params map[string]string, minor, version string) {
	for _, edition := range []string{"Core", "Full"} {
		base := "Windows_Server-2022-English-" + edition + "-EKS_Optimized-" + minor
		img := addImage(images, &Image{
			Name: base + "-" + version, Family: "windows", Architecture: "x86_64", Variant: strings.ToLower(edition), KubeMinor: minor,
			KubeletVersion: kubeletOf(minor, base), ReleaseVersion: version, CreationDate: strings.ReplaceAll(version, ".", "-") + "T00:00:00.000Z",
		})
		params["/aws/service/ami-windows-latest/"+base+"/image_id"] = img.ID
	}
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
