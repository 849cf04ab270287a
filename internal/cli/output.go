package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

var outputFormats = []string{outputTable, outputJSON, outputYAML}

// addOutputFlag adds -o/--output.
func addOutputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", outputTable, "output format: "+strings.Join(outputFormats, ", "))
}

// validateOutput checks an -o value before any cluster is contacted.
func validateOutput(format string) error {
	if !slices.Contains(outputFormats, format) {
		return fmt.Errorf("unknown output format %q for -o: use one of %s", format, strings.Join(outputFormats, ", "))
	}
	return nil
}

// printOutput writes v as JSON or YAML, or calls table for the table format.
func printOutput(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case outputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		return table(w)
	}
}

// orNone returns s, or "<none>" for an empty s, as kubectl prints it.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
