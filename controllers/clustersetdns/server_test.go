package clustersetdns_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/controllers/clustersetdns"
)

const zone = "svc.clusterset.local."

func fqdn(ns, svc string) string { return svc + "." + ns + "." + zone }

func wantEqual[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantNegative checks an authoritative NXDOMAIN or NODATA carrying the
// zone's SOA with the 5 s TTL.
func wantNegative(t *testing.T, d digResult, status string) {
	t.Helper()
	if d.status != status || !d.hasFlag("aa") || len(d.answer) != 0 {
		t.Errorf("status %s flags %v answers %d, want %s aa no answer:\n%s", d.status, d.flags, len(d.answer), status, d.raw)
	}
	soa := rdata(d.authority, "SOA")
	if len(soa) != 1 || !strings.HasPrefix(soa[0], "ns.dns.clusterset.local. hostmaster.clusterset.local. ") || d.authority[0][1] != "5" {
		t.Errorf("authority = %v, want the zone's SOA with TTL 5", d.authority)
	}
}

// TestClusterSetIPService: a ClusterSetIP import answers A, AAAA and SRV
// to Go's resolver and to dig, over UDP and TCP, whatever the case of the
// name, with SRV targets' addresses as additional records.
func TestClusterSetIPService(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	createImport(ctx, t, ns, "hello", mcsv1beta1.ClusterSetIP, []string{"10.96.0.10", "fd00:96::10"},
		port("http", corev1.ProtocolTCP, 42), port("dns", corev1.ProtocolUDP, 53))
	createImport(ctx, t, ns, "single", mcsv1beta1.ClusterSetIP, []string{"10.96.0.11"}, port("http", "", 42))
	createImport(ctx, t, ns, "unnamed", mcsv1beta1.ClusterSetIP, []string{"10.96.0.12"}, port("", corev1.ProtocolTCP, 80))
	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	res := goResolver(r.Addr())
	hello := fqdn(ns, "hello")

	t.Run("go resolver", func(t *testing.T) {
		addrs, err := res.LookupHost(ctx, hello)
		if err != nil {
			t.Fatalf("LookupHost: %v", err)
		}
		slices.Sort(addrs)
		wantEqual(t, "LookupHost", addrs, []string{"10.96.0.10", "fd00:96::10"})

		_, srvs, err := res.LookupSRV(ctx, "http", "tcp", hello)
		if err != nil {
			t.Fatalf("LookupSRV: %v", err)
		}
		if len(srvs) != 1 || srvs[0].Port != 42 || srvs[0].Target != hello {
			t.Errorf("SRV _http._tcp = %+v, want one to %s:42", srvs, hello)
		}
		_, srvs, err = res.LookupSRV(ctx, "dns", "udp", hello)
		if err != nil || len(srvs) != 1 || srvs[0].Port != 53 {
			t.Errorf("SRV _dns._udp = %+v, %v, want port 53", srvs, err)
		}
		// A plain SRV query gets every named port.
		_, srvs, err = res.LookupSRV(ctx, "", "", hello)
		if err != nil {
			t.Fatalf("LookupSRV plain: %v", err)
		}
		var ports []uint16
		for _, s := range srvs {
			ports = append(ports, s.Port)
		}
		slices.Sort(ports)
		wantEqual(t, "plain SRV ports", ports, []uint16{42, 53})

		// Mixed case is the same name (RFC 4343).
		addrs, err = res.LookupHost(ctx, strings.ToUpper(fqdn(ns, "single")))
		if err != nil {
			t.Fatalf("LookupHost upper case: %v", err)
		}
		wantEqual(t, "LookupHost upper case", addrs, []string{"10.96.0.11"})
	})

	t.Run("dig", func(t *testing.T) {
		for _, transport := range []string{"+notcp", "+tcp"} {
			d := dig(t, r.Addr(), transport, hello, "A")
			if d.status != "NOERROR" || !d.hasFlag("aa") || d.hasFlag("ra") {
				t.Errorf("%s A: status %s flags %v, want NOERROR aa without ra", transport, d.status, d.flags)
			}
			wantEqual(t, transport+" A", rdata(d.answer, "A"), []string{"10.96.0.10"})
			if len(d.answer) == 1 && d.answer[0][1] != "5" {
				t.Errorf("TTL %s, want 5", d.answer[0][1])
			}
			d = dig(t, r.Addr(), transport, hello, "AAAA")
			wantEqual(t, transport+" AAAA", rdata(d.answer, "AAAA"), []string{"fd00:96::10"})
		}

		d := dig(t, r.Addr(), "_http._tcp."+hello, "SRV")
		wantEqual(t, "SRV _http._tcp", rdata(d.answer, "SRV"), []string{"0 10 42 " + hello})
		wantEqual(t, "SRV additional A", rdata(d.additional, "A"), []string{"10.96.0.10"})
		wantEqual(t, "SRV additional AAAA", rdata(d.additional, "AAAA"), []string{"fd00:96::10"})

		d = dig(t, r.Addr(), hello, "SRV")
		wantEqual(t, "plain SRV", rdata(d.answer, "SRV"), []string{"0 10 42 " + hello, "0 10 53 " + hello})

		d = dig(t, r.Addr(), "HeLLo."+strings.ToUpper(ns)+".Svc.ClusterSet.LOCAL.", "A")
		wantEqual(t, "mixed-case A", rdata(d.answer, "A"), []string{"10.96.0.10"})
		if len(d.answer) == 1 && d.answer[0][0] != "HeLLo."+strings.ToUpper(ns)+".Svc.ClusterSet.LOCAL." {
			t.Errorf("owner %s, want the name as asked", d.answer[0][0])
		}

		// The port of another protocol, an unknown port, an unnamed port.
		wantNegative(t, dig(t, r.Addr(), "_http._udp."+hello, "SRV"), "NXDOMAIN")
		wantNegative(t, dig(t, r.Addr(), "_grpc._tcp."+hello, "SRV"), "NXDOMAIN")
		wantNegative(t, dig(t, r.Addr(), fqdn(ns, "unnamed"), "SRV"), "NOERROR")
		// The name exists, the type does not: NODATA.
		wantNegative(t, dig(t, r.Addr(), fqdn(ns, "single"), "AAAA"), "NOERROR")
		wantNegative(t, dig(t, r.Addr(), hello, "TXT"), "NOERROR")
		wantNegative(t, dig(t, r.Addr(), "_http._tcp."+hello, "A"), "NOERROR")
		// Empty non-terminals are not NXDOMAIN.
		wantNegative(t, dig(t, r.Addr(), "_tcp."+hello, "A"), "NOERROR")
		wantNegative(t, dig(t, r.Addr(), ns+"."+zone, "A"), "NOERROR")
		// <clusterid>.<svc>.<ns>.svc.<zone> must not exist.
		wantNegative(t, dig(t, r.Addr(), "east."+hello, "A"), "NXDOMAIN")
	})

	// The MCS conformance suite runs exactly this against CoreDNS.
	t.Run("nslookup SRV", func(t *testing.T) {
		bin, err := exec.LookPath("nslookup")
		if err != nil {
			t.Fatalf("nslookup not found (%v): install it with `apt-get install -y bind9-dnsutils`", err)
		}
		out, err := exec.CommandContext(ctx, bin, "-port="+strconv.Itoa(r.UDPAddr.Port), "-type=SRV", fqdn(ns, "single"), "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("nslookup: %v\n%s", err, out)
		}
		var records []string
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "service =") {
				records = append(records, strings.Fields(line)...)
			}
		}
		// "<name> service = 0 10 42 <target>."
		if len(records) != 7 || records[5] != "42" || records[6] != fqdn(ns, "single") {
			t.Errorf("nslookup printed %q, want one SRV to port 42 of %s:\n%s", records, fqdn(ns, "single"), out)
		}
	})
}

