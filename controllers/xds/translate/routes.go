package translate

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// pathKind is how a rule matches the request path.
type pathKind int

const (
	// pathExact matches the path exactly.
	pathExact pathKind = iota
	// pathRegex matches the whole path with an RE2 regular expression.
	pathRegex
	// pathSegmentPrefix is the Gateway API's PathPrefix: a prefix of whole
	// path segments. value has no trailing '/' ("" matches every path).
	pathSegmentPrefix
	// pathRawPrefix is a plain string prefix (GRPCRoute's "/service/").
	pathRawPrefix
)

// stringMatch matches a header or query parameter.
type stringMatch struct {
	name  string
	regex bool
	value string
}

// matchIR is one match of a rule.
type matchIR struct {
	kind    pathKind
	value   string
	method  string
	headers []stringMatch
	query   []stringMatch
}

// header is a header name and value.
type header struct{ name, value string }

// headerMods are a header filter's edits.
type headerMods struct {
	set, add []header
	remove   []string
}

func (m *headerMods) empty() bool { return m == nil || len(m.set)+len(m.add)+len(m.remove) == 0 }

// backendRef is a backendRef as written, with its parsed filters.
type backendRef struct {
	ref               gatewayv1.BackendObjectReference
	weight            uint32
	reqMods, respMods *headerMods
}

// mirrorRef is a RequestMirror filter as written.
type mirrorRef struct {
	ref gatewayv1.BackendObjectReference
	// ppm is the share mirrored in parts per million; 1,000,000 is all.
	ppm uint32
}

// pathModifier is a URLRewrite's or RequestRedirect's path edit.
type pathModifier struct {
	full   *string
	prefix *string
}

// redirect is a RequestRedirect filter.
type redirect struct {
	scheme, host string
	port         int32
	path         *pathModifier
	code         int
}

// retry is an HTTPRoute rule's retry.
type retry struct {
	attempts *int
	codes    []uint32
	backoff  *time.Duration
}

// rawRule is a route rule, validated, with its references not yet resolved
// (that depends on the parent port a ServiceImport backend is reached
// from).
type rawRule struct {
	index            int
	matches          []matchIR
	backends         []backendRef
	mirrors          []mirrorRef
	reqMods, respMod *headerMods
	rewriteHost      string
	rewritePath      *pathModifier
	redirect         *redirect
	timeout          *time.Duration
	backendTimeout   *time.Duration
	retry            *retry
}

// routeSource is an HTTPRoute or GRPCRoute reduced to what attachment
// needs.
type routeSource struct {
	kind   string // "HTTPRoute" or "GRPCRoute"
	obj    metav1.Object
	parent []gatewayv1.ParentReference
	rules  []*rawRule
	// refs are every backend and mirror reference as written, checked
	// for ResolvedRefs even when the route is not accepted.
	refs []gatewayv1.BackendObjectReference
	// err is why the route as a whole is not accepted, with its reason.
	err *routeError
}

// routeError is a reason (a Gateway API RouteConditionReason) with a
// message.
type routeError struct {
	reason  gatewayv1.RouteConditionReason
	message string
}

func (e *routeError) Error() string { return e.message }

func unsupported(format string, args ...any) *routeError {
	return &routeError{gatewayv1.RouteReasonUnsupportedValue, fmt.Sprintf(format, args...)}
}

func incompatible(format string, args ...any) *routeError {
	return &routeError{gatewayv1.RouteReasonIncompatibleFilters, fmt.Sprintf(format, args...)}
}

// ruleIR is one match of a rule, resolved against a parent port: one
// Envoy route (or two for proxyless segment prefixes).
type ruleIR struct {
	// Precedence ties are broken by route age, then namespace/name, then
	// rule and match order.
	src      *routeSource
	rule     int
	matchIdx int
	match    matchIR
	action   *actionIR
}

// resolvedBackend is a backend that has a cluster, or an unresolved one
// (cluster == "") whose share is answered 500.
type resolvedBackend struct {
	cluster           string
	weight            uint32
	reqMods, respMods *headerMods
	policy            *causewayv1alpha1.TrafficPolicy
}

// actionIR is what a rule does with a request from one parent port.
type actionIR struct {
	backends     []resolvedBackend
	redirect     *redirect
	mirrors      []resolvedMirror
	raw          *rawRule
	parentPolicy *causewayv1alpha1.TrafficPolicy
}

type resolvedMirror struct {
	cluster string
	ppm     uint32
}

// Limits of what the translation accepts, beyond the API server's own.
const (
	// maxRegexProgram bounds a regular expression's compiled size. Envoy
	// refuses RE2 programs larger than 100 instructions by default
	// (runtime key re2.max_program_size.error_level); Go's program size is
	// a close, slightly larger, measure of the same thing.
	maxRegexProgram = 100
	// maxRegexBytes is causeway-proxy's limit.
	maxRegexBytes  = 1024
	maxHeaderValue = 4096
)

