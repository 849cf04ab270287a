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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// ALPN protocol IDs of the two transports: QUIC, and the TCP link's
// forward connection (HTTP/2 over TLS; its reverse connection is
// ALPNTCPReverse, see h2.go).
const (
	ALPNQUIC = "causeway-link/1"
	ALPNTCP  = "h2"
)

// probePath is the HTTP/2 link's probe (see dialTCP).
const probePath = "/.causeway/link/probe"

// Defaults for zero Config fields; the package documentation says why.
const (
	DefaultMaxStreamsPerLink = 1000
	DefaultMaxLinks          = 256
	DefaultMaxLinksPerPeer   = 4
	DefaultHandshakeTimeout  = 5 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultKeepAlive         = 10 * time.Second
	DefaultHeaderTimeout     = 10 * time.Second
	DefaultQUICRetryInterval = 30 * time.Second
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 30 * time.Second
)

// ListenerConfig configures Listen. Certificate and Bundle are required,
// and at least one of UDPAddr and TCPAddr.
type ListenerConfig struct {
	// UDPAddr is where QUIC links are accepted ("ip:port"); empty for no
	// QUIC.
	UDPAddr string
	// TCPAddr is where TCP+TLS (HTTP/2) links are accepted; empty for none.
	TCPAddr string
	// Certificate returns this gateway's current SVID and key; it is
	// called on every handshake, so a rotated SVID is used at once.
	Certificate func() (*tls.Certificate, error)
	// Bundle holds the trust domain's roots that peers' SVIDs must chain
	// to; it may change while serving.
	Bundle *pki.Bundle
	// AuthorizePeer, when set, decides whether a verified gateway
	// (spiffe://<td>/cluster/<name>/gateway) may link; an error refuses
	// the handshake. Nil accepts every gateway of the trust domain.
	AuthorizePeer func(spiffeid.ID) error
	// MaxStreamsPerLink bounds the concurrent streams a peer may open on
	// one link (QUIC MaxIncomingStreams, HTTP/2 MaxConcurrentStreams);
	// DefaultMaxStreamsPerLink when zero.
	MaxStreamsPerLink int
	// MaxLinks bounds the links held at once, over all peers;
	// DefaultMaxLinks when zero. Handshakes beyond it are refused. It
	// also bounds the TCP handshakes in progress: connections beyond
	// that are closed unread.
	MaxLinks int
	// MaxLinksPerPeer bounds the links one peer gateway identity may hold
	// at once; DefaultMaxLinksPerPeer when zero. Handshakes beyond it are
	// refused. A dialer keeps one link, two while it moves from TCP back
	// to QUIC, and the link of a dialer that restarted lingers until
	// IdleTimeout.
	MaxLinksPerPeer int
	// HandshakeTimeout bounds a link's TLS handshake, and the pairing of
	// a TCP link's two connections; DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a link from which nothing (not even a
	// keepalive) arrived for that long (QUIC idle timeout, HTTP/2 PING
	// timeout); DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// KeepAlive is the period of this side's keepalives (QUIC PING,
	// HTTP/2 PING after that much silence); DefaultKeepAlive when zero.
	KeepAlive time.Duration
	// HeaderTimeout bounds the wait for a QUIC stream's header;
	// DefaultHeaderTimeout when zero.
	HeaderTimeout time.Duration
	// Logger gets link-level events (never per stream at Info);
	// slog.Default() when nil.
	Logger *slog.Logger
}

