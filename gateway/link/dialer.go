package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// DialerConfig configures NewDialer. Certificate, Bundle and at least one
// of UDPAddr and TCPAddr are required.
type DialerConfig struct {
	// Name names the peer in logs (normally its cluster name).
	Name string
	// UDPAddr is the peer's QUIC address; empty to use TCP only.
	UDPAddr string
	// TCPAddr is the peer's TCP+TLS (HTTP/2) address; empty for no
	// fallback.
	TCPAddr string
	// Certificate returns this gateway's current SVID and key.
	Certificate func() (*tls.Certificate, error)
	// Bundle holds the roots the peer's SVID must chain to.
	Bundle *pki.Bundle
	// ExpectPeer, when set, checks the verified peer gateway's ID (see
	// ExpectID); nil accepts any gateway of the trust domain. Set it: a
	// link should reach the gateway the hub planned, not any gateway.
	ExpectPeer func(spiffeid.ID) error
	// HandshakeTimeout bounds one connection attempt, and so how long a
	// blocked UDP path delays the TCP fallback; DefaultHandshakeTimeout
	// when zero.
	HandshakeTimeout time.Duration
	// IdleTimeout declares the link dead after that long without
	// anything from the peer (QUIC idle timeout, HTTP/2 PING timeout);
	// DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// KeepAlive is the keepalive period; DefaultKeepAlive when zero.
	KeepAlive time.Duration
	// QUICRetryInterval is how often a link on TCP tries QUIC again;
	// DefaultQUICRetryInterval when zero.
	QUICRetryInterval time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between failed connection attempts; DefaultMinBackoff and
	// DefaultMaxBackoff when zero.
	MinBackoff, MaxBackoff time.Duration
	// OnStateChange, when set, is called with the new status each time
	// the link goes up or down or changes transport, for metrics. It is
	// called from the dialer's goroutine, one call at a time, and must
	// not block or call Close.
	OnStateChange func(LinkStatus)
	// Logger gets link events; slog.Default() when nil.
	Logger *slog.Logger
}

func (c *DialerConfig) defaults() error {
	if c.Certificate == nil || c.Bundle == nil {
		return errors.New("link dialer: Certificate and Bundle are required")
	}
	if c.UDPAddr == "" && c.TCPAddr == "" {
		return errors.New("link dialer: neither UDPAddr nor TCPAddr is set")
	}
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.QUICRetryInterval, DefaultQUICRetryInterval)
	setDefault(&c.MinBackoff, DefaultMinBackoff)
	setDefault(&c.MaxBackoff, DefaultMaxBackoff)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// State is whether a link is usable.
type State string

// Link states.
const (
	StateUp   State = "up"
	StateDown State = "down"
)

// LinkStatus is a snapshot of a Dialer's link.
type LinkStatus struct {
	// State is StateUp while a link is established.
	State State
	// Transport is TransportQUIC or TransportTCP while up, empty before
	// the first link.
	Transport string
	// RTT is the smoothed round-trip time: quic-go's estimate on QUIC,
	// the kernel's TCP estimate on TCP; zero when unknown.
	RTT time.Duration
	// OpenStreams is the number of streams opened by Open and not yet
	// closed, over all links.
	OpenStreams int64
	// BytesSent and BytesReceived count stream payload through Open's
	// conns since NewDialer.
	BytesSent, BytesReceived uint64
	// LastError is why the last link went down or the last attempt
	// failed; nil if none has.
	LastError error
	// Since is when State last changed.
	Since time.Time
}

// ErrDialerClosed is returned by Open after Close.
var ErrDialerClosed = errors.New("link dialer closed")

// Dialer keeps one link to one peer gateway up and opens streams on it.
// It is safe for concurrent use.
type Dialer struct {
	cfg    DialerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	openStreams   atomic.Int64
	bytesSent     atomic.Uint64
	bytesReceived atomic.Uint64

	mu      sync.Mutex
	cur     link          // nil while down
	ready   chan struct{} // closed when cur becomes non-nil
	state   State
	lastErr error
	since   time.Time
}

// link is one established connection to the peer.
type link interface {
	open(ctx context.Context, authority string) (backend, error)
	done() <-chan struct{}
	err() error
	rtt() time.Duration
	transport() string
	// close ends the link; graceful waits (bounded by ctx) for its
	// streams to finish first.
	close(ctx context.Context, graceful bool)
}

