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
	"sync"
	"time"
)

// packet is a datagram or a TCP chunk in flight.
type packet struct {
	data []byte
	// buf, when set, is the pooled buffer data lies in, returned to its
	// pool once delivered.
	buf  *[]byte
	pool *sync.Pool
	// due is the relay time (Relay.now) it may be delivered at.
	due time.Duration
	// eof (TCP): the sender half-closed; abort: its connection failed.
	eof, abort bool
}

func (p *packet) release() {
	if p.buf != nil {
		p.pool.Put(p.buf)
		p.buf = nil
	}
}

// line is one direction's queue. Packets leave in the order they came
// (one goroutine delivers them first in, first out), each no earlier than
// its due time: a packet due before the one ahead of it, after the delay
// shrank, waits for it.
type line struct {
	ch chan packet
	// notBefore is the earliest due time of any packet.
	notBefore time.Duration
}

// newLine returns a line that holds at most n packets, counting the one
// its delivering goroutine holds.
func newLine(n int) *line { return &line{ch: make(chan packet, max(n-1, 0))} }

// stamp returns the due time of a packet received at now with the given
// delay.
func (l *line) stamp(now, delay time.Duration) time.Duration {
	return max(now+delay, l.notBefore)
}

// run delivers l's packets, each once due, until deliver returns false,
// stop closes or the relay closes.
func (r *Relay) run(l *line, stop <-chan struct{}, deliver func(*packet) bool) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		var p packet
		select {
		case p = <-l.ch:
		case <-stop:
			return
		case <-r.done:
			return
		}
		if !r.waitUntil(t, p.due, len(l.ch) < lightQueue, stop) {
			return
		}
		ok := deliver(&p)
		p.release()
		if !ok {
			return
		}
	}
}

// Waiting precisely. An idle Go process waits for its timers in the
// netpoller, in whole milliseconds: a timer fires up to a millisecond
// late, which would add to the delay of every packet of light traffic
// (handshakes, requests and answers, and the packets that follow them
// closely). So a wait longer than preciseSpan sleeps on a timer until
// preciseSpan before it is due, then in nanosleep, which the kernel ends
// within tens of microseconds; and a shorter wait of light traffic (fewer
// than lightQueue packets queued behind) sleeps in nanosleep alone. Bulk
// traffic stays on timers: the process is busy then and checks its
// timers often, and a system call per packet would cost more than it
// saves.
const (
	preciseSpan = 1500 * time.Microsecond
	lightQueue  = 8
)

// waitUntil waits until relay time due (light: see lightQueue); false if
// stop or the relay closed first.
func (r *Relay) waitUntil(t *time.Timer, due time.Duration, light bool, stop <-chan struct{}) bool {
	wait := due - r.now()
	if wait <= 0 {
		return true
	}
	precise := light || wait > preciseSpan
	if precise {
		wait -= preciseSpan
	}
	if wait > 0 {
		t.Reset(wait)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return false
		case <-r.done:
			t.Stop()
			return false
		}
	}
	if precise {
		if rest := due - r.now(); rest > 0 {
			preciseSleep(rest)
		}
	}
	return true
}
