package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/causeway-mesh/causeway/federation/membership"
)

type statusOptions struct {
	kube   kubeFlags
	output string
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status --hub-context HUB [-o table|json|yaml]",
		Short: "Show the cluster set: member clusters and multi-cluster services",
		Long: `Show the cluster set as the hub of --hub-context sees it: each member
cluster's conditions, lease age, exports and imports, and each multi-cluster
service's exporting and importing clusters and conflicts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateOutput(o.output); err != nil {
				return err
			}
			hub, err := o.kube.restConfig(o.kube.hubContext)
			if err != nil {
				return err
			}
			st, err := membership.GetStatus(cmd.Context(), hub)
			if err != nil {
				return err
			}
			return printOutput(cmd.OutOrStdout(), o.output, st, func(w io.Writer) error { return printStatusTable(w, st) })
		},
	}
	cmd.Flags().StringVar(&o.kube.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	o.kube.addHubContext(cmd)
	addOutputFlag(cmd, &o.output)
	return cmd
}

// printStatusTable prints the CLUSTERS and SERVICES tables.
func printStatusTable(out io.Writer, st *membership.Status) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTERS")
	if len(st.Clusters) == 0 {
		fmt.Fprintln(tw, "No member clusters.")
	} else {
		fmt.Fprintln(tw, "NAME\tREGION\tJOINED\tHEALTHY\tLEASE-AGE\tEXPORTS\tIMPORTS")
	}
	for _, c := range st.Clusters {
		age := "<none>"
		if c.LeaseAge != nil {
			age = duration.HumanDuration(c.LeaseAge.Duration)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", c.Name, orNone(c.Region), c.Joined, c.Healthy, age, c.Exports, c.Imports)
	}
	fmt.Fprintln(tw, "\nSERVICES")
	if len(st.Services) == 0 {
		fmt.Fprintln(tw, "No multi-cluster services.")
	} else {
		fmt.Fprintln(tw, "NAMESPACE/NAME\tTYPE\tEXPORTED-FROM\tIMPORTED-INTO\tCONFLICTS")
	}
	for _, s := range st.Services {
		from := make([]string, len(s.ExportedFrom))
		for i, c := range s.ExportedFrom {
			from[i] = c.Name
			if c.Withdrawn {
				from[i] += "(withdrawn)"
			}
		}
		conflicts := make([]string, len(s.Conflicts))
		for i, c := range s.Conflicts {
			conflicts[i] = c.Cluster + ":" + c.Reason
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type,
			orNone(strings.Join(from, ",")), orNone(strings.Join(s.ImportedInto, ",")), orNone(strings.Join(conflicts, ",")))
	}
	return tw.Flush()
}
