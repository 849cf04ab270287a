package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/gateway/lb"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// initMTLS sets up what the proxy's identity enables: the HBONE client
// and its connection pools for endpoints reached through tunnels, and the
// inbound HBONE server when an address is configured.
func (p *Proxy) initMTLS() {
	id := p.cfg.Identity
	cert := func() (*tls.Certificate, error) { return id.Certificate(SecretDefault) }
	bundle := id.bundleSource(SecretRootCA)
	// Any workload of the trust domain may serve an endpoint: EDS says
	// which address, not which ServiceAccount, so the tunnel's peer is
	// held to the trust domain (its SVID verified against the bundle).
	sameDomain := func(peer spiffeid.ID) error {
		if td := id.TrustDomain(); peer.TrustDomain() != td {
			return fmt.Errorf("trust domain %q is not %q", peer.TrustDomain(), td)
		}
		return nil
	}
	var dialProxy func(ctx context.Context, network, addr string) (net.Conn, error)
	if p.cfg.SourceAddr.IsValid() {
		dialProxy = p.dialer(0).DialContext
	}
	p.tunnel = &hbone.Client{Bundle: bundle, Certificate: cert, ExpectPeer: sameDomain, Logger: p.log, DialContext: dialProxy}
	if p.cfg.Cluster != "" {
		// Endpoints in other clusters: the outer tunnel goes to this
		// cluster's east-west gateway, which must present the gateway
		// identity of this cluster; the session with the remote pod's
		// proxy runs inside it, verified end to end like a local one.
		expectGateway := func(peer spiffeid.ID) error {
			want, err := spiffeid.FromSegments(id.TrustDomain(), "cluster", p.cfg.Cluster, "gateway")
			if err != nil {
				return err
			}
			if peer != want {
				return fmt.Errorf("%s is not this cluster's gateway %s", peer, want)
			}
			return nil
		}
		p.gwTunnel = &hbone.Client{Bundle: bundle, Certificate: cert, ExpectPeer: expectGateway, Logger: p.log, DialContext: dialProxy}
		p.remoteTunnel = &hbone.Client{Bundle: bundle, Certificate: cert, ExpectPeer: sameDomain, Logger: p.log,
			Header: http.Header{HeaderSourceCluster: {p.cfg.Cluster}},
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				dst, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, err
				}
				return p.dialGateway(ctx, dst)
			}}
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return p.dialTunnel(ctx, addr) }
	p.h1t, p.h2t = newTransports(nil)
	p.h1t.DialContext, p.h2t.DialContext = dial, dial
	p.h1fastT = newH1Client(nil)
	p.h1fastT.dial = func(ctx context.Context, addr string) (net.Conn, error) { return p.dialTunnel(ctx, addr) }

	p.reservedPort = map[uint16]bool{}
	for _, a := range []string{p.cfg.HBONEAddr, p.cfg.InboundAddr, p.cfg.OutboundAddr} {
		if _, port, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(port, 10, 16); err == nil && n > 0 {
				p.reservedPort[uint16(n)] = true
			}
		}
	}
	for _, port := range p.cfg.ReservedPorts {
		p.reservedPort[port] = true
	}
	if p.cfg.HBONEAddr != "" {
		p.hboneServer = &hbone.Server{
			Bundle:      bundle,
			Certificate: cert,
			Authorize:   p.authorizeTunnel,
			Handle:      p.serveTunnel,
			Logger:      p.log,
		}
	}
}

// dialTunnel opens an HBONE tunnel to addr ("ip:port", an endpoint)
// through the HBONE server of the endpoint's pod, at ip:TunnelPort. An
// endpoint of another member cluster is reached through this cluster's
// east-west gateway (see remote): a tunnel to the gateway whose target is
// the endpoint itself or, when the endpoint's pod serves HBONE, the pod's
// HBONE port, with the usual session to the pod's proxy inside it.
func (p *Proxy) dialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	dst, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("hbone endpoint %q: %w", addr, err)
	}
	port := p.cfg.TunnelPort
	if port == 0 {
		port = xdsconv.HBONEPort
	}
	var c net.Conn
	switch meta, remote := p.remote(addr); {
	case remote && meta.hbone:
		c, err = p.remoteTunnel.Dial(ctx, netip.AddrPortFrom(dst.Addr(), port).String(), dst)
	case remote:
		c, err = p.dialGateway(ctx, dst)
	default:
		c, err = p.tunnel.Dial(ctx, netip.AddrPortFrom(dst.Addr(), port).String(), dst)
	}
	if err != nil {
		p.metrics.tunnels.WithLabelValues("outbound", "failed").Inc()
		// No connection to the endpoint could be made: a connect
		// failure, which retry policies retry on another endpoint.
		if op, ok := errors.AsType[*net.OpError](err); !ok || op.Op != "dial" {
			err = &net.OpError{Op: "dial", Net: "tcp", Addr: netAddr(addr), Err: err}
		}
		return nil, err
	}
	p.metrics.tunnels.WithLabelValues("outbound", "ok").Inc()
	return c, nil
}

// netAddr is addr as a net.Addr, for errors.
func netAddr(addr string) net.Addr {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return nil
}

// useTunnel reports whether addr, an endpoint of c, is reached through
// HBONE: the endpoint says so, or it is in another member cluster that
// the east-west gateway leads to, and the proxy has an identity. A proxy
// without one reaches it in plaintext (which a STRICT sidecar refuses).
func (p *Proxy) useTunnel(c *cluster, addr string) bool {
	if p.tunnel == nil {
		return false
	}
	if c.tunnels[addr] {
		return true
	}
	_, remote := p.remote(addr)
	return remote
}

