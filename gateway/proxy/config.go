package proxy

import (
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/gateway/authz"
	"github.com/causeway-mesh/causeway/gateway/jwtauthn"
	"github.com/causeway-mesh/causeway/gateway/lb"
	"github.com/causeway-mesh/causeway/gateway/match"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// model is one complete, compiled configuration. It is immutable once
// published: requests hold it for their whole life.
type model struct {
	listeners map[string]*listener
	// byAddr holds the listeners that do not bind, by address, for
	// original-destination dispatch; wildcard (0.0.0.0) ones by port.
	byAddr     map[netip.AddrPort]*listener
	byPort     map[uint16]*listener
	routes     map[string]*routeConfig
	clusters   map[string]*cluster
	versions   map[string]string
	generation uint64
	// auth holds the JWT authenticators the model uses, by config hash.
	auth map[string]*jwtauthn.Authenticator
	// endpoints describes every endpoint address of every cluster: its
	// member cluster and whether it takes HBONE tunnels.
	endpoints map[string]endpointMeta
	// tunnelIPs holds the pod addresses of HBONE endpoints of cluster-set
	// services, for a gateway's checks of tunnels to a pod's HBONE port.
	tunnelIPs map[netip.Addr]endpointMeta
	// gatewayIPs are the addresses of this cluster's east-west gateways
	// (endpoints of gatewayCluster).
	gatewayIPs map[netip.Addr]bool
	// links is a gateway's link plan: one entry per peer cluster, from
	// the clusters named xdsconv.LinkClusterPrefix + peer.
	links map[string]*linkPeer
}

// endpointMeta is what the proxy knows of an endpoint address beyond its
// balancer entry.
type endpointMeta struct {
	// cluster is the member cluster the endpoint runs in ("" when EDS
	// does not say).
	cluster string
	// hbone: the endpoint's pod serves HBONE on xdsconv.HBONEPort.
	hbone bool
	// clusterset: the endpoint backs a service exported to the cluster
	// set (a cluster of a *.svc.clusterset.local host).
	clusterset bool
}

// linkPeer is one peer of a gateway's link plan.
type linkPeer struct {
	cluster string
	// dial: this gateway opens the link; otherwise the peer does.
	dial bool
	// quic: try QUIC first (else TCP+TLS only).
	quic bool
	// addrs are the peer's link addresses (host:port), preferred first.
	addrs []string
}

// compileLink turns a link cluster (see xdsconv.LinkClusterPrefix) into a
// plan entry. Its endpoints may be host names, which ordinary clusters'
// may not.
func compileLink(c *clusterv3.Cluster) (*linkPeer, error) {
	name := c.GetName()
	peer := strings.TrimPrefix(name, xdsconv.LinkClusterPrefix)
	md := c.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()
	if p := md[xdsconv.MetadataPeerCluster].GetStringValue(); p != "" && p != peer {
		return nil, fmt.Errorf("link cluster %q: metadata %s is %q", name, xdsconv.MetadataPeerCluster, p)
	}
	if peer == "" {
		return nil, fmt.Errorf("link cluster %q: no peer cluster name", name)
	}
	lp := &linkPeer{cluster: peer}
	switch role := md[xdsconv.MetadataLinkRole].GetStringValue(); role {
	case xdsconv.LinkRoleDial:
		lp.dial = true
	case xdsconv.LinkRoleAccept:
	default:
		return nil, fmt.Errorf("link cluster %q: %s is %q, want %q or %q", name, xdsconv.MetadataLinkRole, role, xdsconv.LinkRoleDial, xdsconv.LinkRoleAccept)
	}
	switch t := md[xdsconv.MetadataLinkTransport].GetStringValue(); t {
	case "", "QUIC":
		lp.quic = true
	case "TCP":
	default:
		return nil, fmt.Errorf("link cluster %q: %s is %q, want QUIC or TCP", name, xdsconv.MetadataLinkTransport, t)
	}
	type prio struct {
		p    uint32
		addr string
	}
	var addrs []prio
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil || sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, fmt.Errorf("link cluster %q: an endpoint without a host and port", name)
			}
			addrs = append(addrs, prio{le.GetPriority(), net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))})
		}
	}
	slices.SortStableFunc(addrs, func(a, b prio) int { return cmp.Compare(a.p, b.p) })
	for _, a := range addrs {
		lp.addrs = append(lp.addrs, a.addr)
	}
	if lp.dial && len(lp.addrs) == 0 {
		return nil, fmt.Errorf("link cluster %q: a link to dial needs an address", name)
	}
	return lp, nil
}

// listener is a compiled Listener.
type listener struct {
	name           string
	addr           netip.AddrPort
	bind           bool
	useOriginalDst bool
	// inbound marks a sidecar's inbound listener (traffic_direction
	// INBOUND, or the name xdsconv.VirtualInboundListener): it serves what
	// arrives for the workload and is never the target of an outbound
	// connection's original destination.
	inbound bool
	// mtls is the listener's mutual TLS mode (inbound listeners).
	mtls mtlsMode
	// chain serves connections whose destination port has no chain of
	// its own in byPort: the first filter chain without a match, else the
	// default filter chain; nil when there is neither.
	chain  *filterChain
	byPort map[uint16]*filterChain
}

// chainFor returns the filter chain for a connection to port, or nil.
func (l *listener) chainFor(port uint16) *filterChain {
	if ch := l.byPort[port]; ch != nil {
		return ch
	}
	return l.chain
}

// chains returns every filter chain of the listener.
func (l *listener) chains() []*filterChain {
	out := make([]*filterChain, 0, len(l.byPort)+1)
	if l.chain != nil {
		out = append(out, l.chain)
	}
	for _, ch := range l.byPort {
		out = append(out, ch)
	}
	return out
}

