package cli

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
	awscloud "github.com/noderoll/noderoll/internal/cloud/aws"
	"github.com/noderoll/noderoll/internal/engine"
	"github.com/noderoll/noderoll/internal/records"
)

// cliKeeper finds the groups' records where the CLI keeps them, its
// ConfigMaps, and those a controller keeps in NodeGroupUpgrades: a run
// holding the group's lock takes such a record over (set TookOver to be
// told from where).
func cliKeeper(kubeconfig, kubeContext string, kube kubernetes.Interface) (records.Keeper, error) {
	cfg, err := restConfig(kubeconfig, kubeContext)
	if err != nil {
		return records.Keeper{}, err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return records.Keeper{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return records.Keeper{}, fmt.Errorf("a client for NodeGroupUpgrades: %w", err)
	}
	return records.Keeper{Kube: kube, Client: c, Reader: c}, nil
}

// withRecords has an engine keep its records as keeper does.
func withRecords(keeper records.Keeper) engine.Option { return engine.WithRecords(keeper.CLI()) }

// reach is what a command that acts on a cluster's groups works with: the
// Kubernetes client, the cloud, the record keeper and the log.
type reach struct {
	kube   kubernetes.Interface
	cloud  *awscloud.Provider
	keeper records.Keeper
	log    *slog.Logger
}

// connect reaches the cluster and the cloud as the flags say, logging to
// stderr (debug lines with verbose).
func connect(ctx context.Context, s Streams, f *upgradeFlags, verbose bool) (*reach, error) {
	kube, err := kubeClient(f.kubeconfig, f.kubeContext)
	if err != nil {
		return nil, err
	}
	log := newLogger(s.Err, verbose)
	awsOpts := f.aws
	awsOpts.Log = log
	p, err := awscloud.New(ctx, awsOpts)
	if err != nil {
		return nil, err
	}
	keeper, err := cliKeeper(f.kubeconfig, f.kubeContext, kube)
	if err != nil {
		return nil, err
	}
	return &reach{kube: kube, cloud: p, keeper: keeper, log: log}, nil
}

// engine is an engine on what was reached, keeping its records as the CLI
// does.
func (r *reach) engine(o engine.Options, more ...engine.Option) *engine.Engine {
	return engine.New(r.kube, r.cloud, o, append([]engine.Option{engine.WithLogger(r.log), withRecords(r.keeper)}, more...)...)
}
