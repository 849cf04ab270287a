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
//
// A listener's filter chain is picked by the connection's destination
// port (a chain whose match is exactly destination_port, else the chain
// without a match, else the default chain); a chain may start with
// network RBAC filters (envoy.filters.network.rbac, decided once per
// connection by gateway/authz).
//
// # Identity and mutual TLS
//
// With an SDS source (Options.SDSAddr) the proxy has an identity: an SDS
// client (gateway/xdsclient in SDS mode) authenticates to the agent with
// the workload's ServiceAccount token (re-read for every stream),
// verifies the agent's serving certificate with go-spiffe (exactly
// spiffe://<trust domain>/ns/causeway-system/sa/causeway-agent, against
// the mounted trust bundle, re-read for every connection), and keeps the
// secrets it is served in Secrets: "default" (the SVID) and "ROOTCA" (the
// bundle), plus any name a TLS context references. The last good secrets
// stay across reconnections. TLS contexts that name SDS secrets
// (tls_certificate_sds_secret_configs, validation_context_sds_secret_config,
// whatever their sds_config) read them at every handshake, so a rotated
// SVID or bundle applies to the next connection and no connection is
// dropped; peers are verified as X509-SVIDs of the trust domain by
// go-spiffe, with match_typed_subject_alt_names (URI, DNS) on top. A
// context naming a secret that has not arrived is accepted, as Envoy's
// warming would, and its handshakes fail until it arrives. Verification
// runs in VerifyConnection, which also runs on resumed TLS sessions: a
// ticket issued under an older bundle admits nobody the current one
// refuses.
//
// Endpoints whose EDS metadata says causeway.dev/tunnel=hbone are reached
// through an HBONE tunnel (gateway/hbone: HTTP/2 CONNECT over mutual TLS
// 1.3) to their pod's port 15008; HTTP/1 (the fast path included),
// HTTP/2, TLS and TCP all go through it, over connection pools of their
// own. A sidecar runs the inbound HBONE server: a tunnel is accepted only
// to an address of the pod and a port that is not the proxy's own (else
// 403), and its stream is served by the listener virtualInbound as a
// connection whose principal is the peer's SPIFFE ID and whose filter
// state holds the peer's cluster (causeway.dev/peer-cluster). Captured
// plaintext for the workload (the inbound capture rules send it to
// :15006) is refused unless the listener's metadata says
// causeway.dev/mtls PERMISSIVE, and then served without an identity.
// Identity headers a client sends (X-Forwarded-Client-Cert and the like)
// are removed from every request an inbound listener serves; the proxy
// adds none.
package proxy