// mtlsMode is how a sidecar accepts inbound connections.
type mtlsMode int

const (
	// mtlsStrict accepts inbound connections only through HBONE tunnels.
	mtlsStrict mtlsMode = iota
	// mtlsPermissive also serves captured plaintext connections.
	mtlsPermissive
)

// Listener metadata that says a sidecar's mutual TLS mode: filter_metadata
// MetadataNamespace → MetadataMTLS = MTLSStrict or MTLSPermissive; STRICT
// when absent (internal/xdsconv's names).
const (
	MetadataMTLS   = xdsconv.MetadataMTLS
	MTLSStrict     = xdsconv.MTLSStrict
	MTLSPermissive = xdsconv.MTLSPermissive
)

// filterChain is network RBAC filters, if any, then either an HTTP
// connection manager or a TCP proxy.
type filterChain struct {
	http *httpManager
	tcp  *tcpProxy
	// rbac are envoy.filters.network.rbac filters, in order: each decides
	// once per connection, before any byte is proxied.
	rbac []*authz.Engine
	// tls terminates TLS before the filters (a DownstreamTlsContext);
	// tlsSpec says how it verifies clients.
	tls     *tls.Config
	tlsSpec *tlsSpec
}

type httpManager struct {
	statPrefix string
	routeName  string       // RDS
	inline     *routeConfig // route_config given inline
	websocket  bool
	// normalize applies authz.NormalizePath before routing.
	normalize   bool
	pathOptions authz.NormalizeOptions
	// jwt and rbac are the jwt_authn and RBAC HTTP filters, in order.
	jwt  []*jwtauthn.Authenticator
	rbac []*authz.Engine
}

type tcpProxy struct {
	statPrefix string
	clusters   []weightedCluster
	total      uint32
}

// routeConfig is a compiled RouteConfiguration.
type routeConfig struct {
	name    string
	exact   map[string]*virtualHost // lower-case domain → vhost
	suffix  []domainVHost           // "*.example.com" → ".example.com", longest first
	prefix  []domainVHost           // "example.*" → "example.", longest first
	star    *virtualHost
	reqAdd  []headerOp
	reqDel  []string
	respAdd []headerOp
	respDel []string
}

type domainVHost struct {
	part  string
	vhost *virtualHost
}

type virtualHost struct {
	name    string
	routes  []*route
	retry   *retryPolicy
	reqAdd  []headerOp
	reqDel  []string
	respAdd []headerOp
	respDel []string
}

type route struct {
	name  string
	match match.Route

	// action: exactly one of clusters, direct or redirect.
	clusters      []weightedCluster
	totalWeight   uint32
	direct        *directResponse
	redirect      *redirect
	timeout       time.Duration // 0: none
	retry         *retryPolicy
	hash          []hashPolicy
	mirrors       []mirrorPolicy
	prefixRewrite string
	// regexRewrite replaces every match of rewriteRe in the path with
	// rewriteRepl (Go's $N form, converted from Envoy's \N).
	rewriteRe   *regexp.Regexp
	rewriteRepl string
	hostRewrite string
	// notFoundCode answers requests whose picked cluster does not exist
	// (cluster_not_found_response_code; 503 by default).
	notFoundCode int

	reqAdd  []headerOp
	reqDel  []string
	respAdd []headerOp
	respDel []string
}

type weightedCluster struct {
	name    string
	weight  uint32
	reqAdd  []headerOp
	reqDel  []string
	respAdd []headerOp
	respDel []string
}

type directResponse struct {
	status int
	body   string
}

type redirect struct {
	scheme, host, path, prefix string
	port                       uint32
	status                     int
	stripQuery                 bool
}

type headerOp struct {
	name, value string
	// append adds a value; otherwise the header is overwritten.
	append bool
	// ifAbsent adds only when the header is missing.
	ifAbsent bool
}

type hashPolicy struct {
	header     string
	cookie     string
	cookieTT   *time.Duration
	cookiePath string
	sourceIP   bool
	terminal   bool
}

type mirrorPolicy struct {
	cluster  string
	fraction uint32 // per million
}

type retryPolicy struct {
	on            retryOn
	codes         []int
	numRetries    int
	perTryTimeout time.Duration
	baseInterval  time.Duration
	maxInterval   time.Duration
}

// retryOn is a bit set of Envoy retry_on conditions.
type retryOn uint32

const (
	retry5xx retryOn = 1 << iota
	retryGatewayError
	retryReset
	retryConnectFailure
	retryRetriable4xx
	retryRefusedStream
	retryRetriableStatusCodes
	retryGRPCCancelled
	retryGRPCDeadlineExceeded
	retryGRPCResourceExhausted
	retryGRPCUnavailable
	retryGRPCInternal
)

var retryOnNames = map[string]retryOn{
	"5xx":                    retry5xx,
	"gateway-error":          retryGatewayError,
	"reset":                  retryReset,
	"reset-before-request":   retryReset,
	"connect-failure":        retryConnectFailure,
	"retriable-4xx":          retryRetriable4xx,
	"refused-stream":         retryRefusedStream,
	"retriable-status-codes": retryRetriableStatusCodes,
	"cancelled":              retryGRPCCancelled,
	"deadline-exceeded":      retryGRPCDeadlineExceeded,
	"resource-exhausted":     retryGRPCResourceExhausted,
	"unavailable":            retryGRPCUnavailable,
	"internal":               retryGRPCInternal,
}

