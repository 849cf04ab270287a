package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/federation/membership"
)

type joinOptions struct {
	kube kubeFlags
	opts membership.JoinOptions
}

func newJoinCommand() *cobra.Command {
	o := &joinOptions{}
	cmd := &cobra.Command{
		Use:   "join NAME --hub-context HUB --context MEMBER",
		Short: "Join a cluster to the hub's cluster set under NAME",
		Long: `Join the cluster of --context to the cluster set of the hub of --hub-context,
under NAME (a DNS-1123 label: the cluster's ID across the cluster set).

On the hub this creates the MemberCluster and a namespace, ServiceAccount and
RBAC for the member's agent; in the member it stores a kubeconfig for that
ServiceAccount and the cluster.clusterset.k8s.io and clusterset.k8s.io
ClusterProperties. The hub gets no credentials for the member. Nothing is
written if the name is taken or the cluster is already joined elsewhere, and
running the same join again changes nothing.

--gateway-address says where the other clusters' east-west gateways reach
this cluster's (host:port, or a bare IP for port 15443; repeat it for
fallbacks, the first preferred), and --gateway-transport how (QUIC, the
default, or TCP where UDP is blocked). Without it the cluster's gateway is
not reachable from outside and dials the others. Like --region and --zone
they set the MemberCluster's spec: a join with other values changes it, and
one without --gateway-address removes the gateway.`,
		Example: `  causeway join eu-1 --hub-context hub --context eu-1 --region eu-west-1 --zone eu-west-1a
  causeway join eu-1 --hub-context hub --context eu-1 --gateway-address 203.0.113.10 --gateway-address gw.eu-1.example.com:15443`,
		Args: exactlyOneArg("the cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args[0]); err != nil {
				return err
			}
			if err := membership.Join(cmd.Context(), o.opts); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Cluster %q joined the hub at %s.\n", o.opts.Name, o.opts.Hub.Host)
			return nil
		},
	}
	o.kube.addKubeconfig(cmd, "kubeconfig context of the cluster to join (required)")
	_ = cmd.MarkFlagRequired("context") // cannot fail: the flag exists
	o.kube.addHubContext(cmd)
	cmd.Flags().StringVar(&o.opts.Region, "region", "", "region the cluster runs in, e.g. eu-west-1")
	cmd.Flags().StringVar(&o.opts.Zone, "zone", "", "zone the cluster runs in, e.g. eu-west-1a")
	cmd.Flags().StringVar(&o.opts.HubServer, "hub-server", "", "hub API URL as the member's agent reaches it (default: the hub context's server)")
	cmd.Flags().StringVar(&o.opts.ClusterSet, "clusterset", membership.DefaultClusterSet, "name of the cluster set, recorded in the member's clusterset.k8s.io ClusterProperty")
	cmd.Flags().StringArrayVar(&o.opts.GatewayAddresses, "gateway-address", nil, "address other clusters' gateways dial to reach this cluster's east-west gateway: host:port, or an IP for port 15443 (repeatable, first preferred; default: not reachable, it dials the others)")
	cmd.Flags().StringVar(&o.opts.GatewayTransport, "gateway-transport", "", "protocol of links to this cluster's gateway: QUIC or TCP (default QUIC; needs --gateway-address)")
	return cmd
}

// complete validates the name and the gateway flags and loads both
// clusters' settings.
func (o *joinOptions) complete(name string) error {
	if err := membership.ValidateName(name); err != nil {
		return err
	}
	if _, err := membership.Gateway(o.opts.GatewayAddresses, o.opts.GatewayTransport); err != nil {
		return fmt.Errorf("--gateway-address/--gateway-transport: %w", err)
	}
	o.opts.Name = name
	var err error
	if o.opts.Hub, err = o.kube.restConfig(o.kube.hubContext); err != nil {
		return err
	}
	o.opts.Member, err = o.kube.restConfig(o.kube.context)
	return err
}
