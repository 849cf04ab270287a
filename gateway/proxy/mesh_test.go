package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mesh is two sidecars of one trust domain with identities from an SDS
// agent: "web" (front/web) sends through its outbound listeners, "api"
// (shop/api, pod address 127.0.0.1) serves a real HTTP echo and a TCP echo
// behind its inbound HBONE server.
type mesh struct {
	ca                *meshCA
	agent             *sdsAgent
	bundleFile        string
	web, api          *meshNode
	httpBE, tcpBE     backend
	httpPort, tcpPort uint16
}

var (
	webID  = workloadID("front", "web")
	apiID  = workloadID("shop", "api")
	evilID = workloadID("other", "evil")
)

func startMesh(t testing.TB, in inbound) *mesh {
	t.Helper()
	m := &mesh{ca: newMeshCA(t, meshTD)}
	m.agent = startSDSAgent(t, m.ca, map[string]string{"tok-web": "front/web", "tok-api": "shop/api", "tok-evil": "other/evil"})
	m.bundleFile = filepath.Join(t.TempDir(), "roots.pem")
	roots := writeBundle(t, m.bundleFile, m.ca.root)
	m.httpBE, m.tcpBE = startEcho(t, "api", echo.ProtocolHTTP), startEcho(t, "api", echo.ProtocolTCP)
	m.httpPort, m.tcpPort = netip.MustParseAddrPort(m.httpBE.addr).Port(), netip.MustParseAddrPort(m.tcpBE.addr).Port()

	chain, key, _ := m.ca.svid(t, apiID)
	m.agent.serve(t, "api", chain, key, roots)
	chain, key, _ = m.ca.svid(t, webID)
	m.agent.serve(t, "web", chain, key, roots)

	m.api = startNode(t, m.agent, m.bundleFile, "api", nodeOptions{ns: "shop", sa: "api", sidecar: true, podAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	m.web = startNode(t, m.agent, m.bundleFile, "web", nodeOptions{
		ns: "front", sa: "web", tunnelPort: m.api.hbonePort(t),
		bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "out_http"}, {Addr: "127.0.0.1:0", Listener: "out_tcp"}},
	})
	m.api.waitIdentity(t)
	m.web.waitIdentity(t)
	in.httpPort, in.tcpPort = m.httpPort, m.tcpPort
	m.api.configureInbound(t, "1", in)
	m.web.configureOutbound(t, "1", m.httpBE.addr, m.tcpBE.addr)
	return m
}

