package translate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Well-known addresses of the proxy listeners.
const (
	explicitHTTPAddress = "127.0.0.1"
	explicitHTTPPort    = 15080
)

// defaultRetryOn is what a TrafficPolicy's retries retry on when retryOn
// is empty: failures where the request cannot have reached the
// application (connection refused, stream refused) and the gRPC statuses
// that say the same, so non-idempotent requests are not repeated.
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled"

// routeRetryOn is what an HTTPRoute's retry retries on, besides its codes:
// the Gateway API says implementations should retry connection errors
// (disconnect, reset, timeout, TCP failure) once retry is configured.
const routeRetryOn = "connect-failure,refused-stream,reset"

// ---- precedence ----

// sortRules orders rules by Gateway API precedence, since Envoy and gRPC
// take the first route that matches: an Exact path first, then regular
// expressions (their precedence is implementation-specific; placing them
// before prefixes lets a regex rule work next to a catch-all "/"), then
// the longest prefix; then a method match, then the most header matches,
// then the most query parameter matches; ties go to the oldest route, then
// the first by namespace/name, then rule and match order.
func sortRules(rules []*ruleIR) {
	rank := func(k pathKind) int {
		switch k {
		case pathExact:
			return 0
		case pathRegex:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(rules, func(a, b *ruleIR) int {
		ma, mb := &a.match, &b.match
		if c := cmp.Compare(rank(ma.kind), rank(mb.kind)); c != 0 {
			return c
		}
		if c := cmp.Compare(len(mb.value), len(ma.value)); c != 0 && ma.kind != pathExact {
			return c // longer prefix (or regex) first
		}
		if c := cmp.Compare(boolInt(mb.method != ""), boolInt(ma.method != "")); c != 0 {
			return c
		}
		if c := cmp.Compare(len(mb.headers), len(ma.headers)); c != 0 {
			return c
		}
		if c := cmp.Compare(len(mb.query), len(ma.query)); c != 0 {
			return c
		}
		if c := olderFirst(a.src.obj, b.src.obj); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.src.kind, b.src.kind), cmp.Compare(a.rule, b.rule), cmp.Compare(a.matchIdx, b.matchIdx))
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- routes ----

// routes renders the routes of a target port: its attached rules by
// precedence, or, when no route is attached, one route sending everything
// to the port's cluster.
func (t *translator) routes(tg *target, p *targetPort, kind NodeKind) []*routev3.Route {
	// Proxies render each port twice (its own route configuration and
	// the explicit one); the routes are shared.
	key := routesKey{p, kind}
	if rs, ok := t.rendered[key]; ok {
		return rs
	}
	rs := t.renderRoutes(tg, p, kind)
	t.rendered[key] = rs
	return rs
}

type routesKey struct {
	port *targetPort
	kind NodeKind
}

func (t *translator) renderRoutes(tg *target, p *targetPort, kind NodeKind) []*routev3.Route {
	if !tg.attached[p.number] {
		act := &actionIR{raw: &rawRule{}, parentPolicy: tg.policy, backends: []resolvedBackend{{cluster: p.cluster, weight: 1, policy: tg.policy}}}
		return renderRule(&ruleIR{match: matchIR{kind: pathSegmentPrefix}, action: act}, "default", kind)
	}
	rules := slices.Clone(tg.routes[p.number])
	sortRules(rules)
	var out []*routev3.Route
	for _, r := range rules {
		name := fmt.Sprintf("%s/%s/%s/rule/%d/match/%d", r.src.kind, r.src.obj.GetNamespace(), r.src.obj.GetName(), r.rule, r.matchIdx)
		out = append(out, renderRule(r, name, kind)...)
	}
	return out
}

// renderRule renders one match of a rule: one route, or two for a
// proxyless segment prefix (gRPC lacks path_separated_prefix), or none
// for a proxyless route that gRPC would ignore (query parameter matches).
func renderRule(r *ruleIR, name string, kind NodeKind) []*routev3.Route {
	m := &r.match
	if kind == Proxyless && len(m.query) > 0 {
		return nil
	}
	base := &routev3.RouteMatch{}
	base.Headers = headerMatchers(m)
	for _, q := range m.query {
		base.QueryParameters = append(base.QueryParameters, &routev3.QueryParameterMatcher{
			Name:                         q.name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q)},
		})
	}
	var matches []*routev3.RouteMatch
	withPath := func(ps func(*routev3.RouteMatch)) {
		rm := proto.Clone(base).(*routev3.RouteMatch)
		ps(rm)
		matches = append(matches, rm)
	}
	switch m.kind {
	case pathExact:
		withPath(func(rm *routev3.RouteMatch) { rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.value} })
	case pathRegex:
		withPath(func(rm *routev3.RouteMatch) {
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.value}}
		})
	case pathRawPrefix:
		withPath(func(rm *routev3.RouteMatch) { rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.value} })
	case pathSegmentPrefix:
		switch {
		case m.value == "":
			withPath(func(rm *routev3.RouteMatch) { rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"} })
		case kind == Proxy:
			withPath(func(rm *routev3.RouteMatch) {
				rm.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: m.value}
			})
		default:
			withPath(func(rm *routev3.RouteMatch) { rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.value} })
			withPath(func(rm *routev3.RouteMatch) { rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.value + "/"} })
		}
	}
	route := &routev3.Route{Name: name}
	act := r.action
	raw := act.raw
	if raw.reqMods != nil {
		route.RequestHeadersToAdd, route.RequestHeadersToRemove = headerOptions(raw.reqMods)
	}
	if raw.respMod != nil {
		route.ResponseHeadersToAdd, route.ResponseHeadersToRemove = headerOptions(raw.respMod)
	}
	switch {
	case act.redirect != nil:
		route.Action = &routev3.Route_Redirect{Redirect: redirectAction(act.redirect)}
	case !anyResolved(act.backends):
		// No backend, or none that resolves: the Gateway API's 500.
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}
	default:
		route.Action = &routev3.Route_Route{Route: routeAction(act, m, kind)}
	}
	out := make([]*routev3.Route, 0, len(matches))
	for _, rm := range matches {
		rt := route
		if len(matches) > 1 {
			rt = cloneRoute(route)
		}
		rt.Match = rm
		out = append(out, rt)
	}
	return out
}

