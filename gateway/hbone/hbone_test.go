package hbone

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

func dialCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoThrough writes payload through conn while reading, half-closes and
// returns what came back.
func echoThrough(conn net.Conn, payload []byte) ([]byte, error) {
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(conn)
	return got, errors.Join(rerr, <-werr)
}

func TestTunnelEchoHalfClose(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	for name, size := range map[string]int{"small": 5, "1MiB": 1 << 20} {
		t.Run(name, func(t *testing.T) {
			conn, err := c.Dial(dialCtx(t), srv.addr, echo)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			if got := conn.RemoteAddr().String(); got != echo.String() {
				t.Errorf("RemoteAddr = %s, want %s", got, echo)
			}
			if la, ok := conn.LocalAddr().(*net.TCPAddr); !ok || !la.IP.IsLoopback() {
				t.Errorf("LocalAddr = %v, want the loopback end of the proxy connection", conn.LocalAddr())
			}
			payload := make([]byte, size)
			_, _ = rand.Read(payload)
			// The echo answers EOF only after the tunnel passed on our
			// half-close, so a complete ReadAll proves it did.
			got, err := echoThrough(conn, payload)
			if err != nil {
				t.Fatalf("echo: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
			}
		})
	}
	if got := srv.peers(); len(got) != 2 || got[0] != clientID {
		t.Errorf("Authorize saw peers %v, want %s twice", got, clientID)
	}
}

func TestTunnelOutlivesDialContext(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	ctx, cancel := context.WithCancel(context.Background())
	conn, err := c.Dial(ctx, srv.addr, echo)
	cancel()
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if got, err := echoThrough(conn, []byte("still here")); err != nil || string(got) != "still here" {
		t.Fatalf("echo after the Dial context ended = %q, %v", got, err)
	}
}

func TestTunnelDestinationClosesFirst(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	greeter := startTarget(t, func(c *net.TCPConn) { _, _ = c.Write([]byte("220 hello\r\n")) })
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	conn, err := c.Dial(dialCtx(t), srv.addr, greeter)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != "220 hello\r\n" {
		t.Fatalf("read %q, want the greeting then EOF", got)
	}
}

func TestConcurrentTunnelsShareOneConnection(t *testing.T) {
	const tunnels = 20
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	ctx := dialCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, tunnels)
	for i := range tunnels {
		wg.Go(func() {
			conn, err := c.Dial(ctx, srv.addr, echo)
			if err != nil {
				errs <- fmt.Errorf("tunnel %d: Dial: %w", i, err)
				return
			}
			defer conn.Close()
			payload := bytes.Repeat([]byte{byte(i)}, 64<<10+i)
			got, err := echoThrough(conn, payload)
			if err != nil {
				errs <- fmt.Errorf("tunnel %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("tunnel %d: echoed %d bytes, want %d", i, len(got), len(payload))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.ln.accepts.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1 for %d tunnels", n, tunnels)
	}
}

func TestClientReconnectsWhenConnectionIsGone(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	conn, err := c.Dial(dialCtx(t), srv.addr, echo)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	_ = conn.Close()
	c.mu.Lock()
	old := c.conns[srv.addr]
	c.mu.Unlock()
	if old == nil {
		t.Fatal("no pooled connection after Dial")
	}
	_ = old.cc.Close()

	conn, err = c.Dial(dialCtx(t), srv.addr, echo)
	if err != nil {
		t.Fatalf("Dial after the pooled connection closed: %v", err)
	}
	defer conn.Close()
	if got, err := echoThrough(conn, []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("echo = %q, %v; want \"again\"", got, err)
	}
	if n := srv.ln.accepts.Load(); n != 2 {
		t.Errorf("server accepted %d connections, want 2", n)
	}
}

func TestAuthorizeDenied(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, func(s *Server) {
		s.Authorize = func(spiffeid.ID, netip.AddrPort) error { return errors.New("no policy allows it") }
	})
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	_, err := c.Dial(dialCtx(t), srv.addr, echo)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("Dial error = %v, want a StatusError with 403", err)
	}
	if !strings.Contains(err.Error(), "403") {
		t.Errorf("error %q does not say the status", err)
	}
	if got := srv.peers(); len(got) != 1 || got[0] != clientID {
		t.Errorf("Authorize saw %v, want %s", got, clientID)
	}
}

func TestDestinationDialFailure(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, func(s *Server) {
		s.Dial = func(context.Context, netip.AddrPort) (net.Conn, error) { return nil, errors.New("connection refused") }
	})
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	_, err := c.Dial(dialCtx(t), srv.addr, netip.MustParseAddrPort("127.0.0.1:9"))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("Dial error = %v, want a StatusError with 503", err)
	}
}

