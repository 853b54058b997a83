// Package preflight finds, before anything changes, what would stall an
// upgrade or hurt the workloads it moves: budgets that never allow an
// eviction, pods nothing recreates, pods that opted out of disruption,
// volumes tied to a zone that gets no new node, kubelet versions the control
// plane does not serve, no room for the surge, an autoscaler not found.
// Check is pure: it judges the facts it is given; gathering them is the
// engine's (see engine.Preflight).
package preflight

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/noderoll/noderoll/internal/disruption"
)

// Severity says whether a finding stops the run.
type Severity string

const (
	// Blocking stops a real run before anything changes, unless its check
	// is named in --ignore-preflight.
	Blocking Severity = "blocking"
	// Warning is told and the run goes on.
	Warning Severity = "warning"
)

// The checks, by the names --ignore-preflight takes.
const (
	CheckBudgetNeverAllows = "pdb-never-allows"
	CheckBudgetOverlap     = "pdb-overlap"
	CheckBarePod           = "bare-pod"
	CheckLocalStorage      = "local-storage"
	CheckDoNotDisrupt      = "do-not-disrupt"
	CheckZonalVolume       = "zonal-volume"
	CheckVersionSkew       = "version-skew"
	CheckNoRoom            = "no-room"
	CheckQuota             = "quota"
	CheckAutoscaler        = "autoscaler"
	CheckEKSTemplate       = "eks-template"
)

// Checks lists every check's name, for help and validation.
var Checks = []string{CheckBudgetNeverAllows, CheckBudgetOverlap, CheckBarePod, CheckLocalStorage, CheckDoNotDisrupt,
	CheckZonalVolume, CheckVersionSkew, CheckNoRoom, CheckQuota, CheckAutoscaler, CheckEKSTemplate}

// Finding is one thing found, with the object it names and what to do.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	Object   string   `json:"object"` // kind namespace/name
	Message  string   `json:"message"`
	Fix      string   `json:"fix"`
}

// Facts are what the checks judge.
type Facts struct {
	Group string // cluster/name, for messages
	// AZs get new nodes (the group's subnets); Surge is how many instances
	// the run launches above Desired, which Max and Room must allow.
	AZs            []string
	Desired, Surge int
	// MaxAllowed is the most instances the group may be raised to (EKS's
	// limit for a managed group, the account's room otherwise); 0: unknown.
	MaxAllowed int
	// ControlPlane and Target are Kubernetes minors ("1.37"); Kubelets are
	// the group's nodes' kubelet versions by node.
	ControlPlane, Target string
	Kubelets             map[string]string
	// Pods are those on the group's nodes, DaemonSet and mirror pods
	// included (they are left out here); Budgets every PDB of the cluster.
	Pods    []*corev1.Pod
	Budgets []*policyv1.PodDisruptionBudget
	// VolumeZones is the zone a pod's claim is bound to, by
	// "namespace/claim"; claims not bound to a zone are absent.
	VolumeZones map[string]string
	// Quota is the account quota the surge's launches count against; nil
	// when none is known. QuotaUnread says why it could not be read.
	Quota       *Quota
	QuotaUnread string
	// Autoscaler is what --cluster-autoscaler found: "namespace/name", "" when
	// "auto" found none, "none" when told to leave it.
	Autoscaler string
	// Template is, for noderoll's own upgrade of an EKS managed node group,
	// whose launch template it would add a version to; nil otherwise.
	Template *ManagedTemplate
}

// ManagedTemplate is the launch template of an EKS managed node group:
// the one its Auto Scaling group launches, and the one the node group names
// as the user's with the version EKS records ("" when EKS generated it).
type ManagedTemplate struct {
	Launched        string
	Named           string
	RecordedVersion int64
}

// Quota is an account limit on the group's kind of instances, in vCPUs.
type Quota struct {
	Code, Name  string
	Limit, Used float64
	PerInstance int // vCPUs of one instance the surge launches
}

// Do-not-disrupt annotations of Karpenter and the cluster-autoscaler.
var doNotDisrupt = map[string]string{
	"karpenter.sh/do-not-disrupt":                    "true",
	"cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
}

