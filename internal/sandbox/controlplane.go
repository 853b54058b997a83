package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ControlPlane is one kwokctl cluster on the binary runtime. Its state lives
// under Dir (KWOK_WORKDIR), its kubeconfig is a file of ours: the user's
// ~/.kube/config is never written.
type ControlPlane struct {
	Name  string
	Dir   string
	Tools Toolchain
}

// Kubeconfig is the path of the cluster's kubeconfig.
func (c ControlPlane) Kubeconfig() string { return filepath.Join(c.Dir, "kubeconfig") }

func (c ControlPlane) kwokctl(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Tools.Path("kwokctl"), append([]string{"--name", c.Name}, args...)...)
	cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+filepath.Join(c.Dir, "kwok"), "KWOK_KUBE_VERSION="+KubeVersion)
	return cmd
}

// Create starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and kwok's controller, all on loopback, and waits until they are ready.
// nodeReady delays a new Node's Ready condition, as a kubelet takes time.
func (c ControlPlane) Create(ctx context.Context, nodeReady time.Duration) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	conf, err := kwokConfig(ctx, nodeReady)
	if err != nil {
		return err
	}
	confPath := filepath.Join(c.Dir, "kwok.yaml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return err
	}
	args := []string{
		"create", "cluster", "--runtime", "binary", "--config", confPath,
		"--kubeconfig", c.Kubeconfig(), "--wait", "90s",
		"--etcd-binary", c.Tools.Path("etcd"),
		"--kube-apiserver-binary", c.Tools.Path("kube-apiserver"),
		"--kube-controller-manager-binary", c.Tools.Path("kube-controller-manager"),
		"--kube-scheduler-binary", c.Tools.Path("kube-scheduler"),
		"--kwok-controller-binary", c.Tools.Path("kwok"),
	}
	if err := run(c.kwokctl(ctx, args...)); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	return nil
}

// Delete stops every process of the cluster by the pids kwokctl recorded and
// removes its state.
func (c ControlPlane) Delete(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.Dir, "kwok", "clusters", c.Name)); os.IsNotExist(err) {
		return nil
	}
	if err := run(c.kwokctl(ctx, "delete", "cluster", "--kubeconfig", c.Kubeconfig())); err != nil {
		return fmt.Errorf("stopping the control plane: %w", err)
	}
	return nil
}

// Pids returns the control plane's processes as kwokctl recorded them.
func (c ControlPlane) Pids() map[string]int {
	out := map[string]int{}
	dir := filepath.Join(c.Dir, "kwok", "clusters", c.Name, "pids")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &pid); err == nil {
			out[strings.TrimSuffix(e.Name(), ".pid")] = pid
		}
	}
	return out
}

// kwokctlConfiguration binds every component to loopback and lifts the
// default 20 QPS that throttles large groups (see the local control plane
// notes). The patches live here rather than in --extra-args: kwokctl v0.8.0
// mis-indexes repeated --extra-args for one component.
const kwokctlConfiguration = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - {key: kube-api-qps, value: "500"}
  - {key: kube-api-burst, value: "1000"}
- name: kube-scheduler
  extraArgs:
  - {key: kube-api-qps, value: "500"}
  - {key: kube-api-burst, value: "1000"}
`

// kwokConfig is kwokctl's configuration: loopback only, plus kwok's own
// stages for realistic pods (a per-pod ready delay read from annotations;
// deleted pods are PodStopper's) and nodes (initialize after nodeReady, then
// heartbeat).
func kwokConfig(ctx context.Context, nodeReady time.Duration) ([]byte, error) {
	dir, err := kwokModuleDir(ctx)
	if err != nil {
		return nil, err
	}
	docs := []string{kwokctlConfiguration}
	var files []string
	all, _ := filepath.Glob(filepath.Join(dir, "kustomize", "stage", "pod", "general", "pod-*.yaml"))
	for _, f := range all {
		// kwok's pod-delete deletes by name; PodStopper does it by UID.
		if filepath.Base(f) != "pod-delete.yaml" {
			files = append(files, f)
		}
	}
	files = append(files,
		filepath.Join(dir, "kustomize", "stage", "node", "fast", "node-initialize.yaml"),
		filepath.Join(dir, "kustomize", "stage", "node", "heartbeat", "node-heartbeat.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading kwok's stage %s: %w", f, err)
		}
		if b, err = readySince(filepath.Base(f), b); err != nil {
			return nil, err
		}
		if filepath.Base(f) == "node-initialize.yaml" && nodeReady > 0 {
			if b, err = withDelay(b, nodeReady); err != nil {
				return nil, err
			}
		}
		docs = append(docs, string(b))
	}
	return []byte(strings.Join(docs, "\n---\n")), nil
}

// kwok's node stages date every condition's lastTransitionTime to the
// Node's creation, so a Node that turns Ready after its node-ready delay
// reads as Ready since it registered, and anything timing boot to Ready
// from the condition (the benchmark's B+R) misses that delay. A kubelet
// dates a condition when its status changes: the sandbox's stages date
// Ready to when node-initialize sets it, and heartbeats keep that date.
const kwokTransitionLine = `{{ $lastTransitionTime := or .metadata.creationTimestamp $now }}`

func readySince(file string, stage []byte) ([]byte, error) {
	var with string
	switch file {
	case "node-initialize.yaml":
		with = `{{ $lastTransitionTime := $now }}`
	case "node-heartbeat.yaml":
		with = kwokTransitionLine + `{{ range .status.conditions }}{{ if eq .type "Ready" }}{{ $lastTransitionTime = .lastTransitionTime }}{{ end }}{{ end }}`
	default:
		return stage, nil
	}
	if !bytes.Contains(stage, []byte(kwokTransitionLine)) {
		return nil, fmt.Errorf("kwok's stage %s no longer dates conditions as %s: the sandbox's Ready timing needs a new patch", file, kwokTransitionLine)
	}
	return bytes.Replace(stage, []byte(kwokTransitionLine), []byte(with), 1), nil
}

// withDelay sets a Stage's spec.delay.
func withDelay(stage []byte, d time.Duration) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(stage, &obj); err != nil {
		return nil, fmt.Errorf("parsing a kwok stage: %w", err)
	}
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		return nil, fmt.Errorf("kwok stage has no spec")
	}
	spec["delay"] = map[string]any{"durationMilliseconds": d.Milliseconds()}
	return yaml.Marshal(obj)
}

// kwokModuleDir finds kwok's module source (its stage files) through the Go
// module cache; building kwokctl put it there.
func kwokModuleDir(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/kwok@"+KwokVersion)
	cmd.Dir = os.TempDir()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("locating kwok %s's stage files in the module cache: %w", KwokVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out.Bytes(), &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("locating kwok %s's module: %v", KwokVersion, err)
	}
	return mod.Dir, nil
}