// NewDialer validates cfg and starts keeping the link up in the
// background until Close.
func NewDialer(cfg DialerConfig) (*Dialer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dialer{
		cfg: cfg, ctx: ctx, cancel: cancel,
		log:   cfg.Logger.With("cluster", cfg.Name),
		ready: make(chan struct{}),
		state: StateDown,
		since: time.Now(),
	}
	d.wg.Go(d.run)
	return d, nil
}

// Close tears the link down and stops reconnecting; conns from Open fail.
func (d *Dialer) Close() error {
	d.cancel()
	d.wg.Wait()
	return nil
}

// Status returns a snapshot of the link.
func (d *Dialer) Status() LinkStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusLocked()
}

func (d *Dialer) statusLocked() LinkStatus {
	st := LinkStatus{
		State:         d.state,
		OpenStreams:   d.openStreams.Load(),
		BytesSent:     d.bytesSent.Load(),
		BytesReceived: d.bytesReceived.Load(),
		LastError:     d.lastErr,
		Since:         d.since,
	}
	if d.cur != nil {
		st.Transport = d.cur.transport()
		st.RTT = d.cur.rtt()
	}
	return st
}

// Open opens a stream to authority ("host:port" or "ip:port") through the
// peer gateway. It waits for a link while ctx allows, and for a free
// stream slot when the peer's MaxStreamsPerLink is reached. It returns a
// *RefusedError when the peer gateway refuses the stream. ctx bounds only
// the opening, not the returned conn's life.
func (d *Dialer) Open(ctx context.Context, authority string) (net.Conn, error) {
	if err := checkAuthority(authority); err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	for {
		d.mu.Lock()
		l, ready := d.cur, d.ready
		d.mu.Unlock()
		if l != nil {
			b, err := l.open(ctx, authority)
			if err != nil {
				return nil, fmt.Errorf("open stream to %s over %s link to %s: %w", authority, l.transport(), d.cfg.Name, err)
			}
			d.openStreams.Add(1)
			return &Conn{b: b, d: d}, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("open stream to %s: link to %s is down: %w", authority, d.cfg.Name, context.Cause(ctx))
		case <-d.ctx.Done():
			return nil, ErrDialerClosed
		}
	}
}

// run is the dialer's loop: connect, wait for the link to die (or for a
// QUIC retry to succeed while on TCP), back off, repeat.
func (d *Dialer) run() {
	backoff := d.cfg.MinBackoff
	for {
		l, err := d.connect()
		if err != nil {
			if d.ctx.Err() != nil {
				d.setDown(nil, ErrDialerClosed)
				return
			}
			d.setDown(nil, err)
			if !d.sleep(jitter(backoff)) {
				d.setDown(nil, ErrDialerClosed)
				return
			}
			backoff = min(2*backoff, d.cfg.MaxBackoff)
			continue
		}
		backoff = d.cfg.MinBackoff
		d.setUp(l)
		l, err = d.hold(l)
		if err == nil {
			return
		}
		d.setDown(l, err)
		if !d.sleep(jitter(d.cfg.MinBackoff)) {
			return
		}
	}
}

// hold keeps l until it dies (returning the link and why) or the dialer
// closes (returning a nil error). On TCP it retries QUIC every
// QUICRetryInterval and moves to it when it works, letting the TCP link
// drain.
func (d *Dialer) hold(l link) (link, error) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	for {
		onTCP := l.transport() == TransportTCP && d.cfg.UDPAddr != ""
		if onTCP {
			retry.Reset(jitter(d.cfg.QUICRetryInterval))
		}
		select {
		case <-d.ctx.Done():
			l.close(context.Background(), false)
			return l, nil
		case <-l.done():
			if onTCP {
				retry.Stop()
			}
			err := l.err()
			if err == nil {
				err = errors.New("link closed")
			}
			return l, err
		case <-retry.C:
			q, err := d.dialQUIC(d.ctx)
			if err != nil {
				d.log.Debug("QUIC still unavailable, staying on TCP", "error", err)
				continue
			}
			d.log.Info("link moved back to QUIC")
			old := l
			l = q
			d.setUp(l)
			d.wg.Go(func() {
				ctx, cancel := context.WithTimeout(d.ctx, d.cfg.IdleTimeout)
				defer cancel()
				old.close(ctx, true)
			})
		}
	}
}

