package translate

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	ktypes "k8s.io/apimachinery/pkg/types"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// jwtAuthnFilter is the name of Envoy's JWT authentication HTTP filter and
// the dynamic metadata namespace it writes verified payloads to.
const jwtAuthnFilter = "envoy.filters.http.jwt_authn"

// authzPolicy is a valid AuthorizationPolicy and the workloads it selects.
type authzPolicy struct {
	obj *causewayv1alpha1.AuthorizationPolicy
	sel workloadSelector
}

// resolveAuthorizationPolicies validates every AuthorizationPolicy, sets
// its status and keeps the valid ones, sorted by namespace and name.
// Invalid ones take no part in any workload's configuration.
func (t *translator) resolveAuthorizationPolicies() []*authzPolicy {
	var out []*authzPolicy
	for _, ap := range t.in.AuthorizationPolicies {
		sel, reason, message := t.selectorFor(ap.Namespace, ap.Spec.TargetRef)
		if reason == causewayv1alpha1.ReasonAccepted {
			if err := validateAuthorizationPolicy(&ap.Spec); err != nil {
				reason, message = causewayv1alpha1.ReasonInvalid, err.Error()
			}
		}
		t.authzStatus[ktypes.NamespacedName{Namespace: ap.Namespace, Name: ap.Name}] = policyStatus(ap.Generation, reason, message)
		if reason == causewayv1alpha1.ReasonAccepted {
			out = append(out, &authzPolicy{obj: ap, sel: sel})
		}
	}
	slices.SortFunc(out, func(a, b *authzPolicy) int { return compareNames(a.obj, b.obj) })
	return out
}

// ---- validation ----

