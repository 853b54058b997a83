package preflight

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/terms"
)

func pod(name string, labels map[string]string, owner string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "ip-10-0-0-1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x", Controller: ptr.To(true)}}
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func pdb(name string, app string, expected int32, minAvail, maxUnavail *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			MinAvailable: minAvail, MaxUnavailable: maxUnavail},
		Status: policyv1.PodDisruptionBudgetStatus{ExpectedPods: expected},
	}
}

func ip(v intstr.IntOrString) *intstr.IntOrString { return &v }

// healthy is a group with nothing to find.
func healthy() Facts {
	return Facts{
		Group: "c1/ng", AZs: []string{"a", "b", "c"}, Desired: 3, Surge: 3, MaxAllowed: 100,
		// 6 vCPUs of 3 m5.large in use; the surge takes 6 more: exactly full.
		Quota:        &Quota{Code: "L-1216C47A", Name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", Limit: 12, Used: 6, PerInstance: 2},
		ControlPlane: "1.37", Target: "1.37", Kubelets: map[string]string{"ip-10-0-0-1": "v1.36.5-eks-1"},
		Pods: []*corev1.Pod{
			pod("web-1", map[string]string{"app": "web"}, "ReplicaSet"),
			pod("ds-1", nil, "DaemonSet", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "logs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{}}}}
			}),
			pod("bare-done", nil, "", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
			pod("db-0", map[string]string{"app": "db"}, "StatefulSet", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}}}
			}),
		},
		Budgets: []*policyv1.PodDisruptionBudget{
			pdb("web", "web", 4, nil, ip(intstr.FromInt32(1))),
			pdb("db", "db", 3, ip(intstr.FromString("50%")), nil),
			// Never allows, but covers no pod of the group: not the run's problem.
			pdb("elsewhere", "other", 2, nil, ip(intstr.FromInt32(0))),
		},
		VolumeZones: map[string]string{"default/data-db-0": "b"},
		Autoscaler:  "kube-system/cluster-autoscaler",
	}
}

func TestAHealthyGroupHasNoFindings(t *testing.T) {
	if fs := Check(healthy()); len(fs) != 0 {
		t.Fatalf("findings on a healthy group: %+v", fs)
	}
}

