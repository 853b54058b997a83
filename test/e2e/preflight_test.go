package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// clusterSnapshot is what a run that must change nothing could touch in the
// cluster beyond accountSnapshot: nodes' cordons, taints and marks, and
// noderoll's records and locks.
type clusterSnapshot struct {
	nodes  map[string]string
	leases int
}

func clusterState(t *testing.T, s *Sandbox) clusterSnapshot {
	t.Helper()
	ctx := context.Background()
	snap := clusterSnapshot{nodes: map[string]string{}}
	for _, n := range groupNodes(t, s) {
		snap.nodes[n.Name] = n.ResourceVersion
	}
	leases, err := s.Kube.CoordinationV1().Leases("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=noderoll"})
	if err != nil {
		t.Fatal(err)
	}
	snap.leases = len(leases.Items)
	return snap
}

// TestPreflightFindsWhatWouldStallTheRun seeds the sandbox with each thing
// preflight looks for, and checks that --dry-run names each with its object,
// fails, and changes nothing; that a real run stops on them before any
// change; and that --ignore-preflight lets them through.
func TestPreflightFindsWhatWouldStallTheRun(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	node := groupNodes(t, s)[0].Name
	deploy := func(name string, mutate func(*corev1.PodSpec, *metav1.ObjectMeta)) {
		t.Helper()
		labels := map[string]string{"app": name}
		meta := metav1.ObjectMeta{Labels: labels}
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: name + ":1"}}, TerminationGracePeriodSeconds: ptr.To(int64(1))}
		if mutate != nil {
			mutate(&spec, &meta)
		}
		if _, err := s.Kube.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: meta, Spec: spec}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	budget := func(name, app string, minAvailable, maxUnavailable *intstr.IntOrString) {
		t.Helper()
		if _, err := s.Kube.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				MinAvailable: minAvailable, MaxUnavailable: maxUnavailable},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all, one := intstr.FromString("100%"), intstr.FromInt32(1)
	onNode := func(spec *corev1.PodSpec, _ *metav1.ObjectMeta) { spec.NodeName = node }

	deploy("locked", onNode)
	budget("locked", "locked", &all, nil)
	deploy("api", onNode)
	budget("api", "api", nil, &one)
	budget("api-too", "api", nil, &one)
	deploy("scratch", func(spec *corev1.PodSpec, meta *metav1.ObjectMeta) {
		onNode(spec, meta)
		spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	})
	deploy("nightly", func(spec *corev1.PodSpec, meta *metav1.ObjectMeta) {
		onNode(spec, meta)
		meta.Annotations = map[string]string{"karpenter.sh/do-not-disrupt": "true"}
	})
	// A volume in a zone the group has no subnet in.
	if _, err := s.Kube.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger-data"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "manual",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/ledger"}},
			ClaimRef:                      &corev1.ObjectReference{Namespace: "default", Name: "ledger-data"},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"us-west-2d"}}},
			}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Kube.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger-data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To("manual"),
			VolumeName: "ledger-data", Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deploy("ledger", func(spec *corev1.PodSpec, meta *metav1.ObjectMeta) {
		onNode(spec, meta)
		spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "ledger-data"}}}}
	})
	// A pod nothing recreates.
	if _, err := s.Kube.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "debug"},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "sh", Image: "busybox"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWorkloads(t, s)

	account, cluster := snapshot(t, s), clusterState(t, s)
	unchanged := func(when string) {
		t.Helper()
		if a, c := snapshot(t, s), clusterState(t, s); a != account || !maps.Equal(c.nodes, cluster.nodes) || c.leases != cluster.leases {
			t.Fatalf("%s changed something: account %+v -> %+v, nodes %v -> %v, leases %d -> %d", when, account, a, cluster.nodes, c.nodes, cluster.leases, c.leases)
		}
	}

	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--dry-run")...)
	if r.Code == 0 || !strings.Contains(r.LastLine(), "dry run: 5 blocking preflight finding(s)") {
		t.Fatalf("--dry-run: exit %d, last line %q; want a failure on 5 blocking findings\n%s", r.Code, r.LastLine(), r.Stdout)
	}
	for _, want := range []string{
		"Dry run: nothing was changed.",
		"Upgrade of eksworkshop-eksctl/nodegroup with strategy eks: 3 of 3 instances to replace",
		"BLOCKING [pdb-never-allows] PodDisruptionBudget default/locked minAvailable 100% asks for all 1 of its pods",
		"BLOCKING [pdb-overlap] Pod default/api-",
		"BLOCKING [bare-pod] Pod default/debug on node " + node + " has no controller",
		"BLOCKING [do-not-disrupt] Pod default/nightly-",
		"BLOCKING [zonal-volume] Pod default/ledger-",
		"zone us-west-2d, where the group gets no new node",
		"warning  [local-storage] Pod default/scratch-",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("--dry-run does not say %q:\n%s", want, r.Stdout)
		}
	}
	unchanged("--dry-run")

	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--dry-run", "-o", "json")...)
	var rep struct {
		DryRun   bool
		Blocking int
		Findings []struct{ Check, Severity, Object string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("--dry-run -o json: %v\n%s", err, r.Stdout)
	}
	checks := map[string]string{}
	for _, f := range rep.Findings {
		checks[f.Check] = f.Severity
	}
	want := map[string]string{"pdb-never-allows": "blocking", "pdb-overlap": "blocking", "bare-pod": "blocking", "do-not-disrupt": "blocking",
		"zonal-volume": "blocking", "local-storage": "warning"}
	if !rep.DryRun || rep.Blocking != 5 || !maps.Equal(checks, want) || r.Code == 0 {
		t.Fatalf("-o json: exit %d, %+v; want checks %v", r.Code, rep, want)
	}
	unchanged("--dry-run -o json")

	r = s.Noderoll(seedUpgrade...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "preflight found 5 blocking problem(s); nothing was changed") ||
		!strings.Contains(r.Stderr, "--ignore-preflight=bare-pod,do-not-disrupt,pdb-never-allows,pdb-overlap,zonal-volume") {
		t.Fatalf("a real run: exit %d; want it stopped by preflight naming the flag to go on:\n%s", r.Code, r.Stderr)
	}
	unchanged("a run stopped by preflight")

	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--dry-run", "--ignore-preflight=bare-pod,do-not-disrupt,pdb-never-allows,pdb-overlap,zonal-volume")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Preflight: 5 blocking (5 ignored by --ignore-preflight), 1 warning(s)") {
		t.Fatalf("--dry-run with every blocking check ignored: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	unchanged("--dry-run --ignore-preflight")
}

// TestPreflightChecksTheAccountQuota: with EC2's On-Demand Standard vCPU
// quota at 8 (`noderoll sandbox quota`), the 3 m5.large of the group use 6
// and a surge of 3 needs 6 more. --dry-run names the quota and what fits,
// and changes nothing; a real run stops before any change. Told to ignore
// the check, the run meets what preflight foretold (launches fail with
// VcpuLimitExceeded) and stops before any drain, naming it; with the quota
// raised, a rerun finishes.
func TestPreflightChecksTheAccountQuota(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	if r := s.Noderoll("sandbox", "quota", "--dir", s.Dir, "L-1216C47A", "8"); r.Code != 0 || !strings.Contains(r.Stdout, "EC2 quota L-1216C47A is 8 vCPUs") {
		t.Fatalf("sandbox quota: %s %s", r.Stdout, r.LastLine())
	}
	if r := s.Noderoll("sandbox", "quota", "--dir", s.Dir, "L-NOPE", "8"); r.Code == 0 || !strings.Contains(r.LastLine(), "the sandbox knows") {
		t.Fatalf("an unknown quota: exit %d %s", r.Code, r.LastLine())
	}
	account, cluster := snapshot(t, s), clusterState(t, s)
	unchanged := func(when string) {
		t.Helper()
		if a, c := snapshot(t, s), clusterState(t, s); a != account || !maps.Equal(c.nodes, cluster.nodes) || c.leases != cluster.leases {
			t.Fatalf("%s changed something: account %+v -> %+v, nodes %v -> %v", when, account, a, cluster.nodes, c.nodes)
		}
	}
	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--dry-run")...)
	if r.Code == 0 || !strings.Contains(r.Stdout, "BLOCKING [quota] NodeGroup eksworkshop-eksctl/nodegroup") ||
		!strings.Contains(r.Stdout, "needs 6 vCPUs more of EC2 quota L-1216C47A") || !strings.Contains(r.Stdout, "lower --max-surge to 1") {
		t.Fatalf("--dry-run under a full quota: exit %d\n%s", r.Code, r.Stdout)
	}
	unchanged("--dry-run")
	r = s.Noderoll(seedUpgrade...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "--ignore-preflight=quota") {
		t.Fatalf("a real run under a full quota: exit %d\n%s", r.Code, r.Stderr)
	}
	unchanged("a run stopped by preflight")

	r = s.Noderoll(append(slices.Clone(seedUpgrade), "--ignore-preflight=quota", "--node-ready-timeout=15s")...)
	if r.Code == 0 || !strings.Contains(r.LastLine(), "VcpuLimitExceeded") || !strings.Contains(r.LastLine(), "no old node was drained") {
		t.Fatalf("the run past the quota: exit %d\n%s", r.Code, r.LastLine())
	}
	if n := len(s.TerminateCalls()); n != 0 {
		t.Fatalf("%d instances terminated by a run that never got its capacity", n)
	}
	nodes, err := s.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			t.Fatalf("node %s cordoned by a run that drained nothing", n.Name)
		}
	}
	if r := s.Noderoll("sandbox", "quota", "--dir", s.Dir, "L-1216C47A", "64"); r.Code != 0 {
		t.Fatal(r.LastLine())
	}
	if r := s.Noderoll(seedUpgrade...); r.Code != 0 {
		t.Fatalf("the rerun with room: %s\n%s", r.LastLine(), tail(r.Stdout, 20))
	}
	allOnTarget(t, s, 3)
}
