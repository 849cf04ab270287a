// Package xdsconv holds the conventions that the agent's xDS translation
// and causeway-proxy share: resource names, node metadata keys and the
// rules that decide a port's protocol. Everything else in the contract is
// standard Envoy xDS v3, so Envoy and proxyless gRPC clients read the same
// resources without knowing these names.
//
// Names follow Istio's, which Envoy and gRPC users already recognise:
//
//	cluster         outbound|8080||echo.shop.svc.cluster.local
//	                outbound|8080||echo.shop.svc.clusterset.local   (a ServiceImport)
//	route config    echo.shop.svc.cluster.local:8080
//	listener        10.101.0.12_8080   (a service VIP and port; bind_to_port false)
//	                echo.shop.svc.cluster.local:8080 (an API listener, proxyless gRPC only)
//	                virtualInbound     (a sidecar's inbound side; bind_to_port false)
//	inbound cluster inbound|8080||     (ORIGINAL_DST: the pod IP and port the client meant)
//
// # The inbound contract
//
// A sidecar node (NodeMetaMode "sidecar" with NodeMetaNamespace and
// NodeMetaPod) gets, besides the outbound configuration every proxy
// shares, the listener VirtualInboundListener: address 0.0.0.0 and port
// VirtualInboundPort, bind_to_port false, no use_original_dst. The proxy
// owns the sockets and hands the listener what arrives for its workload:
// the inner streams of HBONE tunnels and, in PERMISSIVE mode, captured
// plaintext connections. It gives each one the destination the client
// meant (the CONNECT target, or SO_ORIGINAL_DST), and picks the filter
// chain by its port:
//
//   - one chain per workload port of the Services that select the pod
//     (filter_chain_match.destination_port, the container's target port):
//     an HTTP port has an http_connection_manager with normalize_path,
//     merge_slashes and path_with_escaped_slashes_action REJECT_REQUEST,
//     the HTTP filters envoy.filters.http.jwt_authn (when a
//     RequestAuthentication selects the pod), envoy.filters.http.rbac with
//     action DENY and then with action ALLOW (when AuthorizationPolicies
//     apply), and the router, and an inline route configuration sending
//     everything to InboundClusterName(port); a TCP port has
//     envoy.filters.network.rbac filters (DENY, then ALLOW) and a tcp_proxy
//     to the same cluster;
//   - the default filter chain, for every other port: the same network
//     RBAC filters and a tcp_proxy to InboundPassthroughCluster.
//
// Authorization rules read what the proxy knows of the connection: the
// destination port (the target port above), the peer's SPIFFE ID
// (authenticated.principal_name: the URI SAN of the client certificate
// of the inner mutual TLS session), the JWT payloads that jwt_authn
// verified (dynamic metadata of envoy.filters.http.jwt_authn, one entry
// per issuer: payload_in_metadata is the token's issuer), and the member
// cluster the peer runs in, which no certificate says: the proxy puts it
// into the connection's filter state under FilterStatePeerCluster, from
// the tunnel the stream came through (its own cluster for a peer in the
// same cluster, the source gateway's cluster for a stream that came over
// a cluster link), and RBAC matches it with a filter_state principal.
package xdsconv

import (
	"fmt"
	"strconv"
	"strings"
)

