package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/gateway/link"
	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// LinkOptions tune a gateway's cluster links (see gateway/link).
type LinkOptions struct {
	// Addr is where links are accepted: UDP for QUIC and TCP for the
	// HTTP/2 fallback, on the same port.
	Addr string
	// KeepAlive and IdleTimeout: a peer silent for IdleTimeout is
	// declared down (1 s and 3 s by default: a dead gateway is noticed
	// within 3 s).
	KeepAlive, IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered reconnection backoff.
	MinBackoff, MaxBackoff time.Duration
	// QUICRetry is how often a link that fell back to TCP tries QUIC.
	QUICRetry time.Duration
}

// Defaults of a gateway's links.
const (
	DefaultLinkKeepAlive   = time.Second
	DefaultLinkIdleTimeout = 3 * time.Second
	DefaultLinkMaxBackoff  = 5 * time.Second
)

// eastWest is the east-west gateway: it keeps the links its plan names
// (clusters xdsconv.LinkClusterPrefix+peer in its xDS configuration),
// carries this cluster's sidecars' tunnels to other clusters over them,
// and serves streams from peers to endpoints of services exported from
// this cluster — nothing else: a gateway is never an open proxy.
type eastWest struct {
	p       *Proxy
	cluster string
	id      *Secrets
	log     *slog.Logger
	opts    LinkOptions
	// bundle mirrors the SDS trust bundle for the link package, which
	// verifies peers against a *pki.Bundle.
	bundle *pki.Bundle
	// source is the source address of dials to local endpoints.
	source netip.Addr

	ln      *link.Listener
	hbone   *hbone.Server
	metrics *gatewayMetrics

	// hboneAddr is where the HBONE server for local workloads listens,
	// once it does.
	hboneAddr atomic.Value // string

	mu      sync.Mutex
	dialers map[string]*planDialer // by peer cluster
	closed  bool
	streams sync.WaitGroup
}

type planDialer struct {
	d   *link.Dialer
	key string
}

type gatewayMetrics struct {
	refused *prometheus.CounterVec
	streams *prometheus.CounterVec
}

func newGatewayMetrics(reg prometheus.Registerer) *gatewayMetrics {
	m := &gatewayMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_gateway_refused_total",
			Help: "Streams the gateway refused, by direction (inbound: from a peer gateway; outbound: from a workload of this cluster) and reason.",
		}, []string{"direction", "reason"}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_gateway_streams_total",
			Help: "Streams the gateway carried, by direction, peer cluster and result.",
		}, []string{"direction", "peer", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.streams)
	}
	return m
}

// Refusal reasons (label values of causeway_gateway_refused_total).
const (
	refusedNotExported = "not_exported"
	refusedUnknownDst  = "unknown_destination"
	refusedNoLink      = "no_link"
	refusedBadTarget   = "bad_authority"
	refusedUnreachable = "unreachable"
)

func newEastWest(p *Proxy, cluster string, id *Secrets, source netip.Addr, opts LinkOptions, reg prometheus.Registerer, log *slog.Logger) *eastWest {
	if opts.KeepAlive == 0 {
		opts.KeepAlive = DefaultLinkKeepAlive
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultLinkIdleTimeout
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultLinkMaxBackoff
	}
	e := &eastWest{p: p, cluster: cluster, id: id, log: log, opts: opts, source: source, dialers: map[string]*planDialer{}}
	e.metrics = newGatewayMetrics(reg)
	if reg != nil {
		reg.MustRegister(linkCollector{e})
	}
	return e
}

func (e *eastWest) certificate() (*tls.Certificate, error) { return e.id.Certificate(SecretDefault) }

