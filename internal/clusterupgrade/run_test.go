package clusterupgrade

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/cloud"
	cloudfake "github.com/noderoll/noderoll/internal/cloud/fake"
	"github.com/noderoll/noderoll/internal/clusterplan"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/grouplock"
	"github.com/noderoll/noderoll/internal/kubefake"
)

// A node of the canary's not Ready in its soak halts the upgrade before
// the next wave, the record saying so; once the node is Ready again, the
// same run resumes from the record and upgrades the rest, to the targets
// frozen at the start.
func TestASoakThatSeesARegressionHaltsBeforeTheNextWave(t *testing.T) {
	ctx := context.Background()
	kube := k8sfake.NewClientset()
	kubefake.WithResourceVersions(kube, "configmaps") // the record is written under its resourceVersion
	p := cloudfake.New(kube, "prod", "1.37")
	p.AddImage(cloudfake.Image{ID: "ami-0000000000000new", Name: "new", Minor: "1.37"}, true)
	for _, g := range []string{"canary", "apps"} {
		if err := p.AddGroup(ctx, g, 1, []string{"a"}, "ami-0000000000000new"); err != nil {
			t.Fatal(err)
		}
	}
	canaryNode := cloudfake.NodeName(p.Group("canary").Instances[0].ID)
	setReady := func(status corev1.ConditionStatus) {
		n, err := kube.CoreV1().Nodes().Get(ctx, canaryNode, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady(corev1.ConditionFalse)
	var mu sync.Mutex
	var upgraded []string
	plans := 0
	view, err := engine.NewClusterView(kube)
	if err != nil {
		t.Fatal(err)
	}
	viewCtx, stopView := context.WithCancel(ctx)
	defer stopView()
	view.Start(viewCtx)
	r := &Runner{Kube: kube, Cloud: p, Clock: clock.RealClock{}, Tell: func(string, string) {}, Soak: 300 * time.Millisecond, PollEvery: 50 * time.Millisecond, View: view,
		Plan: func(context.Context) (*clusterplan.Plan, error) {
			plans++
			return &clusterplan.Plan{Cluster: "prod", KubernetesVersion: "1.37", Soak: 300 * time.Millisecond,
				Groups: []clusterplan.Group{{Name: "apps", Target: cloud.Image{ID: "ami-apps"}}, {Name: "canary", Target: cloud.Image{ID: "ami-canary"}}},
				Waves:  []clusterplan.Wave{{Canary: true, Groups: []string{"canary"}}, {Groups: []string{"apps"}}}}, nil
		},
		Upgrade: func(_ context.Context, ref cloud.NodeGroupRef, target engine.TargetSpec) error {
			mu.Lock()
			defer mu.Unlock()
			upgraded = append(upgraded, ref.Name+"@"+target.AMI)
			return nil
		},
	}
	rec, err := r.Run(ctx, "prod")
	var halted *HaltedError
	if !errors.As(err, &halted) || !strings.Contains(err.Error(), "node "+canaryNode+" is not Ready") || rec.Phase != PhaseHalted || rec.Done != 0 {
		t.Fatalf("want a halt naming the node: %v, record %+v", err, rec)
	}
	if !slices.Equal(upgraded, []string{"canary@ami-canary"}) {
		t.Errorf("upgraded %v; want the canary alone", upgraded)
	}
	setReady(corev1.ConditionTrue)
	if rec, err = r.Run(ctx, "prod"); err != nil || rec.Phase != PhaseCompleted || rec.Done != 2 || plans != 1 {
		t.Fatalf("the rerun: %v, record %+v, %d plans; want Completed from the record, planned once", err, rec, plans)
	}
	if want := []string{"canary@ami-canary", "canary@ami-canary", "apps@ami-apps"}; !slices.Equal(upgraded, want) {
		t.Errorf("upgraded %v; want %v (the canary's wave goes on, a no-op for the engine, then the rest)", upgraded, want)
	}
}

// One upgrade of a cluster at a time: a run while another holds the
// cluster's lock is refused, naming the holder, before it reads or plans
// anything.
func TestASecondClusterUpgradeIsRefusedWhileOneRuns(t *testing.T) {
	ctx := context.Background()
	kube := k8sfake.NewClientset()
	other := grouplock.Holder{Host: "bastion", PID: 42, User: "ben", Nonce: "abcde"}
	held, err := grouplock.Acquire(ctx, kube, recordName("prod"), "cluster prod", nil, grouplock.Options{Namespace: engine.Namespace, Self: other})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	planned := false
	r := &Runner{Kube: kube, Clock: clock.RealClock{}, Tell: func(string, string) {},
		Plan: func(context.Context) (*clusterplan.Plan, error) { planned = true; return &clusterplan.Plan{}, nil }}
	if _, err := r.Run(ctx, "prod"); err == nil || !strings.Contains(err.Error(), "cluster prod is being upgraded by") || !strings.Contains(err.Error(), "bastion") || planned {
		t.Errorf("a second run: %v (planned %v); want it refused, naming the holder, before planning", err, planned)
	}
}