func (c *ListenerConfig) defaults() error {
	if c.Certificate == nil || c.Bundle == nil {
		return errors.New("link listener: Certificate and Bundle are required")
	}
	if c.UDPAddr == "" && c.TCPAddr == "" {
		return errors.New("link listener: neither UDPAddr nor TCPAddr is set")
	}
	setDefault(&c.MaxStreamsPerLink, DefaultMaxStreamsPerLink)
	setDefault(&c.MaxLinks, DefaultMaxLinks)
	setDefault(&c.MaxLinksPerPeer, DefaultMaxLinksPerPeer)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.HeaderTimeout, DefaultHeaderTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// ErrListenerClosed is returned by Accept and Open after Close.
var ErrListenerClosed = errors.New("link listener closed")

// Listener accepts links from peer gateways, hands out the streams they
// open (Accept) and opens streams to them over the same links (Open).
// It is safe for concurrent use.
type Listener struct {
	cfg     ListenerConfig
	log     *slog.Logger
	streams chan *Stream
	closed  chan struct{}
	// ctx ends at Close; it bounds handshakes in progress.
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup
	stopCtx func() bool

	udp *net.UDPConn
	qtr *quic.Transport
	ql  *quic.Listener

	tcp        net.Listener
	tcpTLS     *tls.Config
	fwd        *connListener
	httpSrv    *http.Server
	handshakes chan struct{} // TCP handshakes (and unpaired reverse connections) in progress

	mu      sync.Mutex
	peers   map[spiffeid.ID]*peerState
	nlinks  int
	tokens  map[string]*peerLink // TCP links waiting for their reverse connection
	changed chan struct{}        // closed and replaced when a link comes up
}

// Listen starts serving links on cfg's addresses until ctx is done or
// Close is called.
func Listen(ctx context.Context, cfg ListenerConfig) (*Listener, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		cfg:        cfg,
		log:        cfg.Logger,
		streams:    make(chan *Stream),
		closed:     make(chan struct{}),
		ctx:        lctx,
		cancel:     cancel,
		handshakes: make(chan struct{}, cfg.MaxLinks),
		peers:      make(map[spiffeid.ID]*peerState),
		tokens:     make(map[string]*peerLink),
		changed:    make(chan struct{}),
	}
	if cfg.UDPAddr != "" {
		if err := l.listenQUIC(); err != nil {
			cancel()
			return nil, err
		}
	}
	if cfg.TCPAddr != "" {
		if err := l.listenTCP(); err != nil {
			return nil, errors.Join(err, l.Close())
		}
	}
	// Not in wg: Close waits for wg.
	l.stopCtx = context.AfterFunc(ctx, func() { _ = l.Close() })
	return l, nil
}

func (l *Listener) listenQUIC() error {
	addr, err := net.ResolveUDPAddr("udp", l.cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("link listener: resolve %s: %w", l.cfg.UDPAddr, err)
	}
	l.udp, err = net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("link listener: listen on udp %s: %w", l.cfg.UDPAddr, err)
	}
	l.qtr = &quic.Transport{Conn: l.udp}
	l.ql, err = l.qtr.Listen(serverTLS(l.cfg.Certificate, l.cfg.Bundle, l.cfg.AuthorizePeer, ALPNQUIC), quicConfig(l.cfg.MaxStreamsPerLink, l.cfg.HandshakeTimeout, l.cfg.IdleTimeout, l.cfg.KeepAlive))
	if err != nil {
		return errors.Join(fmt.Errorf("link listener: quic on %s: %w", l.cfg.UDPAddr, err), l.qtr.Close(), l.udp.Close())
	}
	l.wg.Go(l.acceptQUIC)
	return nil
}

func (l *Listener) listenTCP() error {
	var err error
	l.tcp, err = net.Listen("tcp", l.cfg.TCPAddr)
	if err != nil {
		return fmt.Errorf("link listener: listen on tcp %s: %w", l.cfg.TCPAddr, err)
	}
	l.tcpTLS = serverTLS(l.cfg.Certificate, l.cfg.Bundle, l.cfg.AuthorizePeer, ALPNTCP, ALPNTCPReverse)
	l.fwd = newConnListener(l.tcp.Addr())
	l.httpSrv = h2Server(l.serveForward, l.cfg.MaxStreamsPerLink, l.cfg.HandshakeTimeout, l.cfg.KeepAlive, l.cfg.IdleTimeout, l.log)
	srv, fwd := l.httpSrv, l.fwd
	l.wg.Go(func() {
		if err := srv.Serve(fwd); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			l.log.Error("link listener stopped serving TCP", "addr", l.cfg.TCPAddr, "error", err)
		}
	})
	l.wg.Go(l.acceptTCP)
	return nil
}

// UDPAddr is the address QUIC links are accepted on, nil without QUIC.
func (l *Listener) UDPAddr() net.Addr {
	if l.udp == nil {
		return nil
	}
	return l.udp.LocalAddr()
}

// TCPAddr is the address TCP links are accepted on, nil without TCP.
func (l *Listener) TCPAddr() net.Addr {
	if l.tcp == nil {
		return nil
	}
	return l.tcp.Addr()
}

// Accept returns the next stream opened by a peer gateway.
func (l *Listener) Accept() (*Stream, error) {
	select {
	case s := <-l.streams:
		return s, nil
	case <-l.closed:
		return nil, ErrListenerClosed
	}
}