// cluster is a compiled Cluster. Its balancer is set from the cluster's
// ClusterLoadAssignment (EDS) or inline load_assignment.
type cluster struct {
	name           string
	kind           clusterKind
	lbConfig       lb.Config
	http2          bool
	connectTimeout time.Duration
	balancer       *lb.Balancer // nil until endpoints are known
	edsName        string
	maxRequests    int64 // circuit breaking: 0 = default
	// tls originates TLS to the endpoints (an UpstreamTlsContext); tlsKey
	// identifies its configuration, so an unchanged one keeps its
	// connection pool across updates.
	tls     *tls.Config
	tlsSpec *tlsSpec
	tlsKey  string
	// tunnels holds the endpoint addresses to reach through an HBONE
	// tunnel (endpoint metadata xdsconv.MetadataTunnel = xdsconv.TunnelHBONE).
	tunnels map[string]bool
}

type clusterKind int

const (
	clusterEDS clusterKind = iota
	clusterStatic
	clusterOriginalDst
)

// Defaults that Envoy uses where xDS leaves a field unset.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultRetryBase      = 25 * time.Millisecond
	defaultNumRetries     = 1
)

// compileListener turns a Listener into the engine's form. Listeners
// without an address (API listeners) are for proxyless clients: the
// proxy rejects them, as Envoy does.
func compileListener(l *listenerv3.Listener, env *compileEnv) (*listener, error) {
	if l.GetApiListener() != nil {
		return nil, fmt.Errorf("listener %q: api_listener is for proxyless clients, not a proxy", l.GetName())
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, fmt.Errorf("listener %q: needs a socket address", l.GetName())
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return nil, fmt.Errorf("listener %q: protocol %s is not supported", l.GetName(), sa.GetProtocol())
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("listener %q: address: %w", l.GetName(), err)
	}
	out := &listener{
		name:           l.GetName(),
		addr:           netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue())),
		bind:           l.GetBindToPort() == nil || l.GetBindToPort().GetValue(),
		useOriginalDst: l.GetUseOriginalDst().GetValue(),
	}
	out.inbound = l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND || l.GetName() == xdsconv.VirtualInboundListener
	if md := l.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace]; md != nil {
		if v, ok := md.GetFields()[MetadataMTLS]; ok {
			switch v.GetStringValue() {
			case MTLSStrict:
				out.mtls = mtlsStrict
			case MTLSPermissive:
				out.mtls = mtlsPermissive
			default:
				return nil, fmt.Errorf("listener %q: metadata %s/%s is %v, want %s or %s", l.GetName(), xdsconv.MetadataNamespace, MetadataMTLS, v.AsInterface(), MTLSStrict, MTLSPermissive)
			}
		}
	}
	// Filter chains are picked by the connection's destination port, as
	// Envoy's first matching criterion: a chain whose match is exactly a
	// destination_port serves that port, the first chain without a match
	// serves the others, and the default filter chain what is left.
	// Chains matching on anything else (server names, ALPN, source or
	// destination prefixes) are not served.
	for i, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		var port uint16
		switch {
		case m == nil || isEmptyChainMatch(m):
		case isPortOnlyMatch(m):
			if p := m.GetDestinationPort().GetValue(); p > 0 && p <= 65535 {
				port = uint16(p)
			} else {
				return nil, fmt.Errorf("listener %q: filter chain %d: destination_port %d is not 1-65535", l.GetName(), i, p)
			}
		default:
			continue
		}
		if port == 0 && out.chain != nil {
			continue
		}
		chain, err := compileChain(fc, env)
		if err != nil {
			return nil, fmt.Errorf("listener %q: filter chain %d (%q): %w", l.GetName(), i, fc.GetName(), err)
		}
		if port == 0 {
			out.chain = chain
			continue
		}
		if out.byPort == nil {
			out.byPort = map[uint16]*filterChain{}
		}
		if out.byPort[port] != nil {
			return nil, fmt.Errorf("listener %q: two filter chains match destination port %d", l.GetName(), port)
		}
		out.byPort[port] = chain
	}
	if out.chain == nil && l.GetDefaultFilterChain() != nil {
		chain, err := compileChain(l.GetDefaultFilterChain(), env)
		if err != nil {
			return nil, fmt.Errorf("listener %q: default filter chain: %w", l.GetName(), err)
		}
		out.chain = chain
	}
	if out.chain == nil && len(out.byPort) == 0 {
		if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
			return nil, fmt.Errorf("listener %q: no filter chain", l.GetName())
		}
		return nil, fmt.Errorf("listener %q: no filter chain without a match or with a destination_port match only", l.GetName())
	}
	return out, nil
}

func compileChain(fc *listenerv3.FilterChain, env *compileEnv) (*filterChain, error) {
	chain, err := compileFilters(fc.GetFilters(), env)
	if err != nil {
		return nil, err
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		if chain.tls, chain.tlsSpec, err = compileDownstreamTLS(ts, chain.http != nil, env.secrets); err != nil {
			return nil, err
		}
	}
	return chain, nil
}

func isPortOnlyMatch(m *listenerv3.FilterChainMatch) bool {
	return m.GetDestinationPort() != nil && len(m.GetPrefixRanges()) == 0 && len(m.GetServerNames()) == 0 &&
		m.GetTransportProtocol() == "" && len(m.GetApplicationProtocols()) == 0 && len(m.GetSourcePrefixRanges()) == 0 &&
		len(m.GetDirectSourcePrefixRanges()) == 0 && len(m.GetSourcePorts()) == 0 && m.GetAddressSuffix() == "" && m.GetSuffixLen() == nil &&
		m.GetSourceType() == listenerv3.FilterChainMatch_ANY
}

