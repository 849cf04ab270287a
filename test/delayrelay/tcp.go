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
	"io"
	"net"
	"sync"
	"time"
)

const (
	// chunk is the most a TCP read takes, and the unit of TCPBuffer.
	chunk = 64 << 10
	// smallChunk: reads shorter than this are copied out of the pooled
	// chunk, so that interactive traffic does not pin 64 KiB per read.
	smallChunk = 4 << 10
	// dialTimeout bounds the relay's connect to the TCP target.
	dialTimeout = 10 * time.Second
)

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunk)
	return &b
}}

// tcpPair is a relayed connection: the client's and the target's.
type tcpPair struct {
	client, target *net.TCPConn
	stop           chan struct{}
	once           sync.Once
}

// abort closes both connections and stops the pair's goroutines.
func (p *tcpPair) abort() {
	p.once.Do(func() {
		close(p.stop)
		_ = p.client.Close()
		_ = p.target.Close()
	})
}

func (r *Relay) acceptTCP() {
	for {
		c, err := r.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: try again shortly.
			select {
			case <-r.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		r.wg.Go(func() { r.serveTCP(c) })
	}
}

// serveTCP relays c to a new connection to the target until both
// directions have ended or one fails.
func (r *Relay) serveTCP(c *net.TCPConn) {
	// While blocked, the connection is not passed on: as in a partition,
	// the target sees nothing.
	if !r.waitTCP(nil) {
		_ = c.Close()
		return
	}
	accepted, delay := r.now(), r.Delay()
	d := net.Dialer{Timeout: dialTimeout}
	tc, err := d.DialContext(r.ctx, "tcp", r.cfg.TCPTarget)
	if err != nil {
		// The client sees its connection closed: the relay cannot refuse
		// a connection the kernel has accepted.
		_ = c.Close()
		return
	}
	p := &tcpPair{client: c, target: tc.(*net.TCPConn), stop: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		p.abort()
		return
	}
	r.pairs[p] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pairs, p)
		r.mu.Unlock()
	}()

	chunks := max(1, (r.cfg.TCPBuffer+chunk-1)/chunk)
	up, down := newLine(chunks), newLine(chunks)
	// Charge the handshake the kernel skipped (see the package
	// documentation): the client's bytes leave as if sent one round
	// trip after the connect.
	up.notBefore = accepted + 3*delay
	down.notBefore = accepted + 4*delay
	r.wg.Go(func() { r.readTCP(p, p.client, up) })
	r.wg.Go(func() { r.readTCP(p, p.target, down) })
	var writers sync.WaitGroup
	writers.Go(func() { r.writeTCP(p, up, p.target) })
	writers.Go(func() { r.writeTCP(p, down, p.client) })
	writers.Wait()
	p.abort()
}

// readTCP reads src into l until EOF or an error, which it queues too.
// A full l blocks it: backpressure.
func (r *Relay) readTCP(p *tcpPair, src *net.TCPConn, l *line) {
	for {
		buf := chunkPool.Get().(*[]byte)
		n, err := src.Read(*buf)
		if n > 0 {
			pk := packet{data: (*buf)[:n], buf: buf, pool: &chunkPool}
			if n < smallChunk {
				pk.data = append([]byte(nil), pk.data...)
				pk.release()
			}
			pk.due = l.stamp(r.now(), r.Delay())
			select {
			case l.ch <- pk:
			case <-p.stop:
				pk.release()
				return
			}
		} else {
			chunkPool.Put(buf)
		}
		if err != nil {
			eof := errors.Is(err, io.EOF)
			pk := packet{eof: eof, abort: !eof, due: l.stamp(r.now(), r.Delay())}
			select {
			case l.ch <- pk:
			case <-p.stop:
			}
			return
		}
	}
}

// writeTCP writes l's chunks to dst once due and TCP passes, and passes
// on the end: a half-close, or an abort of the pair.
func (r *Relay) writeTCP(p *tcpPair, l *line, dst *net.TCPConn) {
	r.run(l, p.stop, func(pk *packet) bool {
		if !r.waitTCP(p.stop) {
			return false
		}
		switch {
		case pk.abort:
			p.abort()
			return false
		case pk.eof:
			_ = dst.CloseWrite()
			return false
		}
		if _, err := dst.Write(pk.data); err != nil {
			p.abort()
			return false
		}
		return true
	})
}
