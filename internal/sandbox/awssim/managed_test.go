package awssim

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/smithy-go"
	"k8s.io/utils/clock"
)

// fakeCluster registers nodes and plays EKS's node operations, recording
// them in order.
type fakeCluster struct {
	fakeRegistrar
	log       []string
	tainted   map[string]bool
	refuse    string // a node whose drain fails, as a blocking budget makes it
	drainedAt map[string]int
	// drainTime makes each drain take a while, so that drains at once
	// overlap; inDrain and mostInDrain count them.
	drainTime            time.Duration
	inDrain, mostInDrain int
}

func (f *fakeCluster) NodeReady(_ context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.nodes[name]
	return ok, nil
}

func (f *fakeCluster) TaintNode(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tainted[name] = true
	f.log = append(f.log, "taint "+name)
	return nil
}

func (f *fakeCluster) DrainNode(_ context.Context, name string, _ time.Duration) error {
	f.mu.Lock()
	f.inDrain++
	f.mostInDrain = max(f.mostInDrain, f.inDrain)
	f.mu.Unlock()
	time.Sleep(f.drainTime)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inDrain--
	f.log = append(f.log, "drain "+name)
	if name == f.refuse {
		return errors.New("pod default/db-0 blocked by PodDisruptionBudget default/db")
	}
	return nil
}

type managedEnv struct {
	acct    *Account
	cluster *fakeCluster
	eks     *eks.Client
	group   string
}

func newManagedEnv(t *testing.T) *managedEnv {
	t.Helper()
	acct := NewAccount("us-west-2", clock.RealClock{}, Delays{Boot: 20 * time.Millisecond, Shutdown: 20 * time.Millisecond})
	acct.SetManagedTimings(ManagedTimings{PostCordon: 10 * time.Millisecond, EvictionTimeout: time.Second, NodeReady: 10 * time.Second})
	srv := httptest.NewServer(NewServer(acct, nil))
	t.Cleanup(srv.Close)
	fc := &fakeCluster{fakeRegistrar: fakeRegistrar{nodes: map[string]NodeSpec{}}, tainted: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	acct.CreateCluster("eksworkshop-eksctl", "1.37", "https://127.0.0.1:6443")
	ami, _ := acct.Parameter("/aws/service/eks/optimized-ami/1.36/amazon-linux-2023/x86_64/standard/recommended/image_id")
	name, err := acct.CreateNodeGroup(GroupSpec{Cluster: "eksworkshop-eksctl", Name: "nodegroup", Managed: true, AZs: azs,
		Min: 3, Max: 6, Desired: 3, InstanceType: "m5.large", ImageID: ami})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); acct.Run(ctx, fc, nil) }()
	cfg := aws.Config{Region: "us-west-2", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSANDBOX", "sandbox-secret", "")}
	return &managedEnv{acct: acct, cluster: fc, eks: eks.NewFromConfig(cfg), group: name}
}

// joined waits until n nodes are registered.
func (m *managedEnv) joined(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		m.cluster.mu.Lock()
		k := len(m.cluster.nodes)
		m.cluster.mu.Unlock()
		if k >= n {
			return
		}
	}
	t.Fatalf("fewer than %d nodes joined", n)
}

func (m *managedEnv) wait(t *testing.T, id string) *ekstypes.Update {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, err := m.eks.DescribeUpdate(context.Background(), &eks.DescribeUpdateInput{Name: aws.String("eksworkshop-eksctl"), UpdateId: aws.String(id), NodegroupName: aws.String("nodegroup")})
		if err != nil {
			t.Fatal(err)
		}
		if out.Update.Status != ekstypes.UpdateStatusInProgress {
			return out.Update
		}
	}
	t.Fatal("the update did not end")
	return nil
}

