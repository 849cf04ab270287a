// Package authz decides whether the causeway-proxy lets a request through:
// it normalises request paths and evaluates Envoy RBAC configurations.
//
// The proxy is configured only by standard xDS, so authorization reaches
// it as Envoy's RBAC HTTP filter (envoy.extensions.filters.http.rbac.v3.RBAC
// wrapping envoy.config.rbac.v3.RBAC). The agent translates each workload's
// AuthorizationPolicies into at most two such filters, as Istio does: one
// with action DENY, then one with action ALLOW. This package gives those
// filters Envoy's meaning, so that the same configuration means the same
// thing in the proxy and in Envoy.
//
// # Use
//
// When a filter configuration arrives (an xDS update, not a request):
//
//	deny, err := authz.CompileHTTPFilter(denyFilter)   // nil config: no filter
//	allow, err := authz.CompileHTTPFilter(allowFilter)
//
// An error means the listener must be NACKed: Compile refuses what Envoy
// would refuse (the protos' validation rules, bad regexes and CIDRs) and
// every rule kind it does not implement (an error wrapping ErrUnsupported
// that names the rule and where it is). It never guesses whether an
// unknown rule matches.
//
// For each request, before routing:
//
//	p, err := authz.NormalizePath(r.RequestURI, authz.NormalizeOptions{})
//	if err != nil { /* 400, forward nothing */ }
//	ok, policy := authz.Evaluate(deny, allow, &authz.Request{Method: r.Method, Path: p, ...})
//	if !ok { /* 403 "RBAC: access denied", as Envoy */ }
//
// NormalizePath takes the request-target as received (http.Request's
// RequestURI, the ":path" of HTTP/2), not URL.Path, which net/http has
// already percent-decoded so that an encoded slash can no longer be seen.
// The proxy routes on the normalised path and forwards it (with the raw
// query): matching one path and forwarding another is how authorization
// is bypassed.
//
// # Path normalisation
//
// NormalizePath does what Envoy's HTTP connection manager does with
// normalize_path, merge_slashes and path_with_escaped_slashes_action
// (REJECT_REQUEST by default, KEEP_UNCHANGED as an option;
// UNESCAPE_AND_REDIRECT is not offered): control characters, %00 and
// malformed escapes are errors; escapes of unreserved characters (RFC 3986
// §2.3) are decoded once and all others kept in upper-case hex; backslashes
// become slashes; dot segments are removed (RFC 3986 §5.2.4) after that
// single decoding, so "/%2e%2e/" is ".."; then runs of slashes are merged
// (Envoy's order: "/a//../b" is "/a/b"). Bytes RFC 3986 does not allow in a
// path are percent-encoded, so that every path has one spelling. Letter
// case is kept. The result is a fixed point of NormalizePath (fuzzed), and
// an already canonical path costs no allocation.
//
// Limits: path parameters are not interpreted, so an upstream that strips
// ";..." from segments (Tomcat, Jetty: "/..;/admin") sees a different path
// than the one matched; and with KeepEscapedSlashes an upstream that
// decodes %2F into a separator does too. Neither is Envoy's business
// either; rules for such upstreams must be written with that in mind.
//
// # The engine
//
// Compile turns one envoy.config.rbac.v3.RBAC into an Engine: a list of
// policies sorted by name (Envoy evaluates them in lexicographic order and
// reports the first match as effective_policy_id), each an "any permission
// AND any principal" over a tree of small matchers. Engine.Allowed applies
// the action: ALLOW allows iff a policy matches (so an ALLOW filter with no
// policies denies everything), DENY denies iff one matches, LOG allows and
// reports. Evaluate chains a DENY and an ALLOW engine as two filters in a
// row: DENY wins; with an ALLOW engine a request that matches nothing is
// denied; with neither, everything is allowed. A nil *Engine is no filter.
//
// Evaluation reads only the Request and allocates nothing (a benchmark
// and a test hold that), except to join a header with several values or to
// build ":path" with a query for a header matcher that asks for them.
// Regular expressions are Go's regexp, which accepts RE2 syntax and runs
// in linear time; they are anchored at both ends, as safe_regex matches
// whole strings, and limited to 1024 bytes (Envoy limits program size
// instead). String matchers are gateway/match's, shared with the proxy's
// routes and jwt_authn's rules; header matchers stay here, as they read a
// Request rather than an *http.Request and fail on a missing header even
// when inverted.
//
// Rule kinds and what they read:
//
//	and_rules/and_ids, or_rules/or_ids, not_rule/not_id, any    the tree
//	header (permission and principal)                          Request.Header; ":method", ":path" (Path?Query), ":authority" (Host)
//	url_path                                                   Request.Path, without query
//	destination_ip, destination_port, destination_port_range   Request.DestinationIP, DestinationPort
//	source_ip, direct_remote_ip, remote_ip                     Request.SourceIP (no X-Forwarded-For, no PROXY protocol)
//	requested_server_name                                      Request.ServerName ("" without SNI)
//	authenticated.principal_name                               PeerPrincipal (URI SAN), then each of PeerDNSSANs, then PeerSubject
//	metadata, sourced_metadata (DYNAMIC)                       Request.JWTMetadata, filter envoy.filters.http.jwt_authn only
//	filter_state (string_match)                                Request.FilterState[key]; an absent key matches nothing
//
// Refused: the filter's matcher (the xDS matcher-tree form of RBAC), Policy
// condition and checked_condition (CEL), permission matcher and
// uri_template, principal filter_state other than string_match, principal
// custom, metadata of any other
// filter or from the route, custom string matchers, and pseudo-headers
// other than the three above. shadow_rules are validated and ignored:
// shadow mode only records what rules would decide. audit_logging_options
// do not change decisions and are ignored.
//
// Matching details follow Envoy. Header matchers (header_utility.cc): a
// missing header fails every matcher, inverted or not, except present_match
// (present_match: false matches an absent header) and except with
// treat_missing_header_as_empty; an empty deprecated exact_match matches
// any value; range_match parses a whole optional-sign decimal integer.
// String matchers: ignore_case folds ASCII only and does nothing to
// safe_regex. Value matchers (common/matchers.cc): present_match matches
// any value that exists (null included), null_match only null, numbers are
// compared as doubles, list_match.one_of needs a list, structs match only
// present_match, and invert on a path that leads nowhere is true.
// authenticated is Envoy's: it matches only TLS connections, and without
// principal_name any TLS connection, client certificate or not; with one,
// a TLS connection without a certificate is matched on an empty subject.
// So a translation should always set principal_name, and a listener whose
// rules name identities should require client certificates.
//
// # References
//
//   - Envoy API: envoy.config.rbac.v3 (RBAC, Policy, Permission, Principal),
//     envoy.extensions.filters.http.rbac.v3.RBAC, envoy.type.matcher.v3,
//     envoy.config.route.v3.HeaderMatcher, and the HTTP connection
//     manager's normalize_path, merge_slashes and
//     path_with_escaped_slashes_action.
//   - Envoy source: source/extensions/filters/common/rbac/matchers.cc,
//     source/common/http/header_utility.cc, source/common/common/matchers.cc.
//   - RFC 3986 §2.3 (unreserved characters), §3.3 (path characters) and
//     §5.2.4 (remove_dot_segments).
//   - Istio's AuthorizationPolicy translation (source.namespaces as a
//     principal_name regex ".*/ns/<ns>/.*"), which the agent follows.
package authz
