package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/noderoll/noderoll/internal/clientcfg"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// Sandbox credentials: the endpoint accepts any; these make the SDK sign.
const (
	AccessKeyID     = "AKIDNODEROLLSANDBOX"
	SecretAccessKey = "noderoll-sandbox-secret"
)

// State is what a running sandbox recorded about itself in Dir/sandbox.json.
type State struct {
	Name        string    `json:"name"`
	Dir         string    `json:"dir"`
	Kubeconfig  string    `json:"kubeconfig"`
	AWSEndpoint string    `json:"awsEndpoint"`
	AWSPid      int       `json:"awsPid"`
	Region      string    `json:"region"`
	BinDir      string    `json:"binDir"`
	Scenario    Scenario  `json:"scenario"`
	Started     time.Time `json:"started"`
	// Controllers are the controller replicas it runs (up --controllers).
	Controllers []Controller `json:"controllers,omitempty"`
}

// Options says where a sandbox lives and what it runs.
type Options struct {
	Dir      string // the sandbox's own folder; everything it writes goes here
	Name     string // the kwokctl cluster's name
	Tools    Toolchain
	Self     string // the noderoll binary that serves the AWS endpoint
	Scenario Scenario
	Out      io.Writer // progress
	// ReadyTimeout bounds seeding, from the first node to the last pod; 0
	// allows 5 minutes plus a second per node.
	ReadyTimeout time.Duration
	// Controllers is how many controller replicas to run once seeded, each
	// as the Helm chart's ServiceAccount (0: none).
	Controllers int
	// Eksctl builds eksctl (EksctlVersion) when missing and puts it in the
	// sandbox's bin folder, beside kubectl.
	Eksctl bool
}

// ErrRunning says a sandbox runs already in that folder.
var ErrRunning = errors.New("the sandbox is already running")

// RunningError is Up's answer on a running sandbox: it is ErrRunning, and
// says which controller replicas that were gone Up started again.
type RunningError struct{ Restarted []int }

func (e *RunningError) Error() string { return ErrRunning.Error() }

// Is makes errors.Is(err, ErrRunning) hold.
func (e *RunningError) Is(target error) bool { return target == ErrRunning }

func (o Options) controlPlane() ControlPlane {
	return ControlPlane{Name: o.Name, Dir: filepath.Join(o.Dir, "cluster"), Tools: o.Tools}
}

func statePath(dir string) string { return filepath.Join(dir, "sandbox.json") }

// Load reads a sandbox's recorded state; os.ErrNotExist when none runs there.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", statePath(dir), err)
	}
	return &s, nil
}

