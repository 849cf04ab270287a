package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// demoNamespace and demoApp name the sample workload in every cluster.
const (
	demoNamespace = "demo"
	demoApp       = "echo"
	demoReplicas  = 2
)

type demoOptions struct {
	clusters int
	portBase int
	binDir   string
	// ready, if set, is called once the playground is up (tests use it).
	ready func(*world.World)
}

func newDemoCommand() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up a local cluster-set playground and keep it running until Ctrl-C",
		Long: `Bring up a cluster set of real Kubernetes control planes on this machine
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok per
cluster, in a private network namespace), deploy a sample echo app in each
cluster, and keep it running until Ctrl-C, then tear everything down.
Needs root and the binaries built by 'make test-bins' and 'make build'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().IntVar(&o.clusters, "clusters", 3, "number of clusters (1-50)")
	cmd.Flags().IntVar(&o.portBase, "port-base", 16443, "preferred host port of the first API server forward; the next clusters take the next ports, and a port in use moves on to a free one")
	cmd.Flags().StringVar(&o.binDir, "bin-dir", "", "directory holding the test-world binaries (default: beside this executable, or the repository's bin/)")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o *demoOptions) error {
	if o.clusters < 1 || o.clusters > 50 {
		return fmt.Errorf("--clusters must be between 1 and 50, got %d", o.clusters)
	}
	specs := make([]world.ClusterSpec, o.clusters)
	for i := range specs {
		specs[i] = world.ClusterSpec{Name: fmt.Sprintf("c%d", i+1), Region: fmt.Sprintf("region-%d", i+1), Zone: fmt.Sprintf("region-%d-a", i+1)}
	}
	fmt.Fprintf(out, "Starting %d clusters...\n", o.clusters)
	start := time.Now()
	w, err := world.Start(ctx, world.Options{
		Clusters:     specs,
		BinDir:       o.binDir,
		HostPortBase: o.portBase,
		Logf:         func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "Tearing down the cluster set...")
		if err := w.Stop(); err != nil {
			fmt.Fprintf(out, "teardown: %v\n", err)
		}
	}()
	fmt.Fprintf(out, "Clusters ready in %s. Deploying %s/%s (%d replicas) in each...\n", time.Since(start).Round(100*time.Millisecond), demoNamespace, demoApp, demoReplicas)
	if err := deploySample(ctx, w); err != nil {
		return err
	}
	printPlayground(out, w)
	if o.ready != nil {
		o.ready(w)
	}
	select {
	case <-ctx.Done():
	case <-w.Failed():
		return fmt.Errorf("the cluster set failed: %w", w.Err())
	}
	return nil
}

// deploySample deploys the echo app in every cluster and checks that each
// endpoint's process answers HTTP.
func deploySample(ctx context.Context, w *world.World) error {
	errs := make([]error, len(w.Clusters))
	var wg sync.WaitGroup
	for i, c := range w.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.CreateEchoApp(ctx, demoNamespace, demoApp, demoReplicas); err != nil {
				errs[i] = err
				return
			}
			eps, err := c.WaitReadyEndpoints(ctx, demoNamespace, demoApp, demoReplicas, time.Minute)
			if err != nil {
				errs[i] = err
				return
			}
			for _, ep := range eps {
				if err := w.WaitListening(ctx, world.HostPort(ep.IP, world.EchoHTTPPort), 30*time.Second); err != nil {
					errs[i] = fmt.Errorf("cluster %s: echo pod %s at %s never listened: %w", c.Name, ep.Pod, ep.IP, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func printPlayground(out io.Writer, w *world.World) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe cluster set is up.\n\n  kubeconfig: %s\n  contexts:\n", w.Kubeconfig)
	for _, c := range w.Clusters {
		fmt.Fprintf(&b, "    %-4s API server https://%s  pods %s  region %s\n", c.Name, c.Forward.Addr, c.PodCIDR, c.Region)
	}
	first, last := w.Clusters[0].Name, w.Clusters[len(w.Clusters)-1].Name
	fmt.Fprintf(&b, "\nTry:\n  export KUBECONFIG=%s\n", w.Kubeconfig)
	fmt.Fprintf(&b, "  kubectl --context %s get nodes\n", first)
	fmt.Fprintf(&b, "  kubectl --context %s -n %s get pods,endpointslices -o wide\n", last, demoNamespace)
	fmt.Fprintf(&b, "\nEvery echo pod is a real process serving HTTP on :%d, gRPC on :%d and TCP on :%d at its pod IP.\n", world.EchoHTTPPort, world.EchoGRPCPort, world.EchoTCPPort)
	fmt.Fprintf(&b, "Logs of every process: %s\n\nPress Ctrl-C to tear it all down.\n", w.Dir+"/logs")
	_, _ = io.WriteString(out, b.String())
}
