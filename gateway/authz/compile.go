package authz

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// CompileHTTPFilter compiles the configuration of Envoy's RBAC HTTP filter
// (envoy.filters.http.rbac). Its rules are compiled with Compile; absent
// rules mean no enforcement, returned as a nil *Engine (which allows every
// request). shadow_rules and shadow_matcher are validated but otherwise
// ignored: shadow mode only records what the rules would decide. The
// matcher-based form (matcher) is not supported.
func CompileHTTPFilter(f *rbacfilterv3.RBAC) (*Engine, error) {
	if f == nil {
		return nil, errors.New("compile RBAC filter: no configuration")
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("validate RBAC filter: %w", err)
	}
	if f.GetMatcher() != nil {
		// Envoy ignores rules when matcher is set, so rules cannot stand in.
		return nil, fmt.Errorf("compile RBAC filter: matcher: %w", ErrUnsupported)
	}
	if f.GetRules() == nil {
		return nil, nil
	}
	return Compile(f.GetRules())
}

// Compile checks an envoy.config.rbac.v3.RBAC as Envoy would (its proto
// validation rules, then every matcher) and compiles it into an Engine.
// A rule kind or option the engine does not implement fails with an error
// that wraps ErrUnsupported and names it with its place in the
// configuration. audit_logging_options are ignored: they do not change
// decisions.
func Compile(cfg *rbacv3.RBAC) (*Engine, error) {
	if cfg == nil {
		return nil, errors.New("compile RBAC: no configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate RBAC: %w", err)
	}
	switch cfg.GetAction() {
	case rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY, rbacv3.RBAC_LOG:
	default:
		return nil, fmt.Errorf("compile RBAC: action %v: %w", cfg.GetAction(), ErrUnsupported)
	}
	e := &Engine{action: cfg.GetAction()}
	names := make([]string, 0, len(cfg.GetPolicies()))
	for name := range cfg.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := compilePolicy(name, cfg.GetPolicies()[name])
		if err != nil {
			return nil, fmt.Errorf("compile RBAC policy %q: %w", name, err)
		}
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func compilePolicy(name string, p *rbacv3.Policy) (policy, error) {
	out := policy{name: name}
	switch {
	case p == nil:
		return out, errors.New("no permissions and no principals")
	case p.GetCondition() != nil:
		return out, fmt.Errorf("condition (CEL): %w", ErrUnsupported)
	case p.GetCheckedCondition() != nil:
		return out, fmt.Errorf("checked_condition (CEL): %w", ErrUnsupported)
	}
	// cel_config only configures condition, which is absent here.
	for i, perm := range p.GetPermissions() {
		m, err := compilePermission(perm)
		if err != nil {
			return out, fmt.Errorf("permissions[%d]: %w", i, err)
		}
		out.permissions = append(out.permissions, m)
	}
	for i, prin := range p.GetPrincipals() {
		m, err := compilePrincipal(prin)
		if err != nil {
			return out, fmt.Errorf("principals[%d]: %w", i, err)
		}
		out.principals = append(out.principals, m)
	}
	return out, nil
}

func compilePermission(p *rbacv3.Permission) (matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_AndRules:
		ms, err := compilePermissions("and_rules", r.AndRules.GetRules())
		return andMatcher(ms), err
	case *rbacv3.Permission_OrRules:
		ms, err := compilePermissions("or_rules", r.OrRules.GetRules())
		return orMatcher(ms), err
	case *rbacv3.Permission_NotRule:
		m, err := compilePermission(r.NotRule)
		if err != nil {
			return nil, fmt.Errorf("not_rule: %w", err)
		}
		return notMatcher{m}, nil
	case *rbacv3.Permission_Any:
		return anyMatcher{}, nil
	case *rbacv3.Permission_Header:
		m, err := compileHeader(r.Header)
		return leaf("header", m, err)
	case *rbacv3.Permission_UrlPath:
		m, err := compilePath(r.UrlPath)
		return leaf("url_path", m, err)
	case *rbacv3.Permission_DestinationIp:
		m, err := compileIP(r.DestinationIp, false)
		return leaf("destination_ip", m, err)
	case *rbacv3.Permission_DestinationPort:
		return portMatcher(r.DestinationPort), nil
	case *rbacv3.Permission_DestinationPortRange:
		return portRangeMatcher{start: r.DestinationPortRange.GetStart(), end: r.DestinationPortRange.GetEnd()}, nil
	case *rbacv3.Permission_Metadata:
		m, err := compileMetadata(r.Metadata) //nolint:staticcheck // deprecated metadata is still sent by control planes (Istio)
		return leaf("metadata", m, err)
	case *rbacv3.Permission_SourcedMetadata:
		m, err := compileSourcedMetadata(r.SourcedMetadata)
		return leaf("sourced_metadata", m, err)
	case *rbacv3.Permission_RequestedServerName:
		s, err := match.CompileString(r.RequestedServerName)
		if err != nil {
			return nil, fmt.Errorf("requested_server_name: %w", err)
		}
		return &serverNameMatcher{s}, nil
	case *rbacv3.Permission_Matcher:
		return nil, fmt.Errorf("permission matcher (%s): %w", r.Matcher.GetTypedConfig().GetTypeUrl(), ErrUnsupported)
	case *rbacv3.Permission_UriTemplate:
		return nil, fmt.Errorf("permission uri_template (%s): %w", r.UriTemplate.GetTypedConfig().GetTypeUrl(), ErrUnsupported)
	case nil:
		return nil, errors.New("permission without a rule")
	default:
		return nil, fmt.Errorf("permission rule %T: %w", r, ErrUnsupported)
	}
}

