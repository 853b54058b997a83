package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/permissions"
	"github.com/noderoll/noderoll/internal/sandbox"
)

// controller-runtime's clients log through its root logger, which asks to
// be set (else it prints a stack at the first client); the tests' clients
// have nothing to say.
func init() { ctrllog.SetLogger(logr.Discard()) }

// crdPath is the CRD the chart installs, generated from api/v1alpha1.
const crdPath = "../../charts/noderoll/crds/noderoll.io_nodegroupupgrades.yaml"

// Client is a client for NodeGroupUpgrades of a sandbox whose CRD is
// installed (sandbox up --controllers).
func (s *Sandbox) Client() client.Client {
	s.t.Helper()
	cfg, err := s.State.RestConfig()
	if err != nil {
		s.t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		s.t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// InstallCRD applies the chart's CRD to the sandbox's API server, waits
// until it serves it, and returns a client for NodeGroupUpgrades.
func (s *Sandbox) InstallCRD() client.Client {
	s.t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(crdPath)
	if err != nil {
		s.t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		s.t.Fatal(err)
	}
	cfg, err := s.State.RestConfig()
	if err != nil {
		s.t.Fatal(err)
	}
	ext, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		s.t.Fatalf("creating the CRD: %v", err)
	}
	eventually(s.t, time.Minute, "the CRD Established", func() (bool, string) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", got.Status.Conditions)
	})
	c := s.Client()
	// Discovery may lag the Established condition by a moment.
	eventually(s.t, 30*time.Second, "NodeGroupUpgrades listed", func() (bool, string) {
		err := c.List(ctx, &v1alpha1.NodeGroupUpgradeList{})
		return err == nil, fmt.Sprint(err)
	})
	return c
}

// seedResource is the seed's upgrade declared as a resource, quick on the
// sandbox.
func seedResource(name string) *v1alpha1.NodeGroupUpgrade {
	return &v1alpha1.NodeGroupUpgrade{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.NodeGroupUpgradeSpec{
			Cluster: "eksworkshop-eksctl", NodeGroup: "nodegroup",
			Target:          v1alpha1.Target{KubernetesVersion: "1.37"},
			UpgradeSettings: v1alpha1.UpgradeSettings{Strategy: v1alpha1.Strategy{Type: "Surge"}, PostCordonWait: &metav1.Duration{Duration: 2 * time.Second}},
		},
	}
}

