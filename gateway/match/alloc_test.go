//go:build !race

package match

import (
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Allocation tests build only without the race detector, which allocates
// and makes sync.Pool drop objects at random; `make test` runs them in a
// run of their own without -race.

// TestStringMatchDoesNotAllocate guards the RBAC engine's zero-allocation
// decisions, which call String.Match per request.
func TestStringMatchDoesNotAllocate(t *testing.T) {
	ms := []*matcherv3.StringMatcher{fold(exact("ABC")), fold(prefix("/API")), fold(suffix(".CSS")), fold(contains("MiD")), regex(`[a-z]+/[0-9]+`), contains("x")}
	for _, m := range ms {
		s, err := CompileString(m)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { s.Match("/Api/amid/items/42.css") }); n != 0 {
			t.Errorf("%v: %v allocations per Match, want 0", m, n)
		}
	}
}
