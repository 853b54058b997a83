package cli

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what `noderoll version` reports, read from the build
// information Go embeds in every binary: nothing to stamp at release.
type buildVersion struct {
	Version   string `json:"version"` // the module's, "(devel)" from a checkout
	Commit    string `json:"commit,omitempty"`
	CommitAt  string `json:"commitTime,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a tree with changes
	GoVersion string `json:"goVersion"`
	// Kubernetes is the minor the client libraries were built for
	// (client-go v0.N.x is Kubernetes 1.N).
	Kubernetes        string `json:"kubernetes,omitempty"`
	ClientGo          string `json:"clientGo,omitempty"`
	ControllerRuntime string `json:"controllerRuntime,omitempty"`
	AWSSDK            string `json:"awsSDK,omitempty"`
}

func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitAt = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		version := d.Version
		if d.Replace != nil {
			version = d.Replace.Version
		}
		switch d.Path {
		case "k8s.io/client-go":
			v.ClientGo = version
			// v0.37.2 is Kubernetes 1.37.2.
			if rest, ok := strings.CutPrefix(version, "v0."); ok {
				v.Kubernetes = "1." + rest
			}
		case "sigs.k8s.io/controller-runtime":
			v.ControllerRuntime = version
		case "github.com/aws/aws-sdk-go-v2":
			v.AWSSDK = version
		}
	}
	return v
}

func newVersionCmd(s Streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print noderoll's version, commit, and the Go, Kubernetes and AWS SDK versions it was built with",
		Example: `  noderoll version
  noderoll version -o json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			bi, ok := debug.ReadBuildInfo()
			if !ok {
				return fmt.Errorf("this binary carries no build information (built without module support)")
			}
			v := versionOf(bi)
			if output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			commit := v.Commit
			if commit == "" {
				commit = "unknown (built without version control: go build -buildvcs=true, or hack/release.sh)"
			}
			if v.CommitAt != "" {
				commit += " " + v.CommitAt
			}
			if v.Modified {
				commit += " (with uncommitted changes)"
			}
			fmt.Fprintf(s.Out, "noderoll %s\n  commit:             %s\n  go:                 %s\n  kubernetes client:  %s (client-go %s, controller-runtime %s)\n  aws-sdk-go-v2:      %s\n",
				v.Version, commit, v.GoVersion, v.Kubernetes, v.ClientGo, v.ControllerRuntime, v.AWSSDK)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	completeWith(cmd, "output", "text", "json")
	return cmd
}
