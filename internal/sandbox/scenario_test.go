package sandbox

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// --groups seeds the cluster with that many alike managed groups, as EKS
// lists them, and the scenario waits for all their nodes.
func TestAScenarioSeedsSeveralGroups(t *testing.T) {
	sc := SeedScenario()
	sc.Groups = 3
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	acct := awssim.NewAccount("us-west-2", clock.RealClock{}, awssim.Delays{})
	if _, err := sc.SeedAWS(acct, "https://127.0.0.1:6443"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(awssim.NewServer(acct, nil))
	defer srv.Close()
	client := eks.NewFromConfig(aws.Config{Region: "us-west-2", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")})
	out, err := client.ListNodegroups(context.Background(), &eks.ListNodegroupsInput{ClusterName: aws.String(sc.Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nodegroup", "nodegroup-2", "nodegroup-3"}; !slices.Equal(out.Nodegroups, want) {
		t.Fatalf("node groups %v, want %v", out.Nodegroups, want)
	}
	if sc.TotalNodes() != 9 {
		t.Errorf("the scenario waits for %d nodes, want 9", sc.TotalNodes())
	}
	// --pods-per-node holds on every group's nodes: the teams' mix at 10
	// a node over three groups of 100 is 3,000 pods, as on one of 300.
	sc.Nodes, sc.PodsPerNode, sc.Mix = 100, 10, MixTeams
	one := sc
	one.Nodes, one.Groups = 300, 1
	count := func(s Scenario) (n int32) {
		for _, w := range s.Workloads() {
			n += w.Replicas
		}
		return n
	}
	if got, want := count(sc), count(one); got != want || got < 3000 {
		t.Errorf("three groups of 100 at 10 pods a node: %d pods; one group of 300: %d", got, want)
	}
	sc.Groups = 11
	if err := sc.Validate(); err == nil {
		t.Error("--groups 11 was taken")
	}
}

// A pod that keeps the scenario from being ready is named with where it
// is stuck: the scheduler's words, bound but not started, or never tried.
func TestAStuckPodSaysWhereItIsStuck(t *testing.T) {
	for _, c := range []struct {
		pod  corev1.Pod
		want string
	}{
		{corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}},
			"Pending (Unschedulable: 0/3 nodes are available)"},
		{corev1.Pod{Spec: corev1.PodSpec{NodeName: "ip-10-0-1-5"}, Status: corev1.PodStatus{Phase: corev1.PodPending}},
			"Pending on node ip-10-0-1-5 (bound; not started there yet)"},
		{corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, "Pending (not scheduled, and no scheduling attempt recorded)"},
		{corev1.Pod{Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, "Running"},
	} {
		if got := podWhy(&c.pod); got != c.want {
			t.Errorf("podWhy = %q, want %q", got, c.want)
		}
	}
}