// UpdateNodegroupVersion as EKS documents its behaviour
// (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html,
// https://docs.aws.amazon.com/eks/latest/APIReference/API_UpdateNodegroupVersion.html):
// a new launch template version with the target AMI, the group surged by a
// node a zone, every old node tainted before the first drain, old nodes
// drained one at a time and replaced, then scaled back; the node group
// UPDATING meanwhile, a second update refused, the same request token
// answered with the same update.
func TestUpdateNodegroupVersionReplacesEveryNodeAsEKSDoes(t *testing.T) {
	m := newManagedEnv(t)
	ctx := context.Background()
	m.joined(t, 3)
	in := &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"),
		Version: aws.String("1.37"), ClientRequestToken: aws.String("token-1")}
	out, err := m.eks.UpdateNodegroupVersion(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Update.Status != ekstypes.UpdateStatusInProgress || out.Update.Type != ekstypes.UpdateTypeVersionUpdate {
		t.Fatalf("update %+v", out.Update)
	}
	again, err := m.eks.UpdateNodegroupVersion(ctx, in)
	if err != nil || aws.ToString(again.Update.Id) != aws.ToString(out.Update.Id) {
		t.Fatalf("the same request token: %v, %v", again, err)
	}
	ng, err := m.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil || ng.Nodegroup.Status != ekstypes.NodegroupStatusUpdating {
		t.Fatalf("node group status during the update: %v %v", ng, err)
	}
	in.ClientRequestToken = aws.String("token-2")
	var apiErr smithy.APIError
	if _, err := m.eks.UpdateNodegroupVersion(ctx, in); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ResourceInUseException" {
		t.Fatalf("a second update meanwhile: %v", err)
	}
	u := m.wait(t, aws.ToString(out.Update.Id))
	if u.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("update ended %s: %+v", u.Status, u.Errors)
	}
	target, _ := m.acct.Parameter("/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/image_id")
	m.acct.mu.Lock()
	g := m.acct.groups[m.group]
	var inService []string
	for _, i := range m.acct.groupInstances(m.group) {
		if i.Lifecycle == LifecycleInService {
			inService = append(inService, i.ImageID)
			if i.ImageID != target {
				t.Errorf("instance %s still on %s", i.ID, i.ImageID)
			}
		}
	}
	desired, maxSize := g.Desired, g.Max
	m.acct.mu.Unlock()
	if desired != 3 || maxSize != 6 {
		t.Errorf("sizes after the update: desired %d max %d; want 3 and 6", desired, maxSize)
	}
	m.cluster.mu.Lock()
	log := slices.Clone(m.cluster.log)
	m.cluster.mu.Unlock()
	firstDrain := slices.IndexFunc(log, func(s string) bool { return s[:5] == "drain" })
	taints := 0
	for _, l := range log {
		if l[:5] == "taint" {
			taints++
		}
	}
	// Then each surplus node tainted before it is drained.
	surplusOK := len(log) == 3+3+3+3
	for k := 6; surplusOK && k < len(log); k += 2 {
		surplusOK = log[k][:5] == "taint" && log[k+1] == "drain"+log[k][5:]
	}
	if taints != 6 || firstDrain != 3 || !surplusOK {
		t.Fatalf("want 3 taints, 3 drains of old nodes, then each of 3 surplus nodes tainted and drained:\n%v", log)
	}
	ng, err = m.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil || ng.Nodegroup.Status != ekstypes.NodegroupStatusActive || aws.ToString(ng.Nodegroup.Version) != "1.37" {
		t.Fatalf("node group after the update: %v %v", ng.Nodegroup, err)
	}
}

// A drain a budget blocks fails the update with PodEvictionFailure naming
// the instance, unless the update was forced.
func TestABlockedDrainFailsTheUpdateUnlessForced(t *testing.T) {
	for _, force := range []bool{false, true} {
		m := newManagedEnv(t)
		ctx := context.Background()
		m.joined(t, 3)
		m.cluster.mu.Lock()
		for n := range m.cluster.nodes {
			m.cluster.refuse = n // an old node
			break
		}
		m.cluster.mu.Unlock()
		out, err := m.eks.UpdateNodegroupVersion(ctx, &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"),
			NodegroupName: aws.String("nodegroup"), Force: force})
		if err != nil {
			t.Fatal(err)
		}
		u := m.wait(t, aws.ToString(out.Update.Id))
		switch {
		case force && u.Status != ekstypes.UpdateStatusSuccessful:
			t.Errorf("forced: %s %+v", u.Status, u.Errors)
		case !force && (u.Status != ekstypes.UpdateStatusFailed || len(u.Errors) != 1 || u.Errors[0].ErrorCode != ekstypes.ErrorCodePodEvictionFailure || len(u.Errors[0].ResourceIds) != 1):
			t.Errorf("not forced: %s %+v", u.Status, u.Errors)
		}
	}
}

