package engine

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Two upgrades of two groups at once, through one view of the cluster (the
// controller's): both finish, each group on the target, and the view's
// handlers of each upgrade are gone with it.
func TestTwoUpgradesShareOneViewOfTheCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t, 3, "a", "b", "c")
		if err := w.p.AddGroup(context.Background(), "ng2", 3, []string{"a", "b", "c"}, amiOld); err != nil {
			t.Fatal(err)
		}
		view, err := NewClusterView(w.kube)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		view.Start(ctx)
		w.strategy = StrategySurge
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for k, name := range []string{"ng", "ng2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := w.engine()
				e.view = view
				_, errs[k] = e.Upgrade(ctx, Request{Group: cloud.NodeGroupRef{Cluster: "c1", Name: name}, Target: TargetSpec{KubernetesVersion: "1.37"}})
			}()
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("upgrade %d: %v", k, err)
			}
		}
		for _, name := range []string{"ng", "ng2"} {
			for _, i := range w.p.Group(name).Instances {
				if i.ImageID != amiB {
					t.Errorf("%s: instance %s on %s", name, i.ID, i.ImageID)
				}
			}
		}
		// The view outlives the upgrades, and each removed its handlers.
		if view.nodes.IsStopped() {
			t.Error("the shared view stopped with an upgrade")
		}
		if n := view.watchers.Load(); n != 0 {
			t.Errorf("%d upgrades still watch the view after both ended", n)
		}
		cancel()
	})
}