func isEmptyChainMatch(m *listenerv3.FilterChainMatch) bool {
	return m.GetDestinationPort() == nil && len(m.GetPrefixRanges()) == 0 && len(m.GetServerNames()) == 0 &&
		m.GetTransportProtocol() == "" && len(m.GetApplicationProtocols()) == 0 && len(m.GetSourcePrefixRanges()) == 0 &&
		len(m.GetDirectSourcePrefixRanges()) == 0 && len(m.GetSourcePorts()) == 0 && m.GetAddressSuffix() == "" && m.GetSuffixLen() == nil &&
		m.GetSourceType() == listenerv3.FilterChainMatch_ANY
}

// compileFilters compiles a chain's network filters: any number of
// envoy.filters.network.rbac, then one http_connection_manager or
// tcp_proxy.
func compileFilters(filters []*listenerv3.Filter, env *compileEnv) (*filterChain, error) {
	if len(filters) == 0 {
		return nil, errors.New("a filter chain needs a network filter (http_connection_manager or tcp_proxy)")
	}
	out := &filterChain{}
	for i, f := range filters {
		last := i == len(filters)-1
		tc := f.GetTypedConfig()
		if tc == nil {
			return nil, fmt.Errorf("filter %q: typed_config is required", f.GetName())
		}
		msg, err := anypb.UnmarshalNew(tc, unmarshalOpts)
		if err != nil {
			return nil, fmt.Errorf("filter %q: %w", f.GetName(), err)
		}
		switch cfg := msg.(type) {
		case *rbacnetv3.RBAC:
			if last {
				return nil, fmt.Errorf("filter %q: network RBAC must be followed by tcp_proxy or http_connection_manager", f.GetName())
			}
			e, err := compileNetworkRBAC(cfg)
			if err != nil {
				return nil, fmt.Errorf("filter %q: %w", f.GetName(), err)
			}
			if e != nil {
				out.rbac = append(out.rbac, e)
			}
		case *hcmv3.HttpConnectionManager:
			if !last {
				return nil, fmt.Errorf("filter %q: http_connection_manager must be the last network filter", f.GetName())
			}
			m, err := compileHCM(cfg, env)
			if err != nil {
				return nil, fmt.Errorf("filter %q: %w", f.GetName(), err)
			}
			out.http = m
		case *tcpv3.TcpProxy:
			if !last {
				return nil, fmt.Errorf("filter %q: tcp_proxy must be the last network filter", f.GetName())
			}
			t := &tcpProxy{statPrefix: cfg.GetStatPrefix()}
			switch {
			case cfg.GetCluster() != "":
				t.clusters = []weightedCluster{{name: cfg.GetCluster(), weight: 1}}
				t.total = 1
			case cfg.GetWeightedClusters() != nil:
				for _, c := range cfg.GetWeightedClusters().GetClusters() {
					if c.GetWeight() == 0 {
						continue
					}
					t.clusters = append(t.clusters, weightedCluster{name: c.GetName(), weight: c.GetWeight()})
					t.total += c.GetWeight()
				}
			}
			if t.total == 0 {
				return nil, fmt.Errorf("filter %q: tcp_proxy needs a cluster", f.GetName())
			}
			out.tcp = t
		default:
			return nil, fmt.Errorf("filter %q: %s is not supported", f.GetName(), tc.GetTypeUrl())
		}
	}
	return out, nil
}

// compileNetworkRBAC compiles Envoy's RBAC network filter
// (envoy.filters.network.rbac) with gateway/authz: absent rules are no
// enforcement (a nil engine). It decides once per connection, on what the
// connection says (destination, source, peer identity, filter state);
// enforcement_type CONTINUOUS decides the same, as none of that changes.
func compileNetworkRBAC(cfg *rbacnetv3.RBAC) (*authz.Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate network RBAC: %w", err)
	}
	if cfg.GetMatcher() != nil {
		return nil, fmt.Errorf("network RBAC matcher: %w", authz.ErrUnsupported)
	}
	if cfg.GetRules() == nil {
		return nil, nil
	}
	return authz.Compile(cfg.GetRules())
}

