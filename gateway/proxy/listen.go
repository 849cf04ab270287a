package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// boundListener is one socket the proxy listens on. Its xDS listener name
// can change under it (same address, new listener) without a rebind.
type boundListener struct {
	ln   net.Listener
	name atomic.Value // string
	once sync.Once
}

func (b *boundListener) close() { b.once.Do(func() { _ = b.ln.Close() }) }

// connInfo is what the engine knows about a downstream connection.
type connInfo struct {
	// listener is the xDS listener serving the connection, captured at
	// accept; requests prefer the current model's listener of that name.
	listener *listener
	// origDst is the original destination of a redirected connection.
	origDst netip.AddrPort
	source  netip.AddrPort
	// tls is the state of a connection the listener's TLS context
	// terminated (nil for plaintext).
	tls *tls.ConnectionState
}

type connInfoKey struct{}

// trackedConn carries connInfo into net/http's ConnContext.
type trackedConn struct {
	net.Conn
	info connInfo
}

func (p *Proxy) bindLocked(key, addr, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s for listener %q: %w", addr, name, err)
	}
	b := &boundListener{ln: ln}
	b.name.Store(name)
	p.bound[key] = b
	go p.acceptLoop(b)
	p.log.Info("listening", "listener", name, "addr", ln.Addr().String())
	return nil
}

func (p *Proxy) acceptLoop(b *boundListener) {
	var delay time.Duration
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE and the like): back off, as
			// net/http does, instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go p.dispatch(b, c)
	}
}

// dispatch finds the listener for a new connection and serves it.
func (p *Proxy) dispatch(b *boundListener, c net.Conn) {
	m := p.store.model()
	name, _ := b.name.Load().(string)
	l := m.listeners[name]
	if l == nil {
		p.metrics.connRejected.WithLabelValues("no_listener").Inc()
		_ = c.Close()
		return
	}
	info := connInfo{listener: l}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		info.source = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if l.useOriginalDst {
		tc, ok := c.(*net.TCPConn)
		var orig netip.AddrPort
		var err error
		if ok && p.cfg.OriginalDst != nil {
			orig, err = p.cfg.OriginalDst(tc)
		} else {
			err = errors.New("original destination unknown")
		}
		local, _ := netip.ParseAddrPort(c.LocalAddr().String())
		if err != nil || orig == local || (orig.Port() == local.Port() && orig.Addr().IsLoopback()) {
			// Not redirected: a client dialled the capture port itself.
			// Passing it through would connect the proxy to itself.
			p.metrics.connRejected.WithLabelValues("not_redirected").Inc()
			_ = c.Close()
			return
		}
		orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
		info.origDst = orig
		if t := m.byAddr[orig]; t != nil {
			info.listener = t
		} else if t := m.byPort[orig.Port()]; t != nil {
			info.listener = t
		}
	}
	ch := info.listener.chain
	if ch.http != nil {
		c = rawConn(c)
	}
	if ch.tls != nil {
		tc, ok := p.handshake(c, ch.tls)
		if !ok {
			return
		}
		cs := tc.ConnectionState()
		info.tls = &cs
		if ch.http != nil && cs.NegotiatedProtocol == "h2" {
			p.serveH2(tc, info)
			return
		}
		c = tc
	}
	switch {
	case ch.http != nil:
		guarded := guardHTTP1(c, func(reason string) { p.metrics.badRequests.WithLabelValues(reason).Inc() })
		p.serveHTTP1(guarded, info)
	case ch.tcp != nil:
		if !p.conns.add() {
			_ = c.Close()
			return
		}
		go func() {
			defer p.conns.done()
			p.serveTCP(c, &info, ch.tcp)
		}()
	default:
		_ = c.Close()
	}
}

// chanListener is a net.Listener fed by the accept loops, so one
// http.Server serves every HTTP listener.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// Addrs returns the address each bound socket listens on, by the name of
// the xDS listener it serves.
func (p *Proxy) Addrs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, b := range p.bound {
		name, _ := b.name.Load().(string)
		out[name] = b.ln.Addr().String()
	}
	return out
}

// tlsHandshakeTimeout bounds a TLS handshake, so a client that opens a
// connection and sends nothing holds it only this long.
const tlsHandshakeTimeout = 10 * time.Second

func (p *Proxy) handshake(c net.Conn, cfg *tls.Config) (*tls.Conn, bool) {
	tc := tls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		p.metrics.connRejected.WithLabelValues("tls_handshake").Inc()
		_ = c.Close()
		return nil, false
	}
	return tc, true
}

// serveH2 hands a TLS connection that negotiated h2 to the TLS server
// unwrapped, so net/http recognises it and runs its HTTP/2 server on it.
// Its connInfo travels through a map keyed by the connection.
func (p *Proxy) serveH2(tc *tls.Conn, info connInfo) {
	p.tlsInfo.Store(tc, &info)
	if !p.tlsLn.push(tc) {
		p.tlsInfo.Delete(tc)
		_ = tc.Close()
	}
}
