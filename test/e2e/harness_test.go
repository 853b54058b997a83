// Package e2e runs noderoll end to end on the local sandbox: a real control
// plane and the local AWS endpoint, driven through the noderoll binary as a
// user would, and checked through the Kubernetes API and the AWS SDK.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/internal/sandbox"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// harness holds what every test shares: the noderoll binary built once.
type harness struct {
	once   sync.Once
	binary string
	err    error
}

var shared harness

// sandboxSeq keeps the names of sandboxes started at once apart.
var sandboxSeq atomic.Int64

// noderollBinary builds cmd/noderoll once per test run, and the sandbox's
// control plane binaries when they are missing.
func noderollBinary(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "noderoll-e2e-bin-")
		if err != nil {
			shared.err = err
			return
		}
		shared.binary = filepath.Join(dir, "noderoll")
		cmd := exec.Command("go", "build", "-o", shared.binary, "../../cmd/noderoll")
		// The build users install (README): pure Go, a third of a cgo
		// build's size.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shared.err = fmt.Errorf("building noderoll: %v\n%s", err, out)
			return
		}
		home, checkout := sandbox.Home()
		tc := sandbox.NewToolchain(home, sandbox.ToolsModuleDir(checkout))
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		shared.err = tc.Ensure(ctx, os.Stderr)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.binary
}

// Sandbox is one running sandbox of a test, with clients onto it.
type Sandbox struct {
	t     *testing.T
	Dir   string
	State *sandbox.State
	Kube  kubernetes.Interface
	ASG   *autoscaling.Client
	EC2   *ec2.Client
	SSM   *ssm.Client
	EKS   *eks.Client
	env   []string
}

// fastDelays keep the sandbox realistic in shape but quick.
var fastDelays = []string{"--boot-delay=2s", "--node-ready-delay=1s", "--shutdown-delay=1s", "--pod-start-delay=1s", "--pod-stop-delay=1s"}

// StartSandbox brings a sandbox up through `noderoll sandbox up` with the
// given extra flags, and brings it down when the test ends, checking that no
// process it started is left.
func StartSandbox(t *testing.T, flags ...string) *Sandbox {
	t.Helper()
	bin := noderollBinary(t)
	dir := t.TempDir()
	name := fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano()%1e9, sandboxSeq.Add(1))
	s := &Sandbox{t: t, Dir: dir}
	args := append([]string{"sandbox", "up", "--dir", dir, "--name", name}, fastDelays...)
	res := s.run(nil, append(args, flags...)...)
	if res.Code != 0 {
		t.Fatalf("sandbox up failed (%d):\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	st, err := sandbox.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.State = st
	t.Cleanup(func() { s.stop(bin, name) })
	if s.Kube, err = st.KubeClient(); err != nil {
		t.Fatal(err)
	}
	for _, kv := range st.Env() {
		s.env = append(s.env, kv[0]+"="+kv[1])
	}
	cfg := aws.Config{
		// As many attempts as noderoll's own clients make: on a loaded
		// machine a test's read of the endpoint once failed three times
		// on a closed connection (TestSurgeKeepsItsBudgetsThroughAKill).
		RetryMaxAttempts: 8,
		Region:           st.Region,
		Credentials:      credentials.NewStaticCredentialsProvider(sandbox.AccessKeyID, sandbox.SecretAccessKey, ""),
		BaseEndpoint:     aws.String(st.AWSEndpoint),
	}
	s.ASG, s.EC2, s.SSM, s.EKS = autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg), eks.NewFromConfig(cfg)
	return s
}

func (s *Sandbox) stop(bin, name string) {
	pids := s.State.Processes()
	res := s.run(nil, "sandbox", "down", "--dir", s.Dir, "--name", name)
	if res.Code != 0 {
		s.t.Errorf("sandbox down failed: %s", res.Stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for comp, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			s.t.Errorf("sandbox down left %s (pid %d) running", comp, pid)
		}
	}
}

