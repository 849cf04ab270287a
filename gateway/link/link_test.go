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
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestEchoWithHalfClose(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			d := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d, tr)

			payload := make([]byte, 1<<20)
			_, _ = rand.Read(payload)
			c, err := d.Open(openCtx(t, 5*time.Second), echo)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := roundTrip(c, payload)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
			}
			_ = c.Close()
			st := d.Status()
			if st.BytesSent != uint64(len(payload)) || st.BytesReceived != uint64(len(payload)) {
				t.Errorf("Status bytes sent/received = %d/%d, want %d each", st.BytesSent, st.BytesReceived, len(payload))
			}
			if st.OpenStreams != 0 {
				t.Errorf("Status.OpenStreams = %d after Close, want 0", st.OpenStreams)
			}
			if tr == TransportQUIC && st.RTT <= 0 {
				t.Errorf("Status.RTT = %s on QUIC, want > 0", st.RTT)
			}
		})
	}
}

func TestConcurrentStreamsOnOneLink(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			d := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d, tr)

			const n = 20
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					payload := bytes.Repeat([]byte{byte(i)}, 64<<10+i)
					c, err := d.Open(openCtx(t, 5*time.Second), echo)
					if err != nil {
						errs <- err
						return
					}
					defer func() { _ = c.Close() }()
					got, err := roundTrip(c, payload)
					if err == nil && !bytes.Equal(got, payload) {
						err = fmt.Errorf("stream %d: echo differs", i)
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestRefusedStream(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			l := startListener(t, ListenerConfig{})
			d := startDialer(t, dialerFor(t, l, tr))
			_, err := d.Open(openCtx(t, 5*time.Second), "refused.test:1")
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Reason != "not an exported service" {
				t.Fatalf("Open = %v, want a *RefusedError with the listener's reason", err)
			}
		})
	}
}

func TestFallbackToTCPAndBackToQUIC(t *testing.T) {
	echo := startEcho(t)
	// A UDP socket that never answers: QUIC handshakes to it time out, as
	// when a firewall drops UDP.
	blackhole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := blackhole.LocalAddr().String()
	l := startListener(t, ListenerConfig{UDPAddr: "-"})

	var mu sync.Mutex
	var seen []LinkStatus
	cfg := dialerFor(t, l, TransportTCP)
	cfg.UDPAddr = udpAddr
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.QUICRetryInterval = 300 * time.Millisecond
	cfg.OnStateChange = func(st LinkStatus) {
		mu.Lock()
		seen = append(seen, st)
		mu.Unlock()
	}
	d := startDialer(t, cfg)
	waitUp(t, d, TransportTCP)

	c, err := d.Open(openCtx(t, 5*time.Second), echo)
	if err != nil {
		t.Fatalf("Open over the TCP fallback: %v", err)
	}
	if got, err := roundTrip(c, []byte("over tcp")); err != nil || string(got) != "over tcp" {
		t.Fatalf("round trip over TCP = %q, %v", got, err)
	}
	_ = c.Close()

	// QUIC appears on the blocked address: the dialer moves back.
	_ = blackhole.Close()
	startListener(t, ListenerConfig{UDPAddr: udpAddr, TCPAddr: "-"})
	waitUp(t, d, TransportQUIC)
	c, err = d.Open(openCtx(t, 5*time.Second), echo)
	if err != nil {
		t.Fatalf("Open after moving back to QUIC: %v", err)
	}
	if got, err := roundTrip(c, []byte("over quic")); err != nil || string(got) != "over quic" {
		t.Fatalf("round trip over QUIC = %q, %v", got, err)
	}
	_ = c.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0].Transport != TransportTCP || seen[len(seen)-1].Transport != TransportQUIC {
		t.Errorf("OnStateChange saw %+v, want tcp up then quic up", seen)
	}
}

func TestOnlyGatewaysMayLink(t *testing.T) {
	w := testWorld(t)
	type side struct {
		name              string
		listener, dialer  *spiffeCert
		authorize, expect func(spiffeid.ID) error
		// lastError is what the dialer's LastError must say: the
		// listener's refusal arrives as a TLS alert once this side has
		// finished its handshake (the probe sees it).
		lastError string
	}
	const refusedByPeer, refusedHere = "bad certificate", "link peer"
	for _, tc := range []side{
		{name: "workload dials", listener: &spiffeCert{w.east}, dialer: &spiffeCert{w.workload}, lastError: refusedByPeer},
		{name: "workload listens", listener: &spiffeCert{w.workload}, dialer: &spiffeCert{w.west}, lastError: refusedHere},
		{name: "other trust domain dials", listener: &spiffeCert{w.east}, dialer: &spiffeCert{w.alien}, lastError: refusedByPeer},
		{name: "other trust domain listens", listener: &spiffeCert{w.alien}, dialer: &spiffeCert{w.west}, lastError: refusedHere},
		{name: "unexpected gateway", listener: &spiffeCert{w.east}, dialer: &spiffeCert{w.west}, expect: ExpectID(westID), lastError: refusedHere},
		{name: "unauthorized gateway", listener: &spiffeCert{w.east}, dialer: &spiffeCert{w.west}, authorize: ExpectID(eastID), lastError: refusedByPeer},
	} {
		for _, tr := range []string{TransportQUIC, TransportTCP} {
			t.Run(tc.name+"/"+tr, func(t *testing.T) {
				l := startListener(t, ListenerConfig{Certificate: certFunc(tc.listener.c), AuthorizePeer: tc.authorize})
				cfg := dialerFor(t, l, tr)
				cfg.Certificate = certFunc(tc.dialer.c)
				cfg.ExpectPeer = tc.expect
				var wasUp atomic.Bool
				cfg.OnStateChange = func(st LinkStatus) { wasUp.CompareAndSwap(false, st.State == StateUp) }
				d := startDialer(t, cfg)
				eventually(t, 5*time.Second, "a failed attempt", func() bool { return d.Status().LastError != nil })
				// Open waits for a link the peer confirms: a link whose
				// handshake this side finished but the peer refused (it
				// checks the client certificate last) does not count.
				if _, err := d.Open(openCtx(t, 300*time.Millisecond), "127.0.0.1:9"); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Open = %v, want deadline exceeded while the link is refused", err)
				}
				if st := d.Status(); wasUp.Load() || st.State == StateUp {
					t.Fatalf("link came up over %s (%+v), want it refused", st.Transport, st)
				}
				if err := d.Status().LastError; err == nil || !strings.Contains(err.Error(), tc.lastError) {
					t.Fatalf("LastError = %v, want it to say %q", err, tc.lastError)
				}
			})
		}
	}
}

