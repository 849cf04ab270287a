package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// TestMTLSModes: captured plaintext for the workload is refused in
// STRICT mode (the default) and served in PERMISSIVE mode, without an
// identity: a policy that names a principal refuses it, and no header
// can claim one.
func TestMTLSModes(t *testing.T) {
	m := startMesh(t, inbound{})
	chain, key, _ := m.ca.svid(t, apiID)
	m.agent.serve(t, "api2", chain, key, writeBundle(t, m.bundleFile, m.ca.root))
	// The capture rules would redirect a client's connection to the
	// pod's port httpPort to the inbound address; the test's
	// OriginalDst says so for every connection.
	meant := netip.MustParseAddrPort(m.httpBE.addr)
	api := startNode(t, m.agent, m.bundleFile, "api2", nodeOptions{
		ns: "shop", sa: "api", inboundAddr: "127.0.0.1:0",
		originalDst: func(*net.TCPConn) (netip.AddrPort, error) { return meant, nil },
	})
	api.waitIdentity(t)
	request := func() (int, echoReply, error) {
		c, err := net.Dial("tcp", api.bindingAddr(t, xdsconv.VirtualInboundListener))
		if err != nil {
			return 0, echoReply{}, err
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		code, body := rawHTTP(t, c, "/plain", "X-Forwarded-Client-Cert: URI="+webID.String())
		var r echoReply
		_ = json.Unmarshal([]byte(body), &r)
		return code, r, nil
	}

	for _, tc := range []struct {
		name string
		in   inbound
		want int // 0: the connection is closed without an answer
	}{
		{"no mode: STRICT", inbound{}, 0},
		{"STRICT", inbound{mtls: MTLSStrict}, 0},
		{"PERMISSIVE", inbound{mtls: MTLSPermissive}, 200},
		{"PERMISSIVE, ALLOW on a principal", inbound{mtls: MTLSPermissive, httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.httpPort, tc.in.tcpPort = m.httpPort, m.tcpPort
			api.configureInbound(t, tc.name, tc.in)
			code, r, err := request()
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("captured plaintext: %d, want %d", code, tc.want)
			}
			if code == 200 && (r.Path != "/plain" || r.Headers.Get("X-Forwarded-Client-Cert") != "") {
				t.Fatalf("the workload saw %+v", r)
			}
		})
	}
	if err := applyErr(t, api.store, ldsType, "bad", withMode(t, inbound{httpPort: m.httpPort, tcpPort: m.tcpPort}, "LENIENT")); err == nil || !strings.Contains(err.Error(), "want STRICT or PERMISSIVE") {
		t.Fatalf("an unknown mode: %v", err)
	}
}

func withMode(t *testing.T, in inbound, mode string) proto.Message {
	in.mtls = mode
	ls, _ := in.resources(t)
	return ls[0]
}

// TestPeerClusterFilterState: RBAC's filter_state principal reads the
// peer's cluster, which the proxy records for tunnels from its own
// cluster.
func TestPeerClusterFilterState(t *testing.T) {
	m := startMesh(t, inbound{httpRBAC: []*rbacv3.RBAC{allowCluster("east")}})
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + m.web.bindingAddr(t, "out_http") + "/c"
	if code, _, _ := get(t, client, url, "api", nil); code != 200 {
		t.Fatalf("from the same cluster, allowed from east: %d", code)
	}
	m.api.configureInbound(t, "west", inbound{httpPort: m.httpPort, tcpPort: m.tcpPort, httpRBAC: []*rbacv3.RBAC{allowCluster("west")}})
	if code, _, _ := get(t, client, url, "api", nil); code != 403 {
		t.Fatalf("from east, allowed only from west: %d", code)
	}
}

func sdsConfig(name string, ads bool) *tlsv3.SdsSecretConfig {
	src := &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3}
	if ads {
		src.ConfigSourceSpecifier = &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}
	} else {
		src.ConfigSourceSpecifier = &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType: corev3.ApiConfigSource_GRPC, TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sds-grpc"}}}},
		}}
	}
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: src}
}

