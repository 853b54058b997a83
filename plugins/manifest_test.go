// Package plugins holds the krew manifest of the kubectl plugin; its test
// holds the manifest to krew's rules.
package plugins

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/noderoll/noderoll/internal/cli"
)

type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// The manifest follows krew's rules for a plugin manifest (its developer
// guide): named as its file, a v-prefixed semantic version, an https
// homepage, a short description, and for each platform a selector, an
// https archive of this version, its sha256 and the binary kubectl runs,
// for Linux and macOS on amd64 and arm64.
func TestTheKrewManifestFollowsKrewsRules(t *testing.T) {
	b, err := os.ReadFile("noderoll.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		t.Fatalf("noderoll.yaml: %v", err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "noderoll" {
		t.Errorf("header: %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(m.Spec.Version) {
		t.Errorf("version %q is no vX.Y.Z", m.Spec.Version)
	}
	if !strings.HasPrefix(m.Spec.Homepage, "https://") || m.Spec.ShortDescription == "" || len(m.Spec.ShortDescription) > 50 || m.Spec.Description == "" {
		t.Errorf("homepage %q, short description %q (at most 50 characters), description %q", m.Spec.Homepage, m.Spec.ShortDescription, m.Spec.Description)
	}
	seen := map[string]bool{}
	hex := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		seen[os+"/"+arch] = true
		if !strings.HasPrefix(p.URI, "https://") || !strings.Contains(p.URI, "/"+m.Spec.Version+"/") || !strings.HasSuffix(p.URI, "_"+os+"_"+arch+".tar.gz") {
			t.Errorf("%s/%s: uri %q is not this version's archive for the platform", os, arch, p.URI)
		}
		if !hex.MatchString(p.SHA256) {
			t.Errorf("%s/%s: sha256 %q", os, arch, p.SHA256)
		}
		if p.Bin != cli.PluginName {
			t.Errorf("%s/%s: bin %q, want %q (the name noderoll speaks as kubectl noderoll by)", os, arch, p.Bin, cli.PluginName)
		}
		hasBin := false
		for _, f := range p.Files {
			hasBin = hasBin || f.From == p.Bin
		}
		if !hasBin {
			t.Errorf("%s/%s: the archive's files do not include %s", os, arch, p.Bin)
		}
	}
	for _, want := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		if !seen[want] {
			t.Errorf("no platform %s", want)
		}
	}
}