// Close stops accepting, closes every link and waits for the listener's
// goroutines. Streams already accepted or opened fail from then on.
func (l *Listener) Close() error {
	var errs []error
	l.once.Do(func() {
		if l.stopCtx != nil {
			l.stopCtx()
		}
		l.mu.Lock()
		close(l.closed)
		var links []*peerLink
		for _, ps := range l.peers {
			links = append(links, ps.links...)
		}
		l.mu.Unlock()
		l.cancel()
		if l.tcp != nil {
			errs = append(errs, l.tcp.Close())
		}
		for _, pl := range links {
			l.linkDown(pl, ErrListenerClosed)
		}
		if l.httpSrv != nil {
			errs = append(errs, l.httpSrv.Close())
		}
		if l.ql != nil {
			errs = append(errs, l.ql.Close(), l.qtr.Close(), l.udp.Close())
		}
	})
	l.wg.Wait()
	return errors.Join(errs...)
}

func (l *Listener) acceptQUIC() {
	for {
		c, err := l.ql.Accept(context.Background())
		if err != nil {
			return
		}
		pl := &peerLink{peer: peerID(c.ConnectionState().TLS), transport: TransportQUIC, remote: c.RemoteAddr(), qc: c}
		if err := l.register(pl); err != nil {
			if !errors.Is(err, ErrListenerClosed) {
				l.log.Warn("link refused", "peer", pl.peer.String(), "transport", TransportQUIC, "remote", c.RemoteAddr().String(), "error", err)
			}
			_ = c.CloseWithError(codeLinkRefused, err.Error())
			continue
		}
		l.wg.Go(func() { l.serveQUIC(pl) })
	}
}

func (l *Listener) serveQUIC(pl *peerLink) {
	c := pl.qc
	defer func() { l.linkDown(pl, context.Cause(c.Context())) }()
	if !l.markUp(pl) {
		return
	}
	log := l.log.With("peer", pl.peer.String(), "transport", TransportQUIC)
	serveQUICStreams(&l.wg, c, pl.peer, pl.st, l.cfg.HeaderTimeout, log, l.deliver)
}

// deliver hands s to Accept, or closes it if the link or the listener
// goes away first.
func (l *Listener) deliver(s *Stream, linkDone <-chan struct{}) bool {
	select {
	case l.streams <- s:
		return true
	case <-l.closed:
	case <-linkDone:
	}
	_ = s.Close()
	return false
}

// acceptTCP accepts TCP connections and hands each to handshakeTCP, at
// most MaxLinks at once.
func (l *Listener) acceptTCP() {
	for {
		raw, err := l.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait a little, as
			// net/http does, rather than spin.
			l.log.Warn("link listener: accept", "error", err)
			select {
			case <-l.closed:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case l.handshakes <- struct{}{}:
			l.wg.Go(func() { l.handshakeTCP(raw) })
		default:
			l.log.Debug("too many link handshakes in progress, connection closed", "remote", raw.RemoteAddr().String())
			_ = raw.Close()
		}
	}
}

// handshakeTCP runs the TLS handshake of a TCP connection and serves it
// as a link's forward or reverse connection, as its ALPN says.
func (l *Listener) handshakeTCP(raw net.Conn) {
	release := sync.OnceFunc(func() { <-l.handshakes })
	defer release()
	tc := tls.Server(raw, l.tcpTLS)
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.log.Debug("link handshake failed", "transport", TransportTCP, "remote", raw.RemoteAddr().String(), "error", err)
		lingerClose(raw)
		return
	}
	cs := tc.ConnectionState()
	switch cs.NegotiatedProtocol {
	case ALPNTCP:
		l.serveForwardConn(tc, peerID(cs), release)
	case ALPNTCPReverse:
		l.pairReverse(ctx, tc, peerID(cs))
	default:
		_ = tc.Close()
	}
}

// Closing a connection whose handshake failed. In TLS 1.3 the client
// finishes first and may already have sent more (its HTTP/2 preface, a
// request) when this side rejects its certificate: closing with that
// unread would reset the connection, and the reset can destroy the alert
// that tells the dialer why. So the connection is half-closed after the
// alert and drained, within bounds, before it is closed.
const (
	lingerTimeout = 250 * time.Millisecond
	lingerBytes   = 64 << 10
)

// lingerClose half-closes raw, drains it briefly and closes it.
func lingerClose(raw net.Conn) {
	defer func() { _ = raw.Close() }()
	tcp, ok := raw.(*net.TCPConn)
	if !ok || tcp.CloseWrite() != nil {
		return
	}
	_ = raw.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(raw, lingerBytes))
}