// Check judges the facts; findings come ordered blocking first, then by
// check and object.
func Check(f Facts) []Finding {
	var out []Finding
	add := func(check string, sev Severity, object, msg, fix string) {
		out = append(out, Finding{Check: check, Severity: sev, Object: object, Message: msg, Fix: fix})
	}
	budgetsOf := map[string][]*policyv1.PodDisruptionBudget{} // pod key -> its budgets
	moved := map[string]int{}                                 // budget key -> its pods on the group
	for _, p := range f.Pods {
		if !disruption.Evicts(p) {
			continue
		}
		for _, b := range disruption.Covering(f.Budgets, p) {
			budgetsOf[key(p.Namespace, p.Name)] = append(budgetsOf[key(p.Namespace, p.Name)], b)
			moved[key(b.Namespace, b.Name)]++
		}
	}

	for _, b := range f.Budgets {
		k := key(b.Namespace, b.Name)
		if moved[k] == 0 {
			continue
		}
		if why := neverAllows(b); why != "" {
			add(CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget "+k,
				fmt.Sprintf("%s: none of its %d pods on the group can ever be evicted, so their nodes never drain", why, moved[k]),
				"let it allow one disruption (maxUnavailable 1, or minAvailable below the replicas), or scale its workload up first")
		}
	}

	for _, p := range f.Pods {
		if !disruption.Evicts(p) {
			continue
		}
		pk := key(p.Namespace, p.Name)
		obj := "Pod " + pk
		if bs := budgetsOf[pk]; len(bs) > 1 {
			names := make([]string, len(bs))
			for i, b := range bs {
				names[i] = b.Name
			}
			add(CheckBudgetOverlap, Blocking, obj,
				fmt.Sprintf("is covered by %d PodDisruptionBudgets (%s); the API server refuses to evict a pod under more than one", len(bs), strings.Join(names, ", ")),
				"narrow the budgets' selectors so that one covers it")
		}
		if metav1.GetControllerOf(p) == nil {
			add(CheckBarePod, Blocking, obj,
				fmt.Sprintf("on node %s has no controller: evicted, nothing recreates it", p.Spec.NodeName),
				"run it under a Deployment or StatefulSet, or delete it yourself first")
		}
		for ann, val := range doNotDisrupt {
			if v, ok := p.Annotations[ann]; ok && v == val {
				add(CheckDoNotDisrupt, Blocking, obj,
					fmt.Sprintf("opts out of disruption (%s: %q)", ann, v),
					"remove the annotation when the pod may move, or wait until its work is done")
			}
		}
		var local []string
		for _, v := range p.Spec.Volumes {
			switch {
			case v.EmptyDir != nil:
				local = append(local, "emptyDir "+v.Name)
			case v.HostPath != nil:
				local = append(local, "hostPath "+v.Name)
			}
			if v.PersistentVolumeClaim == nil {
				continue
			}
			zone, ok := f.VolumeZones[key(p.Namespace, v.PersistentVolumeClaim.ClaimName)]
			if ok && !slices.Contains(f.AZs, zone) {
				add(CheckZonalVolume, Blocking, obj,
					fmt.Sprintf("mounts claim %s, bound to a volume in zone %s, where the group gets no new node (it launches in %s): evicted, it cannot start again",
						v.PersistentVolumeClaim.ClaimName, zone, strings.Join(f.AZs, ", ")),
					"add a subnet in "+zone+" to the group, or move the workload's data first")
			}
		}
		if len(local) > 0 {
			add(CheckLocalStorage, Warning, obj,
				fmt.Sprintf("keeps data on its node (%s): evicted, that data is lost", strings.Join(local, ", ")),
				"nothing, if the data is a cache; otherwise move it to a persistent volume first")
		}
	}

	if f.Target != "" && f.ControlPlane != "" {
		cp, target := minor(f.ControlPlane), minor(f.Target)
		if target > cp {
			add(CheckVersionSkew, Blocking, "NodeGroup "+f.Group,
				fmt.Sprintf("the target's kubelet %s is newer than the control plane's %s; a kubelet may not be newer than its API server", f.Target, f.ControlPlane),
				"upgrade the control plane first (eksctl upgrade cluster), or choose a target of "+f.ControlPlane+" or older")
		} else if cp-target > 3 {
			add(CheckVersionSkew, Blocking, "NodeGroup "+f.Group,
				fmt.Sprintf("the target's kubelet %s is more than 3 minors older than the control plane's %s", f.Target, f.ControlPlane),
				"choose a target of "+f.ControlPlane)
		}
	}
	nodes := make([]string, 0, len(f.Kubelets))
	for n := range f.Kubelets {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if v := f.Kubelets[n]; f.ControlPlane != "" && minor(v) > minor(f.ControlPlane) {
			add(CheckVersionSkew, Warning, "Node "+n,
				fmt.Sprintf("runs kubelet %s, newer than the control plane's %s", v, f.ControlPlane), "it is replaced by the upgrade")
		}
	}

	if f.MaxAllowed > 0 && f.Desired+f.Surge > f.MaxAllowed {
		add(CheckNoRoom, Blocking, "NodeGroup "+f.Group,
			fmt.Sprintf("the surge needs %d instances (%d + %d) but the group may hold at most %d", f.Desired+f.Surge, f.Desired, f.Surge, f.MaxAllowed),
			fmt.Sprintf("lower --max-surge to %d or less, or raise the limit", f.MaxAllowed-f.Desired))
	}
	if f.Surge > 0 && len(f.AZs) > f.Surge {
		add(CheckNoRoom, Warning, "NodeGroup "+f.Group,
			fmt.Sprintf("the surge of %d cannot put a new node in each of its %d zones at once; pods bound to a zone may wait for one there", f.Surge, len(f.AZs)),
			fmt.Sprintf("raise --max-surge to %d", len(f.AZs)))
	}

	if q := f.Quota; q != nil && f.Surge > 0 && q.PerInstance > 0 {
		need := float64(f.Surge * q.PerInstance)
		if q.Used+need > q.Limit {
			fix := fmt.Sprintf("ask AWS for more (Service Quotas, EC2 quota %s), or stop other instances of that kind", q.Code)
			if room := int((q.Limit - q.Used) / float64(q.PerInstance)); room > 0 {
				fix = fmt.Sprintf("lower --max-surge to %d (the surge strategy; eks surges one a zone), or %s", room, fix)
			}
			add(CheckQuota, Blocking, "NodeGroup "+f.Group,
				fmt.Sprintf("the surge of %d instances needs %g vCPUs more of EC2 quota %s (%s), which allows %g and has %g in use: launches past it fail (VcpuLimitExceeded)",
					f.Surge, need, q.Code, q.Name, q.Limit, q.Used),
				fix)
		}
	}
	if f.QuotaUnread != "" {
		add(CheckQuota, Warning, "NodeGroup "+f.Group, "the account's instance quota could not be read, so the surge is not checked against it: "+f.QuotaUnread,
			"allow servicequotas:GetServiceQuota (docs/iam-policy.json)")
	}

	if t := f.Template; t != nil {
		obj := "NodeGroup " + f.Group
		if t.Named == "" || t.Named != t.Launched {
			add(CheckEKSTemplate, Blocking, obj,
				fmt.Sprintf("its Auto Scaling group launches launch template %s, which EKS generated for the managed node group (the group names no template of yours); EKS recommends against changing the templates it generates, and noderoll's own upgrade would add a version to it", t.Launched),
				"let EKS update the group: --mode=managed (with --max-unavailable for several nodes at once); or --ignore-preflight=eks-template to have noderoll do it anyway, after which EKS reports Ec2LaunchTemplateVersionMismatch for the group")
		} else {
			add(CheckEKSTemplate, Warning, obj,
				fmt.Sprintf("noderoll adds a version to your launch template %s and points the group's Auto Scaling group at it; EKS keeps version %d as the group's, and reports Ec2LaunchTemplateVersionMismatch for it until an EKS update records the new one", t.Launched, t.RecordedVersion),
				"afterwards, the same command with --mode=managed --launch-template-version=<the new version> has EKS record it; EKS's update surges and scales back even then, so it may replace as many nodes as it surges")
		}
	}

	if f.Autoscaler == "" {
		add(CheckAutoscaler, Warning, "Deployment kube-system/cluster-autoscaler",
			"no cluster-autoscaler was found in kube-system; one running elsewhere would scale the group against the upgrade",
			"pass --cluster-autoscaler namespace/name if one runs elsewhere, or --cluster-autoscaler none if there is none")
	}

	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Severity != out[j].Severity {
			return out[i].Severity == Blocking
		}
		if out[i].Check != out[j].Check {
			return out[i].Check < out[j].Check
		}
		return out[i].Object < out[j].Object
	})
	return out
}

