package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// NewRoot returns the causeway command with every subcommand.
func NewRoot(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "causeway",
		Short:         "Causeway joins Kubernetes clusters into one service mesh",
		Long:          "Causeway joins Kubernetes clusters into one multi-cluster service mesh: MCS ServiceExports mirrored\ninto ServiceImports everywhere, east-west gateways linked over QUIC, one workload identity.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(newDemoCommand())
	root.AddCommand(newJoinCommand(), newUnjoinCommand(), newExportCommand(), newUnexportCommand(), newStatusCommand())
	return root
}
