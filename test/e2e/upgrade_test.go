package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/sandbox"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// seedUpgrade is the seed's upgrade with the seed's algorithm (--strategy
// eks): the tests written for it assert its one-at-a-time story.
var seedUpgrade = []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
	"--strategy=eks", "--post-cordon-wait=2s", "--eviction-retry-delay=1s", "--seed=7"}

// accountSnapshot is what must not change when noderoll refuses to act.
type accountSnapshot struct {
	min, max, desired int32
	ltVersions        int
	activities        int
	caReplicas        int32
	caAnnotations     int
	records           int
}

func snapshot(t *testing.T, s *Sandbox) accountSnapshot {
	t.Helper()
	ctx := context.Background()
	g := s.Group()
	lts, err := s.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: g.LaunchTemplate.LaunchTemplateId})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := s.Kube.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: recordSelector})
	if err != nil {
		t.Fatal(err)
	}
	return accountSnapshot{
		min: aws.ToInt32(g.MinSize), max: aws.ToInt32(g.MaxSize), desired: aws.ToInt32(g.DesiredCapacity),
		ltVersions: len(lts.LaunchTemplateVersions), activities: len(s.Activities()),
		caReplicas: *ca.Spec.Replicas, caAnnotations: len(ca.Annotations), records: len(cms.Items),
	}
}

// waitWorkloads waits until every Deployment, StatefulSet and DaemonSet has
// all its pods Ready and every pod is Running.
func waitWorkloads(t *testing.T, s *Sandbox) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 90*time.Second, "every pod of every workload Running again", func() (bool, string) {
		deps, err := s.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, d := range deps.Items {
			if d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.Replicas != *d.Spec.Replicas {
				return false, fmt.Sprintf("deployment %s: %d/%d ready", d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas)
			}
		}
		sts, err := s.Kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, x := range sts.Items {
			if x.Status.ReadyReplicas != *x.Spec.Replicas {
				return false, fmt.Sprintf("statefulset %s: %d/%d ready", x.Name, x.Status.ReadyReplicas, *x.Spec.Replicas)
			}
		}
		dss, err := s.Kube.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, x := range dss.Items {
			if x.Status.NumberReady != x.Status.DesiredNumberScheduled {
				return false, fmt.Sprintf("daemonset %s: %d/%d ready", x.Name, x.Status.NumberReady, x.Status.DesiredNumberScheduled)
			}
		}
		pods, err := s.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				return false, fmt.Sprintf("pod %s/%s %s", p.Namespace, p.Name, p.Status.Phase)
			}
		}
		return true, ""
	})
}