// The API server itself refuses bad specs, with the CRD's CEL messages: a
// kubectl apply of a bad resource fails before any controller sees it.
func TestBadSpecsAreRefusedByTheAPIServer(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	s := StartSandbox(t)
	c := s.InstallCRD()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.NodeGroupUpgrade)
		want   string
	}{
		{"two targets", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Target.AMI = "ami-0123456789abcdef0" }, "set exactly one of kubernetesVersion, releaseVersion, launchTemplateVersion or ami"},
		{"no target", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Target = v1alpha1.Target{} }, "set exactly one of"},
		{"family without version", func(u *v1alpha1.NodeGroupUpgrade) {
			u.Spec.Target = v1alpha1.Target{ReleaseVersion: "1.37.2-20261115", AMIFamily: "bottlerocket"}
		}, "amiFamily goes with kubernetesVersion"},
		{"batch with surge", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Strategy.BatchSize = 2 }, "batchSize, batchSoak and soak are for type BlueGreen"},
		{"nothing can be replaced", func(u *v1alpha1.NodeGroupUpgrade) {
			u.Spec.Strategy.MaxSurge, u.Spec.Strategy.MaxUnavailable = ptr.To(intstr.FromInt32(0)), ptr.To(intstr.FromString("0%"))
		}, "maxSurge and maxUnavailable cannot both be 0"},
		{"a bad percentage", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Strategy.MaxSurge = ptr.To(intstr.FromString("lots")) }, "spec.strategy.maxSurge: a count of 0 or more, or a percentage from 0% to 100%"},
		{"a surge over 100%", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Strategy.MaxSurge = ptr.To(intstr.FromString("250%")) }, "spec.strategy.maxSurge: a count of 0 or more, or a percentage from 0% to 100%"},
		{"unavailable over 100%", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Strategy.MaxUnavailable = ptr.To(intstr.FromString("101%")) }, "spec.strategy.maxUnavailable: a count of 0 or more, or a percentage from 0% to 100%"},
		{"a negative post-cordon wait", func(u *v1alpha1.NodeGroupUpgrade) {
			u.Spec.PostCordonWait = &metav1.Duration{Duration: -5 * time.Second}
		}, "spec.postCordonWait: a duration of 0 or more"},
		{"a negative eviction timeout", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.EvictionTimeout = &metav1.Duration{Duration: -time.Minute} }, "spec.evictionTimeout: a duration of 0 or more"},
		{"a negative node-ready timeout", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.NodeReadyTimeout = &metav1.Duration{Duration: -time.Minute} }, "spec.nodeReadyTimeout: a duration of 0 or more"},
		{"a negative soak", func(u *v1alpha1.NodeGroupUpgrade) {
			u.Spec.Strategy = v1alpha1.Strategy{Type: "BlueGreen", Soak: &metav1.Duration{Duration: -time.Hour}}
		}, "spec.strategy.soak: a duration of 0 or more"},
		{"a negative batch soak", func(u *v1alpha1.NodeGroupUpgrade) {
			u.Spec.Strategy = v1alpha1.Strategy{Type: "BlueGreen", BatchSoak: &metav1.Duration{Duration: -time.Second}}
		}, "spec.strategy.batchSoak: a duration of 0 or more"},
		{"an unknown strategy", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Strategy.Type = "Fast" }, `Unsupported value: "Fast"`},
		{"rollback of surge", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Action = "Rollback" }, "Rollback goes back from a BlueGreen upgrade"},
		{"a bad version", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Target.KubernetesVersion = "latest" }, "spec.target.kubernetesVersion"},
	} {
		u := seedResource("bad-" + strings.ReplaceAll(tc.name, " ", "-"))
		tc.change(u)
		err := c.Create(ctx, u)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: created with %v; want refused saying %q", tc.name, err, tc.want)
		}
	}
	// Changes the rules forbid once the resource exists.
	u := seedResource("good")
	u.Spec.Paused = true // no controller runs here; paused says so
	if err := c.Create(ctx, u); err != nil {
		t.Fatalf("a good spec refused: %v", err)
	}
	if u.Spec.Mode != "Noderoll" || u.Spec.Strategy.Type != "Surge" {
		t.Errorf("defaults: mode %q strategy %q, want Noderoll and Surge", u.Spec.Mode, u.Spec.Strategy.Type)
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.NodeGroupUpgrade)
		want   string
	}{
		{"another target", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.Target.KubernetesVersion = "1.38" }, "spec.target cannot change"},
		{"another group", func(u *v1alpha1.NodeGroupUpgrade) { u.Spec.NodeGroup = "other" }, "spec.cluster and spec.nodeGroup cannot change"},
	} {
		v := u.DeepCopy()
		tc.change(v)
		err := c.Update(ctx, v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: updated with %v; want refused saying %q", tc.name, err, tc.want)
		}
	}
	v := u.DeepCopy()
	v.Spec.Paused, v.Spec.EvictionTimeout = false, &metav1.Duration{Duration: 90 * time.Second}
	v.Spec.PostCordonWait, v.Spec.Strategy.MaxSurge = &metav1.Duration{}, ptr.To(intstr.FromString("100%"))
	if err := c.Update(ctx, v); err != nil {
		t.Errorf("unpausing, a timeout of 1m30s, no post-cordon wait and a surge of 100%% refused: %v", err)
	}
}