// syncBundle copies the SDS trust bundle's roots into e.bundle. It
// reports whether the bundle is known.
func (e *eastWest) syncBundle() bool {
	td := e.id.TrustDomain()
	if td.IsZero() {
		return false
	}
	xb, err := e.id.bundleSource(SecretRootCA).GetX509BundleForTrustDomain(td)
	if err != nil {
		return false
	}
	roots := xb.X509Authorities()
	if e.bundle == nil {
		b, err := pki.NewBundle(td, roots...)
		if err != nil {
			e.log.Error("trust bundle", "err", err)
			return false
		}
		e.bundle = b
		return true
	}
	for _, r := range roots {
		if !e.bundle.Contains(r) {
			if err := e.bundle.Add(r); err != nil {
				e.log.Error("trust bundle: add root", "err", err)
			}
		}
	}
	for _, r := range e.bundle.Authorities() {
		if !slices.ContainsFunc(roots, r.Equal) {
			e.bundle.Remove(r)
		}
	}
	return true
}

// run waits for the identity, starts the link listener and the HBONE
// server for local workloads, keeps the planned links, and stops them
// all when ctx ends.
func (e *eastWest) run(ctx context.Context, hboneAddr string, ready func()) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !e.id.Has(SecretDefault, SecretRootCA) || !e.syncBundle() {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	td := e.id.TrustDomain()
	self, err := link.GatewayID(td, e.cluster)
	if err != nil {
		return err
	}
	if cur, err := e.certificate(); err == nil && cur.Leaf != nil && len(cur.Leaf.URIs) == 1 && cur.Leaf.URIs[0].String() != self.String() {
		return fmt.Errorf("the SVID names %s, not this cluster's gateway %s: run the gateway as ServiceAccount %s/%s", cur.Leaf.URIs[0], self, xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount)
	}
	e.ln, err = link.Listen(ctx, link.ListenerConfig{
		UDPAddr: e.opts.Addr, TCPAddr: e.opts.Addr,
		Certificate: e.certificate, Bundle: e.bundle,
		AuthorizePeer: e.authorizePeer,
		IdleTimeout:   e.opts.IdleTimeout, KeepAlive: e.opts.KeepAlive,
		Logger: e.log,
	})
	if err != nil {
		return fmt.Errorf("link listener: %w", err)
	}
	e.log.Info("accepting cluster links", "udp", e.ln.UDPAddr().String(), "tcp", e.ln.TCPAddr().String())
	hl, err := net.Listen("tcp", hboneAddr)
	if err != nil {
		_ = e.ln.Close()
		return fmt.Errorf("listen for HBONE on %s: %w", hboneAddr, err)
	}
	e.hbone = &hbone.Server{
		Bundle: e.id.bundleSource(SecretRootCA), Certificate: e.certificate,
		Authorize: e.authorizeOutbound, Dial: e.dialOutbound, Logger: e.log,
	}
	e.hboneAddr.Store(hl.Addr().String())
	e.log.Info("serving tunnels to other clusters", "hbone", hl.Addr().String())
	errc := make(chan error, 2)
	go func() {
		if err := e.hbone.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	go e.acceptLinks()
	e.p.store.addHook(e.reconcile)
	e.reconcile()
	if ready != nil {
		ready()
	}
	bundleTick := time.NewTicker(5 * time.Second)
	defer bundleTick.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-bundleTick.C:
			e.syncBundle()
		}
	}
	e.shutdown()
	return runErr
}

func (e *eastWest) shutdown() {
	e.mu.Lock()
	e.closed = true
	dialers := e.dialers
	e.dialers = map[string]*planDialer{}
	e.mu.Unlock()
	for _, pd := range dialers {
		_ = pd.d.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.p.cfg.DrainTimeout)
	defer cancel()
	_ = e.hbone.Shutdown(ctx)
	_ = e.ln.Close()
	e.streams.Wait()
}

// authorizePeer admits a peer gateway to link only if the plan names its
// cluster (either role: plans change one side at a time).
func (e *eastWest) authorizePeer(id spiffeid.ID) error {
	cluster, err := link.GatewayCluster(id)
	if err != nil {
		return err
	}
	if _, ok := e.p.store.model().links[cluster]; !ok {
		return fmt.Errorf("cluster %s is not in this gateway's link plan", cluster)
	}
	return nil
}

