package sandbox

import (
	"context"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/conditions"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// Scenario is what a sandbox is seeded with. The default is the seed's: EKS
// cluster eksworkshop-eksctl, managed group "nodegroup" of 3 nodes in 3 AZs
// on the 1.36 AMI under a 1.37 control plane.
type Scenario struct {
	Region    string `json:"region"`
	Cluster   string `json:"cluster"`
	Nodegroup string `json:"nodegroup"`
	Managed   bool   `json:"managed"`
	Plain     bool   `json:"plain,omitempty"` // a self-managed group not made by eksctl: no node group labels
	// EKSTemplate makes the managed groups as EKS does when given no
	// launch template: EKS generates one and picks the AMI, so the group
	// takes a Kubernetes version in EKS's own updates (eksctl's
	// --kubernetes-version) rather than noderoll's strategies.
	EKSTemplate bool `json:"eksTemplate,omitempty"`
	Nodes       int  `json:"nodes"`
	// Groups is how many node groups of Nodes nodes the cluster has: the
	// first is Nodegroup, the others Nodegroup-2, -3... (0 or 1: one).
	Groups       int    `json:"groups,omitempty"`
	AZs          int    `json:"azs"`
	PodsPerNode  int    `json:"podsPerNode"`
	Mix          string `json:"mix,omitempty"` // MixSeed or MixTeams
	NodeVersion  string `json:"nodeVersion"`   // Kubernetes minor of the group's AMI
	InstanceType string `json:"instanceType"`
	// Delays that make the sandbox behave as in life.
	BootDelay      Duration `json:"bootDelay"`      // instance launch until its Node registers
	NodeReadyDelay Duration `json:"nodeReadyDelay"` // Node registered until Ready
	ShutdownDelay  Duration `json:"shutdownDelay"`  // terminate until the Node is gone
	PodStartDelay  Duration `json:"podStartDelay"`  // pod scheduled until Ready
	PodStopDelay   Duration `json:"podStopDelay"`   // pod deleted until gone
}

// Duration is a time.Duration that reads and writes as "5s" in JSON.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := time.ParseDuration(strings.Trim(string(b), `"`))
	d.Duration = v
	return err
}

// ControlPlaneMinor is the Kubernetes minor the sandbox's control plane runs.
const ControlPlaneMinor = "1.37"

// SeedScenario returns the seed's scenario with the sandbox's default delays.
func SeedScenario() Scenario {
	return Scenario{
		Region: "us-west-2", Cluster: "eksworkshop-eksctl", Nodegroup: "nodegroup", Managed: true,
		Nodes: 3, AZs: 3, PodsPerNode: 4, NodeVersion: "1.36", InstanceType: "m5.large",
		BootDelay: Duration{8 * time.Second}, NodeReadyDelay: Duration{2 * time.Second},
		ShutdownDelay: Duration{3 * time.Second}, PodStartDelay: Duration{3 * time.Second},
		PodStopDelay: Duration{2 * time.Second},
	}
}

// Validate names what is wrong with a scenario, before anything starts.
func (s Scenario) Validate() error {
	switch {
	case s.Nodes < 1 || s.Nodes > 2000:
		return fmt.Errorf("--nodes %d: want 1 to 2000", s.Nodes)
	case s.AZs < 1 || s.AZs > 6:
		return fmt.Errorf("--azs %d: want 1 to 6 (availability zones %sa to %sf)", s.AZs, s.Region, s.Region)
	case s.PodsPerNode < 0 || s.PodsPerNode > 50:
		return fmt.Errorf("--pods-per-node %d: want 0 to 50", s.PodsPerNode)
	case s.Groups < 0 || s.Groups > 10:
		return fmt.Errorf("--groups %d: want 1 to 10", s.Groups)
	case s.Cluster == "" || s.Nodegroup == "":
		return fmt.Errorf("the scenario needs a cluster and a node group name")
	case s.Mix != MixSeed && s.Mix != MixTeams:
		return fmt.Errorf("--mix %q: want seed (every budget allows one pod down) or teams (budgets of 1, 10%%, 25%%, minAvailable 50%%, and none)", s.Mix)
	case s.Plain && s.Managed:
		return fmt.Errorf("--plain goes with --self-managed: an EKS managed node group always labels its nodes")
	case s.EKSTemplate && !s.Managed:
		return fmt.Errorf("--eks-template is for an EKS managed node group: leave out --self-managed, or --eks-template")
	}
	for _, m := range awssim.SupportedMinors() {
		if m == s.NodeVersion {
			return nil
		}
	}
	return fmt.Errorf("--node-version %s: the sandbox publishes AMIs for %s", s.NodeVersion, strings.Join(awssim.SupportedMinors(), ", "))
}

