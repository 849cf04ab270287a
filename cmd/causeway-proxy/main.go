// Command causeway-proxy is Causeway's data plane: a sidecar beside one
// workload (--mode=sidecar, with transparent capture) or one proxy per
// node (--mode=node), configured only by the agent over xDS.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/causeway-mesh/causeway/gateway/proxy"
	"github.com/causeway-mesh/causeway/internal/daemon"
)

type bindings []proxy.Binding

func (b *bindings) String() string { return fmt.Sprint(*b) }
func (b *bindings) Set(v string) error {
	addr, name, ok := strings.Cut(v, "=")
	if !ok || addr == "" || name == "" {
		return fmt.Errorf("want ADDR=LISTENER, e.g. 127.0.0.1:15080=explicit_http")
	}
	*b = append(*b, proxy.Binding{Addr: addr, Listener: name})
	return nil
}

func main() {
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var o proxy.Options
	var binds bindings
	flag.StringVar(&o.Mode, "mode", "sidecar", "sidecar or node")
	flag.StringVar(&o.XDSAddr, "xds-addr", "localhost:15010", "gRPC target of the agent's xDS server")
	flag.StringVar(&o.NodeID, "node-id", "", "xDS node ID (default: <mode>~<hostname>)")
	flag.StringVar(&o.Cluster, "cluster", "", "name of the member cluster")
	flag.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the workload (sidecar)")
	flag.StringVar(&o.Pod, "pod", os.Getenv("POD_NAME"), "name of the pod (sidecar)")
	flag.Var(&binds, "listen", "explicit listener ADDR=LISTENER (repeatable), e.g. 127.0.0.1:15080=explicit_http")
	flag.StringVar(&o.OutboundAddr, "outbound-addr", "", "address of the capture listener (default: the address xDS gives, 0.0.0.0:15001)")
	flag.BoolVar(&o.Capture, "capture", false, "install iptables REDIRECT rules for outbound TCP in this network namespace (needs NET_ADMIN)")
	capGID := flag.Uint("capture-gid", 1337, "group the proxy runs as; its own traffic is not captured")
	flag.StringVar(&o.AdminAddr, "admin-addr", "127.0.0.1:15000", "admin endpoint: /ready, /healthz, /config_dump, /metrics")
	flag.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "how long in-flight requests may take after SIGTERM")
	concurrency := flag.Int("concurrency", 2, "worker threads (GOMAXPROCS); 0 uses every CPU. A sidecar needs few: like Istio's, the default is 2")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	_ = flag.Parse(os.Args[1:])
	o.Bindings = binds
	if *concurrency > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(*concurrency)
	}
	o.CaptureGID = uint32(*capGID)

	log, err := daemon.Logger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.Logger = log
	ctx, stop := daemon.SignalContext()
	defer stop()
	if err := proxy.Serve(ctx, o); err != nil {
		log.Error("proxy stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