// Syntax the CRD enforces, checked again: the API server's validation may
// be older than this agent, or bypassed, and the translation must never
// emit what a data plane rejects (or what means less than was written).
var (
	spiffeIDRE         = regexp.MustCompile(`^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
	spiffePrefixRE     = regexp.MustCompile(`^spiffe://[a-z0-9._-]*(/[A-Za-z0-9._-]*)*[*]$`)
	spiffeSuffixRE     = regexp.MustCompile(`^[*][A-Za-z0-9._/-]+$`)
	requestPrincipalRE = regexp.MustCompile(`^([*]|[*][!-)+-~]+|[!-)+-~]+[*]|[!-)+-~]+/[!-)+-~]+)$`)
	dnsLabelRE         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	hostPatternRE      = regexp.MustCompile(`^([*][.])?[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	claimValueRE       = regexp.MustCompile(`^([*]|[*][^*]+|[^*]+[*]?)$`)
)

var httpMethods = []causewayv1alpha1.HTTPMethod{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// maxRegexLen bounds header regular expressions, as the CRD does (and as
// causeway-proxy's RBAC engine does).
const maxRegexLen = 1024

// validateAuthorizationPolicy checks a policy's spec: what the CRD checks,
// and what it cannot (regular expressions that do not compile, paths that
// are not in normal form).
func validateAuthorizationPolicy(s *causewayv1alpha1.AuthorizationPolicySpec) error {
	var errs []error
	if s.Action != causewayv1alpha1.AuthorizationActionAllow && s.Action != causewayv1alpha1.AuthorizationActionDeny {
		errs = append(errs, fmt.Errorf("action %q: want ALLOW or DENY", s.Action))
	}
	for i := range s.Rules {
		if err := validateAuthorizationRule(&s.Rules[i]); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func validateAuthorizationRule(r *causewayv1alpha1.AuthorizationRule) error {
	var errs []error
	if r.From == nil && r.To == nil {
		errs = append(errs, errors.New("a rule must set at least one of from or to"))
	}
	if f := r.From; f != nil {
		if len(f.Principals)+len(f.Namespaces)+len(f.Clusters)+len(f.RequestPrincipals) == 0 {
			errs = append(errs, errors.New("from must set at least one of principals, namespaces, clusters or requestPrincipals"))
		}
		for _, p := range f.Principals {
			s := string(p)
			if s != "*" && !spiffeIDRE.MatchString(s) && !spiffePrefixRE.MatchString(s) && !spiffeSuffixRE.MatchString(s) {
				errs = append(errs, fmt.Errorf("from.principals: %q is not a SPIFFE ID, nor one with a single '*' at the start or the end", s))
			}
		}
		for _, n := range f.Namespaces {
			if len(n) > 63 || !dnsLabelRE.MatchString(string(n)) {
				errs = append(errs, fmt.Errorf("from.namespaces: %q is not a namespace name", n))
			}
		}
		for _, c := range f.Clusters {
			if len(c) > 63 || !dnsLabelRE.MatchString(string(c)) {
				errs = append(errs, fmt.Errorf("from.clusters: %q is not a cluster name", c))
			}
		}
		for _, p := range f.RequestPrincipals {
			if !requestPrincipalRE.MatchString(string(p)) {
				errs = append(errs, fmt.Errorf("from.requestPrincipals: %q is not '<issuer>/<subject>', nor one with a single '*' at the start or the end", p))
			}
		}
	}
	if to := r.To; to != nil {
		if len(to.Ports)+len(to.Paths)+len(to.Methods)+len(to.Hosts) == 0 {
			errs = append(errs, errors.New("to must set at least one of ports, paths, methods or hosts"))
		}
		for _, p := range to.Ports {
			if p < 1 || p > 65535 {
				errs = append(errs, fmt.Errorf("to.ports: %d is not 1 to 65535", p))
			}
		}
		for _, p := range to.Paths {
			if err := checkPolicyPath(p); err != nil {
				errs = append(errs, fmt.Errorf("to.paths: %w", err))
			}
		}
		for _, m := range to.Methods {
			if !slices.Contains(httpMethods, m) {
				errs = append(errs, fmt.Errorf("to.methods: %q is not supported", m))
			}
		}
		for _, h := range to.Hosts {
			if len(h) > 253 || !hostPatternRE.MatchString(h) {
				errs = append(errs, fmt.Errorf("to.hosts: %q is not a lowercase DNS name, optionally starting with '*.'", h))
			}
		}
	}
	if w := r.When; w != nil {
		if len(w.Headers)+len(w.Claims) == 0 {
			errs = append(errs, errors.New("when must set at least one of headers or claims"))
		}
		for i, h := range w.Headers {
			if err := validateHeaderMatch(h); err != nil {
				errs = append(errs, fmt.Errorf("when.headers[%d]: %w", i, err))
			}
		}
		for i, c := range w.Claims {
			if c.Name == "" || !utf8.ValidString(c.Name) {
				errs = append(errs, fmt.Errorf("when.claims[%d]: the name must be a non-empty UTF-8 string", i))
			}
			if len(c.Values) == 0 {
				errs = append(errs, fmt.Errorf("when.claims[%d]: values must not be empty", i))
			}
			for _, v := range c.Values {
				if !utf8.ValidString(v) || !claimValueRE.MatchString(v) {
					errs = append(errs, fmt.Errorf("when.claims[%d]: value %q may contain one '*', only as the first or the last character", i, v))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func validateHeaderMatch(h causewayv1alpha1.HeaderMatch) error {
	if !headerNameRE.MatchString(string(h.Name)) {
		return fmt.Errorf("name %q is not a header name", h.Name)
	}
	n := 0
	for _, v := range []*string{h.Exact, h.Prefix, h.Regex} {
		if v != nil {
			n++
			if !utf8.ValidString(*v) {
				return errors.New("values must be UTF-8")
			}
		}
	}
	if n != 1 {
		return errors.New("set exactly one of exact, prefix or regex")
	}
	if h.Prefix != nil && *h.Prefix == "" {
		return errors.New("prefix must not be empty")
	}
	if h.Regex != nil {
		if len(*h.Regex) > maxRegexLen {
			return fmt.Errorf("regex is longer than %d bytes", maxRegexLen)
		}
		if _, err := regexp.Compile(*h.Regex); err != nil {
			return fmt.Errorf("regex %q: %w", *h.Regex, err)
		}
	}
	return nil
}

// checkPolicyPath checks that a policy path (an exact path, or a prefix
// followed by '*') is in the normal form that the proxies give request
// paths before matching them (normalize_path, merge_slashes,
// path_with_escaped_slashes_action REJECT_REQUEST): a path in any other
// form could never match, which in a DENY rule is a hole.
func checkPolicyPath(p string) error {
	prefix := strings.HasSuffix(p, "*")
	body := strings.TrimSuffix(p, "*")
	switch {
	case !strings.HasPrefix(body, "/"):
		return fmt.Errorf("%q must start with '/'", p)
	case strings.Contains(body, "*"):
		return fmt.Errorf("%q may contain '*' only as its last character", p)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%q contains a control character", p)
		case c == '\\':
			return fmt.Errorf("%q contains '\\', which requests have as '/'", p)
		case c == '?' || c == '#':
			return fmt.Errorf("%q contains %q: paths are matched without their query", p, c)
		case c == '%':
			if i+2 >= len(body) || !isUpperHex(body[i+1]) || !isUpperHex(body[i+2]) {
				return fmt.Errorf("%q: '%%' must start an escape with two upper-case hex digits, as in normalised paths", p)
			}
			b := unhex(body[i+1])<<4 | unhex(body[i+2])
			switch {
			case b == 0:
				return fmt.Errorf("%q contains %%00, which requests may not", p)
			case b == '/' || b == '\\':
				return fmt.Errorf("%q contains an escaped slash, which requests may not", p)
			case isUnreserved(b):
				return fmt.Errorf("%q: %%%c%c is %q, which normalised paths have unescaped", p, body[i+1], body[i+2], b)
			}
			i += 2
		case !isPathChar(c):
			return fmt.Errorf("%q: byte 0x%02X must be percent-encoded (%%%02X), as normalised paths have it", p, c, c)
		}
	}
	segs := strings.Split(body[1:], "/")
	for i, s := range segs {
		last := i == len(segs)-1
		if prefix && last {
			break // a partial segment: "/a/.*" is a prefix of "/a/.well-known"
		}
		switch {
		case s == "" && !last:
			return fmt.Errorf("%q contains '//', which normalised paths never have", p)
		case s == "." || s == "..":
			return fmt.Errorf("%q contains a %q segment, which normalised paths never have", p, s)
		}
	}
	return nil
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// isUnreserved reports RFC 3986 §2.3 unreserved characters.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// isPathChar reports the bytes a normalised path has unescaped: RFC 3986
// pchar (unreserved, sub-delims, ':' and '@') and '/'.
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@/", c) >= 0
}

// ---- rendering ----

// rbacMode is what a rendered RBAC configuration is for: HTTP requests,
// or TCP connections (which have no path, method, host, headers or token).
type rbacMode int

const (
	rbacHTTP rbacMode = iota
	rbacTCP
)

// renderRBAC renders the policies of one action that apply to a workload
// as one envoy.config.rbac.v3.RBAC, or nil when no filter is needed: no
// policy of the action applies, or (for DENY) none has a rule. An ALLOW
// configuration is returned as soon as an ALLOW policy applies, even with
// no rules: Envoy's ALLOW filter with no policies denies everything, which
// is the meaning of an ALLOW policy that matches nothing. issuers are the
// JWT issuers whose tokens the workload verifies (payload_in_metadata
// keys), sorted.
func renderRBAC(policies []*authzPolicy, action causewayv1alpha1.AuthorizationAction, issuers []string, mode rbacMode) *rbacv3.RBAC {
	var out *rbacv3.RBAC
	for _, ap := range policies {
		if ap.obj.Spec.Action != action {
			continue
		}
		if out == nil && action == causewayv1alpha1.AuthorizationActionAllow {
			out = &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{}}
		}
		for i := range ap.obj.Spec.Rules {
			pol := renderAuthzRule(&ap.obj.Spec.Rules[i], action, issuers, mode)
			if pol == nil {
				continue
			}
			if out == nil {
				out = &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
			}
			out.Policies[fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", ap.obj.Namespace, ap.obj.Name, i)] = pol
		}
	}
	return out
}

// renderAuthzRule renders one rule as an RBAC policy: every condition that is
// set must match (its list entries are alternatives). For TCP, a rule
// with HTTP-only conditions is left out of ALLOW (it can never match a
// connection) and applied without them in DENY (so it matches more), the
// restrictive reading in both cases; renderAuthzRule returns nil for a rule
// left out.
func renderAuthzRule(r *causewayv1alpha1.AuthorizationRule, action causewayv1alpha1.AuthorizationAction, issuers []string, mode rbacMode) *rbacv3.Policy {
	if mode == rbacTCP && hasHTTPConditions(r) && action == causewayv1alpha1.AuthorizationActionAllow {
		return nil
	}
	http := mode == rbacHTTP
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	if to := r.To; to != nil {
		if len(to.Ports) > 0 {
			var alt []*rbacv3.Permission
			for _, p := range to.Ports {
				alt = append(alt, &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(p)}})
			}
			perms = append(perms, orPermissions(alt))
		}
		if http && len(to.Paths) > 0 {
			var alt []*rbacv3.Permission
			for _, p := range to.Paths {
				alt = append(alt, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
					Rule: &matcherv3.PathMatcher_Path{Path: pathMatcher(p)},
				}}})
			}
			perms = append(perms, orPermissions(alt))
		}
		if http && len(to.Methods) > 0 {
			var alt []*rbacv3.Permission
			for _, m := range to.Methods {
				alt = append(alt, headerPermission(":method", exactString(string(m))))
			}
			perms = append(perms, orPermissions(alt))
		}
		if http && len(to.Hosts) > 0 {
			var alt []*rbacv3.Permission
			for _, h := range to.Hosts {
				alt = append(alt, headerPermission(":authority", regexString(hostRegex(h))))
			}
			perms = append(perms, orPermissions(alt))
		}
	}
	if w := r.When; w != nil && http {
		for _, h := range w.Headers {
			perms = append(perms, headerPermission(strings.ToLower(string(h.Name)), headerValueMatcher(h)))
		}
		for _, c := range w.Claims {
			ids = append(ids, claimPrincipal(c, issuers))
		}
	}
	if f := r.From; f != nil {
		var alt []*rbacv3.Principal
		for _, p := range f.Principals {
			alt = append(alt, authenticated(principalMatcher(string(p))))
		}
		if len(alt) > 0 {
			ids = append(ids, orPrincipals(alt))
		}
		alt = nil
		for _, n := range f.Namespaces {
			alt = append(alt, authenticated(regexString(namespaceRegex(string(n)))))
		}
		if len(alt) > 0 {
			ids = append(ids, orPrincipals(alt))
		}
		alt = nil
		for _, c := range f.Clusters {
			alt = append(alt, &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
				Key:     xdsconv.FilterStatePeerCluster,
				Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: exactString(string(c))},
			}}})
		}
		if len(alt) > 0 {
			ids = append(ids, orPrincipals(alt))
		}
		alt = nil
		if http {
			for _, rp := range f.RequestPrincipals {
				alt = append(alt, requestPrincipalIDs(string(rp), issuers)...)
			}
			if len(f.RequestPrincipals) > 0 {
				ids = append(ids, orPrincipals(alt))
			}
		}
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{andPermissions(perms)}, Principals: []*rbacv3.Principal{andPrincipals(ids)}}
}

// hasHTTPConditions reports whether a rule reads anything only HTTP
// requests have.
func hasHTTPConditions(r *causewayv1alpha1.AuthorizationRule) bool {
	if to := r.To; to != nil && len(to.Paths)+len(to.Methods)+len(to.Hosts) > 0 {
		return true
	}
	if w := r.When; w != nil && len(w.Headers)+len(w.Claims) > 0 {
		return true
	}
	return r.From != nil && len(r.From.RequestPrincipals) > 0
}

func orPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func andPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

// never is a principal that matches nothing.
func never() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
}

func orPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return never()
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func andPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ps) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func headerPermission(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m},
	}}}
}

func headerValueMatcher(h causewayv1alpha1.HeaderMatch) *matcherv3.StringMatcher {
	switch {
	case h.Prefix != nil:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: *h.Prefix}}
	case h.Regex != nil:
		return regexString(*h.Regex)
	case h.Exact != nil:
		return exactString(*h.Exact)
	}
	return exactString("") // unreachable for a validated policy
}

func authenticated(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func exactString(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func regexString(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

// wildcardMatcher turns a value with at most one '*', at its start or end,
// into a string matcher: "*" matches anything (a prefix of any), "x*" is
// a prefix, "*x" a suffix, anything else exact. anyPrefix is the prefix
// that stands for "*" (Envoy refuses an empty prefix).
func wildcardMatcher(v, anyPrefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*" && anyPrefix == "":
		return regexString(`(?s).*`)
	case v == "*":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: anyPrefix}}
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(v, "*")}}
	case strings.HasPrefix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(v, "*")}}
	}
	return exactString(v)
}

// principalMatcher matches a peer's SPIFFE ID; "*" is any SPIFFE ID.
func principalMatcher(p string) *matcherv3.StringMatcher { return wildcardMatcher(p, "spiffe://") }

// namespaceRegex matches the SPIFFE ID of every workload of a namespace,
// in any trust domain (the proxies trust one): spiffe://<td>/ns/<ns>/sa/<sa>.
func namespaceRegex(ns string) string {
	return `spiffe://[^/]+/ns/` + regexp.QuoteMeta(ns) + `/sa/[^/]+`
}

// hostRegex matches an :authority (or Host) of a policy host, with any
// port and in any letter case, as host names compare.
func hostRegex(h string) string {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return `(?i)[^:/]+\.` + regexp.QuoteMeta(rest) + `(:[0-9]+)?`
	}
	return `(?i)` + regexp.QuoteMeta(h) + `(:[0-9]+)?`
}

// pathMatcher matches a normalised request path (without query).
func pathMatcher(p string) *matcherv3.StringMatcher {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
	}
	return exactString(p)
}

