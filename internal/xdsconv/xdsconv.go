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
)

// Proxy modes, the values of NodeMetaMode.
const (
	ModeSidecar = "sidecar"
	ModeNode    = "node"
	ModeGateway = "gateway"
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