func cloneRoute(r *routev3.Route) *routev3.Route { return proto.Clone(r).(*routev3.Route) }

func anyResolved(bs []resolvedBackend) bool {
	for _, b := range bs {
		if b.cluster != "" {
			return true
		}
	}
	return false
}

func headerMatchers(m *matchIR) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	if m.method != "" {
		out = append(out, &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.method}},
		}})
	}
	for _, h := range m.headers {
		out = append(out, &routev3.HeaderMatcher{Name: h.name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h)}})
	}
	return out
}

func stringMatcher(s stringMatch) *matcherv3.StringMatcher {
	if s.regex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s.value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.value}}
}

// headerOptions renders a header filter: set overwrites, add appends.
func headerOptions(m *headerMods) ([]*corev3.HeaderValueOption, []string) {
	var add []*corev3.HeaderValueOption
	for _, h := range m.set {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.name, Value: h.value}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	for _, h := range m.add {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.name, Value: h.value}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	return add, slices.Clone(m.remove)
}

// redirectCodes maps HTTP status codes to Envoy's redirect codes.
var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

func redirectAction(rd *redirect) *routev3.RedirectAction {
	ra := &routev3.RedirectAction{HostRedirect: rd.host, PortRedirect: uint32(rd.port), ResponseCode: redirectCodes[rd.code]}
	if rd.scheme != "" {
		ra.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.scheme}
	}
	if pm := rd.path; pm != nil {
		if pm.full != nil {
			ra.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *pm.full}
		} else {
			// prefix_rewrite, not regex_rewrite: causeway-proxy implements
			// only the former for redirects. The matched segment prefix is
			// replaced; a "/" replacement is trimmed to "", so /foo/bar
			// redirects to /bar, not //bar (and /foo to an empty path,
			// which clients read as /).
			ra.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: strings.TrimRight(*pm.prefix, "/")}
		}
	}
	return ra
}

