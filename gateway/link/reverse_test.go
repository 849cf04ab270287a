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
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestReverseEchoWithHalfClose: the listener opens a stream to the
// dialer over the link the dialer made (as a cluster behind NAT only
// dials out), with the same half-close as the forward direction, and
// both directions share the one link and its counts.
func TestReverseEchoWithHalfClose(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			peers := make(chan spiffeid.ID, 1)
			cfg := dialerFor(t, l, tr)
			cfg.Handle = func(s *Stream) {
				if s.Transport != tr {
					t.Errorf("reverse Stream.Transport = %q, want %q", s.Transport, tr)
				}
				peers <- s.Peer
				relay(s)
			}
			d := startDialer(t, cfg)
			waitUp(t, d, tr)
			waitPeer(t, l, westID, tr)

			payload := make([]byte, 1<<20)
			_, _ = rand.Read(payload)
			c, err := l.Open(openCtx(t, 5*time.Second), westID, echo)
			if err != nil {
				t.Fatalf("Listener.Open: %v", err)
			}
			got, err := roundTrip(c, payload)
			if err != nil {
				t.Fatalf("round trip from the listener: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
			}
			_ = c.Close()
			if p := <-peers; p != eastID {
				t.Errorf("the dialer's Handle saw Stream.Peer %s, want the listener's gateway %s", p, eastID)
			}

			// The forward direction still works over the same link.
			small := []byte("forward over the same link")
			c, err = d.Open(openCtx(t, 5*time.Second), echo)
			if err != nil {
				t.Fatalf("Dialer.Open: %v", err)
			}
			if got, err := roundTrip(c, small); err != nil || !bytes.Equal(got, small) {
				t.Fatalf("forward round trip = %q, %v", got, err)
			}
			_ = c.Close()

			// Each side counts both directions: the listener's conn and
			// the stream it accepted, the dialer's stream given to Handle
			// and its conn.
			want := uint64(len(payload) + len(small))
			eventually(t, 5*time.Second, "both streams closed on both sides", func() bool {
				ps, _ := peerStatus(l, westID)
				return ps.OpenStreams == 0 && d.Status().OpenStreams == 0
			})
			ps, _ := peerStatus(l, westID)
			if ps.BytesSent != want || ps.BytesReceived != want {
				t.Errorf("listener's Peers bytes sent/received = %d/%d, want %d each", ps.BytesSent, ps.BytesReceived, want)
			}
			if ps.Links != 1 || ps.Transport != tr || ps.Since.IsZero() || ps.RemoteAddr == nil {
				t.Errorf("listener's Peers entry = %+v, want one %s link", ps, tr)
			}
			if tr == TransportQUIC && ps.RTT <= 0 {
				t.Errorf("Peers RTT = %s on QUIC, want > 0", ps.RTT)
			}
			st := d.Status()
			if st.BytesSent != want || st.BytesReceived != want {
				t.Errorf("dialer's Status bytes sent/received = %d/%d, want %d each", st.BytesSent, st.BytesReceived, want)
			}
		})
	}
}

// TestReverseStreamRefused: the dialer authorizes what the listener may
// reach just as the listener does (Handle refuses), and a dialer without
// Handle refuses everything; Listener.Open returns the reason.
func TestReverseStreamRefused(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			l := startListener(t, ListenerConfig{})
			cfg := dialerFor(t, l, tr)
			cfg.Handle = relay
			d := startDialer(t, cfg)
			waitUp(t, d, tr)
			_, err := l.Open(openCtx(t, 5*time.Second), westID, "refused.test:1")
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Reason != "not an exported service" {
				t.Fatalf("Listener.Open = %v, want a *RefusedError with Handle's reason", err)
			}
			_ = d.Close()
			eventually(t, 5*time.Second, "the first dialer's link gone", func() bool {
				_, ok := peerStatus(l, westID)
				return !ok
			})

			d = startDialer(t, dialerFor(t, l, tr)) // no Handle
			waitUp(t, d, tr)
			_, err = l.Open(openCtx(t, 5*time.Second), westID, "127.0.0.1:9")
			if !errors.As(err, &refused) || refused.Reason == "" {
				t.Fatalf("Listener.Open to a dialer without Handle = %v, want a *RefusedError with a reason", err)
			}
			if n := d.Status().OpenStreams; n != 0 {
				t.Errorf("dialer's OpenStreams = %d after refusing, want 0", n)
			}
		})
	}
}

func TestListenerOpenWithoutLink(t *testing.T) {
	echo := startEcho(t)
	l := startListener(t, ListenerConfig{})

	start := time.Now()
	_, err := l.Open(openCtx(t, 300*time.Millisecond), westID, echo)
	if !errors.Is(err, ErrNoLink) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open to a peer without a link = %v, want ErrNoLink and deadline exceeded", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("Open gave up after %s, want it to wait for a link until its deadline", waited)
	}
	t.Logf("Open without a link: %v", err)

	if _, err := l.Open(openCtx(t, time.Second), westID, "no-port"); !errors.Is(err, ErrBadAuthority) {
		t.Errorf("Open with a bad authority = %v, want ErrBadAuthority", err)
	}

	// Open waits for the peer's link while its ctx allows.
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Open(openCtx(t, 5*time.Second), westID, echo)
		res <- result{c, err}
	}()
	cfg := dialerFor(t, l, TransportQUIC)
	cfg.Handle = relay
	d := startDialer(t, cfg)
	r := <-res
	if r.err != nil {
		t.Fatalf("Open issued before the link came up: %v", r.err)
	}
	if got, err := roundTrip(r.c, []byte("late")); err != nil || string(got) != "late" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	_ = r.c.Close()

	// The link goes with its dialer.
	_ = d.Close()
	eventually(t, 5*time.Second, "the peer gone from Peers", func() bool { return len(l.Peers()) == 0 })
	if _, err := l.Open(openCtx(t, 100*time.Millisecond), westID, echo); !errors.Is(err, ErrNoLink) {
		t.Errorf("Open after the peer left = %v, want ErrNoLink", err)
	}

	_ = l.Close()
	if _, err := l.Open(openCtx(t, time.Second), westID, echo); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("Open after Close = %v, want ErrListenerClosed", err)
	}
}

