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
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLinkLimits: beyond MaxLinksPerPeer links from one gateway, or
// MaxLinks in all, handshakes are refused; the links already up keep
// working, other peers still link, and a refused dialer gets in once a
// link goes.
func TestLinkLimits(t *testing.T) {
	w := testWorld(t)
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run("per peer/"+tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{MaxLinksPerPeer: 2})
			d1 := startDialer(t, dialerFor(t, l, tr))
			d2 := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d1, tr)
			waitUp(t, d2, tr)
			d3, wasUp := startRefusedDialer(t, dialerFor(t, l, tr))
			assertRefused(t, d3, wasUp)

			// Another gateway is not held back by west's links.
			east := dialerFor(t, l, tr)
			east.Certificate = certFunc(w.east)
			waitUp(t, startDialer(t, east), tr)
			if ps, _ := peerStatus(l, westID); ps.Links != 2 {
				t.Errorf("west holds %d links, want 2", ps.Links)
			}
			assertEcho(t, d1, echo)

			_ = d1.Close()
			waitUp(t, d3, tr)
		})
		t.Run("total/"+tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{MaxLinks: 2})
			east := dialerFor(t, l, tr)
			east.Certificate = certFunc(w.east)
			d1 := startDialer(t, east)
			d2 := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d1, tr)
			waitUp(t, d2, tr)
			d3, wasUp := startRefusedDialer(t, dialerFor(t, l, tr))
			assertRefused(t, d3, wasUp)
			assertEcho(t, d2, echo)

			_ = d1.Close()
			waitUp(t, d3, tr)
		})
	}
}

// assertRefused waits for d's attempts to fail and checks it never comes
// up (its handshakes complete, the listener refuses the link at once).
func assertRefused(t *testing.T, d *Dialer, wasUp *atomic.Bool) {
	t.Helper()
	eventually(t, 5*time.Second, "a refused attempt", func() bool { return d.Status().LastError != nil })
	// Several more attempts (backoff is at most 200 ms here) must fail too.
	time.Sleep(500 * time.Millisecond)
	st := d.Status()
	if wasUp.Load() || st.State == StateUp {
		t.Fatalf("a dialer beyond the limit came up over %s, want it refused", st.Transport)
	}
	if !strings.Contains(st.LastError.Error(), ErrTooManyLinks.Error()) {
		t.Fatalf("refused dialer's LastError = %v, want it to say %q", st.LastError, ErrTooManyLinks)
	}
	t.Logf("refused dialer: %v", st.LastError)
}

// startRefusedDialer starts a dialer that records whether it ever came up.
func startRefusedDialer(t *testing.T, cfg DialerConfig) (*Dialer, *atomic.Bool) {
	t.Helper()
	var wasUp atomic.Bool
	cfg.OnStateChange = func(st LinkStatus) { wasUp.CompareAndSwap(false, st.State == StateUp) }
	return startDialer(t, cfg), &wasUp
}

func assertEcho(t *testing.T, d *Dialer, echo string) {
	t.Helper()
	c, err := d.Open(openCtx(t, 5*time.Second), echo)
	if err != nil {
		t.Fatalf("Open on a link within the limit: %v", err)
	}
	defer func() { _ = c.Close() }()
	if got, err := roundTrip(c, []byte("still here")); err != nil || string(got) != "still here" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
}

// TestStreamFloodIsBounded: a flood of streams beyond the accepting
// side's MaxStreamsPerLink, in either direction, waits for a slot and
// fails at its deadline; the accepting side never holds more than the
// limit, and no goroutine is left behind.
func TestStreamFloodIsBounded(t *testing.T) {
	const (
		limit = 4
		flood = 100
	)
	for _, dir := range []string{"forward", "reverse"} {
		for _, tr := range []string{TransportQUIC, TransportTCP} {
			t.Run(dir+"/"+tr, func(t *testing.T) {
				echo := startEcho(t)
				var active, peak atomic.Int64
				counted := func(s *Stream) {
					n := active.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					relay(s)
					active.Add(-1)
				}
				l := startListenerFunc(t, ListenerConfig{MaxStreamsPerLink: limit}, counted)
				cfg := dialerFor(t, l, tr)
				cfg.MaxStreamsPerLink = limit
				cfg.Handle = counted
				d := startDialer(t, cfg)
				waitUp(t, d, tr)
				waitPeer(t, l, westID, tr)
				open := func(ctx context.Context) (net.Conn, error) { return d.Open(ctx, echo) }
				if dir == "reverse" {
					open = func(ctx context.Context) (net.Conn, error) { return l.Open(ctx, westID, echo) }
				}

				var held []net.Conn
				for i := range limit {
					c, err := open(openCtx(t, 5*time.Second))
					if err != nil {
						t.Fatalf("Open #%d within the limit: %v", i+1, err)
					}
					held = append(held, c)
				}
				before := runtime.NumGoroutine()
				var wg sync.WaitGroup
				var failed atomic.Int64
				for range flood {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
						defer cancel()
						c, err := open(ctx)
						if err == nil {
							_ = c.Close()
							return
						}
						if errors.Is(err, context.DeadlineExceeded) {
							failed.Add(1)
						}
					})
				}
				wg.Wait()
				if n := failed.Load(); n != flood {
					t.Errorf("%d of %d streams beyond the limit failed at their deadline, want all", n, flood)
				}
				if p := peak.Load(); p > limit {
					t.Errorf("the accepting side held %d streams at once, want at most %d", p, limit)
				}
				eventually(t, 5*time.Second, "the flood's goroutines to end", func() bool {
					return runtime.NumGoroutine() <= before+5
				})

				// Still healthy: a freed slot is taken at once.
				_ = held[0].Close()
				c, err := open(openCtx(t, 5*time.Second))
				if err != nil {
					t.Fatalf("Open after a stream finished: %v", err)
				}
				if got, err := roundTrip(c, []byte("x")); err != nil || string(got) != "x" {
					t.Fatalf("round trip = %q, %v", got, err)
				}
				_ = c.Close()
				for _, c := range held[1:] {
					_ = c.Close()
				}
			})
		}
	}
}

// TestTCPConnectionFloodIsBounded: connections that never finish a TLS
// handshake hold at most MaxLinks handshake slots (the rest are closed
// unread), cost no goroutine beyond them, and leave the listener able to
// take links once they go.
func TestTCPConnectionFloodIsBounded(t *testing.T) {
	const (
		maxLinks = 4
		flood    = 100
	)
	l := startListener(t, ListenerConfig{UDPAddr: "-", MaxLinks: maxLinks})
	before := runtime.NumGoroutine()
	var conns []net.Conn
	for range flood {
		c, err := net.Dial("tcp", l.TCPAddr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	// The listener closes what it has no slot for: reads see EOF.
	var closed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			var b [1]byte
			if _, err := c.Read(b[:]); errors.Is(err, io.EOF) {
				closed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := closed.Load(); n < flood-maxLinks {
		t.Errorf("the listener closed %d of %d connections beyond its %d handshake slots, want at least %d", n, flood, maxLinks, flood-maxLinks)
	}
	if g := runtime.NumGoroutine(); g > before+2*maxLinks+5 {
		t.Errorf("%d goroutines during a flood of %d connections, %d before: want at most one or two per handshake slot", g, flood, before)
	}
	for _, c := range conns {
		_ = c.Close()
	}

	echo := startEcho(t)
	d := startDialer(t, dialerFor(t, l, TransportTCP))
	waitUp(t, d, TransportTCP)
	assertEcho(t, d, echo)
}
