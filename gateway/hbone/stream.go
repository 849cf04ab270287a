package hbone

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Peer is what a Server knows of a tunnel's client.
type Peer struct {
	// ID is the SPIFFE ID of the client's X509-SVID, verified in the
	// handshake.
	ID spiffeid.ID
	// Addr is the client proxy's address: the remote end of the TLS
	// connection the tunnel came on.
	Addr netip.AddrPort
	// Header is the CONNECT request's header: claims of the client (its
	// cluster, say), not verified by the handshake.
	Header http.Header
}

// serveStream answers an authorized CONNECT with 200 and hands the stream
// to Handle as a net.Conn; it returns (ending the stream) once the conn is
// closed or the client went.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, id spiffeid.ID, dst netip.AddrPort) {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	remote, _ := netip.ParseAddrPort(r.RemoteAddr)
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	sc := &streamConn{
		w: w, rc: rc, body: r.Body, done: make(chan struct{}),
		local: net.TCPAddrFromAddrPort(dst), remote: net.TCPAddrFromAddrPort(remote),
	}
	s.Handle(Peer{ID: id, Addr: remote, Header: r.Header}, dst, sc)
	select {
	case <-sc.done:
	case <-r.Context().Done():
	}
	sc.finish()
}

// streamConn is a tunnel seen from the server's side: reads come from the
// CONNECT request body (the client's bytes), writes go to the response,
// flushed at once.
//
// Half-close: a Read returns io.EOF when the client half-closed the
// tunnel. CloseWrite ends the response, and with it the stream: net/http
// cannot end a response while it still reads the request (see the
// package documentation), so what the client sends after that is
// dropped. Deadlines are the stream's own (http.ResponseController).
type streamConn struct {
	w             http.ResponseWriter
	rc            *http.ResponseController
	body          io.ReadCloser
	local, remote net.Addr

	once sync.Once
	done chan struct{} // closed by Close or CloseWrite

	// rmu and wmu are held by a Read or Write in progress, so that the
	// handler returns (and net/http reuses w) only after the last one.
	rmu, wmu         sync.Mutex
	rclosed, wclosed bool
}

// errStreamClosed is returned by reads and writes after the stream ended.
var errStreamClosed = errors.New("hbone stream closed")

func (c *streamConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rclosed {
		return 0, errStreamClosed
	}
	return c.body.Read(p)
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return 0, errStreamClosed
	}
	select {
	case <-c.done:
		return 0, errStreamClosed
	default:
	}
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

// CloseWrite ends the stream cleanly (END_STREAM after what was written).
func (c *streamConn) CloseWrite() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// Close ends the stream; a Read in progress returns once the handler
// closes the request body, a Write blocked on flow control is cut by
// finish.
func (c *streamConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// finish runs on the handler's goroutine after the stream ended: it
// unblocks reads, waits for a write in progress (cutting it with a past
// deadline if it is blocked) and refuses later calls.
func (c *streamConn) finish() {
	_ = c.CloseWrite()
	_ = c.body.Close()
	c.rmu.Lock()
	c.rclosed = true
	c.rmu.Unlock()
	if !c.wmu.TryLock() {
		_ = c.rc.SetWriteDeadline(time.Unix(1, 0))
		c.wmu.Lock()
	}
	c.wclosed = true
	c.wmu.Unlock()
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
