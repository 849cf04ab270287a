package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// defaultExportWait is how long export waits for the agent's verdict.
const defaultExportWait = 10 * time.Second

// validPollInterval is how often export looks for the Valid condition.
const validPollInterval = 200 * time.Millisecond

var mcsScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(mcsv1beta1.Install(s))
	return s
}()

type exportOptions struct {
	kube      kubeFlags
	namespace string
	wait      time.Duration
}

func (o *exportOptions) addFlags(cmd *cobra.Command) {
	o.kube.addKubeconfig(cmd, "kubeconfig context of the member cluster (default: the current context)")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace of the Service (default: the context's namespace)")
}

// target returns a client for the member and the ServiceExport's key.
func (o *exportOptions) target(name string) (client.Client, client.ObjectKey, error) {
	ns, err := o.kube.namespace(o.namespace)
	if err != nil {
		return nil, client.ObjectKey{}, err
	}
	cfg, err := o.kube.restConfig(o.kube.context)
	if err != nil {
		return nil, client.ObjectKey{}, err
	}
	c, err := newMCSClient(cfg)
	return c, client.ObjectKey{Namespace: ns, Name: name}, err
}

func newExportCommand() *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export SERVICE [-n NAMESPACE] [--context MEMBER]",
		Short: "Export a Service to the cluster set (create its MCS ServiceExport)",
		Long: `Export the Service SERVICE to the cluster set: create its ServiceExport
(multicluster.x-k8s.io/v1beta1), if there is none yet, then wait up to --wait
for the agent to judge it and print its Valid condition. An invalid export
makes the command fail.`,
		Example: `  causeway export checkout -n shop --context eu-1`,
		Args:    exactlyOneArg("the Service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.wait < 0 {
				return fmt.Errorf("--wait must not be negative, got %s", o.wait)
			}
			c, key, err := o.target(args[0])
			if err != nil {
				return err
			}
			if err := createServiceExport(cmd.Context(), cmd.OutOrStdout(), c, key); err != nil {
				return err
			}
			if o.wait == 0 {
				return nil
			}
			return waitValid(cmd.Context(), cmd.OutOrStdout(), c, key, o.wait)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().DurationVar(&o.wait, "wait", defaultExportWait, "how long to wait for the export's Valid condition (0: do not wait)")
	return cmd
}

func newUnexportCommand() *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:     "unexport SERVICE [-n NAMESPACE] [--context MEMBER]",
		Short:   "Stop exporting a Service (delete its MCS ServiceExport)",
		Example: `  causeway unexport checkout -n shop --context eu-1`,
		Args:    exactlyOneArg("the Service name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, key, err := o.target(args[0])
			if err != nil {
				return err
			}
			return deleteServiceExport(cmd.Context(), cmd.OutOrStdout(), c, key)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// newMCSClient returns a client for ServiceExports. Its rate limit is well
// above what polling for the Valid condition needs (client-go's default of
// 5 requests per second is not).
func newMCSClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	c, err := client.New(cfg, client.Options{Scheme: mcsScheme})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Host, err)
	}
	return c, nil
}

// explainNoMCS makes the error of a cluster without the MCS CRDs say so.
func explainNoMCS(err error) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("this cluster does not serve ServiceExports (multicluster.x-k8s.io/v1beta1): install Causeway here first: %w", err)
	}
	return err
}

// createServiceExport creates the ServiceExport key unless it exists.
func createServiceExport(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey) error {
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	err := c.Create(ctx, se)
	switch {
	case apierrors.IsAlreadyExists(err):
		fmt.Fprintf(out, "ServiceExport %s already exists.\n", key)
	case err != nil:
		return fmt.Errorf("create ServiceExport %s: %w", key, explainNoMCS(err))
	default:
		fmt.Fprintf(out, "ServiceExport %s created.\n", key)
	}
	return nil
}

// errNotValid is returned when the agent rejects an export.
var errNotValid = errors.New("the export is not valid")

// waitValid waits up to timeout for the ServiceExport's Valid condition (for
// its current generation) and prints it; Valid=False is an error.
func waitValid(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey, timeout time.Duration) error {
	var valid *metav1.Condition
	// Reads use ctx, not the poll's deadline: a read that would outlive the
	// deadline is not a read error, and the poll reports the timeout once
	// it returns.
	err := wait.PollUntilContextTimeout(ctx, validPollInterval, timeout, true, func(context.Context) (bool, error) {
		var se mcsv1beta1.ServiceExport
		if err := c.Get(ctx, key, &se); err != nil {
			return false, fmt.Errorf("read ServiceExport %s: %w", key, err)
		}
		valid = meta.FindStatusCondition(se.Status.Conditions, string(mcsv1beta1.ServiceExportConditionValid))
		return valid != nil && valid.Status != metav1.ConditionUnknown && (valid.ObservedGeneration == 0 || valid.ObservedGeneration >= se.Generation), nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		return fmt.Errorf("ServiceExport %s has no Valid condition after %s: is the causeway agent running in this cluster? (--wait 0 does not wait)", key, timeout)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Valid=%s (%s): %s\n", valid.Status, valid.Reason, valid.Message)
	if valid.Status != metav1.ConditionTrue {
		return fmt.Errorf("%w: ServiceExport %s: %s", errNotValid, key, valid.Message)
	}
	return nil
}

// deleteServiceExport deletes the ServiceExport key; one that does not
// exist is reported, not an error.
func deleteServiceExport(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey) error {
	se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	err := c.Delete(ctx, se)
	switch {
	case apierrors.IsNotFound(err):
		fmt.Fprintf(out, "Service %s was not exported (it has no ServiceExport).\n", key)
	case err != nil:
		return fmt.Errorf("delete ServiceExport %s: %w", key, explainNoMCS(err))
	default:
		fmt.Fprintf(out, "ServiceExport %s deleted.\n", key)
	}
	return nil
}