func compileHCM(cfg *hcmv3.HttpConnectionManager, env *compileEnv) (*httpManager, error) {
	m := &httpManager{statPrefix: cfg.GetStatPrefix()}
	switch {
	case cfg.GetRds() != nil:
		if src := cfg.GetRds().GetConfigSource(); src != nil && src.GetAds() == nil {
			return nil, fmt.Errorf("rds %q: only ADS config sources are supported", cfg.GetRds().GetRouteConfigName())
		}
		m.routeName = cfg.GetRds().GetRouteConfigName()
	case cfg.GetRouteConfig() != nil:
		rc, err := compileRouteConfig(cfg.GetRouteConfig())
		if err != nil {
			return nil, err
		}
		m.inline = rc
	default:
		return nil, fmt.Errorf("http_connection_manager needs rds or route_config")
	}
	// Path normalisation (Envoy's normalize_path, merge_slashes and
	// path_with_escaped_slashes_action) happens before routing and
	// authorization, so both see the path the endpoint will see.
	m.normalize = cfg.GetNormalizePath().GetValue() || cfg.GetMergeSlashes()
	switch cfg.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_REJECT_REQUEST:
		m.pathOptions.EscapedSlashes = authz.RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		m.pathOptions.EscapedSlashes = authz.KeepEscapedSlashes
	default:
		return nil, fmt.Errorf("http_connection_manager: path_with_escaped_slashes_action %s is not supported", cfg.GetPathWithEscapedSlashesAction())
	}
	if m.pathOptions.EscapedSlashes == authz.RejectEscapedSlashes && cfg.GetPathWithEscapedSlashesAction() == hcmv3.HttpConnectionManager_REJECT_REQUEST {
		m.normalize = true
	}
	sawRouter := false
	for _, hf := range cfg.GetHttpFilters() {
		if sawRouter {
			return nil, fmt.Errorf("http filter %q comes after the router", hf.GetName())
		}
		var msg any
		if tc := hf.GetTypedConfig(); tc != nil {
			decoded, err := anypb.UnmarshalNew(tc, unmarshalOpts)
			if err != nil {
				if hf.GetIsOptional() {
					continue
				}
				return nil, fmt.Errorf("http filter %q: %w", hf.GetName(), err)
			}
			msg = decoded
		}
		switch f := msg.(type) {
		case *routerv3.Router:
			sawRouter = true
		case *rbacfilterv3.RBAC:
			e, err := authz.CompileHTTPFilter(f)
			if err != nil {
				return nil, fmt.Errorf("http filter %q: %w", hf.GetName(), err)
			}
			if e != nil {
				m.rbac = append(m.rbac, e)
			}
		case *jwtauthnv3.JwtAuthentication:
			a, err := env.authenticator(f)
			if err != nil {
				return nil, fmt.Errorf("http filter %q: %w", hf.GetName(), err)
			}
			m.jwt = append(m.jwt, a)
		default:
			if hf.GetName() == "envoy.filters.http.router" && msg == nil {
				sawRouter = true
				continue
			}
			if !hf.GetIsOptional() {
				return nil, fmt.Errorf("http filter %q is not supported", hf.GetName())
			}
		}
	}
	if !sawRouter && len(cfg.GetHttpFilters()) > 0 {
		return nil, fmt.Errorf("http_connection_manager: the router filter is missing")
	}
	for _, u := range cfg.GetUpgradeConfigs() {
		if strings.EqualFold(u.GetUpgradeType(), "websocket") && (u.GetEnabled() == nil || u.GetEnabled().GetValue()) {
			m.websocket = true
		}
	}
	return m, nil
}

// compileEnv carries what compiling shares across updates: JWT
// authenticators (which own JWKS caches and fetchers) are reused while
// their configuration does not change.
type compileEnv struct {
	prev map[string]*jwtauthn.Authenticator // from the model in force
	used map[string]*jwtauthn.Authenticator // referenced by the model being built
	opts jwtauthn.Options
	// secrets resolves SDS secret names; nil when the proxy has no SDS
	// source.
	secrets *Secrets
}

func (env *compileEnv) authenticator(cfg *jwtauthnv3.JwtAuthentication) (*jwtauthn.Authenticator, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	key := string(sum[:])
	if a := env.used[key]; a != nil {
		return a, nil
	}
	a := env.prev[key]
	if a == nil {
		if a, err = jwtauthn.Compile(cfg, env.opts); err != nil {
			return nil, err
		}
	}
	env.used[key] = a
	return a, nil
}

func compileRouteConfig(rc *routev3.RouteConfiguration) (*routeConfig, error) {
	out := &routeConfig{name: rc.GetName(), exact: map[string]*virtualHost{}}
	var err error
	if out.reqAdd, err = compileHeaderOps(rc.GetRequestHeadersToAdd()); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	if out.respAdd, err = compileHeaderOps(rc.GetResponseHeadersToAdd()); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	out.reqDel = canonicalAll(rc.GetRequestHeadersToRemove())
	out.respDel = canonicalAll(rc.GetResponseHeadersToRemove())
	for _, vh := range rc.GetVirtualHosts() {
		v, err := compileVirtualHost(vh)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
		}
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			var dup bool
			switch {
			case d == "*":
				dup = out.star != nil
				out.star = v
			case strings.HasPrefix(d, "*"):
				dup = slices.ContainsFunc(out.suffix, func(x domainVHost) bool { return x.part == d[1:] })
				out.suffix = append(out.suffix, domainVHost{d[1:], v})
			case strings.HasSuffix(d, "*"):
				dup = slices.ContainsFunc(out.prefix, func(x domainVHost) bool { return x.part == d[:len(d)-1] })
				out.prefix = append(out.prefix, domainVHost{d[:len(d)-1], v})
			default:
				_, dup = out.exact[d]
				out.exact[d] = v
			}
			if dup {
				return nil, fmt.Errorf("route configuration %q: domain %q is in more than one virtual host", rc.GetName(), d)
			}
		}
	}
	byLen := func(a, b domainVHost) int { return len(b.part) - len(a.part) }
	slices.SortStableFunc(out.suffix, byLen)
	slices.SortStableFunc(out.prefix, byLen)
	return out, nil
}

func compileVirtualHost(vh *routev3.VirtualHost) (*virtualHost, error) {
	v := &virtualHost{name: vh.GetName()}
	var err error
	if vh.GetRetryPolicy() != nil {
		if v.retry, err = compileRetry(vh.GetRetryPolicy()); err != nil {
			return nil, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
		}
	}
	if v.reqAdd, err = compileHeaderOps(vh.GetRequestHeadersToAdd()); err != nil {
		return nil, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
	}
	if v.respAdd, err = compileHeaderOps(vh.GetResponseHeadersToAdd()); err != nil {
		return nil, fmt.Errorf("virtual host %q: %w", vh.GetName(), err)
	}
	v.reqDel = canonicalAll(vh.GetRequestHeadersToRemove())
	v.respDel = canonicalAll(vh.GetResponseHeadersToRemove())
	for i, r := range vh.GetRoutes() {
		cr, err := compileRoute(r)
		if err != nil {
			return nil, fmt.Errorf("virtual host %q: route %d (%q): %w", vh.GetName(), i, r.GetName(), err)
		}
		v.routes = append(v.routes, cr)
	}
	return v, nil
}