// UpdateNodegroupConfig's updateConfig as the EKS API reference defines it
// (https://docs.aws.amazon.com/eks/latest/APIReference/API_UpdateNodegroupConfig.html,
// API_NodegroupUpdateConfig.html: one of maxUnavailable, 1 to 100, and
// maxUnavailablePercentage, 1 to 100), applied as an update of type
// ConfigUpdate; and an update of the version then as the user guide says
// (managed-node-update-behavior.html): the surge is the larger of a node a
// zone and maxUnavailable, and up to maxUnavailable nodes drain at once.
func TestUpdateNodegroupConfigSetsHowManyNodesAnUpdateReplacesAtOnce(t *testing.T) {
	m := newManagedEnv(t)
	m.cluster.drainTime = 50 * time.Millisecond
	ctx := context.Background()
	m.joined(t, 3)
	set := func(c *ekstypes.NodegroupUpdateConfig, labels bool) (*ekstypes.Update, error) {
		in := &eks.UpdateNodegroupConfigInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"), UpdateConfig: c}
		if labels {
			in.Labels = &ekstypes.UpdateLabelsPayload{AddOrUpdateLabels: map[string]string{"team": "web"}}
		}
		out, err := m.eks.UpdateNodegroupConfig(ctx, in)
		if err != nil {
			return nil, err
		}
		return out.Update, nil
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	for name, c := range map[string]*ekstypes.NodegroupUpdateConfig{
		"both fields":  {MaxUnavailable: aws.Int32(2), MaxUnavailablePercentage: aws.Int32(50)},
		"zero":         {MaxUnavailable: aws.Int32(0)},
		"over 100":     {MaxUnavailable: aws.Int32(101)},
		"0 percent":    {MaxUnavailablePercentage: aws.Int32(0)},
		"nothing":      nil,
		"empty config": {},
	} {
		if _, err := set(c, false); code(err) != "InvalidParameterException" {
			t.Errorf("%s: got %v, want InvalidParameterException", name, err)
		}
	}
	// API_LaunchTemplateSpecification: an ID or a name, not both.
	ng0, err := m.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
	if err != nil {
		t.Fatal(err)
	}
	lt := ng0.Nodegroup.LaunchTemplate
	if _, err := m.eks.UpdateNodegroupVersion(ctx, &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"),
		LaunchTemplate: &ekstypes.LaunchTemplateSpecification{Id: lt.Id, Name: lt.Name, Version: lt.Version}}); code(err) != "InvalidParameterException" {
		t.Errorf("a launch template by ID and name: got %v", err)
	}
	if _, err := set(&ekstypes.NodegroupUpdateConfig{MaxUnavailable: aws.Int32(2)}, true); code(err) != "InvalidParameterException" {
		t.Errorf("labels: got %v, want the sandbox's refusal", err)
	}
	if _, err := m.eks.UpdateNodegroupConfig(ctx, &eks.UpdateNodegroupConfigInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nope"),
		UpdateConfig: &ekstypes.NodegroupUpdateConfig{MaxUnavailable: aws.Int32(2)}}); code(err) != "ResourceNotFoundException" {
		t.Errorf("an unknown group: got %v", err)
	}
	describe := func() *ekstypes.Nodegroup {
		ng, err := m.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
		if err != nil {
			t.Fatal(err)
		}
		return ng.Nodegroup
	}
	if c := describe().UpdateConfig; aws.ToInt32(c.MaxUnavailable) != 1 || c.MaxUnavailablePercentage != nil {
		t.Fatalf("refused calls changed the config: %+v", c)
	}

	u, err := set(&ekstypes.NodegroupUpdateConfig{MaxUnavailablePercentage: aws.Int32(50)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if u.Type != ekstypes.UpdateTypeConfigUpdate || len(u.Params) != 1 || u.Params[0].Type != ekstypes.UpdateParamTypeMaxUnavailablePercentage || aws.ToString(u.Params[0].Value) != "50" {
		t.Fatalf("config update %+v", u)
	}
	if done := m.wait(t, aws.ToString(u.Id)); done.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("config update ended %s", done.Status)
	}
	if c := describe().UpdateConfig; aws.ToInt32(c.MaxUnavailablePercentage) != 50 || c.MaxUnavailable != nil {
		t.Fatalf("after the percentage: %+v", c)
	}
	// Five at once on a group of three: the surge is five, all three old
	// nodes drain together.
	u, err = set(&ekstypes.NodegroupUpdateConfig{MaxUnavailable: aws.Int32(5)}, false)
	if err != nil {
		t.Fatal(err)
	}
	m.wait(t, aws.ToString(u.Id))
	if c := describe().UpdateConfig; aws.ToInt32(c.MaxUnavailable) != 5 || c.MaxUnavailablePercentage != nil {
		t.Fatalf("after the count: %+v", c)
	}
	out, err := m.eks.UpdateNodegroupVersion(ctx, &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"), Version: aws.String("1.37")})
	if err != nil {
		t.Fatal(err)
	}
	sc := describe().ScalingConfig
	if aws.ToInt32(sc.DesiredSize) != 8 || aws.ToInt32(sc.MaxSize) != 11 {
		t.Fatalf("surged to desired %d max %d, want 8 and 11 (a surge of maxUnavailable 5, above the 3 zones)", aws.ToInt32(sc.DesiredSize), aws.ToInt32(sc.MaxSize))
	}
	if _, err := set(&ekstypes.NodegroupUpdateConfig{MaxUnavailable: aws.Int32(1)}, false); code(err) != "ResourceInUseException" {
		t.Errorf("a config update during a version update: got %v", err)
	}
	if done := m.wait(t, aws.ToString(out.Update.Id)); done.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("version update ended %s: %+v", done.Status, done.Errors)
	}
	m.cluster.mu.Lock()
	most := m.cluster.mostInDrain
	m.cluster.mu.Unlock()
	if most != 3 {
		t.Fatalf("at most %d drains at once, want all 3 old nodes together", most)
	}
	sc = describe().ScalingConfig
	if aws.ToInt32(sc.DesiredSize) != 3 || aws.ToInt32(sc.MaxSize) != 6 {
		t.Fatalf("scaled back to desired %d max %d, want 3 and 6", aws.ToInt32(sc.DesiredSize), aws.ToInt32(sc.MaxSize))
	}
}

