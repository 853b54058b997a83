package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/noderoll/noderoll/internal/sandbox/awssim"
)

// ServeAWS runs the local AWS endpoint of the sandbox in dir until ctx ends:
// it seeds the account from the scenario, serves it on a loopback port it
// writes to dir/aws.addr, and registers instances as Nodes of the cluster.
func ServeAWS(ctx context.Context, dir, kubeconfig string, log *slog.Logger) error {
	b, err := os.ReadFile(filepath.Join(dir, "scenario.json"))
	if err != nil {
		return fmt.Errorf("reading the scenario: %w", err)
	}
	var sc Scenario
	if err := json.Unmarshal(b, &sc); err != nil {
		return fmt.Errorf("reading the scenario: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	reg, err := newKwokRegistrar(cfg)
	if err != nil {
		return err
	}
	acct := awssim.NewAccount(sc.Region, clock.RealClock{}, awssim.Delays{Boot: sc.BootDelay.Duration, Shutdown: sc.ShutdownDelay.Duration})
	// EKS's own waits in a managed node group update, scaled down as the
	// sandbox's other delays are (EKS: 60 s after a cordon, 15 minutes of
	// eviction retries).
	acct.SetManagedTimings(awssim.ManagedTimings{PostCordon: 4 * time.Second, EvictionTimeout: time.Minute, NodeReady: 5 * time.Minute, ConfigUpdate: time.Second})
	asg, err := sc.SeedAWS(acct, cfg.Host)
	if err != nil {
		return fmt.Errorf("seeding the account: %w", err)
	}
	// EKS gives its clients the API server's CA with the endpoint: eksctl
	// and `aws eks update-kubeconfig` build a kubeconfig from them.
	ca := cfg.TLSClientConfig.CAData
	if len(ca) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if ca, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return fmt.Errorf("reading the API server's CA: %w", err)
		}
	}
	if err := acct.SetClusterCA(sc.Cluster, ca); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: awssim.NewServer(acct, log)}
	go acct.Run(ctx, reg, log)
	// The kubelets' last part of a pod's deletion, which kwok would do by
	// name (see PodStopper).
	go func() {
		stop := PodStopper{Client: reg.Client, Clock: clock.RealClock{}, Default: time.Second, Log: log}
		if err := stop.Run(ctx); err != nil {
			log.Error("removing stopped pods", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	tmp := filepath.Join(dir, "aws.addr.tmp")
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "aws.addr")); err != nil {
		return err
	}
	log.Info("serving the local AWS endpoint", "addr", ln.Addr().String(), "cluster", sc.Cluster, "autoScalingGroup", asg)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