// ---- JWT conditions ----
//
// jwt_authn writes the payload of each verified token into its dynamic
// metadata under the provider's payload_in_metadata, which the agent sets
// to the provider's issuer. A request principal "<iss>/<sub>" is therefore
// matched, for each issuer I the workload verifies, on the payload under
// I: exactly when I is the principal's issuer part, with its subject
// claim. Patterns with '*' are resolved the same way, exactly: since the
// workload's issuers are known, "<iss>/<sub>" starts (or ends) with the
// pattern's text exactly when the conditions below on I and on sub hold.

// requestPrincipalIDs returns the alternatives that match a request
// principal pattern for a workload verifying tokens of issuers.
func requestPrincipalIDs(v string, issuers []string) []*rbacv3.Principal {
	var out []*rbacv3.Principal
	for _, iss := range issuers {
		head := iss + "/"
		switch {
		case v == "*":
			out = append(out, jwtPresent(iss))
		case strings.HasSuffix(v, "*"):
			p := strings.TrimSuffix(v, "*")
			switch {
			case strings.HasPrefix(head, p):
				out = append(out, jwtPresent(iss))
			case strings.HasPrefix(p, head):
				out = append(out, jwtClaim(iss, "sub", &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p[len(head):]}},
				}}))
			}
		case strings.HasPrefix(v, "*"):
			s := strings.TrimPrefix(v, "*")
			// head+sub ends with s: sub ends with s, or sub is the rest
			// of s after a part that head ends with.
			out = append(out, jwtClaim(iss, "sub", &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s}},
			}}))
			for k := 1; k <= len(s); k++ {
				if strings.HasSuffix(head, s[:k]) {
					out = append(out, jwtClaim(iss, "sub", stringValue(exactString(s[k:]))))
				}
			}
		default:
			if sub, ok := strings.CutPrefix(v, head); ok {
				out = append(out, jwtClaim(iss, "sub", stringValue(exactString(sub))))
			}
		}
	}
	return out
}