// The seed's upgrade declared as a resource, run by two controller
// replicas: the leader is killed with SIGKILL mid-upgrade, the other takes
// over and finishes it from the record. Every old instance is terminated
// exactly once (the endpoint's own count) and no budget is breached (an
// independent watch of the budgets).
func TestTheControllerFinishesADeclaredUpgradeAfterItsLeaderDies(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	// The sandbox installs the chart's CRD and RBAC and runs two replicas,
	// each acting only as the chart's ServiceAccount through a token.
	s := StartSandbox(t, "--controllers=2")
	c := s.Client()
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	if len(s.State.Controllers) != 2 {
		t.Fatalf("the sandbox runs %d controllers, want 2", len(s.State.Controllers))
	}
	logOf := func(k int) string {
		b, _ := os.ReadFile(s.State.Controllers[k].Log)
		return string(b)
	}
	leads := func(k int) bool { return strings.Contains(logOf(k), "leading: this replica runs") }
	leader, other := -1, -1
	eventually(t, time.Minute, "a leader elected", func() (bool, string) {
		switch {
		case leads(0):
			leader, other = 0, 1
		case leads(1):
			leader, other = 1, 0
		}
		return leader >= 0, tail(logOf(0), 3) + tail(logOf(1), 3)
	})
	kubeconfig := s.State.Controllers[0].Kubeconfig
	u := seedResource("nodegroup-to-1-37")
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Minute, "an old instance terminated", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= 1, tail(logOf(leader), 5)
	})
	var mid v1alpha1.NodeGroupUpgrade
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), &mid); err != nil {
		t.Fatal(err)
	}
	if mid.Status.Phase != v1alpha1.PhaseRunning || mid.Status.Target == nil || mid.Status.TotalNodes != 3 {
		t.Errorf("mid-run status: phase %s, target %+v, total %d; want Running, the resolved AMI, 3", mid.Status.Phase, mid.Status.Target, mid.Status.TotalNodes)
	}
	t.Logf("killing the leader mid-upgrade (status %s %s); it had logged:\n%s", mid.Status.Phase, mid.Status.Step, tail(logOf(leader), 8))
	if err := syscall.Kill(s.State.Controllers[leader].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	var done v1alpha1.NodeGroupUpgrade
	eventually(t, 6*time.Minute, "the upgrade Complete", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), &done); err != nil {
			return false, err.Error()
		}
		if done.Status.Phase == v1alpha1.PhaseFailed {
			t.Fatalf("the upgrade failed: %s", done.Status.Message)
		}
		return done.Status.Phase == v1alpha1.PhaseComplete, fmt.Sprintf("%s %s %s\n%s", done.Status.Phase, done.Status.Step, done.Status.Message, tail(logOf(other), 5))
	})
	if !leads(other) {
		t.Errorf("the second replica never led; it logged:\n%s", tail(logOf(other), 20))
	}
	terminatedOnce(t, before, s.TerminateCalls())
	after := s.Group()
	want := s.RecommendedAMI("1.37")
	if len(after.Instances) != 3 {
		t.Errorf("%d instances after, want 3", len(after.Instances))
	}
	allOnTarget(t, s, 3)
	if done.Status.UpToDateNodes != 3 || done.Status.Target == nil || done.Status.Target.ImageID != want || done.Status.CompletionTime == nil {
		t.Errorf("final status: up to date %d, target %+v, completion %v; want 3 on %s", done.Status.UpToDateNodes, done.Status.Target, done.Status.CompletionTime, want)
	}
	if v, _, checks := budgets.Stop(); len(v) > 0 || checks == 0 {
		t.Errorf("budgets breached (%d checks): %v", checks, v)
	}
	for k := range s.State.Controllers {
		if strings.Contains(logOf(k), "forbidden") {
			t.Errorf("replica %d was refused something on the way:\n%s", k, grepLines(logOf(k), "forbidden"))
		}
	}
	// What the controller's roles leave out is refused by the API server.
	least := leastClient(t, kubeconfig)
	if _, err := least.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets as the controller: %v, want 403 Forbidden", err)
	}
	if _, err := least.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("creating a Deployment as the controller: %v, want 403 Forbidden", err)
	}
	deletePodForbidden(t, least, s.Kube)

	// The sandbox runs on without the killed replica, says so, and up
	// starts it again (a new token, the same pod name).
	gone := fmt.Sprintf("controller-%d=gone", leader)
	if r := s.Noderoll("sandbox", "status", "--dir", s.Dir); r.Code != 0 || !strings.Contains(r.Stdout, "Sandbox running") || !strings.Contains(r.Stdout, gone) {
		t.Errorf("sandbox status with a replica killed (%d), want it running and %q:\n%s%s", r.Code, gone, r.Stdout, r.Stderr)
	}
	logged := len(logOf(leader))
	r := s.Noderoll("sandbox", "up", "--dir", s.Dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, fmt.Sprintf("controller-%d started again", leader)) {
		t.Fatalf("sandbox up with a replica killed (%d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	st, err := sandbox.Load(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	s.State = st // down's check covers the new process
	if !alive(st.Controllers[leader].Pid) || len(st.GoneControllers()) != 0 {
		t.Errorf("after up, replica %d (pid %d) alive %v; gone %v", leader, st.Controllers[leader].Pid, alive(st.Controllers[leader].Pid), st.GoneControllers())
	}
	eventually(t, time.Minute, "the restarted replica running", func() (bool, string) {
		since := logOf(leader)[logged:]
		return strings.Contains(since, "controller starting"), tail(since, 5)
	})
	if r := s.Noderoll("sandbox", "up", "--dir", s.Dir); r.Code != 0 || !strings.Contains(r.Stdout, "nothing changed.") {
		t.Errorf("sandbox up again (%d), want nothing changed:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// ControllerKubeconfig writes a kubeconfig acting as a ServiceAccount bound
// to the controller's roles alone (what the Helm chart grants), with a
// token from the TokenRequest API.
func (s *Sandbox) ControllerKubeconfig() string {
	s.t.Helper()
	ctx := context.Background()
	cr, r := permissions.ControllerRoles("noderoll-controller", false)
	if _, err := s.Kube.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.Kube.RbacV1().Roles(r.Namespace).Create(ctx, r, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.Dir, "controller.kubeconfig")
	id := sandbox.Identity{Name: "noderoll-controller", PriorityLevel: "workload-high", ClusterRole: cr.Name, Role: r.Name}
	if err := id.Kubeconfig(ctx, s.Kube, s.State.Kubeconfig, path); err != nil {
		s.t.Fatal(err)
	}
	return path
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A declared upgrade deleted mid-run stops between actions and leaves its
// group resumable; another resource with the same target resumes it, is
// paused mid-run (nothing holds the group's lock then) and unpaused, and
// finishes: every old instance terminated once across the two.
func TestADeclaredUpgradeDeletedOrPausedMidRunGoesOnFromItsRecord(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	s := StartSandbox(t)
	c := s.InstallCRD()
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	metrics := freeAddr(t)
	ctl := s.StartWith([]string{"KUBECONFIG=" + s.ControllerKubeconfig()}, "controller", "--metrics-bind-address="+metrics, "--health-probe-bind-address=0")
	terminated := func(n int) {
		t.Helper()
		eventually(t, 4*time.Minute, fmt.Sprintf("%d old instances terminated", n), func() (bool, string) {
			return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= n, tail(ctl.err.String(), 5)
		})
	}
	unlocked := func(what string) {
		t.Helper()
		leases, err := s.Kube.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=noderoll"})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leases.Items {
			if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "" {
				t.Errorf("%s: lease %s still held by %s", what, l.Name, h)
			}
		}
	}
	first := seedResource("first")
	first.Spec.Strategy.Type = "EKS" // one node at a time: room to stop between
	if err := c.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	terminated(1)
	// The controller keeps the record in the resource's status, not in the
	// CLI's ConfigMap.
	if rec := statusRecord(t, c, first); rec == "" || rec == "Completed" {
		t.Errorf("mid-run the resource's status.record is at phase %q, want an unfinished upgrade's", rec)
	}
	if rec := recordPhase(t, s); rec != "" {
		t.Errorf("mid-run a ConfigMap record at phase %q: the controller keeps its record in the status", rec)
	}
	if err := c.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the deleted resource gone (its finalizer removed once its worker stopped)", func() (bool, string) {
		err := c.Get(ctx, client.ObjectKeyFromObject(first), &v1alpha1.NodeGroupUpgrade{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	unlocked("after the delete")
	rec := recordPhase(t, s)
	if rec == "" || rec == "Completed" {
		t.Fatalf("after the delete the group's record is %q, want an unfinished upgrade to resume", rec)
	}
	stopped := len(s.Calls("TerminateInstanceInAutoScalingGroup"))

	second := seedResource("second")
	second.Spec.Strategy.Type = "EKS"
	if err := c.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	terminated(stopped + 1)
	// The second took the handed-back record: the ConfigMap is gone.
	if rec := recordPhase(t, s); rec != "" {
		t.Errorf("the ConfigMap record (phase %q) is still there once the second resource resumed it", rec)
	}
	if rec := statusRecord(t, c, second); rec == "" || rec == "Completed" {
		t.Errorf("the second resource's status.record is at phase %q, want the resumed upgrade's", rec)
	}
	var u v1alpha1.NodeGroupUpgrade
	if err := c.Get(ctx, client.ObjectKeyFromObject(second), &u); err != nil {
		t.Fatal(err)
	}
	u.Spec.Paused = true
	if err := c.Update(ctx, &u); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "phase Paused", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(second), &u); err != nil {
			return false, err.Error()
		}
		return u.Status.Phase == v1alpha1.PhasePaused, u.Status.Phase
	})
	if !condition(u.Status.Conditions, v1alpha1.ConditionPaused) || condition(u.Status.Conditions, v1alpha1.ConditionProgressing) {
		t.Errorf("paused conditions %+v", u.Status.Conditions)
	}
	unlocked("while paused")
	u.Spec.Paused = false
	if err := c.Update(ctx, &u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Minute, "the upgrade Complete", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(second), &u); err != nil {
			return false, err.Error()
		}
		if u.Status.Phase == v1alpha1.PhaseFailed {
			t.Fatalf("the upgrade failed: %s", u.Status.Message)
		}
		return u.Status.Phase == v1alpha1.PhaseComplete, u.Status.Phase + " " + u.Status.Message
	})
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)
	if !condition(u.Status.Conditions, v1alpha1.ConditionComplete) || u.Status.UpToDateNodes != 3 {
		t.Errorf("final status %+v", u.Status)
	}
	// The metrics endpoint tells the same story: the one upgrade that ended
	// (the deleted one stopped), the instances the second run replaced.
	scraped := scrape(t, "http://"+metrics+"/metrics")
	for _, want := range []string{
		`noderoll_upgrades_ended_total{phase="Complete"} 1`,
		"noderoll_upgrades_running 0",
		`noderoll_upgrade_duration_seconds_count{phase="Complete"} 1`,
		`controller_runtime_reconcile_total{controller="nodegroupupgrade",result="success"}`,
		`noderoll_cloud_api_calls_total{action="TerminateInstanceInAutoScalingGroup",result="ok",service="Auto Scaling"}`,
		`noderoll_step_duration_seconds_count{step="surge"}`,
	} {
		if !strings.Contains(scraped, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(scraped, "noderoll_"))
		}
	}
	if n := metricValue(scraped, "noderoll_nodes_replaced_total"); n < 1 || n > 3 {
		t.Errorf("noderoll_nodes_replaced_total %v, want what the runs replaced after their first look (1 to 3)", n)
	}
	if v, _, checks := budgets.Stop(); len(v) > 0 || checks == 0 {
		t.Errorf("budgets breached (%d checks): %v", checks, v)
	}
}