// Each case breaks one thing of a healthy group and must be found, with the
// object it names, as blocking or as a warning.
func TestEachProblemIsFoundNamingItsObject(t *testing.T) {
	for _, c := range []struct {
		name     string
		mutate   func(*Facts)
		check    string
		severity Severity
		object   string
		says     string
	}{
		{"maxUnavailable 0", func(f *Facts) { f.Budgets[0].Spec.MaxUnavailable = ip(intstr.FromInt32(0)) },
			CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget default/web", "maxUnavailable is 0"},
		{"maxUnavailable 0%", func(f *Facts) { f.Budgets[0].Spec.MaxUnavailable = ip(intstr.FromString("0%")) },
			CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget default/web", "maxUnavailable is 0%"},
		{"minAvailable equal to the replicas", func(f *Facts) { f.Budgets[1].Spec.MinAvailable = ip(intstr.FromInt32(3)) },
			CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget default/db", "asks for all 3"},
		{"minAvailable 100%", func(f *Facts) { f.Budgets[1].Spec.MinAvailable = ip(intstr.FromString("100%")) },
			CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget default/db", "asks for all 3"},
		{"an empty selector allowing none (it selects every pod of its namespace)", func(f *Facts) {
			all := pdb("everything", "", 6, nil, ip(intstr.FromInt32(0)))
			all.Spec.Selector = &metav1.LabelSelector{}
			f.Budgets = []*policyv1.PodDisruptionBudget{all}
		}, CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget default/everything", "maxUnavailable is 0"},
		{"a pod under two budgets", func(f *Facts) { f.Budgets = append(f.Budgets, pdb("web-too", "web", 4, nil, ip(intstr.FromInt32(1)))) },
			CheckBudgetOverlap, Blocking, "Pod default/web-1", "web, web-too"},
		{"a bare pod", func(f *Facts) { f.Pods = append(f.Pods, pod("debug", nil, "")) },
			CheckBarePod, Blocking, "Pod default/debug", "no controller"},
		{"emptyDir", func(f *Facts) {
			f.Pods[0].Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, CheckLocalStorage, Warning, "Pod default/web-1", "emptyDir tmp"},
		{"karpenter's do-not-disrupt", func(f *Facts) { f.Pods[0].Annotations = map[string]string{"karpenter.sh/do-not-disrupt": "true"} },
			CheckDoNotDisrupt, Blocking, "Pod default/web-1", "karpenter.sh/do-not-disrupt"},
		{"the autoscaler's safe-to-evict false", func(f *Facts) {
			f.Pods[0].Annotations = map[string]string{"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
		}, CheckDoNotDisrupt, Blocking, "Pod default/web-1", "safe-to-evict"},
		{"a volume in a zone without new nodes", func(f *Facts) { f.VolumeZones["default/data-db-0"] = "d" },
			CheckZonalVolume, Blocking, "Pod default/db-0", "zone d"},
		{"a target newer than the control plane", func(f *Facts) { f.Target = "1.38" },
			CheckVersionSkew, Blocking, "NodeGroup c1/ng", "newer than the control plane"},
		{"a target 4 minors behind", func(f *Facts) { f.Target = "1.33" },
			CheckVersionSkew, Blocking, "NodeGroup c1/ng", "more than 3 minors older"},
		{"no room for the surge", func(f *Facts) { f.MaxAllowed = 5 },
			CheckNoRoom, Blocking, "NodeGroup c1/ng", "needs 6 instances"},
		{"an account quota short of the surge", func(f *Facts) { f.Quota.Limit = 10 },
			CheckQuota, Blocking, "NodeGroup c1/ng", "needs 6 vCPUs more of EC2 quota L-1216C47A"},
		{"an account quota full already", func(f *Facts) { f.Quota.Used = 12 },
			CheckQuota, Blocking, "NodeGroup c1/ng", "has 12 in use"},
		{"a quota that cannot be read", func(f *Facts) { f.Quota, f.QuotaUnread = nil, "AccessDeniedException" },
			CheckQuota, Warning, "NodeGroup c1/ng", "could not be read"},
		{"a surge below the zones", func(f *Facts) { f.Surge = 2 },
			CheckNoRoom, Warning, "NodeGroup c1/ng", "each of its 3 zones"},
		{"no autoscaler found", func(f *Facts) { f.Autoscaler = "" },
			CheckAutoscaler, Warning, "Deployment kube-system/cluster-autoscaler", "no cluster-autoscaler was found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := healthy()
			c.mutate(&f)
			fs := Check(f)
			if len(fs) != 1 {
				t.Fatalf("want exactly one finding, got %+v", fs)
			}
			got := fs[0]
			if got.Check != c.check || got.Severity != c.severity || got.Object != c.object || !strings.Contains(got.Message, c.says) || got.Fix == "" {
				t.Fatalf("got %+v; want check %s, %s, on %s, saying %q, with a fix", got, c.check, c.severity, c.object, c.says)
			}
		})
	}
}

func TestIgnoringAChecksLetsItsFindingsThrough(t *testing.T) {
	f := healthy()
	f.Pods = append(f.Pods, pod("debug", nil, ""))
	f.Budgets[0].Spec.MaxUnavailable = ip(intstr.FromInt32(0))
	f.Autoscaler = ""
	fs := Check(f)
	if len(fs) != 3 || fs[0].Severity != Blocking || fs[1].Severity != Blocking || fs[2].Severity != Warning {
		t.Fatalf("want two blocking findings then a warning, got %+v", fs)
	}
	if b := Blocked(fs, nil); len(b) != 2 {
		t.Fatalf("blocked by %d, want 2", len(b))
	}
	if b := Blocked(fs, []string{CheckBarePod}); len(b) != 1 || b[0].Check != CheckBudgetNeverAllows {
		t.Fatalf("ignoring bare-pod: blocked by %+v", b)
	}
	if b := Blocked(fs, []string{"all"}); len(b) != 0 {
		t.Fatalf("ignoring all: blocked by %+v", b)
	}
	msg := (&BlockedError{Findings: Blocked(fs, nil)}).Error()
	for _, want := range []string{"2 blocking", "nothing was changed", "Pod default/debug", "--ignore-preflight=bare-pod,pdb-never-allows"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	if err := ValidateIgnore([]string{"bare-pod", "all"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ValidateIgnore([]string{"bare-pods"}, nil); err == nil || !strings.Contains(err.Error(), `--ignore-preflight="bare-pods": no such check`) {
		t.Fatalf("a misspelt check: %v", err)
	}
	// Another front end's users read its own names, never a CLI flag.
	resource := terms.Terms{"ignore-preflight": "spec.ignorePreflight"}
	if err := ValidateIgnore([]string{"bare-pods"}, resource); err == nil || !strings.Contains(err.Error(), `spec.ignorePreflight: "bare-pods": no such check`) {
		t.Fatalf("a misspelt check in a resource: %v", err)
	}
	msg = (&BlockedError{Findings: Blocked(fs, nil), Terms: resource}).Error()
	if !strings.Contains(msg, "go on regardless with spec.ignorePreflight: bare-pod,pdb-never-allows") || strings.Contains(msg, "--ignore-preflight") {
		t.Errorf("the resource's blocked error:\n%s", msg)
	}
}

// The fix names the surge the quota leaves room for, when there is any.
func TestAQuotaFindingSaysHowMuchSurgeFits(t *testing.T) {
	f := healthy()
	f.Quota.Limit = 10 // 4 vCPUs left: 2 instances
	fs := Check(f)
	if len(fs) != 1 || !strings.Contains(fs[0].Fix, "lower --max-surge to 2") {
		t.Fatalf("%+v", fs)
	}
	f.Quota.Used = 12
	if fs := Check(f); len(fs) != 1 || strings.Contains(fs[0].Fix, "--max-surge") || !strings.Contains(fs[0].Fix, "ask AWS for more") {
		t.Fatalf("no room at all: %+v", fs)
	}
}

// noderoll's own upgrade of a managed node group adds a version to the
// launch template its Auto Scaling group launches. One EKS generated is not
// the user's to change (EKS's launch template guide): blocking, pointing to
// --mode=managed. The user's own is theirs, but EKS keeps its record of the
// version: a warning saying so and how to have EKS record the new one.
func TestAManagedGroupsTemplateIsJudgedByWhoOwnsIt(t *testing.T) {
	f := healthy()
	f.Template = &ManagedTemplate{Launched: "lt-0eks", Named: ""}
	fs := Check(f)
	if len(fs) != 1 || fs[0].Check != CheckEKSTemplate || fs[0].Severity != Blocking ||
		!strings.Contains(fs[0].Message, "lt-0eks, which EKS generated") || !strings.Contains(fs[0].Fix, "--mode=managed") {
		t.Fatalf("an EKS-generated template: %+v", fs)
	}
	if len(Blocked(fs, []string{CheckEKSTemplate})) != 0 {
		t.Fatal("--ignore-preflight=eks-template does not let it through")
	}
	// EKS's copy of the user's template: still EKS's.
	f.Template = &ManagedTemplate{Launched: "lt-0eks", Named: "lt-0mine", RecordedVersion: 3}
	if fs := Check(f); len(fs) != 1 || fs[0].Severity != Blocking {
		t.Fatalf("a template other than the one the group names: %+v", fs)
	}
	// The user's own: noderoll has EKS record the version at the end
	// (engine.EKSRecord), so there is nothing to warn of.
	f.Template = &ManagedTemplate{Launched: "lt-0mine", Named: "lt-0mine", RecordedVersion: 3}
	if fs = Check(f); len(fs) != 0 {
		t.Fatalf("the user's own template: %+v", fs)
	}
}

// Force asked for by an identity the API server does not let delete pods
// is refused before anything changes, in the words of the front end; force
// allowed, or not asked for, finds nothing.
func TestForceWithoutLeaveToDeletePodsIsRefused(t *testing.T) {
	f := healthy()
	f.Force, f.ForceDenied = true, `RBAC: no rule lets system:serviceaccount:ops:noderoll delete pods`
	fs := Check(f)
	if len(fs) != 1 || fs[0].Check != CheckForce || fs[0].Severity != Blocking ||
		!strings.Contains(fs[0].Message, "--force deletes, at --eviction-timeout") || !strings.Contains(fs[0].Message, "no rule lets") ||
		!strings.Contains(fs[0].Fix, "noderoll permissions --force") || !strings.Contains(fs[0].Fix, "rbac.allowForce=true") {
		t.Fatalf("findings %+v", fs)
	}
	f.Terms = map[string]string{"force": "spec.force", "eviction-timeout": "spec.evictionTimeout"}
	if fs := Check(f); !strings.HasPrefix(fs[0].Message, "spec.force deletes, at spec.evictionTimeout") || !strings.HasSuffix(fs[0].Fix, "without spec.force") {
		t.Errorf("in the controller's terms: %+v", fs[0])
	}
	f.ForceDenied = ""
	if fs := Check(f); len(fs) != 0 {
		t.Errorf("force allowed: %+v", fs)
	}
	f.Force, f.ForceDenied = false, "denied"
	if fs := Check(f); len(fs) != 0 {
		t.Errorf("force not asked for: %+v", fs)
	}
}