// gatewayCluster is the cluster of this member cluster's east-west
// gateway Service (its HBONE port).
var gatewayCluster = xdsconv.ClusterName(xdsconv.HBONEPort, "", xdsconv.ServiceHost(xdsconv.GatewayService, xdsconv.GatewayNamespace))

// remote reports whether addr is an endpoint in another member cluster
// that this proxy reaches through its cluster's east-west gateway: the
// proxy knows its cluster, EDS names the endpoint's, they differ, and
// the gateway Service exists.
func (p *Proxy) remote(addr string) (endpointMeta, bool) {
	if p.gwTunnel == nil {
		return endpointMeta{}, false
	}
	m := p.store.model()
	meta, ok := m.endpoints[addr]
	if !ok || meta.cluster == "" || meta.cluster == p.cfg.Cluster {
		return meta, false
	}
	_, gw := m.clusters[gatewayCluster]
	return meta, gw
}

// dialGateway opens a tunnel to dst, an address in another cluster,
// through one of this cluster's east-west gateways.
func (p *Proxy) dialGateway(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c := p.store.model().clusters[gatewayCluster]
	if c == nil {
		return nil, errors.New("no east-west gateway in this cluster")
	}
	pick, err := c.balancer.Pick(lb.Request{})
	if err != nil {
		return nil, fmt.Errorf("east-west gateway: %w", err)
	}
	defer pick.Done()
	gw, err := netip.ParseAddrPort(pick.Endpoint.Address)
	if err != nil {
		return nil, err
	}
	// The Service's port is the gateway's HBONE port; the endpoint's is
	// its target port, which is what to dial.
	conn, err := p.gwTunnel.Dial(ctx, gw.String(), dst)
	if err != nil {
		p.metrics.tunnels.WithLabelValues("gateway", "failed").Inc()
		return nil, fmt.Errorf("through the east-west gateway %s: %w", gw, err)
	}
	p.metrics.tunnels.WithLabelValues("gateway", "ok").Inc()
	return conn, nil
}

// errNotThisPod refuses a tunnel whose target is not the workload's.
var errNotThisPod = errors.New("not an address of this pod")

// authorizeTunnel decides whether an HBONE stream may open: its target
// must be an address of this pod, on a port that is not the proxy's own.
// Who the peer may be is the inbound listener's RBAC's business.
func (p *Proxy) authorizeTunnel(_ spiffeid.ID, dst netip.AddrPort) error {
	if !slices.Contains(p.cfg.PodAddrs, dst.Addr().Unmap()) {
		p.metrics.tunnels.WithLabelValues("inbound", "not_this_pod").Inc()
		return fmt.Errorf("%s: %w", dst.Addr(), errNotThisPod)
	}
	if p.reservedPort[dst.Port()] {
		p.metrics.tunnels.WithLabelValues("inbound", "reserved_port").Inc()
		return fmt.Errorf("port %d is the proxy's own", dst.Port())
	}
	if p.store.model().listeners[xdsconv.VirtualInboundListener] == nil {
		p.metrics.tunnels.WithLabelValues("inbound", "no_listener").Inc()
		return errors.New("no inbound listener configured yet")
	}
	return nil
}

// serveTunnel serves one authorized HBONE stream with the inbound
// listener's filter chain for its target port. The connection carries the
// peer's verified SPIFFE ID as its principal and, in filter state, the
// peer's cluster: this proxy's own, as tunnels from other clusters come
// through the east-west gateway, not here.
func (p *Proxy) serveTunnel(peer hbone.Peer, dst netip.AddrPort, c net.Conn) {
	l := p.store.model().listeners[xdsconv.VirtualInboundListener]
	if l == nil {
		_ = c.Close()
		return
	}
	p.metrics.tunnels.WithLabelValues("inbound", "ok").Inc()
	info := connInfo{listener: l, origDst: dst, source: peer.Addr, peer: &peerIdentity{principal: peer.ID.String()}}
	if cluster := p.peerCluster(peer); cluster != "" {
		info.filterState = map[string]string{xdsconv.FilterStatePeerCluster: cluster}
	}
	p.serveConn(c, info)
}

// HeaderSourceCluster carries, on a tunnel from another cluster, the
// member cluster of the sending sidecar.
const HeaderSourceCluster = "Causeway-Source-Cluster"

// peerCluster is the member cluster a tunnel comes from: the sender's
// claim when the tunnel arrives through this cluster's east-west gateway
// (which takes only streams of linked clusters), else this cluster. Like
// the peer metadata of other meshes, the claim is the sending workload's:
// its identity is verified, its locality is not.
func (p *Proxy) peerCluster(peer hbone.Peer) string {
	claim := peer.Header.Get(HeaderSourceCluster)
	if claim == "" || len(claim) > 63 || !isDNSLabel(claim) || !p.store.model().gatewayIPs[peer.Addr.Addr().Unmap()] {
		return p.cfg.Cluster
	}
	return claim
}

func isDNSLabel(s string) bool {
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return s != ""
}

// HBONEAddr returns the address the HBONE server listens on, once it
// does.
func (p *Proxy) HBONEAddr() string {
	a, _ := p.hboneAddr.Load().(string)
	return a
}

// tunnelTransport returns the pool for a request to an endpoint reached
// through HBONE, matching the plaintext pool tr.
func (p *Proxy) tunnelTransport(tr *http.Transport) *http.Transport {
	if tr == p.h2 {
		return p.h2t
	}
	return p.h1t
}
