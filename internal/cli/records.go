package cli

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/noderoll/noderoll/api/v1alpha1"
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