// Up starts the control plane and the AWS endpoint, seeds the scenario and
// waits until it is ready. On a running sandbox it returns its state and
// a *RunningError (ErrRunning), changing nothing but starting again the
// controller replicas that are gone. A failed start stops whatever it
// started.
func Up(ctx context.Context, o Options) (st *State, err error) {
	if err := o.Scenario.Validate(); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, o.Dir, o.Out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if prev, err := Load(o.Dir); err == nil {
		if prev.alive() {
			restarted, err := prev.restartGone(ctx, o.Self)
			if err != nil {
				return prev, err
			}
			return prev, &RunningError{Restarted: restarted}
		}
		fmt.Fprintln(o.Out, "Found a sandbox that is no longer running; cleaning it up first.")
		if err := down(ctx, o.Dir, o.controlPlane()); err != nil {
			return nil, err
		}
	}
	if err := o.Tools.Ensure(ctx, o.Out); err != nil {
		return nil, err
	}
	eksctl := ""
	if o.Eksctl {
		if eksctl, err = o.Tools.EnsureEksctl(ctx, o.Out); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			_ = down(context.WithoutCancel(ctx), o.Dir, o.controlPlane())
		}
	}()
	start := time.Now()
	cp := o.controlPlane()
	fmt.Fprintf(o.Out, "Starting the control plane (Kubernetes %s, kwok %s) on 127.0.0.1 ...\n", KubeVersion, KwokVersion)
	if err := o.createControlPlane(ctx, cp); err != nil {
		return nil, err
	}
	fmt.Fprintln(o.Out, "Starting the local AWS endpoint ...")
	endpoint, pid, err := startAWS(ctx, o.Self, o.Dir, cp.Kubeconfig())
	if err != nil {
		return nil, err
	}
	st = &State{
		Name: o.Name, Dir: o.Dir, Kubeconfig: cp.Kubeconfig(), AWSEndpoint: endpoint, AWSPid: pid,
		Region: o.Scenario.Region, BinDir: o.Tools.BinDir, Scenario: o.Scenario, Started: time.Now().UTC(),
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	if err := st.link("kubectl", filepath.Join(st.BinDir, "kubectl")); err != nil {
		return nil, err
	}
	if eksctl != "" {
		if err := st.link("eksctl", eksctl); err != nil {
			return nil, err
		}
	}
	client, err := st.KubeClient()
	if err != nil {
		return nil, err
	}
	if err := o.seed(ctx, client); err != nil {
		return nil, err
	}
	if o.Controllers > 0 {
		fmt.Fprintf(o.Out, "Installing the Helm chart's CRD and RBAC; starting %d controller replicas as its ServiceAccount ...\n", o.Controllers)
		if err := installController(ctx, st, client, o.Self, o.Controllers); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Out, "Sandbox ready in %s.\n", time.Since(start).Round(100*time.Millisecond))
	return st, nil
}

// createControlPlane creates the sandbox's control plane with kwokctl and
// keeps the scenario beside it.
func (o Options) createControlPlane(ctx context.Context, cp ControlPlane) error {
	// kwokctl picks its components' ports when it creates a cluster: two
	// sandboxes created at once on this machine can pick the same ones (seen:
	// a kwok controller that never started, every node NotReady). Creations
	// take turns; running sandboxes are not held up.
	unlockPorts, err := lock(ctx, filepath.Join(os.TempDir(), "noderoll-sandbox-ports"), o.Out)
	if err != nil {
		return err
	}
	err = cp.Create(ctx, o.Scenario.NodeReadyDelay.Duration)
	unlockPorts()
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(o.Scenario, "", "  ")
	return os.WriteFile(filepath.Join(o.Dir, "scenario.json"), b, 0o644)
}

// seed creates the scenario's nodes and workloads and waits for them,
// within --ready-timeout (by default five minutes and a second a node).
func (o Options) seed(ctx context.Context, client kubernetes.Interface) error {
	sc := o.Scenario
	fmt.Fprintf(o.Out, "Seeding cluster %s: node group %s of %d nodes in %d AZs on Kubernetes %s ...\n", sc.Cluster, strings.Join(sc.GroupNames(), ", "), sc.Nodes, sc.AZs, sc.NodeVersion)
	readyTimeout := o.ReadyTimeout
	if readyTimeout <= 0 {
		readyTimeout = 5*time.Minute + time.Duration(sc.TotalNodes())*time.Second
	}
	seedCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := sc.SeedKube(seedCtx, client, o.Out)
	switch {
	case err == nil:
		err = sc.WaitReady(seedCtx, client, o.Out)
	case seedCtx.Err() != nil:
		// A busy machine can spend a short timeout on the objects alone.
		err = fmt.Errorf("still creating the scenario's objects, before waiting for nodes Ready and pods Running: %w", err)
	}
	if err != nil {
		return fmt.Errorf("seeding the scenario within --ready-timeout %s: %w", readyTimeout, err)
	}
	return nil
}

// Down stops every process the sandbox started, by the pids it recorded, and
// removes its state. A folder with no sandbox is left as it is.
func Down(ctx context.Context, o Options) error {
	unlock, err := lock(ctx, o.Dir, o.Out)
	if err != nil {
		return err
	}
	defer unlock()
	return down(ctx, o.Dir, o.controlPlane())
}