// Well-known resource names.
const (
	// VirtualOutboundListener is the listener that receives every
	// connection the capture rules redirect (use_original_dst). Connections
	// are handed to the listener whose address matches their original
	// destination, or to PassthroughCluster.
	VirtualOutboundListener = "virtualOutbound"

	// VirtualOutboundPort is the port of VirtualOutboundListener, the port
	// the iptables REDIRECT rules send outbound traffic to.
	VirtualOutboundPort = 15001

	// ExplicitHTTPListener and its route configuration of the same name
	// route HTTP by authority to every service of the mesh. A proxy in
	// explicit mode (no capture) serves it on the address it was told to
	// listen on; clients send plain HTTP requests to that address with the
	// service as Host.
	ExplicitHTTPListener = "explicit_http"

	// VirtualInboundListener is a sidecar's inbound listener (see the
	// package documentation): the proxy hands it the connections and
	// tunnelled streams addressed to its workload.
	VirtualInboundListener = "virtualInbound"

	// VirtualInboundPort is the port of VirtualInboundListener, the port the
	// iptables REDIRECT rules send inbound plaintext to.
	VirtualInboundPort = 15006

	// InboundPassthroughCluster is an ORIGINAL_DST cluster for inbound
	// connections to a port of the workload that no Service exposes.
	InboundPassthroughCluster = "InboundPassthroughCluster"

	// InboundAddress is the workload's loopback, for inbound clusters that
	// send there instead of to the original destination. The agent's
	// inbound clusters are ORIGINAL_DST (see InboundClusterName).
	InboundAddress = "127.0.0.1"

	// FilterStatePeerCluster is the filter state key under which the proxy
	// records the member cluster of an inbound connection's peer (a string
	// object), for RBAC filter_state principals.
	FilterStatePeerCluster = "causeway.dev/peer-cluster"

	// PassthroughCluster is an ORIGINAL_DST cluster: connections to a
	// destination the mesh does not know go where they were going.
	PassthroughCluster = "PassthroughCluster"

	// BlackHoleCluster is a STATIC cluster with no endpoints.
	BlackHoleCluster = "BlackHoleCluster"

	// InvalidBackendCluster is a cluster name that is never defined. A
	// route sends the share of its traffic meant for a backend that does
	// not resolve (a missing Service, a port it lacks, a reference that is
	// not permitted) to it, with cluster_not_found_response_code
	// INTERNAL_SERVER_ERROR, so that share is answered 500 as the Gateway
	// API requires while the other backends keep serving.
	InvalidBackendCluster = "InvalidBackendCluster"

	// MetadataNamespace is the filter_metadata key under which Causeway
	// puts its own metadata on endpoints and clusters.
	MetadataNamespace = "causeway.dev"

	// MetadataCluster is the key, under MetadataNamespace of an LbEndpoint's
	// metadata, of the name of the cluster the endpoint runs in.
	MetadataCluster = "cluster"

	// MetadataTunnel is the key, under MetadataNamespace of an LbEndpoint's
	// metadata, of how proxies reach the endpoint: TunnelHBONE, or absent
	// for plaintext.
	MetadataTunnel = "tunnel"
	// TunnelHBONE: through an HBONE tunnel (HTTP/2 CONNECT over mutual TLS)
	// to the endpoint's address on HBONEPort, whose sidecar terminates it.
	TunnelHBONE = "hbone"
	// HBONEPort is where sidecars accept HBONE tunnels.
	HBONEPort = 15008

	// MetadataMTLS is the key, under MetadataNamespace of the
	// VirtualInboundListener's metadata, of the mesh's mTLS mode: MTLSStrict
	// (inbound only through HBONE; the default) or MTLSPermissive (captured
	// plaintext is served too, without a peer identity).
	MetadataMTLS   = "mtls"
	MTLSStrict     = "STRICT"
	MTLSPermissive = "PERMISSIVE"

	// LabelTunnel on a Pod says its sidecar accepts HBONE (value
	// TunnelHBONE): the injector that adds the sidecar sets it, and the
	// agent marks the pod's endpoints with MetadataTunnel.
	LabelTunnel = "causeway.dev/tunnel"
)

// Node metadata keys that causeway-proxy sets and the agent reads.
const (
	// NodeMetaMode is the proxy's mode: sidecar, node or gateway. A node
	// without it is treated as a proxyless gRPC client when its
	// user_agent_name starts with "gRPC", and as a proxy otherwise.
	NodeMetaMode = "causeway.dev/mode"
	// NodeMetaNamespace is the namespace of the workload a sidecar serves.
	NodeMetaNamespace = "causeway.dev/namespace"
	// NodeMetaPod is the name of the pod a sidecar serves.
	NodeMetaPod = "causeway.dev/pod"
	// NodeMetaServiceAccount is the ServiceAccount of the workload a proxy
	// serves; with NodeMetaNamespace it must name the ServiceAccount of the
	// token the proxy shows the agent's SDS server.
	NodeMetaServiceAccount = "causeway.dev/service-account"
	// NodeMetaHBONE is "true" when a sidecar accepts HBONE tunnels for its
	// pod (it has an identity and its HBONE server is on). The agent trusts
	// it only from a stream authenticated as the pod's ServiceAccount, and
	// marks the pod's endpoints MetadataTunnel=TunnelHBONE while such a
	// stream is open: mutual TLS between sidecars needs no label.
	NodeMetaHBONE = "causeway.dev/hbone"
	// NodeMetaAdmin is a gateway's admin address (ip:port), where the
	// agent reads the state of its links (GET /links).
	NodeMetaAdmin = "causeway.dev/admin"
)

