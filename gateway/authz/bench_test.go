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
