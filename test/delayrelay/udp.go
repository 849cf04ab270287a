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

package delayrelay

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// smallDatagram is the size of pooled datagram buffers: QUIC's packets
// (1,200 to 1,452 bytes) fit, bigger datagrams get their own.
const smallDatagram = 2048

var datagramPool = sync.Pool{New: func() any {
	b := make([]byte, smallDatagram)
	return &b
}}

// udpSession is one client address's flow: its own socket towards the
// target and a queue each way.
type udpSession struct {
	r        *Relay
	client   netip.AddrPort
	up       *net.UDPConn
	toTarget *line
	toClient *line
	stop     chan struct{}
	once     sync.Once
	// active is the relay time of the last datagram received or
	// delivered, for idle expiry.
	active atomic.Int64
}

// readUDP reads datagrams from clients and queues them towards the
// target, opening sessions as new clients appear.
func (r *Relay) readUDP() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			// Only a closed socket fails a read on an unconnected UDP
			// socket.
			return
		}
		if r.udpBlock.Load() {
			r.dropped.Add(1)
			continue
		}
		s := r.session(from)
		if s == nil {
			r.dropped.Add(1)
			continue
		}
		s.push(s.toTarget, buf[:n])
	}
}

// session returns client's session, opening it if needed; nil if the
// relay is closed or the target cannot be dialled.
func (r *Relay) session(client netip.AddrPort) *udpSession {
	r.mu.Lock()
	s := r.sessions[client]
	r.mu.Unlock()
	if s != nil {
		return s
	}
	up, err := net.DialUDP("udp", nil, r.udpTarget)
	if err != nil {
		return nil
	}
	_ = up.SetReadBuffer(4 << 20)
	_ = up.SetWriteBuffer(4 << 20)
	s = &udpSession{
		r: r, client: client, up: up,
		toTarget: newLine(r.cfg.UDPQueue),
		toClient: newLine(r.cfg.UDPQueue),
		stop:     make(chan struct{}),
	}
	s.active.Store(int64(r.now()))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = up.Close()
		return nil
	}
	r.sessions[client] = s
	r.wg.Go(s.readTarget)
	r.wg.Go(func() { r.run(s.toTarget, s.stop, s.deliverToTarget) })
	r.wg.Go(func() { r.run(s.toClient, s.stop, s.deliverToClient) })
	return s
}

// push queues a copy of data on l, or drops it when l is full.
func (s *udpSession) push(l *line, data []byte) {
	p := packet{}
	if len(data) <= smallDatagram {
		p.buf, p.pool = datagramPool.Get().(*[]byte), &datagramPool
		p.data = (*p.buf)[:len(data)]
	} else {
		p.data = make([]byte, len(data))
	}
	copy(p.data, data)
	now := s.r.now()
	p.due = l.stamp(now, s.r.Delay())
	select {
	case l.ch <- p:
		s.active.Store(int64(now))
	default:
		p.release()
		s.r.dropped.Add(1)
	}
}

// readTarget reads the target's datagrams and queues them towards the
// client.
func (s *udpSession) readTarget() {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.up.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An ICMP error from an earlier datagram (the target is
			// down): the socket still works.
			continue
		}
		if s.r.udpBlock.Load() {
			s.r.dropped.Add(1)
			continue
		}
		s.push(s.toClient, buf[:n])
	}
}

func (s *udpSession) deliverToTarget(p *packet) bool {
	if s.r.udpBlock.Load() {
		s.r.dropped.Add(1)
		return true
	}
	// A write error (ICMP from the target) loses the datagram, as on a
	// network.
	if _, err := s.up.Write(p.data); err == nil {
		s.r.forwarded.Add(1)
	}
	s.active.Store(int64(s.r.now()))
	return true
}

func (s *udpSession) deliverToClient(p *packet) bool {
	if s.r.udpBlock.Load() {
		s.r.dropped.Add(1)
		return true
	}
	if _, err := s.r.udp.WriteToUDPAddrPort(p.data, s.client); err == nil {
		s.r.forwarded.Add(1)
	}
	s.active.Store(int64(s.r.now()))
	return true
}

func (s *udpSession) close() {
	s.once.Do(func() {
		close(s.stop)
		_ = s.up.Close()
	})
}

// expireUDP ends sessions idle for UDPIdleTimeout.
func (r *Relay) expireUDP() {
	idle := r.cfg.UDPIdleTimeout
	tick := time.NewTicker(min(max(idle/4, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-tick.C:
		}
		now := r.now()
		var expired []*udpSession
		r.mu.Lock()
		for c, s := range r.sessions {
			if now-time.Duration(s.active.Load()) >= idle {
				delete(r.sessions, c)
				expired = append(expired, s)
			}
		}
		r.mu.Unlock()
		for _, s := range expired {
			s.close()
		}
	}
}