func down(ctx context.Context, dir string, cp ControlPlane) error {
	if st, err := Load(dir); err == nil {
		// Stopped with what started it, as it recorded: its control plane's
		// name and toolchain, whichever folder or home this runs from.
		if st.Name != "" {
			cp.Name = st.Name
		}
		if st.BinDir != "" {
			cp.Tools = Toolchain{BinDir: st.BinDir}
		}
		for _, c := range st.Controllers {
			// Marked by its own kubeconfig: a recycled pid is never taken
			// for it.
			if err := stopPid(c.Pid, c.Kubeconfig); err != nil {
				return fmt.Errorf("stopping controller pid %d: %w", c.Pid, err)
			}
		}
		if st.AWSPid > 0 {
			if err := stopPid(st.AWSPid, "serve-aws"); err != nil {
				return fmt.Errorf("stopping the AWS endpoint (pid %d): %w", st.AWSPid, err)
			}
		}
	}
	if err := cp.Delete(ctx); err != nil {
		return err
	}
	for _, f := range []string{"sandbox.json", "scenario.json", "aws.addr", "bin", "cluster"} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) save() error {
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := statePath(s.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Dir))
}

// link puts a built tool (kubectl, eksctl) in the sandbox's bin folder,
// the one `sandbox env` puts first on PATH.
func (s *State) link(name, target string) error {
	bin := filepath.Join(s.Dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	link := filepath.Join(bin, name)
	_ = os.Remove(link)
	return os.Symlink(target, link)
}

// Processes returns the sandbox's processes and whether each is alive.
func (s *State) Processes() map[string]int {
	out := ControlPlane{Name: s.Name, Dir: filepath.Join(s.Dir, "cluster")}.Pids()
	out["aws-endpoint"] = s.AWSPid
	for k, c := range s.Controllers {
		out[fmt.Sprintf("controller-%d", k)] = c.Pid
	}
	return out
}

// LiveProcesses returns the sandbox's processes with 0 for each one that no
// longer runs (gone, a zombie, or its pid taken by another program), and
// whether all of them run.
func (s *State) LiveProcesses() (map[string]int, bool) {
	out, all := s.Processes(), true
	for name, pid := range out {
		marker := name
		switch name {
		case "aws-endpoint":
			marker = "serve-aws"
		case "kwok-controller":
			marker = "kwok"
		}
		for k, c := range s.Controllers {
			if name == fmt.Sprintf("controller-%d", k) {
				marker = c.Kubeconfig
			}
		}
		if !pidAlive(pid, marker) {
			out[name], all = 0, false
		}
	}
	return out, all
}

func (s *State) alive() bool {
	if !pidAlive(s.AWSPid, "serve-aws") {
		return false
	}
	pids := s.Processes()
	return pidAlive(pids["kube-apiserver"], "kube-apiserver")
}

// KubeClient returns a client for the sandbox's control plane.
func (s *State) KubeClient() (kubernetes.Interface, error) {
	cfg, err := s.RestConfig()
	if err != nil {
		return nil, err
	}
	return clientcfg.Clientset(cfg)
}

// RestConfig returns the admin's configuration of the sandbox's control
// plane, for clients other than client-go's clientset.
func (s *State) RestConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading the sandbox kubeconfig: %w", err)
	}
	// The certificates are read now, not by path: client-go watches a
	// client certificate given by path for rotation in a goroutine that
	// never ends, and once a sandbox is taken down it logs "Loading client
	// cert failed" for as long as the process lives (a test binary running
	// many sandboxes, one after another).
	if err := rest.LoadTLSFiles(cfg); err != nil {
		return nil, fmt.Errorf("reading the sandbox's certificates: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// Env returns the environment that points kubectl, the AWS SDK and noderoll
// at the sandbox.
func (s *State) Env() [][2]string {
	return [][2]string{
		{"KUBECONFIG", s.Kubeconfig},
		{"AWS_ENDPOINT_URL", s.AWSEndpoint},
		{"AWS_REGION", s.Region},
		// Older AWS CLIs (v1, Debian's 2.9) read the region only from
		// here, and no endpoint from the environment: pass them
		// --endpoint-url "$AWS_ENDPOINT_URL".
		{"AWS_DEFAULT_REGION", s.Region},
		{"AWS_ACCESS_KEY_ID", AccessKeyID},
		{"AWS_SECRET_ACCESS_KEY", SecretAccessKey},
		{"AWS_EC2_METADATA_DISABLED", "true"},
		{"NODEROLL_SANDBOX", s.Dir},
		{"PATH", filepath.Join(s.Dir, "bin") + string(os.PathListSeparator) + os.Getenv("PATH")},
	}
}

// startAWS starts `noderoll sandbox serve-aws` detached from the caller, so
// that the sandbox outlives the command that started it, and waits until it
// answers. Its pid is recorded so that down stops exactly it.
func startAWS(ctx context.Context, self, dir, kubeconfig string) (string, int, error) {
	addrFile := filepath.Join(dir, "aws.addr")
	_ = os.Remove(addrFile)
	logf, err := os.OpenFile(filepath.Join(dir, "aws-endpoint.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", 0, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "sandbox", "serve-aws", "--dir", dir, "--kubeconfig", kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return "", 0, fmt.Errorf("starting the AWS endpoint: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			url := "http://" + strings.TrimSpace(string(b))
			if resp, err := http.Get(url + "/_sim/healthz"); err == nil {
				resp.Body.Close()
				return url, pid, nil
			}
		}
		select {
		case err := <-exited:
			return "", 0, fmt.Errorf("the AWS endpoint exited at start (%v); see %s", err, filepath.Join(dir, "aws-endpoint.log"))
		case <-ctx.Done():
			_ = stopPid(pid, "serve-aws")
			return "", 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = stopPid(pid, "serve-aws")
	return "", 0, fmt.Errorf("the AWS endpoint did not answer within 30s; see %s", filepath.Join(dir, "aws-endpoint.log"))
}

// pidAlive reports whether pid runs and its command line holds marker, so a
// recycled pid is never taken for ours.
func pidAlive(pid int, marker string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(b), marker) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

// stopPid ends one process we started: SIGTERM, then SIGKILL after 5s.
func stopPid(pid int, marker string) error {
	if !pidAlive(pid, marker) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for k := 0; k < 50; k++ {
		if !pidAlive(pid, marker) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// lock serialises sandbox commands on one folder; a command that has to
// wait says so, since an `up` may hold the folder for minutes.
func lock(ctx context.Context, dir string, out io.Writer) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		if out != nil {
			fmt.Fprintf(out, "Waiting for another noderoll sandbox command on %s to finish (Ctrl-C to give up) ...\n", dir)
		}
		// Polled rather than blocking, so that Ctrl-C still ends the wait.
		for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			select {
			case <-ctx.Done():
				f.Close()
				return nil, fmt.Errorf("waiting for the lock on %s: %w", dir, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// SetCapacity limits how many more instances the sandbox's account launches
// in an AZ, as an EC2 capacity shortage would; a negative count lifts the
// limit. Launches beyond it fail the way AWS reports them, in the group's
// scaling activities (InsufficientInstanceCapacity).
func (s *State) SetCapacity(ctx context.Context, az string, count int) error {
	known := s.Scenario.AZNames()
	if !slices.Contains(known, az) {
		return fmt.Errorf("AZ %q is not one of the sandbox's (%s)", az, strings.Join(known, ", "))
	}
	if err := s.admin(ctx, "/_sim/capacity", map[string]any{"az": az, "count": count}); err != nil {
		return fmt.Errorf("setting the capacity of %s: %w", az, err)
	}
	return nil
}

// SetThrottle makes a fraction (0 to 1) of the calls to the sandbox's AWS
// APIs answer as a throttled account's do (Throttling,
// RequestLimitExceeded, ThrottlingException); 0 lifts it.
func (s *State) SetThrottle(ctx context.Context, rate float64) error {
	if rate < 0 || rate > 1 {
		return fmt.Errorf("throttle rate %v: want a fraction from 0 to 1", rate)
	}
	if err := s.admin(ctx, "/_sim/throttle", map[string]any{"rate": rate}); err != nil {
		return fmt.Errorf("setting the throttling: %w", err)
	}
	return nil
}

// BadBoots makes the next count instances the sandbox's account launches
// run without their kubelet ever joining the cluster; 0 ends it.
func (s *State) BadBoots(ctx context.Context, count int) error {
	if count < 0 {
		return fmt.Errorf("bad boots %d: want 0 or more", count)
	}
	if err := s.admin(ctx, "/_sim/bad-boots", map[string]any{"count": count}); err != nil {
		return fmt.Errorf("arming bad boots: %w", err)
	}
	return nil
}

// KillInstance ends a running instance of the sandbox's account as a
// hardware failure would: its group replaces it, its node goes with it.
func (s *State) KillInstance(ctx context.Context, id string) error {
	if err := s.admin(ctx, "/_sim/kill-instance", map[string]any{"instanceId": id}); err != nil {
		return fmt.Errorf("killing instance %s: %w", id, err)
	}
	return nil
}

// SlowScaling makes every launch and termination of the sandbox's account
// take d longer, its scaling activity in progress meanwhile; 0 ends it.
func (s *State) SlowScaling(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("slow scaling %s: want 0 or more", d)
	}
	if err := s.admin(ctx, "/_sim/slow-scaling", map[string]any{"seconds": d.Seconds()}); err != nil {
		return fmt.Errorf("setting slow scaling: %w", err)
	}
	return nil
}

// SetQuota sets one of the account's EC2 vCPU quotas (a Service Quotas
// code, e.g. L-1216C47A); launches past it fail as EC2's do.
func (s *State) SetQuota(ctx context.Context, code string, vcpus float64) error {
	if err := s.admin(ctx, "/_sim/quota", map[string]any{"code": code, "value": vcpus}); err != nil {
		return fmt.Errorf("setting quota %s: %w", code, err)
	}
	return nil
}

// FailCall arms a fault: the next f.Count calls of an action answer with an
// error (or late, or both; with After, once the call took).
func (s *State) FailCall(ctx context.Context, f awssim.Fault) error {
	if err := s.admin(ctx, "/_sim/faults", f); err != nil {
		return fmt.Errorf("arming a fault on %s %s: %w", f.Service, f.Action, err)
	}
	return nil
}

// Calls returns the AWS calls the sandbox's endpoint received, oldest
// first, as its own CloudTrail logs them.
func (s *State) Calls(ctx context.Context) ([]awssim.Call, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.AWSEndpoint+"/_sim/calls", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the sandbox's AWS endpoint: %w", err)
	}
	defer resp.Body.Close()
	var calls []awssim.Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		return nil, fmt.Errorf("reading the endpoint's calls: %w", err)
	}
	return calls, nil
}

// admin posts to the endpoint's own control surface.
func (s *State) admin(ctx context.Context, path string, v any) error {
	return s.adminAnswered(ctx, path, v, nil)
}

// adminAnswered is admin for a change that answers: its JSON into out.
func (s *State) adminAnswered(ctx context.Context, path string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.AWSEndpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the sandbox's AWS endpoint: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && out != nil:
		return json.NewDecoder(resp.Body).Decode(out)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		// The sandbox refused the change and says why, in its own words.
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return errors.New(strings.TrimSpace(string(msg)))
	case resp.StatusCode != http.StatusNoContent:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// PublishRelease has the sandbox's account publish a new EKS AMI release
// of a Kubernetes minor, dated date (YYYYMMDD): see awssim.PublishRelease.
func (s *State) PublishRelease(ctx context.Context, minor, date string) (awssim.Release, error) {
	var r awssim.Release
	if err := s.adminAnswered(ctx, "/_sim/releases", map[string]string{"minor": minor, "date": date}, &r); err != nil {
		return r, fmt.Errorf("publishing a release: %w", err)
	}
	return r, nil
}