func TestSeedUpgradeEndToEnd(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t)
	ctx := context.Background()
	target := s.RecommendedAMI("1.37")
	before := s.Group()
	var oldIDs []string
	for _, i := range before.Instances {
		oldIDs = append(oldIDs, aws.ToString(i.InstanceId))
	}
	start := snapshot(t, s)

	t.Run("bad input fails before anything changes", func(t *testing.T) {
		base := []string{"upgrade", "nodegroup"}
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"--cluster=nope", "--name=nodegroup", "--kubernetes-version=1.37"}, `EKS cluster "nope" not found`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nope", "--kubernetes-version=1.37"}, `node group "nope" in cluster "eksworkshop-eksctl"`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.38"}, "newer than the control plane (1.37)"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.33"}, "more than 3 minor versions older than the control plane (1.37)"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--ami=ami-0123456789abcdef0"}, `AMI "ami-0123456789abcdef0" not found`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--release-version=1.37.2-20200101"}, "EKS-optimized AL2023 (x86_64, standard) AMI release 1.37.2-20200101 (SSM parameter"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--release-version=latest"}, "want the EKS AMI form"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--launch-template-version=9"}, "--launch-template-version=9: launch template lt-"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--ami=" + target}, "exactly one of"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup"}, "exactly one of"},
			{[]string{"--name=nodegroup", "--kubernetes-version=1.37"}, `required flag(s) "cluster" not set`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--context=nope"}, `context "nope" does not exist`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "-o", "yaml"}, `--output "yaml": want text or json`},
			// Budgets that cannot work.
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--max-surge=-1"}, `"-1" is negative`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--max-unavailable=120%"}, `"120%" is over 100%`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--max-surge=0", "--max-unavailable=0"}, "leave no node to replace with"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--max-surge=4"}, "more than the 3 the group has"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--strategy=fast"}, `--strategy "fast"`},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--strategy=bluegreen", "--soak=-1s"}, "none may be negative"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.35"}, "the target ami-"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.35", "--dry-run"}, "is older: a downgrade, refused"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--kubernetes-version=1.37", "--post-cordon-wait=-5s"}, "--post-cordon-wait -5s: a duration cannot be negative"},
			{[]string{"--cluster=eksworkshop-eksctl", "--name=nodegroup", "--rollback"}, "nothing to go back from: no upgrade of eksworkshop-eksctl/nodegroup is under way"},
		}
		for _, c := range cases {
			r := s.Noderoll(append(base, c.args...)...)
			if r.Code == 0 {
				t.Errorf("%v: exit 0, want a failure", c.args)
				continue
			}
			if !strings.Contains(r.LastLine(), c.want) {
				t.Errorf("%v: last line %q, want it to say %q", c.args, r.LastLine(), c.want)
			}
		}
		if now := snapshot(t, s); now != start {
			t.Fatalf("refused runs changed the account or cluster:\nbefore %+v\nafter  %+v", start, now)
		}
	})

	budgets := WatchBudgets(t, s.Kube)
	nodes := WatchNodes(t, s.Kube, "eks.amazonaws.com/nodegroup", "nodegroup")
	group := WatchGroup(t, s)
	r := s.Noderoll(seedUpgrade...)
	violations, lowest, checks := budgets.Stop()
	// The seed's algorithm, seen from outside: 3 + 3 instances at most, the
	// original ready capacity always there, one node replaced at a time.
	if peakIn, lowReady, inFlight, samples := group.Stop(); peakIn > 6 || lowReady < 3 || inFlight != 1 {
		t.Errorf("eks over %d samples: peak %d instances (max 6), lowest %d Ready schedulable nodes (min 3), peak %d nodes in flight (want 1)", samples, peakIn, lowReady, inFlight)
	}
	if r.Code != 0 {
		t.Fatalf("upgrade failed: %s", r.LastLine())
	}
	t.Logf("PDB checks: %d, lowest healthy per budget: %v", checks, lowest)

	// The live view told the seed's story.
	for _, want := range []string{"[3/9] Surge: desired 3 -> 6, max 3 -> 6", "[4/9] Taint:", "Ready,SchedulingDisabled", "[9/9] Sizes restored", "Node count:       3 before, 6 at peak, 3 after",
		"EKS record: EKS records launch template", "EKS's record:     launch template version 2"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The seed's group launches eksctl's template, not one EKS generated:
	// noderoll's new version is recorded by EKS at the end, so there is
	// nothing to warn of beforehand and no mismatch after.
	if strings.Contains(r.Stdout, "[eks-template]") || strings.Contains(r.Stdout, "Ec2LaunchTemplateVersionMismatch") {
		t.Errorf("the run warns of the launch template:\n%s", r.Stdout)
	}
	eksRecordTrue(t, s)
	if n := onlyNoderollTerminated(t, s); n != 6 {
		t.Errorf("%d instances terminated, want 6: the 3 old ones and the 3 of the surge", n)
	}
	if p := nodes.Peak(); p != 6 {
		t.Errorf("peak node count seen by the test: %d, want 6", p)
	}
	if len(violations) > 0 || checks < 10 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}

	final := groupNodes(t, s)
	if len(final) != 3 {
		t.Fatalf("want 3 nodes after, got %d", len(final))
	}
	zones := map[string]bool{}
	for _, n := range final {
		zones[n.Labels["topology.kubernetes.io/zone"]] = true
		if n.Labels["eks.amazonaws.com/nodegroup-image"] != target || !strings.HasPrefix(n.Status.NodeInfo.KubeletVersion, "v1.37.") {
			t.Errorf("node %s: image %s kubelet %s, want %s and v1.37", n.Name, n.Labels["eks.amazonaws.com/nodegroup-image"], n.Status.NodeInfo.KubeletVersion, target)
		}
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
			t.Errorf("node %s left cordoned or tainted: %+v", n.Name, n.Spec.Taints)
		}
	}
	if len(zones) != 3 {
		t.Errorf("final nodes in %d zones, want 3", len(zones))
	}

	after := s.Group()
	if aws.ToInt32(after.MinSize) != start.min || aws.ToInt32(after.MaxSize) != start.max || aws.ToInt32(after.DesiredCapacity) != start.desired {
		t.Errorf("group sizes min/max/desired %d/%d/%d, want %d/%d/%d back", aws.ToInt32(after.MinSize), aws.ToInt32(after.MaxSize), aws.ToInt32(after.DesiredCapacity), start.min, start.max, start.desired)
	}
	if len(after.SuspendedProcesses) != 0 {
		t.Errorf("scaling processes left suspended: %+v", after.SuspendedProcesses)
	}
	terminations := s.TerminateCalls()
	for _, id := range oldIDs {
		if terminations[id] != 1 {
			t.Errorf("old instance %s: %d terminate calls, want exactly one", id, terminations[id])
		}
	}

	// The new launch template version is the old one with only the AMI changed.
	lts, err := s.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: before.LaunchTemplate.LaunchTemplateId, Versions: []string{"1", "2"}})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := lts.LaunchTemplateVersions[0].LaunchTemplateData, lts.LaunchTemplateVersions[1].LaunchTemplateData
	if aws.ToString(v2.ImageId) != target || aws.ToString(v2.UserData) != aws.ToString(v1.UserData) || len(v2.BlockDeviceMappings) != len(v1.BlockDeviceMappings) || v2.MetadataOptions.HttpTokens != v1.MetadataOptions.HttpTokens {
		t.Errorf("launch template version 2 is not version 1 with only the AMI changed")
	}
	if aws.ToString(after.LaunchTemplate.Version) != "2" {
		t.Errorf("group launches version %s, want 2", aws.ToString(after.LaunchTemplate.Version))
	}

	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler: %d replicas, annotations %v; want 1 and no pause record", *ca.Spec.Replicas, ca.Annotations)
	}
	waitWorkloads(t, s)

	// Kubernetes Events on the old nodes tell each step.
	events, err := s.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Node"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range events.Items {
		reasons[e.Reason]++
	}
	for _, r := range []string{"NoderollTainted", "NoderollDraining", "NoderollCordoned", "NoderollTerminating"} {
		if reasons[r] < 3 {
			t.Errorf("want an event %s on each of the 3 old nodes, got %d", r, reasons[r])
		}
	}

	t.Run("a rerun on the upgraded group changes nothing", func(t *testing.T) {
		was := snapshot(t, s)
		caBefore, _ := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
		r := s.Noderoll(seedUpgrade...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "up to date") {
			t.Fatalf("rerun: exit %d\n%s", r.Code, r.Stdout)
		}
		if now := snapshot(t, s); now != was {
			t.Fatalf("rerun changed things:\nbefore %+v\nafter  %+v", was, now)
		}
		caAfter, _ := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
		if caAfter.Generation != caBefore.Generation {
			t.Fatalf("rerun touched the cluster-autoscaler (generation %d -> %d)", caBefore.Generation, caAfter.Generation)
		}
	})
}

