package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/gateway/xdsclient"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// meshTD is the trust domain of the mesh tests.
var meshTD = spiffeid.RequireTrustDomainFromString("mesh.test")

// meshCA is a trust domain's root and a cluster intermediate, made by
// internal/pki.
type meshCA struct {
	root, inter *pki.CA
}

func newMeshCA(t testing.TB, td spiffeid.TrustDomain) *meshCA {
	t.Helper()
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("east", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &meshCA{root: root, inter: inter}
}

// svid signs an X509-SVID for id: chain and key as PEM, and as a TLS
// certificate.
func (c *meshCA) svid(t testing.TB, id spiffeid.ID) (chainPEM, keyPEM []byte, cert *tls.Certificate) {
	t.Helper()
	key := newKey(t)
	s, err := c.inter.SignPublicKey(key.Public(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return s.ChainPEM(), keyPEM, &tls.Certificate{Certificate: s.ChainDER(), PrivateKey: key, Leaf: s.Leaf()}
}

func workloadID(ns, sa string) spiffeid.ID {
	return spiffeid.RequireFromSegments(meshTD, "ns", ns, "sa", sa)
}

// sdsAgent is a small SDS server made of go-control-plane's parts, as the
// agent's is: TLS with the agent's SVID, every stream authenticated by a
// bearer token whose ServiceAccount the node's metadata must name, and
// per node a snapshot with the secrets "default" and "ROOTCA" that the
// test sets (so it can rotate them at will).
type sdsAgent struct {
	addr   string
	cache  cachev3.SnapshotCache
	tokens map[string]string // token → namespace/serviceaccount

	mu       sync.Mutex
	version  int
	streams  map[int64]string // stream → the token's namespace/serviceaccount
	refusals []string
	nodes    map[string]*agentNode
	// accepted are the type URLs of the requests the agent accepted (after
	// the token and node checks), SDS and ADS alike.
	accepted []string
}

type agentNode struct {
	chain, key, roots []byte
}

func startSDSAgent(t testing.TB, ca *meshCA, tokens map[string]string, serveAs ...spiffeid.ID) *sdsAgent {
	t.Helper()
	id := spiffeid.RequireFromSegments(meshTD, "ns", agentNamespace, "sa", agentServiceAccount)
	if len(serveAs) > 0 {
		id = serveAs[0]
	}
	agentChain, agentKey, _ := ca.svid(t, id)
	cert, err := tls.X509KeyPair(agentChain, agentKey)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &sdsAgent{
		addr:    lis.Addr().String(),
		cache:   cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil),
		tokens:  tokens,
		streams: map[int64]string{},
		nodes:   map[string]*agentNode{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		// As the agent's: proxies ping idle streams every 30 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	sotw := sotwv3.NewServer(ctx, a.cache, a)
	secretv3.RegisterSecretDiscoveryServiceServer(srv, agentSDS{sotw: sotw})
	// As the agent's SDS port, it serves ADS too, under the same checks
	// (it has no listeners to serve).
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, agentADS{sotw: sotw})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); cancel() })
	return a
}

type agentSDS struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer
	sotw sotwv3.Server
}

func (s agentSDS) StreamSecrets(st secretv3.SecretDiscoveryService_StreamSecretsServer) error {
	return s.sotw.StreamHandler(st, resourcev3.SecretType)
}

type agentADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	sotw sotwv3.Server
}

func (s agentADS) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return s.sotw.StreamHandler(st, resourcev3.AnyType)
}

// OnStreamOpen authenticates the stream by its bearer token.
func (a *sdsAgent) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if who, ok := a.tokens[strings.TrimPrefix(v, "Bearer ")]; ok && strings.HasPrefix(v, "Bearer ") {
			a.mu.Lock()
			a.streams[id] = who
			a.mu.Unlock()
			return nil
		}
	}
	a.refuse("no valid token")
	return status.Error(codes.Unauthenticated, "no valid token")
}

func (a *sdsAgent) OnStreamClosed(id int64, _ *corev3.Node) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.streams, id)
}

// OnStreamRequest checks the node's metadata against the token.
func (a *sdsAgent) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	if req.GetNode() == nil {
		return nil
	}
	md := req.GetNode().GetMetadata().GetFields()
	claimed := md[xdsconv.NodeMetaNamespace].GetStringValue() + "/" + md[NodeMetaServiceAccount].GetStringValue()
	a.mu.Lock()
	who := a.streams[id]
	a.mu.Unlock()
	if claimed != who {
		a.refuse("node " + claimed + " is not the token's " + who)
		return status.Errorf(codes.PermissionDenied, "node metadata %s does not match the token's %s", claimed, who)
	}
	a.mu.Lock()
	a.accepted = append(a.accepted, req.GetTypeUrl())
	a.mu.Unlock()
	return nil
}

func (a *sdsAgent) acceptedTypes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.accepted)
}

func (a *sdsAgent) OnStreamResponse(context.Context, int64, *discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {
}
func (a *sdsAgent) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error           { return nil }
func (a *sdsAgent) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

func (a *sdsAgent) refused() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.refusals)
}

