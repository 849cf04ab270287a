package clustersetdns

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// answer is the outcome of a lookup: the rcode and the answer and
// additional sections. An empty answer with RcodeSuccess is NODATA.
type answer struct {
	rcode  int
	answer []dns.RR
	extra  []dns.RR
}

var nxdomain = answer{rcode: dns.RcodeNameError}

// service is what the zone holds for one imported service, gathered from
// its ServiceImport and, if headless, its EndpointSlices.
type service struct {
	namespace, name string
	headless        bool
	ports           []mcsv1beta1.ServicePort
	// ips are the ClusterSetIP import's addresses.
	ips []netip.Addr
	// endpoints are the headless import's ready endpoints, ordered by
	// cluster, then slice name, then position, so answers are stable.
	endpoints []endpoint
}

// endpoint is one ready endpoint of a headless import.
type endpoint struct {
	cluster string
	// host is the endpoint's DNS label: its hostname, or its dashed IP.
	host string
	// dashedIP is the dashed form of addr, which also names the endpoint.
	dashedIP string
	addr     netip.Addr
	// ports are the ports of the endpoint's slice; shared, read only.
	ports []discoveryv1.EndpointPort
}

// lookupService gathers the named import. It returns nil when the name
// must not exist: no ServiceImport, one being deleted, a ClusterSetIP
// import without a usable IP yet, or a headless import without a ready
// endpoint. Only a failed read is an error.
func (h *handler) lookupService(ctx context.Context, namespace, name string) (*service, error) {
	var si mcsv1beta1.ServiceImport
	if err := h.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &si); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get ServiceImport %s/%s: %w", namespace, name, err)
	}
	if !si.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	svc := &service{namespace: namespace, name: name, ports: si.Spec.Ports}
	if si.Spec.Type != mcsv1beta1.Headless {
		for _, s := range si.Spec.IPs {
			if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
				svc.ips = append(svc.ips, a.Unmap())
			}
		}
		if len(svc.ips) == 0 {
			return nil, nil
		}
		return svc, nil
	}

	svc.headless = true
	var list discoveryv1.EndpointSliceList
	if err := h.reader.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{
		mcsv1beta1.LabelServiceName: name,
		discoveryv1.LabelManagedBy:  v1alpha1.ManagedByAgent,
	}); err != nil {
		return nil, fmt.Errorf("list EndpointSlices of ServiceImport %s/%s: %w", namespace, name, err)
	}
	svc.endpoints = readyEndpoints(list.Items)
	if len(svc.endpoints) == 0 {
		return nil, nil
	}
	return svc, nil
}

// readyEndpoints returns the ready IP endpoints of the slices, in a stable
// order. A slice without a valid source-cluster label cannot be named in
// DNS and is skipped, as is a slice being deleted.
func readyEndpoints(items []discoveryv1.EndpointSlice) []endpoint {
	type keyed struct {
		cluster string
		slice   *discoveryv1.EndpointSlice
	}
	ordered := make([]keyed, 0, len(items))
	for i := range items {
		s := &items[i]
		cluster := lowerASCII(s.Labels[mcsv1beta1.LabelSourceCluster])
		if !isLabel(cluster) || !s.DeletionTimestamp.IsZero() ||
			(s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6) {
			continue
		}
		ordered = append(ordered, keyed{cluster: cluster, slice: s})
	}
	slices.SortFunc(ordered, func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.cluster, b.cluster), strings.Compare(a.slice.Name, b.slice.Name))
	})

	var out []endpoint
	for _, k := range ordered {
		for _, ep := range k.slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			// Only the first address has defined semantics (see
			// discovery/v1 Endpoint.Addresses).
			addr, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || addr.Zone() != "" {
				continue
			}
			addr = addr.Unmap()
			e := endpoint{cluster: k.cluster, addr: addr, dashedIP: dashed(addr), ports: k.slice.Ports}
			e.host = e.dashedIP
			if ep.Hostname != nil {
				if h := lowerASCII(*ep.Hostname); isLabel(h) {
					e.host = h
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// namespaceHasImports reports whether a live ServiceImport exists in the
// namespace, which makes <ns>.svc.<zone> an empty non-terminal.
func (h *handler) namespaceHasImports(ctx context.Context, namespace string) (bool, error) {
	var list mcsv1beta1.ServiceImportList
	if err := h.reader.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return false, fmt.Errorf("list ServiceImports in %s: %w", namespace, err)
	}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			return true, nil
		}
	}
	return false, nil
}

