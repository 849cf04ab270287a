// Package proxy is causeway-proxy's engine: the L4/L7 proxy that the
// sidecar and node modes (and, with the gateway issue, the east-west
// gateway) share. It is configured only by xDS.
//
// # Configuration
//
// The xDS client (package gateway/xdsclient) hands each accepted response
// to Store.Apply. The store validates the resources (proto Validate, then a
// full compile of listeners, route configurations, clusters and endpoints
// into the engine's own immutable model) and, only when everything
// compiles, swaps the model in with one atomic pointer store. A response
// that does not compile is NACKed with the compile error and the previous
// model keeps serving: bad config never reaches traffic.
//
// Every request and connection loads the model once, when it starts, and
// keeps that model until it ends. An update therefore never changes or
// drops what is in flight; new requests on the same keep-alive connection
// see the new model. Upstream connection pools are not part of the model:
// they survive updates.
//
// # Traffic
//
// Listeners that bind (bind_to_port, the default) accept connections. A
// listener with use_original_dst (the virtual outbound listener that the
// iptables REDIRECT rules feed) reads each connection's original
// destination with SO_ORIGINAL_DST and hands it to the listener whose
// address matches (service VIP and port, bind_to_port false), falling back
// to the listener's own filter chain (pass-through). A listener's filter
// chain is either an HTTP connection manager (HTTP/1.1 and prior-knowledge
// HTTP/2 on the same port, routed by its route configuration) or a TCP
// proxy (bytes copied both ways, half-close kept).
//
// HTTP requests are matched to a virtual host by authority and to the
// first matching route, then forwarded by net/http/httputil.ReverseProxy
// through a retrying round tripper that picks an endpoint per try with the
// cluster's load balancer (package gateway/lb). HTTP/1 connections pass
// through package gateway/h1guard first, which rejects ambiguous framing
// (request smuggling) with 400 before net/http sees it.
package proxy
