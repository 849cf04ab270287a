//go:build !race

package authz

import (
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// Allocation tests build only without the race detector, which allocates
// and makes sync.Pool drop objects at random; `make test` runs them in a
// run of their own without -race.

// TestAllowedDoesNotAllocate holds the benchmark's goal as a test: the
// evaluation of a request allocates nothing, whatever rule kinds it runs
// through (multi-valued headers and ":path" with a query excepted).
func TestAllowedDoesNotAllocate(t *testing.T) {
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
