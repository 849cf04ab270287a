package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

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
		Short: "Show the cluster set: member clusters, multi-cluster services and cluster links",
		Long: `Show the cluster set as the hub of --hub-context sees it: each member
cluster's conditions, lease age, exports and imports, each multi-cluster
service's exporting and importing clusters and conflicts, and each cluster
link of the hub's link plan with its state as the gateways report it.

A link's STATE is up, down or connecting as its dialing cluster's gateways
report it (the accepting cluster's report when the dialer's is missing or
older than 60 s); degraded when it is up on some of the cluster's gateways
only; stale when the only report is older than 60 s (the values shown are
the last known); unknown when no gateway reports it, with the reason under
LAST-ERROR. SENT counts bytes from FROM to TO, RECEIVED the other way.`,
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
	printLinks(tw, st.Links)
	if len(st.Warnings) > 0 {
		fmt.Fprintln(tw, "\nWARNINGS")
		for _, w := range st.Warnings {
			fmt.Fprintln(tw, w)
		}
	}
	return tw.Flush()
}

// printLinks prints the LINKS table.
func printLinks(tw io.Writer, links []membership.LinkStatus) {
	fmt.Fprintln(tw, "\nLINKS")
	if len(links) == 0 {
		fmt.Fprintln(tw, "No cluster links.")
		return
	}
	fmt.Fprintln(tw, "FROM\tTO\tSTATE\tTRANSPORT\tRTT\tSTREAMS\tSENT\tRECEIVED\tLAST-ERROR")
	for _, l := range links {
		rtt, streams, sent, received := "<none>", "<none>", "<none>", "<none>"
		if l.RTT != nil {
			rtt = formatRTT(l.RTT.Duration)
		}
		if l.ReportedBy != "" {
			streams, sent, received = fmt.Sprint(l.OpenStreams), formatBytes(l.BytesSent), formatBytes(l.BytesReceived)
		}
		lastErr := l.LastError
		if lastErr == "" && (l.State == membership.LinkStateUnknown || l.State == membership.LinkStateStale) {
			lastErr = l.Detail
		}
		// One row per link: a multi-line error would break the table.
		lastErr = strings.Join(strings.Fields(lastErr), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.From, l.To, l.State, orNone(l.Transport), rtt, streams, sent, received, orNone(lastErr))
	}
}

// formatRTT rounds a round-trip time to what a person compares: 0.1 ms
// under a second, 1 ms above.
func formatRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// formatBytes prints a byte count with a binary unit and one decimal.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