// alive reports a live, non-zombie process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// Result is how a noderoll run ended.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// LastLine is the last non-empty line of stderr: the one-line cause.
func (r Result) LastLine() string {
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	return lines[len(lines)-1]
}

// Noderoll runs the noderoll binary with the sandbox's environment, as after
// `eval "$(noderoll sandbox env)"`.
func (s *Sandbox) Noderoll(args ...string) Result {
	s.t.Helper()
	return s.run(s.env, args...)
}

func (s *Sandbox) run(env []string, args ...string) Result {
	return runBinary(s.t, noderollBinary(s.t), "", append(cleanEnv(), env...), args...)
}

// runBinary runs a noderoll binary in a folder ("" for the test's own) with
// exactly the environment given.
func runBinary(t *testing.T, bin, dir string, env []string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running noderoll %v: %v", args, err)
	}
	where := ""
	if dir != "" {
		where = "(in " + dir + ") "
	}
	t.Logf("%s%s %s -> exit %d\n%s%s", where, filepath.Base(bin), strings.Join(args, " "), code, tail(out.String(), 60), tail(errb.String(), 20))
	noStackTrace(t, args, errb.String())
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// RunningPods lists the pods of a label selector in a namespace that run
// and are not being deleted, as "name@node", sorted: compared before and
// after a run, it shows whether any moved.
func (s *Sandbox) RunningPods(namespace, selector string) []string {
	s.t.Helper()
	pods, err := s.Kube.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p.Name+"@"+p.Spec.NodeName)
		}
	}
	slices.Sort(out)
	return out
}

// recordSelector selects the upgrade records among noderoll's ConfigMaps
// (each run's timeline sits beside its record).
const recordSelector = "app.kubernetes.io/managed-by=noderoll,app.kubernetes.io/component!=timeline"

// cleanEnv is the test's environment without any real AWS or kube settings.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "NODEROLL_SANDBOX=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Group describes the scenario's Auto Scaling group.
func (s *Sandbox) Group() astypes.AutoScalingGroup {
	s.t.Helper()
	out, err := s.ASG.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(out.AutoScalingGroups) != 1 {
		s.t.Fatalf("want 1 Auto Scaling group, got %d", len(out.AutoScalingGroups))
	}
	return out.AutoScalingGroups[0]
}

// RecommendedAMI asks SSM for the recommended AL2023 AMI of a minor.
func (s *Sandbox) RecommendedAMI(minor string) string {
	s.t.Helper()
	out, err := s.SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/" + minor + "/amazon-linux-2023/x86_64/standard/recommended/image_id")})
	if err != nil {
		s.t.Fatal(err)
	}
	return aws.ToString(out.Parameter.Value)
}

// Activities lists the group's scaling activities, oldest first.
func (s *Sandbox) Activities() []astypes.Activity {
	s.t.Helper()
	g := s.Group()
	out, err := s.ASG.DescribeScalingActivities(context.Background(), &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: g.AutoScalingGroupName})
	if err != nil {
		s.t.Fatal(err)
	}
	acts := out.Activities
	for i, j := 0, len(acts)-1; i < j; i, j = i+1, j-1 {
		acts[i], acts[j] = acts[j], acts[i]
	}
	return acts
}

// Capacity runs `noderoll sandbox capacity` on the sandbox: how many more
// instances launch in an AZ ("all" for every one), or "unlimited".
func (s *Sandbox) Capacity(az, count string) {
	s.t.Helper()
	if r := s.Noderoll("sandbox", "capacity", "--dir", s.Dir, az, count); r.Code != 0 {
		s.t.Fatalf("sandbox capacity %s %s: %s", az, count, r.LastLine())
	}
}

// Started is a noderoll run in the background, to be killed mid-way.
type Started struct {
	t        *testing.T
	cmd      *exec.Cmd
	out, err lockedBuffer
}