func uriSAN(m *matcherv3.StringMatcher) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m}
}

func spiffeContext(cert string, sans ...*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(cert, true)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sdsConfig(SecretRootCA, false),
		}},
	}
}

func tlsSocket(t testing.TB, m proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, m)}}
}

// TestSDSTLSContexts: listeners and clusters whose TLS contexts name SDS
// secrets ("default", "ROOTCA") get them from the proxy's SDS store,
// verify peers as X509-SVIDs of the trust domain (go-spiffe) and honour
// URI SAN matchers; a secret that has not arrived is subscribed to and
// fails handshakes closed until it does.
func TestSDSTLSContexts(t *testing.T) {
	m := startMesh(t, inbound{})
	plain := startEcho(t, "plain", echo.ProtocolHTTP)
	// An HTTPS workload that presents an SVID and records the client's.
	_, _, apiCert := m.ca.svid(t, apiID)
	_, _, evilCert := m.ca.svid(t, evilID)
	_, _, webCert := m.ca.svid(t, webID)
	seen := make(chan string, 8)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			seen <- r.TLS.PeerCertificates[0].URIs[0].String()
		}
		_, _ = io.WriteString(w, "over SVIDs")
	}))
	serverCert := apiCert
	up.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serverCert, nil }}
	up.StartTLS()
	defer up.Close()

	chain, key, _ := m.ca.svid(t, webID)
	m.agent.serve(t, "tls", chain, key, writeBundle(t, m.bundleFile, m.ca.root))
	n := startNode(t, m.agent, m.bundleFile, "tls", nodeOptions{ns: "front", sa: "web", bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "tls_in"}}})
	n.waitIdentity(t)
	listener := hcmListener(t, "tls_in", "tls_routes", false)
	listener.FilterChains[0].TransportSocket = tlsSocket(t, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext:         spiffeContext(SecretDefault, uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://mesh.test/ns/front/"}})),
	})
	secure := edsCluster(t, "secure", false, clusterv3.Cluster_ROUND_ROBIN)
	// With SNI, the test server picks its certificate by GetCertificate.
	secure.TransportSocket = tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "api.shop", CommonTlsContext: spiffeContext(SecretDefault,
		uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: apiID.String()}}))})
	apply(t, n.store, cdsType, "tls", edsCluster(t, "plain", false, clusterv3.Cluster_ROUND_ROBIN), secure)
	apply(t, n.store, edsType, "tls", cla(t, "plain", plain.addr), cla(t, "secure", up.Listener.Addr().String()))
	apply(t, n.store, rdsType, "tls", &routev3.RouteConfiguration{Name: "tls_routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Match: prefixMatch("/up"), Action: routeTo("secure")},
			{Match: prefixMatch("/"), Action: routeTo("plain")},
		},
	}}})
	apply(t, n.store, ldsType, "tls", listener)
	addr := n.bindingAddr(t, "tls_in")

	get := func(cert *tls.Certificate, path string) (int, string, error) {
		conf := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test is about the server's verification of the client
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		tr := &http.Transport{TLSClientConfig: conf}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	t.Run("downstream: SVID by SDS, clients verified against ROOTCA and the SAN matcher", func(t *testing.T) {
		if code, _, err := get(webCert, "/x"); err != nil || code != 200 {
			t.Fatalf("a front/ client: %d %v", code, err)
		}
		other := newMeshCA(t, spiffeid.RequireTrustDomainFromString("other.test"))
		_, _, otherCert := other.svid(t, spiffeid.RequireFromSegments(other.root.TrustDomain(), "ns", "front", "sa", "web"))
		for name, cert := range map[string]*tls.Certificate{
			"a URI SAN the matcher refuses": evilCert,
			"another trust domain":          otherCert,
			"the ID only as a DNS SAN":      dnsSANOnly(t, m.ca, webID),
			"expired":                       expiredSVID(t, m.ca, webID),
			"no certificate":                nil,
		} {
			if code, _, err := get(cert, "/x"); err == nil {
				t.Errorf("%s: answered %d, want the handshake refused", name, code)
			}
		}
	})

	t.Run("a session ticket does not outlive the bundle that trusted its client", func(t *testing.T) {
		tickets := tls.NewLRUClientSessionCache(4)
		dial := func() (bool, error) {
			conf := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tickets, Certificates: []tls.Certificate{*webCert}, ServerName: "tls"} //nolint:gosec // the test is about the server's verification of the client
			c, err := tls.Dial("tcp", addr, conf)
			if err != nil {
				return false, err
			}
			defer c.Close()
			// A request: TLS 1.3 tickets, and a refusal of the client
			// certificate, arrive after the client's handshake.
			if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: tls\r\n\r\n"); err != nil {
				return false, err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return c.ConnectionState().DidResume, nil
		}
		for i := range 2 {
			resumed, err := dial()
			if err != nil || resumed != (i == 1) {
				t.Fatalf("handshake %d: resumed %v, %v; want a full one then a resumed one", i, resumed, err)
			}
		}
		// The proxy's bundle loses the root that signed the client's
		// SVID (the proxy's own SVID moves to the new root).
		next := newMeshCA(t, meshTD)
		chain, key, _ := next.svid(t, webID)
		m.agent.serve(t, "tls", chain, key, writeBundle(t, filepath.Join(t.TempDir(), "next"), next.root))
		waitUntil(t, "the proxy trusts only the new root", func() bool { return leafIssuedBy(t, n.secrets, next) })
		waitUntil(t, "the bundle changed", func() bool {
			b, err := n.secrets.bundleSource(SecretRootCA).GetX509BundleForTrustDomain(meshTD)
			return err == nil && !b.HasX509Authority(m.ca.root.Certificate())
		})
		if _, err := dial(); err == nil {
			t.Fatal("a client whose root left the bundle got in with its session ticket")
		}
		// Back to the first root for the other subtests.
		chain, key, _ = m.ca.svid(t, webID)
		m.agent.serve(t, "tls", chain, key, writeBundle(t, filepath.Join(t.TempDir(), "back"), m.ca.root))
		waitUntil(t, "the proxy trusts the first root again", func() bool { return leafIssuedBy(t, n.secrets, m.ca) })
	})

	t.Run("upstream: client SVID by SDS, the endpoint verified", func(t *testing.T) {
		code, body, err := get(webCert, "/up")
		if err != nil || code != 200 || body != "over SVIDs" {
			t.Fatalf("%d %q %v", code, body, err)
		}
		if got := <-seen; got != webID.String() {
			t.Fatalf("the endpoint saw client %s, want the proxy's SVID %s", got, webID)
		}
		// An endpoint with another identity fails the SAN matcher.
		serverCert = evilCert
		up.CloseClientConnections()
		if code, _, err := get(webCert, "/up"); err != nil || code != 503 {
			t.Fatalf("an endpoint the matcher refuses: %d %v, want 503", code, err)
		}
		serverCert = apiCert
	})

	t.Run("a secret that has not arrived: subscribed to, handshakes fail closed", func(t *testing.T) {
		waiting := proto.CloneOf(listener)
		waiting.FilterChains[0].TransportSocket = tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("custom", true)},
		}})
		apply(t, n.store, ldsType, "waiting", waiting)
		if names := n.secrets.Names(resourcev3.SecretType); !slices.Contains(names, "custom") {
			t.Fatalf("SDS names %v lack the referenced secret", names)
		}
		if _, _, err := get(webCert, "/x"); err == nil {
			t.Fatal("a listener whose certificate has not arrived completed a handshake")
		}
	})
}