func compileRoute(r *routev3.Route) (*route, error) {
	m, err := match.CompileRoute(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	out := &route{name: r.GetName(), match: m}
	if out.reqAdd, err = compileHeaderOps(r.GetRequestHeadersToAdd()); err != nil {
		return nil, err
	}
	if out.respAdd, err = compileHeaderOps(r.GetResponseHeadersToAdd()); err != nil {
		return nil, err
	}
	out.reqDel = canonicalAll(r.GetRequestHeadersToRemove())
	out.respDel = canonicalAll(r.GetResponseHeadersToRemove())

	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := out.compileAction(a.Route); err != nil {
			return nil, err
		}
	case *routev3.Route_DirectResponse:
		out.direct = &directResponse{status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch {
			case b.GetInlineString() != "":
				out.direct.body = b.GetInlineString()
			case len(b.GetInlineBytes()) > 0:
				out.direct.body = string(b.GetInlineBytes())
			}
		}
		if out.direct.status < 200 || out.direct.status > 599 {
			return nil, fmt.Errorf("direct_response status %d is not 200-599", out.direct.status)
		}
	case *routev3.Route_Redirect:
		rd := a.Redirect
		out.redirect = &redirect{host: rd.GetHostRedirect(), port: rd.GetPortRedirect(), stripQuery: rd.GetStripQuery(), status: 301}
		if rd.GetSchemeRedirect() != "" {
			out.redirect.scheme = rd.GetSchemeRedirect()
		} else if rd.GetHttpsRedirect() {
			out.redirect.scheme = "https"
		}
		out.redirect.path = rd.GetPathRedirect()
		out.redirect.prefix = rd.GetPrefixRewrite()
		if rd.GetRegexRewrite() != nil {
			return nil, fmt.Errorf("redirect regex_rewrite is not supported")
		}
		switch rd.GetResponseCode() {
		case routev3.RedirectAction_MOVED_PERMANENTLY:
			out.redirect.status = 301
		case routev3.RedirectAction_FOUND:
			out.redirect.status = 302
		case routev3.RedirectAction_SEE_OTHER:
			out.redirect.status = 303
		case routev3.RedirectAction_TEMPORARY_REDIRECT:
			out.redirect.status = 307
		case routev3.RedirectAction_PERMANENT_REDIRECT:
			out.redirect.status = 308
		}
	default:
		return nil, fmt.Errorf("route action %T is not supported", a)
	}
	return out, nil
}

func (r *route) compileAction(a *routev3.RouteAction) error {
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		r.clusters = []weightedCluster{{name: cs.Cluster, weight: 1}}
		r.totalWeight = 1
	case *routev3.RouteAction_WeightedClusters:
		for _, c := range cs.WeightedClusters.GetClusters() {
			w := c.GetWeight().GetValue()
			if w == 0 {
				continue
			}
			wc := weightedCluster{name: c.GetName(), weight: w}
			var err error
			if wc.reqAdd, err = compileHeaderOps(c.GetRequestHeadersToAdd()); err != nil {
				return err
			}
			wc.reqDel = canonicalAll(c.GetRequestHeadersToRemove())
			if wc.respAdd, err = compileHeaderOps(c.GetResponseHeadersToAdd()); err != nil {
				return err
			}
			wc.respDel = canonicalAll(c.GetResponseHeadersToRemove())
			r.clusters = append(r.clusters, wc)
			r.totalWeight += w
		}
		if r.totalWeight == 0 {
			return fmt.Errorf("weighted_clusters: every weight is 0")
		}
	default:
		return fmt.Errorf("cluster specifier %T is not supported", cs)
	}
	switch a.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_NOT_FOUND:
		r.notFoundCode = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		r.notFoundCode = 500
	default:
		r.notFoundCode = 503
	}
	if t := a.GetTimeout(); t != nil {
		r.timeout = t.AsDuration()
	} else {
		// Envoy's default route timeout.
		r.timeout = 15 * time.Second
	}
	if r.timeout < 0 {
		return fmt.Errorf("timeout %s is negative", r.timeout)
	}
	if a.GetRetryPolicy() != nil {
		rp, err := compileRetry(a.GetRetryPolicy())
		if err != nil {
			return err
		}
		r.retry = rp
	}
	for _, h := range a.GetHashPolicy() {
		hp := hashPolicy{terminal: h.GetTerminal()}
		switch p := h.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			hp.header = p.Header.GetHeaderName()
		case *routev3.RouteAction_HashPolicy_Cookie_:
			hp.cookie = p.Cookie.GetName()
			if p.Cookie.GetTtl() != nil {
				ttl := p.Cookie.GetTtl().AsDuration()
				hp.cookieTT = &ttl
			}
			hp.cookiePath = p.Cookie.GetPath()
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			hp.sourceIP = p.ConnectionProperties.GetSourceIp()
		default:
			return fmt.Errorf("hash policy %T is not supported", p)
		}
		r.hash = append(r.hash, hp)
	}
	for _, mp := range a.GetRequestMirrorPolicies() {
		m := mirrorPolicy{cluster: mp.GetCluster(), fraction: 1_000_000}
		if f := mp.GetRuntimeFraction().GetDefaultValue(); f != nil {
			m.fraction = fractionPerMillion(f.GetNumerator(), f.GetDenominator())
		}
		if m.cluster == "" {
			return fmt.Errorf("request mirror policy needs a cluster")
		}
		r.mirrors = append(r.mirrors, m)
	}
	r.prefixRewrite = a.GetPrefixRewrite()
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := compileRewriteRegex(rr.GetPattern().GetRegex())
		if err != nil {
			return fmt.Errorf("regex_rewrite: %w", err)
		}
		r.rewriteRe, r.rewriteRepl = re, envoySubstitution(rr.GetSubstitution())
	}
	if r.prefixRewrite != "" && r.rewriteRe != nil {
		return fmt.Errorf("prefix_rewrite and regex_rewrite are mutually exclusive")
	}
	r.hostRewrite = a.GetHostRewriteLiteral()
	return nil
}

