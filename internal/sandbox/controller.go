package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/noderoll/noderoll/charts/rendered"
)

// controllerNamespace is where the sandbox installs the chart, as a user
// would with helm install -n kube-system.
const controllerNamespace = rendered.Namespace

// Controller is one controller replica the sandbox runs as a host process.
type Controller struct {
	Pid        int    `json:"pid"`
	Kubeconfig string `json:"kubeconfig"` // its own token's
	Log        string `json:"log"`
	Metrics    string `json:"metrics"` // host:port of /metrics
	Probes     string `json:"probes"`  // host:port of /healthz and /readyz
}

// InstallChart applies what the Helm chart installs (its copy rendered by
// Helm, charts/rendered) but its Deployment and Service (the CRD, the ServiceAccount, the RBAC) to the sandbox's API
// server, waits for the CRD to be served, and returns the ServiceAccount's
// name. What exists already is kept.
func InstallChart(ctx context.Context, st *State, kube kubernetes.Interface) (string, error) {
	objs, err := rendered.Objects()
	if err != nil {
		return "", err
	}
	cfg, err := st.RestConfig()
	if err != nil {
		return "", err
	}
	ext, err := apiextensions.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	sa := ""
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			sa = o.GetName()
		}
		if err := apply(ctx, kube, ext, o); err != nil {
			return "", fmt.Errorf("installing the chart's %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	for _, name := range []string{"nodegroupupgrades.noderoll.io", "nodegroupupgradepolicies.noderoll.io"} {
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return "", fmt.Errorf("the CRD %s was not served: %w", name, err)
		}
	}
	return sa, nil
}

// installController applies what the Helm chart installs and starts n
// controller replicas on the host, each acting only as the chart's
// ServiceAccount through a token of its own: kwok runs no containers, so
// the chart's Deployment is left out and its replicas run here.
func installController(ctx context.Context, st *State, kube kubernetes.Interface, self string, n int) error {
	sa, err := InstallChart(ctx, st, kube)
	if err != nil {
		return err
	}
	for k := range n {
		c, err := startReplica(ctx, st, kube, self, sa, k)
		if err != nil {
			return err
		}
		st.Controllers = append(st.Controllers, c)
		if err := st.save(); err != nil {
			return err
		}
	}
	return nil
}

// startReplica starts controller replica k as the chart's ServiceAccount sa,
// with a token of its own made now (a token lasts 6 hours: a replica
// started again later gets a new one).
func startReplica(ctx context.Context, st *State, kube kubernetes.Interface, self, sa string, k int) (Controller, error) {
	env := os.Environ()
	for _, kv := range st.Env() {
		env = append(env, kv[0]+"="+kv[1])
	}
	kubeconfig := filepath.Join(st.Dir, fmt.Sprintf("controller-%d.kubeconfig", k))
	if err := tokenKubeconfig(ctx, kube, controllerNamespace, sa, st.Kubeconfig, kubeconfig); err != nil {
		return Controller{}, err
	}
	return startController(self, st.Dir, k, kubeconfig, append(env, "KUBECONFIG="+kubeconfig, fmt.Sprintf("POD_NAME=noderoll-controller-%d", k)))
}

// GoneControllers lists the controller replicas that no longer run (killed,
// to see another take over), by their number.
func (s *State) GoneControllers() []int {
	var gone []int
	for k, c := range s.Controllers {
		if !pidAlive(c.Pid, c.Kubeconfig) {
			gone = append(gone, k)
		}
	}
	return gone
}

// restartGone starts again every controller replica that is gone, as the
// same pod name (its earlier lock is taken at once, as a restarted pod's
// is), and records the new processes.
func (s *State) restartGone(ctx context.Context, self string) ([]int, error) {
	gone := s.GoneControllers()
	if len(gone) == 0 {
		return nil, nil
	}
	kube, err := s.KubeClient()
	if err != nil {
		return nil, err
	}
	sa, err := InstallChart(ctx, s, kube)
	if err != nil {
		return nil, err
	}
	for i, k := range gone {
		c, err := startReplica(ctx, s, kube, self, sa, k)
		if err != nil {
			return gone[:i], fmt.Errorf("starting controller replica %d again: %w", k, err)
		}
		s.Controllers[k] = c
		if err := s.save(); err != nil {
			return gone[:i+1], err
		}
	}
	return gone, nil
}

// apply creates an object of the chart (kept if it exists).
func apply(ctx context.Context, kube kubernetes.Interface, ext apiextensions.Interface, o *unstructured.Unstructured) error {
	var err error
	into := func(v any) error { return runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v) }
	switch o.GetKind() {
	case "CustomResourceDefinition":
		var v apiextensionsv1.CustomResourceDefinition
		if err = into(&v); err == nil {
			_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &v, metav1.CreateOptions{})
		}
	case "ServiceAccount":
		var v corev1.ServiceAccount
		if err = into(&v); err == nil {
			_, err = kube.CoreV1().ServiceAccounts(v.Namespace).Create(ctx, &v, metav1.CreateOptions{})
		}
	case "ClusterRole":
		var v rbacv1.ClusterRole
		if err = into(&v); err == nil {
			_, err = kube.RbacV1().ClusterRoles().Create(ctx, &v, metav1.CreateOptions{})
		}
	case "Role":
		var v rbacv1.Role
		if err = into(&v); err == nil {
			_, err = kube.RbacV1().Roles(v.Namespace).Create(ctx, &v, metav1.CreateOptions{})
		}
	case "ClusterRoleBinding":
		var v rbacv1.ClusterRoleBinding
		if err = into(&v); err == nil {
			_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, &v, metav1.CreateOptions{})
		}
	case "RoleBinding":
		var v rbacv1.RoleBinding
		if err = into(&v); err == nil {
			_, err = kube.RbacV1().RoleBindings(v.Namespace).Create(ctx, &v, metav1.CreateOptions{})
		}
	case "Deployment", "Service":
		return nil // the replicas run on the host (see installController)
	default:
		return fmt.Errorf("the sandbox does not install kind %s", o.GetKind())
	}
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// startController starts replica k detached, on loopback ports of its own.
func startController(self, dir string, k int, kubeconfig string, env []string) (Controller, error) {
	metrics, err := freePort()
	if err != nil {
		return Controller{}, err
	}
	probes, err := freePort()
	if err != nil {
		return Controller{}, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("controller-%d.log", k))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Controller{}, err
	}
	defer logf.Close()
	cmd := exec.Command(self, "controller", "--kubeconfig", kubeconfig, "--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
		"--leader-election-lease-duration=4s",
		// The sandbox publishes releases on demand (sandbox release-ami):
		// its policies see them within seconds, not AWS's ten minutes.
		"--release-poll-interval=5s")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Controller{}, fmt.Errorf("starting controller replica %d: %w", k, err)
	}
	go func() { _ = cmd.Wait() }() // reaped here; down stops it by pid
	return Controller{Pid: cmd.Process.Pid, Kubeconfig: kubeconfig, Log: logPath, Metrics: metrics, Probes: probes}, nil
}

// freePort is a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
