package hbone

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestHandleServesStreams: with Handle, the server hands each authorized
// tunnel to the caller as a net.Conn carrying the verified peer, and the
// conn behaves as a connection: echo with the client's half-close seen as
// EOF, a handler that returns at once and closes later, a read deadline.
func TestHandleServesStreams(t *testing.T) {
	p := newTestPKI(t, tdTest)
	type seen struct {
		peer  Peer
		dst   netip.AddrPort
		local net.Addr
	}
	seenc := make(chan seen, 4)
	srv := startServer(t, p, func(s *Server) {
		s.Handle = func(peer Peer, dst netip.AddrPort, conn net.Conn) {
			seenc <- seen{peer, dst, conn.LocalAddr()}
			switch dst.Port() {
			case 1: // echo on the stream's goroutine
				_, _ = io.Copy(conn, conn)
				_ = conn.(interface{ CloseWrite() error }).CloseWrite()
			case 2: // handed on: the stream lasts until Close
				go func() {
					_, _ = conn.Write([]byte("later"))
					_ = conn.Close()
				}()
			case 3: // a read deadline cuts a silent client
				_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := conn.Read(make([]byte, 1))
				msg := "no timeout"
				if errors.Is(err, os.ErrDeadlineExceeded) {
					msg = "timeout"
				}
				_, _ = conn.Write([]byte(msg))
				_ = conn.Close()
			}
		}
	})
	c := newClient(t, p, p.svidCert(t, clientID), expectID(serverID))

	t.Run("echo", func(t *testing.T) {
		dst := netip.MustParseAddrPort("127.0.0.1:1")
		conn, err := c.Dial(dialCtx(t), srv.addr, dst)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.Close()
		payload := make([]byte, 256<<10)
		_, _ = rand.Read(payload)
		got, err := echoThrough(conn, payload)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d bytes back of %d, err %v", len(got), len(payload), err)
		}
		s := <-seenc
		if s.peer.ID != clientID || !s.peer.Addr.Addr().IsLoopback() || s.dst != dst || s.local.String() != dst.String() {
			t.Fatalf("Handle saw peer %+v dst %s local %s; want %s from loopback to %s", s.peer, s.dst, s.local, clientID, dst)
		}
	})
	for _, tc := range []struct {
		port uint16
		want string
	}{{2, "later"}, {3, "timeout"}} {
		conn, err := c.Dial(dialCtx(t), srv.addr, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tc.port))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		got, err := io.ReadAll(conn)
		_ = conn.Close()
		<-seenc
		if err != nil || string(got) != tc.want {
			t.Errorf("port %d: read %q, %v; want %q then EOF", tc.port, got, err, tc.want)
		}
	}
}
