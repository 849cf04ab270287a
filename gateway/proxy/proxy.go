package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Binding makes the proxy listen on Addr and serve the xDS listener named
// Listener there, whatever that listener's own address and bind_to_port
// say: the explicit mode, for where capture is not possible. For example
// 127.0.0.1:15080 → "explicit_http" routes plain HTTP by Host to every
// service; 127.0.0.1:9000 → "10.101.0.12_9000" forwards TCP to one.
type Binding struct {
	Addr     string
	Listener string
}

// Config configures a Proxy.
type Config struct {
	// Store is where the configuration comes from.
	Store *Store
	// Bindings are explicit listeners (see Binding).
	Bindings []Binding
	// OutboundAddr, when set, is where the proxy binds the listener that
	// has use_original_dst (the capture port), instead of that listener's
	// own address.
	OutboundAddr string
	// BindListeners binds listeners that have bind_to_port (the default in
	// xDS). Sidecars bind them; a proxy with only explicit bindings does
	// not need to.
	BindListeners bool
	// OriginalDst reads a redirected connection's original destination
	// (gateway/capture.OriginalDst in production).
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// DrainTimeout bounds the graceful drain on shutdown.
	DrainTimeout time.Duration
	// Registerer receives the proxy's metrics; nil means none are exported.
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// Identity holds the proxy's SVID (SecretDefault) and trust bundle
	// (SecretRootCA), from SDS. Without it the proxy has no mutual TLS:
	// no HBONE server, and endpoints marked for HBONE are reached in
	// plaintext. Store.UseSecrets must have been given the same store.
	Identity *Secrets
	// HBONEAddr, with Identity, is where the inbound HBONE server listens
	// (":15008" in a sidecar). Each tunnel to an address of the pod is
	// served by the listener xdsconv.VirtualInboundListener.
	HBONEAddr string
	// InboundAddr is where the capture rules redirect inbound plaintext
	// (":15006"): the proxy binds the inbound listener there, and serves
	// what arrives only in PERMISSIVE mode.
	InboundAddr string
	// PodAddrs are the workload's addresses: a tunnel's CONNECT target
	// must be one of them, or it is refused (403): never an open proxy.
	PodAddrs []netip.Addr
	// ReservedPorts are ports a tunnel may not reach on the pod, besides
	// the ports of HBONEAddr, InboundAddr and OutboundAddr: the proxy's
	// own (its admin port).
	ReservedPorts []uint16
	// Cluster is the member cluster's name: the peer cluster of tunnels
	// from inside the cluster, for RBAC (xdsconv.FilterStatePeerCluster).
	Cluster string
	// TunnelPort is the port of the peers' HBONE servers;
	// xdsconv.HBONEPort when zero (tests set another).
	TunnelPort uint16
	// SourceAddr, when valid, is the source address of every upstream
	// connection (the pod's IP, as a pod's own traffic has). Invalid (the
	// zero value): the kernel chooses.
	SourceAddr netip.Addr
}

// Proxy is the engine. Create it with New, then Run it.
type Proxy struct {
	cfg     Config
	store   *Store
	log     *slog.Logger
	metrics *metrics

	h1, h2 *http.Transport
	h1fast *h1Client
	// tlsServer serves TLS connections that negotiated h2 (see serveH2).
	tlsServer *http.Server
	tlsLn     *chanListener
	tlsInfo   sync.Map // *tls.Conn → *connInfo
	// tlsTransports are the pools of clusters that originate TLS, by the
	// cluster's tlsKey.
	tlsTransports sync.Map
	server        *http.Server
	rp            *httputil.ReverseProxy
	httpLn        *chanListener

	// tunnel opens HBONE tunnels to endpoints marked for them; h1t, h2t
	// and h1fastT are the pools that dial through it. nil without an
	// identity.
	tunnel *hbone.Client
	// gwTunnel opens tunnels to this cluster's east-west gateway, and
	// remoteTunnel sessions to other clusters' proxies inside them; nil
	// without an identity or a cluster name.
	gwTunnel, remoteTunnel *hbone.Client
	h1t, h2t               *http.Transport
	h1fastT                *h1Client
	hboneServer            *hbone.Server
	reservedPort           map[uint16]bool

	mu       sync.Mutex
	bound    map[string]*boundListener // by bind address
	draining atomic.Bool
	ready    atomic.Bool
	// running is set once Run has bound everything (the HBONE server and
	// the explicit bindings): configuration may arrive, and bind the
	// listeners it names, before.
	running atomic.Bool
	conns   connTracker // TCP-proxied connections
	h1conns h1Conns     // connections the HTTP/1 loop serves

	// retry budget: Envoy's default, retries ≤ max(3, 20% of active).
	active  atomic.Int64
	retries atomic.Int64
	mirrors chan struct{}
	// hboneAddr is the HBONE server's bound address, once it listens.
	hboneAddr atomic.Value // string
	// requests in flight per cluster name, for circuit breaking; kept
	// across configuration updates.
	perCluster sync.Map // string → *atomic.Int64
}

