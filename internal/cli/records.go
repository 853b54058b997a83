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

// cliRecords keeps the groups' records where the CLI keeps them, its
// ConfigMaps, and finds those a controller keeps in NodeGroupUpgrades:
// a run holding the group's lock takes such a record over (tookOver is
// told from where; nil for commands that only read).
func cliRecords(kubeconfig, kubeContext string, kube kubernetes.Interface, tookOver func(from string)) (engine.Option, error) {
	cfg, err := restConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("a client for NodeGroupUpgrades: %w", err)
	}
	return engine.WithRecords(records.Keeper{Kube: kube, Client: c, Reader: c, TookOver: tookOver}.CLI()), nil
}