// SDS secret names the agent serves every node, as Istio names them, so
// Envoy configurations written for Istio's agent work unchanged.
const (
	// SecretDefault is the node's own X509-SVID: a tls.Secret with a
	// TlsCertificate (the SVID's chain without the root, and its key).
	SecretDefault = "default"
	// SecretRootCA is the trust bundle: a tls.Secret with a
	// ValidationContext whose trusted_ca holds every trusted root.
	SecretRootCA = "ROOTCA"
)

// Proxy modes, the values of NodeMetaMode.
const (
	ModeSidecar = "sidecar"
	ModeNode    = "node"
	ModeGateway = "gateway"
)

// East-west gateways and the links between them. A gateway node (NodeMetaMode
// ModeGateway, authenticated as GatewayServiceAccount in GatewayNamespace)
// gets, besides what every proxy gets, one cluster per peer gateway of its
// member cluster's link plan, named LinkClusterPrefix + the peer's cluster
// name, whose metadata under MetadataNamespace says MetadataLinkRole,
// MetadataLinkTransport and MetadataPeerCluster. A dialling cluster's
// endpoints are the peer's link addresses in order of preference (priority
// = index); an accepting cluster has none.
const (
	// LinkClusterPrefix starts the name of a gateway's cluster for a peer
	// cluster: "causeway-link|<peer cluster>".
	LinkClusterPrefix = "causeway-link|"
	// MetadataLinkRole is the key of the link's role: LinkRoleDial or
	// LinkRoleAccept.
	MetadataLinkRole = "link_role"
	// MetadataLinkTransport is the key of the link's transport: "QUIC"
	// (falling back to TCP) or "TCP" (never QUIC).
	MetadataLinkTransport = "link_transport"
	// MetadataPeerCluster is the key of the peer's member cluster name.
	MetadataPeerCluster = "peer_cluster"
	// LinkRoleDial: this gateway opens the link to the peer.
	LinkRoleDial = "dial"
	// LinkRoleAccept: the peer opens the link to this gateway.
	LinkRoleAccept = "accept"

	// GatewayNamespace and GatewayServiceAccount identify the gateway: only
	// a node authenticated as this ServiceAccount gets the gateway's
	// configuration.
	GatewayNamespace      = "causeway-system"
	GatewayServiceAccount = "causeway-gateway"
	// GatewayService is the Service, in GatewayNamespace, in front of the
	// gateway's HBONE port (HBONEPort, port name "hbone"); sidecars send
	// traffic for other clusters' endpoints through it when it exists.
	GatewayService = "causeway-gateway"
	// LinkPort is where gateways accept links (UDP for QUIC, TCP for the
	// HTTP/2 fallback), and the port of a link address given without one.
	LinkPort = 15443
)

// Domain suffixes of the two kinds of service host names.
const (
	ClusterLocalDomain = "svc.cluster.local"
	ClusterSetDomain   = "svc.clusterset.local"
)

// ServiceHost is the cluster-local host name of a Service.
func ServiceHost(name, namespace string) string {
	return name + "." + namespace + "." + ClusterLocalDomain
}

// ClusterSetHost is the cluster-set host name of a ServiceImport.
func ClusterSetHost(name, namespace string) string {
	return name + "." + namespace + "." + ClusterSetDomain
}

// ClusterName is the name of the xDS cluster for port of host; subset is
// empty for the whole service.
func ClusterName(port int32, subset, host string) string {
	return "outbound|" + strconv.Itoa(int(port)) + "|" + subset + "|" + host
}