// lockedBuffer is read by the test while the process writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// noStackTrace fails a test whose noderoll run printed what no user can act
// on: a goroutine dump, controller-runtime's warning that nobody set its
// logger (printed 30 s into a process, with a dump), or a debug line not
// asked for with -v.
func noStackTrace(t *testing.T, args []string, stderr string) {
	t.Helper()
	bads := []string{"log.SetLogger(", "goroutine ", "panic:"}
	if !slices.Contains(args, "-v") && !slices.Contains(args, "--verbose") {
		bads = append(bads, "level=DEBUG") // a debug line without -v
	}
	for _, bad := range bads {
		if strings.Contains(stderr, bad) {
			t.Errorf("noderoll %s printed %q on stderr, which a user can do nothing with:\n%s", strings.Join(args, " "), bad, tail(stderr, 40))
		}
	}
}

// Start runs noderoll in the background with the sandbox's environment; the
// test ends it with Kill, by its pid (the cleanup kills it if the test did not).
func (s *Sandbox) Start(args ...string) *Started {
	s.t.Helper()
	return s.StartWith(nil, args...)
}

// StartWith is Start with more environment (a later KUBECONFIG wins).
func (s *Sandbox) StartWith(env []string, args ...string) *Started {
	s.t.Helper()
	st := &Started{t: s.t, cmd: exec.Command(noderollBinary(s.t), args...)}
	st.cmd.Env = append(append(cleanEnv(), s.env...), env...)
	st.cmd.Stdout, st.cmd.Stderr = &st.out, &st.err
	if err := st.cmd.Start(); err != nil {
		s.t.Fatalf("starting noderoll %v: %v", args, err)
	}
	s.t.Cleanup(func() {
		if st.cmd.ProcessState == nil {
			_ = st.cmd.Process.Kill()
			_ = st.cmd.Wait()
		}
	})
	return st
}

// Kill ends the run with SIGKILL, as a crash or an OOM kill would, and
// returns what it had printed.
func (st *Started) Kill(t *testing.T) string {
	t.Helper()
	if err := st.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing pid %d: %v", st.cmd.Process.Pid, err)
	}
	_ = st.cmd.Wait()
	return st.out.String()
}

// Calls returns the calls of an action the sandbox's AWS endpoint received,
// oldest first: its own CloudTrail, which counts what noderoll really did.
func (s *Sandbox) Calls(action string) []awssim.Call {
	s.t.Helper()
	resp, err := http.Get(s.State.AWSEndpoint + "/_sim/calls?action=" + action)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []awssim.Call
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// TerminateCalls counts the TerminateInstanceInAutoScalingGroup calls the
// endpoint received per instance, refused ones included.
func (s *Sandbox) TerminateCalls() map[string]int {
	s.t.Helper()
	out := map[string]int{}
	for _, c := range s.Calls("TerminateInstanceInAutoScalingGroup") {
		out[c.Params["InstanceId"]]++
	}
	return out
}

// Fault arms a fault in the sandbox's AWS endpoint.
func (s *Sandbox) Fault(f awssim.Fault) {
	s.t.Helper()
	b, _ := json.Marshal(f)
	resp, err := http.Post(s.State.AWSEndpoint+"/_sim/faults", "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		s.t.Fatalf("arming fault %+v: %s", f, resp.Status)
	}
}

// terminatedOnce checks, from the endpoint's own count, that every instance
// the group had before got exactly one terminate call, and returns their IDs.
func terminatedOnce(t *testing.T, before astypes.AutoScalingGroup, terminations map[string]int) []string {
	t.Helper()
	var ids []string
	for _, i := range before.Instances {
		id := aws.ToString(i.InstanceId)
		ids = append(ids, id)
		if terminations[id] != 1 {
			t.Errorf("old instance %s: %d terminate calls, want exactly one", id, terminations[id])
		}
	}
	return ids
}

// Wait waits for the run to end and returns its exit code.
func (st *Started) Wait() int {
	_ = st.cmd.Wait()
	noStackTrace(st.t, st.cmd.Args[1:], st.err.String())
	return st.cmd.ProcessState.ExitCode()
}

// AWSCLI runs Debian's AWS CLI (v2; the README's test command installs it)
// against the sandbox's endpoint, as a user of `sandbox env` would, and
// decodes its JSON answer into out (nil: not decoded).
func (s *Sandbox) AWSCLI(out any, args ...string) {
	s.t.Helper()
	cli := "/usr/bin/aws"
	if _, err := os.Stat(cli); err != nil {
		s.t.Fatal("the AWS CLI is not installed at /usr/bin/aws: run `apt-get update && apt-get install -y awscli`, or the README's test command (bash test/run.sh), which does")
	}
	// --endpoint-url, not AWS_ENDPOINT_URL alone: Debian's CLI (2.9) reads
	// no endpoint from the environment.
	cmd := exec.Command(cli, append([]string{"--endpoint-url", s.State.AWSEndpoint, "--output", "json"}, args...)...)
	cmd.Env = append(cleanEnv(), s.env...)
	cmd.Env = append(cmd.Env, "AWS_PAGER=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("aws %v: %v\n%s", args, err, stderr.String())
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("aws %v: %v\n%s", args, err, b)
		}
	}
}

