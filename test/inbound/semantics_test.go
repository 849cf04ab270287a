package inbound_test

import (
	"net/http"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

const (
	allow = causewayv1alpha1.AuthorizationActionAllow
	deny  = causewayv1alpha1.AuthorizationActionDeny

	front = "spiffe://cluster.local/ns/front/sa/web"
	other = "spiffe://cluster.local/ns/other/sa/web"
	admin = "spiffe://cluster.local/ns/ops/sa/admin"
)

type (
	rule = causewayv1alpha1.AuthorizationRule
	src  = causewayv1alpha1.AuthorizationSource
	dst  = causewayv1alpha1.AuthorizationDestination
	cond = causewayv1alpha1.AuthorizationCondition
)

func namespaces(ns ...causewayv1alpha1.NamespaceName) *src  { return &src{Namespaces: ns} }
func principals(p ...causewayv1alpha1.SPIFFEIDPattern) *src { return &src{Principals: p} }

// TestAuthorizationSemantics evaluates requests through the generated
// filters with the proxy's RBAC engine and path normaliser: what each
// kind of AuthorizationPolicy rule means, as Istio defines it.
func TestAuthorizationSemantics(t *testing.T) {
	type check struct {
		r    req
		want int
	}
	tests := map[string]struct {
		policies []*causewayv1alpha1.AuthorizationPolicy
		checks   []check
	}{
		"no policy allows everything": {
			checks: []check{{req{target: "/"}, 200}, {req{target: "/admin", peer: other, method: "DELETE"}, 200}},
		},
		"an ALLOW policy denies what it does not match": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: namespaces("front")})},
			checks:   []check{{req{target: "/", peer: front}, 200}, {req{target: "/", peer: other}, 403}, {req{target: "/"}, 403}},
		},
		"an ALLOW policy without rules denies everything": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow)},
			checks:   []check{{req{target: "/", peer: front}, 403}, {req{target: "/"}, 403}},
		},
		"a DENY policy without rules has no effect": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny)},
			checks:   []check{{req{target: "/", peer: front}, 200}},
		},
		"DENY is evaluated first and wins": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{
				policy("a", allow, rule{From: namespaces("front", "ops")}),
				policy("d", deny, rule{From: principals(admin)}),
			},
			checks: []check{{req{target: "/", peer: front}, 200}, {req{target: "/", peer: admin}, 403}, {req{target: "/", peer: other}, 403}},
		},
		"ALLOW policies add up": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{
				policy("a1", allow, rule{From: namespaces("front")}),
				policy("a2", allow, rule{From: principals(admin)}),
			},
			checks: []check{{req{target: "/", peer: front}, 200}, {req{target: "/", peer: admin}, 200}, {req{target: "/", peer: other}, 403}},
		},
		"namespaces match workload IDs of any trust domain, nothing else": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: namespaces("front")})},
			checks: []check{
				{req{target: "/", peer: "spiffe://other.domain/ns/front/sa/x"}, 200},
				{req{target: "/", peer: "spiffe://cluster.local/ns/front"}, 403},
				{req{target: "/", peer: "spiffe://cluster.local/ns/frontend/sa/x"}, 403},
				{req{target: "/", peer: "spiffe://cluster.local/cluster/front/gateway"}, 403},
			},
		},
		"principal patterns": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow,
				rule{From: principals("spiffe://cluster.local/ns/front/*")},
				rule{From: principals("*/sa/admin")},
				rule{From: principals(other)},
			)},
			checks: []check{
				{req{target: "/", peer: front}, 200},
				{req{target: "/", peer: admin}, 200},
				{req{target: "/", peer: other}, 200},
				{req{target: "/", peer: "spiffe://cluster.local/ns/other/sa/web2"}, 403},
				{req{target: "/", peer: "spiffe://cluster.local/ns/frontier/sa/x"}, 403},
			},
		},
		"'*' is any authenticated workload": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: principals("*")})},
			checks:   []check{{req{target: "/", peer: other}, 200}, {req{target: "/"}, 403}},
		},
		"ports are target ports": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{To: &dst{Ports: []causewayv1alpha1.PortNumber{8080}}})},
			checks:   []check{{req{target: "/"}, 200}, {req{target: "/", port: 80}, 403}},
		},
		"paths are matched after normalisation": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny, rule{To: &dst{Paths: []string{"/admin/*", "/secret"}}})},
			checks: []check{
				{req{target: "/admin/users"}, 403},
				{req{target: "/public/../admin/users"}, 403},
				{req{target: "//admin//users"}, 403},
				{req{target: "/%61dmin/users"}, 403},
				{req{target: "/admin/./users?x=1"}, 403},
				{req{target: "/admin\\users"}, 403},
				{req{target: "/secret"}, 403},
				{req{target: "/secret/./"}, 200}, // "/secret/" is another path
				{req{target: "/admin%2Fusers"}, 400},
				{req{target: "/admin%5cusers"}, 400},
				{req{target: "/Admin/users"}, 200}, // paths are case-sensitive
				{req{target: "/public"}, 200},
			},
		},
		"exact and prefix paths in ALLOW": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{To: &dst{Paths: []string{"/healthz", "/api/*"}}})},
			checks: []check{
				{req{target: "/healthz"}, 200}, {req{target: "/./healthz"}, 200}, {req{target: "/healthz/"}, 403},
				{req{target: "/api/v1"}, 200}, {req{target: "/api"}, 403}, {req{target: "/api/../admin"}, 403},
			},
		},
		"methods": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{To: &dst{Methods: []causewayv1alpha1.HTTPMethod{"GET", "HEAD"}}})},
			checks:   []check{{req{target: "/"}, 200}, {req{target: "/", method: "HEAD"}, 200}, {req{target: "/", method: "POST"}, 403}},
		},
		"hosts ignore the port and letter case": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{To: &dst{Hosts: []string{"web.shop.svc.cluster.local", "*.example.com"}}})},
			checks: []check{
				{req{target: "/"}, 200},
				{req{target: "/", host: "web.shop.svc.cluster.local:80"}, 200},
				{req{target: "/", host: "WEB.Shop.svc.cluster.local"}, 200},
				{req{target: "/", host: "a.b.example.com:8443"}, 200},
				{req{target: "/", host: "example.com"}, 403},
				{req{target: "/", host: "web.shop.svc.cluster.local.evil"}, 403},
				{req{target: "/", host: "evilexample.com"}, 403},
			},
		},
		"headers must all match": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: namespaces("front"), When: &cond{Headers: []causewayv1alpha1.HeaderMatch{
				{Name: "X-Env", Exact: ptr.To("prod")}, {Name: "user-agent", Regex: ptr.To("curl/[0-9.]+")}, {Name: "x-team", Prefix: ptr.To("pay")},
			}}})},
			checks: []check{
				{req{target: "/", peer: front, headers: map[string]string{"x-env": "prod", "User-Agent": "curl/8.1", "x-team": "payments"}}, 200},
				{req{target: "/", peer: front, headers: map[string]string{"x-env": "prod", "User-Agent": "curl/8.1 evil", "x-team": "payments"}}, 403},
				{req{target: "/", peer: front, headers: map[string]string{"x-env": "prod", "User-Agent": "curl/8.1"}}, 403},
				{req{target: "/", peer: other, headers: map[string]string{"x-env": "prod", "User-Agent": "curl/8.1", "x-team": "payments"}}, 403},
			},
		},
		"a root namespace policy applies to every workload": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{func() *causewayv1alpha1.AuthorizationPolicy {
				p := policy("mesh", deny, rule{From: principals("spiffe://untrusted.example/*")})
				p.Namespace = causewayv1alpha1.SystemNamespace
				return p
			}()},
			checks: []check{{req{target: "/", peer: "spiffe://untrusted.example/ns/a/sa/b"}, 403}, {req{target: "/", peer: front}, 200}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, pod := workload()
			in.AuthorizationPolicies = tc.policies
			e := compile(t, in, pod)
			for _, c := range tc.checks {
				if got := e.serve(t, c.r); got != c.want {
					t.Errorf("%s %s from %q (host %q, port %d, headers %v): %d, want %d", c.r.method, c.r.target, c.r.peer, c.r.host, c.r.port, c.r.headers, got, c.want)
				}
			}
		})
	}
}