func TestRequestValidation(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	tests := map[string]struct {
		method, authority string
		want              int
	}{
		"GET is not CONNECT":         {http.MethodGet, echo.String(), http.StatusMethodNotAllowed},
		"POST is not CONNECT":        {http.MethodPost, echo.String(), http.StatusMethodNotAllowed},
		"host name authority":        {http.MethodConnect, "example.com:80", http.StatusBadRequest},
		"port zero":                  {http.MethodConnect, "127.0.0.1:0", http.StatusBadRequest},
		"unspecified address":        {http.MethodConnect, "0.0.0.0:80", http.StatusBadRequest},
		"IP literal without a port":  {http.MethodConnect, "127.0.0.1", http.StatusBadRequest},
		"IPv4 literal with its port": {http.MethodConnect, echo.String(), http.StatusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := rawRoundTrip(t, c, srv.addr, tc.method, tc.authority); got != tc.want {
				t.Errorf("%s %s answered %d, want %d", tc.method, tc.authority, got, tc.want)
			}
		})
	}
}

func TestHandshakeRefusesBadClientCertificates(t *testing.T) {
	p := newTestPKI(t, tdTest)
	other := newTestPKI(t, tdOther)

	tests := map[string]struct {
		cert func(t *testing.T, srvPKI *testPKI) *tls.Certificate
		// wantLog is the reason the server gives for the refusal.
		wantLog string
	}{
		"another trust domain": {
			cert: func(t *testing.T, _ *testPKI) *tls.Certificate {
				return other.svidCert(t, otherTDID)
			},
			wantLog: "no X.509 bundle for trust domain other.test",
		},
		"SPIFFE ID only as DNS SAN": {
			// The leaf chains to a root the server trusts, so the
			// missing URI SAN is the only reason to refuse it.
			cert: func(t *testing.T, srvPKI *testPKI) *tls.Certificate {
				return dnsOnlyCert(t, tdTest, srvPKI.bundle, clientID)
			},
			wantLog: "certificate contains no URI SAN",
		},
		"no certificate": {
			cert: func(*testing.T, *testPKI) *tls.Certificate {
				return &tls.Certificate{}
			},
			wantLog: "didn't provide a certificate",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Each case gets its own copy of the bundle, which the DNS
			// SAN case adds its root to.
			bundle, err := pki.NewBundle(tdTest, p.root.Certificate())
			if err != nil {
				t.Fatal(err)
			}
			srvPKI := &testPKI{root: p.root, inter: p.inter, bundle: bundle}
			srv := startServer(t, srvPKI, nil)
			c := newClient(t, p, tc.cert(t, srvPKI), expectID(serverID))

			_, err = c.Dial(dialCtx(t), srv.addr, netip.MustParseAddrPort("127.0.0.1:9"))
			if err == nil {
				t.Fatal("Dial succeeded with a client certificate the server must refuse")
			}
			var se *StatusError
			if errors.As(err, &se) {
				t.Fatalf("Dial got an HTTP answer (%v); the handshake should have failed", err)
			}
			if got := srv.peers(); len(got) != 0 {
				t.Errorf("Authorize was called for %v", got)
			}
			waitFor(t, func() bool { return strings.Contains(srv.log.String(), tc.wantLog) },
				"the server logs the handshake refused because "+tc.wantLog)
		})
	}
}

