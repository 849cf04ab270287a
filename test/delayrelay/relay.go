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
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultUDPQueue       = 8192
	DefaultUDPIdleTimeout = 30 * time.Second
	DefaultTCPBuffer      = 16 << 20
)

// Config configures New. At least one of UDPTarget and TCPTarget is
// required.
type Config struct {
	// Addr is where the relay listens, TCP and UDP on the same port;
	// "127.0.0.1:0" (a free port) when empty.
	Addr string
	// UDPTarget is the host:port UDP datagrams are forwarded to; empty
	// for no UDP.
	UDPTarget string
	// TCPTarget is the host:port TCP connections are relayed to; empty
	// for no TCP.
	TCPTarget string
	// Delay is the one-way delay added in each direction; SetDelay
	// changes it.
	Delay time.Duration
	// UDPQueue bounds the datagrams in flight per session and direction;
	// a datagram beyond is dropped. DefaultUDPQueue when zero.
	UDPQueue int
	// UDPIdleTimeout ends a UDP session after that long without a
	// datagram forwarded either way; DefaultUDPIdleTimeout when zero.
	UDPIdleTimeout time.Duration
	// TCPBuffer bounds the bytes in flight per connection and direction
	// (in whole 64 KiB chunks, plus the chunk being read); when it is
	// full the relay stops reading. DefaultTCPBuffer when zero.
	TCPBuffer int
}

// Stats is a snapshot of a relay's counters.
type Stats struct {
	// UDPSessions and TCPConns are open now.
	UDPSessions, TCPConns int
	// UDPForwarded counts datagrams delivered, both directions.
	UDPForwarded uint64
	// UDPDropped counts datagrams dropped: queue full, blocked, or no
	// session could be opened towards the target.
	UDPDropped uint64
}

// Relay forwards datagrams and connections with a delay; see the package
// documentation. Its methods are safe for concurrent use.
type Relay struct {
	cfg       Config
	udpTarget *net.UDPAddr
	udp       *net.UDPConn
	tcp       *net.TCPListener
	start     time.Time // the origin of monotonic timestamps

	delay     atomic.Int64 // time.Duration
	udpBlock  atomic.Bool
	forwarded atomic.Uint64
	dropped   atomic.Uint64

	done   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc // by Close
	once   sync.Once
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	tcpGate  chan struct{} // closed while TCP passes
	sessions map[netip.AddrPort]*udpSession
	pairs    map[*tcpPair]struct{}
}

// New starts a relay as cfg says.
func New(cfg Config) (*Relay, error) {
	if cfg.UDPTarget == "" && cfg.TCPTarget == "" {
		return nil, errors.New("delay relay: neither UDPTarget nor TCPTarget is set")
	}
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("delay relay: negative delay %s", cfg.Delay)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.UDPQueue <= 0 {
		cfg.UDPQueue = DefaultUDPQueue
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if cfg.TCPBuffer <= 0 {
		cfg.TCPBuffer = DefaultTCPBuffer
	}
	r := &Relay{
		cfg:      cfg,
		start:    time.Now(),
		done:     make(chan struct{}),
		tcpGate:  make(chan struct{}),
		sessions: make(map[netip.AddrPort]*udpSession),
		pairs:    make(map[*tcpPair]struct{}),
	}
	close(r.tcpGate)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.delay.Store(int64(cfg.Delay))
	if cfg.UDPTarget != "" {
		a, err := net.ResolveUDPAddr("udp", cfg.UDPTarget)
		if err != nil {
			return nil, fmt.Errorf("delay relay: UDP target: %w", err)
		}
		r.udpTarget = a
	}
	if cfg.TCPTarget != "" {
		if _, _, err := net.SplitHostPort(cfg.TCPTarget); err != nil {
			return nil, fmt.Errorf("delay relay: TCP target: %w", err)
		}
	}
	if err := r.listen(); err != nil {
		r.cancel()
		return nil, err
	}
	if r.udp != nil {
		r.wg.Go(r.readUDP)
		r.wg.Go(r.expireUDP)
	}
	if r.tcp != nil {
		r.wg.Go(r.acceptTCP)
	}
	return r, nil
}

// listen opens the listeners, on one port when both are needed: with port
// 0 it retries when the TCP port it got is taken for UDP.
func (r *Relay) listen() error {
	for attempt := 0; ; attempt++ {
		addr := r.cfg.Addr
		if r.cfg.TCPTarget != "" {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("delay relay: listen: %w", err)
			}
			r.tcp = ln.(*net.TCPListener)
			addr = ln.Addr().String()
		}
		if r.cfg.UDPTarget == "" {
			return nil
		}
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			r.udp = pc.(*net.UDPConn)
			// Large buffers, so that the relay rather than the kernel
			// decides what is dropped; the kernel caps them.
			_ = r.udp.SetReadBuffer(4 << 20)
			_ = r.udp.SetWriteBuffer(4 << 20)
			return nil
		}
		if r.tcp != nil {
			_ = r.tcp.Close()
			r.tcp = nil
		}
		if _, port, _ := net.SplitHostPort(r.cfg.Addr); port != "0" || r.cfg.TCPTarget == "" || attempt == 10 {
			return fmt.Errorf("delay relay: listen: %w", err)
		}
	}
}