// TestBlockedBudgetFailsNamingItThenForceProceeds: a budget that never allows
// an eviction stops the upgrade with the pod and budget named, the autoscaler
// restored and no pod lost; --force then finishes the same upgrade.
func TestBlockedBudgetFailsNamingItThenForceProceeds(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t)
	ctx := context.Background()
	labels := map[string]string{"app": "payments"}
	replicas := int32(2)
	_, err := s.Kube.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "payments"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1s"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "payments", Image: "payments:1"}}, TerminationGracePeriodSeconds: ptr.To(int64(1))},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := intstr.FromString("100%")
	if _, err := s.Kube.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "payments"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWorkloads(t, s)
	payments := func() []string { return s.RunningPods("default", "app=payments") }
	before := payments()

	// --timeout bounds the whole run even when the eviction timeout is far
	// off, and leaves the group as resumable as any other failure. (Preflight
	// would stop each run before any change; these runs are about the drain
	// that meets the budget anyway.)
	// The run ends on its own --timeout, not on the eviction timeout: the
	// last line says which (no wall-clock bound here; benchmarks time).
	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=pdb-never-allows", "--timeout=25s", "--eviction-timeout=10m")...)
	if r.Code == 0 {
		t.Fatalf("--timeout=25s: the run succeeded through a budget allowing nothing")
	}
	if !strings.Contains(r.LastLine(), "--timeout 25s reached") || !strings.Contains(r.LastLine(), "blocked by PodDisruptionBudget default/payments") {
		t.Fatalf("the last line does not say the run timed out, and on what:\n%s", r.Stderr)
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Fatalf("cluster-autoscaler not restored after the timeout: %v %v", ca.Spec.Replicas, err)
	}
	if after := payments(); !slices.Equal(after, before) {
		t.Fatalf("payments pods changed on a timed-out upgrade: %v -> %v", before, after)
	}

	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=pdb-never-allows", "--eviction-timeout=6s")...)
	if r.Code == 0 {
		t.Fatal("the upgrade succeeded through a budget that allows no eviction")
	}
	cause := r.Stderr
	if !strings.Contains(cause, "blocked by PodDisruptionBudget default/payments") || !strings.Contains(cause, "pod default/payments-") || !strings.Contains(r.LastLine(), "default/payments") {
		t.Fatalf("the error does not name the blocking pod and budget:\n%s", r.Stderr)
	}
	ca, err = s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Fatalf("cluster-autoscaler not restored after the failure: %v %v", ca.Spec.Replicas, err)
	}
	if after := payments(); !slices.Equal(after, before) {
		t.Fatalf("payments pods changed on a failed upgrade: %v -> %v", before, after)
	}

	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=pdb-never-allows", "--eviction-timeout=4s", "--force")...)
	if r.Code != 0 {
		t.Fatalf("--force: %s", r.LastLine())
	}
	if !strings.Contains(r.Stdout, "Resume: resuming the upgrade") || !strings.Contains(r.Stdout, "force-deleted pod default/payments-") {
		t.Errorf("--force run did not resume and force the payments pods:\n%s", r.Stdout)
	}
	allOnTarget(t, s, 3)
	waitWorkloads(t, s)
}

