package authz

import (
	"net/http"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// gen builds RBAC protos and requests from fuzz bytes. Strings come mostly
// from a small vocabulary, so that rules and requests meet often; every
// rule kind (supported or not) and every odd field value can come out.
type gen struct {
	data  []byte
	depth int
}

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) n(k int) int { return int(g.byte()) % k }

func (g *gen) bool() bool { return g.byte()&1 == 1 }

// count is the length of a list: mostly 1 to 3, sometimes 0 (invalid).
func (g *gen) count() int {
	if g.n(16) == 0 {
		return 0
	}
	return 1 + g.n(3)
}

// kind picks one of n kinds; values past n (half of the time) pick one of
// the common kinds, so that most configurations are valid.
func (g *gen) kind(n int, common ...int) int {
	k := g.n(2 * n)
	if k >= n {
		k = common[k%len(common)]
	}
	return k
}

var vocab = []string{
	"", "/", "/admin", "/admin/", "/api/v1", "GET", "POST", "get", web, cart, evil,
	"spiffe://td/ns/shop/", ".*", ".*/ns/shop/.*", "a(", "[0-9]+", "x", "1,2", "-5",
	"shop.example.com", ".example.com", "CN=web", "jwt_payload", "iss", "groups",
	"admins", "https://issuer.example", "\x00", "\xff", "ÄÖ",
}

func (g *gen) str() string {
	b := g.byte()
	if b&0x80 == 0 {
		return vocab[int(b)%len(vocab)]
	}
	n := int(b & 0x7)
	s := make([]byte, 0, n)
	for range n {
		s = append(s, g.byte())
	}
	return string(s)
}

func (g *gen) deeper() (func(), bool) {
	if g.depth >= 4 {
		return func() {}, false
	}
	g.depth++
	return func() { g.depth-- }, true
}

func (g *gen) stringMatcher() *matcherv3.StringMatcher {
	m := &matcherv3.StringMatcher{IgnoreCase: g.n(4) == 0}
	switch g.kind(8, 0, 2, 3, 5) {
	case 0, 1:
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: g.str()}
	case 2:
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: g.str()}
	case 3:
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: g.str()}
	case 4:
		m.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: g.str()}
	case 5:
		m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: g.str()}}
	case 6:
		m.MatchPattern = &matcherv3.StringMatcher_Custom{Custom: xdsTyped}
	case 7:
		return nil
	}
	return m
}

func (g *gen) header() *routev3.HeaderMatcher {
	names := []string{":method", ":path", ":authority", ":scheme", "x-a", "X-B", "", "host"}
	h := &routev3.HeaderMatcher{Name: names[g.n(len(names))], InvertMatch: g.bool(), TreatMissingHeaderAsEmpty: g.bool()}
	switch g.kind(10, 0, 2) {
	case 0, 1:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: g.stringMatcher()}
	case 2:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: g.bool()}
	case 3:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: int64(int8(g.byte())), End: int64(int8(g.byte()))}}
	case 4:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_ExactMatch{ExactMatch: g.str()} //nolint:staticcheck // deprecated forms are fuzzed too
	case 5:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: g.str()} //nolint:staticcheck // as above
	case 6:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: g.str()}} //nolint:staticcheck // as above
	case 7:
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: g.str()} //nolint:staticcheck // as above
	}
	return h
}

func (g *gen) value() *matcherv3.ValueMatcher {
	done, ok := g.deeper()
	defer done()
	v := &matcherv3.ValueMatcher{}
	switch g.n(9) {
	case 0:
		v.MatchPattern = &matcherv3.ValueMatcher_NullMatch_{NullMatch: &matcherv3.ValueMatcher_NullMatch{}}
	case 1:
		v.MatchPattern = &matcherv3.ValueMatcher_DoubleMatch{DoubleMatch: &matcherv3.DoubleMatcher{MatchPattern: &matcherv3.DoubleMatcher_Exact{Exact: float64(int8(g.byte()))}}}
	case 2:
		v.MatchPattern = &matcherv3.ValueMatcher_DoubleMatch{DoubleMatch: &matcherv3.DoubleMatcher{MatchPattern: &matcherv3.DoubleMatcher_Range{
			Range: &typev3.DoubleRange{Start: float64(int8(g.byte())), End: float64(int8(g.byte()))},
		}}}
	case 3, 4:
		v.MatchPattern = &matcherv3.ValueMatcher_StringMatch{StringMatch: g.stringMatcher()}
	case 5:
		v.MatchPattern = &matcherv3.ValueMatcher_BoolMatch{BoolMatch: g.bool()}
	case 6:
		v.MatchPattern = &matcherv3.ValueMatcher_PresentMatch{PresentMatch: g.bool()}
	case 7:
		if ok {
			v.MatchPattern = &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: g.value()}}}
		}
	case 8:
		if ok {
			or := &matcherv3.OrMatcher{}
			for range 1 + g.count() {
				or.ValueMatchers = append(or.ValueMatchers, g.value())
			}
			v.MatchPattern = &matcherv3.ValueMatcher_OrMatch{OrMatch: or}
		}
	}
	return v
}