func compilePermissions(field string, ps []*rbacv3.Permission) ([]matcher, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: empty set", field)
	}
	ms := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePermission(p)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func compilePrincipal(p *rbacv3.Principal) (matcher, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_AndIds:
		ms, err := compilePrincipals("and_ids", id.AndIds.GetIds())
		return andMatcher(ms), err
	case *rbacv3.Principal_OrIds:
		ms, err := compilePrincipals("or_ids", id.OrIds.GetIds())
		return orMatcher(ms), err
	case *rbacv3.Principal_NotId:
		m, err := compilePrincipal(id.NotId)
		if err != nil {
			return nil, fmt.Errorf("not_id: %w", err)
		}
		return notMatcher{m}, nil
	case *rbacv3.Principal_Any:
		return anyMatcher{}, nil
	case *rbacv3.Principal_Authenticated_:
		m := &authenticatedMatcher{}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			s, err := match.CompileString(pn)
			if err != nil {
				return nil, fmt.Errorf("authenticated.principal_name: %w", err)
			}
			m.name = &s
		}
		return m, nil
	case *rbacv3.Principal_SourceIp:
		m, err := compileIP(id.SourceIp, true) //nolint:staticcheck // deprecated source_ip is still sent by control planes
		return leaf("source_ip", m, err)
	case *rbacv3.Principal_DirectRemoteIp:
		m, err := compileIP(id.DirectRemoteIp, true)
		return leaf("direct_remote_ip", m, err)
	case *rbacv3.Principal_RemoteIp:
		m, err := compileIP(id.RemoteIp, true)
		return leaf("remote_ip", m, err)
	case *rbacv3.Principal_Header:
		m, err := compileHeader(id.Header)
		return leaf("header", m, err)
	case *rbacv3.Principal_UrlPath:
		m, err := compilePath(id.UrlPath)
		return leaf("url_path", m, err)
	case *rbacv3.Principal_Metadata:
		m, err := compileMetadata(id.Metadata) //nolint:staticcheck // deprecated metadata is still sent by control planes (Istio)
		return leaf("metadata", m, err)
	case *rbacv3.Principal_SourcedMetadata:
		m, err := compileSourcedMetadata(id.SourcedMetadata)
		return leaf("sourced_metadata", m, err)
	case *rbacv3.Principal_FilterState:
		m, err := compileFilterState(id.FilterState)
		return leaf("filter_state", m, err)
	case *rbacv3.Principal_Custom:
		return nil, fmt.Errorf("principal custom (%s): %w", id.Custom.GetTypedConfig().GetTypeUrl(), ErrUnsupported)
	case nil:
		return nil, errors.New("principal without an identifier")
	default:
		return nil, fmt.Errorf("principal identifier %T: %w", id, ErrUnsupported)
	}
}

