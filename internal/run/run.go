// Package run holds what every Causeway daemon's main does the same way:
// a JSON slog logger (also behind controller-runtime's logr), a REST config
// from --kubeconfig or in-cluster, and a context cancelled by SIGINT or
// SIGTERM.
package run

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/causeway-mesh/causeway/internal/daemon"
)

// Logger returns a JSON logger at the given level ("debug", "info", "warn",
// "error") and installs it as controller-runtime's logger.
func Logger(level string) (*slog.Logger, error) {
	log, err := daemon.Logger(level)
	if err != nil {
		return nil, err
	}
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
	return log, nil
}

// RESTConfig loads kubeconfig (with an optional context), or the in-cluster
// config when kubeconfig is empty.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) { return daemon.SignalContext() }
