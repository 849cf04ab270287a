package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// ALPN protocol IDs of the two transports.
const (
	ALPNQUIC = "causeway-link/1"
	ALPNTCP  = "h2"
)

// probePath is the HTTP/2 link's probe (see dialTCP).
const probePath = "/.causeway/link/probe"

// Defaults for zero Config fields; the package documentation says why.
const (
	DefaultMaxStreamsPerLink = 1000
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
	// HandshakeTimeout bounds a link's TLS handshake;
	// DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a link from which nothing (not even a
	// keepalive) arrived for that long; DefaultIdleTimeout when zero.
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

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("link listener closed")

// Listener accepts links from peer gateways and hands out their streams.
// It is safe for concurrent use.
type Listener struct {
	cfg     ListenerConfig
	streams chan *Stream
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	stopCtx func() bool

	udp     *net.UDPConn
	qtr     *quic.Transport
	ql      *quic.Listener
	tcp     net.Listener
	httpSrv *http.Server

	mu    sync.Mutex
	conns map[*quic.Conn]struct{}
}

// Listen starts serving links on cfg's addresses until ctx is done or
// Close is called.
func Listen(ctx context.Context, cfg ListenerConfig) (*Listener, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	l := &Listener{
		cfg:     cfg,
		streams: make(chan *Stream),
		closed:  make(chan struct{}),
		conns:   make(map[*quic.Conn]struct{}),
	}
	if cfg.UDPAddr != "" {
		if err := l.listenQUIC(); err != nil {
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

// quicConfig is the quic-go configuration of a link; see the package
// documentation for the reasons behind each value.
func quicConfig(maxStreams int, handshake, idle, keepAlive time.Duration) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout: handshake,
		MaxIdleTimeout:       idle,
		KeepAlivePeriod:      keepAlive,
		MaxIncomingStreams:   int64(maxStreams),
		// Streams are opened by the dialer only.
		MaxIncomingUniStreams: -1,
		// A link multiplexes many streams across a WAN: allow large
		// windows so one link is not flow-control bound.
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		Allow0RTT:                  false,
	}
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
	tlsConf := serverTLS(l.cfg.Certificate, l.cfg.Bundle, l.cfg.AuthorizePeer, ALPNQUIC)
	l.ql, err = l.qtr.Listen(tlsConf, quicConfig(l.cfg.MaxStreamsPerLink, l.cfg.HandshakeTimeout, l.cfg.IdleTimeout, l.cfg.KeepAlive))
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
	var protos http.Protocols
	protos.SetHTTP2(true)
	l.httpSrv = &http.Server{
		Handler:   http.HandlerFunc(l.serveCONNECT),
		TLSConfig: serverTLS(l.cfg.Certificate, l.cfg.Bundle, l.cfg.AuthorizePeer, ALPNTCP),
		Protocols: &protos,
		// net/http applies the smallest of these timeouts to the TLS
		// handshake only; HTTP/2 streams are not bound by it.
		ReadHeaderTimeout: l.cfg.HandshakeTimeout,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: l.cfg.MaxStreamsPerLink,
			SendPingTimeout:      l.cfg.KeepAlive,
			PingTimeout:          l.cfg.IdleTimeout,
		},
		ErrorLog: slog.NewLogLogger(l.cfg.Logger.Handler(), slog.LevelDebug),
	}
	ln := l.tcp
	l.wg.Go(func() {
		if err := l.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.cfg.Logger.Error("link listener stopped serving TCP", "addr", l.cfg.TCPAddr, "error", err)
		}
	})
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
// goroutines. Streams already accepted fail from then on.
func (l *Listener) Close() error {
	var errs []error
	l.once.Do(func() {
		if l.stopCtx != nil {
			l.stopCtx()
		}
		close(l.closed)
		if l.ql != nil {
			l.mu.Lock()
			for c := range l.conns {
				_ = c.CloseWithError(0, "listener closed")
			}
			l.mu.Unlock()
			errs = append(errs, l.ql.Close(), l.qtr.Close(), l.udp.Close())
		}
		if l.httpSrv != nil {
			errs = append(errs, l.httpSrv.Close())
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
		l.mu.Lock()
		select {
		case <-l.closed:
			l.mu.Unlock()
			_ = c.CloseWithError(0, "listener closed")
			return
		default:
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() { l.serveQUIC(c) })
	}
}

func (l *Listener) serveQUIC(c *quic.Conn) {
	peer := peerID(c.ConnectionState().TLS)
	log := l.cfg.Logger.With("peer", peer.String(), "transport", TransportQUIC)
	log.Info("link up", "remote", c.RemoteAddr().String())
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		log.Info("link down", "cause", context.Cause(c.Context()))
	}()
	for {
		qs, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		l.wg.Go(func() { l.handleQUICStream(c, qs, peer, log) })
	}
}

func (l *Listener) handleQUICStream(c *quic.Conn, qs *quic.Stream, peer spiffeid.ID, log *slog.Logger) {
	s := &quicStream{Stream: qs, conn: c}
	_ = qs.SetReadDeadline(time.Now().Add(l.cfg.HeaderTimeout))
	authority, err := readRequest(qs)
	if err != nil {
		log.Debug("bad stream header", "error", err)
		qs.CancelRead(0)
		qs.CancelWrite(0)
		return
	}
	_ = qs.SetReadDeadline(time.Time{})
	if authority == "" {
		_ = s.answer(true, "")
		_ = s.Close()
		return
	}
	l.deliver(&Stream{Peer: peer, Authority: authority, Transport: TransportQUIC, b: s}, c.Context().Done())
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

// serveCONNECT is the HTTP/2 handler: one CONNECT request is one stream.
// It returns only when the stream is finished (see h2ServerStream).
func (l *Listener) serveCONNECT(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == probePath {
		w.WriteHeader(http.StatusNoContent)
		return
	}
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
	s := &Stream{Peer: peerID(*r.TLS), Authority: r.Host, Transport: TransportTCP, b: h}
	if !l.deliver(s, r.Context().Done()) {
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