// TestHeadlessService: a headless import answers with every ready endpoint
// of every cluster, names each endpoint under its cluster by hostname or
// dashed IP, and its SRV records use the slices' port numbers.
func TestHeadlessService(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	createImport(ctx, t, ns, "db", mcsv1beta1.Headless, nil, port("pg", corev1.ProtocolTCP, 5432))
	pg := map[string]int32{"pg": 15432}
	createSlice(ctx, t, ns, "db", "east", discoveryv1.AddressTypeIPv4, pg,
		ep{addr: "10.1.0.5", hostname: "db-0", ready: ptr.To(true)},
		ep{addr: "10.1.0.6"}, // ready unknown counts as ready
		ep{addr: "10.1.0.7", ready: ptr.To(false)})
	createSlice(ctx, t, ns, "db", "west", discoveryv1.AddressTypeIPv6, pg, ep{addr: "fd00:2::7", ready: ptr.To(true)})
	// Not the agent's: ignored.
	createSliceLabelled(ctx, t, ns, "db", discoveryv1.AddressTypeIPv4,
		map[string]string{mcsv1beta1.LabelServiceName: "db", mcsv1beta1.LabelSourceCluster: "rogue"}, pg, ep{addr: "10.9.9.9"})
	// Imported, but nothing ready.
	createImport(ctx, t, ns, "idle", mcsv1beta1.Headless, nil, port("pg", corev1.ProtocolTCP, 5432))
	createSlice(ctx, t, ns, "idle", "east", discoveryv1.AddressTypeIPv4, pg, ep{addr: "10.1.0.9", ready: ptr.To(false)})

	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	res := goResolver(r.Addr())
	db := fqdn(ns, "db")

	addrs, err := res.LookupHost(ctx, db)
	if err != nil {
		t.Fatalf("LookupHost: %v", err)
	}
	slices.Sort(addrs)
	wantEqual(t, "LookupHost", addrs, []string{"10.1.0.5", "10.1.0.6", "fd00:2::7"})

	_, srvs, err := res.LookupSRV(ctx, "pg", "tcp", db)
	if err != nil {
		t.Fatalf("LookupSRV: %v", err)
	}
	var targets []string
	for _, s := range srvs {
		targets = append(targets, fmt.Sprintf("%s:%d", s.Target, s.Port))
	}
	slices.Sort(targets)
	wantEqual(t, "SRV targets", targets, []string{
		"10-1-0-6.east." + db + ":15432",
		"db-0.east." + db + ":15432",
		"fd00-2--7.west." + db + ":15432",
	})

	for name, want := range map[string]string{
		"db-0.east." + db:      "10.1.0.5",
		"10-1-0-5.east." + db:  "10.1.0.5", // the dashed IP names it too
		"10-1-0-6.east." + db:  "10.1.0.6",
		"fd00-2--7.west." + db: "fd00:2::7",
	} {
		addrs, err := res.LookupHost(ctx, name)
		if err != nil || len(addrs) != 1 || addrs[0] != want {
			t.Errorf("LookupHost %s = %v, %v, want [%s]", name, addrs, err, want)
		}
	}

	d := dig(t, r.Addr(), "_pg._tcp."+db, "SRV")
	wantEqual(t, "SRV additional A", rdata(d.additional, "A"), []string{"10.1.0.5", "10.1.0.6"})
	wantEqual(t, "SRV additional AAAA", rdata(d.additional, "AAAA"), []string{"fd00:2::7"})
	d = dig(t, r.Addr(), "+tcp", db, "SRV")
	if len(d.answer) != 3 {
		t.Errorf("plain SRV over TCP: %d answers, want 3:\n%s", len(d.answer), d.raw)
	}
	wantEqual(t, "A", rdata(dig(t, r.Addr(), db, "A").answer, "A"), []string{"10.1.0.5", "10.1.0.6"})

	for _, name := range []string{
		"db-0.west." + db,     // the hostname is in another cluster
		"10-1-0-7.east." + db, // not ready
		"10-9-9-9.rogue." + db,
		"east." + db, // <clusterid> names do not exist
		fqdn(ns, "idle"),
		"_pg._tcp." + fqdn(ns, "idle"),
	} {
		wantNegative(t, dig(t, r.Addr(), name, "A"), "NXDOMAIN")
	}
	wantNegative(t, dig(t, r.Addr(), "db-0.east."+db, "AAAA"), "NOERROR")
	if _, err := res.LookupHost(ctx, fqdn(ns, "idle")); !isNotFound(err) {
		t.Errorf("LookupHost of a headless import without ready endpoints: %v, want not found", err)
	}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// TestZone: the zone's own names, names outside it, and malformed queries.
func TestZone(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	res := goResolver(r.Addr())

	txt, err := res.LookupTXT(ctx, "dns-version.clusterset.local.")
	if err != nil || !slices.Equal(txt, []string{"1.0.0"}) {
		t.Errorf("LookupTXT dns-version = %v, %v, want [1.0.0]", txt, err)
	}
	d := dig(t, r.Addr(), "+tcp", "DNS-Version.clusterset.local.", "TXT")
	wantEqual(t, "TXT dns-version", rdata(d.answer, "TXT"), []string{`"1.0.0"`})

	d = dig(t, r.Addr(), "clusterset.local.", "SOA")
	if d.status != "NOERROR" || !d.hasFlag("aa") || len(rdata(d.answer, "SOA")) != 1 {
		t.Errorf("apex SOA:\n%s", d.raw)
	}
	wantNegative(t, dig(t, r.Addr(), "svc.clusterset.local.", "A"), "NOERROR")
	wantNegative(t, dig(t, r.Addr(), "nothing-here."+zone, "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), "missing.nothing-here."+zone, "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), "+tcp", "www.clusterset.local.", "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), "a.b.c.d.e.f."+zone, "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), "Not_A_Label.ns."+zone, "A"), "NXDOMAIN")
	if _, err := res.LookupHost(ctx, "missing.default."+zone); !isNotFound(err) {
		t.Errorf("LookupHost of a service not imported: %v, want not found", err)
	}

	for _, name := range []string{"example.com.", "local.", "xclusterset.local.", `a\.clusterset.local.`} {
		d := dig(t, r.Addr(), name, "A")
		if d.status != "REFUSED" || d.hasFlag("aa") {
			t.Errorf("%s: status %s flags %v, want REFUSED without aa", name, d.status, d.flags)
		}
	}
	// dig prints no status for a failed transfer, so ask by hand.
	axfr := new(dns.Msg).SetQuestion("clusterset.local.", dns.TypeAXFR)
	if resp := exchange(t, "tcp", r.Addr(), axfr); resp.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR: %s, want REFUSED", dns.RcodeToString[resp.Rcode])
	}

	if d := dig(t, r.Addr(), "-c", "CH", "dns-version.clusterset.local.", "TXT"); d.status != "FORMERR" {
		t.Errorf("class CH: status %s, want FORMERR", d.status)
	}
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg).SetQuestion("dns-version.clusterset.local.", dns.TypeTXT)
		m.Question = append(m.Question, m.Question[0])
		if resp := exchange(t, network, r.Addr(), m); resp.Rcode != dns.RcodeFormatError {
			t.Errorf("%s: two questions: %s, want FORMERR", network, dns.RcodeToString[resp.Rcode])
		}
		m.Question = nil
		if resp := exchange(t, network, r.Addr(), m); resp.Rcode != dns.RcodeFormatError {
			t.Errorf("%s: no question: %s, want FORMERR", network, dns.RcodeToString[resp.Rcode])
		}
	}
}