// AZNames returns the scenario's availability zones.
func (s Scenario) AZNames() []string {
	out := make([]string, s.AZs)
	for k := range out {
		out[k] = s.Region + string(rune('a'+k))
	}
	return out
}

// The sandbox's account holds a role to try --role-arn on, whose trust
// policy demands an external id, as a cross-account role's does.
const (
	SandboxRoleARN    = "arn:aws:iam::123456789012:role/noderoll-upgrader"
	SandboxExternalID = "noderoll-sandbox"
)

// GroupNames returns the scenario's node groups: Nodegroup, then
// Nodegroup-2, -3... when it has more than one.
func (s Scenario) GroupNames() []string {
	out := []string{s.Nodegroup}
	for k := 2; k <= s.Groups; k++ {
		out = append(out, fmt.Sprintf("%s-%d", s.Nodegroup, k))
	}
	return out
}

// TotalNodes is the nodes of every group.
func (s Scenario) TotalNodes() int { return s.Nodes * len(s.GroupNames()) }

// SeedAWS creates the cluster and its node groups in the account and
// returns the first group's Auto Scaling group's name.
func (s Scenario) SeedAWS(acct *awssim.Account, apiServer string) (string, error) {
	ami, ok := acct.Parameter("/aws/service/eks/optimized-ami/" + s.NodeVersion + "/amazon-linux-2023/x86_64/standard/recommended/image_id")
	if !ok {
		return "", fmt.Errorf("no AMI for Kubernetes %s", s.NodeVersion)
	}
	acct.CreateCluster(s.Cluster, ControlPlaneMinor, apiServer)
	acct.CreateRole(SandboxRoleARN, SandboxExternalID)
	first := ""
	for _, name := range s.GroupNames() {
		asg, err := acct.CreateNodeGroup(awssim.GroupSpec{
			Cluster: s.Cluster, Name: name, Managed: s.Managed, Plain: s.Plain, AZs: s.AZNames(),
			Min: s.Nodes, Max: s.Nodes, Desired: s.Nodes, InstanceType: s.InstanceType, ImageID: ami,
			MaxUnavailable: 1, EKSTemplate: s.EKSTemplate,
		})
		if err != nil {
			return "", err
		}
		if first == "" {
			first = asg
		}
	}
	return first, nil
}

// Workload is one of the scenario's replicated applications, with its
// PodDisruptionBudget (none when both are nil).
type Workload struct {
	Namespace, Name, Kind string
	Replicas              int32
	MaxUnavailable        *intstr.IntOrString
	MinAvailable          *intstr.IntOrString
}

// Mixes of workloads a scenario can run.
const (
	// MixSeed is the workshop's: every budget allows one pod down.
	MixSeed = ""
	// MixTeams is budgets as teams set them: maxUnavailable 1 on a small
	// service, 10% and 25% on large Deployments, minAvailable 50% on a
	// StatefulSet, and a Deployment with no budget.
	MixTeams = "teams"
)