// checkRegex compiles re the way RE2 would and bounds its size.
func checkRegex(what, re string) *routeError {
	if re == "" {
		return unsupported("%s: empty regular expression", what)
	}
	if !utf8.ValidString(re) {
		return unsupported("%s: regular expression %q is not valid UTF-8", what, re)
	}
	if len(re) > maxRegexBytes {
		return unsupported("%s: regular expression longer than %d bytes", what, maxRegexBytes)
	}
	if _, err := regexp.Compile(re); err != nil {
		return unsupported("%s: invalid RE2 regular expression %q: %v", what, re, err)
	}
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return unsupported("%s: invalid RE2 regular expression %q: %v", what, re, err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return unsupported("%s: invalid RE2 regular expression %q: %v", what, re, err)
	}
	if len(prog.Inst) > maxRegexProgram {
		return unsupported("%s: regular expression %q is too complex for the data plane (%d instructions, at most %d)", what, re, len(prog.Inst), maxRegexProgram)
	}
	return nil
}

// checkHeaderName rejects what is not an HTTP token.
func checkHeaderName(what, name string) *routeError {
	if !headerNameRE.MatchString(name) || len(name) > 256 {
		return unsupported("%s: %q is not a valid header name", what, name)
	}
	return nil
}

// checkHeaderValue rejects values Envoy would refuse (NUL, CR, LF).
func checkHeaderValue(what, value string) *routeError {
	if strings.ContainsAny(value, "\x00\r\n") || len(value) > maxHeaderValue || !utf8.ValidString(value) {
		return unsupported("%s: header value %q contains NUL, CR, LF or invalid UTF-8, or is longer than %d bytes", what, value, maxHeaderValue)
	}
	return nil
}

// checkPath accepts an absolute path without query, fragment, control
// characters or spaces.
func checkPath(what, p string) *routeError {
	if !strings.HasPrefix(p, "/") {
		return unsupported("%s: path %q does not start with '/'", what, p)
	}
	if !utf8.ValidString(p) {
		return unsupported("%s: path %q is not valid UTF-8", what, p)
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || r == '?' || r == '#' || r == '\\' {
			return unsupported("%s: path %q contains a character that is not allowed (control, space, '?', '#' or '\\')", what, p)
		}
	}
	return nil
}

// parseHeaderMods validates a header filter.
func parseHeaderMods(what string, f *gatewayv1.HTTPHeaderFilter) (*headerMods, *routeError) {
	if f == nil {
		return nil, unsupported("%s: the filter's configuration is missing", what)
	}
	m := &headerMods{}
	seen := map[string]bool{}
	check := func(name string) *routeError {
		if err := checkHeaderName(what, name); err != nil {
			return err
		}
		lower := strings.ToLower(name)
		// Envoy refuses to edit Host and pseudo-headers with header
		// filters; URLRewrite's hostname rewrites Host.
		if lower == "host" {
			return unsupported("%s: the Host header cannot be edited by a header filter; use URLRewrite's hostname", what)
		}
		if seen[lower] {
			return unsupported("%s: header %q is edited more than once", what, name)
		}
		seen[lower] = true
		return nil
	}
	for _, h := range f.Set {
		if err := firstRouteError(check(string(h.Name)), checkHeaderValue(what, h.Value)); err != nil {
			return nil, err
		}
		m.set = append(m.set, header{strings.ToLower(string(h.Name)), h.Value})
	}
	for _, h := range f.Add {
		if err := firstRouteError(check(string(h.Name)), checkHeaderValue(what, h.Value)); err != nil {
			return nil, err
		}
		m.add = append(m.add, header{strings.ToLower(string(h.Name)), h.Value})
	}
	for _, name := range f.Remove {
		if err := check(name); err != nil {
			return nil, err
		}
		m.remove = append(m.remove, strings.ToLower(name))
	}
	return m, nil
}

func firstRouteError(errs ...*routeError) *routeError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// parseMirror validates a RequestMirror filter.
func parseMirror(what string, f *gatewayv1.HTTPRequestMirrorFilter) (mirrorRef, *routeError) {
	if f == nil {
		return mirrorRef{}, unsupported("%s: the filter's configuration is missing", what)
	}
	m := mirrorRef{ref: f.BackendRef, ppm: 1_000_000}
	switch {
	case f.Percent != nil && f.Fraction != nil:
		return m, unsupported("%s: percent and fraction are mutually exclusive", what)
	case f.Percent != nil:
		if *f.Percent < 0 || *f.Percent > 100 {
			return m, unsupported("%s: percent %d is not 0 to 100", what, *f.Percent)
		}
		m.ppm = uint32(*f.Percent) * 10_000
	case f.Fraction != nil:
		den := int64(100)
		if f.Fraction.Denominator != nil {
			den = int64(*f.Fraction.Denominator)
		}
		num := int64(f.Fraction.Numerator)
		if den <= 0 || num < 0 || num > den {
			return m, unsupported("%s: fraction %d/%d is not between 0 and 1", what, num, den)
		}
		m.ppm = uint32(num * 1_000_000 / den)
	}
	return m, nil
}

