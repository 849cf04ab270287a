package authz

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// decision is one request and what the engine must answer.
type decision struct {
	req     *Request
	allowed bool
	policy  string
}

// with returns a copy of r changed by fs.
func with(r *Request, fs ...func(*Request)) *Request {
	c := *r
	for _, f := range fs {
		f(&c)
	}
	return &c
}

func method(m string) func(*Request) { return func(r *Request) { r.Method = m } }
func path(p string) func(*Request)   { return func(r *Request) { r.Path = p } }
func host(h string) func(*Request)   { return func(r *Request) { r.Host = h } }
func port(p uint16) func(*Request)   { return func(r *Request) { r.DestinationPort = p } }
func header(kv ...string) func(*Request) {
	return func(r *Request) {
		r.Header = http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Add(kv[i], kv[i+1])
		}
	}
}

func plaintext(r *Request) { r.TLS, r.PeerPrincipal = false, "" }

const (
	web   = "spiffe://td/ns/shop/sa/web"
	cart  = "spiffe://td/ns/shop/sa/cart"
	other = "spiffe://td/ns/shopping/sa/web"
	evil  = "spiffe://td/ns/evil/sa/shop"
)

func TestAllowed(t *testing.T) {
	tests := map[string]struct {
		cfg       *rbacv3.RBAC
		decisions []decision
	}{
		"principal by exact SPIFFE ID": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"web": pol(perms(pAny()), ids(idAuth(sExact(web))))}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "web"},
				{req: mtls(cart)},
				{req: mtls(web + "/x")},
				{req: with(mtls(web), plaintext)},
			},
		},
		"principals by prefix": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"shop": pol(perms(pAny()), ids(idAuth(sPrefix("spiffe://td/ns/shop/"))))}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "shop"},
				{req: mtls(cart), allowed: true, policy: "shop"},
				{req: mtls(other)},
				{req: mtls(evil)},
				{req: mtls("spiffe://td2/ns/shop/sa/web")},
			},
		},
		"namespace by principal_name regex (Istio form)": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"ns": pol(perms(pAny()), ids(idAuth(sRegex(".*/ns/shop/.*"))))}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "ns"},
				{req: mtls(other)},
				{req: mtls(evil)},
				{req: mtls("spiffe://td/ns/shop")},
				{req: with(mtls(""), plaintext)},
			},
		},
		"principal_name: URI SAN, then DNS SANs, then subject": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"dns":     pol(perms(pAny()), ids(idAuth(sExact("web.shop.svc")))),
				"subject": pol(perms(pAny()), ids(idAuth(sExact("CN=web,O=shop")))),
			}),
			decisions: []decision{
				{req: with(mtls(web), func(r *Request) { r.PeerDNSSANs = []string{"a.example", "web.shop.svc"} }), allowed: true, policy: "dns"},
				{req: with(mtls(""), func(r *Request) { r.PeerSubject = "CN=web,O=shop" }), allowed: true, policy: "subject"},
				{req: with(mtls(""), plaintext, func(r *Request) { r.PeerSubject = "CN=web,O=shop" }), allowed: true, policy: "subject"},
				{req: mtls(web)},
			},
		},
		"filter state string (the peer's cluster)": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"east": pol(perms(pAny()), ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{
				FilterState: &matcherv3.FilterStateMatcher{Key: "causeway.dev/peer-cluster", Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: sExact("east")}},
			}}))}),
			decisions: []decision{
				{req: with(mtls(web), func(r *Request) { r.FilterState = map[string]string{"causeway.dev/peer-cluster": "east"} }), allowed: true, policy: "east"},
				{req: with(mtls(web), func(r *Request) { r.FilterState = map[string]string{"causeway.dev/peer-cluster": "west"} })},
				{req: with(mtls(web), func(r *Request) { r.FilterState = map[string]string{"other": "east"} })},
				{req: mtls(web)},
			},
		},
		"authenticated without principal_name: any TLS peer": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"tls": pol(perms(pAny()), ids(idAuth(nil)))}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "tls"},
				{req: mtls(""), allowed: true, policy: "tls"},
				{req: with(mtls(web), plaintext)},
			},
		},
		"ports": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"8080":      pol(perms(pPort(8080)), ids(idAny())),
				"9000-9099": pol(perms(pPortRange(9000, 9100)), ids(idAny())),
			}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "8080"},
				{req: with(mtls(web), port(8081))},
				{req: with(mtls(web), port(9000)), allowed: true, policy: "9000-9099"},
				{req: with(mtls(web), port(9099)), allowed: true, policy: "9000-9099"},
				{req: with(mtls(web), port(9100))},
				{req: with(mtls(web), port(0))},
			},
		},
		"methods": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"read": pol(perms(pMethod("GET"), pMethod("HEAD")), ids(idAny()))}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "read"},
				{req: with(mtls(web), method("HEAD")), allowed: true, policy: "read"},
				{req: with(mtls(web), method("POST"))},
				{req: with(mtls(web), method("get"))},
			},
		},
		"paths exact and prefix": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"exact":  pol(perms(pPath(sExact("/healthz"))), ids(idAny())),
				"prefix": pol(perms(pPath(sPrefix("/api/"))), ids(idAny())),
				"folded": pol(perms(pPath(fold(sExact("/Docs")))), ids(idAny())),
			}),
			decisions: []decision{
				{req: with(mtls(web), path("/healthz")), allowed: true, policy: "exact"},
				{req: with(mtls(web), path("/healthz/")), allowed: false},
				{req: with(mtls(web), path("/api/v1")), allowed: true, policy: "prefix"},
				{req: with(mtls(web), path("/api")), allowed: false},
				{req: with(mtls(web), path("/API/v1")), allowed: false},
				{req: with(mtls(web), path("/dOCS")), allowed: true, policy: "folded"},
				// url_path ignores a query left in Path, as Envoy's PathMatcher.
				{req: with(mtls(web), path("/healthz?full=1")), allowed: true, policy: "exact"},
				{req: with(mtls(web), path(""))},
			},
		},
		"hosts": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"exact":    pol(perms(pHost(fold(sExact("shop.example.com")))), ids(idAny())),
				"wildcard": pol(perms(pHost(fold(sSuffix(".internal.example")))), ids(idAny())),
			}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "exact"},
				{req: with(mtls(web), host("SHOP.example.com")), allowed: true, policy: "exact"},
				{req: with(mtls(web), host("shop.example.com:8080"))},
				{req: with(mtls(web), host("a.internal.example")), allowed: true, policy: "wildcard"},
				{req: with(mtls(web), host("internal.example"))},
				{req: with(mtls(web), host(""))},
			},
		},
		"headers": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"a-exact":    pol(perms(pHeader(hString("x-tier", sExact("gold")))), ids(idAny())),
				"b-prefix":   pol(perms(pHeader(hString("X-Version", sPrefix("v2.")))), ids(idAny())),
				"c-contains": pol(perms(pHeader(hString("x-tags", fold(sContains("BETA"))))), ids(idAny())),
				"d-regex":    pol(perms(pHeader(hString("x-id", sRegex("[0-9]{3}")))), ids(idAny())),
				"e-range":    pol(perms(pHeader(hRange("x-shard", -10, 10))), ids(idAny())),
				"f-present":  pol(perms(pHeader(hPresent("x-canary", true))), ids(idAny())),
			}),
			decisions: []decision{
				{req: with(mtls(web), header("X-Tier", "gold")), allowed: true, policy: "a-exact"},
				{req: with(mtls(web), header("X-Tier", "Gold"))},
				{req: with(mtls(web), header("X-Version", "v2.1")), allowed: true, policy: "b-prefix"},
				{req: with(mtls(web), header("X-Tags", "a,beta,c")), allowed: true, policy: "c-contains"},
				{req: with(mtls(web), header("X-Tags", "a", "X-Tags", "Beta")), allowed: true, policy: "c-contains"},
				{req: with(mtls(web), header("X-Id", "123")), allowed: true, policy: "d-regex"},
				{req: with(mtls(web), header("X-Id", "1234"))},
				{req: with(mtls(web), header("X-Shard", "-10")), allowed: true, policy: "e-range"},
				{req: with(mtls(web), header("X-Shard", "+9")), allowed: true, policy: "e-range"},
				{req: with(mtls(web), header("X-Shard", "10"))},
				{req: with(mtls(web), header("X-Shard", "1.5"))},
				{req: with(mtls(web), header("X-Shard", "99999999999999999999"))},
				{req: with(mtls(web), header("X-Canary", "")), allowed: true, policy: "f-present"},
				{req: with(mtls(web), header("X-Other", "gold"))},
				{req: mtls(web)},
			},
		},
		"multi-valued headers are joined with ','": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"joined": pol(perms(pHeader(hString("x-a", sExact("1,2")))), ids(idAny()))}),
			decisions: []decision{
				{req: with(mtls(web), header("X-A", "1", "X-A", "2")), allowed: true, policy: "joined"},
				{req: with(mtls(web), header("X-A", "1"))},
			},
		},
		"inverted header and missing headers": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"a-not-admin":    pol(perms(pHeader(inverted(hString("x-role", sExact("admin"))))), ids(idAny())),
				"b-absent":       pol(perms(pHeader(hPresent("x-debug", false))), ids(idAny())),
				"c-empty-or-not": pol(perms(pHeader(missingAsEmpty(hString("x-lang", sExact(""))))), ids(idAny())),
			}),
			decisions: []decision{
				// Missing x-role: the inverted matcher does not match (Envoy), but x-debug is absent.
				{req: with(mtls(web), header("X-Debug", "1", "X-Lang", "en")), allowed: false},
				{req: with(mtls(web), header("X-Debug", "1", "X-Lang", "en", "X-Role", "user")), allowed: true, policy: "a-not-admin"},
				{req: with(mtls(web), header("X-Debug", "1", "X-Lang", "en", "X-Role", "admin")), allowed: false},
				{req: with(mtls(web), header("X-Lang", "en")), allowed: true, policy: "b-absent"},
				{req: with(mtls(web), header("X-Debug", "1")), allowed: true, policy: "c-empty-or-not"},
			},
		},
		"present_match with invert_match": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"a-no-trace": pol(perms(pHeader(inverted(hPresent("x-trace", true)))), ids(idAuth(sExact(web)))),
				"b-span":     pol(perms(pHeader(inverted(hPresent("x-span", false)))), ids(idAuth(sExact(cart)))),
			}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "a-no-trace"},
				{req: with(mtls(web), header("X-Trace", "1"))},
				{req: mtls(cart)},
				{req: with(mtls(cart), header("X-Span", "")), allowed: true, policy: "b-span"},
			},
		},
		"pseudo-headers": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"path": pol(perms(pHeader(hString(":path", sExact("/search?q=1")))), ids(idAny())),
			}),
			decisions: []decision{
				{req: with(mtls(web), path("/search"), func(r *Request) { r.Query = "q=1" }), allowed: true, policy: "path"},
				{req: with(mtls(web), path("/search"))},
			},
		},
		"not_rule": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"not-admin": pol(perms(pNot(pPath(sPrefix("/admin/")))), ids(idNot(idAuth(sExact(evil)))))}),
			decisions: []decision{
				{req: with(mtls(web), path("/shop")), allowed: true, policy: "not-admin"},
				{req: with(mtls(web), path("/admin/keys"))},
				{req: with(mtls(evil), path("/shop"))},
				{req: with(mtls(""), plaintext), allowed: true, policy: "not-admin"},
			},
		},
		"and/or nesting": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{"nested": pol(
				perms(pAnd(pOr(pPort(80), pPort(8080)), pNot(pMethod("DELETE")), pOr(pPath(sPrefix("/api/")), pPath(sExact("/"))))),
				ids(idAnd(idAuth(sPrefix("spiffe://td/ns/shop/")), idOr(idAuth(sSuffix("/sa/web")), idAuth(sSuffix("/sa/cart"))))),
			)}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "nested"},
				{req: with(mtls(cart), port(80), path("/api/x")), allowed: true, policy: "nested"},
				{req: with(mtls(web), port(81))},
				{req: with(mtls(web), method("DELETE"))},
				{req: with(mtls(web), path("/other"))},
				{req: mtls("spiffe://td/ns/shop/sa/admin")},
				{req: mtls(other)},
			},
		},
		"policies are tried in name order": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"b": pol(perms(pAny()), ids(idAny())),
				"a": pol(perms(pPort(8080)), ids(idAny())),
				"c": pol(perms(pAny()), ids(idAny())),
			}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "a"},
				{req: with(mtls(web), port(1)), allowed: true, policy: "b"},
			},
		},
		"ALLOW without policies denies everything": {
			cfg:       allowRBAC(nil),
			decisions: []decision{{req: mtls(web)}, {req: &Request{}}},
		},
		"DENY": {
			cfg: denyRBAC(map[string]*rbacv3.Policy{"no-evil": pol(perms(pAny()), ids(idAuth(sExact(evil))))}),
			decisions: []decision{
				{req: mtls(evil), allowed: false, policy: "no-evil"},
				{req: mtls(web), allowed: true},
			},
		},
		"DENY without policies allows everything": {
			cfg:       denyRBAC(nil),
			decisions: []decision{{req: mtls(web), allowed: true}},
		},
		"LOG allows and reports": {
			cfg: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: map[string]*rbacv3.Policy{"log": pol(perms(pPort(8080)), ids(idAny()))}},
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "log"},
				{req: with(mtls(web), port(1)), allowed: true},
			},
		},
		"IP ranges": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"a-dest":   pol(perms(pDestIP("10.1.0.0", 16)), ids(idDirectIP("10.2.0.0", 24))),
				"b-v6":     pol(perms(pAny()), ids(idSourceIP("fd00::", 8))),
				"c-remote": pol(perms(pAny()), ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("192.168.1.1", 32)}})),
				"d-mapped": pol(perms(pAny()), ids(idDirectIP("::ffff:172.16.0.0", 112))),
			}),
			decisions: []decision{
				{req: mtls(web), allowed: true, policy: "a-dest"},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.MustParseAddr("::ffff:10.2.0.200") }), allowed: true, policy: "a-dest"},
				{req: with(mtls(web), func(r *Request) { r.DestinationIP = netip.MustParseAddr("10.3.0.1") })},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.MustParseAddr("fd12::1%eth0") }), allowed: true, policy: "b-v6"},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.MustParseAddr("192.168.1.1") }), allowed: true, policy: "c-remote"},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.MustParseAddr("172.16.9.9") }), allowed: true, policy: "d-mapped"},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.MustParseAddr("172.17.0.1") })},
				{req: with(mtls(web), func(r *Request) { r.SourceIP = netip.Addr{} })},
			},
		},
		"requested_server_name": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"sni":    pol(perms(pSNI(sSuffix(".shop.svc"))), ids(idAny())),
				"no-sni": pol(perms(pSNI(sExact(""))), ids(idAuth(sExact(cart)))),
			}),
			decisions: []decision{
				{req: with(mtls(web), func(r *Request) { r.ServerName = "checkout.shop.svc" }), allowed: true, policy: "sni"},
				{req: mtls(web)},
				{req: mtls(cart), allowed: true, policy: "no-sni"},
			},
		},
		"JWT claims": {
			cfg: allowRBAC(map[string]*rbacv3.Policy{
				"a-issuer": pol(perms(pAny()), ids(idAnd(
					idMeta(jwt(vString(sExact("https://issuer.example")), "jwt_payload", "iss")),
					idMeta(jwt(vString(sPrefix("user-")), "jwt_payload", "sub")),
				))),
				"b-group":  pol(perms(pMeta(jwt(vList(vString(sExact("admins"))), "jwt_payload", "groups"))), ids(idAny())),
				"c-nested": pol(perms(pMeta(jwt(vOr(vBool(true), vRange(5, 10)), "jwt_payload", "ext", "level"))), ids(idAny())),
				"d-null":   pol(perms(pMeta(jwt(vNull(), "jwt_payload", "nothing"))), ids(idAny())),
				"e-no-tok": pol(perms(pMeta(func() *matcherv3.MetadataMatcher {
					m := jwt(vPresent(), "jwt_payload")
					m.Invert = true
					return m
				}())), ids(idHeader(hString(":method", sExact("OPTIONS"))))),
				"f-sourced": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
					MetadataMatcher: jwt(vString(sExact("shop")), "jwt_payload", "aud"),
				}}}), ids(idAny())),
			}),
			decisions: []decision{
				{req: withClaims(mtls(web), `{"iss":"https://issuer.example","sub":"user-1"}`), allowed: true, policy: "a-issuer"},
				{req: withClaims(mtls(web), `{"iss":"https://other.example","sub":"user-1"}`)},
				{req: withClaims(mtls(web), `{"groups":["users","admins"]}`), allowed: true, policy: "b-group"},
				{req: with(mtls(web), func(r *Request) {
					r.JWTMetadata = map[string]any{"jwt_payload": map[string]any{"groups": []string{"admins"}}}
				}), allowed: true, policy: "b-group"},
				{req: withClaims(mtls(web), `{"groups":"admins"}`)},
				{req: withClaims(mtls(web), `{"ext":{"level":7}}`), allowed: true, policy: "c-nested"},
				{req: withClaims(mtls(web), `{"ext":{"level":true}}`), allowed: true, policy: "c-nested"},
				{req: withClaims(mtls(web), `{"ext":{"level":10}}`)},
				{req: withClaims(mtls(web), `{"ext":"level"}`)},
				{req: with(mtls(web), func(r *Request) {
					r.JWTMetadata = map[string]any{"jwt_payload": map[string]any{"ext": map[string]any{"level": int64(5)}}}
				}), allowed: true, policy: "c-nested"},
				{req: withClaims(mtls(web), `{"nothing":null}`), allowed: true, policy: "d-null"},
				{req: withClaims(mtls(web), `{"aud":"shop"}`), allowed: true, policy: "f-sourced"},
				{req: withClaims(mtls(web), `{"aud":["shop"]}`)},
				{req: withClaims(mtls(web), `{}`)},
				{req: with(mtls(web), method("OPTIONS")), allowed: true, policy: "e-no-tok"},
				{req: withClaims(with(mtls(web), method("OPTIONS")), `{}`)},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := Compile(tc.cfg)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			for i, d := range tc.decisions {
				allowed, policy := e.Allowed(d.req)
				if allowed != d.allowed || policy != d.policy {
					t.Errorf("decision %d: Allowed(%+v) = %v, %q; want %v, %q", i, *d.req, allowed, policy, d.allowed, d.policy)
				}
			}
		})
	}
}

