package clustersetdns_test

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/controllers/clustersetdns"
)

// sink is a dns.ResponseWriter that keeps what the handler writes. It is
// the handler's output, not a stand-in for anything under test.
type sink struct {
	remote net.Addr
	msgs   []*dns.Msg
}

func (s *sink) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (s *sink) RemoteAddr() net.Addr { return s.remote }
func (s *sink) WriteMsg(m *dns.Msg) error {
	s.msgs = append(s.msgs, m)
	return nil
}
func (s *sink) Write(b []byte) (int, error) { return len(b), nil }
func (s *sink) Close() error                { return nil }
func (s *sink) TsigStatus() error           { return nil }
func (s *sink) TsigTimersOnly(bool)         {}
func (s *sink) Hijack()                     {}

var (
	udpClient = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	tcpClient = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
)

// fuzzSeeds are queries covering every name kind and the malformed shapes.
func fuzzSeeds(ns string) []*dns.Msg {
	q := func(name string, t uint16) *dns.Msg { return new(dns.Msg).SetQuestion(name, t) }
	svc := "hello." + ns + ".svc.clusterset.local."
	hl := "db." + ns + ".svc.clusterset.local."
	seeds := []*dns.Msg{
		q(svc, dns.TypeA), q(svc, dns.TypeAAAA), q(svc, dns.TypeSRV), q("_http._tcp."+svc, dns.TypeSRV),
		q(hl, dns.TypeA), q(hl, dns.TypeSRV), q("db-0.east."+hl, dns.TypeA), q("10-1-0-6.east."+hl, dns.TypeA),
		q("east."+hl, dns.TypeA), q("_tcp."+svc, dns.TypeA), q(ns+".svc.clusterset.local.", dns.TypeA),
		q("dns-version.clusterset.local.", dns.TypeTXT), q("clusterset.local.", dns.TypeSOA),
		q("example.com.", dns.TypeA), q("clusterset.local.", dns.TypeAXFR), q(svc, dns.TypeANY),
		q(`a\.b\000.`+svc, dns.TypeA),
	}
	edns := q(hl, dns.TypeA)
	edns.SetEdns0(4096, true)
	ch := q("dns-version.clusterset.local.", dns.TypeTXT)
	ch.Question[0].Qclass = dns.ClassCHAOS
	two := q(svc, dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	none := q(svc, dns.TypeA)
	none.Question = nil
	resp := q(svc, dns.TypeA)
	resp.Response = true
	notify := q(svc, dns.TypeA)
	notify.Opcode = dns.OpcodeNotify
	return append(seeds, edns, ch, two, none, resp, notify)
}

// FuzzServeDNS feeds arbitrary bytes, as a DNS message, to the handler
// reading a real informer cache: it must never panic, and whatever it
// writes must be a response to the query that packs.
func FuzzServeDNS(f *testing.F) {
	ctx := testContext(f, time.Minute)
	ns := newNamespace(ctx, f)
	createImport(ctx, f, ns, "hello", mcsv1beta1.ClusterSetIP, []string{"10.96.0.10", "fd00::10"}, port("http", corev1.ProtocolTCP, 80))
	createImport(ctx, f, ns, "db", mcsv1beta1.Headless, nil, port("pg", "", 5432))
	createSlice(ctx, f, ns, "db", "east", discoveryv1.AddressTypeIPv4, map[string]int32{"pg": 5432},
		ep{addr: "10.1.0.5", hostname: "db-0"}, ep{addr: "10.1.0.6"})
	c := startCache(f)
	h, err := (&clustersetdns.Server{Reader: c}).Handler()
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range fuzzSeeds(ns) {
		b, err := m.Pack()
		if err != nil {
			f.Fatalf("pack seed %v: %v", m.Question, err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}

	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		w := &sink{remote: udpClient}
		if tcp {
			w.remote = tcpClient
		}
		h.ServeDNS(w, req)
		if req.Response {
			if len(w.msgs) != 0 {
				t.Fatal("answered a response")
			}
			return
		}
		if len(w.msgs) != 1 {
			t.Fatalf("%d responses, want 1", len(w.msgs))
		}
		resp := w.msgs[0]
		if !resp.Response || resp.Id != req.Id {
			t.Fatalf("not a response to the query: %v", resp.MsgHdr)
		}
		b, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
		if !tcp && len(b) > 1232 {
			t.Fatalf("UDP response of %d bytes", len(b))
		}
	})
}
