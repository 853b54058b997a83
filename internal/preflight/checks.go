package preflight

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/noderoll/noderoll/internal/disruption"
)

// adder records one finding.
type adder func(check string, sev Severity, object, msg, fix string)

// coverage is which budgets cover each pod the upgrade evicts, and how
// many of those pods each budget covers: the rules of package disruption,
// worked out once for the checks that read them.
type coverage struct {
	budgetsOf map[string][]*policyv1.PodDisruptionBudget // pod key -> its budgets
	moved     map[string]int                             // budget key -> its pods on the group
}

func coverageOf(f Facts) coverage {
	c := coverage{budgetsOf: map[string][]*policyv1.PodDisruptionBudget{}, moved: map[string]int{}}
	for _, p := range f.Pods {
		if !disruption.Evicts(p) {
			continue
		}
		for _, b := range disruption.Covering(f.Budgets, p) {
			c.budgetsOf[key(p.Namespace, p.Name)] = append(c.budgetsOf[key(p.Namespace, p.Name)], b)
			c.moved[key(b.Namespace, b.Name)]++
		}
	}
	return c
}

// checkBudgets: a budget covering pods of the group that never allows an
// eviction.
func checkBudgets(f Facts, cov coverage, add adder) {
	for _, b := range f.Budgets {
		k := key(b.Namespace, b.Name)
		if cov.moved[k] == 0 {
			continue
		}
		if why := neverAllows(b); why != "" {
			add(CheckBudgetNeverAllows, Blocking, "PodDisruptionBudget "+k,
				fmt.Sprintf("%s: none of its %d pods on the group can ever be evicted, so their nodes never drain", why, cov.moved[k]),
				"let it allow one disruption (maxUnavailable 1, or minAvailable below the replicas), or scale its workload up first")
		}
	}
}

// checkPods: what stops, or loses, each pod the upgrade evicts.
func checkPods(f Facts, cov coverage, add adder) {
	for _, p := range f.Pods {
		if !disruption.Evicts(p) {
			continue
		}
		pk := key(p.Namespace, p.Name)
		obj := "Pod " + pk
		if bs := cov.budgetsOf[pk]; len(bs) > 1 {
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
}

// checkVersions: the target's and the nodes' kubelets against the control
// plane's version skew policy.
func checkVersions(f Facts, _ coverage, add adder) {
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
}

// checkRoom: the group's limit and zones against the surge.
func checkRoom(f Facts, _ coverage, add adder) {
	if f.MaxAllowed > 0 && f.Desired+f.Surge > f.MaxAllowed {
		add(CheckNoRoom, Blocking, "NodeGroup "+f.Group,
			fmt.Sprintf("the surge needs %d instances (%d + %d) but the group may hold at most %d", f.Desired+f.Surge, f.Desired, f.Surge, f.MaxAllowed),
			fmt.Sprintf("lower %s to %d or less, or raise the limit", f.Terms.Of("max-surge"), f.MaxAllowed-f.Desired))
	}
	if f.Surge > 0 && len(f.AZs) > f.Surge {
		add(CheckNoRoom, Warning, "NodeGroup "+f.Group,
			fmt.Sprintf("the surge of %d cannot put a new node in each of its %d zones at once; pods bound to a zone may wait for one there", f.Surge, len(f.AZs)),
			fmt.Sprintf("raise %s to %d", f.Terms.Of("max-surge"), len(f.AZs)))
	}
}

// checkQuota: the account's EC2 vCPU quota against the surge.
func checkQuota(f Facts, _ coverage, add adder) {
	if q := f.Quota; q != nil && f.Surge > 0 && q.PerInstance > 0 {
		need := float64(f.Surge * q.PerInstance)
		if q.Used+need > q.Limit {
			fix := fmt.Sprintf("ask AWS for more (Service Quotas, EC2 quota %s), or stop other instances of that kind", q.Code)
			if room := int((q.Limit - q.Used) / float64(q.PerInstance)); room > 0 {
				fix = fmt.Sprintf("lower %s to %d (the surge strategy; eks surges one a zone), or %s", f.Terms.Of("max-surge"), room, fix)
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
}

// checkEKSTemplate: whose launch template noderoll would change.
func checkEKSTemplate(f Facts, _ coverage, add adder) {
	if t := f.Template; t != nil {
		obj := "NodeGroup " + f.Group
		if t.Named == "" || t.Named != t.Launched {
			add(CheckEKSTemplate, Blocking, obj,
				fmt.Sprintf("its Auto Scaling group launches launch template %s, which EKS generated for the managed node group (the group names no template of yours); EKS recommends against changing the templates it generates, and noderoll's own upgrade would add a version to it", t.Launched),
				fmt.Sprintf("let EKS update the group: %s (with %s for several nodes at once); or %s to have noderoll do it anyway, after which EKS reports Ec2LaunchTemplateVersionMismatch for the group",
					f.Terms.With("mode", "managed"), f.Terms.Of("max-unavailable"), f.Terms.With("ignore-preflight", CheckEKSTemplate)))
		}
		// A template of the user's: noderoll adds the version, and at the
		// end has EKS record it with an update of the MINIMAL strategy,
		// which replaces no node (engine.EKSRecord): nothing to warn of.
	}
}

// checkAutoscaler: a cluster-autoscaler noderoll cannot hold.
func checkAutoscaler(f Facts, _ coverage, add adder) {
	if f.Autoscaler == "" {
		add(CheckAutoscaler, Warning, "Deployment kube-system/cluster-autoscaler",
			"no cluster-autoscaler was found in kube-system; one running elsewhere would scale the group against the upgrade",
			fmt.Sprintf("name it with %s if one runs elsewhere, or say %s if there is none",
				f.Terms.With("cluster-autoscaler", "namespace/name"), f.Terms.With("cluster-autoscaler", "none")))
	}
}

// checkForce: force asked for by an identity that may not delete pods. The
// permission is left out of the roles noderoll suggests unless force is
// wanted, so a drain that would force finds out before it starts, not at
// its eviction timeout an hour in.
func checkForce(f Facts, _ coverage, add adder) {
	if !f.Force || f.ForceDenied == "" {
		return
	}
	add(CheckForce, Blocking, "pods (delete)",
		fmt.Sprintf("%s deletes, at %s, the pods a disruption budget still holds, but this identity may not delete pods: %s",
			f.Terms.Of("force"), f.Terms.Of("eviction-timeout"), f.ForceDenied),
		fmt.Sprintf("grant it (`noderoll permissions --force`; the Helm chart's rbac.allowForce=true), or run without %s", f.Terms.Of("force")))
}