// claimPrincipal matches a claim of a token of any of issuers: a string
// claim equal to (or matching the pattern of) a value, or a list claim
// with such an element. "*" matches any value the claim has.
func claimPrincipal(c causewayv1alpha1.ClaimMatch, issuers []string) *rbacv3.Principal {
	var value *matcherv3.ValueMatcher
	if slices.Contains(c.Values, "*") {
		value = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}
	} else {
		var alt []*matcherv3.ValueMatcher
		for _, v := range c.Values {
			sm := wildcardMatcher(v, "")
			alt = append(alt, stringValue(sm), &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{
				ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringValue(sm)}},
			}})
		}
		value = &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: alt}}}
	}
	var alt []*rbacv3.Principal
	for _, iss := range issuers {
		alt = append(alt, jwtClaim(iss, c.Name, value))
	}
	return orPrincipals(alt)
}

func stringValue(sm *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sm}}
}

// jwtPresent matches a request with a verified token of issuer.
func jwtPresent(issuer string) *rbacv3.Principal {
	return jwtMetadata([]string{issuer}, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}})
}

// jwtClaim matches a claim of a verified token of issuer.
func jwtClaim(issuer, claim string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	return jwtMetadata([]string{issuer, claim}, v)
}

func jwtMetadata(path []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	m := &matcherv3.MetadataMatcher{Filter: jwtAuthnFilter, Value: v}
	for _, k := range path {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
		MetadataMatcher: m, MetadataSource: rbacv3.MetadataSource_DYNAMIC,
	}}}
}
