package clustersetdns

import (
	"net/netip"
	"testing"
)

func TestParseName(t *testing.T) {
	const suffix = ".clusterset.local."
	tests := map[string]struct {
		qname  string
		want   name
		inZone bool
	}{
		"apex":            {qname: "clusterset.local.", want: name{kind: kindApex}, inZone: true},
		"version":         {qname: "dns-version.clusterset.local.", want: name{kind: kindVersion}, inZone: true},
		"svc":             {qname: "svc.clusterset.local.", want: name{kind: kindServices}, inZone: true},
		"other top label": {qname: "www.clusterset.local.", want: name{}, inZone: true},
		"namespace":       {qname: "ns.svc.clusterset.local.", want: name{kind: kindNamespace, namespace: "ns"}, inZone: true},
		"service": {qname: "hello.ns.svc.clusterset.local.",
			want: name{kind: kindService, namespace: "ns", service: "hello"}, inZone: true},
		"proto": {qname: "_tcp.hello.ns.svc.clusterset.local.",
			want: name{kind: kindProto, namespace: "ns", service: "hello", proto: "tcp"}, inZone: true},
		"unknown proto": {qname: "_quic.hello.ns.svc.clusterset.local.", want: name{}, inZone: true},
		"port": {qname: "_http._sctp.hello.ns.svc.clusterset.local.",
			want: name{kind: kindPort, namespace: "ns", service: "hello", port: "http", proto: "sctp"}, inZone: true},
		"cluster": {qname: "east.hello.ns.svc.clusterset.local.",
			want: name{kind: kindCluster, namespace: "ns", service: "hello", cluster: "east"}, inZone: true},
		"endpoint": {qname: "db-0.east.hello.ns.svc.clusterset.local.",
			want: name{kind: kindEndpoint, namespace: "ns", service: "hello", cluster: "east", host: "db-0"}, inZone: true},
		"dashed ipv6 endpoint": {qname: "--1.east.hello.ns.svc.clusterset.local.",
			want: name{kind: kindEndpoint, namespace: "ns", service: "hello", cluster: "east", host: "--1"}, inZone: true},
		"port then host":    {qname: "_http.east.hello.ns.svc.clusterset.local.", want: name{}, inZone: true},
		"too deep":          {qname: "a.b.c.d.e.f.g.h.svc.clusterset.local.", want: name{}, inZone: true},
		"six labels":        {qname: "a.b.c.hello.ns.svc.clusterset.local.", want: name{}, inZone: true},
		"not under svc":     {qname: "hello.ns.pod.clusterset.local.", want: name{}, inZone: true},
		"underscore label":  {qname: "hel_lo.ns.svc.clusterset.local.", want: name{}, inZone: true},
		"escaped byte":      {qname: `h\000.ns.svc.clusterset.local.`, want: name{}, inZone: true},
		"escaped dot label": {qname: `a\.b.ns.svc.clusterset.local.`, want: name{}, inZone: true},
		"empty label":       {qname: "a..ns.svc.clusterset.local.", want: name{}, inZone: true},
		"long label": {qname: "a234567890123456789012345678901234567890123456789012345678901234.ns.svc.clusterset.local.",
			want: name{}, inZone: true},
		"outside":             {qname: "example.com."},
		"parent":              {qname: "local."},
		"suffix not on label": {qname: "xclusterset.local."},
		"escaped suffix dot":  {qname: `a\.clusterset.local.`},
		"root":                {qname: "."},
	}
	for tname, tc := range tests {
		t.Run(tname, func(t *testing.T) {
			got, inZone := parseName(tc.qname, suffix)
			if inZone != tc.inZone || got != tc.want {
				t.Errorf("parseName(%q) = %+v, %v; want %+v, %v", tc.qname, got, inZone, tc.want, tc.inZone)
			}
		})
	}
}

func TestDashed(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.0.5":         "10-1-0-5",
		"fd00::1":          "fd00--1",
		"::ffff:10.1.0.5":  "10-1-0-5",
		"2001:db8:0:0:1::": "2001-db8-0-0-1--",
	} {
		if got := dashed(netip.MustParseAddr(in)); got != want {
			t.Errorf("dashed(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc.": "abc.", "HeLLo.NS.": "hello.ns.", `\200A`: `\200a`} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
}
