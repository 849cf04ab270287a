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
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
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
	// LocalAddr, when valid, is the source address of the link's
	// connections (UDP and TCP): a gateway dials from its own address,
	// which firewalls between clusters are written for.
	LocalAddr netip.Addr
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
	// Handle, when set, receives the streams the peer gateway opens on
	// this link (Listener.Open at its end): one call per stream, each in
	// its own goroutine, with Stream.Peer the verified peer. Like a
	// caller of Listener.Accept it must answer the stream (Accept or
	// Refuse: it decides what the peer may reach) and Close it. Close
	// does not wait for Handle calls; their streams fail once the link
	// is closed. Nil refuses every stream the peer opens.
	Handle func(*Stream)
	// MaxStreamsPerLink bounds the concurrent streams the peer may open
	// on the link (QUIC MaxIncomingStreams, HTTP/2 MaxConcurrentStreams
	// of the reverse connection); DefaultMaxStreamsPerLink when zero.
	MaxStreamsPerLink int
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
	// HeaderTimeout bounds the wait for the header of a QUIC stream the
	// peer opens; DefaultHeaderTimeout when zero.
	HeaderTimeout time.Duration
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
	setDefault(&c.MaxStreamsPerLink, DefaultMaxStreamsPerLink)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.HeaderTimeout, DefaultHeaderTimeout)
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

// Link states. A link goes down → connecting → up, and back to down when
// it dies (or from connecting, when the peer turns it down).
const (
	// StateDown: no link. Open waits for one.
	StateDown State = "down"
	// StateConnecting: the handshake is done and this side has verified
	// the peer; streams may be opened (forward streams: Open and
	// OpenEarly use the link). The peer's acceptance is not confirmed
	// yet: in TLS 1.3 the client finishes its handshake before the
	// server has checked the client's certificate, so the probe (see the
	// package documentation) runs now, for about one round trip; if the
	// peer turned the link down, the link goes down with the reason in
	// LastError.
	StateConnecting State = "connecting"
	// StateUp: the peer answered the probe: it accepted this gateway's
	// certificate and holds the link (on TCP, it also paired the reverse
	// connection, so it can open streams to this side).
	StateUp State = "up"
)

// LinkStatus is a snapshot of a Dialer's link.
type LinkStatus struct {
	// State is StateUp while a link is established, StateConnecting
	// while it is being confirmed (streams may be opened already).
	State State
	// Transport is TransportQUIC or TransportTCP while connecting or up,
	// empty while down.
	Transport string
	// RTT is the smoothed round-trip time: quic-go's estimate on QUIC,
	// the kernel's TCP estimate on TCP; zero when unknown.
	RTT time.Duration
	// OpenStreams is the number of streams not yet closed, over all
	// links: opened by Open, or by the peer (Handle).
	OpenStreams int64
	// BytesSent and BytesReceived count stream payload both ways since
	// NewDialer: through Open's conns and Handle's streams.
	BytesSent, BytesReceived uint64
	// LastError is why the last link went down or the last attempt
	// failed; nil if none has.
	LastError error
	// Since is when State last changed.
	Since time.Time
}

// ErrDialerClosed is returned by Open after Close.
var ErrDialerClosed = errors.New("link dialer closed")

// Dialer keeps one link to one peer gateway up, opens streams on it and
// serves the streams the peer opens on it (DialerConfig.Handle). It is
// safe for concurrent use.
type Dialer struct {
	cfg    DialerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	counters

	// The HTTP/2 server of TCP links' reverse connections, fed by revLn;
	// nil without TCPAddr.
	revSrv *http.Server
	revLn  *connListener

	mu      sync.Mutex
	cur     link          // nil while down; set while connecting and up
	changed chan struct{} // closed and replaced when cur changes
	state   State
	lastErr error
	since   time.Time
}

