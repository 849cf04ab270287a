package hbone

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
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