// TestSDSReferencesNeedAnSDSSource: a proxy started without SDS refuses
// (NACKs) TLS contexts that name SDS secrets, with the reason.
func TestSDSReferencesNeedAnSDSSource(t *testing.T) {
	s := NewStore()
	l := hcmListener(t, "tls", "r", false)
	l.FilterChains[0].TransportSocket = tlsSocket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: spiffeContext(SecretDefault)})
	err := applyErr(t, s, ldsType, "1", l)
	if err == nil || !strings.Contains(err.Error(), "no SDS source") {
		t.Fatalf("apply: %v", err)
	}
}

// TestTLSContextRefusals: what the proxy cannot verify as configured is
// refused, never verified less.
func TestTLSContextRefusals(t *testing.T) {
	secrets := NewSecrets(meshTD)
	ca := []byte("-----BEGIN CERTIFICATE-----\n")
	certPEM, keyPEM, _ := testCert(t, "127.0.0.1")
	vc := func(v *tlsv3.CertificateValidationContext) *tlsv3.CommonTlsContext_ValidationContext {
		return &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: v}
	}
	tests := map[string]struct {
		ctx  *tlsv3.CommonTlsContext
		want string
	}{
		"email SAN matcher": {&tlsv3.CommonTlsContext{ValidationContextType: vc(&tlsv3.CertificateValidationContext{
			TrustedCa: inline(certPEM), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_EMAIL, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "a@b"}}}},
		})}, "SAN type EMAIL is not supported"},
		"certificate hash pinning": {&tlsv3.CommonTlsContext{ValidationContextType: vc(&tlsv3.CertificateValidationContext{VerifyCertificateHash: []string{"ab"}})}, "pinning"},
		"SAN matcher without trust": {&tlsv3.CommonTlsContext{ValidationContextType: vc(&tlsv3.CertificateValidationContext{
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{uriSAN(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://x"}})},
		})}, "need trusted_ca or a validation context by SDS"},
		"certificates inline and by SDS": {&tlsv3.CommonTlsContext{
			TlsCertificates:                []*tlsv3.TlsCertificate{{CertificateChain: inline(certPEM), PrivateKey: inline(keyPEM)}},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig(SecretDefault, true)},
		}, "inline and by SDS at once"},
		"trusted_ca inline and by SDS": {&tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{TrustedCa: inline(certPEM)},
			ValidationContextSdsSecretConfig: sdsConfig(SecretRootCA, true),
		}}}, "trusted_ca inline and by SDS at once"},
		"two certificates by SDS":   {&tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsConfig("a", true), sdsConfig("b", true)}}, "one certificate by SDS"},
		"SDS secret without a name": {&tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{}}}, "needs a name"},
		"unparsable trusted_ca":     {&tlsv3.CommonTlsContext{ValidationContextType: vc(&tlsv3.CertificateValidationContext{TrustedCa: inline(ca)})}, "no PEM certificate"},
		"accepting untrusted chains": {&tlsv3.CommonTlsContext{ValidationContextType: vc(&tlsv3.CertificateValidationContext{
			TrustedCa: inline(certPEM), TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED,
		})}, "unverified chains"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := compileCommonTLS(tc.ctx, secrets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestDataSourceFiles: a DataSource file is read only if it is a regular
// file of at most 1 MiB: a device or a pipe named in configuration must
// not block or exhaust the proxy.
func TestDataSourceFiles(t *testing.T) {
	dir := t.TempDir()
	small, big := filepath.Join(dir, "small.pem"), filepath.Join(dir, "big.pem")
	if err := os.WriteFile(small, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, maxDataFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	file := func(n string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: n}}
	}
	if b, err := dataSource(file(small)); err != nil || string(b) != "pem" {
		t.Fatalf("small file: %q %v", b, err)
	}
	for name, want := range map[string]string{big: "larger than", "/dev/zero": "not a regular file", dir: "not a regular file", filepath.Join(dir, "none"): "no such file"} {
		if _, err := dataSource(file(name)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}