func condition(cs []metav1.Condition, typ string) bool {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// statusRecord is the phase of the record a resource's status holds (""
// without).
func statusRecord(t *testing.T, c client.Client, u *v1alpha1.NodeGroupUpgrade) string {
	t.Helper()
	var now v1alpha1.NodeGroupUpgrade
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(u), &now); err != nil {
		t.Fatal(err)
	}
	if now.Status.Record == nil {
		return ""
	}
	var r struct{ Phase string }
	if err := json.Unmarshal(now.Status.Record.Data.Raw, &r); err != nil {
		t.Fatalf("status.record of %s: %v", u.Name, err)
	}
	return r.Phase
}

// recordPhase is the phase of the seed group's upgrade record in its
// ConfigMap ("" without).
func recordPhase(t *testing.T, s *Sandbox) string {
	t.Helper()
	cms, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(context.Background(), metav1.ListOptions{LabelSelector: recordSelector})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		var r struct {
			Nodegroup, Phase string
		}
		if err := json.Unmarshal([]byte(cm.Data["record.json"]), &r); err == nil && r.Nodegroup == "nodegroup" {
			return r.Phase
		}
	}
	return ""
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// metricValue is an unlabelled series' value in a scrape (-1: absent).
func metricValue(scraped, name string) float64 {
	for _, l := range strings.Split(scraped, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// An upgrade moves between the CLI and the controller through the record
// they share: a CLI run killed mid-upgrade is resumed by a NodeGroupUpgrade
// of the same target, and the controller killed mid-upgrade is resumed by
// the CLI's rerun. Each old instance is terminated once across all three.
func TestTheCLIAndTheControllerResumeEachOthersUpgrade(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	s := StartSandbox(t)
	c := s.InstallCRD()
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	terminated := func(n int, log func() string) {
		t.Helper()
		eventually(t, 4*time.Minute, fmt.Sprintf("%d old instances terminated", n), func() (bool, string) {
			return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= n, tail(log(), 5)
		})
	}
	// seedUpgrade: the seed's algorithm, one node at a time.
	cli := s.Start(seedUpgrade...)
	terminated(1, cli.out.String)
	cli.Kill(t)

	kubeconfig := s.ControllerKubeconfig()
	ctl := s.StartWith([]string{"KUBECONFIG=" + kubeconfig}, "controller", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	u := seedResource("resume-the-cli")
	u.Spec.Strategy.Type = "EKS"
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	terminated(2, ctl.err.String)
	// The status is written every 2 s: on a loaded machine the second
	// termination can come before the first write.
	eventually(t, 30*time.Second, "the controller's status while resuming the CLI's run: Running, with the CLI's replacement counted", func() (bool, string) {
		var mid v1alpha1.NodeGroupUpgrade
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), &mid); err != nil {
			return false, err.Error()
		}
		return mid.Status.Phase == v1alpha1.PhaseRunning && mid.Status.Replaced >= 1, fmt.Sprintf("phase %s, replaced %d", mid.Status.Phase, mid.Status.Replaced)
	})
	// It took the CLI's record over: into the status, out of the ConfigMap.
	if rec := statusRecord(t, c, u); rec == "" || rec == "Completed" {
		t.Errorf("the resource's status.record is at phase %q, want the resumed upgrade's", rec)
	}
	if rec := recordPhase(t, s); rec != "" {
		t.Errorf("the CLI's ConfigMap record (phase %q) is still there after the controller took it over", rec)
	}
	ctl.Kill(t)

	// At once, the CLI is refused, told how to hand the group over; once
	// the dead controller's lease expired, its rerun resumes.
	if r := s.Noderoll(seedUpgrade...); r.Code == 0 || !strings.Contains(r.LastLine(), "a NodeGroupUpgrade runs it; to take it over set that resource's spec.paused") {
		t.Errorf("the CLI while the controller's lease lasts: exit %d %s", r.Code, r.LastLine())
	}
	eventually(t, time.Minute, "the dead controller's lock expired", func() (bool, string) {
		leases, err := s.Kube.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=noderoll"})
		if err != nil || len(leases.Items) != 1 {
			return false, fmt.Sprint(len(leases.Items), err)
		}
		l := leases.Items[0].Spec
		return l.RenewTime.Add(time.Duration(*l.LeaseDurationSeconds) * time.Second).Before(time.Now()), ptr.Deref(l.HolderIdentity, "")
	})
	r := s.Noderoll(seedUpgrade...)
	if r.Code != 0 {
		t.Fatalf("the CLI's rerun after the controller died: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stderr, 20))
	}
	if !strings.Contains(r.Stdout, "took the upgrade over from NodeGroupUpgrade resume-the-cli") {
		t.Errorf("the CLI did not say whose upgrade it took over:\n%s", tail(r.Stdout, 30))
	}
	// The record is the CLI's now, and the resource says so.
	if rec := recordPhase(t, s); rec != "Completed" {
		t.Errorf("the ConfigMap record after the CLI's run: phase %q, want Completed", rec)
	}
	var after v1alpha1.NodeGroupUpgrade
	if err := c.Get(ctx, client.ObjectKeyFromObject(u), &after); err != nil {
		t.Fatal(err)
	}
	if after.Status.Record != nil || after.Status.Phase != v1alpha1.PhasePending || !strings.Contains(after.Status.Message, "handed over: a noderoll CLI run") {
		t.Errorf("the resource after the CLI took it over: record %v, phase %s, %q", after.Status.Record != nil, after.Status.Phase, after.Status.Message)
	}
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)
	if v, _, checks := budgets.Stop(); len(v) > 0 || checks == 0 {
		t.Errorf("budgets breached (%d checks): %v", checks, v)
	}
}

// `upgrade nodegroup --via-controller` declares the upgrade and follows it
// to its end; a flag the resource cannot carry is refused before anything
// is declared.
func TestUpgradeViaTheController(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t)
	c := s.InstallCRD()
	ctx := context.Background()
	before := s.Group()
	s.StartWith([]string{"KUBECONFIG=" + s.ControllerKubeconfig()}, "controller", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	reportFile := filepath.Join(t.TempDir(), "upgrade.html")
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--via-controller", "--report=" + reportFile}

	if r := s.Noderoll(append(slices.Clone(upgrade), "--seed=3")...); r.Code == 0 || !strings.Contains(r.LastLine(), "--seed has no field in a NodeGroupUpgrade") {
		t.Errorf("--seed with --via-controller: exit %d %s", r.Code, r.LastLine())
	}
	var list v1alpha1.NodeGroupUpgradeList
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 0 {
		t.Fatalf("after the refusal: %d resources (%v), want none", len(list.Items), err)
	}

	r := s.Noderoll(upgrade...)
	if r.Code != 0 {
		t.Fatalf("--via-controller: exit %d %s\n%s", r.Code, r.LastLine(), tail(r.Stdout, 20))
	}
	for _, want := range []string{"declared NodeGroupUpgrade nodegroup-", "Complete, 3 of 3 nodes up to date, 3 replaced"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the follower did not say %q:\n%s", want, tail(r.Stdout, 30))
		}
	}
	if err := c.List(ctx, &list); err != nil || len(list.Items) != 1 || list.Items[0].Status.Phase != v1alpha1.PhaseComplete || list.Items[0].Spec.Strategy.Type != "Surge" {
		t.Fatalf("resources after the run: %+v (%v); want one, Complete, Surge", list.Items, err)
	}
	// The resource's Events tell the group's story (the recorder sends them
	// a moment later).
	eventually(t, 30*time.Second, "the resource's Events", func() (bool, string) {
		evs, err := s.Kube.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + list.Items[0].Name})
		if err != nil {
			return false, err.Error()
		}
		reasons := map[string]bool{}
		for _, e := range evs.Items {
			reasons[e.Reason] = true
		}
		return reasons["Started"] && reasons["LaunchTemplate"] && reasons["Surge"] && reasons["Complete"], fmt.Sprint(reasons)
	})
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)

	// The controller, with its chart's permissions only, kept the run's
	// timeline: the follower's report, and watch and report by the
	// resource's name, read it.
	page, err := os.ReadFile(reportFile)
	if err != nil || strings.Count(string(page), `<g class="node" data-node=`) != 6 || !strings.Contains(string(page), `id="phase">Completed`) {
		t.Errorf("upgrade --via-controller --report: %v; want a page of the completed run with 6 nodes", err)
	}
	name := list.Items[0].Name
	if w := s.Noderoll("watch", "nodegroupupgrade", name); w.Code != 0 || !strings.Contains(w.Stdout, "no upgrade of eksworkshop-eksctl/nodegroup under way; the last one") || !strings.Contains(w.Stdout, "at phase Completed") {
		t.Errorf("watch nodegroupupgrade %s after the run: exit %d\n%s", name, w.Code, w.Stdout)
	}
	if r := s.Noderoll("report", "ngu", name, "--out=-"); r.Code != 0 || r.Stdout != string(page) {
		t.Errorf("report ngu %s: exit %d, the same page as --report: %v", name, r.Code, r.Stdout == string(page))
	}
}

