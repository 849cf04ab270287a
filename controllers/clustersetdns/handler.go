package clustersetdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/miekg/dns"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// handler is the dns.Handler behind a Server: the validated configuration
// and the zone's fixed records. It is safe for concurrent use; nothing in
// it changes after newHandler.
type handler struct {
	reader client.Reader
	// zone is the lower-case fully qualified domain, "clusterset.local.".
	zone string
	// suffix is "." + zone, what every name below the apex ends with.
	suffix  string
	ttl     uint32
	log     *slog.Logger
	metrics *metrics
	// soa goes into the authority section of negative answers (RFC 2308)
	// and answers SOA queries at the apex. It is shared by all responses
	// and must not be modified.
	soa *dns.SOA
	// version answers TXT dns-version.<zone>; shared, must not be modified.
	version *dns.TXT
}

func newHandler(reader client.Reader, zone string, ttl uint32, log *slog.Logger, m *metrics) *handler {
	return &handler{
		reader:  reader,
		zone:    zone,
		suffix:  "." + zone,
		ttl:     ttl,
		log:     log,
		metrics: m,
		soa: &dns.SOA{
			Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:  "ns.dns." + zone,
			// hostmaster@<zone>, the conventional role mailbox.
			Mbox: "hostmaster." + zone,
			// The zone is never transferred (AXFR is refused), so the
			// serial and the timers carry no meaning; RFC 1912's usual
			// values keep zone checkers quiet.
			Serial:  1,
			Refresh: 7200,
			Retry:   1800,
			Expire:  86400,
			// Minttl bounds negative caching (RFC 2308): an import that
			// appears is visible after at most one TTL.
			Minttl: ttl,
		},
		version: &dns.TXT{
			Hdr: dns.RR_Header{Name: "dns-version." + zone, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
			Txt: []string{DNSSchemaVersion},
		},
	}
}

// ServeDNS answers one query. It never panics on a well-formed dns.Msg,
// whatever its content, and writes exactly one response except to a
// message that is itself a response, which it drops (answering those
// invites reflection loops).
func (h *handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if req.Response {
		return
	}
	resp := h.respond(req)

	udp := true
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		udp = false
	}
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
	}
	if opt := req.IsEdns0(); opt != nil && resp.Rcode != dns.RcodeFormatError {
		// RFC 6891 6.1.1: answer an EDNS query with an OPT of our own.
		resp.SetEdns0(maxUDPSize, false)
		if udp {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}
	resp.Truncate(size)
	if err := w.WriteMsg(resp); err != nil {
		h.log.Debug("Write DNS response", "client", w.RemoteAddr(), "error", err)
	}
	h.metrics.count(resp.Rcode)
}

// respond builds the response to req.
func (h *handler) respond(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return resp.SetRcode(req, dns.RcodeNotImplemented)
	case len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET:
		return resp.SetRcodeFormatError(req)
	}
	q := req.Question[0]
	nm, inZone := parseName(lowerASCII(q.Name), h.suffix)
	if !inZone {
		return resp.SetRcode(req, dns.RcodeRefused)
	}
	resp.SetReply(req)
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		// The zone lives in the agent's cache; there is nothing to transfer.
		resp.Rcode = dns.RcodeRefused
		return resp
	}

	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	a, err := h.resolve(ctx, nm, q)
	if err != nil {
		h.log.Warn("Look up clusterset DNS name", "name", q.Name, "error", err)
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	resp.Authoritative = true
	resp.Rcode = a.rcode
	resp.Answer, resp.Extra = a.answer, a.extra
	if len(a.answer) == 0 {
		// NXDOMAIN and NODATA: the SOA lets resolvers cache the absence
		// for its minimum (RFC 2308 sections 3 and 5).
		resp.Ns = []dns.RR{h.soa}
	}
	return resp
}

// resolve answers a query for a name inside the zone.
func (h *handler) resolve(ctx context.Context, nm name, q dns.Question) (answer, error) {
	switch nm.kind {
	case kindApex:
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			return answer{answer: []dns.RR{h.soa}}, nil
		}
		return answer{}, nil
	case kindVersion:
		if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			return answer{answer: []dns.RR{h.version}}, nil
		}
		return answer{}, nil
	case kindServices:
		// svc.<zone> always has names below it in a live clusterset;
		// NXDOMAIN here would deny them all to resolvers that apply
		// RFC 8020.
		return answer{}, nil
	case kindNamespace:
		ok, err := h.namespaceHasImports(ctx, nm.namespace)
		if err != nil || !ok {
			return nxdomain, err
		}
		return answer{}, nil
	case kindService, kindProto, kindPort, kindEndpoint:
		svc, err := h.lookupService(ctx, nm.namespace, nm.service)
		if err != nil || svc == nil {
			return nxdomain, err
		}
		return svc.answer(nm, q, h.zone, h.ttl), nil
	case kindNone, kindCluster:
		// The MCS DNS specification says <clusterid>.<svc>.<ns>.svc.<zone>
		// must not exist.
		return nxdomain, nil
	}
	return answer{}, fmt.Errorf("name kind %d not handled", nm.kind)
}