// reconcile makes the dialers match the plan: one per peer this gateway
// dials, replaced when its addresses or transport change.
func (e *eastWest) reconcile() {
	links := e.p.store.model().links
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.bundle == nil {
		return
	}
	for peer, pd := range e.dialers {
		lp := links[peer]
		if lp == nil || !lp.dial || linkKey(lp) != pd.key {
			_ = pd.d.Close()
			delete(e.dialers, peer)
			e.log.Info("link removed from the plan", "peer", peer)
		}
	}
	for peer, lp := range links {
		if !lp.dial || e.dialers[peer] != nil {
			continue
		}
		want, err := link.GatewayID(e.bundle.TrustDomain(), peer)
		if err != nil {
			e.log.Error("link plan", "peer", peer, "err", err)
			continue
		}
		cfg := link.DialerConfig{
			Name: peer, TCPAddr: lp.addrs[0], LocalAddr: linkSource(e.opts.Addr),
			Certificate: e.certificate, Bundle: e.bundle, ExpectPeer: link.ExpectID(want),
			IdleTimeout: e.opts.IdleTimeout, KeepAlive: e.opts.KeepAlive,
			QUICRetryInterval: e.opts.QUICRetry, MinBackoff: e.opts.MinBackoff, MaxBackoff: e.opts.MaxBackoff,
			Handle: e.serveLinkStream,
			Logger: e.log.With("peer", peer),
		}
		if lp.quic {
			cfg.UDPAddr = lp.addrs[0]
		}
		d, err := link.NewDialer(cfg)
		if err != nil {
			e.log.Error("link plan", "peer", peer, "err", err)
			continue
		}
		e.dialers[peer] = &planDialer{d: d, key: linkKey(lp)}
		e.log.Info("link planned", "peer", peer, "addr", lp.addrs[0], "quic", lp.quic)
	}
}

// linkSource is the source address of link dials: the link listener's
// IP, when it is a specific one, so that links come from the address
// firewalls between clusters know for the gateway.
func linkSource(listen string) netip.Addr {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() || a.IsLoopback() {
		return netip.Addr{}
	}
	return a
}

func linkKey(lp *linkPeer) string {
	return fmt.Sprintf("%t|%s", lp.quic, strings.Join(lp.addrs, ","))
}

// acceptLinks serves streams of links that peers opened.
func (e *eastWest) acceptLinks() {
	for {
		s, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.streams.Add(1)
		go func() {
			defer e.streams.Done()
			e.serveLinkStream(s)
		}()
	}
}

// serveLinkStream serves a stream a peer gateway opened: its authority
// must be an endpoint, in this cluster, of a service exported to the
// cluster set (or that endpoint's pod's HBONE port).
func (e *eastWest) serveLinkStream(s *link.Stream) {
	peer, _ := link.GatewayCluster(s.Peer)
	dst, err := netip.ParseAddrPort(s.Authority)
	if err != nil {
		e.refuse(s, peer, refusedBadTarget, "bad authority")
		return
	}
	if !e.exported(dst) {
		e.refuse(s, peer, refusedNotExported, dst.String()+" is not an endpoint of a service exported from "+e.cluster)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultConnectTimeout)
	up, err := e.p.dialer(0).DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		e.refuse(s, peer, refusedUnreachable, "endpoint unreachable")
		return
	}
	if err := s.Accept(); err != nil {
		_ = up.Close()
		return
	}
	e.metrics.streams.WithLabelValues("inbound", peer, "ok").Inc()
	relay(s, up)
}

func (e *eastWest) refuse(s *link.Stream, peer, reason, msg string) {
	e.metrics.refused.WithLabelValues("inbound", reason).Inc()
	e.log.Warn("refused a stream from a peer gateway", "peer", s.Peer.String(), "authority", s.Authority, "reason", reason, "detail", msg)
	_ = s.Refuse(msg)
	e.metrics.streams.WithLabelValues("inbound", peer, "refused").Inc()
}

// exported reports whether dst may be reached from other clusters.
func (e *eastWest) exported(dst netip.AddrPort) bool {
	m := e.p.store.model()
	if meta, ok := m.endpoints[dst.String()]; ok && meta.clusterset && meta.cluster == e.cluster {
		return true
	}
	if dst.Port() == e.tunnelPort() {
		if meta, ok := m.tunnelIPs[dst.Addr().Unmap()]; ok && meta.cluster == e.cluster {
			return true
		}
	}
	return false
}