// connect tries QUIC, then TCP.
func (d *Dialer) connect() (link, error) {
	var errs []error
	if d.cfg.UDPAddr != "" {
		l, err := d.dialQUIC(d.ctx)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	if d.cfg.TCPAddr != "" {
		l, err := d.dialTCP(d.ctx)
		if err == nil {
			if len(errs) > 0 {
				d.log.Info("QUIC unavailable, link falls back to TCP", "error", errs[0])
			}
			return l, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (d *Dialer) setUp(l link) {
	d.mu.Lock()
	prev := d.cur
	d.cur = l
	if prev == nil {
		close(d.ready)
	}
	d.state = StateUp
	d.since = time.Now()
	st := d.statusLocked()
	d.mu.Unlock()
	d.log.Info("link up", "transport", l.transport())
	d.hook(st)
}

// setDown records that l (or an attempt, when l is nil) failed with err.
func (d *Dialer) setDown(l link, err error) {
	d.mu.Lock()
	changed := d.state != StateDown
	if d.cur != nil {
		d.cur = nil
		d.ready = make(chan struct{})
	}
	d.lastErr = err
	if changed {
		d.state = StateDown
		d.since = time.Now()
	}
	st := d.statusLocked()
	d.mu.Unlock()
	if l != nil {
		l.close(context.Background(), false)
	}
	if changed {
		d.log.Warn("link down", "error", err)
		d.hook(st)
	}
}

func (d *Dialer) hook(st LinkStatus) {
	if d.cfg.OnStateChange != nil {
		d.cfg.OnStateChange(st)
	}
}

func (d *Dialer) sleep(t time.Duration) bool {
	tm := time.NewTimer(t)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-d.ctx.Done():
		return false
	}
}

// jitter spreads t over [t/2, t), so that gateways that lost their links
// together do not reconnect in lockstep.
func jitter(t time.Duration) time.Duration {
	if t <= 1 {
		return t
	}
	return t/2 + rand.N(t/2) //nolint:gosec // jitter needs no cryptographic randomness
}

// quicLink is a link over QUIC.
type quicLink struct{ c *quic.Conn }

func (d *Dialer) dialQUIC(ctx context.Context) (link, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	// The dialer opens streams and accepts none; 0-RTT is never used
	// (DialAddr, not DialAddrEarly).
	conf := quicConfig(-1, d.cfg.HandshakeTimeout, d.cfg.IdleTimeout, d.cfg.KeepAlive)
	c, err := quic.DialAddr(ctx, d.cfg.UDPAddr, clientTLS(d.cfg.Certificate, d.cfg.Bundle, d.cfg.ExpectPeer, ALPNQUIC), conf)
	if err != nil {
		return nil, fmt.Errorf("dial QUIC link to %s: %w", d.cfg.UDPAddr, err)
	}
	l := &quicLink{c: c}
	if err := l.probe(ctx); err != nil {
		_ = c.CloseWithError(0, "probe failed")
		return nil, fmt.Errorf("probe QUIC link to %s: %w", d.cfg.UDPAddr, err)
	}
	return l, nil
}

// probe opens a probe stream and waits for its answer: only then do we
// know the listener accepted our certificate.
func (q *quicLink) probe(ctx context.Context) error {
	b, err := q.open(ctx, "")
	if err != nil {
		return err
	}
	return b.Close()
}

func (q *quicLink) open(ctx context.Context, authority string) (backend, error) {
	qs, err := q.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = qs.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = qs.SetDeadline(time.Now()) })
	_, err = qs.Write(appendRequest(nil, authority))
	if err == nil {
		err = readResponse(qs)
	}
	if !stop() && err != nil {
		err = errors.Join(err, context.Cause(ctx))
	}
	if err != nil {
		qs.CancelRead(0)
		qs.CancelWrite(0)
		return nil, err
	}
	_ = qs.SetDeadline(time.Time{})
	return &quicStream{Stream: qs, conn: q.c}, nil
}

func (q *quicLink) done() <-chan struct{} { return q.c.Context().Done() }
func (q *quicLink) err() error            { return context.Cause(q.c.Context()) }
func (q *quicLink) rtt() time.Duration    { return q.c.ConnectionStats().SmoothedRTT }
func (q *quicLink) transport() string     { return TransportQUIC }

func (q *quicLink) close(ctx context.Context, graceful bool) {
	if graceful {
		// QUIC has no GOAWAY: give open streams until ctx ends.
		<-ctx.Done()
	}
	_ = q.c.CloseWithError(0, "link closed")
}

// tcpLink is a link over TCP+TLS with HTTP/2 CONNECT streams.
type tcpLink struct {
	cc     *http.ClientConn
	tcp    *net.TCPConn
	tr     *http.Transport
	dead   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	reason error
}

func (d *Dialer) dialTCP(ctx context.Context) (link, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	l := &tcpLink{dead: make(chan struct{})}
	var protos http.Protocols
	protos.SetHTTP2(true)
	l.tr = &http.Transport{
		Protocols:           &protos,
		TLSClientConfig:     clientTLS(d.cfg.Certificate, d.cfg.Bundle, d.cfg.ExpectPeer, ALPNTCP),
		TLSHandshakeTimeout: d.cfg.HandshakeTimeout,
		ForceAttemptHTTP2:   true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{KeepAlive: d.cfg.KeepAlive}).DialContext(ctx, network, addr)
			if err == nil {
				l.tcp, _ = c.(*net.TCPConn)
			}
			return c, err
		},
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: d.cfg.KeepAlive,
			PingTimeout:     d.cfg.IdleTimeout,
		},
	}
	cc, err := l.tr.NewClientConn(ctx, "https", d.cfg.TCPAddr)
	if err != nil {
		return nil, fmt.Errorf("dial TCP link to %s: %w", d.cfg.TCPAddr, err)
	}
	l.cc = cc
	// The hook runs when the connection's state changes, including when
	// it dies on its own (peer gone, PING timeout).
	cc.SetStateHook(func(cc *http.ClientConn) {
		if err := cc.Err(); err != nil {
			l.die(err)
		}
	})
	// Probe with a request: only the listener's answer shows that it
	// accepted our certificate (TLS 1.3 clients finish first).
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+d.cfg.TCPAddr+probePath, nil)
	if err == nil {
		var resp *http.Response
		if resp, err = cc.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("probe answered %s", resp.Status)
			}
		}
	}
	if err != nil {
		_ = cc.Close()
		return nil, fmt.Errorf("probe TCP link to %s: %w", d.cfg.TCPAddr, err)
	}
	return l, nil
}