func (g *gen) metadata() *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: JWTAuthnFilter, Invert: g.bool()}
	if g.n(16) == 0 {
		m.Filter = g.str()
	}
	for range g.count() {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: g.str()}})
	}
	if g.n(16) != 0 {
		m.Value = g.value()
	}
	return m
}

func (g *gen) permission() *rbacv3.Permission {
	done, ok := g.deeper()
	defer done()
	p := &rbacv3.Permission{}
	k := g.kind(17, 0, 1, 2, 3, 4, 6, 9)
	if !ok && k < 3 {
		k = 3
	}
	switch k {
	case 0:
		p.Rule = &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: g.permissions()}}
	case 1:
		p.Rule = &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: g.permissions()}}
	case 2:
		p.Rule = &rbacv3.Permission_NotRule{NotRule: g.permission()}
	case 3:
		p.Rule = &rbacv3.Permission_Any{Any: g.n(16) != 0}
	case 4, 5:
		p.Rule = &rbacv3.Permission_Header{Header: g.header()}
	case 6, 7:
		p.Rule = &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: g.stringMatcher()}}}
	case 8:
		p.Rule = &rbacv3.Permission_DestinationIp{DestinationIp: g.cidr()}
	case 9:
		p.Rule = &rbacv3.Permission_DestinationPort{DestinationPort: []uint32{80, 8080, 0, 70000}[g.n(4)]}
	case 10:
		p.Rule = &rbacv3.Permission_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: int32(g.byte()) * 64, End: int32(g.byte()) * 64}}
	case 11:
		p.Rule = &rbacv3.Permission_Metadata{Metadata: g.metadata()} //nolint:staticcheck // deprecated metadata is still sent by control planes (Istio)
	case 12:
		p.Rule = &rbacv3.Permission_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{MetadataMatcher: g.metadata(), MetadataSource: rbacv3.MetadataSource(g.n(3))}}
	case 13:
		p.Rule = &rbacv3.Permission_RequestedServerName{RequestedServerName: g.stringMatcher()}
	case 14:
		p.Rule = &rbacv3.Permission_Matcher{Matcher: typed("type.googleapis.com/x.Y")}
	case 15:
		p.Rule = &rbacv3.Permission_UriTemplate{UriTemplate: typed("type.googleapis.com/x.Y")}
	case 16:
		return nil
	}
	return p
}

func (g *gen) permissions() []*rbacv3.Permission {
	var ps []*rbacv3.Permission
	for range g.count() {
		ps = append(ps, g.permission())
	}
	return ps
}

func (g *gen) principal() *rbacv3.Principal {
	done, ok := g.deeper()
	defer done()
	p := &rbacv3.Principal{}
	k := g.kind(16, 0, 1, 2, 3, 4, 7, 9)
	if !ok && k < 3 {
		k = 3
	}
	switch k {
	case 0:
		p.Identifier = &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: g.principals()}}
	case 1:
		p.Identifier = &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: g.principals()}}
	case 2:
		p.Identifier = &rbacv3.Principal_NotId{NotId: g.principal()}
	case 3:
		p.Identifier = &rbacv3.Principal_Any{Any: g.n(16) != 0}
	case 4, 5:
		var name *matcherv3.StringMatcher
		if g.n(4) != 0 {
			name = g.stringMatcher()
		}
		p.Identifier = &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: name}}
	case 6:
		p.Identifier = &rbacv3.Principal_SourceIp{SourceIp: g.cidr()} //nolint:staticcheck // deprecated forms are fuzzed too
	case 7:
		p.Identifier = &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: g.cidr()}
	case 8:
		p.Identifier = &rbacv3.Principal_RemoteIp{RemoteIp: g.cidr()}
	case 9:
		p.Identifier = &rbacv3.Principal_Header{Header: g.header()}
	case 10:
		p.Identifier = &rbacv3.Principal_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: g.stringMatcher()}}}
	case 11:
		p.Identifier = &rbacv3.Principal_Metadata{Metadata: g.metadata()} //nolint:staticcheck // deprecated metadata is still sent by control planes (Istio)
	case 12:
		p.Identifier = &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{Key: "k", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: sExact("v")}}}
	case 13:
		p.Identifier = &rbacv3.Principal_Custom{Custom: typed("type.googleapis.com/x.Y")}
	case 14:
		p.Identifier = &rbacv3.Principal_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{MetadataMatcher: g.metadata()}}
	case 15:
		return nil
	}
	return p
}

func (g *gen) principals() []*rbacv3.Principal {
	var ps []*rbacv3.Principal
	for range g.count() {
		ps = append(ps, g.principal())
	}
	return ps
}

var fuzzAddrs = []string{"10.1.0.7", "10.2.0.9", "::ffff:10.2.0.9", "fd00::1", "0.0.0.0", "10.0", "fe80::1%eth0", ""}

func (g *gen) cidr() *corev3.CidrRange {
	c := &corev3.CidrRange{AddressPrefix: fuzzAddrs[g.n(len(fuzzAddrs))]}
	if g.bool() {
		c.PrefixLen = wrapperspb.UInt32(uint32(g.n(130)))
	}
	return c
}

