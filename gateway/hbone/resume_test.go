package hbone

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// resumeServer is a Server whose handshakes are recorded and whose
// connections the test can cut, so that the client's next tunnel needs a
// new connection (and offers its session ticket).
type resumeServer struct {
	*Server
	addr string
	mu   sync.Mutex
	// resumed holds DidResume of every handshake that passed.
	resumed []bool
	conns   []net.Conn
}

func startResumeServer(t *testing.T, bundle *pki.Bundle, cert *tls.Certificate) *resumeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &resumeServer{addr: l.Addr().String()}
	rs.Server = &Server{
		Bundle:      bundle,
		Certificate: static(cert),
		Authorize:   func(spiffeid.ID, netip.AddrPort) error { return nil },
		Handle: func(_ Peer, _ netip.AddrPort, conn net.Conn) {
			_, _ = conn.Write([]byte("ok"))
			_ = conn.Close()
		},
	}
	if err := rs.init(); err != nil {
		t.Fatal(err)
	}
	verify := rs.srv.TLSConfig.VerifyConnection
	rs.srv.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return err
		}
		rs.mu.Lock()
		rs.resumed = append(rs.resumed, cs.DidResume)
		rs.mu.Unlock()
		return nil
	}
	go func() { _ = rs.Serve(&trackingListener{Listener: l, rs: rs}) }()
	t.Cleanup(func() { _ = rs.srv.Close() })
	return rs
}

type trackingListener struct {
	net.Listener
	rs *resumeServer
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.rs.mu.Lock()
		l.rs.conns = append(l.rs.conns, c)
		l.rs.mu.Unlock()
	}
	return c, err
}

// cut closes every connection the server accepted.
func (rs *resumeServer) cut() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, c := range rs.conns {
		_ = c.Close()
	}
	rs.conns = nil
}

func (rs *resumeServer) handshakes() []bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]bool(nil), rs.resumed...)
}

// tunnel opens a tunnel through a fresh connection (the previous ones are
// cut, and the client has noticed) and reads its answer.
func tunnel(t *testing.T, c *Client, rs *resumeServer) error {
	t.Helper()
	rs.cut()
	if err := c.init(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		pc := c.conns[rs.addr]
		c.mu.Unlock()
		if pc == nil {
			return true
		}
		select {
		case <-pc.ready:
			return pc.cc == nil || pc.cc.Err() != nil
		default:
			return false
		}
	}, "the client notices its connection was cut")
	conn, err := c.Dial(dialCtx(t), rs.addr, netip.MustParseAddrPort("127.0.0.1:1"))
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 2)
	_, err = conn.Read(buf)
	return err
}

// TestResumptionVerifiesAgainstTheCurrentBundle: sessions are resumed,
// but a ticket issued under a bundle that no longer trusts the peer lets
// nobody in — on either side.
func TestResumptionVerifiesAgainstTheCurrentBundle(t *testing.T) {
	t.Run("server drops the client's root", func(t *testing.T) {
		p := newTestPKI(t, tdTest)
		srvBundle, err := pki.NewBundle(tdTest, p.root.Certificate())
		if err != nil {
			t.Fatal(err)
		}
		rs := startResumeServer(t, srvBundle, p.svidCert(t, serverID))
		c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

		for i := range 2 {
			if err := tunnel(t, c, rs); err != nil {
				t.Fatalf("tunnel %d: %v", i, err)
			}
		}
		if got := rs.handshakes(); len(got) != 2 || got[0] || !got[1] {
			t.Fatalf("handshakes resumed = %v, want a full one then a resumed one", got)
		}
		// The client's root leaves the server's bundle (a new root takes
		// its place): the client's ticket must not stand in for it.
		other := newTestPKI(t, tdTest)
		if err := srvBundle.Add(other.root.Certificate()); err != nil {
			t.Fatal(err)
		}
		srvBundle.Remove(p.root.Certificate())
		if err := tunnel(t, c, rs); err == nil {
			t.Fatal("a client whose root left the bundle opened a tunnel with its session ticket")
		}
		if got := rs.handshakes(); len(got) != 2 {
			t.Fatalf("handshakes = %v: one passed after the root was removed", got)
		}
	})
	t.Run("client drops the server's root", func(t *testing.T) {
		p := newTestPKI(t, tdTest)
		rs := startResumeServer(t, p.bundle, p.svidCert(t, serverID))
		cliBundle, err := pki.NewBundle(tdTest, p.root.Certificate())
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{Bundle: cliBundle, Certificate: static(p.svidCert(t, clientID)), ExpectPeer: expectID(serverID)}
		t.Cleanup(func() { _ = c.Close() })
		for i := range 2 {
			if err := tunnel(t, c, rs); err != nil {
				t.Fatalf("tunnel %d: %v", i, err)
			}
		}
		if got := rs.handshakes(); len(got) != 2 || !got[1] {
			t.Fatalf("handshakes resumed = %v, want the second resumed", got)
		}
		other := newTestPKI(t, tdTest)
		if err := cliBundle.Add(other.root.Certificate()); err != nil {
			t.Fatal(err)
		}
		cliBundle.Remove(p.root.Certificate())
		if err := tunnel(t, c, rs); err == nil || !strings.Contains(err.Error(), "verify peer X509-SVID") {
			t.Fatalf("tunnel after the server's root left the client's bundle: %v, want the server refused", err)
		}
	})
}

// TestExpiredClientCertificateRefused: an SVID past its NotAfter fails
// the handshake, although it chains to a trusted root.
func TestExpiredClientCertificateRefused(t *testing.T) {
	past := clocktesting.NewFakePassiveClock(time.Now().Add(-48 * time.Hour))
	root, err := pki.NewRoot(tdTest, pki.RootOptions{Clock: past})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("past", 0)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.NewBundle(tdTest, root.Certificate())
	if err != nil {
		t.Fatal(err)
	}
	// Everything else is signed now; only the client's SVID in the past.
	p := &testPKI{root: root, inter: inter.WithClock(clock.RealClock{}), bundle: bundle}
	key := newKey(t)
	svid, err := inter.SignPublicKey(key.Public(), clientID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !svid.Leaf().NotAfter.Before(time.Now()) {
		t.Fatalf("test SVID is not expired: NotAfter %s", svid.Leaf().NotAfter)
	}
	expired := &tls.Certificate{Certificate: svid.ChainDER(), PrivateKey: key, Leaf: svid.Leaf()}
	srv := startServer(t, p, nil)
	c := newClient(t, p, expired, expectID(serverID))
	_, err = c.Dial(dialCtx(t), srv.addr, netip.MustParseAddrPort("127.0.0.1:9"))
	var se *StatusError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("Dial with an expired SVID = %v, want a failed handshake", err)
	}
	if got := srv.peers(); len(got) != 0 {
		t.Errorf("Authorize was called for %v", got)
	}
	waitFor(t, func() bool { return strings.Contains(srv.log.String(), "expired") },
		"the server logs the expired certificate")
}
