package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

func TestVirtualHostSelection(t *testing.T) {
	rc, err := compileRouteConfig(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "exact", Domains: []string{"echo.default.svc.cluster.local", "echo.default.svc.cluster.local:8080"}},
		{Name: "suffix", Domains: []string{"*.example.com"}},
		{Name: "longer-suffix", Domains: []string{"*.api.example.com"}},
		{Name: "prefix", Domains: []string{"internal.*"}},
		{Name: "star", Domains: []string{"*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"echo.default.svc.cluster.local":      "exact",
		"ECHO.default.svc.cluster.local:8080": "exact",
		"echo.default.svc.cluster.local:9999": "exact", // port stripped when nothing matches with it
		"a.example.com":                       "suffix",
		"v1.api.example.com":                  "longer-suffix",
		"example.com":                         "star", // "*.example.com" needs a label before it
		"internal.corp":                       "prefix",
		"other":                               "star",
	} {
		if got := rc.find(host); got == nil || got.name != want {
			t.Errorf("find(%q) = %v, want %s", host, got, want)
		}
	}
}

func TestRouteMatching(t *testing.T) {
	regex := func(r string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: r} }
	vh, err := compileVirtualHost(&routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Name: "exact", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, Action: routeTo("c")},
		{Name: "segment", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, Action: routeTo("c")},
		{Name: "regex", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/items/[0-9]+`)}}, Action: routeTo("c")},
		{Name: "nocase", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/CaSe"}, CaseSensitive: wrapperspb.Bool(false)}, Action: routeTo("c")},
		{Name: "method", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
			{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "DELETE"}}}},
		}}, Action: routeTo("c")},
		{Name: "not-beta", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
			{Name: "x-track", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "beta"}}}, InvertMatch: true},
			{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
		}}, Action: routeTo("c")},
		{Name: "query", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{
			{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(`2|3`)}}}},
		}}, Action: routeTo("c")},
		{Name: "default", Match: prefixMatch("/"), Action: routeTo("c")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target string
		headers        map[string]string
		want           string
	}{
		{"GET", "/exact", nil, "exact"},
		{"GET", "/exact/more", nil, "default"},
		{"GET", "/exact?q=1", nil, "exact"},
		{"GET", "/api", nil, "segment"},
		{"GET", "/api/v1", nil, "segment"},
		{"GET", "/apiv1", nil, "default"},
		{"GET", "/items/42", nil, "regex"},
		{"GET", "/items/42/x", nil, "default"}, // a regex matches the whole path
		{"GET", "/case/x", nil, "nocase"},
		{"DELETE", "/x", nil, "method"},
		{"GET", "/x", map[string]string{"x-user": "u"}, "not-beta"},
		{"GET", "/x", map[string]string{"x-user": "u", "x-track": "beta"}, "default"},
		{"GET", "/x?v=3", nil, "query"},
		{"GET", "/x?v=23", nil, "default"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		got := vh.match(r)
		if got == nil || got.name != tc.want {
			t.Errorf("%s %s %v → %v, want %s", tc.method, tc.target, tc.headers, got, tc.want)
		}
	}
}

func TestEnvoySubstitution(t *testing.T) {
	for in, want := range map[string]string{
		`/v2`:        `/v2`,
		`/v2/\1`:     `/v2/${1}`,
		`\\literal`:  `\literal`,
		`cost$5`:     `cost$$5`,
		`/a/\2/\1/b`: `/a/${2}/${1}/b`,
	} {
		if got := envoySubstitution(in); got != want {
			t.Errorf("envoySubstitution(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocalityPriorityAndConsistentHash(t *testing.T) {
	local, remote1, remote2 := startEcho(t, "local", echo.ProtocolHTTP), startEcho(t, "remote-1", echo.ProtocolHTTP), startEcho(t, "remote-2", echo.ProtocolHTTP)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Match: prefixMatch("/"),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "svc"},
			HashPolicy: []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"},
			}}},
		}},
	}}}}
	apply(t, h.store, cdsType, "1", edsCluster(t, "svc", false, clusterv3.Cluster_RING_HASH))
	withPriorities := func(localAddrs ...string) *endpointv3.ClusterLoadAssignment {
		c := cla(t, "svc", remote1.addr, remote2.addr)
		c.Endpoints[0].Priority = 1
		if len(localAddrs) > 0 {
			l := cla(t, "svc", localAddrs...)
			c.Endpoints = append(c.Endpoints, l.Endpoints[0])
		}
		return c
	}
	apply(t, h.store, edsType, "1", withPriorities(local.addr))
	apply(t, h.store, rdsType, "1", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: vhosts})
	apply(t, h.store, ldsType, "1", hcmListener(t, "http", "routes", true))
	c := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + h.httpAddr + "/"
	for i := range 50 {
		if _, r, _ := get(t, c, url, "x", map[string]string{"x-user": fmt.Sprint(i)}); r.pod() != "local" {
			t.Fatalf("with a local endpoint, request %d went to %s", i, r.pod())
		}
	}
	// The local cluster's endpoints are gone: priority 1 takes over, and
	// the same key keeps reaching the same endpoint.
	apply(t, h.store, edsType, "2", withPriorities())
	seen := map[string]string{}
	pods := map[string]bool{}
	for round := range 3 {
		for i := range 40 {
			key := fmt.Sprint("user-", i)
			_, r, _ := get(t, c, url, "x", map[string]string{"x-user": key})
			if r.pod() == "local" || r.pod() == "" {
				t.Fatalf("after failover request went to %q", r.pod())
			}
			if prev, ok := seen[key]; ok && prev != r.pod() && round > 0 {
				t.Fatalf("key %s moved from %s to %s without a change", key, prev, r.pod())
			}
			seen[key] = r.pod()
			pods[r.pod()] = true
		}
	}
	if len(pods) != 2 {
		t.Fatalf("40 keys all hashed to %v", pods)
	}
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	slow := startEcho(t, "slow", echo.ProtocolHTTP)
	h := startProxy(t)
	c := edsCluster(t, "svc", false, clusterv3.Cluster_ROUND_ROBIN)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(2)}}}
	apply(t, h.store, cdsType, "1", c)
	apply(t, h.store, edsType, "1", cla(t, "svc", slow.addr))
	apply(t, h.store, rdsType, "1", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("svc")}},
	}}})
	apply(t, h.store, ldsType, "1", hcmListener(t, "http", "routes", true))
	client := &http.Client{Timeout: 10 * time.Second}
	type result struct {
		code int
		over bool
	}
	results := make(chan result, 6)
	for range 6 {
		go func() {
			resp, err := client.Get("http://" + h.httpAddr + "/?delay=600ms")
			if err != nil {
				results <- result{code: -1}
				return
			}
			resp.Body.Close()
			results <- result{resp.StatusCode, resp.Header.Get("X-Envoy-Overloaded") == "true"}
		}()
	}
	ok, shed := 0, 0
	for range 6 {
		r := <-results
		code, over := r.code, r.over
		switch {
		case code == 200:
			ok++
		case code == http.StatusServiceUnavailable && over:
			shed++
		default:
			t.Fatalf("unexpected result %d (overloaded %v)", code, over)
		}
	}
	if ok > 2 || ok == 0 || shed < 4 {
		t.Fatalf("max_requests 2: %d served, %d shed", ok, shed)
	}
}

// TestDeprecatedHeaderMatchers: control planes still send the deprecated
// HeaderMatcher forms; the proxy must read them as Envoy does.
func TestDeprecatedHeaderMatchers(t *testing.T) {
	//nolint:staticcheck // the deprecated forms are what this test is about
	vh, err := compileVirtualHost(&routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Name: "exact", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "1"}}}}, Action: routeTo("c")},
		{Name: "prefix", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "pre"}}}}, Action: routeTo("c")},
		{Name: "suffix", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "suf"}}}}, Action: routeTo("c")},
		{Name: "contains", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "mid"}}}}, Action: routeTo("c")},
		{Name: "regex", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]+z"}}}}}, Action: routeTo("c")},
		{Name: "default", Match: prefixMatch("/"), Action: routeTo("c")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]string{"1": "exact", "prefix": "prefix", "a-suf": "suffix", "amidb": "contains", "42z": "regex", "42": "default"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("x-a", value)
		if got := vh.match(r); got == nil || got.name != want {
			t.Errorf("x-a: %s → %v, want %s", value, got, want)
		}
	}
}
