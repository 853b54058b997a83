package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/noderoll/noderoll/internal/sandbox"
)

// TestTheAPIServersOwn429sAreTakenInStride: noderoll runs as a
// ServiceAccount whose requests the API server files under a priority level
// of one concurrency share that neither lends nor borrows and rejects what
// it cannot serve at once (API Priority and Fairness' limitResponse Reject),
// shared with a noisy neighbour listing pods without pause. The API server
// answers part of noderoll's requests 429 (counted from its own
// apiserver_flowcontrol_rejected_requests_total for noderoll's flow schema);
// the upgrade still finishes with every old instance terminated once and no
// budget below its minimum.
func TestTheAPIServersOwn429sAreTakenInStride(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	before := s.Group()
	const level = "noderoll-starved"
	if _, err := s.Kube.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: level},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr.To(int32(1)), LendablePercent: ptr.To(int32(0)), BorrowingLimitPercent: ptr.To(int32(0)),
			LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mine, neighbour := filepath.Join(s.Dir, "starved.kubeconfig"), filepath.Join(s.Dir, "neighbour.kubeconfig")
	if err := (sandbox.Identity{Name: "noderoll-starved", PriorityLevel: level}).Kubeconfig(ctx, s.Kube, s.State.Kubeconfig, mine); err != nil {
		t.Fatal(err)
	}
	if err := (sandbox.Identity{Name: "noisy-neighbour", PriorityLevel: level}).Kubeconfig(ctx, s.Kube, s.State.Kubeconfig, neighbour); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", neighbour)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side limit: the server's is the one tried
	noisy, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	budgets := WatchBudgets(t, s.Kube)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = noisy.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			}
		}()
	}
	upgrade := []string{"upgrade", "nodegroup", "--name=nodegroup", "--cluster=eksworkshop-eksctl", "--kubernetes-version=1.37",
		"--post-cordon-wait=2s", "--eviction-retry-delay=1s"}
	r := s.run(append(slices.Clone(s.env), "KUBECONFIG="+mine), upgrade...)
	close(stop)
	wg.Wait()
	if r.Code != 0 {
		t.Fatalf("the upgrade under the API server's 429s: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	rejected := rejectedFor(t, s.Kube, "noderoll-starved")
	if rejected == 0 {
		t.Fatal("the API server rejected none of noderoll's requests: the run did not meet a 429")
	}
	t.Logf("the API server answered %d of noderoll's requests 429", rejected)
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}

// rejectedFor sums the API server's rejections (429) of a flow schema's
// requests, from its own metrics.
func rejectedFor(t *testing.T, kube kubernetes.Interface, flowSchema string) int {
	t.Helper()
	n, err := sandbox.Identity{Name: flowSchema}.Count(context.Background(), kube, "apiserver_flowcontrol_rejected_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