// TestImportLifecycle: answers follow the ServiceImport: absent, then
// created, changed, terminating (held by a finalizer) and gone.
func TestImportLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	name := fqdn(ns, "late")

	wantNegative(t, dig(t, r.Addr(), name, "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), ns+"."+zone, "A"), "NXDOMAIN")

	si := createImport(ctx, t, ns, "late", mcsv1beta1.ClusterSetIP, []string{"10.96.1.1"}, port("http", "", 80))
	wantEqual(t, "A after create", rdata(dig(t, r.Addr(), name, "A").answer, "A"), []string{"10.96.1.1"})

	si.Spec.IPs = []string{"10.96.1.2"}
	if err := k8s.Update(ctx, si); err != nil {
		t.Fatalf("update: %v", err)
	}
	wantEqual(t, "A after update", rdata(dig(t, r.Addr(), name, "A").answer, "A"), []string{"10.96.1.2"})

	si.Finalizers = []string{"test.causeway.dev/hold"}
	if err := k8s.Update(ctx, si); err != nil {
		t.Fatalf("add finalizer: %v", err)
	}
	if err := k8s.Delete(ctx, si); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(si), si); err != nil || si.DeletionTimestamp.IsZero() {
		t.Fatalf("the ServiceImport should be terminating: %v", err)
	}
	wantNegative(t, dig(t, r.Addr(), name, "A"), "NXDOMAIN")
	wantNegative(t, dig(t, r.Addr(), ns+"."+zone, "A"), "NXDOMAIN")

	si.Finalizers = nil
	if err := k8s.Update(ctx, si); err != nil {
		t.Fatalf("remove finalizer: %v", err)
	}
	wantNegative(t, dig(t, r.Addr(), name, "A"), "NXDOMAIN")
}