// ParseClusterName splits a name made by ClusterName.
func ParseClusterName(name string) (port int32, subset, host string, err error) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return 0, "", "", fmt.Errorf("cluster name %q is not outbound|<port>|<subset>|<host>", name)
	}
	p, err := strconv.ParseUint(parts[1], 10, 16)
	if err != nil || p == 0 {
		return 0, "", "", fmt.Errorf("cluster name %q: port %q is not 1-65535", name, parts[1])
	}
	return int32(p), parts[2], parts[3], nil
}

// InboundClusterName is the name of the ORIGINAL_DST cluster that sends a
// sidecar's inbound traffic for a target port to the workload at the
// address the client meant (the HBONE CONNECT target, or a captured
// connection's original destination).
func InboundClusterName(port int32) string {
	return "inbound|" + strconv.Itoa(int(port)) + "||"
}

// ParseInboundClusterName returns the port of a name made by
// InboundClusterName.
func ParseInboundClusterName(name string) (int32, error) {
	rest, ok := strings.CutPrefix(name, "inbound|")
	if !ok {
		return 0, fmt.Errorf("cluster name %q is not inbound|<port>||", name)
	}
	num, ok := strings.CutSuffix(rest, "||")
	if !ok {
		return 0, fmt.Errorf("cluster name %q is not inbound|<port>||", name)
	}
	p, err := strconv.ParseUint(num, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("cluster name %q: port %q is not 1-65535", name, num)
	}
	return int32(p), nil
}

// RouteName is the name of the route configuration (and of the proxyless
// API listener) for port of host.
func RouteName(host string, port int32) string {
	return host + ":" + strconv.Itoa(int(port))
}

// ListenerName is the name of the listener for a service address and port.
func ListenerName(ip string, port int32) string {
	return ip + "_" + strconv.Itoa(int(port))
}

// Protocol is how a service port's traffic is proxied.
type Protocol string

// Protocols.
const (
	// ProtocolHTTP is HTTP/1.1 to the endpoint (clients may use HTTP/1.1
	// or HTTP/2; WebSocket upgrades are allowed).
	ProtocolHTTP Protocol = "HTTP"
	// ProtocolHTTP2 is HTTP/2 to the endpoint, cleartext (h2c) or over TLS.
	ProtocolHTTP2 Protocol = "HTTP2"
	// ProtocolGRPC is gRPC: HTTP/2 to the endpoint.
	ProtocolGRPC Protocol = "GRPC"
	// ProtocolTCP is opaque TCP.
	ProtocolTCP Protocol = "TCP"
)

// IsHTTP reports whether p is proxied at layer 7.
func (p Protocol) IsHTTP() bool { return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC }

// ProtocolFor decides a service port's protocol the way Istio and Linkerd
// users expect: appProtocol first ("http", "http2", "grpc", "grpc-web",
// "kubernetes.io/h2c", "kubernetes.io/ws", "tcp", ...), then the port
// name ("http", "http-web", "http2-api", "grpc", "grpc-echo", "h2c", "tcp-db", ...:
// the name or its prefix before the first '-'). Anything else is opaque
// TCP, which is always safe: the bytes pass unchanged.
func ProtocolFor(appProtocol *string, portName string) Protocol {
	if appProtocol != nil && *appProtocol != "" {
		if p, ok := protocolByName(*appProtocol); ok {
			return p
		}
		return ProtocolTCP
	}
	name := portName
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	if p, ok := protocolByName(name); ok {
		return p
	}
	return ProtocolTCP
}

func protocolByName(s string) (Protocol, bool) {
	switch strings.ToLower(s) {
	case "http", "http1", "http-web", "kubernetes.io/ws", "ws", "websocket":
		return ProtocolHTTP, true
	case "http2", "h2c", "kubernetes.io/h2c":
		return ProtocolHTTP2, true
	case "grpc", "grpc-web":
		return ProtocolGRPC, true
	case "tcp", "tls", "https", "kubernetes.io/wss", "mongo", "mysql", "redis":
		return ProtocolTCP, true
	}
	return "", false
}