// sourceAddr is the local address upstream dials bind: nil to let the
// kernel choose.
func (p *Proxy) sourceAddr() net.Addr {
	if !p.cfg.SourceAddr.IsValid() {
		return nil
	}
	return &net.TCPAddr{IP: p.cfg.SourceAddr.AsSlice(), Zone: p.cfg.SourceAddr.Zone()}
}

// dialer returns a dialer for upstream connections.
func (p *Proxy) dialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if a := p.sourceAddr(); a != nil {
		d.LocalAddr = a
	}
	return d
}

func (p *Proxy) inflight(cluster string) *atomic.Int64 {
	if v, ok := p.perCluster.Load(cluster); ok {
		return v.(*atomic.Int64)
	}
	v, _ := p.perCluster.LoadOrStore(cluster, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// New returns a proxy for cfg.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	p := &Proxy{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		bound:   map[string]*boundListener{},
		mirrors: make(chan struct{}, 64),
	}
	p.metrics = newMetrics(cfg.Registerer)
	p.h1, p.h2 = newTransports(p.sourceAddr())
	p.h1fast = newH1Client(p.sourceAddr())
	if cfg.Identity != nil {
		p.initMTLS()
	}
	p.tlsLn = newChanListener()
	p.httpLn = newChanListener()
	p.server = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*trackedConn); ok {
				return context.WithValue(ctx, connInfoKey{}, &tc.info)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: 1000,
			// Bounded per-connection cost: Go's server also caps
			// CONTINUATION frames by MaxHeaderBytes and counts resets
			// against new streams (rapid reset, CVE-2023-44487).
			MaxReceiveBufferPerStream: 1 << 20,
		},
	}
	p.rp = p.newReverseProxy()
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	p.server.Protocols = protocols
	p.tlsServer = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.server.ReadHeaderTimeout,
		IdleTimeout:       p.server.IdleTimeout,
		MaxHeaderBytes:    p.server.MaxHeaderBytes,
		ErrorLog:          p.server.ErrorLog,
		HTTP2:             p.server.HTTP2,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if info, ok := p.tlsInfo.LoadAndDelete(c); ok {
				return context.WithValue(ctx, connInfoKey{}, info)
			}
			return ctx
		},
	}
	tlsProtocols := new(http.Protocols)
	tlsProtocols.SetHTTP2(true)
	p.tlsServer.Protocols = tlsProtocols
	cfg.Store.addHook(p.reconcileListeners)
	return p
}

// Ready reports whether the proxy has its first complete configuration
// and is listening.
func (p *Proxy) Ready() bool {
	return p.running.Load() && p.ready.Load() && !p.draining.Load() && (p.cfg.Identity == nil || p.cfg.Identity.Has(SecretDefault, SecretRootCA))
}

// Run serves until ctx is done, then drains: listeners close at once,
// in-flight requests and connections get DrainTimeout to finish.
func (p *Proxy) Run(ctx context.Context) error {
	serveErr := make(chan error, 3)
	go func() { serveErr <- p.server.Serve(p.httpLn) }()
	go func() { serveErr <- p.tlsServer.Serve(p.tlsLn) }()
	if p.hboneServer != nil {
		ln, err := net.Listen("tcp", p.cfg.HBONEAddr)
		if err != nil {
			return fmt.Errorf("listen for HBONE on %s: %w", p.cfg.HBONEAddr, err)
		}
		// The bound port is the proxy's own: no tunnel may target it.
		p.reservedPort[uint16(ln.Addr().(*net.TCPAddr).Port)] = true
		p.hboneAddr.Store(ln.Addr().String())
		p.log.Info("serving HBONE", "addr", ln.Addr().String())
		go func() {
			if err := p.hboneServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("hbone: %w", err)
			}
		}()
	}

	p.mu.Lock()
	for i, b := range p.cfg.Bindings {
		if p.bound[bindingKey(i)] != nil {
			// A configuration that arrived before Run bound it already.
			continue
		}
		if err := p.bindLocked(bindingKey(i), b.Addr, b.Listener); err != nil {
			p.mu.Unlock()
			p.closeAll()
			return err
		}
	}
	p.mu.Unlock()
	p.reconcileListeners()
	p.running.Store(true)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		p.closeAll()
		return fmt.Errorf("serve http: %w", err)
	}
	return p.drain()
}