func (e *eastWest) tunnelPort() uint16 {
	if e.p.cfg.TunnelPort != 0 {
		return e.p.cfg.TunnelPort
	}
	return xdsconv.HBONEPort
}

// remoteCluster returns the member cluster of dst, an endpoint (or its
// pod's HBONE port) of a cluster-set service in another cluster.
func (e *eastWest) remoteCluster(dst netip.AddrPort) (string, bool) {
	m := e.p.store.model()
	if meta, ok := m.endpoints[dst.String()]; ok && meta.clusterset && meta.cluster != "" && meta.cluster != e.cluster {
		return meta.cluster, true
	}
	if dst.Port() == e.tunnelPort() {
		if meta, ok := m.tunnelIPs[dst.Addr().Unmap()]; ok && meta.cluster != "" && meta.cluster != e.cluster {
			return meta.cluster, true
		}
	}
	return "", false
}

// authorizeOutbound decides whether a workload of this cluster may open a
// tunnel to dst through the gateway: dst must be an endpoint of a
// cluster-set service in another cluster. (The TLS handshake has already
// held the workload to the trust domain.)
func (e *eastWest) authorizeOutbound(peer spiffeid.ID, dst netip.AddrPort) error {
	if _, ok := e.remoteCluster(dst); !ok {
		e.metrics.refused.WithLabelValues("outbound", refusedUnknownDst).Inc()
		e.log.Warn("refused a tunnel to an unknown destination", "peer", peer.String(), "dst", dst.String())
		return fmt.Errorf("%s is not an endpoint of a cluster-set service in another cluster", dst)
	}
	return nil
}

// dialOutbound opens a stream to dst over the link to its cluster.
func (e *eastWest) dialOutbound(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	cluster, ok := e.remoteCluster(dst)
	if !ok {
		return nil, fmt.Errorf("%s: no cluster", dst)
	}
	// Early: the sidecar's first bytes follow the stream header at once,
	// so a new cross-cluster connection costs one round trip to its first
	// byte; a refusal by the peer gateway ends the tunnel on its first
	// read.
	c, err := e.open(ctx, cluster, dst.String(), true)
	if err != nil {
		reason := refusedNoLink
		var refused *link.RefusedError
		if errors.As(err, &refused) {
			reason = "peer_refused"
		}
		e.metrics.streams.WithLabelValues("outbound", cluster, reason).Inc()
		return nil, err
	}
	e.metrics.streams.WithLabelValues("outbound", cluster, "ok").Inc()
	return c, nil
}

// open opens a stream to authority in the peer cluster, over the link
// this gateway dials or the one the peer dialled.
func (e *eastWest) open(ctx context.Context, peer, authority string, early bool) (net.Conn, error) {
	e.mu.Lock()
	pd := e.dialers[peer]
	e.mu.Unlock()
	if pd != nil {
		// A link that was up and went down fails streams at once, so
		// that the sidecar moves to another endpoint (another cluster)
		// rather than wait for the reconnection; before its first
		// connection a link is waited for.
		if st := pd.d.Status(); st.State == link.StateDown && st.LastError != nil {
			return nil, fmt.Errorf("%w: the link to cluster %s is down: %w", errLinkDown, peer, st.LastError)
		}
		if early {
			return pd.d.OpenEarly(ctx, authority)
		}
		return pd.d.Open(ctx, authority)
	}
	id, err := link.GatewayID(e.bundle.TrustDomain(), peer)
	if err != nil {
		return nil, err
	}
	// The peer dials this link: without it now, wait only briefly (the
	// peer reconnects on its own schedule).
	if !slices.ContainsFunc(e.ln.Peers(), func(ps link.PeerStatus) bool { return ps.Peer == id }) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, acceptedLinkWait)
		defer cancel()
	}
	if early {
		return e.ln.OpenEarly(ctx, id, authority)
	}
	return e.ln.Open(ctx, id, authority)
}

// errLinkDown fails a stream whose link is down.
var errLinkDown = errors.New("cluster link down")

// acceptedLinkWait is how long a stream waits for a peer to dial its link
// back.
const acceptedLinkWait = 500 * time.Millisecond

