package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// BenchmarkMeshHop compares one hop between two sidecars in plaintext
// with the same hop through an HBONE tunnel (mutual TLS 1.3, HTTP/2
// CONNECT), in one run: each iteration sends one request each way, one
// at a time, over kept-alive connections (tunnels pooled, as in
// production):
//
//	plain: client → web → (plaintext TCP) → api's inbound listener → backend
//	mtls:  client → web → (HBONE tunnel)  → api's inbound listener → backend
//
// It reports the mean latency of each and their ratio (mtls/plain).
// meshHop sets up BenchmarkMeshHop's two paths and returns a function
// that sends one request and times it, and the request of each path.
func meshHop(b *testing.B) (do func(*http.Request) time.Duration, plainReq, mtlsReq *http.Request) {
	b.Helper()
	m := &mesh{ca: newMeshCA(b, meshTD)}
	m.agent = startSDSAgent(b, m.ca, map[string]string{"tok-web": "front/web", "tok-api": "shop/api"})
	m.bundleFile = filepath.Join(b.TempDir(), "roots.pem")
	roots := writeBundle(b, m.bundleFile, m.ca.root)
	backend := startBenchBackend(b)
	port := uint16(backend.Listener.Addr().(*net.TCPAddr).Port)
	chain, key, _ := m.ca.svid(b, apiID)
	m.agent.serve(b, "api", chain, key, roots)
	chain, key, _ = m.ca.svid(b, webID)
	m.agent.serve(b, "web", chain, key, roots)

	// api takes tunnels and, PERMISSIVE, captured plaintext; the test's
	// OriginalDst plays the capture rules.
	meant := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	api := startNode(b, m.agent, m.bundleFile, "api", nodeOptions{
		ns: "shop", sa: "api", sidecar: true, podAddrs: []netip.Addr{meant.Addr()}, inboundAddr: "127.0.0.1:0",
		originalDst: func(*net.TCPConn) (netip.AddrPort, error) { return meant, nil },
	})
	web := startNode(b, m.agent, m.bundleFile, "web", nodeOptions{
		ns: "front", sa: "web", tunnelPort: api.hbonePort(b), bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "out_http"}},
	})
	api.waitIdentity(b)
	web.waitIdentity(b)
	api.configureInbound(b, "1", inbound{httpPort: port, tcpPort: port + 1, mtls: MTLSPermissive})
	inboundAddr := api.bindingAddr(b, xdsconv.VirtualInboundListener)

	apply(b, web.store, cdsType, "1", edsCluster(b, "mtls", false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(b, "plain", false, clusterv3.Cluster_ROUND_ROBIN))
	apply(b, web.store, edsType, "1", hboneCLA(b, "mtls", meant.String()), cla(b, "plain", inboundAddr))
	apply(b, web.store, rdsType, "1", &routev3.RouteConfiguration{Name: "out", VirtualHosts: []*routev3.VirtualHost{
		{Name: "mtls", Domains: []string{"mtls.local"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("mtls")}}},
		{Name: "plain", Domains: []string{"plain.local"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("plain")}}},
	}})
	apply(b, web.store, ldsType, "1", hcmListener(b, "out_http", "out", false))
	url := "http://" + web.bindingAddr(b, "out_http") + "/hop"

	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	plainReq, _ = http.NewRequest(http.MethodGet, url, nil)
	plainReq.Host = "plain.local"
	mtlsReq, _ = http.NewRequest(http.MethodGet, url, nil)
	mtlsReq.Host = "mtls.local"
	do = func(req *http.Request) time.Duration {
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(benchBody)) {
			b.Fatalf("%s: status %d, %d bytes", req.Host, resp.StatusCode, n)
		}
		return time.Since(start)
	}
	for range 20 { // warm both paths: connections, tunnels, pools
		do(plainReq)
		do(mtlsReq)
	}
	if n := testutil.ToFloat64(web.proxy.metrics.tunnels.WithLabelValues("outbound", "ok")); n < 1 {
		b.Fatalf("the mtls path opened %v tunnels", n)
	}
	return do, plainReq, mtlsReq
}

func BenchmarkMeshHop(b *testing.B) {
	do, plainReq, mtlsReq := meshHop(b)
	var plain, mtls time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always finds the
		// machine warmer.
		if i%2 == 0 {
			plain += do(plainReq)
			mtls += do(mtlsReq)
		} else {
			mtls += do(mtlsReq)
			plain += do(plainReq)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(plain.Microseconds())/float64(b.N), "plain-µs/req")
	b.ReportMetric(float64(mtls.Microseconds())/float64(b.N), "mtls-µs/req")
	b.ReportMetric(float64(mtls)/float64(plain), "mtls/plain")
}

// BenchmarkMeshHopAtRate is the measure of the mTLS hop: each
// path at a steady 1,000 requests a second from 4 connections for
// meshRateDuration, the two paths alternating in slices so that both see
// the same machine, and the added p50 and p99 of the mTLS hop over the
// plaintext one (the tunnel, its TLS and HTTP/2 framing, both ends).
func BenchmarkMeshHopAtRate(b *testing.B) {
	do, plainReq, mtlsReq := meshHop(b)
	const (
		rate    = 1000 // requests a second, per path
		conns   = 4
		parts   = 6
		perSlot = meshRateDuration / parts
	)
	run := func(req *http.Request, d time.Duration) []time.Duration {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		interval := time.Second * conns / rate
		for c := range conns {
			wg.Go(func() {
				// Each connection keeps its own schedule, offset so the
				// four interleave.
				next := time.Now().Add(interval * time.Duration(c) / conns)
				end := time.Now().Add(d)
				for next.Before(end) {
					time.Sleep(time.Until(next))
					l := do(req.Clone(req.Context()))
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
					next = next.Add(interval)
				}
			})
		}
		wg.Wait()
		return lat
	}
	var plain, mtls []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range parts {
			if i%2 == 0 {
				plain = append(plain, run(plainReq, perSlot)...)
				mtls = append(mtls, run(mtlsReq, perSlot)...)
			} else {
				mtls = append(mtls, run(mtlsReq, perSlot)...)
				plain = append(plain, run(plainReq, perSlot)...)
			}
		}
	}
	b.StopTimer()
	pct := func(l []time.Duration, q float64) float64 {
		slices.Sort(l)
		return float64(l[min(len(l)-1, int(q*float64(len(l))))].Microseconds()) / 1000
	}
	pp50, pp99, mp50, mp99 := pct(plain, 0.50), pct(plain, 0.99), pct(mtls, 0.50), pct(mtls, 0.99)
	b.ReportMetric(pp50, "plain-p50-ms")
	b.ReportMetric(pp99, "plain-p99-ms")
	b.ReportMetric(mp50, "mtls-p50-ms")
	b.ReportMetric(mp99, "mtls-p99-ms")
	b.ReportMetric(mp99-pp99, "added-p99-ms")
	b.ReportMetric(mp50-pp50, "added-p50-ms")
}

// meshRateDuration is how long BenchmarkMeshHopAtRate runs each path.
const meshRateDuration = 6 * time.Second