// TestTCPSemantics: connections are decided by the network RBAC filters,
// where rules with HTTP-only conditions are restrictive both ways.
func TestTCPSemantics(t *testing.T) {
	type check struct {
		peer string
		port uint16
		want bool
	}
	tests := map[string]struct {
		policies []*causewayv1alpha1.AuthorizationPolicy
		checks   []check
	}{
		"no policy": {checks: []check{{"", 0, true}, {other, 0, true}}},
		"ALLOW by namespace and port": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: namespaces("front"), To: &dst{Ports: []causewayv1alpha1.PortNumber{5432}}})},
			checks:   []check{{front, 0, true}, {other, 0, false}, {front, 9999, false}, {"", 0, false}},
		},
		"an ALLOW rule with a path matches no connection": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: namespaces("front"), To: &dst{Paths: []string{"/"}}})},
			checks:   []check{{front, 0, false}},
		},
		"a DENY rule with a method applies without it": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny, rule{From: namespaces("other"), To: &dst{Methods: []causewayv1alpha1.HTTPMethod{"DELETE"}}})},
			checks:   []check{{other, 0, false}, {front, 0, true}},
		},
		"a DENY rule with request principals applies without them": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny, rule{From: &src{Namespaces: []causewayv1alpha1.NamespaceName{"other"}, RequestPrincipals: []causewayv1alpha1.RequestPrincipal{"*"}}})},
			checks:   []check{{other, 0, false}, {front, 0, true}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, pod := workload()
			in.AuthorizationPolicies = tc.policies
			e := compile(t, in, pod)
			for _, c := range tc.checks {
				if got := e.connect(c.peer, c.port); got != c.want {
					t.Errorf("connection from %q to port %d allowed %v, want %v", c.peer, c.port, got, c.want)
				}
			}
		})
	}
}