func TestClientRefusesUnexpectedServer(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	// The server presents a valid SVID of the trust domain, but not the
	// identity this client expects of the proxy.
	want := spiffeid.RequireFromPath(tdTest, "/cluster/east/gateway")
	c := newClient(t, p, p.svidCert(t, clientID), expectID(want))

	_, err := c.Dial(dialCtx(t), srv.addr, netip.MustParseAddrPort("127.0.0.1:9"))
	if err == nil || !strings.Contains(err.Error(), "unexpected proxy identity "+serverID.String()) {
		t.Fatalf("Dial error = %v, want the proxy identity refused", err)
	}
	if got := srv.peers(); len(got) != 0 {
		t.Errorf("a stream reached the server: Authorize saw %v", got)
	}
}

func TestClientRefusesServerOfAnotherTrustDomain(t *testing.T) {
	p := newTestPKI(t, tdTest)
	other := newTestPKI(t, tdOther)
	srv := startServer(t, p, func(s *Server) {
		s.Certificate = static(other.svidCert(t, spiffeid.RequireFromPath(tdOther, "/ns/b/sa/server")))
	})
	c := newClient(t, p, p.svidCert(t, clientID), func(spiffeid.ID) error { return nil })

	_, err := c.Dial(dialCtx(t), srv.addr, netip.MustParseAddrPort("127.0.0.1:9"))
	if err == nil || !strings.Contains(err.Error(), "verify peer X509-SVID") {
		t.Fatalf("Dial error = %v, want the server's SVID refused", err)
	}
}

func TestPlaintextHTTP2Refused(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(dialCtx(t), http.MethodConnect, "http://"+srv.addr, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = echo.String()
	resp, err := tr.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("plaintext HTTP/2 CONNECT answered %s", resp.Status)
	}
	if got := srv.peers(); len(got) != 0 {
		t.Errorf("Authorize was called for %v", got)
	}
}

func TestShutdownClosesTunnels(t *testing.T) {
	p := newTestPKI(t, tdTest)
	srv := startServer(t, p, nil)
	echo := startEcho(t)
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	conn, err := c.Dial(dialCtx(t), srv.addr, echo)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("tunnel not up before Shutdown: %v", err)
	}

	// The tunnel never ends by itself, so Shutdown drains for its
	// context's lifetime and then closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Shutdown(ctx) }()
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(conn)
		readErr <- err
	}()

	deadline := time.After(10 * time.Second)
	select {
	case err := <-shutdown:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the drain deadline exceeded", err)
		}
	case <-deadline:
		t.Fatal("Shutdown did not return after its context ended")
	}
	select {
	case err := <-readErr:
		// EOF or a reset: either way the tunnel is closed.
		t.Logf("tunnel read ended with %v", err)
	case <-deadline:
		t.Fatal("tunnel still open after Shutdown")
	}
	select {
	case err := <-srv.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	case <-deadline:
		t.Fatal("Serve did not return after Shutdown")
	}
}

func TestRequiredFields(t *testing.T) {
	p := newTestPKI(t, tdTest)
	cert := static(p.svidCert(t, serverID))
	allow := func(spiffeid.ID, netip.AddrPort) error { return nil }
	servers := map[string]*Server{
		"no Bundle":      {Certificate: cert, Authorize: allow},
		"no Certificate": {Bundle: p.bundle, Authorize: allow},
		"no Authorize":   {Bundle: p.bundle, Certificate: cert},
	}
	for name, s := range servers {
		t.Run("server "+name, func(t *testing.T) {
			if err := s.Serve(nil); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(name, "no ")) {
				t.Errorf("Serve = %v, want an error naming the missing field", err)
			}
		})
	}
	expect := func(spiffeid.ID) error { return nil }
	clients := map[string]*Client{
		"no Bundle":      {Certificate: cert, ExpectPeer: expect},
		"no Certificate": {Bundle: p.bundle, ExpectPeer: expect},
		"no ExpectPeer":  {Bundle: p.bundle, Certificate: cert},
	}
	for name, c := range clients {
		t.Run("client "+name, func(t *testing.T) {
			_, err := c.Dial(context.Background(), "127.0.0.1:1", netip.MustParseAddrPort("127.0.0.1:9"))
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(name, "no ")) {
				t.Errorf("Dial = %v, want an error naming the missing field", err)
			}
		})
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
