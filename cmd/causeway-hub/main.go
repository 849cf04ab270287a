// Command causeway-hub runs the hub controller: it merges the members'
// exports by the Multi-Cluster Services rules and tracks member health.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/causeway-mesh/causeway/federation/hub"
	"github.com/causeway-mesh/causeway/internal/run"
)

func main() {
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the hub cluster (default: in-cluster)")
	kubecontext := flag.String("context", "", "kubeconfig context")
	grace := flag.Duration("grace-period", hub.DefaultGracePeriod, "how long past its lease's expiry a silent member keeps its endpoints")
	metrics := flag.String("metrics-addr", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	health := flag.String("health-addr", ":8081", "address of /healthz and /readyz (0 disables)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	_ = flag.Parse(os.Args[1:]) // ExitOnError: exits on a bad flag

	log, err := run.Logger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg, err := run.RESTConfig(*kubeconfig, *kubecontext)
	if err != nil {
		log.Error("hub cannot start", "err", err)
		os.Exit(1)
	}
	ctx, stop := run.SignalContext()
	defer stop()
	if err := hub.Run(ctx, hub.Config{REST: cfg, GracePeriod: *grace, MetricsAddr: *metrics, HealthAddr: *health}); err != nil {
		log.Error("hub stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
