package awssim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Image is an AMI in the simulated account. KubeletVersion is what a node
// booted from it reports, so the control plane shows old and new versions.
type Image struct {
	ID             string
	Name           string
	Family         string // "al2023" or "bottlerocket"
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

// SupportedMinors lists the Kubernetes minors the catalog publishes AMIs for.
func SupportedMinors() []string { return []string{"1.33", "1.34", "1.35", "1.36", "1.37"} }

func amiID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "ami-0" + hex.EncodeToString(sum[:])[:16]
}

// buildCatalog returns the AMIs and the SSM public parameters that point at
// them, under the same paths AWS publishes (see eksctl's AMI resolver).
func buildCatalog() (map[string]*Image, map[string]string) {
	images := map[string]*Image{}
	params := map[string]string{}
	for _, minor := range SupportedMinors() {
		patch := kubePatch[minor]
		kubelet := fmt.Sprintf("v%s.%d-eks-%s", minor, patch, amiID(minor)[5:12])
		base := "/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/x86_64/standard/"
		for i, date := range releaseDates {
			name := fmt.Sprintf("amazon-eks-node-al2023-x86_64-standard-%s-v%s", minor, date)
			img := &Image{
				ID: amiID(name), Name: name, Family: "al2023", KubeMinor: minor,
				KubeletVersion: kubelet,
				ReleaseVersion: fmt.Sprintf("%s.%d-%s", minor, patch, date),
				CreationDate:   date[:4] + "-" + date[4:6] + "-" + date[6:] + "T00:00:00.000Z",
			}
			images[img.ID] = img
			params[base+name+"/image_id"] = img.ID
			params[base+name+"/release_version"] = img.ReleaseVersion
			if i == len(releaseDates)-1 {
				params[base+"recommended/image_id"] = img.ID
				params[base+"recommended/release_version"] = img.ReleaseVersion
			}
		}
		brName := fmt.Sprintf("bottlerocket-aws-k8s-%s-x86_64-v1.50.0", minor)
		br := &Image{
			ID: amiID(brName), Name: brName, Family: "bottlerocket", KubeMinor: minor,
			KubeletVersion: fmt.Sprintf("v%s.%d-eks-%s", minor, patch, amiID(brName)[5:12]),
			ReleaseVersion: "1.50.0-" + amiID(brName)[5:13],
			CreationDate:   "2026-11-15T00:00:00.000Z",
		}
		images[br.ID] = br
		params["/aws/service/bottlerocket/aws-k8s-"+minor+"/x86_64/latest/image_id"] = br.ID
		params["/aws/service/bottlerocket/aws-k8s-"+minor+"/x86_64/latest/image_version"] = br.ReleaseVersion
	}
	return images, params
}