func fractionPerMillion(num uint32, den interface{ String() string }) uint32 {
	n := uint64(num)
	switch den.String() {
	case "HUNDRED":
		n *= 10_000
	case "TEN_THOUSAND":
		n *= 100
	}
	return uint32(min(n, 1_000_000))
}

func compileRetry(p *routev3.RetryPolicy) (*retryPolicy, error) {
	rp := &retryPolicy{numRetries: defaultNumRetries, baseInterval: defaultRetryBase}
	for _, name := range strings.Split(p.GetRetryOn(), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		bit, ok := retryOnNames[name]
		if !ok {
			return nil, fmt.Errorf("retry_on %q is not supported", name)
		}
		rp.on |= bit
	}
	if n := p.GetNumRetries(); n != nil {
		rp.numRetries = int(n.GetValue())
	}
	if rp.numRetries > 100 {
		return nil, fmt.Errorf("num_retries %d is more than 100", rp.numRetries)
	}
	for _, c := range p.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return nil, fmt.Errorf("retriable status code %d is not 100-599", c)
		}
		rp.codes = append(rp.codes, int(c))
	}
	if t := p.GetPerTryTimeout(); t != nil {
		rp.perTryTimeout = t.AsDuration()
	}
	if b := p.GetRetryBackOff(); b != nil {
		rp.baseInterval = b.GetBaseInterval().AsDuration()
		if b.GetMaxInterval() != nil {
			rp.maxInterval = b.GetMaxInterval().AsDuration()
		}
	}
	if rp.baseInterval <= 0 {
		return nil, fmt.Errorf("retry back-off base interval must be positive")
	}
	if rp.maxInterval == 0 {
		rp.maxInterval = 10 * rp.baseInterval
	}
	if rp.maxInterval < rp.baseInterval {
		return nil, fmt.Errorf("retry back-off max interval %s is less than the base %s", rp.maxInterval, rp.baseInterval)
	}
	return rp, nil
}

func compileHeaderOps(in []*corev3.HeaderValueOption) ([]headerOp, error) {
	var out []headerOp
	for _, h := range in {
		name := h.GetHeader().GetKey()
		if name == "" || strings.HasPrefix(name, ":") {
			return nil, fmt.Errorf("header %q cannot be added", name)
		}
		op := headerOp{name: canonical(name), value: h.GetHeader().GetValue()}
		switch h.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			op.append = true
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			op.ifAbsent = true
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		default:
			return nil, fmt.Errorf("header %q: append action %s is not supported", name, h.GetAppendAction())
		}
		// The deprecated append field still overrides append_action: control
		// planes still send it.
		if h.GetAppend() != nil { //nolint:staticcheck // deprecated append is still sent by control planes
			op.append = h.GetAppend().GetValue() //nolint:staticcheck // deprecated append is still sent by control planes
		}
		if strings.ContainsAny(op.value, "\r\n\x00") {
			return nil, fmt.Errorf("header %q: value contains CR, LF or NUL", name)
		}
		out = append(out, op)
	}
	return out, nil
}

// compileRewriteRegex compiles the pattern of a regex_rewrite, which
// matches anywhere in the path (unlike safe_regex matchers).
func compileRewriteRegex(expr string) (*regexp.Regexp, error) {
	if len(expr) > match.MaxRegexLen {
		return nil, fmt.Errorf("regex is longer than %d bytes", match.MaxRegexLen)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

func canonicalAll(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, canonical(n))
	}
	return out
}