// Blocked is the findings that stop a run, those whose check is ignored left
// out ("all" ignores every check).
func Blocked(fs []Finding, ignore []string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity == Blocking && !slices.Contains(ignore, f.Check) && !slices.Contains(ignore, "all") {
			out = append(out, f)
		}
	}
	return out
}

// ValidateIgnore checks --ignore-preflight's names.
func ValidateIgnore(names []string) error {
	for _, n := range names {
		if n != "all" && !slices.Contains(Checks, n) {
			return fmt.Errorf("--ignore-preflight %q: no such check; the checks are %s (or all)", n, strings.Join(Checks, ", "))
		}
	}
	return nil
}

// BlockedError stops a run on blocking findings.
type BlockedError struct{ Findings []Finding }

func (e *BlockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight found %d blocking problem(s); nothing was changed:", len(e.Findings))
	checks := map[string]bool{}
	for _, f := range e.Findings {
		fmt.Fprintf(&b, "\n  [%s] %s %s (fix: %s)", f.Check, f.Object, f.Message, f.Fix)
		checks[f.Check] = true
	}
	names := make([]string, 0, len(checks))
	for c := range checks {
		names = append(names, c)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "\nfix them, or go on regardless with --ignore-preflight=%s", strings.Join(names, ","))
	return b.String()
}

// neverAllows says why a budget can never allow an eviction, or "".
func neverAllows(b *policyv1.PodDisruptionBudget) string {
	expected := int(b.Status.ExpectedPods)
	if mu := b.Spec.MaxUnavailable; mu != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(mu, max(expected, 1), true)
		if err == nil && v == 0 {
			return fmt.Sprintf("maxUnavailable is %s", mu.String())
		}
	}
	if ma := b.Spec.MinAvailable; ma != nil && expected > 0 {
		v, err := intstr.GetScaledValueFromIntOrPercent(ma, expected, true)
		if err == nil && v >= expected {
			return fmt.Sprintf("minAvailable %s asks for all %d of its pods", ma.String(), expected)
		}
	}
	return ""
}

func key(ns, name string) string { return ns + "/" + name }

// minor turns "1.37" (or "v1.37.2-eks-…") into 137 for comparing; 0 when
// unreadable.
func minor(v string) int {
	v = strings.TrimPrefix(v, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0
	}
	major, err1 := strconv.Atoi(parts[0])
	digits := strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	m, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return 0
	}
	return major*1000 + m
}
