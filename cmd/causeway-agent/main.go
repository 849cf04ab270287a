// Command causeway-agent runs in every member cluster: it publishes the
// cluster's ServiceExports to the hub, realises the cluster set's services
// as ServiceImports and EndpointSlices, answers clusterset.local DNS,
// serves xDS to the cluster's data plane and signs its proxies' workload
// certificates, served over SDS.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/causeway-mesh/causeway/controllers/agent"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/controllers/linkstatus"
	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/internal/run"
	"github.com/causeway-mesh/causeway/internal/version"
)

func main() {
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the member cluster (default: in-cluster)")
	kubecontext := flag.String("context", "", "kubeconfig context")
	lease := flag.Duration("lease-duration", agent.DefaultLeaseDuration, "duration of the agent's lease on the hub; it is renewed every third of it")
	ipRange := flag.String("clusterset-ip-range", agent.DefaultClusterSetIPRange, "CIDR that ClusterSetIPs are allocated from")
	dnsAddr := flag.String("dns-addr", ":5353", "address of the clusterset.local DNS server, UDP and TCP (empty disables)")
	xdsAddr := flag.String("xds-addr", "", "address of a plaintext, unauthenticated xDS server for proxyless gRPC clients and proxies without an identity, e.g. "+xds.DefaultAddr+" (default: none; proxies with --sds-addr get xDS authenticated on the SDS port)")
	sdsAddr := flag.String("sds-addr", identity.DefaultSDSAddr, "address of the SDS server (gRPC with TLS, token-authenticated) that serves the cluster's proxies their workload certificates and xDS (empty disables)")
	audience := flag.String("sds-token-audience", identity.DefaultAudience, "audience of the ServiceAccount tokens SDS clients must present")
	certTTL := flag.Duration("workload-cert-ttl", identity.DefaultWorkloadCertTTL, "lifetime of workload certificates when the MeshConfig sets no workloadCertTTL (10m to 2160h); they are renewed at half-life")
	agentSA := flag.String("service-account", identity.AgentNamespace+"/"+identity.AgentServiceAccount, "namespace/name of the agent's ServiceAccount: the identity of its SDS serving certificate")
	linkGateways := flag.String("link-status-gateways", "", "admin addresses of gateways whose links to report besides the connected ones: host:port or node=host:port, comma-separated")
	metrics := flag.String("metrics-addr", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	health := flag.String("health-addr", ":8081", "address of /healthz (0 disables)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	_ = flag.Parse(os.Args[1:]) // ExitOnError: exits on a bad flag

	log, err := run.Logger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	prefix, err := netip.ParsePrefix(*ipRange)
	if err != nil {
		log.Error("bad --clusterset-ip-range", "err", err)
		os.Exit(2)
	}
	if err := identity.CheckTTL(*certTTL); err != nil {
		log.Error("bad --workload-cert-ttl", "err", err)
		os.Exit(2)
	}
	saNamespace, saName, ok := strings.Cut(*agentSA, "/")
	if !ok || saNamespace == "" || saName == "" {
		log.Error("bad --service-account: want namespace/name", "value", *agentSA)
		os.Exit(2)
	}
	static, err := linkstatus.ParseGateways(*linkGateways)
	if err != nil {
		log.Error("bad --link-status-gateways", "err", err)
		os.Exit(2)
	}
	cfg, err := run.RESTConfig(*kubeconfig, *kubecontext)
	if err != nil {
		log.Error("agent cannot start", "err", err)
		os.Exit(1)
	}
	ctx, stop := run.SignalContext()
	defer stop()
	if err := agent.Run(ctx, agent.Config{
		Member: cfg, LeaseDuration: *lease, ClusterSetIPRange: prefix, DNSAddr: *dnsAddr, XDSAddr: *xdsAddr,
		SDSAddr: *sdsAddr, TokenAudience: *audience, WorkloadCertTTL: *certTTL, AgentNamespace: saNamespace, AgentServiceAccount: saName,
		MetricsAddr: *metrics, HealthAddr: *health, LinkStatusGateways: static, Version: version.Version, Logger: log,
	}); err != nil {
		log.Error("agent stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