// Groups returns every Auto Scaling group of the sandbox, by the EKS node
// group its tags name.
func (s *Sandbox) Groups() map[string]astypes.AutoScalingGroup {
	s.t.Helper()
	out, err := s.ASG.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		s.t.Fatal(err)
	}
	groups := map[string]astypes.AutoScalingGroup{}
	for _, g := range out.AutoScalingGroups {
		for _, tag := range g.Tags {
			if aws.ToString(tag.Key) == "eks:nodegroup-name" {
				groups[aws.ToString(tag.Value)] = g
			}
		}
	}
	return groups
}

// One controller upgrades three groups of one cluster at once; the seed's
// Deployments and StatefulSet spread their pods over all three, so their
// budgets span groups draining at the same time. No budget is breached,
// every old instance of every group is terminated once, and the
// cluster-autoscaler stays at 0 until the last upgrade ends.
func TestOneControllerUpgradesThreeGroupsAtOnce(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t, "--groups=3")
	c := s.InstallCRD()
	ctx := context.Background()
	before := s.Groups()
	if len(before) != 3 {
		t.Fatalf("%d groups seeded, want 3", len(before))
	}
	budgets := WatchBudgets(t, s.Kube)
	// Each group gets a surge budget of its own (1, 2, and the default:
	// one per AZ, 3), so that one group spending another's would show.
	surge := map[string]int{}
	for k, group := range slices.Sorted(maps.Keys(before)) {
		surge[group] = k + 1
	}
	peaks := s.WatchGroupSizes()
	ctl := s.StartWith([]string{"KUBECONFIG=" + s.ControllerKubeconfig()}, "controller", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	for group := range before {
		u := seedResource(group)
		u.Spec.NodeGroup = group
		if surge[group] < 3 {
			u.Spec.Strategy.MaxSurge = ptr.To(intstr.FromInt32(int32(surge[group])))
		}
		if err := c.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	autoscaler := func() int32 {
		ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *ca.Spec.Replicas
	}
	together := 0   // the most upgrades seen Running at once
	paused := false // the autoscaler was seen held at 0
	eventually(t, 8*time.Minute, "three upgrades Complete", func() (bool, string) {
		var list v1alpha1.NodeGroupUpgradeList
		if err := c.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		complete, running, state := 0, 0, ""
		for _, u := range list.Items {
			switch u.Status.Phase {
			case v1alpha1.PhaseComplete:
				complete++
			case v1alpha1.PhaseRunning:
				running++
			case v1alpha1.PhaseFailed:
				t.Fatalf("%s failed: %s", u.Name, u.Status.Message)
			}
			state += fmt.Sprintf("%s %s %s; ", u.Name, u.Status.Phase, u.Status.Step)
		}
		together = max(together, running)
		// The last upgrade gives the autoscaler back at its end, a moment
		// before its status says Complete: so two must be Complete by
		// then. A first finisher restoring it would be seen with two
		// still running.
		n := autoscaler()
		paused = paused || n == 0
		if paused && complete < 2 && n != 0 {
			t.Errorf("the autoscaler is back while %d upgrades still run: %s", 3-complete, state)
		}
		return complete == 3, state + tail(ctl.err.String(), 3)
	})
	if n := autoscaler(); n != 1 {
		t.Errorf("after the last upgrade the autoscaler has %d replicas, want 1", n)
	}
	if !paused {
		t.Error("the autoscaler was never seen held at 0")
	}
	if together < 2 {
		t.Errorf("at most %d upgrade seen Running at once; want the three to run together", together)
	}
	calls := s.TerminateCalls()
	for group, g := range before {
		for _, i := range g.Instances {
			if calls[aws.ToString(i.InstanceId)] != 1 {
				t.Errorf("%s's old instance %s: %d terminate calls, want 1", group, aws.ToString(i.InstanceId), calls[aws.ToString(i.InstanceId)])
			}
		}
	}
	if v, _, checks := budgets.Stop(); len(v) > 0 || checks == 0 {
		t.Errorf("budgets breached (%d checks): %v", checks, v)
	}
	// Each group stayed within its own surge: never more instances than
	// its size plus its maxSurge, and it did surge to that.
	seen := peaks()
	for group, g := range before {
		size, limit := len(g.Instances), len(g.Instances)+surge[group]
		if seen[group] > limit {
			t.Errorf("%s (maxSurge %d) had %d instances at once, above its %d+%d", group, surge[group], seen[group], size, surge[group])
		}
		if seen[group] < limit {
			t.Errorf("%s (maxSurge %d) had at most %d instances at once: never surged to %d (the sampler missed it, or the budget was not spent)", group, surge[group], seen[group], limit)
		}
	}
}

// WatchGroupSizes samples every Auto Scaling group's instances not being
// terminated, every 200ms, until the test ends or the returned function
// is called; that function returns each group's peak, by EKS node group.
func (s *Sandbox) WatchGroupSizes() func() map[string]int {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var mu sync.Mutex
	peak := map[string]int{}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if out, err := s.ASG.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{}); err == nil {
				mu.Lock()
				for _, g := range out.AutoScalingGroups {
					name := ""
					for _, tag := range g.Tags {
						if aws.ToString(tag.Key) == "eks:nodegroup-name" {
							name = aws.ToString(tag.Value)
						}
					}
					in := 0
					for _, i := range g.Instances {
						if !strings.HasPrefix(string(i.LifecycleState), "Terminating") {
							in++
						}
					}
					peak[name] = max(peak[name], in)
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	stop := func() map[string]int {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(peak)
	}
	s.t.Cleanup(func() { stop() })
	return stop
}