// tunnelClient is a raw HBONE client with cert: a peer that does not go
// through a proxy.
func (m *mesh) tunnelClient(t testing.TB, cert *tls.Certificate) *hbone.Client {
	t.Helper()
	bundle, err := pki.NewBundle(meshTD, m.ca.root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	c := &hbone.Client{
		Bundle:      bundle,
		Certificate: func() (*tls.Certificate, error) { return cert, nil },
		ExpectPeer:  func(spiffeid.ID) error { return nil },
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (m *mesh) dialAPI(t testing.TB, c *hbone.Client, dst string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Dial(ctx, m.api.proxy.HBONEAddr(), netip.MustParseAddrPort(dst))
}

// rawHTTP sends one HTTP/1.1 request with a literal request-target over
// conn and returns the status and body.
func rawHTTP(t testing.TB, conn net.Conn, target string, headers ...string) (int, string) {
	t.Helper()
	defer conn.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: api.shop\r\nConnection: close\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatalf("write %s: %v", target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func echoed(t testing.TB, body string) echoReply {
	t.Helper()
	var r echoReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not an echo reply: %q", body)
	}
	return r
}

// TestMeshHBONE is the mesh story: a sidecar's outbound requests and
// connections reach another sidecar's workload through an HBONE tunnel
// (mutual TLS with SVIDs from SDS), and the receiving sidecar serves each
// tunnel with its inbound listener: the chain for the target port, the
// peer's SPIFFE ID as the principal that RBAC checks, identity headers
// never trusted; and every way around it fails closed.
func TestMeshHBONE(t *testing.T) {
	m := startMesh(t, inbound{
		httpRBAC: []*rbacv3.RBAC{denyPathPrefix("/admin", false), allowPrincipal(webID)},
		tcpRBAC:  []*rbacv3.RBAC{allowPrincipal(webID)},
	})
	client := &http.Client{Timeout: 10 * time.Second}
	outHTTP := "http://" + m.web.bindingAddr(t, "out_http")

	t.Run("HTTP/1.1 through the tunnel, identity headers stripped", func(t *testing.T) {
		code, r, _ := get(t, client, outHTTP+"/public", "api.shop", map[string]string{
			"X-Forwarded-Client-Cert": "By=spiffe://mesh.test/ns/shop/sa/api;URI=spiffe://mesh.test/ns/ops/sa/admin",
			"X-Spiffe-Id":             "spiffe://mesh.test/ns/ops/sa/admin",
		})
		if code != 200 || r.Path != "/public" || r.pod() != "api" {
			t.Fatalf("got %d %+v", code, r)
		}
		for _, h := range []string{"X-Forwarded-Client-Cert", "X-Spiffe-Id"} {
			if v := r.Headers.Get(h); v != "" {
				t.Errorf("the workload received %s: %q", h, v)
			}
		}
		if n := testutil.ToFloat64(m.web.proxy.metrics.tunnels.WithLabelValues("outbound", "ok")); n < 1 {
			t.Errorf("the client proxy opened %v tunnels", n)
		}
		if n := testutil.ToFloat64(m.api.proxy.metrics.tunnels.WithLabelValues("inbound", "ok")); n < 1 {
			t.Errorf("the server proxy accepted %v tunnels", n)
		}
	})

	t.Run("the receiving sidecar's RBAC decides through the tunnel", func(t *testing.T) {
		// The sender has no policy of its own: a 403 can only come from
		// the receiving sidecar, so the request went through it.
		if code, _, _ := get(t, client, outHTTP+"//admin", "api.shop", nil); code != 403 {
			t.Fatalf("//admin through the mesh: %d, want 403", code)
		}
	})

	t.Run("HTTP/2 through the tunnel", func(t *testing.T) {
		h2 := edsCluster(t, "svc-http", true, clusterv3.Cluster_ROUND_ROBIN)
		apply(t, m.web.store, cdsType, "h2", h2, edsCluster(t, "svc-tcp", false, clusterv3.Cluster_ROUND_ROBIN))
		t.Cleanup(func() {
			apply(t, m.web.store, cdsType, "h1", edsCluster(t, "svc-http", false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(t, "svc-tcp", false, clusterv3.Cluster_ROUND_ROBIN))
		})
		code, r, _ := get(t, client, outHTTP+"/over-h2", "api.shop", nil)
		if code != 200 || r.Path != "/over-h2" {
			t.Fatalf("got %d %+v", code, r)
		}
	})

	t.Run("TCP through the tunnel", func(t *testing.T) {
		c, err := net.Dial("tcp", m.web.bindingAddr(t, "out_tcp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "api") {
			t.Fatalf("greeting %q: %v", line, err)
		}
		fmt.Fprint(c, "through the tunnel\n")
		if line, err := br.ReadString('\n'); err != nil || line != "through the tunnel\n" {
			t.Fatalf("echo %q: %v", line, err)
		}
	})

	_, _, evilCert := m.ca.svid(t, evilID)
	_, _, webCert := m.ca.svid(t, webID)

	t.Run("ALLOW on a principal: the right peer in, another out", func(t *testing.T) {
		c, err := m.dialAPI(t, m.tunnelClient(t, webCert), m.httpBE.addr)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := rawHTTP(t, c, "/public"); code != 200 {
			t.Fatalf("web: %d %s", code, body)
		}
		c, err = m.dialAPI(t, m.tunnelClient(t, evilCert), m.httpBE.addr)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := rawHTTP(t, c, "/public"); code != 403 {
			t.Fatalf("another workload of the trust domain: %d %s, want 403", code, body)
		}
	})

	t.Run("network RBAC on the TCP chain", func(t *testing.T) {
		for _, tc := range []struct {
			cert  *tls.Certificate
			allow bool
		}{{webCert, true}, {evilCert, false}} {
			c, err := m.dialAPI(t, m.tunnelClient(t, tc.cert), m.tcpBE.addr)
			if err != nil {
				t.Fatal(err)
			}
			// The echo greets first; a connection RBAC refused is closed.
			got, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if greeted := strings.Contains(got, "api"); greeted != tc.allow {
				t.Fatalf("peer %s: read %q, want greeting %v", tc.cert.Leaf.URIs[0], got, tc.allow)
			}
		}
	})

	t.Run("identity headers sent into the tunnel are stripped", func(t *testing.T) {
		c, err := m.dialAPI(t, m.tunnelClient(t, webCert), m.httpBE.addr)
		if err != nil {
			t.Fatal(err)
		}
		code, body := rawHTTP(t, c, "/h", "X-Forwarded-Client-Cert: URI=spiffe://mesh.test/ns/ops/sa/admin", "X-Envoy-Peer-Metadata-Id: sidecar~1.2.3.4~admin")
		r := echoed(t, body)
		if code != 200 || r.Headers.Get("X-Forwarded-Client-Cert") != "" || r.Headers.Get("X-Envoy-Peer-Metadata-Id") != "" {
			t.Fatalf("%d: the workload saw %v", code, r.Headers)
		}
	})

	t.Run("RBAC DENY /admin holds against every spelling", func(t *testing.T) {
		for _, tc := range []struct {
			target string
			want   []int // any of
		}{
			{"/admin", []int{403}},
			{"//admin", []int{403}},
			{"/a/../admin", []int{403}},
			{"/./admin", []int{403}},
			{"/%61dmin", []int{403}},
			{"/%2e%2e/admin", []int{403}},
			{"/admin%2F", []int{400}},
			{"/admin%2f..%2fpublic", []int{400}},
			{`\admin`, []int{400, 403}},
			{`/\admin`, []int{403}},
			{"/admin?x", []int{403}},
			{"/admin#x", []int{400, 403}},
			{"/admin/", []int{403}},
			{"/admin;x", []int{403}},
		} {
			c, err := m.dialAPI(t, m.tunnelClient(t, webCert), m.httpBE.addr)
			if err != nil {
				t.Fatal(err)
			}
			code, body := rawHTTP(t, c, tc.target)
			t.Logf("GET %s → %d %.40q", tc.target, code, body)
			if !slices.Contains(tc.want, code) {
				t.Errorf("GET %s: %d %q, want one of %v", tc.target, code, body, tc.want)
			}
		}
		// Letter case: the rule and the workload are case-sensitive, so
		// /ADMIN is another path (the workload sees /ADMIN, not /admin);
		// a rule that ignores case refuses it.
		c, err := m.dialAPI(t, m.tunnelClient(t, webCert), m.httpBE.addr)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := rawHTTP(t, c, "/ADMIN"); code != 200 || echoed(t, body).Path != "/ADMIN" {
			t.Errorf("/ADMIN with a case-sensitive rule: %d %s", code, body)
		}
		m.api.configureInbound(t, "ci", inbound{httpPort: m.httpPort, tcpPort: m.tcpPort,
			httpRBAC: []*rbacv3.RBAC{denyPathPrefix("/admin", true), allowPrincipal(webID)}, tcpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}})
		c, err = m.dialAPI(t, m.tunnelClient(t, webCert), m.httpBE.addr)
		if err != nil {
			t.Fatal(err)
		}
		if code, body := rawHTTP(t, c, "/ADMIN"); code != 403 {
			t.Errorf("/ADMIN with a rule that ignores case: %d %s", code, body)
		}
	})

	t.Run("CONNECT to an address or port not of this pod is refused", func(t *testing.T) {
		tc := m.tunnelClient(t, webCert)
		for _, dst := range []string{
			"127.0.0.2:" + strconv.Itoa(int(m.httpPort)),         // another address
			"127.0.0.1:" + strconv.Itoa(int(m.api.hbonePort(t))), // the proxy's own port
		} {
			_, err := m.dialAPI(t, tc, dst)
			var se *hbone.StatusError
			if !errors.As(err, &se) || se.Code != 403 {
				t.Errorf("CONNECT %s: %v, want 403", dst, err)
			}
		}
	})

	t.Run("handshakes that fail closed", func(t *testing.T) {
		other := newMeshCA(t, spiffeid.RequireTrustDomainFromString("other.test"))
		_, _, otherCert := other.svid(t, spiffeid.RequireFromSegments(other.root.TrustDomain(), "ns", "front", "sa", "web"))
		for name, cert := range map[string]*tls.Certificate{
			"another trust domain":        otherCert,
			"expired":                     expiredSVID(t, m.ca, webID),
			"SPIFFE ID only in a DNS SAN": dnsSANOnly(t, m.ca, webID),
			"SPIFFE ID only in an email":  emailSANOnly(t, m.ca, webID),
		} {
			_, err := m.dialAPI(t, m.tunnelClient(t, cert), m.httpBE.addr)
			var se *hbone.StatusError
			if err == nil || errors.As(err, &se) {
				t.Errorf("%s: %v, want a failed handshake", name, err)
			}
		}
	})
}

// expiredSVID is an SVID for id, signed by the CA's intermediate, that
// expired a day ago (crypto/x509 makes it: internal/pki signs nothing
// already expired).
func expiredSVID(t *testing.T, ca *meshCA, id spiffeid.ID) *tls.Certificate {
	t.Helper()
	return sanOnly(t, ca, func(c *x509.Certificate) {
		c.URIs = []*url.URL{id.URL()}
		c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
}

// sanOnly signs, with the CA's intermediate, a leaf that carries id only
// as a DNS SAN or an email address (internal/pki cannot issue such a
// certificate: crypto/x509 makes it).
func sanOnly(t *testing.T, ca *meshCA, mutate func(*x509.Certificate)) *tls.Certificate {
	t.Helper()
	keyPEM, err := ca.inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	mutate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter.Certificate(), key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.inter.Certificate().Raw}, PrivateKey: key}
}

func dnsSANOnly(t *testing.T, ca *meshCA, id spiffeid.ID) *tls.Certificate {
	return sanOnly(t, ca, func(c *x509.Certificate) { c.DNSNames = []string{id.String()} })
}

func emailSANOnly(t *testing.T, ca *meshCA, id spiffeid.ID) *tls.Certificate {
	return sanOnly(t, ca, func(c *x509.Certificate) { c.EmailAddresses = []string{id.String()} })
}

// TestSVIDRotationKeepsConnections: new SVIDs pushed over SDS are used
// for new handshakes at once, and connections made before stay up: a TCP
// tunnel and a keep-alive HTTP connection carry traffic across the
// rotation of both ends' SVIDs.
func TestSVIDRotationKeepsConnections(t *testing.T) {
	m := startMesh(t, inbound{httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}, tcpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}})
	tcp, err := net.Dial("tcp", m.web.bindingAddr(t, "out_tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	_ = tcp.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(tcp)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	echoLine := func(s string) {
		t.Helper()
		fmt.Fprint(tcp, s+"\n")
		if line, err := br.ReadString('\n'); err != nil || line != s+"\n" {
			t.Fatalf("echo %q: %q, %v", s, line, err)
		}
	}
	echoLine("before")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + m.web.bindingAddr(t, "out_http") + "/r"
	var reused atomic.Int32
	request := func() {
		t.Helper()
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused.Add(1)
			}
		}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	request()

	oldAPI := serialOf(t, m.api.secrets)
	roots := writeBundle(t, filepath.Join(t.TempDir(), "same"), m.ca.root)
	chain, key, _ := m.ca.svid(t, apiID)
	m.agent.serve(t, "api", chain, key, roots)
	chain, key, _ = m.ca.svid(t, webID)
	m.agent.serve(t, "web", chain, key, roots)
	waitUntil(t, "both sides have new SVIDs", func() bool { return serialOf(t, m.api.secrets) != oldAPI })
	newAPI := serialOf(t, m.api.secrets)

	echoLine("after")
	request()
	if reused.Load() == 0 {
		t.Error("the HTTP connection made before the rotation was not reused after it")
	}
	// A new handshake gets the new SVID.
	_, _, webCert := m.ca.svid(t, webID)
	conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, Certificates: []tls.Certificate{*webCert}} //nolint:gosec // only the presented certificate is read
	conn, err := tls.Dial("tcp", m.api.proxy.HBONEAddr(), conf)
	if err != nil {
		t.Fatal(err)
	}
	got := conn.ConnectionState().PeerCertificates[0].SerialNumber
	_ = conn.Close()
	if got.Cmp(newAPI) != 0 {
		t.Fatalf("a new handshake got serial %s, want the rotated %s", got, newAPI)
	}
}

func serialOf(t *testing.T, s *Secrets) *big.Int {
	t.Helper()
	c, err := s.Certificate(SecretDefault)
	if err != nil {
		return big.NewInt(0)
	}
	return c.Leaf.SerialNumber
}

// TestBundleRotationKeepsTrafficFlowing walks a root rotation through
// SDS: both roots trusted, the server's SVID from the new root, the
// client's, the old root gone. Requests through the proxies and fresh
// handshakes succeed at every step; after the old root is gone, a peer
// with an old-root SVID is refused — also when it holds a session ticket
// from before, which must not stand in for verification.
func TestBundleRotationKeepsTrafficFlowing(t *testing.T) {
	m := startMesh(t, inbound{httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}})
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + m.web.bindingAddr(t, "out_http") + "/flow"
	var failures atomic.Int32
	var sent atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			resp, err := client.Get(url)
			sent.Add(1)
			if err != nil {
				failures.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failures.Add(1)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	// fresh opens a new tunnel from web's current secrets (a new
	// handshake each time) and requests through it.
	fresh := func(step string) {
		t.Helper()
		c := &hbone.Client{Bundle: m.web.secrets.bundleSource(SecretRootCA), Certificate: func() (*tls.Certificate, error) { return m.web.secrets.Certificate(SecretDefault) }, ExpectPeer: func(spiffeid.ID) error { return nil }}
		defer c.Close()
		conn, err := m.dialAPI(t, c, m.httpBE.addr)
		if err != nil {
			t.Fatalf("%s: new tunnel: %v", step, err)
		}
		if code, body := rawHTTP(t, conn, "/fresh"); code != 200 {
			t.Fatalf("%s: %d %s", step, code, body)
		}
	}
	fresh("before")
	// An old-root peer that keeps a session ticket from before the
	// rotation.
	tickets := tls.NewLRUClientSessionCache(4)
	_, _, oldWeb := m.ca.svid(t, webID)
	resume := func() (*tls.ConnectionState, error) {
		conn, err := tls.Dial("tcp", m.api.proxy.HBONEAddr(), &tls.Config{
			InsecureSkipVerify: true, NextProtos: []string{"h2"}, ClientSessionCache: tickets, //nolint:gosec // the test reads the server's decision, not its certificate
			Certificates: []tls.Certificate{*oldWeb}, ServerName: "api",
		})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		// Read the server's first frame: TLS 1.3 tickets arrive after the
		// handshake, and a refused client certificate shows here too.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err != nil {
			return nil, err
		}
		cs := conn.ConnectionState()
		return &cs, nil
	}
	for i := range 2 {
		cs, err := resume()
		if err != nil {
			t.Fatalf("old-root peer before the rotation: %v", err)
		}
		if i == 1 && !cs.DidResume {
			t.Fatal("the second handshake was not resumed: the test proves nothing")
		}
	}

	next := &meshCA{}
	var err error
	if next.root, err = pki.NewRoot(meshTD, pki.RootOptions{}); err != nil {
		t.Fatal(err)
	}
	if next.inter, err = next.root.NewIntermediate("east", 0); err != nil {
		t.Fatal(err)
	}
	both := writeBundle(t, filepath.Join(t.TempDir(), "both"), m.ca.root, next.root)
	onlyNew := writeBundle(t, filepath.Join(t.TempDir(), "new"), next.root)
	rootsOf := func(s *Secrets) int {
		b, err := s.bundleSource(SecretRootCA).GetX509BundleForTrustDomain(meshTD)
		if err != nil {
			return 0
		}
		return len(b.X509Authorities())
	}

	m.agent.serve(t, "api", nil, nil, both)
	m.agent.serve(t, "web", nil, nil, both)
	waitUntil(t, "both trust both roots", func() bool { return rootsOf(m.api.secrets) == 2 && rootsOf(m.web.secrets) == 2 })
	fresh("overlap")

	chain, key, _ := next.svid(t, apiID)
	m.agent.serve(t, "api", chain, key, nil)
	waitUntil(t, "api has a new-root SVID", func() bool { return leafIssuedBy(t, m.api.secrets, next) })
	fresh("server on the new root")

	chain, key, _ = next.svid(t, webID)
	m.agent.serve(t, "web", chain, key, nil)
	waitUntil(t, "web has a new-root SVID", func() bool { return leafIssuedBy(t, m.web.secrets, next) })
	fresh("both on the new root")

	m.agent.serve(t, "api", nil, nil, onlyNew)
	m.agent.serve(t, "web", nil, nil, onlyNew)
	waitUntil(t, "the old root is gone", func() bool { return rootsOf(m.api.secrets) == 1 && rootsOf(m.web.secrets) == 1 })
	fresh("old root removed")

	if _, err := resume(); err == nil {
		t.Fatal("a peer with an old-root SVID and a session ticket from before was let in after the old root was removed")
	}
	tickets = nil
	if _, err := resume(); err == nil {
		t.Fatal("a peer with an old-root SVID was let in after the old root was removed")
	}
	time.Sleep(50 * time.Millisecond) // a few more background requests on the new state
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests through the proxies failed during the rotation", n, sent.Load())
	}
	if sent.Load() < 5 {
		t.Fatalf("only %d requests ran during the rotation", sent.Load())
	}
}

// leafIssuedBy reports whether s's SVID chains to ca's root.
func leafIssuedBy(t *testing.T, s *Secrets, ca *meshCA) bool {
	t.Helper()
	c, err := s.Certificate(SecretDefault)
	if err != nil {
		return false
	}
	b := x509bundle.FromX509Authorities(meshTD, []*x509.Certificate{ca.root.Certificate()})
	chain := []*x509.Certificate{c.Leaf}
	for _, der := range c.Certificate[1:] {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return false
		}
		chain = append(chain, cert)
	}
	_, err = pki.Verify(chain, mustBundle(t, b))
	return err == nil
}

func mustBundle(t *testing.T, b *x509bundle.Bundle) *pki.Bundle {
	t.Helper()
	out, err := pki.FromX509Bundle(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