func compilePrincipals(field string, ps []*rbacv3.Principal) ([]matcher, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: empty set", field)
	}
	ms := make([]matcher, 0, len(ps))
	for i, p := range ps {
		m, err := compilePrincipal(p)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// compileFilterState compiles a filter_state principal: a string match on
// a string object the proxy put into the connection's filter state
// (Request.FilterState). Other kinds of filter state matchers are not
// implemented.
func compileFilterState(f *matcherv3.FilterStateMatcher) (matcher, error) {
	sm, ok := f.GetMatcher().(*matcherv3.FilterStateMatcher_StringMatch)
	if !ok {
		return nil, fmt.Errorf("key %q: matcher %T: %w", f.GetKey(), f.GetMatcher(), ErrUnsupported)
	}
	s, err := match.CompileString(sm.StringMatch)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", f.GetKey(), err)
	}
	return &filterStateMatcher{key: f.GetKey(), s: s}, nil
}

// leaf names the field of a leaf rule in its error.
func leaf(field string, m matcher, err error) (matcher, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return m, nil
}

func compilePath(p *matcherv3.PathMatcher) (*pathMatcher, error) {
	switch r := p.GetRule().(type) {
	case *matcherv3.PathMatcher_Path:
		s, err := match.CompileString(r.Path)
		if err != nil {
			return nil, err
		}
		return &pathMatcher{s}, nil
	case nil:
		return nil, errors.New("path matcher without a rule")
	default:
		return nil, fmt.Errorf("path matcher %T: %w", r, ErrUnsupported)
	}
}

func compileIP(c *corev3.CidrRange, source bool) (ipMatcher, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return ipMatcher{}, fmt.Errorf("address_prefix: %w", err)
	}
	if a.Zone() != "" {
		return ipMatcher{}, fmt.Errorf("address_prefix %q: zones are not allowed", c.GetAddressPrefix())
	}
	bits := c.GetPrefixLen().GetValue() // absent: 0, every address of the family
	if bits > uint32(a.BitLen()) {
		return ipMatcher{}, fmt.Errorf("prefix_len %d is longer than the %d bits of %s", bits, a.BitLen(), a)
	}
	if a.Is4In6() && bits >= 96 {
		// Requests' addresses are unmapped; so is an IPv4-mapped range.
		a, bits = a.Unmap(), bits-96
	}
	return ipMatcher{prefix: netip.PrefixFrom(a, int(bits)).Masked(), source: source}, nil
}

func compileHeader(h *routev3.HeaderMatcher) (*headerMatcher, error) {
	if h.GetName() == "" {
		return nil, errors.New("no header name")
	}
	m := &headerMatcher{
		invert:         h.GetInvertMatch(),
		missingAsEmpty: h.GetTreatMissingHeaderAsEmpty(),
	}
	name := strings.ToLower(h.GetName())
	switch {
	case name == ":method":
		m.pseudo = pseudoMethod
	case name == ":path":
		m.pseudo = pseudoPath
	case name == ":authority":
		m.pseudo = pseudoAuthority
	case strings.HasPrefix(name, ":"):
		return nil, fmt.Errorf("pseudo-header %s: %w", name, ErrUnsupported)
	default:
		m.key = http.CanonicalHeaderKey(name)
	}
	s, ok, err := match.HeaderValue(h)
	if err != nil {
		return nil, err
	}
	if ok {
		m.kind, m.s = hdrString, s
		return m, nil
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_RangeMatch:
		m.kind, m.start, m.end = hdrRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_PresentMatch:
		m.kind, m.present = hdrPresent, s.PresentMatch
	case nil:
		m.kind, m.present = hdrPresent, true // Envoy's default: present_match
	default:
		return nil, fmt.Errorf("header matcher %T: %w", s, ErrUnsupported)
	}
	return m, nil
}