// TestInformerCache: with the agent's kind of Reader, an informer cache,
// answers follow the API server once the cache has seen the change.
func TestInformerCache(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	c := startCache(t)
	r := startServer(t, &clustersetdns.Server{Reader: c})
	res := goResolver(r.Addr())
	web, db := fqdn(ns, "web"), fqdn(ns, "db")

	if _, err := res.LookupHost(ctx, web); !isNotFound(err) {
		t.Fatalf("before the import: %v, want not found", err)
	}
	si := createImport(ctx, t, ns, "web", mcsv1beta1.ClusterSetIP, []string{"10.96.2.1"}, port("http", "", 80))
	createImport(ctx, t, ns, "db", mcsv1beta1.Headless, nil, port("pg", "", 5432))
	createSlice(ctx, t, ns, "db", "east", discoveryv1.AddressTypeIPv4, map[string]int32{"pg": 5432}, ep{addr: "10.1.3.4", hostname: "db-0"})

	eventually(t, 10*time.Second, func() error {
		addrs, err := res.LookupHost(ctx, web)
		if err != nil || !slices.Equal(addrs, []string{"10.96.2.1"}) {
			return fmt.Errorf("LookupHost %s = %v: %w", web, addrs, err)
		}
		_, srvs, err := res.LookupSRV(ctx, "pg", "tcp", db)
		if err != nil || len(srvs) != 1 || srvs[0].Target != "db-0.east."+db {
			return fmt.Errorf("LookupSRV %s = %v: %w", db, srvs, err)
		}
		return nil
	})

	if err := k8s.Delete(ctx, si); err != nil {
		t.Fatalf("delete: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := res.LookupHost(ctx, web); !isNotFound(err) {
			return fmt.Errorf("after delete: %w, want not found", err)
		}
		return nil
	})
}

