package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
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
func BenchmarkMeshHop(b *testing.B) {
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

	tr := &http.Transport{DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	plainReq, _ := http.NewRequest(http.MethodGet, url, nil)
	plainReq.Host = "plain.local"
	mtlsReq, _ := http.NewRequest(http.MethodGet, url, nil)
	mtlsReq.Host = "mtls.local"
	do := func(req *http.Request) time.Duration {
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