// Addr is the relay's address, host:port, for TCP and UDP alike.
func (r *Relay) Addr() string {
	if r.tcp != nil {
		return r.tcp.Addr().String()
	}
	return r.udp.LocalAddr().String()
}

// SetDelay sets the one-way delay for what is received from now on.
func (r *Relay) SetDelay(d time.Duration) { r.delay.Store(int64(max(d, 0))) }

// Delay is the current one-way delay.
func (r *Relay) Delay() time.Duration { return time.Duration(r.delay.Load()) }

// Block stops all forwarding without closing anything: UDP datagrams are
// dropped, TCP bytes held, new TCP connections left unconnected, until
// Unblock.
func (r *Relay) Block() {
	r.udpBlock.Store(true)
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.tcpGate:
		r.tcpGate = make(chan struct{})
	default:
	}
}

// BlockUDP drops UDP datagrams until Unblock; TCP passes.
func (r *Relay) BlockUDP() { r.udpBlock.Store(true) }

// Unblock resumes forwarding after Block or BlockUDP.
func (r *Relay) Unblock() {
	r.udpBlock.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.tcpGate:
	default:
		close(r.tcpGate)
	}
}

// gate returns the channel that is closed once TCP passes.
func (r *Relay) gate() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tcpGate
}

// waitTCP waits until TCP passes (at some instant after the call); false
// if stop or the relay closed first.
func (r *Relay) waitTCP(stop <-chan struct{}) bool {
	select {
	case <-r.gate():
		return true
	case <-stop:
		return false
	case <-r.done:
		return false
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{
		UDPSessions:  len(r.sessions),
		TCPConns:     len(r.pairs),
		UDPForwarded: r.forwarded.Load(),
		UDPDropped:   r.dropped.Load(),
	}
}

// Close stops the relay: listeners, UDP sessions and TCP connections are
// closed, and Close returns when every goroutine of the relay has ended.
func (r *Relay) Close() error {
	var errs []error
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		close(r.done)
		r.cancel()
		sessions, pairs := r.sessions, r.pairs
		r.sessions, r.pairs = map[netip.AddrPort]*udpSession{}, map[*tcpPair]struct{}{}
		r.mu.Unlock()
		if r.udp != nil {
			errs = append(errs, r.udp.Close())
		}
		if r.tcp != nil {
			errs = append(errs, r.tcp.Close())
		}
		for _, s := range sessions {
			s.close()
		}
		for p := range pairs {
			p.abort()
		}
	})
	r.wg.Wait()
	return errors.Join(errs...)
}

// now is the time since the relay started, on the monotonic clock.
func (r *Relay) now() time.Duration { return time.Since(r.start) }
