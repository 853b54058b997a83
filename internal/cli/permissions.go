package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/noderoll/noderoll/internal/permissions"
)

func newPermissionsCmd(s Streams) *cobra.Command {
	name, controller, force := "noderoll", false, false
	cmd := &cobra.Command{
		Use:   "permissions",
		Short: "Print the Kubernetes ClusterRole and Role noderoll needs, and nothing more",
		Long: `Print, as a manifest, the ClusterRole and the Role (in kube-system, for the
upgrade records and locks) that grant exactly what noderoll asks of the
Kubernetes API. The end-to-end tests run an upgrade with a token bound to these
alone; docs/aws.md explains each rule. Bind them to the identity that runs
noderoll (a user, a group, or a ServiceAccount).

Deleting pods is left out unless you ask for it with --force: an upgrade
moves pods only by eviction, within their disruption budgets, and an identity
that may not delete pods cannot do otherwise. Runs with --force need it, and
their preflight says so before anything changes.`,
		Example: `  noderoll permissions | kubectl apply -f -
  kubectl create clusterrolebinding noderoll --clusterrole=noderoll --user=ops@example.com
  kubectl -n kube-system create rolebinding noderoll --role=noderoll --user=ops@example.com

  # What the in-cluster controller needs:
  noderoll permissions --controller --name=noderoll-controller

  # For runs with --force (pods a budget still holds deleted at the timeout):
  noderoll permissions --force`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			out, err := permissions.YAML(name, controller, force)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(s.Out, out)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", name, "name of the ClusterRole and the Role")
	cmd.Flags().BoolVar(&force, "force", false, "also grant deleting pods, which only upgrades with --force do (at --eviction-timeout, to the pods a budget still holds)")
	cmd.Flags().BoolVar(&controller, "controller", false, "the controller's roles: noderoll's, plus its NodeGroupUpgrades, their status, events and its leader Lease (what the Helm chart grants)")
	return cmd
}