func (p *Proxy) drain() error {
	p.draining.Store(true)
	p.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainTimeout)
	defer cancel()
	hboneDone := make(chan error, 1)
	go func() {
		if p.hboneServer == nil || p.hboneAddr.Load() == nil {
			hboneDone <- nil
			return
		}
		hboneDone <- p.hboneServer.Shutdown(ctx)
	}()
	err := errors.Join(p.server.Shutdown(ctx), p.tlsServer.Shutdown(ctx), p.h1conns.drain(ctx))
	p.conns.drain(ctx)
	err = errors.Join(err, <-hboneDone)
	p.h1.CloseIdleConnections()
	p.h2.CloseIdleConnections()
	p.h1fast.CloseIdleConnections()
	p.tlsTransports.Range(func(_, v any) bool { v.(*http.Transport).CloseIdleConnections(); return true })
	if p.tunnel != nil {
		p.h1t.CloseIdleConnections()
		p.h2t.CloseIdleConnections()
		p.h1fastT.CloseIdleConnections()
		if p.remoteTunnel != nil {
			_ = p.remoteTunnel.Close()
			_ = p.gwTunnel.Close()
		}
		_ = p.tunnel.Close()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("drain: requests still running after %s", p.cfg.DrainTimeout)
	}
	return nil
}

// bindingKey keys explicit bindings apart from xDS listeners, which are
// keyed by address.
func bindingKey(i int) string { return "binding#" + strconv.Itoa(i) }

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, b := range p.bound {
		b.close()
		delete(p.bound, addr)
	}
}

// reconcileListeners binds the listeners of the current model that bind
// and closes the ones that went away. Explicit bindings stay.
func (p *Proxy) reconcileListeners() {
	m := p.store.model()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Checked under the lock that closeAll takes, so an update racing the
	// drain cannot bind a socket after everything was closed.
	if p.draining.Load() {
		return
	}
	type target struct{ addr, name string }
	want := map[string]target{} // key → where and what
	for i, b := range p.cfg.Bindings {
		want[bindingKey(i)] = target{b.Addr, b.Listener}
	}
	if p.cfg.BindListeners {
		for _, l := range m.listeners {
			switch {
			case l.useOriginalDst && p.cfg.OutboundAddr != "":
				want[p.cfg.OutboundAddr] = target{p.cfg.OutboundAddr, l.name}
			case l.inbound && l.name == xdsconv.VirtualInboundListener:
				// Bound only where the capture rules send inbound
				// plaintext; tunnels reach it through the HBONE server.
				if p.cfg.InboundAddr != "" {
					want[p.cfg.InboundAddr] = target{p.cfg.InboundAddr, l.name}
				}
			case l.bind:
				want[l.addr.String()] = target{l.addr.String(), l.name}
			}
		}
	}
	for key, b := range p.bound {
		t, ok := want[key]
		if !ok {
			b.close()
			delete(p.bound, key)
			continue
		}
		// Same address, maybe another listener: keep the socket.
		b.name.Store(t.name)
	}
	for key, t := range want {
		if _, ok := p.bound[key]; ok {
			continue
		}
		if err := p.bindLocked(key, t.addr, t.name); err != nil {
			p.log.Error("bind listener", "listener", t.name, "addr", t.addr, "err", err)
		}
	}
	if m.versions[resourcev3.ListenerType] != "" && m.versions[resourcev3.ClusterType] != "" {
		p.ready.Store(true)
	}
}

// connTracker counts TCP-proxied connections so a drain can wait for
// them. Unlike a WaitGroup, adding after the drain began is allowed: it
// fails, and the connection is refused.
type connTracker struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{}
}

func (t *connTracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	t.n++
	return true
}

func (t *connTracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// drain stops new connections and waits until none is left or ctx ends.
func (t *connTracker) drain(ctx context.Context) {
	t.mu.Lock()
	t.draining = true
	if t.n == 0 {
		t.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	t.idle = idle
	t.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
