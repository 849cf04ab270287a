package hbone

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

var (
	tdTest    = spiffeid.RequireTrustDomainFromString("td.test")
	tdOther   = spiffeid.RequireTrustDomainFromString("other.test")
	clientID  = spiffeid.RequireFromPath(tdTest, "/ns/a/sa/client")
	serverID  = spiffeid.RequireFromPath(tdTest, "/ns/b/sa/server")
	otherTDID = spiffeid.RequireFromPath(tdOther, "/ns/a/sa/client")
)

// testPKI is a trust domain: a root, a cluster intermediate and the
// bundle holding the root.
type testPKI struct {
	root, inter *pki.CA
	bundle      *pki.Bundle
}

func newTestPKI(t testing.TB, td spiffeid.TrustDomain) *testPKI {
	t.Helper()
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatalf("NewRoot: %v", err)
	}
	inter, err := root.NewIntermediate("test", 0)
	if err != nil {
		t.Fatalf("NewIntermediate: %v", err)
	}
	bundle, err := pki.NewBundle(td, root.Certificate())
	if err != nil {
		t.Fatalf("NewBundle: %v", err)
	}
	return &testPKI{root: root, inter: inter, bundle: bundle}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// svidCert signs an X509-SVID for id and returns it as a TLS certificate.
func (p *testPKI) svidCert(t testing.TB, id spiffeid.ID) *tls.Certificate {
	t.Helper()
	key := newKey(t)
	svid, err := p.inter.SignPublicKey(key.Public(), id, 0)
	if err != nil {
		t.Fatalf("SignPublicKey(%s): %v", id, err)
	}
	return &tls.Certificate{Certificate: svid.ChainDER(), PrivateKey: key, Leaf: svid.Leaf()}
}

// dnsOnlyCert makes a root of td (added to bundle) and a leaf under it
// that carries its SPIFFE ID only as a DNS SAN, no URI SAN. internal/pki
// cannot issue such a certificate, so crypto/x509 makes it directly.
func dnsOnlyCert(t testing.TB, td spiffeid.TrustDomain, bundle *pki.Bundle, id spiffeid.ID) *tls.Certificate {
	t.Helper()
	rootKey := newKey(t)
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dns-only root"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		URIs:                  []*url.URL{td.ID().URL()},
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Add(root); err != nil {
		t.Fatalf("add DNS-only root to bundle: %v", err)
	}
	leafKey := newKey(t)
	leafTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		DNSNames:              []string{id.String()},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}

func static(c *tls.Certificate) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return c, nil }
}

func expectID(want spiffeid.ID) func(spiffeid.ID) error {
	return func(got spiffeid.ID) error {
		if got != want {
			return errors.New("not " + want.String())
		}
		return nil
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a running Server on a loopback port.
type testServer struct {
	*Server
	addr     string
	ln       *countingListener
	log      *syncBuffer
	serveErr chan error
	// authorized records the peers Authorize was called with.
	mu         sync.Mutex
	authorized []spiffeid.ID
}

func (s *testServer) peers() []spiffeid.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spiffeid.ID(nil), s.authorized...)
}

// startServer serves an HBONE server with serverID's SVID, allowing every
// peer unless configure changes Authorize.
func startServer(t testing.TB, p *testPKI, configure func(*Server)) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{ln: &countingListener{Listener: l}, log: &syncBuffer{}, serveErr: make(chan error, 1)}
	ts.addr = l.Addr().String()
	ts.Server = &Server{
		Bundle:      p.bundle,
		Certificate: static(p.svidCert(t, serverID)),
		Logger:      slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	allow := func(spiffeid.ID, netip.AddrPort) error { return nil }
	if configure != nil {
		configure(ts.Server)
	}
	if ts.Authorize != nil {
		allow = ts.Authorize
	}
	ts.Authorize = func(peer spiffeid.ID, dst netip.AddrPort) error {
		ts.mu.Lock()
		ts.authorized = append(ts.authorized, peer)
		ts.mu.Unlock()
		return allow(peer, dst)
	}
	go func() { ts.serveErr <- ts.Serve(ts.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.Shutdown(ctx)
	})
	return ts
}

func newClient(t testing.TB, p *testPKI, cert *tls.Certificate, expect func(spiffeid.ID) error) *Client {
	t.Helper()
	c := &Client{Bundle: p.bundle, Certificate: static(cert), ExpectPeer: expect}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startEcho serves a TCP echo on loopback: each connection gets back what
// it sends and, after the client's half-close, a half-close.
func startEcho(t testing.TB) netip.AddrPort {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) {
		_, _ = io.Copy(c, c)
		_ = c.CloseWrite()
	})
}

// startTarget serves handle on a loopback TCP port.
func startTarget(t testing.TB, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			})
		}
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// rawRoundTrip sends one request with method and authority on a pooled
// connection of c to addr, bypassing Dial, and returns the status.
func rawRoundTrip(t *testing.T, c *Client, addr, method, authority string) int {
	t.Helper()
	if err := c.init(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := c.reserve(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+authority+"/", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pc.cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, authority, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
