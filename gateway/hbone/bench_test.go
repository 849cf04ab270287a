package hbone

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// BenchmarkTunnelThroughput measures bytes per second one way through one
// tunnel: the client writes b.N chunks, the destination counts them and,
// after the client's half-close, answers the count.
func BenchmarkTunnelThroughput(b *testing.B) {
	const chunk = 32 << 10
	p := newTestPKI(b, tdTest)
	srv := startServer(b, p, nil)
	sink := startTarget(b, func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		_ = binary.Write(c, binary.BigEndian, n)
	})
	c := newClient(b, p, p.svidCert(b, clientID), expectID(serverID))
	conn, err := c.Dial(context.Background(), srv.addr, sink)
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, chunk)

	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	var got int64
	if err := binary.Read(conn, binary.BigEndian, &got); err != nil {
		b.Fatalf("read count: %v", err)
	}
	b.StopTimer()
	if want := int64(b.N) * chunk; got != want {
		b.Fatalf("destination received %d bytes, want %d", got, want)
	}
}

// BenchmarkTunnelOpen measures opening and closing a tunnel on a warm
// connection: one CONNECT stream, policy check, destination dial (an
// in-memory pipe, so that the TCP handshake is not measured) and reset.
func BenchmarkTunnelOpen(b *testing.B) {
	p := newTestPKI(b, tdTest)
	srv := startServer(b, p, func(s *Server) {
		s.Dial = func(context.Context, netip.AddrPort) (net.Conn, error) {
			near, far := net.Pipe()
			go func() {
				_, _ = io.Copy(io.Discard, far)
				_ = far.Close()
			}()
			return near, nil
		}
	})
	c := newClient(b, p, p.svidCert(b, clientID), expectID(serverID))
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	ctx := context.Background()
	// Warm the connection.
	conn, err := c.Dial(ctx, srv.addr, dst)
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	_ = conn.Close()

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		conn, err := c.Dial(ctx, srv.addr, dst)
		if err != nil {
			b.Fatalf("Dial: %v", err)
		}
		_ = conn.Close()
	}
	b.StopTimer()
	if n := srv.ln.accepts.Load(); n != 1 {
		b.Fatalf("server accepted %d connections, want 1", n)
	}
}

// BenchmarkHandshake measures one HBONE mutual-TLS handshake (TLS 1.3,
// ECDSA P-256 SVIDs, X509-SVID verification on both ends) over a new
// loopback TCP connection, client and server both, plus a one-byte exchange that
// delivers the session ticket: "full" without a session, "resumed" with
// the client's ticket from the previous handshake (still verified
// against the bundle on both ends). Run with -cpu 1: handshakes/s is then
// what one core does for both ends together.
func BenchmarkHandshake(b *testing.B) {
	p := newTestPKI(b, tdTest)
	srv := &Server{Bundle: p.bundle, Certificate: static(p.svidCert(b, serverID)), Authorize: func(spiffeid.ID, netip.AddrPort) error { return nil }}
	if err := srv.init(); err != nil {
		b.Fatal(err)
	}
	cli := &Client{Bundle: p.bundle, Certificate: static(p.svidCert(b, clientID)), ExpectPeer: expectID(serverID)}
	if err := cli.init(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"full", "resumed"} {
		b.Run(mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			conf := cli.tr.TLSClientConfig.Clone()
			conf.ServerName = "proxy"
			conf.ClientSessionCache = nil
			if mode == "resumed" {
				conf.ClientSessionCache = tls.NewLRUClientSessionCache(1)
				handshakeOnce(b, ln, conf, srv.srv.TLSConfig)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if got := handshakeOnce(b, ln, conf, srv.srv.TLSConfig); got != (mode == "resumed") {
					b.Fatalf("DidResume = %v in mode %s", got, mode)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

// handshakeOnce runs one handshake over a new connection to ln and a
// one-byte exchange (the client reads the server's session ticket before
// the byte) and reports whether the session was resumed.
func handshakeOnce(b *testing.B, ln net.Listener, clientConf, serverConf *tls.Config) bool {
	errc := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer s.Close()
		ts := tls.Server(s, serverConf)
		err = ts.Handshake()
		if err == nil {
			_, err = ts.Write([]byte{1})
		}
		errc <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, clientConf)
	if err := tc.Handshake(); err != nil {
		b.Fatalf("client handshake: %v", err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
		b.Fatalf("client read: %v", err)
	}
	if err := <-errc; err != nil {
		b.Fatalf("server: %v", err)
	}
	return tc.ConnectionState().DidResume
}
