// Package xds is the agent's xDS control plane: it serves Envoy xDS v3 to
// the cluster's data plane — causeway-proxy, Envoy, and proxyless gRPC
// clients — and writes the status of the HTTPRoutes, GRPCRoutes,
// TrafficPolicies, AuthorizationPolicies and RequestAuthentications it
// translates.
//
// # Usage
//
//	srv, _ := xds.NewServer(xds.Options{Logger: log, Registerer: metrics.Registry})
//	mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return srv.ListenAndServe(ctx, ":15010") }))
//	mgr.Add(&xds.Controller{Client: mgr.GetClient(), Cache: mgr.GetCache(), Server: srv, ClusterName: "east"})
//
// # How it works
//
// The Controller watches Services, EndpointSlices, ServiceImports,
// HTTPRoutes, GRPCRoutes, TrafficPolicies, AuthorizationPolicies,
// RequestAuthentications and Pods through the manager's informer cache.
// Events are debounced (50 ms of quiet, at most 500 ms); each round then
// reads everything from the cache, calls translate.Translate (pure), hands
// the Result to the Server and patches the status that changed. Rounds are
// level-triggered: a missed event is healed by the next one, and a failed
// status write schedules another. Kinds whose CRDs are not installed
// (Gateway API, MCS, Causeway's policies) are read as empty. Pods are not
// translated: the Server looks up a sidecar's pod in the cache (the
// Controller gives it the lookup when it starts), and only pod changes
// that can change a sidecar's inbound configuration (pods coming and
// going, labels, container ports) start a round. With a LinkPlanSource the
// Controller also watches the member's link plan on the hub (the
// ConfigMap causeway-link-plan in its hub namespace, through the hub
// cache, without waiting for the hub) and translates it into the
// gateway's link clusters; a plan that does not parse, or names another
// cluster, is logged once and read as no plan.
//
// The Server is go-control-plane's server, registered as the Aggregated
// Discovery Service (state of the world and delta) and as the per-type
// LDS, RDS, CDS and EDS services, over snapshot caches keyed by node ID.
// Server callbacks learn each node from the first request of its first
// stream and give it a snapshot at once. A node is a proxyless gRPC client
// when it has no causeway.dev/mode metadata and its user agent starts with
// "gRPC"; a gateway when causeway.dev/mode is "gateway"; otherwise it is
// a proxy.
//
// Proxies share one set of resources, served from a cache in ADS mode,
// which holds each response until the request names every resource of
// the type (so a proxy never gets routes before their clusters). Proxies
// without a known pod share one snapshot, built and checked once per
// round. A sidecar (causeway.dev/mode "sidecar" with causeway.dev/namespace
// and causeway.dev/pod) whose pod is in the cache gets that snapshot plus
// its pod's inbound listener and clusters (translate.Result.Inbound):
// only the listener and cluster types get their own maps and versions, and
// sidecars of pods of one shape share one snapshot, so a round costs about
// one snapshot per shape, not per sidecar. A sidecar whose pod is not in
// the cache yet gets the shared snapshot; the pod's arrival starts a round
// that adds its inbound configuration. Gateways get the shared snapshot
// plus the link clusters (translate.Result.Links), built once per round
// the same way.
// Proxyless nodes are served from a cache not in ADS mode: gRPC opens one
// ADS stream per channel target, all with the same node, each naming only
// its listener, and the ADS-mode cache would never answer them (the
// package's test with a real gRPC client and several channels fails with
// it). A proxyless node's snapshot holds only the listeners its streams
// subscribed to and the clusters and endpoints they reach, plus clusters
// it still subscribes to (make before break when a route stops using
// one). Versions are
// content hashes per type, so a type that did not change is not pushed
// again. A snapshot that fails Consistent() is never set: the node keeps
// its previous one and the error is logged. A node whose last stream
// closed is forgotten (ClearSnapshot) after ForgetAfter. A NACK is logged
// and counted; it changes nothing, for that node or any other.
//
// # Trade-offs and limits
//
// Serve's port (:15010) is plaintext and unauthenticated, for proxyless
// gRPC clients and proxies without an identity: it must only be reachable
// from the cluster's own pods, and operators who need it not close it
// (the agent's --xds-addr=""). Proxies with an identity get xDS on the
// SDS port (Register on identity's server): TLS, every stream
// authenticated by its token, and every node checked against it as SDS
// nodes are (identity.CheckNode), or PermissionDenied. A gateway node is
// served only there, and only to the ServiceAccount
// causeway-system/causeway-gateway: on the plaintext port, or with any
// other token, a node saying causeway.dev/mode=gateway is refused with
// PermissionDenied and a message saying why.
//
// go-control-plane's cache answers a NACK by resending the same version
// (https://github.com/envoyproxy/go-control-plane/issues/962); clients
// must pace their NACKs (causeway-proxy does). The translation is built
// never to send what Envoy or gRPC rejects.
//
// Every agent replica serves xDS and writes status; status writes are
// conditional merge patches that only change what differs, so replicas
// converge rather than fight.
//
// Metrics: causeway_xds_connected_proxies{kind}, causeway_xds_pushes_total{type},
// causeway_xds_nacks_total{type} and causeway_xds_snapshot_build_seconds.
package xds
