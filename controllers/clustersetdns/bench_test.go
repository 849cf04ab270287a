package clustersetdns_test

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/controllers/clustersetdns"
)

// BenchmarkQuery measures an A query for a ClusterSetIP import read from
// an informer cache, as the agent runs it: through the handler alone, and
// as a round trip over UDP on loopback with miekg/dns's client.
func BenchmarkQuery(b *testing.B) {
	ctx := testContext(b, time.Minute)
	ns := newNamespace(ctx, b)
	createImport(ctx, b, ns, "hello", mcsv1beta1.ClusterSetIP, []string{"10.96.0.10"}, port("http", "", 80))
	srv := &clustersetdns.Server{Reader: startCache(b)}
	name := "hello." + ns + ".svc.clusterset.local."

	b.Run("handler", func(b *testing.B) {
		h, err := srv.Handler()
		if err != nil {
			b.Fatal(err)
		}
		req := new(dns.Msg).SetQuestion(name, dns.TypeA)
		w := &sink{remote: udpClient}
		b.ReportAllocs()
		for b.Loop() {
			w.msgs = w.msgs[:0]
			h.ServeDNS(w, req)
			if len(w.msgs) != 1 || len(w.msgs[0].Answer) != 1 {
				b.Fatalf("unexpected response %v", w.msgs)
			}
		}
	})

	b.Run("udp", func(b *testing.B) {
		r := startServer(b, srv)
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		conn, err := c.Dial(r.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		req := new(dns.Msg).SetQuestion(name, dns.TypeA)
		b.ReportAllocs()
		for b.Loop() {
			resp, _, err := c.ExchangeWithConn(req, conn)
			if err != nil || len(resp.Answer) != 1 {
				b.Fatalf("exchange: %v %v", resp, err)
			}
		}
	})
}