// TestTruncation: a headless answer too big for UDP is truncated, and the
// resolver gets all of it over TCP.
func TestTruncation(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	createImport(ctx, t, ns, "big", mcsv1beta1.Headless, nil, port("http", "", 80))
	var eps []ep
	for i := range 100 {
		eps = append(eps, ep{addr: fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)})
	}
	createSlice(ctx, t, ns, "big", "east", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080}, eps...)
	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	big := fqdn(ns, "big")

	d := dig(t, r.Addr(), "+notcp", "+ignore", "+noedns", big, "A")
	if !d.hasFlag("tc") || len(d.answer) >= 100 {
		t.Errorf("UDP without EDNS: flags %v, %d answers, want tc and fewer than 100", d.flags, len(d.answer))
	}
	if d := dig(t, r.Addr(), "+tcp", big, "A"); len(d.answer) != 100 || d.hasFlag("tc") {
		t.Errorf("TCP: %d answers, flags %v, want 100 without tc", len(d.answer), d.flags)
	}
	addrs, err := goResolver(r.Addr()).LookupHost(ctx, big)
	if err != nil || len(addrs) != 100 {
		t.Errorf("Go resolver: %d addresses, %v, want 100 (retried over TCP)", len(addrs), err)
	}
}

// TestMetricsAndOptions: the counter counts by rcode; Domain and TTL apply.
func TestMetricsAndOptions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	ns := newNamespace(ctx, t)
	createImport(ctx, t, ns, "api", mcsv1beta1.ClusterSetIP, []string{"10.96.3.1"}, port("http", "", 80))
	reg := prometheus.NewRegistry()
	srv := &clustersetdns.Server{Reader: k8s, Domain: "Mesh.Example", TTL: 30, Registerer: reg}
	r := startServer(t, srv)

	d := dig(t, r.Addr(), "api."+ns+".svc.mesh.example.", "A")
	wantEqual(t, "A", rdata(d.answer, "A"), []string{"10.96.3.1"})
	if len(d.answer) == 1 && d.answer[0][1] != "30" {
		t.Errorf("TTL %s, want 30", d.answer[0][1])
	}
	dig(t, r.Addr(), "missing."+ns+".svc.mesh.example.", "A")
	dig(t, r.Addr(), "missing2."+ns+".svc.mesh.example.", "A")
	if d := dig(t, r.Addr(), "api."+ns+".svc.clusterset.local.", "A"); d.status != "REFUSED" {
		t.Errorf("the default zone is not served with Domain set: %s", d.status)
	}

	// A second server on the same registry shares the counter.
	if _, err := (&clustersetdns.Server{Reader: k8s, Registerer: reg}).Handler(); err != nil {
		t.Fatalf("second Handler on the same registry: %v", err)
	}

	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "causeway_dns_queries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if got["NOERROR"] != 1 || got["NXDOMAIN"] != 2 || got["REFUSED"] != 1 || len(got) > 12 {
		t.Errorf("causeway_dns_queries_total = %v, want NOERROR 1, NXDOMAIN 2, REFUSED 1", got)
	}
}