// TestJWTSemantics: RequestAuthentication rejects bad tokens with 401 and
// lets requests without one through; AuthorizationPolicies decide with
// request principals and claims. Tokens are really signed and verified.
func TestJWTSemantics(t *testing.T) {
	idp := newIssuer(t, "https://idp.example.com")
	corp := newIssuer(t, "corp")
	rogue := newIssuer(t, "https://idp.example.com") // same name, another key
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	alice := idp.token(t, map[string]any{"sub": "alice", "groups": []string{"admins", "dev"}, "scope": "read write"})
	bob := idp.token(t, map[string]any{"sub": "bob", "groups": "dev"})
	svc := idp.token(t, map[string]any{"sub": "svc-billing"})
	corpBob := corp.token(t, map[string]any{"sub": "bob"})
	forged := rogue.token(t, map[string]any{"sub": "alice", "groups": []string{"admins"}})
	expired := idp.token(t, map[string]any{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})
	type check struct {
		headers map[string]string
		want    int
	}
	rp := func(p ...causewayv1alpha1.RequestPrincipal) *src { return &src{RequestPrincipals: p} }
	tests := map[string]struct {
		policies []*causewayv1alpha1.AuthorizationPolicy
		checks   []check
	}{
		"authentication alone": {
			checks: []check{
				{nil, 200}, {bearer(alice), 200}, {bearer(corpBob), 200},
				{bearer(forged), 401}, {bearer(expired), 401}, {bearer("not.a.token"), 401},
				{bearer(newIssuer(t, "https://unknown.example").token(t, map[string]any{"sub": "x"})), 401},
			},
		},
		"a request principal": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("https://idp.example.com/alice")})},
			checks:   []check{{bearer(alice), 200}, {bearer(bob), 403}, {nil, 403}, {bearer(forged), 401}},
		},
		"any valid token": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("*")})},
			checks:   []check{{bearer(alice), 200}, {bearer(corpBob), 200}, {nil, 403}},
		},
		"request principal patterns": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("https://idp.example.com/svc-*", "*/bob")})},
			checks:   []check{{bearer(svc), 200}, {bearer(bob), 200}, {bearer(corpBob), 200}, {bearer(alice), 403}},
		},
		"a pattern that spans issuer and subject": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("*p/bob", "https://idp.example.*")})},
			checks:   []check{{bearer(corpBob), 200}, {bearer(alice), 200}, {bearer(bob), 200}},
		},
		"an issuer's prefix": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("corp/*")})},
			checks:   []check{{bearer(corpBob), 200}, {bearer(bob), 403}},
		},
		"claims: a list, a string, a space-separated scope": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow,
				rule{From: rp("*"), When: &cond{Claims: []causewayv1alpha1.ClaimMatch{{Name: "groups", Values: []string{"admins"}}}}},
				rule{From: rp("*"), When: &cond{Claims: []causewayv1alpha1.ClaimMatch{{Name: "groups", Values: []string{"de*"}}, {Name: "sub", Values: []string{"*ob"}}}}},
			)},
			checks: []check{{bearer(alice), 200}, {bearer(bob), 200}, {bearer(svc), 403}, {nil, 403}},
		},
		"scope": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("*"), When: &cond{Claims: []causewayv1alpha1.ClaimMatch{{Name: "scope", Values: []string{"write"}}}}})},
			checks:   []check{{bearer(alice), 200}, {bearer(bob), 403}},
		},
		"DENY by claim": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("d", deny, rule{From: rp("*"), When: &cond{Claims: []causewayv1alpha1.ClaimMatch{{Name: "groups", Values: []string{"*"}}}}})},
			checks:   []check{{bearer(alice), 403}, {bearer(svc), 200}, {nil, 200}},
		},
		"a request principal and a workload together": {
			policies: []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: &src{Namespaces: []causewayv1alpha1.NamespaceName{"front"}, RequestPrincipals: []causewayv1alpha1.RequestPrincipal{"*"}}})},
			checks:   []check{{bearer(alice), 200}, {nil, 403}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, pod := workload()
			in.AuthorizationPolicies = tc.policies
			in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{authn("idp", idp.rule(), corp.rule())}
			e := compile(t, in, pod)
			for i, c := range tc.checks {
				peer := ""
				if name == "a request principal and a workload together" {
					peer = front
				}
				if got := e.serve(t, req{target: "/", headers: c.headers, peer: peer}); got != c.want {
					t.Errorf("check %d: %d, want %d", i, got, c.want)
				}
			}
		})
	}

	t.Run("a RequestAuthentication of another workload does not apply", func(t *testing.T) {
		in, pod := workload()
		ra := authn("idp", idp.rule())
		ra.Spec.TargetRef = &causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: "db"}
		ra.Namespace = "other"
		in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{ra}
		in.Services = append(in.Services, in.Services[1].DeepCopy())
		in.Services[2].Namespace = "other"
		e := compile(t, in, pod)
		if len(e.jwt) != 0 || e.serve(t, req{target: "/", headers: bearer(forged)}) != http.StatusOK {
			t.Error("a RequestAuthentication of another namespace applied")
		}
	})

	t.Run("custom token locations; the token is removed unless forwarded", func(t *testing.T) {
		in, pod := workload()
		r := idp.rule()
		r.FromHeaders = []causewayv1alpha1.JWTHeader{{Name: "X-Jwt"}}
		r.FromParams = []string{"tok"}
		in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{authn("idp", r)}
		in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{policy("a", allow, rule{From: rp("https://idp.example.com/alice")})}
		e := compile(t, in, pod)
		for _, c := range []struct {
			r    req
			want int
		}{
			{req{target: "/", headers: map[string]string{"X-Jwt": alice}}, 200},
			{req{target: "/?tok=" + alice}, 200},
			{req{target: "/", headers: bearer(alice)}, 403}, // not a location of this rule
			{req{target: "/", headers: map[string]string{"X-Jwt": forged}}, 401},
		} {
			if got := e.serve(t, c.r); got != c.want {
				t.Errorf("%s %v: %d, want %d", c.r.target, c.r.headers, got, c.want)
			}
		}
	})
}