// The MINIMAL update strategy as EKS documents it
// (API_NodegroupUpdateConfig.html: "terminates the old instances before
// launching the new instances"): no surge; only the nodes off the target
// are replaced, maxUnavailable at a time; so on a group whose every node
// runs the target, an update to a launch template version records it and
// replaces none.
func TestTheMinimalStrategyReplacesOnlyTheNodesOffTheTarget(t *testing.T) {
	m := newManagedEnv(t)
	ctx := context.Background()
	m.joined(t, 3)
	describe := func() *ekstypes.Nodegroup {
		ng, err := m.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup")})
		if err != nil {
			t.Fatal(err)
		}
		return ng.Nodegroup
	}
	if s := describe().UpdateConfig.UpdateStrategy; s != ekstypes.NodegroupUpdateStrategiesDefault {
		t.Fatalf("a new group's strategy %q, want DEFAULT", s)
	}
	setStrategy := func(s ekstypes.NodegroupUpdateStrategies) (*ekstypes.Update, error) {
		out, err := m.eks.UpdateNodegroupConfig(ctx, &eks.UpdateNodegroupConfigInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"),
			UpdateConfig: &ekstypes.NodegroupUpdateConfig{UpdateStrategy: s}})
		if err != nil {
			return nil, err
		}
		return out.Update, nil
	}
	if _, err := setStrategy("FAST"); err == nil || !strings.Contains(err.Error(), "InvalidParameterException") {
		t.Errorf("an unknown strategy: %v", err)
	}
	u, err := setStrategy(ekstypes.NodegroupUpdateStrategiesMinimal)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Params) != 1 || u.Params[0].Type != ekstypes.UpdateParamTypeUpdateStrategy || aws.ToString(u.Params[0].Value) != "MINIMAL" {
		t.Fatalf("config update params %+v", u.Params)
	}
	m.wait(t, aws.ToString(u.Id))
	if c := describe().UpdateConfig; c.UpdateStrategy != ekstypes.NodegroupUpdateStrategiesMinimal || aws.ToInt32(c.MaxUnavailable) != 1 {
		t.Fatalf("after MINIMAL: %+v (maxUnavailable kept)", c)
	}
	drains := func() int {
		m.cluster.mu.Lock()
		defer m.cluster.mu.Unlock()
		n := 0
		for _, l := range m.cluster.log {
			if strings.HasPrefix(l, "drain ") {
				n++
			}
		}
		return n
	}
	// Off the target: each old node replaced, none launched first.
	out, err := m.eks.UpdateNodegroupVersion(ctx, &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"), Version: aws.String("1.37")})
	if err != nil {
		t.Fatal(err)
	}
	if sc := describe().ScalingConfig; aws.ToInt32(sc.DesiredSize) != 3 || aws.ToInt32(sc.MaxSize) != 6 {
		t.Errorf("a MINIMAL update surged to desired %d max %d", aws.ToInt32(sc.DesiredSize), aws.ToInt32(sc.MaxSize))
	}
	if done := m.wait(t, aws.ToString(out.Update.Id)); done.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("the MINIMAL update ended %s: %+v", done.Status, done.Errors)
	}
	if n := drains(); n != 3 {
		t.Errorf("%d nodes drained, want the 3 old ones", n)
	}
	// Every node on the target: recording a template version replaces none.
	ng := describe()
	lt := ng.LaunchTemplate
	out, err = m.eks.UpdateNodegroupVersion(ctx, &eks.UpdateNodegroupVersionInput{ClusterName: aws.String("eksworkshop-eksctl"), NodegroupName: aws.String("nodegroup"),
		LaunchTemplate: &ekstypes.LaunchTemplateSpecification{Id: lt.Id, Version: lt.Version}})
	if err != nil {
		t.Fatal(err)
	}
	if done := m.wait(t, aws.ToString(out.Update.Id)); done.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("the recording update ended %s: %+v", done.Status, done.Errors)
	}
	if n := drains(); n != 3 {
		t.Errorf("recording a version on a group already on it drained %d more nodes", n-3)
	}
	if sc := describe().ScalingConfig; aws.ToInt32(sc.DesiredSize) != 3 {
		t.Errorf("desired %d after, want 3", aws.ToInt32(sc.DesiredSize))
	}
}