// answer decides the answer for nm, a name at or under the service. The
// records are owned by the question's name as asked, not lowered, so
// resolvers that randomise its case (the "0x20" defence) accept them;
// SRV targets are lower case.
func (s *service) answer(nm name, q dns.Question, zone string, ttl uint32) answer {
	b := builder{owner: q.Name, ttl: ttl}
	svcName := s.name + "." + s.namespace + ".svc." + zone
	switch nm.kind {
	case kindService:
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
			for _, a := range s.addresses() {
				b.address(q.Qtype, a)
			}
		case dns.TypeSRV:
			for i := range s.ports {
				if s.ports[i].Name != "" {
					s.srv(&b, &s.ports[i], svcName, zone)
				}
			}
		}
	case kindProto:
		if !slices.ContainsFunc(s.ports, func(p mcsv1beta1.ServicePort) bool {
			return p.Name != "" && protoLabel(p.Protocol) == nm.proto
		}) {
			return nxdomain
		}
	case kindPort:
		i := slices.IndexFunc(s.ports, func(p mcsv1beta1.ServicePort) bool {
			return lowerASCII(p.Name) == nm.port && protoLabel(p.Protocol) == nm.proto
		})
		if i < 0 {
			return nxdomain
		}
		if q.Qtype == dns.TypeSRV {
			s.srv(&b, &s.ports[i], svcName, zone)
		}
	case kindEndpoint:
		found := false
		for _, e := range s.endpoints {
			if e.cluster == nm.cluster && (e.host == nm.host || e.dashedIP == nm.host) {
				found = true
				b.address(q.Qtype, e.addr)
			}
		}
		if !found {
			return nxdomain
		}
	default:
		return nxdomain
	}
	return answer{answer: b.answer, extra: b.extra}
}

// addresses returns the service's addresses without duplicates.
func (s *service) addresses() []netip.Addr {
	if !s.headless {
		return s.ips
	}
	out := make([]netip.Addr, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		if !slices.Contains(out, e.addr) {
			out = append(out, e.addr)
		}
	}
	return out
}

// srv adds the SRV records of port p, and the addresses of their targets
// as additional records. A ClusterSetIP import has one target, the
// service; a headless one has a target per ready endpoint that serves the
// port, at the port number its slice gives.
func (s *service) srv(b *builder, p *mcsv1beta1.ServicePort, svcName, zone string) {
	if !s.headless {
		if !validPort(p.Port) {
			return
		}
		b.srvRecord(svcName, uint16(p.Port))
		for _, a := range s.ips {
			b.extraAddress(svcName, a)
		}
		return
	}
	proto := protoLabel(p.Protocol)
	for _, e := range s.endpoints {
		i := slices.IndexFunc(e.ports, func(ep discoveryv1.EndpointPort) bool {
			return ep.Name != nil && *ep.Name == p.Name && ep.Port != nil && validPort(*ep.Port) &&
				protoLabel(ptrOr(ep.Protocol)) == proto
		})
		if i < 0 {
			continue
		}
		target := e.host + "." + e.cluster + "." + svcName
		b.srvRecord(target, uint16(*e.ports[i].Port))
		b.extraAddress(target, e.addr)
	}
}

// builder accumulates records without duplicates (dual-stack slices and
// repeated hostnames would otherwise repeat them).
type builder struct {
	owner  string
	ttl    uint32
	answer []dns.RR
	extra  []dns.RR
}

func (b *builder) address(qtype uint16, a netip.Addr) {
	if rr := addressRR(b.owner, qtype, a, b.ttl); rr != nil && !containsRR(b.answer, rr) {
		b.answer = append(b.answer, rr)
	}
}

func (b *builder) extraAddress(name string, a netip.Addr) {
	if rr := addressRR(name, dns.TypeANY, a, b.ttl); rr != nil && !containsRR(b.extra, rr) {
		b.extra = append(b.extra, rr)
	}
}

// srvRecord adds an SRV record to target. All records have priority 0 and
// weight 10: every target is equally preferred, and a non-zero weight
// lets clients that follow RFC 2782 pick among them at random.
func (b *builder) srvRecord(target string, port uint16) {
	rr := &dns.SRV{
		Hdr:      dns.RR_Header{Name: b.owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: b.ttl},
		Priority: 0,
		Weight:   10,
		Port:     port,
		Target:   target,
	}
	if !containsRR(b.answer, rr) {
		b.answer = append(b.answer, rr)
	}
}

// addressRR returns an A or AAAA record for a if its family is wanted by
// qtype, nil otherwise.
func addressRR(owner string, qtype uint16, a netip.Addr, ttl uint32) dns.RR {
	switch {
	case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: a.AsSlice()}
	case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: a.AsSlice()}
	}
	return nil
}

func containsRR(rrs []dns.RR, rr dns.RR) bool {
	return slices.ContainsFunc(rrs, func(x dns.RR) bool { return dns.IsDuplicate(x, rr) })
}

// protoLabel is the SRV label of a protocol: Kubernetes defaults an empty
// one to TCP.
func protoLabel(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// validPort reports whether p fits an SRV record's port; objects are not
// trusted to have been validated.
func validPort(p int32) bool { return p > 0 && p <= 65535 }

func ptrOr(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return ""
	}
	return *p
}
