// Package translate turns the Kubernetes objects an agent sees — Services,
// EndpointSlices, ServiceImports, Gateway API HTTPRoutes and GRPCRoutes
// attached to them (GAMMA), TrafficPolicies, AuthorizationPolicies and
// RequestAuthentications — into Envoy xDS v3 resources, for two kinds of
// node: proxies (causeway-proxy and Envoy, and sidecars among them, which
// also get their workload's inbound configuration, and the east-west
// gateway, which also gets its links) and proxyless gRPC clients. It also decides the status of every route and policy. It is pure: no client, no clock, no logging; the same Inputs
// always give the same, sorted Result, so snapshot versions can be content
// hashes.
//
// # Usage
//
//	res := translate.Translate(&translate.Inputs{ClusterName: "east", Services: ..., ...})
//	snap, _ := cache.NewSnapshot(version, res.Proxy)
//	inbound := res.Inbound.For(pod) // a sidecar's own listener and clusters, on top of res.Proxy
//	// res.HTTPRoutes, res.GRPCRoutes, res.TrafficPolicies, res.AuthorizationPolicies,
//	// res.RequestAuthentications: status to write
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
// A Gateway node (the member's east-west gateway) gets everything a proxy
// gets and, from Inputs.LinkPlan (internal/linkplan), one cluster per
// peer, Result.Links: "causeway-link|<peer>", with metadata under
// "causeway.dev" saying link_role (dial or accept), link_transport (QUIC
// or TCP) and peer_cluster. A dialling link lists the peer gateway's
// addresses as endpoints in order, priority = index (STATIC when all are
// IPs, STRICT_DNS otherwise); an accepting one is STATIC without
// endpoints. They are self-contained, so the server adds them to the
// proxies' shared snapshot without touching the other types.
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
// # Inbound configuration of sidecars
//
// Result.Inbound builds, for a sidecar's pod, what the sidecar gets on top
// of the proxies' resources: the listener xdsconv.VirtualInboundListener
// and its clusters (the contract is in package internal/xdsconv's
// documentation). Its filter chains are picked by destination_port, one
// per target port of the Services whose selector matches the pod
// (targetPort numbers, names resolved through the pod's container ports,
// unset meaning the Service port; a port two Services give different
// protocols is opaque TCP), and a default chain passes any other port
// through (InboundPassthroughCluster, ORIGINAL_DST). HTTP ports get an HTTP
// connection manager that normalises paths (normalize_path, merge_slashes,
// path_with_escaped_slashes_action REJECT_REQUEST) and routes everything,
// without a timeout, to the ORIGINAL_DST cluster xdsconv.InboundClusterName(port)
// (the pod IP and port the client meant); TCP ports and the default chain get a tcp_proxy.
// Pods of the same shape (namespace, labels, container ports) share one
// set of resources, built once per translation.
//
// AuthorizationPolicies apply to the pods of their target (a Service's
// selector; for a ServiceImport, the selector of the Service of the same
// name), to every pod of their namespace without a target, and to every
// pod of the cluster from the root namespace (Inputs.RootNamespace,
// causeway-system by default). They become, as in Istio, at most two RBAC
// filters: DENY first, then ALLOW (present as soon as an ALLOW policy
// applies, so that a request matching no ALLOW rule is denied, and an
// ALLOW policy without rules denies everything); a DENY policy without
// rules adds nothing. Each rule is one RBAC policy,
// "ns[<ns>]-policy[<name>]-rule[<i>]": every condition set must match,
// and the entries of a list are alternatives.
//
//	from.principals          authenticated.principal_name: exact, or prefix / suffix for one '*' ("*": prefix "spiffe://")
//	from.namespaces          authenticated.principal_name safe_regex spiffe://[^/]+/ns/<ns>/sa/[^/]+
//	from.clusters            filter_state xdsconv.FilterStatePeerCluster, exact
//	from.requestPrincipals   sourced_metadata of envoy.filters.http.jwt_authn (see below)
//	to.ports                 destination_port (the target port)
//	to.paths                 url_path: exact, or prefix for a trailing '*'
//	to.methods               header :method, exact
//	to.hosts                 header :authority, safe_regex (?i)<host>(:[0-9]+)? ("*.d": [^:/]+\.d)
//	when.headers             header: exact, prefix or safe_regex (RE2, whole value)
//	when.claims              sourced_metadata of envoy.filters.http.jwt_authn (see below)
//
// Paths are matched after normalisation, so a policy path must be in the
// normal form (no "//", "." or ".." segments, no escape of an unreserved
// character, upper-case escapes, no %2F or %5C, no byte that normalisation
// would escape): a path in another form could never match, which in a
// DENY rule is a hole, so such a policy is not accepted. TCP chains have
// no HTTP request: there an ALLOW rule with an HTTP-only condition (paths,
// methods, hosts, headers, request principals, claims) is left out and a
// DENY rule is applied without those conditions, restrictive both ways,
// as Istio does.
//
// RequestAuthentications that select a pod become one jwt_authn filter:
// a provider per JWT rule ("<ns>/<name>/<i>"; inline keys as local_jwks,
// a URI as remote_jwks fetched asynchronously) and one rule for every
// path requiring any provider or no token (requires_any with
// allow_missing): a token that does not verify is answered 401, a request
// without one goes on to RBAC. Each provider writes the verified payload
// to the filter's dynamic metadata under its issuer (payload_in_metadata;
// "scope" and "permission" split at spaces), which is how RBAC reads
// tokens: a request principal "<iss>/<sub>" is, for each issuer I the pod
// verifies, a match on the "sub" claim of the payload under I when the
// principal's text starts with I+"/". Patterns with '*' are resolved the
// same way against the known issuers, exactly: "<iss>/<sub>" starts or
// ends with the pattern's text just when the generated conditions on I and
// sub hold. A claim matches a string claim equal to one of the values, or
// a list claim containing one ('*' as in principals). Without a
// RequestAuthentication for the pod, request principals and claims match
// nothing.
//
// An AuthorizationPolicy or RequestAuthentication that is invalid (what
// the CRD checks, checked again, and what it cannot check: regular
// expressions, normal paths, key sets the proxy cannot use) or whose
// target does not exist is Accepted=False with the reason and takes no
// part in any workload's configuration; the others are Accepted=True.
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