// parsePathModifier validates a URLRewrite's or RequestRedirect's path.
func parsePathModifier(what string, pm *gatewayv1.HTTPPathModifier, matches []matchIR) (*pathModifier, *routeError) {
	if pm == nil {
		return nil, nil
	}
	switch pm.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		if pm.ReplaceFullPath == nil {
			return nil, unsupported("%s: replaceFullPath is missing", what)
		}
		if err := checkPath(what, *pm.ReplaceFullPath); err != nil {
			return nil, err
		}
		return &pathModifier{full: pm.ReplaceFullPath}, nil
	case gatewayv1.PrefixMatchHTTPPathModifier:
		if pm.ReplacePrefixMatch == nil {
			return nil, unsupported("%s: replacePrefixMatch is missing", what)
		}
		if v := *pm.ReplacePrefixMatch; v != "" {
			if err := checkPath(what, v); err != nil {
				return nil, err
			}
		}
		if len(matches) != 1 || matches[0].kind != pathSegmentPrefix {
			return nil, incompatible("%s: ReplacePrefixMatch needs exactly one match, of type PathPrefix", what)
		}
		return &pathModifier{prefix: pm.ReplacePrefixMatch}, nil
	}
	return nil, unsupported("%s: path modifier type %q is not supported", what, pm.Type)
}

var gatewayDurationRE = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// parseDuration parses a Gateway API duration.
func parseDuration(what string, d *gatewayv1.Duration) (*time.Duration, *routeError) {
	if d == nil {
		return nil, nil
	}
	// GEP-2257: up to four numbers of up to five digits, each with h, m,
	// s or ms.
	if !gatewayDurationRE.MatchString(string(*d)) {
		return nil, unsupported("%s: %q is not a Gateway API duration such as 1h30m or 500ms", what, *d)
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return nil, unsupported("%s: %v", what, err)
	}
	return &v, nil
}

// parseWeight is a backendRef's weight: 1 when unset.
func parseWeight(w *int32) (uint32, *routeError) {
	if w == nil {
		return 1, nil
	}
	if *w < 0 || *w > 1_000_000 {
		return 0, unsupported("backend weight %d is not 0 to 1000000", *w)
	}
	return uint32(*w), nil
}

// compileHTTPRoute validates an HTTPRoute and reduces it to raw rules.
func compileHTTPRoute(r *gatewayv1.HTTPRoute) *routeSource {
	src := &routeSource{kind: "HTTPRoute", obj: r, parent: r.Spec.ParentRefs}
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			src.refs = append(src.refs, b.BackendObjectReference)
		}
		for _, f := range rule.Filters {
			if f.RequestMirror != nil {
				src.refs = append(src.refs, f.RequestMirror.BackendRef)
			}
		}
	}
	for i := range r.Spec.Rules {
		rule, err := compileHTTPRule(i, &r.Spec.Rules[i])
		if err != nil {
			src.err = err
			src.rules = nil
			return src
		}
		src.rules = append(src.rules, rule)
	}
	return src
}