// Workloads lists the scenario's replicated applications.
func (s Scenario) Workloads() []Workload {
	// Pods a node on every group's nodes: the budgets span the groups.
	n := s.TotalNodes() * s.PodsPerNode
	one, pct := intstr.FromInt32(1), func(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
	if s.Mix == MixTeams {
		share := func(f float64, least int) int32 { return int32(max(least, int(math.Round(f*float64(n))))) }
		return []Workload{
			{Namespace: "kube-system", Name: "coredns", Kind: "Deployment", Replicas: 2, MaxUnavailable: &one},
			{Namespace: "default", Name: "auth", Kind: "Deployment", Replicas: 3, MaxUnavailable: &one},
			{Namespace: "default", Name: "web", Kind: "Deployment", Replicas: share(0.4, 2), MaxUnavailable: pct("10%")},
			{Namespace: "default", Name: "worker", Kind: "Deployment", Replicas: share(0.3, 2), MaxUnavailable: pct("25%")},
			{Namespace: "default", Name: "cache", Kind: "StatefulSet", Replicas: share(0.15, 2), MinAvailable: pct("50%")},
			{Namespace: "default", Name: "batch", Kind: "Deployment", Replicas: share(0.15, 1)},
		}
	}
	front := intstr.FromInt32(int32(max(3, n/2)) - 1)
	return []Workload{
		{Namespace: "kube-system", Name: "coredns", Kind: "Deployment", Replicas: 2, MaxUnavailable: &one},
		{Namespace: "default", Name: "ecsdemo-frontend", Kind: "Deployment", Replicas: int32(max(3, n/2)), MinAvailable: &front},
		{Namespace: "default", Name: "ecsdemo-nodejs", Kind: "Deployment", Replicas: int32(max(2, n/4)), MaxUnavailable: &one},
		{Namespace: "default", Name: "ecsdemo-crystal", Kind: "StatefulSet", Replicas: int32(max(2, n/4)), MaxUnavailable: &one},
	}
}

// SeedKube creates what runs on the group, as on an EKS cluster of the
// workshop: the EKS DaemonSets, CoreDNS with its PDB, a cluster-autoscaler,
// and the workshop's ecsdemo applications with PDBs, spread over zones and
// nodes. Objects that exist already are left alone.
func (s Scenario) SeedKube(ctx context.Context, c kubernetes.Interface, out io.Writer) error {
	tolerateAll := []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	for _, ds := range []string{"aws-node", "kube-proxy", "eks-pod-identity-agent"} {
		if err := create(ctx, c.AppsV1().DaemonSets("kube-system").Create, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: ds, Namespace: "kube-system", Labels: map[string]string{"k8s-app": ds}},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": ds}},
				Template: s.podTemplate(map[string]string{"k8s-app": ds}, "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/"+ds+":latest", tolerateAll, false, "system-node-critical"),
			},
		}); err != nil {
			return err
		}
	}
	ca := int32(1)
	if err := create(ctx, c.AppsV1().Deployments("kube-system").Create, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-autoscaler", Namespace: "kube-system", Labels: map[string]string{"app": "cluster-autoscaler"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &ca,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cluster-autoscaler"}},
			Template: s.podTemplate(map[string]string{"app": "cluster-autoscaler"}, "registry.k8s.io/autoscaling/cluster-autoscaler:v1.37.0", nil, false, "system-cluster-critical"),
		},
	}); err != nil {
		return err
	}
	// Applications go on once the nodes are there, as on a cluster that has
	// been running a while: created earlier, they would pile onto the first
	// nodes to register and leave no room for those nodes' DaemonSet pods.
	if err := s.waitNodes(ctx, c, out); err != nil {
		return err
	}
	for _, w := range s.Workloads() {
		labels := map[string]string{"app": w.Name}
		replicas := w.Replicas
		priority := ""
		if w.Namespace == "kube-system" {
			priority = "system-cluster-critical"
		}
		tmpl := s.podTemplate(labels, "public.ecr.aws/aws-containers/"+w.Name+":latest", nil, true, priority)
		var err error
		if w.Kind == "StatefulSet" {
			err = create(ctx, c.AppsV1().StatefulSets(w.Namespace).Create, &appsv1.StatefulSet{
				ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: labels},
				Spec: appsv1.StatefulSetSpec{
					Replicas: &replicas, ServiceName: w.Name, PodManagementPolicy: appsv1.ParallelPodManagement,
					Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl,
				},
			})
		} else {
			err = create(ctx, c.AppsV1().Deployments(w.Namespace).Create, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: labels},
				Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
			})
		}
		if err != nil {
			return err
		}
		if w.MaxUnavailable == nil && w.MinAvailable == nil {
			continue
		}
		budget := policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			MaxUnavailable: w.MaxUnavailable, MinAvailable: w.MinAvailable}
		if err := create(ctx, c.PolicyV1().PodDisruptionBudgets(w.Namespace).Create, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}, Spec: budget,
		}); err != nil {
			return err
		}
	}
	return nil
}

func create[T any](ctx context.Context, fn func(context.Context, T, metav1.CreateOptions) (T, error), obj T) error {
	if _, err := fn(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("seeding %T: %w", obj, err)
	}
	return nil
}