// serveForwardConn registers a TCP link and hands its forward connection
// to the HTTP/2 server; the link comes up once its reverse connection is
// paired with it, and is dropped if that does not happen within
// HandshakeTimeout. A link beyond the limits is served too, for its
// probe to answer why it is refused (then closed); it keeps its
// handshake slot until then.
func (l *Listener) serveForwardConn(tc *tls.Conn, peer spiffeid.ID, release func()) {
	raw, _ := tc.NetConn().(*net.TCPConn)
	pl := &peerLink{peer: peer, transport: TransportTCP, remote: tc.RemoteAddr(), rawTCP: raw, token: newToken()}
	pl.fwd = &h2Conn{Conn: tc, link: pl, onClose: func() {
		l.linkDown(pl, errors.New("forward connection closed"))
	}}
	err := l.register(pl)
	if err == nil {
		release()
		l.fwd.push(pl.fwd, l.closed)
		return
	}
	if errors.Is(err, ErrListenerClosed) {
		_ = tc.Close()
		return
	}
	l.log.Warn("link refused", "peer", peer.String(), "transport", TransportTCP, "remote", tc.RemoteAddr().String(), "error", err)
	done := make(chan struct{})
	refused := &h2Conn{Conn: tc, link: err, onClose: func() { close(done) }}
	if !l.fwd.push(refused, l.closed) {
		return
	}
	select {
	case <-done:
	case <-time.After(l.cfg.HandshakeTimeout):
		_ = refused.Close()
	case <-l.closed:
	}
}

// serveForward is the HTTP/2 handler of forward connections: the probe,
// then one CONNECT request per stream.
func (l *Listener) serveForward(w http.ResponseWriter, r *http.Request) {
	var pl *peerLink
	switch v := r.Context().Value(linkKey{}).(type) {
	case *peerLink:
		pl = v
	case error:
		// Refused (register): the dialer's probe shows why.
		http.Error(w, v.Error(), http.StatusServiceUnavailable)
		return
	default:
		http.Error(w, "no link", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == probePath {
		w.Header().Set(linkTokenHeader, pl.token)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	serveH2Stream(w, r, pl.peer, pl.st, l.deliver)
}

// pairReverse makes the HTTP/2 client connection of a reverse
// connection, asks the dialer which link it belongs to, and brings that
// link up.
func (l *Listener) pairReverse(ctx context.Context, tc *tls.Conn, peer spiffeid.ID) {
	hc := &h2Conn{Conn: tc}
	cc, err := h2Client(ctx, hc, l.cfg.KeepAlive, l.cfg.IdleTimeout)
	if err != nil {
		l.log.Debug("reverse link connection failed", "peer", peer.String(), "error", err)
		_ = tc.Close()
		return
	}
	pl, err := l.attachReverse(ctx, peer, cc, hc)
	if err != nil {
		l.log.Debug("reverse link connection refused", "peer", peer.String(), "error", err)
		_ = cc.Close()
		_ = tc.Close()
		return
	}
	// The hook runs when the connection's state changes, including when
	// it dies on its own (peer gone, PING timeout).
	cc.SetStateHook(func(cc *http.ClientConn) {
		if err := cc.Err(); err != nil {
			l.linkDown(pl, fmt.Errorf("reverse connection: %w", err))
		}
	})
	if err := cc.Err(); err != nil {
		l.linkDown(pl, fmt.Errorf("reverse connection: %w", err))
		return
	}
	l.markUp(pl)
}

// attachReverse asks the dialer for its link's token on cc and attaches
// cc to that link as its reverse connection.
func (l *Listener) attachReverse(ctx context.Context, peer spiffeid.ID, cc *http.ClientConn, hc *h2Conn) (*peerLink, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://link"+bindPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("ask for the link token: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return nil, fmt.Errorf("ask for the link token: answered %s", resp.Status)
	}
	token := resp.Header.Get(linkTokenHeader)
	l.mu.Lock()
	defer l.mu.Unlock()
	pl := l.tokens[token]
	switch {
	case pl == nil:
		return nil, errors.New("no link waits for this reverse connection")
	case pl.peer != peer:
		return nil, fmt.Errorf("reverse connection of %s claims a link of %s", peer, pl.peer)
	}
	delete(l.tokens, token)
	pl.rev, pl.revConn = cc, hc
	return pl, nil
}