// link is one established connection to the peer.
type link interface {
	// open opens a stream and returns once its header is sent, while
	// ctx allows; the verdict comes later (opener).
	open(ctx context.Context, authority string) (opener, error)
	// accepted is closed once the peer answered the probe (and on TCP
	// paired the reverse connection); a link whose probe fails dies
	// instead, with the reason in err.
	accepted() <-chan struct{}
	// settled is closed once the confirmation ended, either way.
	settled() <-chan struct{}
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
		log:     cfg.Logger.With("cluster", cfg.Name),
		changed: make(chan struct{}),
		state:   StateDown,
		since:   time.Now(),
	}
	if cfg.TCPAddr != "" {
		d.revLn = newConnListener(&net.TCPAddr{})
		d.revSrv = h2Server(d.serveReverse, cfg.MaxStreamsPerLink, cfg.HandshakeTimeout, cfg.KeepAlive, cfg.IdleTimeout, d.log)
		d.wg.Go(func() { _ = d.revSrv.Serve(d.revLn) })
	}
	d.wg.Go(d.run)
	return d, nil
}

// Close tears the link down and stops reconnecting; conns from Open and
// streams given to Handle fail.
func (d *Dialer) Close() error {
	d.cancel()
	if d.revSrv != nil {
		// Serve returns; the run loop closes the link itself.
		_ = d.revLn.Close()
	}
	d.wg.Wait()
	if d.revSrv != nil {
		_ = d.revSrv.Close()
	}
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
// peer gateway and returns once the peer accepted it: use it when the
// verdict must be known before answering one's own client. It waits for a
// link while ctx allows (a link that dies before the peer confirmed it is
// not used: Open waits for the next), and for a free stream slot when the
// peer's MaxStreamsPerLink is reached. It returns a *RefusedError when the
// peer gateway refuses the stream. ctx bounds only the opening, not the
// returned conn's life. Over an established link it takes one round trip.
func (d *Dialer) Open(ctx context.Context, authority string) (net.Conn, error) {
	return d.open(ctx, authority, true)
}

// OpenEarly is Open without the wait for the peer's verdict: it returns as
// soon as the stream's header is sent, so the caller's first bytes follow
// it at once and a new connection over an established link costs one
// round trip to its first byte back, not two. The verdict comes first on
// the stream: if the peer refused it, Read returns the *RefusedError (and
// Write does once it is known); bytes written before are discarded by the
// peer, which never forwards a byte of a stream it has not accepted. A
// stream opened on a link that then dies before the peer confirmed it
// fails (Read and Write return the link's error).
func (d *Dialer) OpenEarly(ctx context.Context, authority string) (net.Conn, error) {
	return d.open(ctx, authority, false)
}

func (d *Dialer) open(ctx context.Context, authority string, wait bool) (net.Conn, error) {
	if err := checkAuthority(authority); err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	var dead link // the link a stream just failed on, unconfirmed
	for {
		d.mu.Lock()
		l, changed := d.cur, d.changed
		d.mu.Unlock()
		if l == nil || l == dead {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("open stream to %s: link to %s is down: %w", authority, d.cfg.Name, context.Cause(ctx))
			case <-d.ctx.Done():
				return nil, ErrDialerClosed
			}
		}
		b, err := openOn(ctx, l, authority, wait)
		if err == nil {
			return newConn(b, &d.counters), nil
		}
		if d.ctx.Err() == nil && diedUnconfirmed(ctx, l) {
			// The peer turned the link down (or it failed) before
			// confirming it: nothing reached a destination, and the
			// caller has sent nothing yet. Wait for the next link.
			dead = l
			continue
		}
		if d.ctx.Err() != nil {
			return nil, ErrDialerClosed
		}
		return nil, fmt.Errorf("open stream to %s over %s link to %s: %w", authority, l.transport(), d.cfg.Name, err)
	}
}

