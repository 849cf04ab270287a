// Package translate turns the Kubernetes objects an agent sees — Services,
// EndpointSlices, ServiceImports, Gateway API HTTPRoutes and GRPCRoutes
// attached to them (GAMMA), and TrafficPolicies — into Envoy xDS v3
// resources, for two kinds of node: proxies (causeway-proxy and Envoy) and
// proxyless gRPC clients. It also decides the status of every route and
// policy. It is pure: no client, no clock, no logging; the same Inputs
// always give the same, sorted Result, so snapshot versions can be content
// hashes.
//
// # Usage
//
//	res := translate.Translate(&translate.Inputs{ClusterName: "east", Services: ..., ...})
//	snap, _ := cache.NewSnapshot(version, res.Proxy)
//	// res.HTTPRoutes, res.GRPCRoutes, res.TrafficPolicies: status to write
//
// # What a node gets
//
// Every TCP port of a ClusterIP Service (host <name>.<ns>.svc.cluster.local)
// and of a ClusterSetIP ServiceImport (<name>.<ns>.svc.clusterset.local)
// becomes an EDS cluster named by xdsconv.ClusterName and a
// ClusterLoadAssignment of its ready endpoints, grouped in localities by
// source cluster, region and zone (local cluster at priority 0, others at
// 1). The port's protocol comes from xdsconv.ProtocolFor. Headless and
// ExternalName Services, Headless ServiceImports, and UDP and SCTP ports
// are not translated yet.
//
// Proxies also get, per service address and port, a listener (bind_to_port
// false) with an HTTP connection manager using the route configuration
// xdsconv.RouteName(host, port) by RDS, or a tcp_proxy for opaque TCP; the
// virtual outbound listener (original destination, else
// PassthroughCluster); the explicit HTTP listener and its route
// configuration holding every HTTP service by port-qualified domain; and
// the PassthroughCluster and BlackHoleCluster clusters.
//
// Proxyless clients get API listeners named <host>:<port> and, for
// Services, <name>.<ns>:<port>, each with its route configuration inline
// (see proxylessListeners for why not RDS), and clusters and endpoints of
// HTTP ports only. What gRPC does not implement is adapted or left out,
// never sent to be NACKed: Random balancing becomes round robin and Maglev
// ring hash; segment prefixes become an exact path plus a "prefix/" route;
// request mirroring is dropped; routes matching query parameters (which
// gRPC ignores) are dropped; timeouts become max_stream_duration; retry
// policies with no retries are dropped.
//
// # Routes
//
// Routes attach to a Service (parentRef group "", kind Service) or a
// ServiceImport (group multicluster.x-k8s.io, kind ServiceImport) in their
// own namespace, on all its HTTP, HTTP2 and gRPC ports or the one the
// parentRef's port or sectionName (a port name) selects; their hostnames
// are not used, since the parent decides the host. Their rules are
// ordered by Gateway API precedence, since Envoy takes the first match
// (see sortRules). A route that cannot be translated faithfully — an
// invalid regular expression, a filter type other than the header
// modifiers, RequestMirror, URLRewrite and RequestRedirect, a parent that
// does not exist — is not accepted and changes nothing; a backend that does
// not resolve sets ResolvedRefs=False and its share of traffic is answered
// 500 (through xdsconv.InvalidBackendCluster). Cross-namespace backends
// and parents are refused until ReferenceGrants are read.
//
// # TrafficPolicies
//
// The oldest valid policy for a target wins; the others report Conflicted.
// Its load balancer, connection pool and outlier detection shape every
// cluster of the target; its retries and timeout are defaults for routes
// of the target's host that set none; its consistent-hash key becomes the
// hash policy of routes to the target; fault injection is set on the
// target's virtual hosts (the fault filter is optional in the HCM, so a
// client without it ignores it).
package translate