// spiffeCert names a test certificate in case tables.
type spiffeCert struct{ c *tls.Certificate }

func TestLinkDownAndReconnect(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			udp, tcp := l.UDPAddr().String(), l.TCPAddr().String()
			d := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d, tr)

			_ = l.Close()
			start := time.Now()
			eventually(t, 3*time.Second, "link down", func() bool { return d.Status().State == StateDown })
			t.Logf("link down detected after %s", time.Since(start))
			if d.Status().LastError == nil {
				t.Error("Status.LastError is nil after the link went down")
			}

			startListener(t, ListenerConfig{UDPAddr: udp, TCPAddr: tcp})
			waitUp(t, d, tr)
			c, err := d.Open(openCtx(t, 5*time.Second), echo)
			if err != nil {
				t.Fatalf("Open after reconnect: %v", err)
			}
			if got, err := roundTrip(c, []byte("again")); err != nil || string(got) != "again" {
				t.Fatalf("round trip after reconnect = %q, %v", got, err)
			}
			_ = c.Close()
		})
	}
}

func TestMaxStreamsPerLink(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			const limit = 3
			l := startListener(t, ListenerConfig{MaxStreamsPerLink: limit})
			d := startDialer(t, dialerFor(t, l, tr))
			waitUp(t, d, tr)

			var held []net.Conn
			for i := range limit {
				c, err := d.Open(openCtx(t, 5*time.Second), echo)
				if err != nil {
					t.Fatalf("Open #%d within the limit: %v", i+1, err)
				}
				held = append(held, c)
			}
			if _, err := d.Open(openCtx(t, 300*time.Millisecond), echo); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Open beyond the limit = %v, want it to wait until its deadline", err)
			}
			// Finishing one stream frees a slot.
			if _, err := roundTrip(held[0], []byte("x")); err != nil {
				t.Fatal(err)
			}
			_ = held[0].Close()
			c, err := d.Open(openCtx(t, 5*time.Second), echo)
			if err != nil {
				t.Fatalf("Open after a stream finished: %v", err)
			}
			_ = c.Close()
			for _, c := range held[1:] {
				_ = c.Close()
			}
		})
	}
}

func TestIdentityHelpers(t *testing.T) {
	for name, tc := range map[string]struct {
		id      spiffeid.ID
		cluster string
	}{
		"gateway":       {eastID, "east"},
		"workload":      {wlID, ""},
		"trust domain":  {tdTest.ID(), ""},
		"extra segment": {spiffeid.RequireFromPath(tdTest, "/cluster/east/gateway/x"), ""},
		"other role":    {spiffeid.RequireFromPath(tdTest, "/cluster/east/agent"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := GatewayCluster(tc.id)
			if got != tc.cluster || (err == nil) != (tc.cluster != "") {
				t.Fatalf("GatewayCluster(%s) = %q, %v; want %q", tc.id, got, err, tc.cluster)
			}
			if err != nil && !errors.Is(err, ErrNotGateway) {
				t.Fatalf("error %v is not ErrNotGateway", err)
			}
		})
	}
	id, err := GatewayID(tdTest, "west")
	if err != nil || id != westID {
		t.Fatalf("GatewayID = %s, %v; want %s", id, err, westID)
	}
}

func TestCheckAuthority(t *testing.T) {
	for a, ok := range map[string]bool{
		"10.0.0.1:80":                    true,
		"[fd00::1]:8443":                 true,
		"svc.ns.svc:443":                 true,
		"svc":                            false,
		":80":                            false,
		"svc:0":                          false,
		"svc:65536":                      false,
		"svc:080":                        false,
		"svc:http":                       false,
		"a b:80":                         false,
		"user@host:80":                   false,
		"host/path:80":                   false,
		string(make([]byte, 300)) + ":1": false,
	} {
		if err := checkAuthority(a); (err == nil) != ok {
			t.Errorf("checkAuthority(%q) = %v, want ok=%t", a, err, ok)
		}
	}
}