func compileHTTPRule(i int, r *gatewayv1.HTTPRouteRule) (*rawRule, *routeError) {
	out := &rawRule{index: i}
	what := fmt.Sprintf("rule %d", i)
	matches := r.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.HTTPRouteMatch{{}}
	}
	for j := range matches {
		m, err := compileHTTPMatch(fmt.Sprintf("%s match %d", what, j), &matches[j])
		if err != nil {
			return nil, err
		}
		out.matches = append(out.matches, m)
	}
	var hasRewrite, hasRedirect bool
	for k, f := range r.Filters {
		fw := fmt.Sprintf("%s filter %d (%s)", what, k, f.Type)
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			if out.reqMods != nil {
				return nil, unsupported("%s: RequestHeaderModifier is repeated", fw)
			}
			m, err := parseHeaderMods(fw, f.RequestHeaderModifier)
			if err != nil {
				return nil, err
			}
			out.reqMods = m
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			if out.respMod != nil {
				return nil, unsupported("%s: ResponseHeaderModifier is repeated", fw)
			}
			m, err := parseHeaderMods(fw, f.ResponseHeaderModifier)
			if err != nil {
				return nil, err
			}
			out.respMod = m
		case gatewayv1.HTTPRouteFilterRequestMirror:
			m, err := parseMirror(fw, f.RequestMirror)
			if err != nil {
				return nil, err
			}
			out.mirrors = append(out.mirrors, m)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			if hasRewrite {
				return nil, unsupported("%s: URLRewrite is repeated", fw)
			}
			hasRewrite = true
			if f.URLRewrite == nil {
				return nil, unsupported("%s: the filter's configuration is missing", fw)
			}
			if h := f.URLRewrite.Hostname; h != nil {
				if err := checkHostname(fw, string(*h)); err != nil {
					return nil, err
				}
				out.rewriteHost = string(*h)
			}
			pm, err := parsePathModifier(fw, f.URLRewrite.Path, out.matches)
			if err != nil {
				return nil, err
			}
			out.rewritePath = pm
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			if hasRedirect {
				return nil, unsupported("%s: RequestRedirect is repeated", fw)
			}
			hasRedirect = true
			rd, err := parseRedirect(fw, f.RequestRedirect, out.matches)
			if err != nil {
				return nil, err
			}
			out.redirect = rd
		default:
			return nil, unsupported("%s: filter type %q is not supported", fw, f.Type)
		}
	}
	if hasRewrite && hasRedirect {
		return nil, incompatible("%s: URLRewrite and RequestRedirect cannot be combined", what)
	}
	if hasRedirect && len(r.BackendRefs) > 0 {
		return nil, incompatible("%s: RequestRedirect cannot be combined with backendRefs", what)
	}
	for k, b := range r.BackendRefs {
		bw := fmt.Sprintf("%s backendRef %d", what, k)
		w, err := parseWeight(b.Weight)
		if err != nil {
			return nil, unsupported("%s: %s", bw, err.message)
		}
		br := backendRef{ref: b.BackendObjectReference, weight: w}
		for l, f := range b.Filters {
			fw := fmt.Sprintf("%s filter %d (%s)", bw, l, f.Type)
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
				if br.reqMods, err = parseHeaderMods(fw, f.RequestHeaderModifier); err != nil {
					return nil, err
				}
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				if br.respMods, err = parseHeaderMods(fw, f.ResponseHeaderModifier); err != nil {
					return nil, err
				}
			default:
				return nil, unsupported("%s: filter type %q is not supported on a backendRef", fw, f.Type)
			}
		}
		out.backends = append(out.backends, br)
	}
	if t := r.Timeouts; t != nil {
		var err *routeError
		if out.timeout, err = parseDuration(what+" timeouts.request", t.Request); err != nil {
			return nil, err
		}
		if out.backendTimeout, err = parseDuration(what+" timeouts.backendRequest", t.BackendRequest); err != nil {
			return nil, err
		}
	}
	if rt := r.Retry; rt != nil {
		out.retry = &retry{}
		if rt.Attempts != nil {
			if *rt.Attempts < 0 || *rt.Attempts > 1000 {
				return nil, unsupported("%s: retry attempts %d is not 0 to 1000", what, *rt.Attempts)
			}
			out.retry.attempts = rt.Attempts
		}
		for _, c := range rt.Codes {
			if c < 400 || c > 599 {
				return nil, unsupported("%s: retry code %d is not 400 to 599", what, c)
			}
			out.retry.codes = append(out.retry.codes, uint32(c))
		}
		slices.Sort(out.retry.codes)
		out.retry.codes = slices.Compact(out.retry.codes)
		b, err := parseDuration(what+" retry.backoff", rt.Backoff)
		if err != nil {
			return nil, err
		}
		if b != nil && *b <= 0 {
			b = nil // no minimum: the data plane's default
		}
		out.retry.backoff = b
	}
	if r.SessionPersistence != nil {
		return nil, unsupported("%s: sessionPersistence is not supported; use a TrafficPolicy with consistentHash", what)
	}
	return out, nil
}

func compileHTTPMatch(what string, m *gatewayv1.HTTPRouteMatch) (matchIR, *routeError) {
	out := matchIR{kind: pathSegmentPrefix}
	if p := m.Path; p != nil {
		typ, value := gatewayv1.PathMatchPathPrefix, "/"
		if p.Type != nil {
			typ = *p.Type
		}
		if p.Value != nil {
			value = *p.Value
		}
		switch typ {
		case gatewayv1.PathMatchExact:
			if err := checkPath(what, value); err != nil {
				return out, err
			}
			out.kind, out.value = pathExact, value
		case gatewayv1.PathMatchPathPrefix:
			if err := checkPath(what, value); err != nil {
				return out, err
			}
			out.value = strings.TrimRight(value, "/")
		case gatewayv1.PathMatchRegularExpression:
			if err := checkRegex(what+" path", value); err != nil {
				return out, err
			}
			out.kind, out.value = pathRegex, value
		default:
			return out, unsupported("%s: path match type %q is not supported", what, typ)
		}
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := string(h.Name)
		if err := checkHeaderName(what, name); err != nil {
			return out, err
		}
		// Only the first match of a header name counts (Gateway API).
		if lower := strings.ToLower(name); !seen[lower] {
			seen[lower] = true
			sm, err := stringMatchOf(what+" header "+name, lower, h.Type == nil || *h.Type == gatewayv1.HeaderMatchExact, h.Type, h.Value)
			if err != nil {
				return out, err
			}
			out.headers = append(out.headers, sm)
		}
	}
	seenQ := map[string]bool{}
	for _, q := range m.QueryParams {
		name := string(q.Name)
		if name == "" || strings.ContainsAny(name, "\x00\r\n&=#") || len(name) > 256 || !utf8.ValidString(name) {
			return out, unsupported("%s: %q is not a valid query parameter name", what, name)
		}
		if !seenQ[name] {
			seenQ[name] = true
			sm, err := stringMatchOf(what+" query parameter "+name, name, q.Type == nil || *q.Type == gatewayv1.QueryParamMatchExact, q.Type, q.Value)
			if err != nil {
				return out, err
			}
			out.query = append(out.query, sm)
		}
	}
	if m.Method != nil {
		switch *m.Method {
		case gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut, gatewayv1.HTTPMethodDelete,
			gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions, gatewayv1.HTTPMethodTrace, gatewayv1.HTTPMethodPatch:
			out.method = string(*m.Method)
		default:
			return out, unsupported("%s: method %q is not supported", what, *m.Method)
		}
	}
	return out, nil
}