// compileCluster turns a Cluster into the engine's form; its endpoints
// come later (EDS) or from load_assignment.
func compileCluster(c *clusterv3.Cluster, secrets *Secrets) (*cluster, *endpointv3.ClusterLoadAssignment, error) {
	out := &cluster{name: c.GetName(), connectTimeout: defaultConnectTimeout}
	if t := c.GetConnectTimeout(); t != nil {
		out.connectTimeout = t.AsDuration()
	}
	var inline *endpointv3.ClusterLoadAssignment
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		out.kind = clusterEDS
		out.edsName = c.GetEdsClusterConfig().GetServiceName()
		if out.edsName == "" {
			out.edsName = c.GetName()
		}
		if src := c.GetEdsClusterConfig().GetEdsConfig(); src != nil && src.GetAds() == nil {
			return nil, nil, fmt.Errorf("cluster %q: only ADS config sources are supported for EDS", c.GetName())
		}
	case clusterv3.Cluster_STATIC:
		out.kind = clusterStatic
		inline = c.GetLoadAssignment()
		if inline == nil {
			inline = &endpointv3.ClusterLoadAssignment{ClusterName: c.GetName()}
		}
	case clusterv3.Cluster_ORIGINAL_DST:
		out.kind = clusterOriginalDst
	default:
		return nil, nil, fmt.Errorf("cluster %q: discovery type %s is not supported", c.GetName(), c.GetType())
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.lbConfig.Algorithm = lb.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		out.lbConfig.Algorithm = lb.LeastRequest
		if cc := c.GetLeastRequestLbConfig().GetChoiceCount(); cc != nil {
			out.lbConfig.ChoiceCount = int(cc.GetValue())
		}
	case clusterv3.Cluster_RANDOM:
		out.lbConfig.Algorithm = lb.Random
	case clusterv3.Cluster_RING_HASH:
		out.lbConfig.Algorithm = lb.RingHash
		if rh := c.GetRingHashLbConfig(); rh != nil {
			out.lbConfig.MinRingSize = rh.GetMinimumRingSize().GetValue()
			out.lbConfig.MaxRingSize = rh.GetMaximumRingSize().GetValue()
		}
	case clusterv3.Cluster_MAGLEV:
		out.lbConfig.Algorithm = lb.Maglev
		if mg := c.GetMaglevLbConfig(); mg != nil && mg.GetTableSize() != nil {
			out.lbConfig.MaglevTableSize = mg.GetTableSize().GetValue()
		}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if out.kind != clusterOriginalDst {
			return nil, nil, fmt.Errorf("cluster %q: CLUSTER_PROVIDED is only for ORIGINAL_DST clusters", c.GetName())
		}
	default:
		return nil, nil, fmt.Errorf("cluster %q: lb_policy %s is not supported", c.GetName(), c.GetLbPolicy())
	}
	if c.GetLoadBalancingPolicy() != nil {
		return nil, nil, fmt.Errorf("cluster %q: load_balancing_policy is not supported; use lb_policy", c.GetName())
	}
	if ts := c.GetTransportSocket(); ts != nil {
		cfg, spec, err := compileUpstreamTLS(ts, secrets)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ts)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
		}
		sum := sha256.Sum256(b)
		out.tls, out.tlsSpec, out.tlsKey = cfg, spec, c.GetName()+"|"+hex.EncodeToString(sum[:8])
	}
	if opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		msg, err := anypb.UnmarshalNew(opts, unmarshalOpts)
		if err != nil {
			return nil, nil, fmt.Errorf("cluster %q: protocol options: %w", c.GetName(), err)
		}
		po, ok := msg.(*upstreamhttpv3.HttpProtocolOptions)
		if !ok {
			return nil, nil, fmt.Errorf("cluster %q: protocol options are %T", c.GetName(), msg)
		}
		if ex := po.GetExplicitHttpConfig(); ex != nil && ex.GetHttp2ProtocolOptions() != nil {
			out.http2 = true
		}
		if po.GetUseDownstreamProtocolConfig() != nil || po.GetAutoConfig() != nil {
			return nil, nil, fmt.Errorf("cluster %q: only explicit_http_config is supported", c.GetName())
		}
	}
	// The deprecated cluster-level http2_protocol_options is still sent by
	// control planes in place of typed_extension_protocol_options.
	if c.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck // deprecated http2_protocol_options is still sent by control planes
		out.http2 = true
	}
	if out.tls != nil {
		out.tlsKey += fmt.Sprintf("|h2=%v", out.http2)
	}
	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() == corev3.RoutingPriority_DEFAULT && t.GetMaxRequests() != nil {
			out.maxRequests = int64(t.GetMaxRequests().GetValue())
		}
	}
	if _, err := lb.New(out.lbConfig, nil, nil); err != nil {
		return nil, nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, inline, nil
}

// compileEndpoints turns a ClusterLoadAssignment into balancer endpoints,
// and the set of those to reach through HBONE.
func compileEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]lb.Endpoint, map[string]bool, error) {
	var out []lb.Endpoint
	var tunnels map[string]bool
	for _, le := range cla.GetEndpoints() {
		lw := le.GetLoadBalancingWeight().GetValue()
		for _, e := range le.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, nil, fmt.Errorf("%s: endpoint without a socket address", cla.GetClusterName())
			}
			ip, err := netip.ParseAddr(sa.GetAddress())
			if err != nil {
				return nil, nil, fmt.Errorf("%s: endpoint address: %w", cla.GetClusterName(), err)
			}
			if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, nil, fmt.Errorf("%s: endpoint %s: port %d is not 1-65535", cla.GetClusterName(), ip, sa.GetPortValue())
			}
			w := e.GetLoadBalancingWeight().GetValue()
			if w == 0 {
				w = 1
			}
			if lw > 0 {
				w *= lw
			}
			ep := lb.Endpoint{
				Address:  netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String(),
				Weight:   w,
				Priority: le.GetPriority(),
				Region:   le.GetLocality().GetRegion(),
				Zone:     le.GetLocality().GetZone(),
				Healthy:  isHealthy(e.GetHealthStatus()),
			}
			if md := e.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace]; md != nil {
				ep.Cluster = md.GetFields()[xdsconv.MetadataCluster].GetStringValue()
				if v, ok := md.GetFields()[xdsconv.MetadataTunnel]; ok {
					switch v.GetStringValue() {
					case xdsconv.TunnelHBONE:
						if tunnels == nil {
							tunnels = map[string]bool{}
						}
						tunnels[ep.Address] = true
					default:
						return nil, nil, fmt.Errorf("%s: endpoint %s: metadata %s/%s is %v, want %q", cla.GetClusterName(), ep.Address, xdsconv.MetadataNamespace, xdsconv.MetadataTunnel, v.AsInterface(), xdsconv.TunnelHBONE)
					}
				}
			}
			out = append(out, ep)
		}
	}
	return out, tunnels, nil
}

func isHealthy(s corev3.HealthStatus) bool {
	switch s {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
		return true
	}
	return false
}

// envoySubstitution converts an Envoy regex substitution (\N for a
// capture group, \\ for a backslash) to Go's Regexp.Expand form.
func envoySubstitution(sub string) string {
	var b strings.Builder
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(sub) && sub[i+1] >= '0' && sub[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(sub[i+1])
			b.WriteString("}")
			i++
		case c == '\\' && i+1 < len(sub):
			b.WriteByte(sub[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