// TestSelfManagedGroup: a self-managed group made without eksctl (no EKS
// node group, no node group label of any kind on its nodes, named by its
// Auto Scaling group) goes through the same upgrade, and the summary counts
// its nodes as the engine knows them, by their instances.
func TestSelfManagedGroup(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t, "--self-managed", "--plain", "--nodes=2", "--azs=2", "--pods-per-node=2")
	ctx := context.Background()
	for _, n := range groupNodesAll(t, s) {
		for k := range n.Labels {
			if strings.Contains(k, "nodegroup") {
				t.Fatalf("node %s carries %s: the test needs a group whose nodes say nothing of it", n.Name, k)
			}
		}
	}
	nodes := WatchNodes(t, s.Kube, "", "")
	// -o json: stdout is the summary alone, the live view goes to stderr.
	r := s.Noderoll(append(slices.Clone(seedUpgrade), "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("upgrade failed: %s", r.LastLine())
	}
	if p := nodes.Peak(); p != 4 {
		t.Errorf("peak %d nodes, want 4 (2 + one per AZ)", p)
	}
	var sum struct {
		Succeeded                          bool
		Replaced, Removed                  []string
		NodesBefore, PeakNodes, NodesAfter int
		Target                             struct{ ImageID string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("-o json: stdout is not the JSON summary: %v\n%s", err, r.Stdout)
	}
	if !sum.Succeeded || len(sum.Replaced) != 2 || len(sum.Removed) != 2 || sum.NodesBefore != 2 || sum.PeakNodes != 4 || sum.NodesAfter != 2 || sum.Target.ImageID != s.RecommendedAMI("1.37") {
		t.Errorf("-o json summary: %+v", sum)
	}
	if !strings.Contains(r.Stderr, "[3/9] Surge") {
		t.Errorf("with -o json the live view belongs on stderr:\n%s", r.Stderr)
	}
	target := s.RecommendedAMI("1.37")
	g := s.Group()
	if len(g.Instances) != 2 || aws.ToInt32(g.DesiredCapacity) != 2 {
		t.Fatalf("group: %d instances, desired %d", len(g.Instances), aws.ToInt32(g.DesiredCapacity))
	}
	var ids []string
	for _, i := range g.Instances {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range out.Reservations {
		for _, i := range res.Instances {
			if aws.ToString(i.ImageId) != target {
				t.Errorf("instance %s on %s, want %s", aws.ToString(i.InstanceId), aws.ToString(i.ImageId), target)
			}
		}
	}
	waitWorkloads(t, s)
}

// TestNewNodesThatNeverComeStopTheUpgradeBeforeAnyDrain: with no EC2
// capacity the surge never arrives; the upgrade fails at the node-ready
// timeout with the group's own reason, before any old node is tainted,
// cordoned or drained, and a rerun once capacity is back finishes it.
func TestNewNodesThatNeverComeStopTheUpgradeBeforeAnyDrain(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t, "--nodes=2", "--azs=2", "--pods-per-node=2")
	ctx := context.Background()
	waitWorkloads(t, s)
	running := func() []string {
		pods, err := s.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods.Items {
			// The cluster-autoscaler is paused and restored on purpose: a new pod.
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Labels["app"] != "cluster-autoscaler" {
				out = append(out, p.Namespace+"/"+p.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	before := running()
	for _, bad := range []struct{ az, count, want string }{
		{"us-east-9z", "0", `AZ "us-east-9z" is not one of the sandbox's (us-west-2a, us-west-2b)`},
		{"all", "1.5", `COUNT "1.5"`},
		{"all", "lots", `COUNT "lots"`},
	} {
		if r := s.Noderoll("sandbox", "capacity", "--dir", s.Dir, bad.az, bad.count); r.Code == 0 || !strings.Contains(r.LastLine(), bad.want) {
			t.Errorf("sandbox capacity %s %s: exit %d, %q; want a failure saying %s", bad.az, bad.count, r.Code, r.LastLine(), bad.want)
		}
	}
	s.Capacity("all", "0")

	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--node-ready-timeout=15s")...)
	if r.Code == 0 {
		t.Fatal("the upgrade succeeded without any new node")
	}
	last := r.LastLine()
	for _, want := range []string{"did not become Ready within 15s, so no old node was drained", "InsufficientInstanceCapacity - We currently do not have sufficient m5.large capacity"} {
		if !strings.Contains(last, want) {
			t.Errorf("the last line does not say %q:\n%s", want, last)
		}
	}
	if !strings.Contains(r.Stdout, "! launch failed, the Auto Scaling group retries: Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient") {
		t.Errorf("the live view did not report the failed launches as they happened:\n%s", r.Stdout)
	}
	for _, n := range groupNodes(t, s) {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
			t.Errorf("node %s was cordoned or tainted though no new node came: %+v", n.Name, n.Spec.Taints)
		}
	}
	if after := running(); !slices.Equal(after, before) {
		t.Errorf("pods moved though no new node came:\nbefore %v\nafter  %v", before, after)
	}
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Fatalf("cluster-autoscaler not restored after the failure: %v %v", ca.Spec.Replicas, err)
	}

	// Capacity returns: the same command resumes and finishes.
	s.Capacity("all", "unlimited")
	r = s.Noderoll(seedUpgrade...)
	if r.Code != 0 {
		t.Fatalf("rerun after capacity returned: %s", r.LastLine())
	}
	if !strings.Contains(r.Stdout, "Resume: resuming the upgrade") {
		t.Errorf("the rerun did not resume the recorded upgrade:\n%s", r.Stdout)
	}
	allOnTarget(t, s, 2)
	if g := s.Group(); aws.ToInt32(g.DesiredCapacity) != 2 || aws.ToInt32(g.MaxSize) != 2 {
		t.Errorf("after: desired %d, max %d; want both back to 2", aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MaxSize))
	}
	waitWorkloads(t, s)
}

// groupNodesAll lists every node of the sandbox, which holds one group.
func groupNodesAll(t *testing.T, s *Sandbox) []corev1.Node {
	t.Helper()
	nodes, err := s.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return nodes.Items
}

// allOnTarget checks that the managed group ended with want nodes, each on
// the recommended 1.37 AMI.
func allOnTarget(t *testing.T, s *Sandbox, want int) {
	t.Helper()
	target := s.RecommendedAMI("1.37")
	final := groupNodes(t, s)
	for _, n := range final {
		if n.Labels["eks.amazonaws.com/nodegroup-image"] != target {
			t.Errorf("node %s still on %s", n.Name, n.Labels["eks.amazonaws.com/nodegroup-image"])
		}
	}
	if len(final) != want {
		t.Errorf("want %d nodes after, got %d", want, len(final))
	}
}

// TestKilledMidUpgradeResumes: noderoll killed with SIGKILL at the riskiest
// moment (the group has terminated an old instance, its answer has not come
// back, the record is not saved yet), then again while it removes a surplus
// node, resumes each time from the record it keeps in the cluster. No old
// instance is terminated twice (counted from the endpoint's log of every
// call it received), the record counts every one, no budget goes below its
// minimum, and the group ends as if nothing had happened.
func TestKilledMidUpgradeResumes(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)

	// The endpoint terminates the first instance asked for, then holds its
	// answer back: noderoll is killed while it waits for it.
	s.Fault(awssim.Fault{Service: "autoscaling", Action: "TerminateInstanceInAutoScalingGroup", After: true, DelaySeconds: 120})
	run := s.Start(seedUpgrade...)
	eventually(t, 3*time.Minute, "a terminate call received", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) > 0, tail(run.out.String(), 5)
	})
	out := run.Kill(t)
	t.Logf("killed while the first termination's answer was held back; it had printed:\n%s", tail(out, 8))
	terminated := s.Calls("TerminateInstanceInAutoScalingGroup")[0].Params["InstanceId"]
	ca, err := s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || ca.Annotations["noderoll.io/paused-replicas"] != "1" {
		t.Fatalf("after the kill the autoscaler's original replicas must stay recorded: %v %v", ca.Annotations, err)
	}

	run = s.Start(seedUpgrade...)
	eventually(t, 3*time.Minute, "a node marked removing", func() (bool, string) {
		for _, n := range groupNodes(t, s) {
			if n.Annotations["noderoll.io/phase"] == "removing" {
				return true, ""
			}
		}
		return false, tail(run.out.String(), 5)
	})
	out = run.Kill(t)
	t.Logf("killed while a surplus node was being removed; it had printed:\n%s", tail(out, 8))

	// Killed again while EKS applies the MINIMAL strategy for its record
	// of the new version: the group's own strategy is then no longer the
	// user's, and only the record knows it.
	run = s.Start(seedUpgrade...)
	eventually(t, 3*time.Minute, "the strategy update for EKS's record", func() (bool, string) {
		return len(s.Calls("UpdateNodegroupConfig")) > 0, tail(run.out.String(), 5)
	})
	out = run.Kill(t)
	t.Logf("killed in EKS's record; it had printed:\n%s", tail(out, 8))

	r := s.Noderoll(append(slices.Clone(seedUpgrade), "-o", "json")...)
	if r.Code != 0 {
		t.Fatalf("the run after two kills failed: %s", r.LastLine())
	}
	if !strings.Contains(r.Stderr, "Resume: resuming the upgrade") {
		t.Errorf("the last run did not resume the recorded upgrade:\n%s", r.Stderr)
	}
	var sum struct{ Replaced, Removed []string }
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.Stdout)
	}
	violations, _, checks := budgets.Stop()
	if len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
	allOnTarget(t, s, 3)
	eksRecordTrue(t, s)
	if n := onlyNoderollTerminated(t, s); n != 6 {
		t.Errorf("%d instances terminated, want 6: the 3 old ones and the 3 of the surge", n)
	}
	if n := len(s.Calls("UpdateNodegroupVersion")); n != 1 {
		t.Errorf("EKS was asked to record the version %d times, want once", n)
	}
	terminations := s.TerminateCalls()
	oldIDs := terminatedOnce(t, before, terminations)
	slices.Sort(oldIDs)
	slices.Sort(sum.Replaced)
	if !slices.Equal(sum.Replaced, oldIDs) || len(sum.Removed) != 3 || !slices.Contains(sum.Replaced, terminated) {
		t.Errorf("the record counts replaced %v and removed %v; want every old instance (%v, %s killed mid-call among them) and 3 surplus", sum.Replaced, sum.Removed, oldIDs, terminated)
	}
	after := s.Group()
	if aws.ToInt32(after.MinSize) != 3 || aws.ToInt32(after.MaxSize) != 3 || aws.ToInt32(after.DesiredCapacity) != 3 || len(after.SuspendedProcesses) != 0 {
		t.Errorf("group after: min/max/desired %d/%d/%d, suspended %v; want 3/3/3 and none", aws.ToInt32(after.MinSize), aws.ToInt32(after.MaxSize), aws.ToInt32(after.DesiredCapacity), after.SuspendedProcesses)
	}
	ca, err = s.Kube.AppsV1().Deployments("kube-system").Get(ctx, "cluster-autoscaler", metav1.GetOptions{})
	if err != nil || *ca.Spec.Replicas != 1 || ca.Annotations["noderoll.io/paused-replicas"] != "" {
		t.Errorf("cluster-autoscaler after: %v replicas, annotations %v; want 1 and no pause record", ca.Spec.Replicas, ca.Annotations)
	}
	for _, n := range groupNodes(t, s) {
		if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 || n.Annotations["noderoll.io/phase"] != "" {
			t.Errorf("node %s left marked: unschedulable %v, taints %v, phase %q", n.Name, n.Spec.Unschedulable, n.Spec.Taints, n.Annotations["noderoll.io/phase"])
		}
	}
	waitWorkloads(t, s)
}

