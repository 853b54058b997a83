package clientcfg

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// The clientset asks the API server for protobuf (and sends it), JSON
// only as the fallback; the configuration it was given keeps JSON, for
// the custom resources' clients built from it.
func TestTheClientsetSpeaksProtobuf(t *testing.T) {
	var mu sync.Mutex
	var accept []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept = append(accept, r.Header.Get("Accept"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`))
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	kube, err := Clientset(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accept) != 1 || !strings.HasPrefix(accept[0], "application/vnd.kubernetes.protobuf") {
		t.Errorf("the pod list asked for %q; want protobuf first", accept)
	}
	if cfg.ContentType != "" || cfg.AcceptContentTypes != "" {
		t.Errorf("the given configuration was changed to %q / %q", cfg.ContentType, cfg.AcceptContentTypes)
	}
}
