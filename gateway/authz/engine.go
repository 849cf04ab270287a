package authz

import (
	"net/http"
	"net/netip"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// JWTAuthnFilter is the dynamic metadata namespace of Envoy's JWT
// authentication filter, the only one a metadata matcher may name.
const JWTAuthnFilter = "envoy.filters.http.jwt_authn"

// ErrUnsupported is wrapped by Compile's error for a rule, matcher or
// option the engine does not implement. Such a configuration is refused
// as a whole: the engine never guesses whether an unknown rule matches.
// It is match.ErrUnsupported, so that refusals from the shared string
// matcher compiler are recognised too.
var ErrUnsupported = match.ErrUnsupported

// Request is what an Engine decides about: one HTTP request and the
// connection it came on. The engine only reads it; it must not change
// during Allowed.
type Request struct {
	// Method is the request method (":method").
	Method string

	// Path is the request path as NormalizePath returns it, without query:
	// what url_path matchers see. An empty Path (a CONNECT request) matches
	// no url_path.
	Path string

	// Query is the raw query, without '?'. The ":path" pseudo-header, which
	// Envoy's header matchers see, is Path+"?"+Query (Path when Query is
	// empty); building it costs an allocation, url_path does not.
	Query string

	// Host is the ":authority" (HTTP/2) or Host (HTTP/1.1) as received,
	// with its port if it had one.
	Host string

	// Header holds the other request headers, with canonical keys as
	// net/http makes them. A header with several values is matched as its
	// values joined by ",", as in Envoy (which allocates here too).
	Header http.Header

	// DestinationIP and DestinationPort are the local address of the
	// downstream connection (the original destination of a captured
	// connection). IPv4-mapped IPv6 addresses match as IPv4.
	DestinationIP   netip.Addr
	DestinationPort uint16

	// SourceIP is the downstream peer's address. The proxy infers no client
	// address from X-Forwarded-For or the PROXY protocol, so source_ip,
	// remote_ip and direct_remote_ip all match this address.
	SourceIP netip.Addr

	// TLS reports that the connection is TLS. An authenticated principal
	// matches only TLS connections; any peer identity below implies TLS.
	TLS bool

	// PeerPrincipal is the URI SAN (the SPIFFE ID) of the verified client
	// certificate; "" for plaintext or for a certificate without one.
	PeerPrincipal string

	// PeerDNSSANs and PeerSubject are the verified client certificate's DNS
	// SANs and subject (RFC 2253 form, as Envoy prints it).
	PeerDNSSANs []string
	PeerSubject string

	// ServerName is the SNI the client sent; "" when none.
	ServerName string

	// JWTMetadata is the dynamic metadata namespace JWTAuthnFilter: what
	// Envoy's jwt_authn filter writes there for a verified token, the
	// payload_in_metadata name mapped to the token's claims. With
	// payload_in_metadata "jwt_payload", a metadata matcher with path
	// ["jwt_payload", "iss"] reads JWTMetadata["jwt_payload"]["iss"]. Values
	// are what encoding/json decodes (map[string]any, []any, string,
	// float64, bool, nil); []string and Go integer types also work.
	JWTMetadata map[string]any

	// FilterState holds the connection's filter state objects that are
	// strings, by key, as filter_state principals read them (string_match
	// only). The proxy records there what no certificate says, such as
	// the member cluster of an inbound peer.
	FilterState map[string]string
}

// authenticated reports whether the connection is one Envoy's
// authenticated principal considers: a TLS connection.
func (r *Request) authenticated() bool {
	return r.TLS || r.PeerPrincipal != "" || len(r.PeerDNSSANs) > 0 || r.PeerSubject != ""
}

// Engine evaluates one compiled envoy.config.rbac.v3.RBAC. It is immutable
// and safe for concurrent use. A nil *Engine stands for no RBAC filter and
// allows every request.
type Engine struct {
	action   rbacv3.RBAC_Action
	policies []policy // sorted by name: Envoy evaluates them in that order
}

type policy struct {
	name        string
	permissions []matcher // any
	principals  []matcher // any
}

// Action is the engine's action (ALLOW, DENY or LOG).
func (e *Engine) Action() rbacv3.RBAC_Action {
	if e == nil {
		return rbacv3.RBAC_ALLOW
	}
	return e.action
}

// Allowed decides a request as Envoy's RBAC filter does. A policy matches
// when any of its permissions and any of its principals match; policies
// are tried in lexicographic order of their names and the first match is
// returned as policy (Envoy's effective_policy_id). With action ALLOW the
// request is allowed iff a policy matches (no policies: everything is
// denied); with DENY it is denied iff a policy matches; LOG allows
// everything and reports the match. policy is "" when none matched.
//
// Allowed does not allocate, except to join a multi-valued header or to
// build ":path" with a query for a header matcher that needs them.
func (e *Engine) Allowed(r *Request) (allowed bool, policy string) {
	if e == nil {
		return true, ""
	}
	if r == nil {
		r = &Request{}
	}
	matched := false
	for i := range e.policies {
		if e.policies[i].matches(r) {
			policy, matched = e.policies[i].name, true
			break
		}
	}
	switch e.action {
	case rbacv3.RBAC_ALLOW:
		return matched, policy
	case rbacv3.RBAC_DENY:
		return !matched, policy
	default: // LOG; Compile admits no other action
		return true, policy
	}
}

func (p *policy) matches(r *Request) bool {
	return anyMatch(p.permissions, r) && anyMatch(p.principals, r)
}

// Evaluate applies the mesh rule for one workload, as two RBAC filters in
// a row do in Envoy: a request that the DENY engine denies is denied;
// otherwise, if there is an ALLOW engine, it decides (so a request that
// matches no ALLOW policy is denied); with neither engine the request is
// allowed. Either engine may be nil. policy names the policy that decided,
// or is "" when the request was allowed by default or denied because no
// ALLOW policy matched.
func Evaluate(deny, allow *Engine, r *Request) (allowed bool, policy string) {
	if ok, p := deny.Allowed(r); !ok {
		return false, p
	}
	return allow.Allowed(r)
}