// TestServerLifecycle: configuration errors, a port in use, and shutdown.
func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	if _, err := (&clustersetdns.Server{}).Handler(); err == nil {
		t.Error("Handler without a Reader: no error")
	}
	if _, err := (&clustersetdns.Server{Reader: k8s, Domain: "bad..domain"}).Handler(); err == nil {
		t.Error("Handler with an invalid domain: no error")
	}

	r := startServer(t, &clustersetdns.Server{Reader: k8s})
	if r.TCPAddr.Port != r.UDPAddr.Port || r.TCPAddr.Port == 0 {
		t.Errorf("TCP %s and UDP %s should share a non-zero port", r.TCPAddr, r.UDPAddr)
	}
	if _, err := (&clustersetdns.Server{Reader: k8s}).Listen(r.Addr()); err == nil {
		t.Error("Listen on a port in use: no error")
	}

	ctx, cancel := context.WithCancel(testContext(t, time.Minute))
	srv := &clustersetdns.Server{Reader: k8s}
	// Find a free port pair, then serve on it with ListenAndServe.
	probe, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := probe.Addr()
	if err := probe.Shutdown(ctx); err != nil {
		t.Fatalf("shut down: %v", err)
	}
	if err := probe.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	<-probe.Done()
	if err := probe.Err(); err != nil {
		t.Errorf("Err after Shutdown: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, addr) }()
	eventually(t, 10*time.Second, func() error {
		m := new(dns.Msg).SetQuestion("dns-version.clusterset.local.", dns.TypeTXT)
		_, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(m, addr)
		return err
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenAndServe after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after cancel")
	}
	// The port may already belong to another test's listener (packages
	// run in parallel), so what must be gone is the DNS server, not any
	// listener on that port.
	m := new(dns.Msg).SetQuestion("dns-version.clusterset.local.", dns.TypeTXT)
	if _, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(m, addr); err == nil {
		t.Error("still answering DNS over TCP after ListenAndServe returned")
	}
}