// prefixRewrite replaces the matched segment prefix (no trailing '/'; ""
// for "/") with replacement, giving the Gateway API's results:
// /foo/bar → /xyz/bar, /foo → /xyz, and with an empty or "/" replacement
// /foo/bar → /bar, /foo → /. Envoy's prefix_rewrite alone would give
// //bar for the last case.
func prefixRewrite(prefix, replacement string) *matcherv3.RegexMatchAndSubstitute {
	repl := strings.TrimRight(replacement, "/")
	pattern := "^" + regexp.QuoteMeta(prefix)
	if repl == "" {
		pattern += "/*"
		repl = "/"
	}
	return &matcherv3.RegexMatchAndSubstitute{
		Pattern:      &matcherv3.RegexMatcher{Regex: pattern},
		Substitution: strings.ReplaceAll(repl, `\`, `\\`),
	}
}

// routeAction renders a forwarding action.
func routeAction(act *actionIR, m *matchIR, kind NodeKind) *routev3.RouteAction {
	raw := act.raw
	ra := &routev3.RouteAction{}
	// Backends: unresolved shares go to a cluster that never exists and
	// are answered 500.
	var weighted []*routev3.WeightedCluster_ClusterWeight
	var unresolved uint32
	mods := false
	for _, b := range act.backends {
		if b.cluster == "" {
			unresolved += b.weight
			continue
		}
		cw := &routev3.WeightedCluster_ClusterWeight{Name: b.cluster, Weight: wrapperspb.UInt32(b.weight)}
		if !b.reqMods.empty() {
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOptions(b.reqMods)
			mods = true
		}
		if !b.respMods.empty() {
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOptions(b.respMods)
			mods = true
		}
		weighted = append(weighted, cw)
	}
	if unresolved > 0 {
		weighted = append(weighted, &routev3.WeightedCluster_ClusterWeight{Name: xdsconv.InvalidBackendCluster, Weight: wrapperspb.UInt32(unresolved)})
		ra.ClusterNotFoundResponseCode = routev3.RouteAction_INTERNAL_SERVER_ERROR
	}
	if len(weighted) == 1 && !mods {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
	} else {
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	if raw.rewriteHost != "" {
		ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: raw.rewriteHost}
	}
	if pm := raw.rewritePath; pm != nil {
		if pm.full != nil {
			ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: "^/.*$"},
				Substitution: strings.ReplaceAll(*pm.full, `\`, `\\`),
			}
		} else {
			ra.RegexRewrite = prefixRewrite(m.value, *pm.prefix)
		}
	}
	// Timeout: the route's, else the TrafficPolicy's, else none (Envoy's
	// own 15 s default would cut long streams, gRPC ones included).
	var timeout time.Duration
	if raw.timeout != nil {
		timeout = *raw.timeout
	} else if tp := act.parentPolicy; tp != nil && tp.Spec.Timeout != nil {
		timeout = tp.Spec.Timeout.Duration
	}
	if kind == Proxy {
		ra.Timeout = durationpb.New(timeout)
	} else if timeout > 0 {
		// gRPC reads max_stream_duration, not timeout.
		ra.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(timeout)}
	}
	ra.RetryPolicy = retryPolicy(raw, act.parentPolicy, kind)
	ra.HashPolicy = hashPolicies(act.backends)
	if kind == Proxy {
		// gRPC does not mirror; leaving the policies out also keeps the
		// mirror clusters out of what a proxyless client subscribes to.
		for _, mr := range act.mirrors {
			mp := &routev3.RouteAction_RequestMirrorPolicy{Cluster: mr.cluster}
			if mr.ppm < 1_000_000 {
				mp.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: mr.ppm, Denominator: typev3.FractionalPercent_MILLION}}
			}
			ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, mp)
		}
	}
	return ra
}

// retryPolicy is the route's retry, else the TrafficPolicy's default, with
// the route's backendRequest timeout as the per-try timeout. gRPC rejects
// a policy with no retries, so proxyless nodes get none then.
func retryPolicy(raw *rawRule, tp *causewayv1alpha1.TrafficPolicy, kind NodeKind) *routev3.RetryPolicy {
	var rp *routev3.RetryPolicy
	switch {
	case raw.retry != nil:
		rp = &routev3.RetryPolicy{RetryOn: routeRetryOn}
		if len(raw.retry.codes) > 0 {
			rp.RetryOn += ",retriable-status-codes"
			rp.RetriableStatusCodes = slices.Clone(raw.retry.codes)
		}
		if raw.retry.attempts != nil {
			rp.NumRetries = wrapperspb.UInt32(uint32(*raw.retry.attempts))
		}
		if raw.retry.backoff != nil {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(*raw.retry.backoff)}
		}
	case tp != nil && tp.Spec.Retries != nil:
		r := tp.Spec.Retries
		on := defaultRetryOn
		if len(r.RetryOn) > 0 {
			names := make([]string, 0, len(r.RetryOn))
			for _, o := range r.RetryOn {
				names = append(names, string(o))
			}
			slices.Sort(names)
			on = strings.Join(slices.Compact(names), ",")
		}
		rp = &routev3.RetryPolicy{RetryOn: on}
		if r.Attempts != nil {
			rp.NumRetries = wrapperspb.UInt32(uint32(*r.Attempts))
		}
		if r.PerTryTimeout != nil {
			rp.PerTryTimeout = durationpb.New(r.PerTryTimeout.Duration)
		}
	}
	if bt := raw.backendTimeout; bt != nil && *bt > 0 {
		if rp == nil {
			rp = &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)}
		}
		rp.PerTryTimeout = durationpb.New(*bt)
	}
	if kind == Proxyless && rp != nil && rp.NumRetries != nil && rp.NumRetries.Value == 0 {
		return nil
	}
	return rp
}

// hashPolicies are the consistent-hash keys of the backends' policies,
// without duplicates, in backend order.
func hashPolicies(bs []resolvedBackend) []*routev3.RouteAction_HashPolicy {
	var out []*routev3.RouteAction_HashPolicy
	for _, b := range bs {
		if b.policy == nil || b.policy.Spec.LoadBalancer == nil || b.policy.Spec.LoadBalancer.ConsistentHash == nil {
			continue
		}
		h := b.policy.Spec.LoadBalancer.ConsistentHash
		hp := &routev3.RouteAction_HashPolicy{}
		switch {
		case h.Header != nil:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(string(h.Header.Name))}}
		case h.Cookie != nil:
			c := &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie.Name, Path: h.Cookie.Path}
			if h.Cookie.TTL != nil {
				c.Ttl = durationpb.New(h.Cookie.TTL.Duration)
			}
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}
		case h.SourceIP:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		default:
			continue
		}
		if !slices.ContainsFunc(out, func(o *routev3.RouteAction_HashPolicy) bool { return proto.Equal(o, hp) }) {
			out = append(out, hp)
		}
	}
	return out
}

// ---- virtual hosts and route configurations ----

// domains are the Host header values of a target port. Per-service route
// configurations have every form; the explicit route configuration, which
// holds every service, only the port-qualified ones (and the bare ones for
// port 80, which clients leave out), and no short names, which are
// ambiguous across namespaces. A ServiceImport has its clusterset.local
// host and addresses only: <name>.<ns> and <name>.<ns>.svc name the
// cluster-local Service.
func domains(tg *target, p *targetPort, explicit bool) []string {
	names := []string{tg.host}
	if tg.key.kind == kindService {
		nn := tg.key.name + "." + tg.key.namespace
		names = append(names, nn, nn+".svc")
		if !explicit {
			names = append(names, tg.key.name)
		}
	}
	port := itoa(p.number)
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, n := range names {
		if !explicit || p.number == 80 {
			add(n)
		}
		add(n + ":" + port)
	}
	for _, vip := range tg.vips {
		if !explicit || p.number == 80 {
			add(hostOnly(vip))
		}
		add(hostPort(vip, p.number))
	}
	return out
}

// virtualHost renders the virtual host of a target port.
func (t *translator) virtualHost(tg *target, p *targetPort, kind NodeKind, explicit bool) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{
		Name:    xdsconv.RouteName(tg.host, p.number),
		Domains: domains(tg, p, explicit),
		Routes:  t.routes(tg, p, kind),
	}
	if f := faultConfig(tg.policy); f != nil {
		vh.TypedPerFilterConfig = map[string]*anypb.Any{wellknown.Fault: f}
	}
	return vh
}

// faultConfig is the fault filter's per-route configuration for a
// TrafficPolicy's faultInjection, or nil.
func faultConfig(tp *causewayv1alpha1.TrafficPolicy) *anypb.Any {
	if tp == nil || tp.Spec.FaultInjection == nil {
		return nil
	}
	fi := tp.Spec.FaultInjection
	f := &faultv3.HTTPFault{}
	if d := fi.Delay; d != nil {
		ppm, _ := d.Percentage.PartsPerMillion() // validated
		f.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.FixedDelay.Duration)},
			Percentage:         &typev3.FractionalPercent{Numerator: ppm, Denominator: typev3.FractionalPercent_MILLION},
		}
	}
	if a := fi.Abort; a != nil {
		ppm, _ := a.Percentage.PartsPerMillion()
		f.Abort = &faultv3.FaultAbort{Percentage: &typev3.FractionalPercent{Numerator: ppm, Denominator: typev3.FractionalPercent_MILLION}}
		if a.HTTPStatus != nil {
			f.Abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(*a.HTTPStatus)}
		} else if a.GRPCStatus != nil {
			f.Abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(*a.GRPCStatus)}
		}
	}
	return mustAny(f)
}

// proxyRoutes renders the route configurations of proxies: one per HTTP
// port of every target with an address (the listeners on those addresses
// use them), and the explicit route configuration with every HTTP port.
func (t *translator) proxyRoutes() []cachetypes.Resource {
	var out []cachetypes.Resource
	explicit := &routev3.RouteConfiguration{Name: xdsconv.ExplicitHTTPListener}
	seen := map[string]bool{}
	for _, tg := range t.targets {
		for _, p := range tg.ports {
			if !p.protocol.IsHTTP() {
				continue
			}
			if len(tg.vips) > 0 {
				out = append(out, &routev3.RouteConfiguration{
					Name:         xdsconv.RouteName(tg.host, p.number),
					VirtualHosts: []*routev3.VirtualHost{t.virtualHost(tg, p, Proxy, false)},
				})
			}
			vh := t.virtualHost(tg, p, Proxy, true)
			// Domains must be unique across a route configuration.
			vh.Domains = slices.DeleteFunc(vh.Domains, func(d string) bool {
				dup := seen[d]
				seen[d] = true
				return dup
			})
			if len(vh.Domains) > 0 {
				explicit.VirtualHosts = append(explicit.VirtualHosts, vh)
			}
		}
	}
	return append(out, explicit)
}

// ---- listeners ----

// httpFilters are an HCM's filters: the fault filter (optional, so a
// client without it ignores it) when some route injects faults, then the
// router.
func httpFilters(fault bool) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if fault {
		out = append(out, &hcmv3.HttpFilter{Name: wellknown.Fault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}, IsOptional: true})
	}
	return append(out, &hcmv3.HttpFilter{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}})
}

// rdsHCM is an HCM network filter that takes its routes by RDS over ADS.
func rdsHCM(statPrefix, routeName string, websocket, fault bool) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeName,
		}},
		HttpFilters: httpFilters(fault),
	}
	if websocket {
		hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	}
	return &listenerv3.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
}

// tcpProxy is a tcp_proxy network filter to a cluster. A consistent hash
// on the source IP is the only key a TCP connection has; header and cookie
// keys leave a hashing cluster without one (connections spread at random).
func tcpProxy(statPrefix, cluster string, tp *causewayv1alpha1.TrafficPolicy) *listenerv3.Filter {
	cfg := &tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	}
	if tp != nil && tp.Spec.LoadBalancer != nil && tp.Spec.LoadBalancer.ConsistentHash != nil && tp.Spec.LoadBalancer.ConsistentHash.SourceIP {
		cfg.HashPolicy = []*typev3.HashPolicy{{PolicySpecifier: &typev3.HashPolicy_SourceIp_{SourceIp: &typev3.HashPolicy_SourceIp{}}}}
	}
	return &listenerv3.Filter{Name: wellknown.TCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// proxyListeners renders a proxy's listeners: one per service address and
// port (bind_to_port false: the virtual outbound listener hands them their
// connections), the virtual outbound listener and the explicit HTTP
// listener.
func (t *translator) proxyListeners() []cachetypes.Resource {
	var out []cachetypes.Resource
	seen := map[string]bool{}
	anyFault := false
	for _, tg := range t.targets {
		fault := faultConfig(tg.policy) != nil
		for _, p := range tg.ports {
			anyFault = anyFault || (fault && p.protocol.IsHTTP())
			for _, vip := range tg.vips {
				name := xdsconv.ListenerName(vip.String(), p.number)
				if seen[name] {
					continue // two services claiming one address: first by host wins
				}
				seen[name] = true
				var f *listenerv3.Filter
				if p.protocol.IsHTTP() {
					f = rdsHCM("outbound_"+name, xdsconv.RouteName(tg.host, p.number), p.protocol == xdsconv.ProtocolHTTP, fault)
				} else {
					f = tcpProxy("outbound_"+name, p.cluster, tg.policy)
				}
				out = append(out, &listenerv3.Listener{
					Name:             name,
					Address:          socketAddress(vip.String(), uint32(p.number)),
					BindToPort:       wrapperspb.Bool(false),
					TrafficDirection: corev3.TrafficDirection_OUTBOUND,
					FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{f}}},
				})
			}
		}
	}
	out = append(out, &listenerv3.Listener{
		Name:             xdsconv.VirtualOutboundListener,
		Address:          socketAddress("0.0.0.0", xdsconv.VirtualOutboundPort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		DefaultFilterChain: &listenerv3.FilterChain{Filters: []*listenerv3.Filter{
			tcpProxy(xdsconv.PassthroughCluster, xdsconv.PassthroughCluster, nil),
		}},
	}, &listenerv3.Listener{
		Name:             xdsconv.ExplicitHTTPListener,
		Address:          socketAddress(explicitHTTPAddress, explicitHTTPPort),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
			rdsHCM(xdsconv.ExplicitHTTPListener, xdsconv.ExplicitHTTPListener, true, anyFault),
		}}},
	})
	return out
}

// proxylessListeners renders the API listeners gRPC asks for when it
// resolves xds:///<host>:<port>: one named after the host and port of
// every HTTP port, and for Services one more named <name>.<namespace>:<port>.
//
// The route configuration is inline, not by RDS: go-control-plane's
// snapshot consistency check does not look into API listeners, so a
// snapshot with RDS resources only API listeners use is inconsistent, and
// its ADS cache would hold them back; inline routes also spare gRPC a
// round trip.
func (t *translator) proxylessListeners() []cachetypes.Resource {
	var out []cachetypes.Resource
	for _, tg := range t.targets {
		fault := faultConfig(tg.policy) != nil
		for _, p := range tg.ports {
			if !p.protocol.IsHTTP() {
				continue
			}
			rc := &routev3.RouteConfiguration{
				Name:         xdsconv.RouteName(tg.host, p.number),
				VirtualHosts: []*routev3.VirtualHost{t.virtualHost(tg, p, Proxyless, false)},
			}
			api := mustAny(&hcmv3.HttpConnectionManager{
				StatPrefix:     rc.Name,
				RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
				HttpFilters:    httpFilters(fault),
			})
			names := []string{xdsconv.RouteName(tg.host, p.number)}
			if tg.key.kind == kindService {
				names = append(names, tg.key.name+"."+tg.key.namespace+":"+itoa(p.number))
			}
			for _, n := range names {
				out = append(out, &listenerv3.Listener{Name: n, ApiListener: &listenerv3.ApiListener{ApiListener: api}})
			}
		}
	}
	return out
}