func (a *sdsAgent) refuse(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refusals = append(a.refusals, why)
}

// serve sets a node's secrets: its SVID and the trust bundle.
func (a *sdsAgent) serve(t testing.TB, node string, chain, key, roots []byte) {
	t.Helper()
	a.mu.Lock()
	n := a.nodes[node]
	if n == nil {
		n = &agentNode{}
		a.nodes[node] = n
	}
	if chain != nil {
		n.chain, n.key = chain, key
	}
	if roots != nil {
		n.roots = roots
	}
	a.version++
	version := strconv.Itoa(a.version)
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{resourcev3.SecretType: {
		&tlsv3.Secret{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(n.chain), PrivateKey: inline(n.key),
		}}},
		&tlsv3.Secret{Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(n.roots),
		}}},
	}})
	a.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

// meshNode is a proxy with an identity from the SDS agent.
type meshNode struct {
	name    string
	id      spiffeid.ID
	proxy   *Proxy
	store   *Store
	secrets *Secrets
	sds     *xdsclient.Client
}

type nodeOptions struct {
	ns, sa string
	// sidecar runs the inbound HBONE server, for the pod's podAddrs.
	sidecar  bool
	podAddrs []netip.Addr
	// tunnelPort is where this node's tunnels go (the peer's HBONE port).
	tunnelPort  uint16
	bindings    []Binding
	originalDst func(*net.TCPConn) (netip.AddrPort, error)
	inboundAddr string
	token       string // default: the one the agent knows for ns/sa
	cluster     string // default: "east"
}

// startNode starts a proxy whose SDS client talks to the agent with a
// token and the trust bundle file, as causeway-proxy does (newSDSClient).
func startNode(t testing.TB, agent *sdsAgent, bundleFile, name string, o nodeOptions) *meshNode {
	t.Helper()
	dir := t.TempDir()
	token := o.token
	if token == "" {
		for tok, who := range agent.tokens {
			if who == o.ns+"/"+o.sa {
				token = tok
			}
		}
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Mode: xdsconv.ModeSidecar, NodeID: name, Namespace: o.ns, Pod: name, Cluster: cmp.Or(o.cluster, "east"),
		SDSAddr: agent.addr, TokenFile: tokenFile, TrustBundleFile: bundleFile, ServiceAccount: o.sa,
	}
	secrets, sds, _, err := newSDSClient(opts, discardLogger(), xdsclient.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	store.UseSecrets(secrets)
	store.addHook(sds.Resubscribe)
	cfg := Config{
		Store: store, Bindings: o.bindings, Identity: secrets, PodAddrs: o.podAddrs, Cluster: cmp.Or(o.cluster, "east"),
		TunnelPort: o.tunnelPort, OriginalDst: o.originalDst, InboundAddr: o.inboundAddr, BindListeners: o.inboundAddr != "",
		Logger: discardLogger(), DrainTimeout: 2 * time.Second,
	}
	if o.sidecar {
		cfg.HBONEAddr = "127.0.0.1:0"
	}
	n := &meshNode{name: name, id: workloadID(o.ns, o.sa), proxy: New(cfg), store: store, secrets: secrets, sds: sds}
	ctx, cancel := context.WithCancel(context.Background())
	sdsDone, proxyDone := make(chan error, 1), make(chan error, 1)
	go func() { sdsDone <- sds.Run(ctx) }()
	go func() { proxyDone <- n.proxy.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-proxyDone; err != nil {
			t.Errorf("%s drain: %v", name, err)
		}
		if err := <-sdsDone; err != nil {
			t.Errorf("%s SDS client: %v", name, err)
		}
	})
	if o.sidecar {
		waitUntil(t, name+" serves HBONE", func() bool { return n.proxy.HBONEAddr() != "" })
	}
	return n
}

func (n *meshNode) hbonePort(t testing.TB) uint16 {
	t.Helper()
	ap := netip.MustParseAddrPort(n.proxy.HBONEAddr())
	return ap.Port()
}

func (n *meshNode) waitIdentity(t testing.TB) {
	t.Helper()
	waitUntil(t, n.name+" has its SVID and bundle", func() bool { return n.secrets.Has(SecretDefault, SecretRootCA) })
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeBundle writes the PEM of roots to a file, as the ConfigMap mount.
func writeBundle(t testing.TB, path string, roots ...*pki.CA) []byte {
	t.Helper()
	var b []byte
	for _, r := range roots {
		b = append(b, r.CertificatePEM()...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- xDS resources of the mesh tests ----

func rbacRules(action rbacv3.RBAC_Action, policies map[string]*rbacv3.Policy) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: policies}
}

func denyPathPrefix(prefix string, ignoreCase bool) *rbacv3.RBAC {
	return rbacRules(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"deny-" + prefix: {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
			Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}, IgnoreCase: ignoreCase},
		}}}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
	}})
}

func allowPrincipal(id spiffeid.ID) *rbacv3.RBAC {
	return rbacRules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"allow-" + id.Path(): {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
			PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id.String()}},
		}}}},
	}})
}

