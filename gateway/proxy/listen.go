package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-mesh/causeway/gateway/authz"
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
	// chain is the filter chain picked at accept (by destination port);
	// requests prefer the current model's chain for the same port.
	chain *filterChain
	// origDst is the original destination of a redirected connection, or
	// the CONNECT target of a tunnelled one.
	origDst netip.AddrPort
	// port is the destination port that picked the chain (0 when the
	// listener has a single chain).
	port   uint16
	source netip.AddrPort
	// tls is the state of a connection the listener's TLS context
	// terminated (nil for plaintext).
	tls *tls.ConnectionState
	// peer is the downstream's verified identity: the client certificate
	// the chain's TLS context verified, or the SVID of the HBONE tunnel
	// the connection came through. nil when there is none; never taken
	// from anything the client says.
	peer *peerIdentity
	// filterState holds string objects for RBAC filter_state principals
	// (xdsconv.FilterStatePeerCluster).
	filterState map[string]string
}

// peerIdentity is a verified peer certificate's identity.
type peerIdentity struct {
	// principal is the URI SAN (the SPIFFE ID).
	principal string
	dnsSANs   []string
	subject   string
}

// dstPort is the port the client meant: the original destination's, or
// the local socket's.
func (i *connInfo) dstPort(c net.Conn) uint16 {
	if i.origDst.IsValid() {
		return i.origDst.Port()
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		return ap.Port()
	}
	return 0
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
	if l.useOriginalDst || l.inbound {
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
		if l.inbound {
			// Captured plaintext for the workload: only PERMISSIVE
			// serves it, and with no identity (nothing was verified).
			if l.mtls != mtlsPermissive {
				p.metrics.connRejected.WithLabelValues("mtls_strict").Inc()
				_ = c.Close()
				return
			}
		} else if t := m.byAddr[orig]; t != nil {
			info.listener = t
		} else if t := m.byPort[orig.Port()]; t != nil {
			info.listener = t
		}
	}
	p.serveConn(c, info)
}

// serveConn serves a connection with its listener's filter chain for the
// destination port: network RBAC, TLS, then HTTP or TCP proxying. It
// returns when an HTTP connection ends; TCP proxying continues on its own
// goroutine.
func (p *Proxy) serveConn(c net.Conn, info connInfo) {
	ch := info.listener.chain
	if len(info.listener.byPort) > 0 {
		info.port = info.dstPort(c)
		ch = info.listener.chainFor(info.port)
	}
	if ch == nil {
		p.metrics.connRejected.WithLabelValues("no_filter_chain").Inc()
		_ = c.Close()
		return
	}
	info.chain = ch
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
		if ch.tlsSpec.verifies() && len(cs.PeerCertificates) > 0 {
			// The handshake verified the certificate (or failed).
			info.peer = identityOf(cs.PeerCertificates[0])
		}
		c = tc
	}
	if len(ch.rbac) > 0 && !p.allowConn(c, &info, ch) {
		_ = c.Close()
		return
	}
	if ch.tls != nil && ch.http != nil && info.tls.NegotiatedProtocol == "h2" {
		p.serveH2(c.(*tls.Conn), info)
		return
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

// identityOf is what RBAC learns of a verified peer certificate.
func identityOf(leaf *x509.Certificate) *peerIdentity {
	id := &peerIdentity{dnsSANs: leaf.DNSNames, subject: leaf.Subject.String()}
	if len(leaf.URIs) > 0 {
		id.principal = leaf.URIs[0].String()
	}
	return id
}

// allowConn runs the chain's network RBAC filters on a new connection.
func (p *Proxy) allowConn(c net.Conn, info *connInfo, ch *filterChain) bool {
	areq := &authz.Request{SourceIP: info.source.Addr(), FilterState: info.filterState}
	dst := info.origDst
	if !dst.IsValid() {
		dst, _ = netip.ParseAddrPort(c.LocalAddr().String())
	}
	areq.DestinationIP, areq.DestinationPort = dst.Addr().Unmap(), dst.Port()
	fillPeer(areq, info)
	for _, e := range ch.rbac {
		if ok, _ := e.Allowed(areq); !ok {
			p.metrics.denied.WithLabelValues("rbac_network").Inc()
			return false
		}
	}
	return true
}

// fillPeer sets what RBAC's authenticated principals read: the verified
// peer identity, or at least that the connection is TLS.
func fillPeer(areq *authz.Request, info *connInfo) {
	if info.tls != nil {
		areq.TLS, areq.ServerName = true, info.tls.ServerName
	}
	if id := info.peer; id != nil {
		areq.TLS = true
		areq.PeerPrincipal, areq.PeerDNSSANs, areq.PeerSubject = id.principal, id.dnsSANs, id.subject
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