func (g *gen) rbac() *rbacv3.RBAC {
	cfg := &rbacv3.RBAC{Action: rbacv3.RBAC_Action(g.kind(4, 0, 1, 2))}
	for range g.count() {
		name := g.str()
		if cfg.Policies == nil {
			cfg.Policies = map[string]*rbacv3.Policy{}
		}
		if g.n(32) == 0 {
			cfg.Policies[name] = nil
			continue
		}
		cfg.Policies[name] = &rbacv3.Policy{Permissions: g.permissions(), Principals: g.principals()}
	}
	return cfg
}

func (g *gen) addr() netip.Addr {
	a, _ := netip.ParseAddr(fuzzAddrs[g.n(len(fuzzAddrs))])
	return a
}

func (g *gen) claim() any {
	done, ok := g.deeper()
	defer done()
	switch g.n(8) {
	case 0:
		return nil
	case 1:
		return float64(int8(g.byte()))
	case 2:
		return g.bool()
	case 3:
		return []string{g.str(), g.str()}
	case 4:
		if ok {
			return []any{g.claim(), g.claim()}
		}
	case 5:
		if ok {
			m := map[string]any{}
			for range g.n(3) {
				m[g.str()] = g.claim()
			}
			return m
		}
	case 6:
		return int64(int8(g.byte()))
	}
	return g.str()
}

func (g *gen) request() *Request {
	r := &Request{
		Method:          g.str(),
		Path:            g.str(),
		Query:           g.str(),
		Host:            g.str(),
		DestinationIP:   g.addr(),
		DestinationPort: []uint16{80, 8080, 0, 9000}[g.n(4)],
		SourceIP:        g.addr(),
		TLS:             g.bool(),
		PeerPrincipal:   g.str(),
		PeerSubject:     g.str(),
		ServerName:      g.str(),
	}
	for range g.n(3) {
		r.PeerDNSSANs = append(r.PeerDNSSANs, g.str())
	}
	if n := g.n(4); n > 0 {
		r.Header = http.Header{}
		for range n {
			r.Header.Add([]string{"X-A", "X-B", "Host", "x-a"}[g.n(4)], g.str())
		}
	}
	if g.bool() {
		r.JWTMetadata = map[string]any{g.str(): g.claim(), "jwt_payload": g.claim()}
	}
	return r
}

// FuzzCompile compiles random RBAC configurations and, when they compile,
// evaluates random requests with the three actions. It checks that nothing
// panics, that Compile returns an engine or an error, and that the actions
// agree on which policy matches: ALLOW allows exactly when one matches,
// DENY denies exactly then, LOG always allows, and Evaluate is the
// conjunction of DENY and ALLOW.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 1, 4, 1, 9, 2, 4, 5, 0, 0})
	f.Add([]byte("\x01\x02ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
	f.Add([]byte{3, 3, 6, 6, 2, 1, 7, 5, 5, 5, 9, 9, 11, 11, 11, 0x81, 0x82, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gen{data: data}
		cfg := g.rbac()
		e, err := Compile(cfg)
		if err != nil {
			if e != nil {
				t.Fatalf("Compile returned an engine and %v", err)
			}
			return
		}
		if e == nil {
			t.Fatal("Compile returned neither an engine nor an error")
		}
		engines := map[rbacv3.RBAC_Action]*Engine{}
		for _, a := range []rbacv3.RBAC_Action{rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY, rbacv3.RBAC_LOG} {
			cfg.Action = a
			ea, err := Compile(cfg)
			if err != nil {
				t.Fatalf("Compile with action %v: %v (compiled with %v)", a, err, e.Action())
			}
			engines[a] = ea
		}
		for range 4 {
			r := g.request()
			okA, pA := engines[rbacv3.RBAC_ALLOW].Allowed(r)
			okD, pD := engines[rbacv3.RBAC_DENY].Allowed(r)
			okL, pL := engines[rbacv3.RBAC_LOG].Allowed(r)
			_, emptyName := cfg.Policies[""]
			if pA != pD || pA != pL || okD == okA || !okL ||
				(pA != "" && !okA) || (okA && pA == "" && !emptyName) {
				t.Fatalf("request %+v: ALLOW %v %q, DENY %v %q, LOG %v %q", *r, okA, pA, okD, pD, okL, pL)
			}
			want := okL
			switch e.Action() {
			case rbacv3.RBAC_ALLOW:
				want = okA
			case rbacv3.RBAC_DENY:
				want = okD
			}
			if ok, p := e.Allowed(r); ok != want || p != pA {
				t.Fatalf("engine with action %v: %v %q; want %v %q", e.Action(), ok, p, want, pA)
			}
			if ok, _ := Evaluate(engines[rbacv3.RBAC_DENY], engines[rbacv3.RBAC_ALLOW], r); ok != (okD && okA) {
				t.Fatalf("Evaluate = %v; want %v", ok, okD && okA)
			}
		}
	})
}