func withClaims(r *Request, claims string) *Request {
	var c map[string]any
	if err := json.Unmarshal([]byte(claims), &c); err != nil {
		panic(err)
	}
	r.JWTMetadata = map[string]any{"jwt_payload": c}
	return r
}

func TestEvaluate(t *testing.T) {
	deny, err := Compile(denyRBAC(map[string]*rbacv3.Policy{
		"deny-evil":  pol(perms(pAny()), ids(idAuth(sExact(evil)))),
		"deny-admin": pol(perms(pPath(sPrefix("/admin/"))), ids(idNot(idAuth(sExact(cart))))),
	}))
	if err != nil {
		t.Fatal(err)
	}
	allow, err := Compile(allowRBAC(map[string]*rbacv3.Policy{
		"allow-shop": pol(perms(pAny()), ids(idAuth(sPrefix("spiffe://td/ns/shop/")))),
		"allow-evil": pol(perms(pAny()), ids(idAuth(sExact(evil)))),
	}))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		deny, allow *Engine
		req         *Request
		allowed     bool
		policy      string
	}{
		"no engines: allowed":                 {req: mtls(evil), allowed: true},
		"DENY wins over ALLOW":                {deny: deny, allow: allow, req: mtls(evil), policy: "deny-evil"},
		"DENY only, no match":                 {deny: deny, req: mtls(other), allowed: true},
		"DENY on path":                        {deny: deny, allow: allow, req: with(mtls(web), path("/admin/x")), policy: "deny-admin"},
		"DENY not_id exempts":                 {deny: deny, allow: allow, req: with(mtls(cart), path("/admin/x")), allowed: true, policy: "allow-shop"},
		"ALLOW match":                         {deny: deny, allow: allow, req: mtls(web), allowed: true, policy: "allow-shop"},
		"ALLOW present, no match: denied":     {deny: deny, allow: allow, req: mtls(other)},
		"ALLOW only, no match: denied":        {allow: allow, req: with(mtls(""), plaintext)},
		"ALLOW only, match":                   {allow: allow, req: mtls(cart), allowed: true, policy: "allow-shop"},
		"DENY policy that ALLOW would accept": {deny: deny, allow: allow, req: with(mtls(web), path("/admin/")), policy: "deny-admin"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			allowed, policy := Evaluate(tc.deny, tc.allow, tc.req)
			if allowed != tc.allowed || policy != tc.policy {
				t.Fatalf("Evaluate = %v, %q; want %v, %q", allowed, policy, tc.allowed, tc.policy)
			}
		})
	}
}

