package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/causeway-mesh/causeway/gateway/xdsclient"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// NodeMetaServiceAccount is the node metadata key of the workload's
// ServiceAccount, which the agent's SDS server checks against the token.
const NodeMetaServiceAccount = xdsconv.NodeMetaServiceAccount

// The agent's identity: the SDS server must present
// spiffe://<trust domain>/ns/causeway-system/sa/causeway-agent. Only that
// ID is accepted, not any SVID of the trust domain: every workload has
// one, and a workload that could pose as the agent would hand out
// identities (or withhold them).
const (
	agentNamespace      = "causeway-system"
	agentServiceAccount = "causeway-agent"
)

// sdsKeepalive pings the SDS server as the agent's enforcement policy
// allows (at most every 10 s).
const sdsKeepalive = 30 * time.Second

// newSDSClient makes the proxy's identity store and the SDS client that
// fills it, from the options' SDS settings, and returns the client's
// credentials (agentCredentials) for the ADS client when it uses the same
// port.
func newSDSClient(o Options, log *slog.Logger, hooks xdsclient.Hooks) (*Secrets, *xdsclient.Client, []grpc.DialOption, error) {
	switch {
	case o.TokenFile == "":
		return nil, nil, nil, errors.New("SDS needs a token file (--token-file)")
	case o.TrustBundleFile == "":
		return nil, nil, nil, errors.New("SDS needs the trust bundle file (--trust-bundle-file) to verify the agent")
	case o.Namespace == "" || o.ServiceAccount == "":
		return nil, nil, nil, errors.New("SDS needs the workload's namespace and ServiceAccount (--namespace, --service-account)")
	}
	td, err := trustDomainOf(o.TrustDomain, o.TrustBundleFile)
	if err != nil {
		return nil, nil, nil, err
	}
	agent, err := spiffeid.FromSegments(td, "ns", agentNamespace, "sa", agentServiceAccount)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent SPIFFE ID: %w", err)
	}
	meta, err := nodeMetadata(o, false) // the SDS server does not read the HBONE flag
	if err != nil {
		return nil, nil, nil, err
	}
	creds := agentCredentials(o, td, agent)
	secrets := NewSecrets(td)
	client := xdsclient.New(xdsclient.Config{
		Service:       xdsclient.ServiceSDS,
		ServerAddress: o.SDSAddr,
		DialOptions: append(creds,
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: sdsKeepalive, Timeout: 10 * time.Second}),
		),
		Node: &corev3.Node{
			Id: o.NodeID, Cluster: o.Cluster, Metadata: meta,
			UserAgentName: "causeway-proxy", Locality: &corev3.Locality{},
		},
		Applier: secrets,
		Logger:  log,
		Hooks:   hooks,
	})
	return secrets, client, creds, nil
}

// agentCredentials are the dial options of a connection to the agent's
// authenticated port: TLS, where go-spiffe verifies the agent's
// certificate (an X509-SVID of the trust domain chaining to the mounted
// roots, whose ID is the agent's), and the ServiceAccount token on every
// stream.
func agentCredentials(o Options, td spiffeid.TrustDomain, agent spiffeid.ID) []grpc.DialOption {
	tlsCfg := tlsconfig.TLSClientConfig(fileBundle{path: o.TrustBundleFile, td: td}, tlsconfig.AuthorizeID(agent))
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(tokenCredentials{file: o.TokenFile}),
	}
}

// trustDomainOf is the configured trust domain, or the one the roots of
// the bundle file name in their SPIFFE IDs (roots made by internal/pki
// carry spiffe://<trust domain>).
func trustDomainOf(configured, bundleFile string) (spiffeid.TrustDomain, error) {
	if configured != "" {
		td, err := spiffeid.TrustDomainFromString(configured)
		if err != nil {
			return spiffeid.TrustDomain{}, fmt.Errorf("trust domain %q: %w", configured, err)
		}
		return td, nil
	}
	b, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString("parse.invalid"), bundleFile)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("read trust bundle %s: %w", bundleFile, err)
	}
	set := &secretSet{roots: map[string]*rootSecret{"file": {roots: b.X509Authorities()}}}
	td := learnTrustDomain(set)
	if td.IsZero() {
		return spiffeid.TrustDomain{}, fmt.Errorf("the roots in %s name no trust domain (no SPIFFE ID): set --trust-domain", bundleFile)
	}
	return td, nil
}

// fileBundle is a trust bundle read from a file at each use: the
// ConfigMap it is mounted from changes when roots rotate.
type fileBundle struct {
	path string
	td   spiffeid.TrustDomain
}

func (f fileBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != f.td {
		return nil, fmt.Errorf("no bundle for trust domain %q (the agent's is %q)", td, f.td)
	}
	b, err := x509bundle.Load(f.td, f.path)
	if err != nil {
		return nil, fmt.Errorf("read trust bundle %s: %w", f.path, err)
	}
	return b, nil
}

// tokenCredentials send the ServiceAccount token as a bearer token,
// read from its file for every stream: the kubelet rotates it.
type tokenCredentials struct{ file string }

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(t.file)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", t.file)
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity: the token never travels in plaintext.
func (tokenCredentials) RequireTransportSecurity() bool { return true }

// podAddrs parses the pod's addresses (each entry may hold several,
// comma-separated); with none given, they are the addresses of the
// network namespace's interfaces, loopback and link-local excluded (a
// sidecar shares the pod's namespace).
func podAddrs(ips []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, entry := range ips {
		for _, s := range strings.Split(entry, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("pod IP %q: %w", s, err)
			}
			out = append(out, a.Unmap())
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip)
	}
	if len(out) == 0 {
		return nil, errors.New("no pod address: the namespace has no non-loopback address; set --pod-ip")
	}
	return out, nil
}
