package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/noderoll/noderoll/internal/cloud"
	"github.com/noderoll/noderoll/internal/terms"
)

// TargetSpec is what the user asked to upgrade to; exactly one of the first
// four is set.
type TargetSpec struct {
	KubernetesVersion     string `json:"kubernetesVersion,omitempty"`     // "1.37" (or "1.37.2": the minor counts)
	ReleaseVersion        string `json:"releaseVersion,omitempty"`        // "1.37.2-20261115"
	LaunchTemplateVersion int64  `json:"launchTemplateVersion,omitempty"` // an existing version of the group's template
	AMI                   string `json:"ami,omitempty"`                   // an explicit image
	Family                string `json:"family,omitempty"`                // "al2023", "bottlerocket" or "windows"; "": the group's own
}

// sameRequest reports whether two specs ask for the same thing, the
// family's default spelled or not.
func (t TargetSpec) sameRequest(o TargetSpec) bool {
	fam := func(f string) string {
		if f == "" {
			return "al2023"
		}
		return f
	}
	t.Family, o.Family = fam(t.Family), fam(o.Family)
	return t == o
}

// Target is the resolved AMI an upgrade moves the group to.
type Target struct {
	ImageID        string `json:"imageId"`
	ImageName      string `json:"imageName,omitempty"`
	KubeMinor      string `json:"kubernetesVersion,omitempty"`
	ReleaseVersion string `json:"releaseVersion,omitempty"`
	// TemplateVersion is set when the user named an existing version.
	TemplateVersion int64 `json:"launchTemplateVersion,omitempty"`
}

var minorRE = regexp.MustCompile(`^v?(1\.\d{1,3})(\.\d+)?$`)

// Validate checks the spec's form before anything is looked up, naming the
// options as the front end (tm) spells them.
func (t TargetSpec) Validate(tm terms.Terms) error {
	n := 0
	for _, set := range []bool{t.KubernetesVersion != "", t.ReleaseVersion != "", t.LaunchTemplateVersion != 0, t.AMI != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("say what to upgrade to with exactly one of %s, %s, %s or %s (got %d)",
			tm.Of("kubernetes-version"), tm.Of("release-version"), tm.Of("launch-template-version"), tm.Of("ami"), n)
	}
	if t.KubernetesVersion != "" && !minorRE.MatchString(t.KubernetesVersion) {
		return fmt.Errorf("%s: want a version like 1.37", tm.With("kubernetes-version", strconv.Quote(t.KubernetesVersion)))
	}
	if t.LaunchTemplateVersion < 0 {
		return fmt.Errorf("%s: want a version number of the group's launch template", tm.With("launch-template-version", fmt.Sprint(t.LaunchTemplateVersion)))
	}
	if t.Family != "" && t.Family != "al2023" && t.Family != "bottlerocket" && t.Family != "windows" {
		return fmt.Errorf("%s: want al2023, bottlerocket or windows (or leave it out to keep the group's own)", tm.With("ami-family", strconv.Quote(t.Family)))
	}
	if (t.Family == "bottlerocket" || t.Family == "windows") && t.KubernetesVersion == "" {
		return fmt.Errorf("%s goes with %s", tm.With("ami-family", t.Family), tm.Of("kubernetes-version"))
	}
	return nil
}

// resolveTarget finds the AMI the spec names and checks that kubelets on it
// may join this control plane: not newer, and at most 3 minors older.
func resolveTarget(ctx context.Context, p cloud.Provider, g cloud.NodeGroup, spec TargetSpec, controlPlane string, tm terms.Terms) (Target, error) {
	q := cloud.ImageQuery{ReleaseVersion: spec.ReleaseVersion, ImageID: spec.AMI, Family: spec.Family, Like: g.ImageID, InstanceTypes: g.InstanceTypes, Terms: tm}
	if spec.KubernetesVersion != "" {
		q.KubernetesVersion = minorRE.FindStringSubmatch(spec.KubernetesVersion)[1]
		if err := checkSkew(q.KubernetesVersion, controlPlane); err != nil {
			return Target{}, err
		}
	}
	if spec.LaunchTemplateVersion != 0 {
		id, err := p.TemplateImage(ctx, g.TemplateID, spec.LaunchTemplateVersion)
		if err != nil {
			return Target{}, fmt.Errorf("%s: %w", tm.With("launch-template-version", fmt.Sprint(spec.LaunchTemplateVersion)), err)
		}
		q.ImageID = id
	}
	img, err := p.ResolveImage(ctx, q)
	if err != nil {
		return Target{}, err
	}
	t := Target{ImageID: img.ID, ImageName: img.Name, KubeMinor: img.KubeMinor, ReleaseVersion: img.ReleaseVersion, TemplateVersion: spec.LaunchTemplateVersion}
	if t.KubeMinor != "" {
		if err := checkSkew(t.KubeMinor, controlPlane); err != nil {
			return Target{}, fmt.Errorf("AMI %s (%s): %w", img.ID, img.Name, err)
		}
	}
	return t, nil
}

// checkSkew applies Kubernetes' version skew policy for kubelets.
func checkSkew(kubelet, controlPlane string) error {
	k, err1 := minorOf(kubelet)
	c, err2 := minorOf(controlPlane)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("cannot compare Kubernetes versions %q and %q", kubelet, controlPlane)
	}
	switch {
	case k > c:
		return fmt.Errorf("Kubernetes %s is newer than the control plane (%s): upgrade the control plane first", kubelet, controlPlane)
	case c-k > 3:
		return fmt.Errorf("Kubernetes %s is more than 3 minor versions older than the control plane (%s), which kubelets do not support: pick 1.%d or newer", kubelet, controlPlane, c-3)
	}
	return nil
}

func minorOf(v string) (int, error) {
	v = strings.TrimPrefix(v, "v")
	parts := strings.Split(v, ".")
	if len(parts) < 2 || parts[0] != "1" {
		return 0, fmt.Errorf("not a 1.x version: %q", v)
	}
	return strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
}
