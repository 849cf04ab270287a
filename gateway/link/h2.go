/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The HTTP/2 transport. HTTP/2 is asymmetric (only the client opens
// streams), so a link over TCP is two TLS connections, both dialled by
// the dialer and both verified as in identity.go:
//
//   - the forward connection (ALPN "h2"): the dialer is the HTTP/2 client
//     (net/http's Transport) and opens its streams on it;
//   - the reverse connection (ALPN ALPNTCPReverse): the roles are swapped,
//     the listener is the HTTP/2 client and opens its streams on it.
//
// Both ends hand an established *tls.Conn to net/http as a plain net.Conn
// (h2Conn) and let it speak HTTP/2 with prior knowledge, what net/http
// calls unencrypted HTTP/2 (the bytes are TLS-protected underneath). That
// is the supported way to run net/http's HTTP/2 on a connection net/http
// did not make, and on the reverse connection, whose ALPN is not "h2".
//
// The listener pairs the two connections by a random token it returns in
// the forward connection's probe answer (linkTokenHeader): once the
// reverse connection is up, the listener asks (GET bindPath) and the
// dialer answers with the token. The reverse connection lives and dies
// with the link: whichever connection ends first takes the other down.
const (
	// ALPNTCPReverse is the ALPN protocol ID of a TCP link's reverse
	// connection.
	ALPNTCPReverse = "causeway-link-rev/1"

	bindPath        = "/.causeway/link/bind"
	linkTokenHeader = "Causeway-Link-Token"
)

// h2Protocols is what both ends of a TLS connection that the link made
// itself tell net/http to speak: HTTP/2 with prior knowledge only.
func h2Protocols() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

// pingTimeouts splits the idle timeout in two: send a PING after
// keepAlive without a frame from the peer, then give its answer the rest
// of idle, so that a silent peer is declared dead at most idle after the
// last frame it sent. HTTP/2 has these two timers; QUIC's idle timer
// restarts at that PING (see quicConfig).
func pingTimeouts(keepAlive, idle time.Duration) (send, wait time.Duration) {
	send = keepAlive
	if send >= idle {
		send = idle / 2
	}
	return send, idle - send
}

// Receive windows of a link, both transports: a link carries a whole
// cluster pair's traffic across WAN round trips, and a window caps what
// a stream (or the link) moves per round trip (net/http's HTTP/2 server
// defaults, 1 MiB each, cap a link at 20 ms at about 50 MB/s). The memory
// is spent only while the reader falls behind, and the peer is an
// authenticated gateway.
const (
	streamReceiveWindow = 16 << 20
	linkReceiveWindow   = 64 << 20
)

// h2Config is the HTTP/2 configuration of one end of a link's TCP
// connection; maxStreams bounds the streams the peer may open (server
// side only).
func h2Config(maxStreams int, keepAlive, idle time.Duration) *http.HTTP2Config {
	send, wait := pingTimeouts(keepAlive, idle)
	return &http.HTTP2Config{
		MaxConcurrentStreams:          maxStreams,
		SendPingTimeout:               send,
		PingTimeout:                   wait,
		MaxReceiveBufferPerConnection: linkReceiveWindow,
		MaxReceiveBufferPerStream:     streamReceiveWindow,
	}
}

// h2Server is the HTTP/2 server of one end: the listener's on forward
// connections, the dialer's on reverse ones. handler finds the link in
// its request's context (linkFromContext).
func h2Server(handler http.HandlerFunc, maxStreams int, handshake, keepAlive, idle time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:   handler,
		Protocols: h2Protocols(),
		// Bounds the wait for the client's preface; HTTP/2 streams are
		// not bound by it.
		ReadHeaderTimeout: handshake,
		HTTP2:             h2Config(maxStreams, keepAlive, idle),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := c.(*h2Conn); ok {
				ctx = context.WithValue(ctx, linkKey{}, hc.link)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// h2Client makes the HTTP/2 client connection of one end over hc: the
// dialer's on a forward connection, the listener's on a reverse one.
func h2Client(ctx context.Context, hc *h2Conn, keepAlive, idle time.Duration) (*http.ClientConn, error) {
	var once atomic.Bool
	tr := &http.Transport{
		Protocols: h2Protocols(),
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if !once.CompareAndSwap(false, true) {
				return nil, net.ErrClosed
			}
			return hc, nil
		},
		HTTP2: h2Config(0, keepAlive, idle),
	}
	return tr.NewClientConn(ctx, "http", hc.RemoteAddr().String())
}

// linkKey is the request context key of the link an HTTP/2 connection
// belongs to.
type linkKey struct{}

// h2Conn is a TLS connection of a link as net/http sees it: a plain
// net.Conn (it does not expose ConnectionState, so net/http speaks HTTP/2
// with prior knowledge on it), which tells the link when net/http closes
// it — after a PING timeout, say.
type h2Conn struct {
	net.Conn
	// link is the *peerLink or *tcpLink the connection belongs to, for
	// the server's handler.
	link    any
	onClose func()
	closed  atomic.Bool
	// readErr is the first error a Read returned: a TLS alert, say,
	// which net/http reports only as an unusable connection.
	readErr atomic.Pointer[error]
}

func (c *h2Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.readErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// err is the first error a Read returned, nil if none.
func (c *h2Conn) err() error {
	if p := c.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *h2Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) && c.onClose != nil {
		c.onClose()
	}
	return err
}

// connListener hands net/http's Server the connections the link made.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to the server, or closes it if the listener is closed
// first or done ends.
func (l *connListener) push(c net.Conn, done <-chan struct{}) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
	case <-done:
	}
	_ = c.Close()
	return false
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// newToken returns a random link token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openH2 opens a CONNECT stream to authority on cc and returns once its
// HEADERS frame is sent, while ctx allows (it waits for a stream slot when
// the peer's MaxConcurrentStreams is reached). The request runs on: its
// body, the bytes written to the stream, flows before the response, which
// carries the verdict and then the bytes back (h2ClientStream). local and
// remote are the addresses of the TCP connection underneath.
func openH2(ctx context.Context, cc *http.ClientConn, authority string, local, remote net.Addr) (opener, error) {
	pr, pw := io.Pipe()
	// The request's context lives as long as the stream; ctx only bounds
	// the opening.
	rctx, rcancel := context.WithCancel(context.Background())
	h := &h2ClientStream{
		pw: pw, cancel: rcancel, local: local, remote: remote,
		sent: make(chan struct{}), done: make(chan struct{}),
	}
	body := &sentSignal{PipeReader: pr, sent: h.sent}
	req, err := http.NewRequestWithContext(rctx, http.MethodConnect, "https://"+authority, body)
	if err != nil {
		rcancel()
		return nil, err
	}
	req.URL = &url.URL{Host: authority}
	req.Host = authority
	go h.roundTrip(cc, req, pr)
	select {
	case <-h.sent:
		return h, nil
	case <-h.done:
		if !h.answered {
			_ = h.Close()
			return nil, h.verr
		}
		// Answered before net/http asked for the body: the stream was
		// opened, and its verdict is read from it, as usual.
		return h, nil
	case <-ctx.Done():
		_ = h.Close()
		return nil, context.Cause(ctx)
	}
}

// sentSignal is a CONNECT request's body: net/http reads it first right
// after it has sent the request's HEADERS frame, which sent marks.
type sentSignal struct {
	*io.PipeReader
	once sync.Once
	sent chan struct{}
}

func (s *sentSignal) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.sent) })
	return s.PipeReader.Read(p)
}

// serveH2Stream serves one CONNECT request, one stream the peer opened,
// and returns only when the stream is finished (see h2ServerStream).
// deliver hands the stream to the caller (Accept or Handle) or refuses
// it, reporting whether it did hand it over.
func serveH2Stream(w http.ResponseWriter, r *http.Request, peer spiffeid.ID, st *counters, deliver func(*Stream, <-chan struct{}) bool) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT is served on a cluster link", http.StatusMethodNotAllowed)
		return
	}
	if err := checkAuthority(r.Host); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var local net.Addr
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	remote, _ := net.ResolveTCPAddr("tcp", r.RemoteAddr)
	h := &h2ServerStream{
		w: w, rc: http.NewResponseController(w), body: r.Body,
		done: make(chan struct{}), local: local, remote: remote,
	}
	s := newStream(peer, r.Host, TransportTCP, h, st)
	if !deliver(s, r.Context().Done()) {
		return
	}
	select {
	case <-h.done:
	case <-r.Context().Done():
		h.finish(true)
	}
	if h.abort.Load() {
		// Unblock writers stuck on flow control; the stream is reset.
		_ = h.rc.SetWriteDeadline(time.Now())
		_ = h.body.Close()
	}
	h.writers.Wait()
}
