package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags are the kubectl-style connection flags of the commands that
// talk to clusters.
type kubeFlags struct {
	// kubeconfig is an explicit kubeconfig file; empty means $KUBECONFIG or
	// ~/.kube/config, as with kubectl.
	kubeconfig string
	// context is the member cluster's context; empty means the current
	// context.
	context string
	// hubContext is the hub's context.
	hubContext string
}

// addKubeconfig adds --kubeconfig and --context; contextUsage describes
// which cluster --context selects.
func (f *kubeFlags) addKubeconfig(cmd *cobra.Command, contextUsage string) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVar(&f.context, "context", "", contextUsage)
}

// addHubContext adds the required --hub-context flag.
func (f *kubeFlags) addHubContext(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.hubContext, "hub-context", "", "kubeconfig context of the hub cluster (required)")
	_ = cmd.MarkFlagRequired("hub-context") // cannot fail: the flag exists
}

// clientConfig returns the kubeconfig loaded the kubectl way, with
// contextName ("" = the current context) selected.
func (f *kubeFlags) clientConfig(contextName string) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: contextName})
}

// restConfig returns the connection settings of contextName ("" = the
// current context).
func (f *kubeFlags) restConfig(contextName string) (*rest.Config, error) {
	cfg, err := f.clientConfig(contextName).ClientConfig()
	if err != nil {
		return nil, kubeconfigError(contextName, err)
	}
	return cfg, nil
}

// namespace returns the namespace flag's value, or else the namespace of
// the context, or else "default", as kubectl does.
func (f *kubeFlags) namespace(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	ns, _, err := f.clientConfig(f.context).Namespace()
	if err != nil {
		return "", kubeconfigError(f.context, err)
	}
	return ns, nil
}

func kubeconfigError(contextName string, err error) error {
	if clientcmd.IsEmptyConfig(err) {
		return errors.New("no kubeconfig found: pass --kubeconfig or set $KUBECONFIG")
	}
	if contextName == "" {
		return fmt.Errorf("load the current kubeconfig context: %w", err)
	}
	return fmt.Errorf("load kubeconfig context %q: %w", contextName, err)
}

// exactlyOneArg accepts one positional argument, described by what.
func exactlyOneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes exactly one argument, %s; got %d (see '%s --help')", cmd.Name(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}