func (t *tcpLink) die(err error) {
	t.once.Do(func() {
		t.mu.Lock()
		t.reason = err
		t.mu.Unlock()
		close(t.dead)
	})
}

func (t *tcpLink) open(ctx context.Context, authority string) (backend, error) {
	pr, pw := io.Pipe()
	// The request's context lives as long as the stream; ctx only bounds
	// the wait for the peer's answer.
	rctx, rcancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(rctx, http.MethodConnect, "https://"+authority, pr)
	if err != nil {
		rcancel()
		return nil, err
	}
	req.URL = &url.URL{Host: authority}
	req.Host = authority
	stop := context.AfterFunc(ctx, rcancel)
	resp, err := t.cc.RoundTrip(req)
	if !stop() {
		if err == nil {
			_ = resp.Body.Close()
		}
		rcancel()
		return nil, context.Cause(ctx)
	}
	if err != nil {
		rcancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
		_ = resp.Body.Close()
		rcancel()
		return nil, &RefusedError{Reason: string(reason)}
	}
	var local, remote net.Addr
	if t.tcp != nil {
		local, remote = t.tcp.LocalAddr(), t.tcp.RemoteAddr()
	}
	return &h2ClientStream{pw: pw, body: resp.Body, cancel: rcancel, local: local, remote: remote}, nil
}

func (t *tcpLink) done() <-chan struct{} { return t.dead }

func (t *tcpLink) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

func (t *tcpLink) rtt() time.Duration { return tcpRTT(t.tcp) }

func (t *tcpLink) transport() string { return TransportTCP }

func (t *tcpLink) close(ctx context.Context, graceful bool) {
	if graceful {
		// Wait for in-flight streams, polling: ClientConn has no
		// Shutdown. New streams already go to the new link.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for t.cc.InFlight() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-tick.C:
			}
		}
	}
	_ = t.cc.Close()
	t.die(net.ErrClosed)
}
