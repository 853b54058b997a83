// Package charts holds noderoll's Helm chart (charts/noderoll) and renders
// it with Helm's own engine (helm.sh/helm/v4), so that tests install
// exactly what `helm install` would. The sandbox installs the copy in
// charts/rendered, which this package's tests keep equal to a fresh render.
package charts

//go:generate go test -run TestTheRenderedCopyIsCurrent -update

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/noderoll/noderoll/charts/rendered"
)

//go:embed all:noderoll
var files embed.FS

// Load returns the chart as Helm loads it.
func Load() (*chartv2.Chart, error) {
	var buffered []*archive.BufferedFile
	err := fs.WalkDir(files, "noderoll", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		buffered = append(buffered, &archive.BufferedFile{Name: strings.TrimPrefix(path, "noderoll/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(buffered)
}

// Render renders the chart as `helm template` would for a release name in
// namespace, with values over the chart's own; the CRDs come first.
func Render(release, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	ch, err := Load()
	if err != nil {
		return nil, fmt.Errorf("loading the chart: %w", err)
	}
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("the chart's values: %w", err)
	}
	templates, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering the chart: %w", err)
	}
	var out []*unstructured.Unstructured
	for _, crd := range ch.CRDObjects() {
		objs, err := rendered.Decode(crd.File.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", crd.Filename, err)
		}
		out = append(out, objs...)
	}
	names := make([]string, 0, len(templates))
	for name := range templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		objs, err := rendered.Decode([]byte(templates[name]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}
