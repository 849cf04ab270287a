package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"

	"github.com/causeway-mesh/causeway/gateway/lb"
)

// tcpConnectAttempts is how many endpoints a TCP connection tries before
// it gives up (Envoy's max_connect_attempts is 1; one more try on another
// endpoint hides a single dead endpoint from clients).
const tcpConnectAttempts = 2

// serveTCP proxies one connection to an endpoint of the chain's cluster:
// bytes are copied both ways and a half-close on one side is passed on to
// the other, so protocols that shut down writing first still work.
func (p *Proxy) serveTCP(down net.Conn, info *connInfo, t *tcpProxy) {
	defer down.Close()
	m := p.store.model()
	wc := pickWeighted(t.clusters, t.total)
	c := m.clusters[wc.name]
	if c == nil {
		p.metrics.tcpConns.WithLabelValues(wc.name, "no_cluster").Inc()
		return
	}
	var hash uint64
	var hasHash bool
	if info.source.IsValid() {
		hash, hasHash = lb.HashString(info.source.Addr().String()), true
	}
	var up net.Conn
	var tried []string
	var done func()
	for attempt := 0; attempt < tcpConnectAttempts && up == nil; attempt++ {
		var addr string
		switch {
		case c.kind == clusterOriginalDst:
			if !info.origDst.IsValid() || attempt > 0 {
				break
			}
			addr, done = info.origDst.String(), func() {}
		case c.balancer != nil:
			pick, err := c.balancer.Pick(lb.Request{Hash: hash, HasHash: hasHash, Avoid: func(a string) bool {
				for _, t := range tried {
					if t == a {
						return true
					}
				}
				return false
			}})
			if err == nil {
				addr, done = pick.Endpoint.Address, pick.Done
			}
		}
		if addr == "" {
			break
		}
		tried = append(tried, addr)
		ctx, cancel := context.WithTimeout(context.Background(), c.connectTimeout)
		var conn net.Conn
		var err error
		if p.useTunnel(c, addr) {
			conn, err = p.dialTunnel(ctx, addr)
		} else {
			conn, err = p.dialer(0).DialContext(ctx, "tcp", addr)
		}
		if err == nil && c.tls != nil {
			tc := tls.Client(conn, c.tls.Clone())
			if err = tc.HandshakeContext(ctx); err != nil {
				_ = conn.Close()
			}
			conn = tc
		}
		cancel()
		if err != nil {
			done()
			continue
		}
		up = conn
	}
	if up == nil {
		p.metrics.tcpConns.WithLabelValues(c.name, "connect_failed").Inc()
		return
	}
	defer done()
	defer up.Close()
	p.metrics.tcpConns.WithLabelValues(c.name, "ok").Inc()
	// Both directions must finish before the deferred closes run.
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down, p.metrics.tcpBytes.WithLabelValues(c.name, "sent")) })
	wg.Go(func() { pipe(down, up, p.metrics.tcpBytes.WithLabelValues(c.name, "received")) })
	wg.Wait()
}

type adder interface{ Add(float64) }

// pipe copies src to dst and then half-closes dst for writing. A copy error
// (a reset or a close by either peer, routine for a TCP proxy) is handled
// here: both connections are closed so the other direction stops too, and
// there is nothing more for the caller to do with it.
func pipe(dst, src net.Conn, bytes adder) {
	n, err := io.Copy(dst, src)
	bytes.Add(float64(n))
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
	if err != nil {
		// The other direction cannot make progress either.
		_ = src.Close()
		_ = dst.Close()
	}
}