// eksRecordTrue checks EKS's record of the seed's managed group after
// noderoll's own upgrade: the launch template version EKS records is the
// one the Auto Scaling group launches, with no health issue, and the
// group's update strategy is the one it had (DEFAULT). It returns that
// version.
func eksRecordTrue(t *testing.T, s *Sandbox) string {
	t.Helper()
	ng, err := s.EKS.DescribeNodegroup(context.Background(), &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil {
		t.Fatal(err)
	}
	launched := aws.ToString(s.Group().LaunchTemplate.Version)
	var issues []string
	if ng.Nodegroup.Health != nil {
		for _, i := range ng.Nodegroup.Health.Issues {
			issues = append(issues, string(i.Code)+": "+aws.ToString(i.Message))
		}
	}
	recorded := aws.ToString(ng.Nodegroup.LaunchTemplate.Version)
	strategy := ""
	if c := ng.Nodegroup.UpdateConfig; c != nil {
		strategy = string(c.UpdateStrategy)
	}
	if recorded != launched || len(issues) > 0 || strategy != "DEFAULT" || ng.Nodegroup.Status != "ACTIVE" {
		t.Fatalf("EKS records launch template version %s, the group launches %s; health issues %q; update strategy %q; status %s: want the same version, no issue, DEFAULT, ACTIVE",
			recorded, launched, issues, strategy, ng.Nodegroup.Status)
	}
	return launched
}

// onlyNoderollTerminated checks that every instance the group terminated,
// by its scaling activities, is one noderoll asked to terminate (the
// endpoint's log of calls), and the other way round: EKS's update that
// records the launch template version replaced no node. It returns how
// many there were.
func onlyNoderollTerminated(t *testing.T, s *Sandbox) int {
	t.Helper()
	asked := s.TerminateCalls()
	done := map[string]bool{}
	for _, a := range s.Activities() {
		if id, ok := strings.CutPrefix(aws.ToString(a.Description), "Terminating EC2 instance: "); ok {
			done[id] = true
			if asked[id] == 0 {
				t.Errorf("instance %s was terminated by no call of noderoll's: %s", id, aws.ToString(a.Cause))
			}
		}
	}
	for id := range asked {
		if !done[id] {
			t.Errorf("noderoll asked to terminate %s, which the group never terminated", id)
		}
	}
	return len(done)
}

// terminatedInstances counts the instances the group has terminated, by
// its scaling activities, whoever asked.
func terminatedInstances(s *Sandbox) int {
	n := 0
	for _, a := range s.Activities() {
		if strings.HasPrefix(aws.ToString(a.Description), "Terminating EC2 instance: ") {
			n++
		}
	}
	return n
}