// openOn opens a stream on l; with wait, it also waits for the verdict.
func openOn(ctx context.Context, l interface {
	open(context.Context, string) (opener, error)
}, authority string, wait bool) (opener, error) {
	b, err := l.open(ctx, authority)
	if err != nil {
		return nil, err
	}
	if wait {
		if err := b.verdict(ctx); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	return b, nil
}

// diedUnconfirmed waits while ctx allows until l's confirmation ended,
// and reports whether it failed. Called after a stream failed on l: a
// link that turns out refused settles within the probe's round trip.
func diedUnconfirmed(ctx context.Context, l link) bool {
	select {
	case <-l.settled():
	case <-ctx.Done():
		return false
	}
	select {
	case <-l.accepted():
		return false
	default:
		return true
	}
}

// run is the dialer's loop: connect, wait for the peer to confirm the
// link, hold it until it dies (or a QUIC retry succeeds while on TCP),
// back off, repeat.
func (d *Dialer) run() {
	backoff := d.cfg.MinBackoff
	for {
		l, err := d.connect()
		if err == nil {
			d.setConnecting(l)
			if err = d.confirm(l); err == nil {
				backoff = d.cfg.MinBackoff
				d.setUp(l)
				if l, err = d.hold(l); err == nil {
					return
				}
				d.setDown(l, err)
				if !d.sleep(jitter(d.cfg.MinBackoff)) {
					return
				}
				continue
			}
		}
		if d.ctx.Err() != nil {
			if l != nil {
				l.close(context.Background(), false)
			}
			d.setDown(nil, ErrDialerClosed)
			return
		}
		d.setDown(l, err)
		if !d.sleep(jitter(backoff)) {
			d.setDown(nil, ErrDialerClosed)
			return
		}
		backoff = min(2*backoff, d.cfg.MaxBackoff)
	}
}

// confirm waits until the peer confirmed l (nil), l died first (why) or
// the dialer closed (ErrDialerClosed, l closed).
func (d *Dialer) confirm(l link) error {
	select {
	case <-l.settled():
	case <-d.ctx.Done():
		l.close(context.Background(), false)
		return ErrDialerClosed
	}
	select {
	case <-l.accepted():
		return nil
	default:
	}
	err := l.err()
	if err == nil {
		err = errors.New("link closed")
	}
	return fmt.Errorf("peer gateway did not confirm the %s link: %w", l.transport(), err)
}

// hold keeps l until it dies (returning the link and why) or the dialer
// closes (returning a nil error). On TCP it retries QUIC every
// QUICRetryInterval and moves to it once the peer confirmed it, letting
// the TCP link drain.
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
			if err == nil {
				if err = d.confirm(q); err != nil {
					q.close(context.Background(), false)
				}
			}
			if err != nil {
				if d.ctx.Err() != nil {
					l.close(context.Background(), false)
					return l, nil
				}
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

// setConnecting makes l the link streams are opened on while the peer
// confirms it.
func (d *Dialer) setConnecting(l link) {
	d.set(l, StateConnecting)
	d.log.Debug("link handshake done, waiting for the peer to confirm", "transport", l.transport())
}

// setUp records that the peer confirmed l.
func (d *Dialer) setUp(l link) {
	d.set(l, StateUp)
	d.log.Info("link up", "transport", l.transport())
}

func (d *Dialer) set(l link, state State) {
	d.mu.Lock()
	if d.cur != l {
		d.cur = l
		close(d.changed)
		d.changed = make(chan struct{})
	}
	d.state = state
	d.since = time.Now()
	st := d.statusLocked()
	d.mu.Unlock()
	d.hook(st)
}

// setDown records that l (or an attempt, when l is nil) failed with err.
func (d *Dialer) setDown(l link, err error) {
	d.mu.Lock()
	changed := d.state != StateDown
	if d.cur != nil {
		d.cur = nil
		close(d.changed)
		d.changed = make(chan struct{})
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
		if !errors.Is(err, ErrDialerClosed) {
			d.log.Warn("link down", "error", err)
		}
		d.hook(st)
	}
}

// deliver hands a stream the peer opened to Handle, or refuses it.
func (d *Dialer) deliver(s *Stream, _ <-chan struct{}) bool {
	if d.cfg.Handle == nil {
		_ = s.Refuse("this gateway accepts no streams on its link")
		return false
	}
	go d.cfg.Handle(s)
	return true
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
type quicLink struct {
	c      *quic.Conn
	accept chan struct{} // closed when the probe was answered
	settle chan struct{} // closed when the probe ended
	// probeErr is why the probe failed, set before c is closed.
	probeErr atomic.Pointer[error]
}

// dialQUIC returns once the handshake is done and the listener verified;
// the probe then runs in the background (see quicLink.confirm).
func (d *Dialer) dialQUIC(ctx context.Context) (link, error) {
	hctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	// 0-RTT is never used (DialAddr, not DialAddrEarly).
	conf := quicConfig(d.cfg.MaxStreamsPerLink, d.cfg.HandshakeTimeout, d.cfg.IdleTimeout, d.cfg.KeepAlive)
	c, err := d.quicDial(hctx, conf)
	if err != nil {
		return nil, fmt.Errorf("dial QUIC link to %s: %w", d.cfg.UDPAddr, err)
	}
	l := &quicLink{c: c, accept: make(chan struct{}), settle: make(chan struct{})}
	d.wg.Go(func() { l.confirm(d.ctx, d.cfg.HandshakeTimeout) })
	peer := peerID(c.ConnectionState().TLS)
	d.wg.Go(func() {
		serveQUICStreams(&d.wg, c, peer, &d.counters, d.cfg.HeaderTimeout, d.log, d.deliver)
	})
	return l, nil
}

// quicDial makes the QUIC connection, from LocalAddr when it is set (on a
// UDP socket bound to it, closed with the connection).
func (d *Dialer) quicDial(ctx context.Context, conf *quic.Config) (*quic.Conn, error) {
	tlsConf := clientTLS(d.cfg.Certificate, d.cfg.Bundle, d.cfg.ExpectPeer, ALPNQUIC)
	if !d.cfg.LocalAddr.IsValid() {
		return quic.DialAddr(ctx, d.cfg.UDPAddr, tlsConf, conf)
	}
	raddr, err := net.ResolveUDPAddr("udp", d.cfg.UDPAddr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: d.cfg.LocalAddr.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", d.cfg.LocalAddr, err)
	}
	c, err := quic.Dial(ctx, udp, raddr, tlsConf, conf)
	if err != nil {
		_ = udp.Close()
		return nil, err
	}
	go func() {
		<-c.Context().Done()
		_ = udp.Close()
	}()
	return c, nil
}

// netDialer is the TCP dialer of the link's connections.
func (d *Dialer) netDialer() *net.Dialer {
	nd := &net.Dialer{KeepAlive: d.cfg.KeepAlive}
	if d.cfg.LocalAddr.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: d.cfg.LocalAddr.AsSlice()}
	}
	return nd
}

// confirm opens a probe stream and waits for its answer, within timeout:
// only then do we know the listener accepted our certificate (and held
// the link within its limits). A failed probe closes the link.
func (q *quicLink) confirm(ctx context.Context, timeout time.Duration) {
	defer close(q.settle)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b, err := openOn(ctx, q, "", true)
	if err == nil {
		_ = b.Close()
		close(q.accept)
		return
	}
	// A peer that refused the link closed the connection, with the
	// reason: prefer it to what the probe saw.
	if cause := context.Cause(q.c.Context()); cause != nil {
		err = cause
	}
	err = fmt.Errorf("probe: %w", err)
	q.probeErr.Store(&err)
	_ = q.c.CloseWithError(0, "probe failed")
}

func (q *quicLink) open(ctx context.Context, authority string) (opener, error) {
	return openQUIC(ctx, q.c, authority)
}

func (q *quicLink) accepted() <-chan struct{} { return q.accept }
func (q *quicLink) settled() <-chan struct{}  { return q.settle }
func (q *quicLink) done() <-chan struct{}     { return q.c.Context().Done() }
func (q *quicLink) rtt() time.Duration        { return q.c.ConnectionStats().SmoothedRTT }
func (q *quicLink) transport() string         { return TransportQUIC }

func (q *quicLink) err() error {
	if p := q.probeErr.Load(); p != nil {
		return *p
	}
	return context.Cause(q.c.Context())
}

func (q *quicLink) close(ctx context.Context, graceful bool) {
	if graceful {
		// QUIC has no GOAWAY: give open streams until ctx ends.
		<-ctx.Done()
	}
	_ = q.c.CloseWithError(0, "link closed")
}

// tcpLink is a link over TCP+TLS with HTTP/2 CONNECT streams: the
// forward connection, on which this dialer is the HTTP/2 client, and the
// reverse connection, on which it is the server (see h2.go).
type tcpLink struct {
	cc  *http.ClientConn
	fwd *h2Conn
	tcp *net.TCPConn
	// peer is the gateway verified on the forward connection; the reverse
	// connection must reach the same.
	peer atomic.Pointer[spiffeid.ID]
	// token is the listener's name for the link, from the probe.
	token string
	rev   *h2Conn
	// paired is closed when the listener asked for the token on the
	// reverse connection.
	paired    chan struct{}
	pairOnce  sync.Once
	revActive atomic.Int64 // streams the peer opened, in flight
	// accept is closed once the probe was answered and the reverse
	// connection paired.
	accept chan struct{}
	settle chan struct{} // closed when the confirmation ended
	// confirmErr is why the confirmation failed, set before settle.
	confirmErr error
	dead       chan struct{}
	once       sync.Once
	mu         sync.Mutex
	reason     error
}

// dialTCP returns once the forward connection's handshake is done and
// the listener verified: forward streams may be opened. The probe and the
// pairing of the reverse connection, whose handshake overlaps the forward
// one's, then run in the background (see tcpLink.confirm).
func (d *Dialer) dialTCP(ctx context.Context) (link, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	l := &tcpLink{dead: make(chan struct{}), paired: make(chan struct{}), accept: make(chan struct{}), settle: make(chan struct{})}
	revc := make(chan revDial, 1)
	d.wg.Go(func() { revc <- d.dialReverse(ctx) })
	closeRev := func() {
		cancel()
		if r := <-revc; r.conn != nil {
			_ = r.conn.Close()
		}
	}
	fwd, err := d.dialForward(ctx, l)
	if err != nil {
		closeRev()
		return nil, fmt.Errorf("dial TCP link to %s: %w", d.cfg.TCPAddr, err)
	}
	l.fwd = fwd
	l.tcp, _ = fwd.Conn.(*tls.Conn).NetConn().(*net.TCPConn)
	cc, err := h2Client(ctx, fwd, d.cfg.KeepAlive, d.cfg.IdleTimeout)
	if err != nil {
		_ = fwd.Close()
		closeRev()
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
	if err := cc.Err(); err != nil {
		l.die(err)
	}
	// Confirm in the background: probe the forward connection with a
	// request (only the listener's answer shows that it accepted our
	// certificate: TLS 1.3 clients finish first), which returns the
	// link's token, then pair the reverse connection.
	d.wg.Go(func() {
		defer close(l.settle)
		defer cancel()
		var err error
		if err = l.probe(ctx, d.cfg.TCPAddr); err != nil {
			closeRev()
			err = fmt.Errorf("probe TCP link to %s: %w", d.cfg.TCPAddr, err)
		} else if err = d.pairReverse(ctx, l, <-revc); err != nil {
			err = fmt.Errorf("reverse connection of the TCP link to %s: %w", d.cfg.TCPAddr, err)
		}
		if err != nil {
			l.confirmErr = err
			l.die(err)
			l.close(context.Background(), false)
			return
		}
		close(l.accept)
	})
	return l, nil
}

// dialForward opens a forward connection (TCP and TLS) and records the
// verified peer on l.
func (d *Dialer) dialForward(ctx context.Context, l *tcpLink) (*h2Conn, error) {
	cfg := clientTLS(d.cfg.Certificate, d.cfg.Bundle, d.cfg.ExpectPeer, ALPNTCP)
	td := &tls.Dialer{NetDialer: d.netDialer(), Config: cfg}
	c, err := td.DialContext(ctx, "tcp", d.cfg.TCPAddr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != ALPNTCP {
		_ = tc.Close()
		return nil, fmt.Errorf("peer does not speak %s", ALPNTCP)
	}
	id := peerID(cs)
	l.peer.Store(&id)
	return &h2Conn{Conn: tc, link: l}, nil
}

// probe asks the listener for the link's token on the forward connection.
func (t *tcpLink) probe(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+probePath, nil)
	if err != nil {
		return err
	}
	resp, err := t.cc.RoundTrip(req)
	if err != nil {
		// A peer that refused our certificate sent a TLS alert, which
		// net/http reports only as an unusable connection.
		if rerr := t.fwd.err(); rerr != nil && !errors.Is(rerr, net.ErrClosed) {
			err = rerr
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusNoContent {
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
		return fmt.Errorf("probe answered %s: %s", resp.Status, bytes.TrimSpace(reason))
	}
	t.token = resp.Header.Get(linkTokenHeader)
	if t.token == "" {
		return errors.New("probe answer names no link token")
	}
	return nil
}

// revDial is a reverse connection's TLS handshake's outcome.
type revDial struct {
	conn *tls.Conn
	err  error
}

// dialReverse opens a reverse connection (TCP and TLS).
func (d *Dialer) dialReverse(ctx context.Context) revDial {
	td := &tls.Dialer{
		NetDialer: d.netDialer(),
		Config:    clientTLS(d.cfg.Certificate, d.cfg.Bundle, d.cfg.ExpectPeer, ALPNTCPReverse),
	}
	c, err := td.DialContext(ctx, "tcp", d.cfg.TCPAddr)
	if err != nil {
		return revDial{err: err}
	}
	return revDial{conn: c.(*tls.Conn)}
}

// pairReverse checks the reverse connection, hands it to the reverse
// HTTP/2 server, and waits until the listener has asked which link it
// belongs to.
func (d *Dialer) pairReverse(ctx context.Context, l *tcpLink, r revDial) error {
	if r.err != nil {
		return r.err
	}
	tc := r.conn
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol != ALPNTCPReverse {
		_ = tc.Close()
		return fmt.Errorf("peer does not speak %s", ALPNTCPReverse)
	}
	if fwd, rev := l.peer.Load(), peerID(cs); fwd == nil || *fwd != rev {
		_ = tc.Close()
		return fmt.Errorf("reverse connection reached %s, not the forward connection's peer", rev)
	}
	l.rev = &h2Conn{Conn: tc, link: l, onClose: func() { l.die(errors.New("reverse connection closed")) }}
	if !d.revLn.push(l.rev, ctx.Done()) {
		return fmt.Errorf("serve reverse connection: %w", context.Cause(ctx))
	}
	select {
	case <-l.paired:
		return nil
	case <-l.dead:
		return l.err()
	case <-ctx.Done():
		return fmt.Errorf("wait for the listener to pair the reverse connection: %w", context.Cause(ctx))
	}
}

// serveReverse is the HTTP/2 handler of reverse connections: the
// listener's pairing request, then one CONNECT request per stream it
// opens.
func (d *Dialer) serveReverse(w http.ResponseWriter, r *http.Request) {
	l, _ := r.Context().Value(linkKey{}).(*tcpLink)
	if l == nil {
		http.Error(w, "no link", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == bindPath {
		w.Header().Set(linkTokenHeader, l.token)
		w.WriteHeader(http.StatusNoContent)
		l.pairOnce.Do(func() { close(l.paired) })
		return
	}
	l.revActive.Add(1)
	defer l.revActive.Add(-1)
	serveH2Stream(w, r, *l.peer.Load(), &d.counters, d.deliver)
}

func (t *tcpLink) die(err error) {
	t.once.Do(func() {
		t.mu.Lock()
		t.reason = err
		t.mu.Unlock()
		close(t.dead)
	})
}

func (t *tcpLink) accepted() <-chan struct{} { return t.accept }
func (t *tcpLink) settled() <-chan struct{}  { return t.settle }

func (t *tcpLink) open(ctx context.Context, authority string) (opener, error) {
	var local, remote net.Addr
	if t.tcp != nil {
		local, remote = t.tcp.LocalAddr(), t.tcp.RemoteAddr()
	}
	return openH2(ctx, t.cc, authority, local, remote)
}

func (t *tcpLink) done() <-chan struct{} { return t.dead }

func (t *tcpLink) err() error {
	select {
	case <-t.settle:
		// The probe or the pairing saw why the link went while
		// unconfirmed more precisely than the connection's state.
		if t.confirmErr != nil {
			return t.confirmErr
		}
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

func (t *tcpLink) rtt() time.Duration { return tcpRTT(t.tcp) }

func (t *tcpLink) transport() string { return TransportTCP }

func (t *tcpLink) close(ctx context.Context, graceful bool) {
	if graceful {
		// Wait for in-flight streams, both ways, polling: ClientConn
		// has no Shutdown. New streams already go to the new link.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for t.cc.InFlight() > 0 || t.revActive.Load() > 0 {
			select {
			case <-ctx.Done():
				break wait
			case <-tick.C:
			}
		}
	}
	_ = t.cc.Close()
	if t.rev != nil {
		_ = t.rev.Close()
	}
	t.die(net.ErrClosed)
}