func allowCluster(cluster string) *rbacv3.RBAC {
	return rbacRules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"from-" + cluster: {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: xdsconv.FilterStatePeerCluster, Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: cluster}}},
		}}}},
	}})
}

// inbound is a sidecar's inbound configuration, as the agent's
// translation makes it (controllers/xds/translate/inbound.go): an HTTP
// chain for httpPort (path normalisation, the RBAC filters, a route to
// its inbound cluster), a TCP chain for tcpPort (network RBAC, then
// tcp_proxy) and a pass-through default chain.
type inbound struct {
	httpPort, tcpPort uint16
	httpRBAC, tcpRBAC []*rbacv3.RBAC
	mtls              string // "": no metadata
}

func (in inbound) resources(t testing.TB) (listeners, clusters []proto.Message) {
	t.Helper()
	httpCluster, tcpCluster := xdsconv.InboundClusterName(int32(in.httpPort)), xdsconv.InboundClusterName(int32(in.tcpPort))
	var httpFilters []*hcmv3.HttpFilter
	for _, r := range in.httpRBAC {
		httpFilters = append(httpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(t, &rbacfilterv3.RBAC{Rules: r}),
		}})
	}
	httpFilters = append(httpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_http", NormalizePath: wrapperspb.Bool(true), MergeSlashes: true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: httpCluster, VirtualHosts: []*routev3.VirtualHost{{Name: httpCluster, Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match: prefixMatch("/"), Action: routeTo(httpCluster),
			}}}},
		}},
		HttpFilters: httpFilters,
	}
	var tcpFilters []*listenerv3.Filter
	for _, r := range in.tcpRBAC {
		tcpFilters = append(tcpFilters, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: mustAny(t, &rbacnetv3.RBAC{Rules: r, StatPrefix: "inbound_rbac"}),
		}})
	}
	tcpProxy := func(cluster string) *listenerv3.Filter {
		return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpv3.TcpProxy{
			StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster},
		})}}
	}
	l := &listenerv3.Listener{
		Name:             xdsconv.VirtualInboundListener,
		Address:          sockAddr("0.0.0.0", xdsconv.VirtualInboundPort),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{
			{Name: "http", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(in.httpPort))}, Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
			}}},
			{Name: "tcp", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(in.tcpPort))}, Filters: append(slices.Clone(tcpFilters), tcpProxy(tcpCluster))},
		},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "passthrough", Filters: append(slices.Clone(tcpFilters), tcpProxy(xdsconv.InboundPassthroughCluster))},
	}
	if in.mtls != "" {
		l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
			MetadataMTLS: structpb.NewStringValue(in.mtls),
		}}}}
	}
	// The inbound clusters send to the address the client meant (the
	// CONNECT target, the original destination), as the agent's do.
	originalDst := func(name string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED, ConnectTimeout: durationpb.New(time.Second),
		}
	}
	return []proto.Message{l}, []proto.Message{originalDst(httpCluster), originalDst(tcpCluster), originalDst(xdsconv.InboundPassthroughCluster)}
}

// configureInbound applies an inbound configuration to a sidecar.
func (n *meshNode) configureInbound(t testing.TB, version string, in inbound) {
	t.Helper()
	ls, cs := in.resources(t)
	apply(t, n.store, cdsType, version, cs...)
	apply(t, n.store, ldsType, version, ls...)
}

// hboneCLA is endpoints marked to be reached through HBONE.
func hboneCLA(t testing.TB, name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	c := cla(t, name, addrs...)
	for _, le := range c.Endpoints {
		for _, e := range le.LbEndpoints {
			e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
				xdsconv.MetadataTunnel: structpb.NewStringValue(xdsconv.TunnelHBONE),
			}}}}
		}
	}
	return c
}

// configureOutbound gives a client proxy the listeners "out_http" (HTTP
// to cluster "svc-http") and "out_tcp" (TCP to "svc-tcp"), whose
// endpoints are reached through HBONE.
func (n *meshNode) configureOutbound(t testing.TB, version, httpAddr, tcpAddr string) {
	t.Helper()
	apply(t, n.store, cdsType, version, edsCluster(t, "svc-http", false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(t, "svc-tcp", false, clusterv3.Cluster_ROUND_ROBIN))
	apply(t, n.store, edsType, version, hboneCLA(t, "svc-http", httpAddr), hboneCLA(t, "svc-tcp", tcpAddr))
	apply(t, n.store, rdsType, version, &routev3.RouteConfiguration{Name: "out", VirtualHosts: []*routev3.VirtualHost{{
		Name: "svc", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("svc-http")}},
	}}})
	out := hcmListener(t, "out_http", "out", false)
	apply(t, n.store, ldsType, version, out, tcpListener(t, "out_tcp", "svc-tcp", 9))
}

// bindingAddr returns where a binding of the node listens.
func (n *meshNode) bindingAddr(t testing.TB, listener string) string {
	t.Helper()
	var addr string
	waitUntil(t, n.name+" binds "+listener, func() bool {
		addr = n.proxy.Addrs()[listener]
		return addr != ""
	})
	return addr
}