// podTemplate carries kwok's per-pod delays as annotations, read by kwok's
// general pod stages. A pod goes through two: pod-create (an IP, the
// containers created), then pod-ready. pod-create is set to no delay:
// kwok's default for it, 1 to 5 s at random, came on top of the start
// delay asked for, so that a pod asked to start in 1 s took 4 s (median)
// and the benchmark's delays were not those it printed.
// priority is a PriorityClass, "" for none; the system ones are those EKS
// gives its add-ons, and let DaemonSet pods preempt on a full node.
func (s Scenario) podTemplate(labels map[string]string, image string, tol []corev1.Toleration, spread bool, priority string) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels: labels,
			Annotations: map[string]string{
				"pod-create.stage.kwok.x-k8s.io/delay":        "0s",
				"pod-create.stage.kwok.x-k8s.io/jitter-delay": "0s",
				"pod-ready.stage.kwok.x-k8s.io/delay":         s.PodStartDelay.String(),
				"pod-ready.stage.kwok.x-k8s.io/jitter-delay":  (s.PodStartDelay.Duration + s.PodStartDelay.Duration/4).String(),
				stopDelayAnnotation:                           s.PodStopDelay.String(),
			},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: strings.Split(path.Base(image), ":")[0], Image: image,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
				}},
			}},
			Tolerations:       tol,
			PriorityClassName: priority,
			// kwok's delete stage jitters up to the deletion deadline, so the
			// grace period bounds how long a pod takes to stop.
			TerminationGracePeriodSeconds: ptr.To(int64(math.Ceil(s.PodStopDelay.Seconds()))),
		},
	}
	if spread {
		for _, key := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
			t.Spec.TopologySpreadConstraints = append(t.Spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
				MaxSkew: 1, TopologyKey: key, WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
			})
		}
	}
	return t
}

// WaitReady waits until the group's nodes are Ready and every workload of the
// scenario is fully available, printing progress as it changes.
func (s Scenario) WaitReady(ctx context.Context, c kubernetes.Interface, out io.Writer) error {
	want := s.TotalNodes()*3 + 1 // DaemonSets and the autoscaler
	for _, w := range s.Workloads() {
		want += int(w.Replicas)
	}
	return poll(ctx, out, "the scenario to be ready", func() (string, bool, string, error) {
		ready, err := readyNodes(ctx, c)
		if err != nil {
			return "", false, "", err
		}
		pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", false, "", fmt.Errorf("listing pods: %w", err)
		}
		running := 0
		var stuck []string // why pods are not running, for a timeout's error
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && conditions.PodReady(&p) {
				running++
				continue
			}
			if len(stuck) < 3 {
				stuck = append(stuck, p.Namespace+"/"+p.Name+" "+podWhy(&p))
			}
		}
		line := fmt.Sprintf("nodes Ready %d/%d, pods Running %d/%d", ready, s.TotalNodes(), running, want)
		why := ""
		if len(stuck) > 0 {
			why = "; for instance " + strings.Join(stuck, "; ")
		}
		return line, ready >= s.TotalNodes() && running >= want, why, nil
	})
}

// waitNodes waits until the group's nodes are all registered and Ready.
func (s Scenario) waitNodes(ctx context.Context, c kubernetes.Interface, out io.Writer) error {
	return poll(ctx, out, "the group's nodes", func() (string, bool, string, error) {
		ready, err := readyNodes(ctx, c)
		return fmt.Sprintf("nodes Ready %d/%d", ready, s.TotalNodes()), ready >= s.TotalNodes(), "", err
	})
}

// poll calls check every half second until it is done, printing its
// progress line whenever it changes; at ctx's end the error carries the
// last line and why.
func poll(ctx context.Context, out io.Writer, what string, check func() (line string, done bool, why string, err error)) error {
	last, lastWhy := "", ""
	for {
		line, done, why, err := check()
		if err != nil {
			return err
		}
		if line != last {
			fmt.Fprintln(out, "  "+line)
			last = line
		}
		lastWhy = why
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (%s%s): %w", what, last, lastWhy, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func readyNodes(ctx context.Context, c kubernetes.Interface) (int, error) {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("listing nodes: %w", err)
	}
	ready := 0
	for k := range nodes.Items {
		if conditions.NodeReady(&nodes.Items[k]) {
			ready++
		}
	}
	return ready, nil
}

// podWhy says what a pod that is not running waits for, in the scheduler's
// or kubelet's words.
func podWhy(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return fmt.Sprintf("%s (%s: %s)", p.Status.Phase, c.Reason, c.Message)
		}
	}
	switch {
	case p.Status.Phase != corev1.PodPending:
	case p.Spec.NodeName != "":
		// Bound, but the node's kubelet (kwok) has not started it.
		return fmt.Sprintf("Pending on node %s (bound; not started there yet)", p.Spec.NodeName)
	default:
		return "Pending (not scheduled, and no scheduling attempt recorded)"
	}
	return string(p.Status.Phase)
}