// stringMatchOf validates an exact or regular-expression match; typ is the
// match type as written, for the message of an unknown one.
func stringMatchOf[T ~string](what, name string, exact bool, typ *T, value string) (stringMatch, *routeError) {
	if !exact {
		if typ != nil && !strings.EqualFold(string(*typ), "RegularExpression") {
			return stringMatch{}, unsupported("%s: match type %q is not supported", what, *typ)
		}
		if err := checkRegex(what, value); err != nil {
			return stringMatch{}, err
		}
		return stringMatch{name: name, regex: true, value: value}, nil
	}
	if err := checkHeaderValue(what, value); err != nil {
		return stringMatch{}, err
	}
	return stringMatch{name: name, value: value}, nil
}

// hostnameRE is a precise DNS name (no wildcard).
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func checkHostname(what, h string) *routeError {
	if len(h) > 253 || !hostnameRE.MatchString(h) {
		return unsupported("%s: %q is not a valid hostname", what, h)
	}
	return nil
}

// parseRedirect validates a RequestRedirect filter.
func parseRedirect(what string, f *gatewayv1.HTTPRequestRedirectFilter, matches []matchIR) (*redirect, *routeError) {
	if f == nil {
		return nil, unsupported("%s: the filter's configuration is missing", what)
	}
	rd := &redirect{code: 302}
	if f.Scheme != nil {
		switch *f.Scheme {
		case "http", "https":
			rd.scheme = *f.Scheme
		default:
			return nil, unsupported("%s: scheme %q is not supported", what, *f.Scheme)
		}
	}
	if f.Hostname != nil {
		if err := checkHostname(what, string(*f.Hostname)); err != nil {
			return nil, err
		}
		rd.host = string(*f.Hostname)
	}
	if f.Port != nil {
		if *f.Port < 1 || *f.Port > 65535 {
			return nil, unsupported("%s: port %d is not 1 to 65535", what, *f.Port)
		}
		rd.port = *f.Port
	} else if rd.scheme != "" {
		// The well-known port of the new scheme (Gateway API).
		rd.port = map[string]int32{"http": 80, "https": 443}[rd.scheme]
	}
	if f.StatusCode != nil {
		switch *f.StatusCode {
		case 301, 302, 303, 307, 308:
			rd.code = *f.StatusCode
		default:
			return nil, unsupported("%s: status code %d is not supported", what, *f.StatusCode)
		}
	}
	pm, err := parsePathModifier(what, f.Path, matches)
	if err != nil {
		return nil, err
	}
	rd.path = pm
	return rd, nil
}

// compileGRPCRoute validates a GRPCRoute and reduces it to raw rules.
func compileGRPCRoute(r *gatewayv1.GRPCRoute) *routeSource {
	src := &routeSource{kind: "GRPCRoute", obj: r, parent: r.Spec.ParentRefs}
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			src.refs = append(src.refs, b.BackendObjectReference)
		}
		for _, f := range rule.Filters {
			if f.RequestMirror != nil {
				src.refs = append(src.refs, f.RequestMirror.BackendRef)
			}
		}
	}
	for i := range r.Spec.Rules {
		rule, err := compileGRPCRule(i, &r.Spec.Rules[i])
		if err != nil {
			src.err = err
			src.rules = nil
			return src
		}
		src.rules = append(src.rules, rule)
	}
	return src
}

