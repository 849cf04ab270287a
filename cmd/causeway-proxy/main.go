// Command causeway-proxy is Causeway's data plane: a sidecar beside one
// workload (--mode=sidecar, with transparent capture), one proxy per node
// (--mode=node), or a cluster's east-west gateway (--mode=gateway),
// configured only by the agent over xDS.
package main

import (
	"cmp"
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

type podIPs []string

func (p *podIPs) String() string     { return strings.Join(*p, ",") }
func (p *podIPs) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var o proxy.Options
	var binds bindings
	var ips podIPs
	flag.StringVar(&o.Mode, "mode", "sidecar", "sidecar, node or gateway (the cluster's east-west gateway: cluster links and tunnels to other clusters)")
	flag.StringVar(&o.XDSAddr, "xds-addr", "", "gRPC target of an agent's plaintext xDS server (e.g. localhost:15010), for a proxy without an identity; with --sds-addr, empty (the default) or equal to --sds-addr gets xDS from the SDS port with TLS and the token")
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
	flag.StringVar(&o.SDSAddr, "sds-addr", "", "gRPC target of the agent's SDS server (TLS), e.g. causeway-agent.causeway-system:15012; enables mutual TLS and HBONE")
	flag.StringVar(&o.TokenFile, "token-file", "/var/run/secrets/tokens/causeway-token", "ServiceAccount token (audience causeway) sent to SDS; read for every stream")
	flag.StringVar(&o.TrustBundleFile, "trust-bundle-file", "/var/run/causeway/trust-bundle/roots.pem", "PEM roots that verify the agent's SDS certificate (ConfigMap causeway-system/causeway-trust-bundle)")
	flag.StringVar(&o.TrustDomain, "trust-domain", "", "the mesh's trust domain (default: from the SPIFFE IDs of the trust bundle's roots)")
	flag.StringVar(&o.ServiceAccount, "service-account", os.Getenv("SERVICE_ACCOUNT"), "ServiceAccount of the workload (sent to SDS as node metadata)")
	flag.StringVar(&o.HBONEAddr, "hbone-addr", "", "inbound HBONE server address (default :15008 in sidecar mode with --sds-addr; off to disable); in gateway mode, where this cluster's sidecars open tunnels to other clusters (default :15008)")
	flag.StringVar(&o.InboundAddr, "inbound-addr", "", "where captured inbound plaintext arrives (default :15006 with the HBONE server)")
	flag.Var(&ips, "pod-ip", "an address of the pod (repeatable or comma-separated; default: $POD_IPS, $POD_IP, else the interfaces' addresses); the first one given is the source address of upstream connections")
	flag.BoolVar(&o.CaptureInbound, "capture-inbound", true, "with --capture and the HBONE server, also redirect inbound TCP to the inbound address (except the HBONE and admin ports)")
	flag.StringVar(&o.Link.Addr, "link-addr", "", "gateway: where cluster links are accepted, UDP (QUIC) and TCP (HTTP/2 fallback) on one port (default :15443)")
	flag.DurationVar(&o.Link.KeepAlive, "link-keepalive", proxy.DefaultLinkKeepAlive, "gateway: keepalive period of cluster links")
	flag.DurationVar(&o.Link.IdleTimeout, "link-idle-timeout", proxy.DefaultLinkIdleTimeout, "gateway: a link silent this long is down")
	flag.DurationVar(&o.Link.MinBackoff, "link-min-backoff", 100*time.Millisecond, "gateway: first wait before reconnecting a link (jittered, doubling)")
	flag.DurationVar(&o.Link.MaxBackoff, "link-max-backoff", proxy.DefaultLinkMaxBackoff, "gateway: longest wait before reconnecting a link")
	flag.DurationVar(&o.Link.QUICRetry, "link-quic-retry", 30*time.Second, "gateway: how often a link that fell back to TCP tries QUIC again")
	concurrency := flag.Int("concurrency", 2, "worker threads (GOMAXPROCS); 0 uses every CPU. A sidecar needs few: like Istio's, the default is 2")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	_ = flag.Parse(os.Args[1:])
	o.Bindings = binds
	o.PodIPs = ips
	if len(o.PodIPs) == 0 {
		o.PodIPs = []string{cmp.Or(os.Getenv("POD_IPS"), os.Getenv("POD_IP"))}
	}
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