func compileSourcedMetadata(s *rbacv3.SourcedMetadata) (*metadataMatcher, error) {
	if src := s.GetMetadataSource(); src != rbacv3.MetadataSource_DYNAMIC {
		return nil, fmt.Errorf("metadata_source %v: %w", src, ErrUnsupported)
	}
	return compileMetadata(s.GetMetadataMatcher())
}

func compileMetadata(md *matcherv3.MetadataMatcher) (*metadataMatcher, error) {
	if md == nil {
		return nil, errors.New("no metadata matcher")
	}
	if md.GetFilter() != JWTAuthnFilter {
		return nil, fmt.Errorf("filter %q (only %s is available): %w", md.GetFilter(), JWTAuthnFilter, ErrUnsupported)
	}
	m := &metadataMatcher{invert: md.GetInvert()}
	if len(md.GetPath()) == 0 {
		return nil, errors.New("empty path")
	}
	for i, seg := range md.GetPath() {
		k, ok := seg.GetSegment().(*matcherv3.MetadataMatcher_PathSegment_Key)
		if !ok {
			return nil, fmt.Errorf("path[%d]: not a key: %w", i, ErrUnsupported)
		}
		m.path = append(m.path, k.Key)
	}
	v, err := compileValue(md.GetValue())
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	m.value = v
	return m, nil
}

func compileValue(v *matcherv3.ValueMatcher) (*valueMatcher, error) {
	m := &valueMatcher{}
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		m.kind = valNull
	case *matcherv3.ValueMatcher_DoubleMatch:
		m.kind = valDouble
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			m.exact = d.Exact
		case *matcherv3.DoubleMatcher_Range:
			m.isRange, m.start, m.end = true, d.Range.GetStart(), d.Range.GetEnd()
		default:
			return nil, errors.New("double_match without a pattern")
		}
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := match.CompileString(p.StringMatch)
		if err != nil {
			return nil, fmt.Errorf("string_match: %w", err)
		}
		m.kind, m.s = valString, s
	case *matcherv3.ValueMatcher_BoolMatch:
		m.kind, m.b = valBool, p.BoolMatch
	case *matcherv3.ValueMatcher_PresentMatch:
		m.kind, m.b = valPresent, p.PresentMatch
	case *matcherv3.ValueMatcher_ListMatch:
		one, ok := p.ListMatch.GetMatchPattern().(*matcherv3.ListMatcher_OneOf)
		if !ok {
			return nil, errors.New("list_match without one_of")
		}
		o, err := compileValue(one.OneOf)
		if err != nil {
			return nil, fmt.Errorf("list_match.one_of: %w", err)
		}
		m.kind, m.oneOf = valList, o
	case *matcherv3.ValueMatcher_OrMatch:
		m.kind = valOr
		if len(p.OrMatch.GetValueMatchers()) < 2 {
			return nil, errors.New("or_match needs at least two value matchers")
		}
		for i, x := range p.OrMatch.GetValueMatchers() {
			o, err := compileValue(x)
			if err != nil {
				return nil, fmt.Errorf("or_match[%d]: %w", i, err)
			}
			m.or = append(m.or, o)
		}
	case nil:
		return nil, errors.New("value matcher without a pattern")
	default:
		return nil, fmt.Errorf("value matcher %T: %w", p, ErrUnsupported)
	}
	return m, nil
}
