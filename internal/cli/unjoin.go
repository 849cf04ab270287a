package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/federation/membership"
)

type unjoinOptions struct {
	kube           kubeFlags
	ignoreNotFound bool
}

func newUnjoinCommand() *cobra.Command {
	o := &unjoinOptions{}
	cmd := &cobra.Command{
		Use:   "unjoin NAME --hub-context HUB [--context MEMBER]",
		Short: "Remove the cluster NAME from the hub's cluster set",
		Long: `Remove the cluster NAME from the cluster set of the hub of --hub-context:
delete its MemberCluster, namespace, ServiceAccount (revoking the agent's
token at once) and RBAC on the hub. With --context, also delete the hub
credentials and the cluster set ClusterProperties in the member cluster.`,
		Example: `  causeway unjoin eu-1 --hub-context hub --context eu-1`,
		Args:    exactlyOneArg("the cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			hub, member, err := o.configs(name)
			if err != nil {
				return err
			}
			err = membership.Unjoin(cmd.Context(), hub, member, name)
			if o.ignoreNotFound && errors.Is(err, membership.ErrNotMember) {
				fmt.Fprintf(cmd.OutOrStdout(), "Cluster %q is not a member; nothing to do.\n", name)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Cluster %q left the hub at %s.\n", name, hub.Host)
			return nil
		},
	}
	o.kube.addKubeconfig(cmd, "kubeconfig context of the member cluster to clean up too (default: leave the member untouched)")
	o.kube.addHubContext(cmd)
	cmd.Flags().BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "succeed if NAME is not a member")
	return cmd
}

// configs validates the name and loads the hub's settings and, if
// --context was given, the member's.
func (o *unjoinOptions) configs(name string) (hub, member *rest.Config, err error) {
	if err := membership.ValidateName(name); err != nil {
		return nil, nil, err
	}
	if hub, err = o.kube.restConfig(o.kube.hubContext); err != nil {
		return nil, nil, err
	}
	if o.kube.context != "" {
		if member, err = o.kube.restConfig(o.kube.context); err != nil {
			return nil, nil, err
		}
	}
	return hub, member, nil
}