// TestUpgradingTheSameGroupAgain: platform teams roll a new AMI every few
// weeks, so the second upgrade of a group is the common case. Two releases
// of 1.37 one after the other each get a new launch template version, the
// group pointed at it and every node replaced; a third run on the same
// target changes nothing and says so.
func TestUpgradingTheSameGroupAgain(t *testing.T) {
	t.Parallel() // a sandbox (or a folder) of its own
	s := StartSandbox(t, "--nodes=2", "--azs=2", "--pods-per-node=2")
	ctx := context.Background()
	ltID := s.Group().LaunchTemplate.LaunchTemplateId
	for k, release := range []string{"1.37.2-20261020", "1.37.2-20261115"} {
		before := s.Group()
		out, err := s.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/amazon-eks-node-al2023-x86_64-standard-1.37-v" + release[len("1.37.2-"):] + "/image_id")})
		if err != nil {
			t.Fatal(err)
		}
		target := aws.ToString(out.Parameter.Value)
		args := []string{"upgrade", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--release-version=" + release,
			"--strategy=eks", "--post-cordon-wait=1s", "--eviction-retry-delay=1s", "-o", "json"}
		if k == 1 { // the second one as a cross-account user would: through a role
			args = append(args, "--role-arn="+sandbox.SandboxRoleARN, "--external-id="+sandbox.SandboxExternalID)
		}
		callsBefore := len(s.Calls(""))
		r := s.Noderoll(args...)
		if r.Code != 0 {
			t.Fatalf("upgrade %d to %s: %s", k+1, release, r.LastLine())
		}
		if k == 1 {
			for _, c := range s.Calls("")[callsBefore:] {
				if c.Action != "AssumeRole" && !strings.HasPrefix(c.AccessKey, "ASIA") {
					t.Errorf("with --role-arn, %s was signed with %s, not the role's credentials", c.Action, c.AccessKey)
				}
			}
		}
		var sum struct {
			UpToDate          bool
			Replaced, Removed []string
		}
		if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
			t.Fatalf("-o json: %v", err)
		}
		after := s.Group()
		wantVersion := fmt.Sprint(k + 2)
		if sum.UpToDate || len(sum.Replaced) != 2 || aws.ToString(after.LaunchTemplate.Version) != wantVersion {
			t.Fatalf("upgrade %d to %s: up to date %v, replaced %v, group on launch template version %s (want %s)", k+1, release, sum.UpToDate, sum.Replaced, aws.ToString(after.LaunchTemplate.Version), wantVersion)
		}
		lts, err := s.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: ltID, Versions: []string{wantVersion}})
		if err != nil || aws.ToString(lts.LaunchTemplateVersions[0].LaunchTemplateData.ImageId) != target {
			t.Fatalf("launch template version %s does not launch %s: %v", wantVersion, target, err)
		}
		for _, n := range groupNodes(t, s) {
			if n.Labels["eks.amazonaws.com/nodegroup-image"] != target {
				t.Errorf("after upgrade %d node %s runs %s, want %s", k+1, n.Name, n.Labels["eks.amazonaws.com/nodegroup-image"], target)
			}
		}
		terminations := s.TerminateCalls()
		for _, i := range before.Instances {
			if id := aws.ToString(i.InstanceId); terminations[id] != 1 || !slices.Contains(sum.Replaced, id) {
				t.Errorf("upgrade %d: instance %s of the group before it: %d terminate calls, in replaced: %v", k+1, id, terminations[id], slices.Contains(sum.Replaced, id))
			}
		}
		waitWorkloads(t, s)
	}

	was := snapshot(t, s)
	calls := len(s.Calls(""))
	r := s.Noderoll("upgrade", "nodegroup", "--cluster=eksworkshop-eksctl", "--name=nodegroup", "--release-version=1.37.2-20261115")
	if r.Code != 0 || !strings.Contains(r.Stdout, "is up to date on") {
		t.Fatalf("third run on the same target: exit %d\n%s", r.Code, r.Stdout)
	}
	if now := snapshot(t, s); now != was {
		t.Fatalf("the third run changed things:\nbefore %+v\nafter  %+v", was, now)
	}
	for _, c := range s.Calls("")[calls:] {
		if !strings.HasPrefix(c.Action, "Describe") && !strings.HasPrefix(c.Action, "Get") && !strings.HasPrefix(c.Action, "List") {
			t.Errorf("the third run called %s %v", c.Action, c.Params)
		}
	}
}
