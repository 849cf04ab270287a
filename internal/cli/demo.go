package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
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
	idle     bool
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
cluster, in a private network namespace), join them all to a hub (the first
cluster, which is also a member) with causeway-hub and a causeway-agent per
cluster running, deploy a sample echo app in each cluster and export it, and
keep it running until Ctrl-C, then tear everything down.

With --idle there is no sample app: the cluster set waits for you (or an
MCS conformance suite) to use it.

Needs root and the binaries built by 'make test-bins' and 'make build'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().IntVar(&o.clusters, "clusters", 3, "number of clusters (1-50)")
	cmd.Flags().IntVar(&o.portBase, "port-base", 16443, "preferred host port of the first API server forward; the next clusters take the next ports, and a port in use moves on to a free one")
	cmd.Flags().BoolVar(&o.idle, "idle", false, "no scripted story: just keep the joined cluster set up")
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
	fmt.Fprintf(out, "Clusters ready in %s. Joining them to the hub (%s) and starting the agents...\n", time.Since(start).Round(100*time.Millisecond), specs[0].Name)
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	set, err := clusterset.Start(ctx, w, clusterset.Options{Hub: specs[0].Name, Members: names})
	if err != nil {
		return err
	}
	dns, err := w.Forward(0, set.DNSAddr(specs[0].Name))
	if err != nil {
		return err
	}
	var proxyAddr string
	if !o.idle {
		fmt.Fprintf(out, "Deploying %s/%s (%d replicas) in each cluster and exporting it...\n", demoNamespace, demoApp, demoReplicas)
		if err := deploySample(ctx, w); err != nil {
			return err
		}
		if err := exportSample(ctx, w); err != nil {
			return err
		}
		last := w.Clusters[len(w.Clusters)-1]
		fmt.Fprintf(out, "Starting a causeway-proxy in %s, configured by its agent over xDS...\n", last.Name)
		if proxyAddr, err = startDemoProxy(ctx, w, last); err != nil {
			return err
		}
	}
	printPlayground(out, w, dns.Addr, proxyAddr, o.idle)
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

// exportSample exports the sample app from every cluster and waits until
// each cluster imports it with every cluster's endpoints.
func exportSample(ctx context.Context, w *world.World) error {
	for _, c := range w.Clusters {
		cl, err := client.New(c.Config, client.Options{Scheme: scheme.New()})
		if err != nil {
			return fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoApp}}
		if err := cl.Create(ctx, se); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster %s: export %s/%s: %w", c.Name, demoNamespace, demoApp, err)
		}
	}
	want := len(w.Clusters) * demoReplicas
	for _, c := range w.Clusters {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			list, err := c.Client.DiscoveryV1().EndpointSlices(demoNamespace).List(ctx, metav1.ListOptions{LabelSelector: mcsv1beta1.LabelServiceName + "=" + demoApp})
			if err != nil {
				return false, nil //nolint:nilerr // keep polling until the deadline
			}
			n := 0
			for _, s := range list.Items {
				n += len(s.Endpoints)
			}
			return n == want, nil
		})
		if err != nil {
			return fmt.Errorf("cluster %s: the import of %s/%s did not reach %d endpoints: %w", c.Name, demoNamespace, demoApp, want, err)
		}
	}
	return nil
}

// Ports of the demo's proxy on its cluster's infrastructure address.
const (
	demoProxyPort      = 15080
	demoProxyAdminPort = 15000
)

// startDemoProxy runs causeway-proxy in node mode in cluster c with an
// explicit HTTP listener, forwards a host port to it, and waits until a
// request for the sample's cluster-set name comes back through it.
func startDemoProxy(ctx context.Context, w *world.World, c *world.Cluster) (string, error) {
	listen := c.InfraAddr(demoProxyPort)
	if _, err := w.Run("proxy-"+c.Name, "causeway-proxy", "--mode=node", "--cluster="+c.Name, "--node-id=node~"+c.Name+"~demo",
		"--xds-addr="+c.InfraAddr(clusterset.XDSPort), "--listen="+listen+"=explicit_http",
		"--admin-addr="+c.InfraAddr(demoProxyAdminPort)); err != nil {
		return "", err
	}
	fwd, err := w.Forward(0, listen)
	if err != nil {
		return "", err
	}
	host := fmt.Sprintf("%s.%s.svc.clusterset.local:%d", demoApp, demoNamespace, world.EchoHTTPPort)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	try := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+fwd.Addr+"/", nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		last = try(ctx)
		return last == nil, nil
	})
	if err != nil {
		return "", fmt.Errorf("cluster %s: no answer from %s through causeway-proxy: %w", c.Name, host, errors.Join(last, err))
	}
	return fwd.Addr, nil
}

func printPlayground(out io.Writer, w *world.World, dnsAddr, proxyAddr string, idle bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe cluster set is up: every cluster joined to the hub %s.\n\n  kubeconfig: %s\n  contexts:\n", w.Clusters[0].Name, w.Kubeconfig)
	for _, c := range w.Clusters {
		fmt.Fprintf(&b, "    %-4s API server https://%s  pods %s  region %s\n", c.Name, c.Forward.Addr, c.PodCIDR, c.Region)
	}
	first, last := w.Clusters[0].Name, w.Clusters[len(w.Clusters)-1].Name
	host, port, _ := net.SplitHostPort(dnsAddr)
	fmt.Fprintf(&b, "\nTry:\n  export KUBECONFIG=%s\n", w.Kubeconfig)
	fmt.Fprintf(&b, "  kubectl --context %s get nodes\n", first)
	fmt.Fprintf(&b, "  causeway status --hub-context %s\n", first)
	if !idle {
		fmt.Fprintf(&b, "  kubectl --context %s -n %s get serviceimports,endpointslices -o wide\n", last, demoNamespace)
		fmt.Fprintf(&b, "  dig +tcp @%s -p %s %s.%s.svc.clusterset.local\n", host, port, demoApp, demoNamespace)
		if proxyAddr != "" {
			fmt.Fprintf(&b, "  curl -H 'Host: %s.%s.svc.clusterset.local:%d' http://%s/   (through causeway-proxy in %s: local endpoints first)\n",
				demoApp, demoNamespace, world.EchoHTTPPort, proxyAddr, last)
		}
		fmt.Fprintf(&b, "\nEvery echo pod is a real process serving HTTP on :%d, gRPC on :%d and TCP on :%d at its pod IP.\n", world.EchoHTTPPort, world.EchoGRPCPort, world.EchoTCPPort)
	} else {
		fmt.Fprintf(&b, "  kubectl --context %s get serviceexports,serviceimports -A\n", last)
		fmt.Fprintf(&b, "  dig +tcp @%s -p %s <svc>.<ns>.svc.clusterset.local   (the %s agent's clusterset.local DNS)\n", host, port, first)
	}
	fmt.Fprintf(&b, "Logs of every process: %s\n\nPress Ctrl-C to tear it all down.\n", w.Dir+"/logs")
	_, _ = io.WriteString(out, b.String())
}