func TestCompileHTTPFilter(t *testing.T) {
	rules := denyRBAC(map[string]*rbacv3.Policy{"deny-evil": pol(perms(pAny()), ids(idAuth(sExact(evil))))})
	shadow := allowRBAC(nil) // would deny everything if it were enforced

	e, err := CompileHTTPFilter(&rbacfilterv3.RBAC{Rules: rules, ShadowRules: shadow, ShadowRulesStatPrefix: "shadow_"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, p := e.Allowed(mtls(evil)); ok || p != "deny-evil" {
		t.Errorf("Allowed(evil) = %v, %q; want denied by deny-evil", ok, p)
	}
	if ok, _ := e.Allowed(mtls(web)); !ok {
		t.Error("Allowed(web) = false: shadow rules were enforced")
	}

	// No rules: no enforcement, a nil engine that allows everything.
	e, err = CompileHTTPFilter(&rbacfilterv3.RBAC{ShadowRules: shadow})
	if err != nil || e != nil {
		t.Fatalf("CompileHTTPFilter(no rules) = %v, %v; want nil, nil", e, err)
	}
	if ok, p := e.Allowed(mtls(web)); !ok || p != "" {
		t.Errorf("nil engine: Allowed = %v, %q", ok, p)
	}
	if e.Action() != rbacv3.RBAC_ALLOW {
		t.Errorf("nil engine: Action = %v", e.Action())
	}

	// Rules present but empty: every request is denied (Envoy's documented rule).
	e, err = CompileHTTPFilter(&rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{}})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Allowed(mtls(web)); ok {
		t.Error("empty rules: allowed")
	}
}

func TestAllowedNilRequest(t *testing.T) {
	e, err := Compile(allowRBAC(map[string]*rbacv3.Policy{"any": pol(perms(pAny()), ids(idAny()))}))
	if err != nil {
		t.Fatal(err)
	}
	if ok, p := e.Allowed(nil); !ok || p != "any" {
		t.Fatalf("Allowed(nil) = %v, %q", ok, p)
	}
}
