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
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/noderoll/noderoll/internal/terms"
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
	CheckForce             = "force-permission"
)

// Checks lists every check's name, for help and validation.
var Checks = []string{CheckBudgetNeverAllows, CheckBudgetOverlap, CheckBarePod, CheckLocalStorage, CheckDoNotDisrupt,
	CheckZonalVolume, CheckVersionSkew, CheckNoRoom, CheckQuota, CheckAutoscaler, CheckEKSTemplate, CheckForce}

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
	// Terms names options in the fixes as the front end's users write
	// them (nil: the CLI's flags).
	Terms terms.Terms
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
	// Force is whether the run deletes, at its eviction timeout, the pods
	// budgets still hold; ForceDenied, when set, is why the run's identity
	// may not delete pods (the API server's answer to its access review).
	Force       bool
	ForceDenied string
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
// check and object. Each check is a function of its own (checks.go) that
// adds what it finds.
func Check(f Facts) []Finding {
	var out []Finding
	add := func(check string, sev Severity, object, msg, fix string) {
		out = append(out, Finding{Check: check, Severity: sev, Object: object, Message: msg, Fix: fix})
	}
	cov := coverageOf(f)
	for _, check := range []func(Facts, coverage, adder){
		checkBudgets, checkPods, checkVersions, checkRoom, checkQuota, checkEKSTemplate, checkAutoscaler, checkForce,
	} {
		check(f, cov, add)
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

// ValidateIgnore checks the names of the checks to ignore, naming the option
// as the front end (tm) spells it.
func ValidateIgnore(names []string, tm terms.Terms) error {
	for _, n := range names {
		if n != "all" && !slices.Contains(Checks, n) {
			return fmt.Errorf("%s: no such check; the checks are %s (or all)", tm.With("ignore-preflight", strconv.Quote(n)), strings.Join(Checks, ", "))
		}
	}
	return nil
}

// BlockedError stops a run on blocking findings.
type BlockedError struct {
	Findings []Finding
	Terms    terms.Terms // how the front end names the option that ignores a check
}

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
	fmt.Fprintf(&b, "\nfix them, or go on regardless with %s", e.Terms.With("ignore-preflight", strings.Join(names, ",")))
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
