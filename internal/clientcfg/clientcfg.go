// Package clientcfg is how every noderoll binary reaches the cluster and
// logs: a kubeconfig loaded as kubectl loads it, and one slog logger that
// controller-runtime's and client-go's lines go through too.
package clientcfg

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// RESTConfig loads a kubeconfig as kubectl does: --kubeconfig, KUBECONFIG,
// ~/.kube/config, or in a pod its ServiceAccount.
func RESTConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	// Many nodes drain at once, each a few dozen requests: client-side
	// throttling at client-go's default 5 QPS (or 50) would make a large
	// group's upgrade wait on the client, not on its budgets. The API
	// server's own priority and fairness protects it, and client-go backs
	// off on its 429s.
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// Clientset is the typed client of Kubernetes' own kinds, speaking
// protobuf: the API server encodes, and client-go decodes, a pod list in
// protobuf for a fraction of JSON's CPU and garbage, and an upgrade lists
// and watches every pod of the cluster. Custom resources have no protobuf
// encoding; their clients keep cfg's JSON.
func Clientset(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return kubernetes.NewForConfig(cfg)
}

// NewLogger is the structured logger of a command: text on w, debug lines
// when verbose.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// RouteLibraryLogs sends controller-runtime's log lines to w, as the
// command's own logger writes them, at level. A process that never sets
// controller-runtime's logger gets, 30 s in and at the library's first
// line, a warning and a goroutine dump that a user can do nothing with.
// controller-runtime takes the first logger a process sets and ignores the
// rest, so each binary calls this once, before its command runs.
func RouteLibraryLogs(w io.Writer, level slog.Level) {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	ctrllog.SetLogger(logr.FromSlogHandler(h))
}
