package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// freezeWebhook is a validating admission webhook served by the test on
// loopback: it denies every eviction until a moment, as a change freeze or a
// policy engine would, and counts what it denied and allowed.
type freezeWebhook struct {
	mu              sync.Mutex
	until           time.Time
	denied, allowed int
}

func (f *freezeWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "want an AdmissionReview", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	deny := time.Now().Before(f.until)
	if deny {
		f.denied++
	} else {
		f.allowed++
	}
	f.mu.Unlock()
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: !deny}
	if deny {
		resp.Result = &metav1.Status{Code: http.StatusForbidden, Message: "change freeze: no evictions until " + f.until.Format("15:04:05")}
	}
	review.Response, review.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// serveTLS serves h on a loopback port with a certificate of a fresh CA, and
// returns the URL and the CA's PEM.
func serveTLS(t *testing.T, h http.Handler) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "noderoll-e2e-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String() + "/validate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestAWebhookDenyingEvictionsDelaysTheRun: a validating webhook on the real
// API server denies every eviction for the first 20 seconds of the upgrade.
// The run names the webhook's denial as it happens, retries, and finishes
// once evictions are allowed: on target, every old instance terminated once,
// no budget below its minimum.
func TestAWebhookDenyingEvictionsDelaysTheRun(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	hook := &freezeWebhook{}
	url, ca := serveTLS(t, hook)
	registerFreeze(t, s, url, ca)
	before := s.Group()
	budgets := WatchBudgets(t, s.Kube)
	hook.mu.Lock()
	hook.until = time.Now().Add(20 * time.Second)
	hook.mu.Unlock()
	start := time.Now()
	r := s.Noderoll(append(slices.Clone(seedUpgrade), "--eviction-timeout=5m")...)
	if r.Code != 0 {
		t.Fatalf("the upgrade under a freeze that ends failed: %s\n%s", r.LastLine(), tail(r.Stdout, 30))
	}
	hook.mu.Lock()
	denied, allowed := hook.denied, hook.allowed
	hook.mu.Unlock()
	if denied == 0 || allowed == 0 || time.Since(start) < 20*time.Second {
		t.Fatalf("the webhook denied %d and allowed %d evictions in %s: the run did not meet the freeze", denied, allowed, time.Since(start))
	}
	if !strings.Contains(r.Stdout, `eviction denied by admission webhook "freeze.noderoll.test" denied the request: change freeze`) {
		t.Errorf("the run did not say why its evictions waited:\n%s", tail(r.Stdout, 40))
	}
	t.Logf("%d evictions denied, %d allowed; the run took %s", denied, allowed, time.Since(start).Round(time.Second))
	allOnTarget(t, s, 3)
	terminatedOnce(t, before, s.TerminateCalls())
	if violations, _, checks := budgets.Stop(); len(violations) > 0 {
		t.Errorf("PodDisruptionBudgets went below their minimum (%d checks):\n%s", checks, strings.Join(violations, "\n"))
	}
}

// TestANodeDeletedMidDrainIsHandled: while the first old node's drain waits
// (a freeze webhook holds its evictions), someone deletes that Node object
// (kubectl delete node, a node controller). The run goes on and finishes:
// every node on the target, every old instance, that one included,
// terminated exactly once, every workload whole again.
func TestANodeDeletedMidDrainIsHandled(t *testing.T) {
	t.Parallel() // a sandbox of its own; timers more than CPU
	s := StartSandbox(t)
	ctx := context.Background()
	hook := &freezeWebhook{until: time.Now().Add(time.Hour)}
	url, ca := serveTLS(t, hook)
	registerFreeze(t, s, url, ca)
	before := s.Group()
	run := s.Start(append(slices.Clone(seedUpgrade), "--eviction-timeout=5m", "--node-ready-timeout=3m")...)
	var draining string
	eventually(t, 3*time.Minute, "a drain held by the freeze", func() (bool, string) {
		hook.mu.Lock()
		denied := hook.denied
		hook.mu.Unlock()
		if denied == 0 {
			return false, tail(run.out.String(), 5)
		}
		// eks evicts first and cordons after: the node being drained is
		// the one noderoll marked.
		for _, n := range groupNodes(t, s) {
			if n.Annotations["noderoll.io/phase"] != "" {
				draining = n.Name
			}
		}
		return draining != "", "no node marked for draining yet"
	})
	if err := s.Kube.CoreV1().Nodes().Delete(ctx, draining, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted node %s while its drain waited", draining)
	hook.mu.Lock()
	hook.until = time.Now().Add(5 * time.Second)
	hook.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- run.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the run with a node deleted mid-drain failed: %v\n%s", err, tail(run.out.String()+run.err.String(), 30))
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("the run did not end within 5m of the node's deletion:\n%s", tail(run.out.String(), 30))
	}
	allOnTarget(t, s, 3)
	terminatedOnce(t, before, s.TerminateCalls())
	waitWorkloads(t, s)
}

// registerFreeze registers the freeze webhook at url with the sandbox's API
// server, for evictions only.
func registerFreeze(t *testing.T, s *Sandbox, url string, ca []byte) {
	t.Helper()
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	if _, err := s.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "change-freeze"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "freeze.noderoll.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/eviction"}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To(int32(5)),
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