// TestTCPReverseConnectionDiesWithLink: on TCP a link is two
// connections; losing the reverse one takes the link down on both sides,
// and the dialer makes a new one.
func TestTCPReverseConnectionDiesWithLink(t *testing.T) {
	echo := startEcho(t)
	l := startListener(t, ListenerConfig{UDPAddr: "-"})
	cfg := dialerFor(t, l, TransportTCP)
	cfg.Handle = relay
	ups := make(chan LinkStatus, 16)
	cfg.OnStateChange = func(st LinkStatus) {
		if st.State == StateUp {
			ups <- st
		}
	}
	startDialer(t, cfg)
	<-ups
	first := waitPeer(t, l, westID, TransportTCP)

	l.mu.Lock()
	pl := l.peers[westID].links[0]
	l.mu.Unlock()
	// Under net/http's feet, as a network failure would.
	_ = pl.revConn.Conn.Close()

	select {
	case <-ups:
	case <-time.After(5 * time.Second):
		t.Fatal("the dialer did not make a new link after its reverse connection died")
	}
	eventually(t, 5*time.Second, "the listener to drop the old link and take the new one", func() bool {
		ps, ok := peerStatus(l, westID)
		return ok && ps.Links == 1 && ps.Since.After(first.Since)
	})
	if !pl.down.Load() {
		t.Error("the listener still holds the link whose reverse connection died")
	}
	c, err := l.Open(openCtx(t, 5*time.Second), westID, echo)
	if err != nil {
		t.Fatalf("Listener.Open over the new link: %v", err)
	}
	if got, err := roundTrip(c, []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	_ = c.Close()
}

// TestQUICUnidirectionalStreamsRefused: neither end of a QUIC link gives
// the other credit for unidirectional streams.
func TestQUICUnidirectionalStreamsRefused(t *testing.T) {
	l := startListener(t, ListenerConfig{TCPAddr: "-"})
	cfg := dialerFor(t, l, TransportQUIC)
	cfg.Handle = relay
	d := startDialer(t, cfg)
	waitUp(t, d, TransportQUIC)
	waitPeer(t, l, westID, TransportQUIC)

	d.mu.Lock()
	dc := d.cur.(*quicLink).c
	d.mu.Unlock()
	l.mu.Lock()
	lc := l.peers[westID].links[0].qc
	l.mu.Unlock()
	if _, err := dc.OpenUniStream(); err == nil {
		t.Error("the dialer opened a unidirectional stream to the listener")
	}
	if _, err := lc.OpenUniStream(); err == nil {
		t.Error("the listener opened a unidirectional stream to the dialer")
	}
}

// TestReverseFollowsMoveBackToQUIC: while UDP is blocked the link runs
// over TCP, both ways; when QUIC works again the dialer moves, and the
// listener's Open takes the new link at once.
func TestReverseFollowsMoveBackToQUIC(t *testing.T) {
	echo := startEcho(t)
	l := startListener(t, ListenerConfig{})
	fr := startFreezeRelay(t, l.UDPAddr().String(), "")
	fr.frozen.Store(true)
	transports := make(chan string, 16)
	cfg := dialerFor(t, l, TransportTCP)
	cfg.UDPAddr = fr.udpAddr()
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.QUICRetryInterval = 300 * time.Millisecond
	cfg.Handle = func(s *Stream) {
		transports <- s.Transport
		relay(s)
	}
	d := startDialer(t, cfg)
	waitUp(t, d, TransportTCP)
	waitPeer(t, l, westID, TransportTCP)

	open := func() {
		t.Helper()
		c, err := l.Open(openCtx(t, 5*time.Second), westID, echo)
		if err != nil {
			t.Fatalf("Listener.Open: %v", err)
		}
		if got, err := roundTrip(c, []byte("ping")); err != nil || string(got) != "ping" {
			t.Fatalf("round trip = %q, %v", got, err)
		}
		_ = c.Close()
	}
	open()
	if tr := <-transports; tr != TransportTCP {
		t.Fatalf("reverse stream went over %s while UDP was blocked, want tcp", tr)
	}

	fr.frozen.Store(false)
	waitUp(t, d, TransportQUIC)
	waitPeer(t, l, westID, TransportQUIC)
	open()
	if tr := <-transports; tr != TransportQUIC {
		t.Fatalf("reverse stream went over %s after the dialer moved to QUIC, want quic", tr)
	}
	// The TCP link drains and goes.
	eventually(t, 5*time.Second, "the drained TCP link to go", func() bool {
		ps, _ := peerStatus(l, westID)
		return ps.Links == 1
	})
}
