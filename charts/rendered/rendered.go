// Package rendered holds what the chart (charts/noderoll) renders to with
// its own values, as release Release in Namespace: the output of Helm's
// engine, written ahead of time by `go generate ./charts` and checked
// against a fresh render by the charts package's tests. The sandbox
// installs it from here, so the CLI links no Helm engine: a binary that
// can execute text/templates keeps every exported method of every type it
// links, which more than doubled the CLI's size and the memory a run maps.
package rendered

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The release this copy was rendered as, as with
// `helm template noderoll charts/noderoll -n kube-system --include-crds`.
const (
	Release   = "noderoll"
	Namespace = "kube-system"
)

// File is the name of the rendered copy in this package's folder.
const File = "noderoll.yaml"

//go:embed noderoll.yaml
var manifest []byte

// Objects returns the chart's objects as Helm rendered them, the CRDs first.
func Objects() ([]*unstructured.Unstructured, error) {
	objs, err := Decode(manifest)
	if err != nil {
		return nil, fmt.Errorf("the chart's rendered copy (charts/rendered/%s): %w", File, err)
	}
	return objs, nil
}

// Decode reads the objects of a YAML or JSON stream, skipping empty
// documents.
func Decode(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}
