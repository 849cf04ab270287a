package clustersetdns

import (
	"net/netip"
	"strings"
)

// nameKind is the shape of a name inside the zone, as defined by the MCS
// DNS specification (KEP-1645, "DNS" section).
type nameKind int

const (
	// kindNone is a name that cannot exist in the zone.
	kindNone nameKind = iota
	// kindApex is the zone apex: <domain>.
	kindApex
	// kindVersion is dns-version.<domain>.
	kindVersion
	// kindServices is svc.<domain>, an empty non-terminal.
	kindServices
	// kindNamespace is <ns>.svc.<domain>, an empty non-terminal while the
	// namespace has a ServiceImport.
	kindNamespace
	// kindService is <svc>.<ns>.svc.<domain>.
	kindService
	// kindProto is _<proto>.<svc>.<ns>.svc.<domain>, an empty non-terminal
	// while the service has a named port of that protocol.
	kindProto
	// kindPort is _<port>._<proto>.<svc>.<ns>.svc.<domain>.
	kindPort
	// kindCluster is <clusterid>.<svc>.<ns>.svc.<domain>, which the
	// specification says must not exist.
	kindCluster
	// kindEndpoint is <hostname>.<clusterid>.<svc>.<ns>.svc.<domain>.
	kindEndpoint
)

// name is a query name taken apart. Every string field is a lower-case
// label that passed validation, so it is safe to use as an object name.
type name struct {
	kind      nameKind
	namespace string
	service   string
	// proto is "tcp", "udp" or "sctp" (kindProto, kindPort).
	proto string
	// port is the port name without its underscore (kindPort).
	port string
	// cluster is the cluster ID (kindCluster, kindEndpoint).
	cluster string
	// host is the endpoint's hostname or dashed IP (kindEndpoint).
	host string
}

// parseName takes apart qname, which must be lower case and fully
// qualified, relative to suffix, which is "." followed by the lower-case
// fully qualified zone. It reports false when qname is not inside the zone.
// It never looks anything up, so a malformed or hostile name costs no API
// call: any label that is not a plain DNS label (letters, digits and
// hyphens; an escaped byte included) makes the name kindNone.
func parseName(qname, suffix string) (name, bool) {
	if qname == suffix[1:] {
		return name{kind: kindApex}, true
	}
	rel, ok := strings.CutSuffix(qname, suffix)
	if !ok || rel == "" || escapedDot(rel) {
		return name{}, false
	}
	// Longest valid shape: _port._proto.svc.ns.svc, or host.cluster.svc.ns.svc.
	var labels [6]string
	n := 0
	for rel != "" {
		if n == len(labels) {
			return name{}, true
		}
		label, rest, _ := strings.Cut(rel, ".")
		labels[n] = label
		rel = rest
		n++
	}
	l := labels[:n]
	if n == 1 {
		switch l[0] {
		case "dns-version":
			return name{kind: kindVersion}, true
		case "svc":
			return name{kind: kindServices}, true
		}
		return name{}, true
	}
	if l[n-1] != "svc" || !isLabel(l[n-2]) {
		return name{}, true
	}
	nm := name{namespace: l[n-2]}
	if n == 2 {
		nm.kind = kindNamespace
		return nm, true
	}
	if !isLabel(l[n-3]) {
		return name{}, true
	}
	nm.service = l[n-3]
	switch n {
	case 3:
		nm.kind = kindService
	case 4:
		if proto, ok := strings.CutPrefix(l[0], "_"); ok {
			if !isProto(proto) {
				return name{}, true
			}
			nm.kind, nm.proto = kindProto, proto
		} else {
			if !isLabel(l[0]) {
				return name{}, true
			}
			nm.kind, nm.cluster = kindCluster, l[0]
		}
	case 5:
		port, isPort := strings.CutPrefix(l[0], "_")
		proto, isProtoLabel := strings.CutPrefix(l[1], "_")
		switch {
		case isPort && isProtoLabel:
			if !isLabel(port) || !isProto(proto) {
				return name{}, true
			}
			nm.kind, nm.port, nm.proto = kindPort, port, proto
		case !isPort && !isProtoLabel:
			if !isLabel(l[0]) || !isLabel(l[1]) {
				return name{}, true
			}
			nm.kind, nm.host, nm.cluster = kindEndpoint, l[0], l[1]
		default:
			return name{}, true
		}
	default:
		return name{}, true
	}
	return nm, true
}

// escapedDot reports whether rel, the part of a presentation-format name
// before the zone suffix, ends with an escaping backslash: then the dot
// that seemed to start the suffix is part of a label ("a\.clusterset.local."
// is a name under "local.", not under the zone).
func escapedDot(rel string) bool {
	n := 0
	for i := len(rel) - 1; i >= 0 && rel[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// isLabel reports whether s is a lower-case DNS label made of letters,
// digits and hyphens, at most 63 bytes long. It is looser than RFC 1123
// (a leading or trailing hyphen is allowed) because the dashed form of an
// IPv6 address such as "--1" for ::1 must match too; Kubernetes names,
// hostnames and cluster IDs are all within it.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// isProto reports whether s is the SRV label of a Kubernetes service
// protocol.
func isProto(s string) bool {
	return s == "tcp" || s == "udp" || s == "sctp"
}

// dashed is the MCS DNS label of an endpoint without a hostname: its
// address with every '.' or ':' replaced by '-' (10.1.0.5 → 10-1-0-5,
// fd00::1 → fd00--1), as CoreDNS does for cluster.local.
func dashed(a netip.Addr) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == ':' {
			return '-'
		}
		return r
	}, a.Unmap().String())
}

// lowerASCII returns s with ASCII upper-case letters lowered; DNS compares
// names case-insensitively in ASCII only (RFC 4343). It does not allocate
// when s is already lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}
