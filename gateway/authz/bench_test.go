package authz

import (
	"fmt"
	"net/http"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// benchEngine is an ALLOW engine of 20 policies whose permissions are five
// rules each (port, method, path prefix, host, header regex, all of which
// the benchmark requests match) and whose principal is one SPIFFE ID, so
// that a request from client19 evaluates every rule of every policy before
// the last one matches.
func benchEngine(tb testing.TB) *Engine {
	tb.Helper()
	policies := map[string]*rbacv3.Policy{}
	for i := range 20 {
		policies[fmt.Sprintf("policy-%02d", i)] = pol(
			perms(pAnd(
				pOr(pPort(8080), pPort(8443)),
				pOr(pMethod("GET"), pMethod("POST")),
				pPath(sPrefix("/api/")),
				pHost(fold(sExact("checkout.shop.svc.cluster.local"))),
				pHeader(hString("x-tenant", sRegex("tenant-[0-9]+"))),
			)),
			ids(idAuth(sExact(fmt.Sprintf("spiffe://td/ns/shop/sa/client%d", i)))),
		)
	}
	e, err := Compile(allowRBAC(policies))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func benchRequest(client string) *Request {
	r := mtls("spiffe://td/ns/shop/sa/" + client)
	r.Path = "/api/v1/orders"
	r.Host = "checkout.shop.svc.cluster.local"
	r.Header = http.Header{"X-Tenant": {"tenant-42"}, "User-Agent": {"bench"}}
	return r
}

func BenchmarkAllowed(b *testing.B) {
	e := benchEngine(b)
	for _, tc := range []struct {
		name    string
		client  string
		allowed bool
	}{
		{"first-policy", "client0", true},
		{"last-policy", "client19", true},
		{"no-policy", "stranger", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := benchRequest(tc.client)
			if ok, _ := e.Allowed(r); ok != tc.allowed {
				b.Fatalf("Allowed = %v; want %v", ok, tc.allowed)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Allowed(r)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	allow := benchEngine(b)
	deny, err := Compile(denyRBAC(map[string]*rbacv3.Policy{
		"deny-admin": pol(perms(pPath(sPrefix("/admin/"))), ids(idNot(idAuth(sPrefix("spiffe://td/ns/ops/"))))),
	}))
	if err != nil {
		b.Fatal(err)
	}
	r := benchRequest("client19")
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(deny, allow, r)
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	for name, raw := range map[string]string{
		"canonical":  "/api/v1/orders/12345?expand=items",
		"normalised": "/api//v1/./orders/%31%32345/../12345?expand=items",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizePath(raw, NormalizeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAllowedDoesNotAllocate holds the benchmark's goal as a test: the
// evaluation of a request allocates nothing, whatever rule kinds it runs
// through (multi-valued headers and ":path" with a query excepted).
func TestAllowedDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	every, err := Compile(denyRBAC(map[string]*rbacv3.Policy{
		"every-kind": pol(
			perms(pAnd(
				pOr(pPort(1), pPortRange(8000, 9000)),
				pNot(pMethod("DELETE")),
				pPath(fold(sContains("ORDERS"))),
				pHost(sSuffix(".cluster.local")),
				pHeader(hRange("x-shard", 0, 100)),
				pHeader(inverted(hPresent("x-debug", true))),
				pDestIP("10.1.0.0", 16),
				pSNI(sExact("")),
				pMeta(jwt(vList(vOr(vString(sExact("b")), vPresent())), "jwt_payload", "groups")),
				pMeta(jwt(vRange(0, 10), "jwt_payload", "level")),
			)),
			ids(idAnd(
				idAuth(sRegex("spiffe://td/ns/[a-z]+/sa/client19")),
				idAuth(sExact("web.shop.svc")),
				idSourceIP("10.2.0.0", 16),
				idHeader(hString("user-agent", sPrefix("be"))),
			)),
		),
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := benchRequest("client19")
	r.PeerDNSSANs = []string{"web.shop.svc"}
	r.Header.Set("X-Shard", "7")
	r.JWTMetadata = map[string]any{"jwt_payload": map[string]any{"groups": []string{"a", "b"}, "level": 3.0}}
	if ok, p := every.Allowed(r); ok || p != "every-kind" {
		t.Fatalf("Allowed = %v, %q; want denied by every-kind", ok, p)
	}
	for name, e := range map[string]*Engine{"bench": benchEngine(t), "every kind": every} {
		if n := testing.AllocsPerRun(100, func() { e.Allowed(r) }); n != 0 {
			t.Errorf("%s: Allowed allocates %v times per request; want 0", name, n)
		}
	}
}
