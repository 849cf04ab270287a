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
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freezeRelay forwards UDP datagrams and TCP connections on 127.0.0.1 to
// a listener. Frozen, it stops forwarding without closing anything, as a
// peer killed with SIGKILL behind a NAT, or a frozen process, looks from
// the other end: no CONNECTION_CLOSE, no FIN, no RST, just silence.
type freezeRelay struct {
	frozen atomic.Bool
	udp    *net.UDPConn
	tcp    net.Listener
	done   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// startFreezeRelay relays to the listener's UDP and TCP addresses (either
// may be empty).
func startFreezeRelay(t testing.TB, udpTarget, tcpTarget string) *freezeRelay {
	t.Helper()
	r := &freezeRelay{done: make(chan struct{})}
	if udpTarget != "" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		r.udp = c
		target, err := net.ResolveUDPAddr("udp", udpTarget)
		if err != nil {
			t.Fatal(err)
		}
		r.wg.Go(func() { r.serveUDP(target) })
	}
	if tcpTarget != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.tcp = ln
		r.wg.Go(func() { r.serveTCP(tcpTarget) })
	}
	t.Cleanup(r.close)
	return r
}

func (r *freezeRelay) udpAddr() string { return r.udp.LocalAddr().String() }
func (r *freezeRelay) tcpAddr() string { return r.tcp.Addr().String() }

func (r *freezeRelay) close() {
	close(r.done)
	if r.udp != nil {
		_ = r.udp.Close()
	}
	if r.tcp != nil {
		_ = r.tcp.Close()
	}
	r.mu.Lock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *freezeRelay) track(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, c)
	select {
	case <-r.done:
		_ = c.Close()
	default:
	}
}

// serveUDP gives each client address its own upstream socket; frozen,
// datagrams are dropped both ways.
func (r *freezeRelay) serveUDP(target *net.UDPAddr) {
	up := map[string]*net.UDPConn{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.frozen.Load() {
			continue
		}
		u := up[from.String()]
		if u == nil {
			if u, err = net.DialUDP("udp", nil, target); err != nil {
				continue
			}
			up[from.String()] = u
			r.track(u)
			r.wg.Go(func() {
				b := make([]byte, 64<<10)
				for {
					n, err := u.Read(b)
					if err != nil {
						return
					}
					if !r.frozen.Load() {
						_, _ = r.udp.WriteToUDP(b[:n], from)
					}
				}
			})
		}
		_, _ = u.Write(buf[:n])
	}
}

// serveTCP relays each connection; frozen, it holds what it read
// without writing it on, and reads no more.
func (r *freezeRelay) serveTCP(target string) {
	for {
		c, err := r.tcp.Accept()
		if err != nil {
			return
		}
		r.track(c)
		r.wg.Go(func() {
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				return
			}
			r.track(u)
			r.wg.Go(func() { r.pipe(u, c) })
			r.pipe(c, u)
		})
	}
}

func (r *freezeRelay) pipe(dst, src net.Conn) {
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for r.frozen.Load() {
			select {
			case <-r.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
