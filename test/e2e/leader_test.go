package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// cutProxy passes TCP through to the API server until the test cuts it:
// then every connection through it closes and no new one is taken, as a
// network partition would.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	once  sync.Once
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) cut() {
	p.once.Do(func() {
		p.l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
}

// throughProxy writes a copy of a kubeconfig whose API server is reached
// through a cutProxy, and returns it with the proxy.
func throughProxy(t *testing.T, kubeconfig string) (string, *cutProxy) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var p *cutProxy
	for _, cl := range cfg.Clusters {
		u, err := url.Parse(cl.Server)
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			p = newCutProxy(t, u.Host)
		}
		u.Host = p.addr() // 127.0.0.1 still: the serving certificate holds
		cl.Server = u.String()
	}
	path := filepath.Join(t.TempDir(), "through-proxy.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path, p
}

// mutating says an AWS call changes something (not a read).
func mutating(c awssim.Call) bool {
	for _, read := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(c.Action, read) {
			return false
		}
	}
	return true
}

// The leader is cut off from the API server mid-upgrade (its connections
// through a proxy the test closes), while it still reaches AWS. Another
// replica takes over, but acts on AWS only once the group's lock the old
// leader's worker held has expired; the old leader made no AWS change
// after that. Every old instance is still terminated exactly once, and the
// upgrade completes.
func TestALeaderCutOffFromTheAPIServerStopsBeforeAnotherTakesOver(t *testing.T) {
	t.Parallel() // a sandbox of its own; mostly waiting
	s := StartSandbox(t)
	c := s.InstallCRD()
	ctx := context.Background()
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	kubeconfig := s.ControllerKubeconfig()
	cutConfig, proxy := throughProxy(t, kubeconfig)
	replica := func(name, config string) *Started {
		// Each replica signs its AWS calls with keys of its own: the
		// endpoint's log tells them apart.
		return s.StartWith([]string{"KUBECONFIG=" + config, "POD_NAME=" + name, "AWS_ACCESS_KEY_ID=AKID" + strings.ToUpper(strings.ReplaceAll(name, "-", ""))},
			"controller", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-election-lease-duration=4s")
	}
	a := replica("replica-a", cutConfig)
	eventually(t, time.Minute, "replica-a leading", func() (bool, string) {
		return strings.Contains(a.err.String(), "leading: this replica runs"), tail(a.err.String(), 5)
	})
	b := replica("replica-b", kubeconfig)
	u := seedResource("cut-off")
	if err := c.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Minute, "an old instance terminated", func() (bool, string) {
		return len(s.Calls("TerminateInstanceInAutoScalingGroup")) >= 1, tail(a.err.String(), 5)
	})
	proxy.cut()
	cut := time.Now()
	// What the old leader's worker last wrote in the group's lock.
	leases, err := s.Kube.CoordinationV1().Leases(engine.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var expires time.Time
	for _, l := range leases.Items {
		if strings.HasPrefix(l.Name, "noderoll-upgrade-") && l.Spec.HolderIdentity != nil && strings.Contains(*l.Spec.HolderIdentity, "/replica-a/") && l.Spec.RenewTime != nil {
			expires = l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
		}
	}
	if expires.IsZero() {
		t.Fatalf("no group lock held by replica-a at the cut: %d leases", len(leases.Items))
	}

	var done v1alpha1.NodeGroupUpgrade
	eventually(t, 6*time.Minute, "the upgrade Complete", func() (bool, string) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), &done); err != nil {
			return false, err.Error()
		}
		if done.Status.Phase == v1alpha1.PhaseFailed {
			t.Fatalf("the upgrade failed: %s", done.Status.Message)
		}
		return done.Status.Phase == v1alpha1.PhaseComplete, fmt.Sprintf("%s %s %s\n%s", done.Status.Phase, done.Status.Step, done.Status.Message, tail(b.err.String(), 5))
	})
	var lastA, firstB time.Time
	for _, call := range s.Calls("") {
		if !mutating(call) {
			continue
		}
		switch call.AccessKey {
		case "AKIDREPLICAA":
			lastA = call.Time
		case "AKIDREPLICAB":
			if firstB.IsZero() {
				firstB = call.Time
			}
		}
	}
	t.Logf("cut at %s; replica-a's group lock expired at %s; its last AWS change %s; replica-b's first %s",
		cut.Format(time.StampMilli), expires.Format(time.StampMilli), lastA.Format(time.StampMilli), firstB.Format(time.StampMilli))
	switch {
	case lastA.IsZero() || firstB.IsZero():
		t.Errorf("want AWS changes by both replicas: replica-a's last %v, replica-b's first %v", lastA, firstB)
	case !lastA.Before(firstB):
		t.Errorf("replica-a changed AWS at %s, after replica-b began at %s", lastA, firstB)
	case firstB.Before(expires):
		t.Errorf("replica-b changed AWS at %s, before the group lock replica-a held expired at %s", firstB, expires)
	}
	if !strings.Contains(b.err.String(), "replica-a") {
		t.Errorf("replica-b never said it waited for replica-a's lock:\n%s", tail(b.err.String(), 20))
	}
	terminatedOnce(t, before, s.TerminateCalls())
	allOnTarget(t, s, 3)
	if v, _, checks := budgets.Stop(); len(v) > 0 || checks == 0 {
		t.Errorf("budgets breached (%d checks): %v", checks, v)
	}
	_ = os.Remove(cutConfig)
}
