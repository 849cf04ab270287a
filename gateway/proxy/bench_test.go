package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// In-process benchmarks of the request hot path. BenchmarkProxyHTTP1 and
// BenchmarkDirectHTTP1 run the same client against the same backend, with
// and without the proxy between them: the difference in ns/op and
// allocs/op is the proxy's cost per request (client and backend are in
// both). The whole-process comparison with nginx is test/bench/proxybench.

// benchVHosts and benchRoutes size BenchmarkRouteMatch's route
// configuration: a mesh of 100 services with 10 rules each.
const (
	benchVHosts = 100
	benchRoutes = 10
)

// benchRouteConfig has benchVHosts virtual hosts of benchRoutes routes
// each, in the forms the agent's translation produces: separated prefixes,
// exact paths, a regex, header matches and a catch-all last.
func benchRouteConfig(tb testing.TB) *routeConfig {
	tb.Helper()
	rc := &routev3.RouteConfiguration{Name: "bench"}
	for i := range benchVHosts {
		host := fmt.Sprintf("svc-%03d.bench.svc.cluster.local", i)
		var routes []*routev3.Route
		for j := range 4 {
			routes = append(routes, &routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: fmt.Sprintf("/api/v%d", j)}},
				Action: routeTo("c"),
			})
		}
		for j := range 2 {
			routes = append(routes, &routev3.Route{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: fmt.Sprintf("/exact/%d", j)}},
				Action: routeTo("c"),
			})
		}
		routes = append(routes, &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/items/[0-9]+"}}},
			Action: routeTo("c"),
		})
		for j := range 2 {
			routes = append(routes, &routev3.Route{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
					Name: "x-version", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "v" + strconv.Itoa(j)},
					}},
				}}},
				Action: routeTo("c"),
			})
		}
		routes = append(routes, &routev3.Route{Match: prefixMatch("/"), Action: routeTo("c")})
		if len(routes) != benchRoutes {
			tb.Fatalf("%d routes per virtual host, want %d", len(routes), benchRoutes)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: host, Domains: []string{host, host + ":80"}, Routes: routes})
	}
	crc, err := compileRouteConfig(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return crc
}

// BenchmarkRouteMatch finds the virtual host of a request and its route,
// what ServeHTTP does first for every request. "first" matches the first
// route; "last" falls through nine routes (a regex and header matchers
// among them) to the catch-all.
func BenchmarkRouteMatch(b *testing.B) {
	rc := benchRouteConfig(b)
	for _, tc := range []struct {
		name, path string
		want       int // index of the route that must match
	}{
		{"first", "/api/v0/users/42", 0},
		{"last", "/static/app.js", benchRoutes - 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			reqs := make([]*http.Request, benchVHosts)
			for i := range reqs {
				r := httptest.NewRequest(http.MethodGet, "http://x"+tc.path, nil)
				r.Host = fmt.Sprintf("svc-%03d.bench.svc.cluster.local:80", i)
				reqs[i] = r
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := reqs[i%len(reqs)]
				i++
				vh := rc.find(r.Host)
				if vh == nil {
					b.Fatalf("no virtual host for %s", r.Host)
				}
				if rt := vh.match(r); rt != vh.routes[tc.want] {
					b.Fatalf("%s%s matched the wrong route", r.Host, tc.path)
				}
			}
		})
	}
}

// benchBody is the backend's response: 1 KiB, the size of a typical API
// reply.
var benchBody = bytes.Repeat([]byte("x"), 1024)

func startBenchBackend(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchBody)))
		_, _ = w.Write(benchBody)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// startBenchProxy runs an in-process proxy whose "http" binding routes
// Host bench.local to backend, configured as the package's harness
// configures it (startProxy takes a *testing.T, not a *testing.B).
func startBenchProxy(b *testing.B, backend string) string {
	b.Helper()
	store := NewStore()
	p := New(Config{Store: store, Bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "http"}}, Logger: discardLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("proxy drain: %v", err)
		}
	})
	apply(b, store, cdsType, "1", edsCluster(b, "backend", false, clusterv3.Cluster_ROUND_ROBIN))
	apply(b, store, edsType, "1", cla(b, "backend", backend))
	apply(b, store, rdsType, "1", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "bench", Domains: []string{"bench.local"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("backend")}},
	}}})
	apply(b, store, ldsType, "1", hcmListener(b, "http", "routes", false))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if addr := p.Addrs()["http"]; addr != "" && p.Ready() {
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatal("the proxy did not bind its listener")
		}
	}
}

// benchGets sends GETs to addr from parallel goroutines over kept-alive
// HTTP/1.1 connections and checks every response.
func benchGets(b *testing.B, addr string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/bench"
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Error(err)
			return
		}
		req.Host = "bench.local"
		for pb.Next() {
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(benchBody)) {
				b.Errorf("status %d, %d body bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkProxyHTTP1: client → proxy → backend, HTTP/1.1 on both sides.
func BenchmarkProxyHTTP1(b *testing.B) {
	backend := startBenchBackend(b)
	benchGets(b, startBenchProxy(b, backend.Listener.Addr().String()))
}

// BenchmarkDirectHTTP1 is BenchmarkProxyHTTP1's baseline: client →
// backend.
func BenchmarkDirectHTTP1(b *testing.B) {
	backend := startBenchBackend(b)
	benchGets(b, backend.Listener.Addr().String())
}