// grpcNameRE is the syntax the CRD gives Exact service and method names.
var (
	grpcServiceRE = regexp.MustCompile(`(?i)^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func compileGRPCRule(i int, r *gatewayv1.GRPCRouteRule) (*rawRule, *routeError) {
	out := &rawRule{index: i}
	what := fmt.Sprintf("rule %d", i)
	matches := r.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.GRPCRouteMatch{{}}
	}
	for j := range matches {
		m, err := compileGRPCMatch(fmt.Sprintf("%s match %d", what, j), &matches[j])
		if err != nil {
			return nil, err
		}
		out.matches = append(out.matches, m)
	}
	for k, f := range r.Filters {
		fw := fmt.Sprintf("%s filter %d (%s)", what, k, f.Type)
		var err *routeError
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			if out.reqMods != nil {
				return nil, unsupported("%s: RequestHeaderModifier is repeated", fw)
			}
			out.reqMods, err = parseHeaderMods(fw, f.RequestHeaderModifier)
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			if out.respMod != nil {
				return nil, unsupported("%s: ResponseHeaderModifier is repeated", fw)
			}
			out.respMod, err = parseHeaderMods(fw, f.ResponseHeaderModifier)
		case gatewayv1.GRPCRouteFilterRequestMirror:
			var m mirrorRef
			m, err = parseMirror(fw, f.RequestMirror)
			out.mirrors = append(out.mirrors, m)
		default:
			err = unsupported("%s: filter type %q is not supported", fw, f.Type)
		}
		if err != nil {
			return nil, err
		}
	}
	for k, b := range r.BackendRefs {
		bw := fmt.Sprintf("%s backendRef %d", what, k)
		w, err := parseWeight(b.Weight)
		if err != nil {
			return nil, unsupported("%s: %s", bw, err.message)
		}
		br := backendRef{ref: b.BackendObjectReference, weight: w}
		for l, f := range b.Filters {
			fw := fmt.Sprintf("%s filter %d (%s)", bw, l, f.Type)
			switch f.Type {
			case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
				br.reqMods, err = parseHeaderMods(fw, f.RequestHeaderModifier)
			case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
				br.respMods, err = parseHeaderMods(fw, f.ResponseHeaderModifier)
			default:
				err = unsupported("%s: filter type %q is not supported on a backendRef", fw, f.Type)
			}
			if err != nil {
				return nil, err
			}
		}
		out.backends = append(out.backends, br)
	}
	if r.SessionPersistence != nil {
		return nil, unsupported("%s: sessionPersistence is not supported; use a TrafficPolicy with consistentHash", what)
	}
	return out, nil
}

// compileGRPCMatch maps a gRPC method match to a path match: service and
// method → exact "/service/method"; service alone → prefix "/service/";
// anything with a method alone or regular expressions → a regular
// expression over the whole path.
func compileGRPCMatch(what string, m *gatewayv1.GRPCRouteMatch) (matchIR, *routeError) {
	out := matchIR{kind: pathRawPrefix, value: "/"}
	if mm := m.Method; mm != nil {
		exact := mm.Type == nil || *mm.Type == gatewayv1.GRPCMethodMatchExact
		svc, method := deref(mm.Service), deref(mm.Method)
		if svc == "" && method == "" {
			return out, unsupported("%s: a method match needs a service, a method or both", what)
		}
		switch {
		case exact:
			if svc != "" && !grpcServiceRE.MatchString(svc) {
				return out, unsupported("%s: %q is not a gRPC service name", what, svc)
			}
			if method != "" && !grpcMethodRE.MatchString(method) {
				return out, unsupported("%s: %q is not a gRPC method name", what, method)
			}
			switch {
			case svc != "" && method != "":
				out.kind, out.value = pathExact, "/"+svc+"/"+method
			case svc != "":
				out.kind, out.value = pathRawPrefix, "/"+svc+"/"
			default:
				out.kind, out.value = pathRegex, `/[^/]+/`+regexp.QuoteMeta(method)
			}
		case *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression:
			svcRE, methodRE := `[^/]+`, `[^/]+`
			if svc != "" {
				if err := checkRegex(what+" service", svc); err != nil {
					return out, err
				}
				svcRE = "(?:" + svc + ")"
			}
			if method != "" {
				if err := checkRegex(what+" method", method); err != nil {
					return out, err
				}
				methodRE = "(?:" + method + ")"
			}
			out.kind, out.value = pathRegex, "/"+svcRE+"/"+methodRE
			if err := checkRegex(what, out.value); err != nil {
				return out, err
			}
		default:
			return out, unsupported("%s: method match type %q is not supported", what, *mm.Type)
		}
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		name := string(h.Name)
		if err := checkHeaderName(what, name); err != nil {
			return out, err
		}
		if lower := strings.ToLower(name); !seen[lower] {
			seen[lower] = true
			sm, err := stringMatchOf(what+" header "+name, lower, h.Type == nil || *h.Type == gatewayv1.GRPCHeaderMatchExact, h.Type, h.Value)
			if err != nil {
				return out, err
			}
			out.headers = append(out.headers, sm)
		}
	}
	return out, nil
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// ---- attachment ----

// attachRoutes compiles every route, attaches the accepted ones to their
// parents' ports and records their status.
func (t *translator) attachRoutes() {
	var sources []*routeSource
	for _, r := range t.in.HTTPRoutes {
		sources = append(sources, compileHTTPRoute(r))
	}
	for _, r := range t.in.GRPCRoutes {
		sources = append(sources, compileGRPCRoute(r))
	}
	for _, src := range sources {
		parents := t.attach(src)
		if parents == nil {
			continue
		}
		key := ktypes.NamespacedName{Namespace: src.obj.GetNamespace(), Name: src.obj.GetName()}
		if src.kind == "HTTPRoute" {
			t.httpStatus[key] = parents
		} else {
			t.grpcStatus[key] = parents
		}
	}
}

// meshParent tells whether a parentRef is for this controller (a Service
// or a ServiceImport), and which kind.
func meshParent(p gatewayv1.ParentReference) (targetKind, bool) {
	group, kind := gatewayv1.GroupName, "Gateway"
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	switch {
	case group == "" && kind == "Service":
		return kindService, true
	case group == causewayv1alpha1.MCSGroup && kind == "ServiceImport":
		return kindServiceImport, true
	}
	return 0, false
}

// attach attaches a route to each of its mesh parents and returns their
// status entries, or nil when the route has no mesh parent.
func (t *translator) attach(src *routeSource) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	ns := src.obj.GetNamespace()
	done := map[targetKey]map[int32]bool{}
	for _, pref := range src.parent {
		kind, ok := meshParent(pref)
		if !ok {
			continue
		}
		status := gatewayv1.RouteParentStatus{ParentRef: pref, ControllerName: ControllerName}
		accepted := routeCondition(src, gatewayv1.RouteConditionAccepted, gatewayv1.RouteReasonAccepted, "attached to "+kind.String()+" "+string(pref.Name))
		resolved := routeCondition(src, gatewayv1.RouteConditionResolvedRefs, gatewayv1.RouteReasonResolvedRefs, "all references resolved")
		key := targetKey{kind, ns, string(pref.Name)}
		ports, perr := t.parentPorts(key, pref, ns)
		refs := &refProblems{}
		switch {
		case perr != nil:
			setFalse(&accepted, perr.reason, perr.message)
		case src.err != nil:
			setFalse(&accepted, src.err.reason, src.err.message)
		default:
			tg := t.byKey[key]
			pending := make([][]*ruleIR, len(ports))
			for i, p := range ports {
				pending[i] = t.resolveRules(src, tg, p, refs)
			}
			if err := validateRendered(pending); err != nil {
				// A safety net: the checks above should have caught it.
				src.err = err
				setFalse(&accepted, err.reason, err.message)
				break
			}
			if done[key] == nil {
				done[key] = map[int32]bool{}
			}
			for i, p := range ports {
				if done[key][p.number] {
					continue // another parentRef attached it already
				}
				done[key][p.number] = true
				tg.attached[p.number] = true
				tg.routes[p.number] = append(tg.routes[p.number], pending[i]...)
			}
		}
		if src.err != nil || perr != nil {
			// References are still checked, so ResolvedRefs is accurate.
			t.checkRefs(src, ns, refs)
		}
		if refs.reason != "" {
			setFalse(&resolved, refs.reason, strings.Join(refs.messages, "; "))
		}
		status.Conditions = []metav1.Condition{accepted, resolved}
		out = append(out, status)
	}
	return out
}

func routeCondition(src *routeSource, typ gatewayv1.RouteConditionType, reason gatewayv1.RouteConditionReason, message string) metav1.Condition {
	return metav1.Condition{Type: string(typ), Status: metav1.ConditionTrue, Reason: string(reason), Message: message, ObservedGeneration: src.obj.GetGeneration()}
}

func setFalse(c *metav1.Condition, reason gatewayv1.RouteConditionReason, message string) {
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(reason), message
}

// parentPorts finds the HTTP ports of a parent that a parentRef selects.
func (t *translator) parentPorts(key targetKey, pref gatewayv1.ParentReference, routeNS string) ([]*targetPort, *routeError) {
	if pref.Namespace != nil && string(*pref.Namespace) != routeNS {
		return nil, unsupported("parentRef %s %s/%s: parents in another namespace (consumer routes) are not supported yet", key.kind, *pref.Namespace, pref.Name)
	}
	tg := t.byKey[key]
	if tg == nil {
		msg := key.String() + " does not exist"
		if why := t.skipped[key]; why != "" {
			msg = key.String() + ": " + why
		}
		return nil, &routeError{gatewayv1.RouteReasonNoMatchingParent, msg}
	}
	var out []*targetPort
	for _, p := range tg.ports {
		if pref.Port != nil && p.number != *pref.Port {
			continue
		}
		if pref.SectionName != nil && p.name != string(*pref.SectionName) {
			continue
		}
		if !p.protocol.IsHTTP() {
			if pref.Port != nil || pref.SectionName != nil {
				return nil, &routeError{gatewayv1.RouteReasonNoMatchingParent, fmt.Sprintf("port %d of %s is %s, not HTTP, HTTP2 or gRPC (set its appProtocol or name it http-*, grpc-*)", p.number, key, p.protocol)}
			}
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, &routeError{gatewayv1.RouteReasonNoMatchingParent, "no HTTP, HTTP2 or gRPC port of " + key.String() + " matches the parentRef"}
	}
	return out, nil
}

// refProblems collects unresolved references for ResolvedRefs.
type refProblems struct {
	reason   gatewayv1.RouteConditionReason
	messages []string
	seen     map[string]bool
}

func (p *refProblems) add(reason gatewayv1.RouteConditionReason, msg string) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[msg] {
		return
	}
	p.seen[msg] = true
	if p.reason == "" {
		p.reason = reason
	}
	p.messages = append(p.messages, msg)
}

// resolveRef finds the cluster a backend reference names, as seen from
// parent port pp (a ServiceImport backend without a port uses the parent
// port's number). It returns the target too, for its TrafficPolicy.
func (t *translator) resolveRef(ref gatewayv1.BackendObjectReference, routeNS string, pp *targetPort) (string, *target, gatewayv1.RouteConditionReason, string) {
	group, kind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := routeNS
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	var key targetKey
	switch {
	case group == "" && kind == "Service":
		key = targetKey{kindService, ns, string(ref.Name)}
	case group == causewayv1alpha1.MCSGroup && kind == "ServiceImport":
		key = targetKey{kindServiceImport, ns, string(ref.Name)}
	default:
		return "", nil, gatewayv1.RouteReasonInvalidKind, fmt.Sprintf("backend %s/%s %s: only Services and ServiceImports are supported", group, kind, ref.Name)
	}
	if ns != routeNS {
		// ReferenceGrants are not read yet, so nothing permits it.
		return "", nil, gatewayv1.RouteReasonRefNotPermitted, fmt.Sprintf("backend %s/%s is in another namespace; cross-namespace backends are not supported yet", ns, ref.Name)
	}
	tg := t.byKey[key]
	if tg == nil {
		msg := key.String() + " does not exist"
		if why := t.skipped[key]; why != "" {
			msg = key.String() + ": " + why
		}
		return "", nil, gatewayv1.RouteReasonBackendNotFound, msg
	}
	var number int32
	switch {
	case ref.Port != nil:
		number = *ref.Port
	case key.kind == kindServiceImport && pp == nil:
		// Seen from no parent port (a route that is not attached): only
		// the import's existence can be checked.
		return "", tg, "", ""
	case key.kind == kindServiceImport:
		number = pp.number
	default:
		return "", nil, gatewayv1.RouteReasonBackendNotFound, fmt.Sprintf("backend %s: a port is required", key)
	}
	p := tg.port(number)
	if p == nil {
		return "", nil, gatewayv1.RouteReasonBackendNotFound, fmt.Sprintf("backend %s has no TCP port %d", key, number)
	}
	return p.cluster, tg, "", ""
}

// checkRefs records the reference problems of a route that is not
// attached to any port.
func (t *translator) checkRefs(src *routeSource, ns string, refs *refProblems) {
	for _, ref := range src.refs {
		if _, _, reason, msg := t.resolveRef(ref, ns, nil); reason != "" {
			refs.add(reason, msg)
		}
	}
}

// resolveRules resolves a route's rules against one parent port.
func (t *translator) resolveRules(src *routeSource, parent *target, pp *targetPort, refs *refProblems) []*ruleIR {
	ns := src.obj.GetNamespace()
	var out []*ruleIR
	for _, r := range src.rules {
		act := &actionIR{raw: r, redirect: r.redirect, parentPolicy: parent.policy}
		for _, b := range r.backends {
			cluster, tg, reason, msg := t.resolveRef(b.ref, ns, pp)
			if reason != "" {
				refs.add(reason, msg)
			}
			if b.weight == 0 {
				continue
			}
			rb := resolvedBackend{cluster: cluster, weight: b.weight, reqMods: b.reqMods, respMods: b.respMods}
			if tg != nil {
				rb.policy = tg.policy
			}
			act.backends = append(act.backends, rb)
		}
		for _, m := range r.mirrors {
			cluster, _, reason, msg := t.resolveRef(m.ref, ns, pp)
			if reason != "" {
				refs.add(reason, msg)
				continue
			}
			if m.ppm > 0 {
				act.mirrors = append(act.mirrors, resolvedMirror{cluster: cluster, ppm: m.ppm})
			}
		}
		for j, m := range r.matches {
			out = append(out, &ruleIR{src: src, rule: r.index, matchIdx: j, match: m, action: act})
		}
	}
	return out
}

// validateRendered renders rules for both kinds of node and runs the
// protos' own validation, so that a route the checks above missed is
// rejected with a message rather than NACKed by every data plane.
func validateRendered(rules [][]*ruleIR) *routeError {
	for _, rs := range rules {
		for _, r := range rs {
			for _, kind := range []NodeKind{Proxy, Proxyless} {
				for _, rt := range renderRule(r, "validate", kind) {
					if err := rt.ValidateAll(); err != nil {
						return unsupported("rule %d rejected by xDS validation: %v", r.rule, err)
					}
					if _, err := proto.Marshal(rt); err != nil {
						return unsupported("rule %d rejected by xDS validation: cannot be encoded: %v", r.rule, err)
					}
				}
			}
		}
	}
	return nil
}