// relay copies both ways between a and b, passing half-closes on, and
// closes both when done.
func relay(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { pipe(a, b, nopAdder{}) })
	pipe(b, a, nopAdder{})
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

type nopAdder struct{}

func (nopAdder) Add(float64) {}

// links reports every planned link as GET /links shows it.
func (e *eastWest) links() linkapi.GatewayLinks {
	out := linkapi.GatewayLinks{Cluster: e.cluster, Links: []linkapi.Link{}}
	m := e.p.store.model()
	e.mu.Lock()
	dialers := make(map[string]*link.Dialer, len(e.dialers))
	for peer, pd := range e.dialers {
		dialers[peer] = pd.d
	}
	e.mu.Unlock()
	accepted := map[string]link.PeerStatus{}
	if e.ln != nil {
		for _, ps := range e.ln.Peers() {
			if c, err := link.GatewayCluster(ps.Peer); err == nil {
				accepted[c] = ps
			}
		}
	}
	for peer, lp := range m.links {
		l := linkapi.Link{Peer: peer, Role: linkapi.RoleAccept, State: linkapi.StateDown}
		if lp.dial {
			l.Role = linkapi.RoleDial
			if d := dialers[peer]; d != nil {
				st := d.Status()
				l.State = string(st.State)
				l.Transport = st.Transport
				l.RTTSeconds = st.RTT.Seconds()
				l.OpenStreams = st.OpenStreams
				l.BytesSent, l.BytesReceived = st.BytesSent, st.BytesReceived
				if st.LastError != nil {
					l.LastError = st.LastError.Error()
				}
				l.Since = st.Since
			}
		} else if ps, ok := accepted[peer]; ok {
			l.State = linkapi.StateUp
			l.Transport = ps.Transport
			l.RTTSeconds = ps.RTT.Seconds()
			l.OpenStreams = ps.OpenStreams
			l.BytesSent, l.BytesReceived = ps.BytesSent, ps.BytesReceived
			l.Since = ps.Since
		}
		out.Links = append(out.Links, l)
	}
	slices.SortFunc(out.Links, func(a, b linkapi.Link) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

func (e *eastWest) serveLinks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(e.links())
}

// linkCollector exports the links' state at scrape time.
type linkCollector struct{ e *eastWest }

var (
	linkUpDesc = prometheus.NewDesc("causeway_gateway_link_up",
		"1 while the link to the peer cluster is up, by peer, role and transport.", []string{"peer", "role", "transport"}, nil)
	linkRTTDesc = prometheus.NewDesc("causeway_gateway_link_rtt_seconds",
		"Smoothed round-trip time of the link to the peer cluster.", []string{"peer", "role"}, nil)
	linkStreamsDesc = prometheus.NewDesc("causeway_gateway_link_open_streams",
		"Streams open on the link to the peer cluster.", []string{"peer", "role"}, nil)
	linkBytesDesc = prometheus.NewDesc("causeway_gateway_link_bytes_total",
		"Stream payload bytes over the link to the peer cluster, by direction (sent, received).", []string{"peer", "role", "direction"}, nil)
)

func (c linkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- linkUpDesc
	ch <- linkRTTDesc
	ch <- linkStreamsDesc
	ch <- linkBytesDesc
}

func (c linkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.e.links().Links {
		up := 0.0
		if l.State == linkapi.StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(linkUpDesc, prometheus.GaugeValue, up, l.Peer, l.Role, l.Transport)
		ch <- prometheus.MustNewConstMetric(linkRTTDesc, prometheus.GaugeValue, l.RTTSeconds, l.Peer, l.Role)
		ch <- prometheus.MustNewConstMetric(linkStreamsDesc, prometheus.GaugeValue, float64(l.OpenStreams), l.Peer, l.Role)
		ch <- prometheus.MustNewConstMetric(linkBytesDesc, prometheus.CounterValue, float64(l.BytesSent), l.Peer, l.Role, "sent")
		ch <- prometheus.MustNewConstMetric(linkBytesDesc, prometheus.CounterValue, float64(l.BytesReceived), l.Peer, l.Role, "received")
	}
}
