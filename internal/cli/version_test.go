package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionReadsTheBuild(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/noderoll/noderoll", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "8c4adaf"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-12-05T18:00:00Z"}},
		Deps: []*debug.Module{{Path: "k8s.io/client-go", Version: "v0.37.2"}, {Path: "github.com/aws/aws-sdk-go-v2", Version: "v1.41.0"},
			{Path: "sigs.k8s.io/controller-runtime", Version: "v0.23.0", Replace: &debug.Module{Version: "v0.23.1"}}}}
	got := versionOf(bi)
	want := buildVersion{Version: "v0.3.0", Commit: "8c4adaf", CommitAt: "2026-12-05T18:00:00Z", Modified: true, GoVersion: "go1.26.8",
		Kubernetes: "1.37.2", ClientGo: "v0.37.2", ControllerRuntime: "v0.23.1", AWSSDK: "v1.41.0"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// The command reads the running binary's own build: the test binary's,
// which lists no modules (the e2e tests read the real binary's).
func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	root := NewRoot(Streams{Out: &out, Err: &out})
	root.SetArgs([]string{"version", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var v buildVersion
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if v.GoVersion != runtime.Version() || v.Version == "" {
		t.Errorf("version of the test binary: %+v", v)
	}
	root = NewRoot(Streams{Out: &out, Err: &out})
	root.SetArgs([]string{"version", "-o", "yaml"})
	if err := root.Execute(); err == nil {
		t.Error("-o yaml accepted")
	}
}
