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
	"testing"
	"time"
)

// TestFrozenPeerDeclaredDown: with the gateway's settings (keepalive 1 s,
// idle timeout 3 s) a peer that falls silent without closing anything —
// killed with SIGKILL, frozen, cut off — is declared down within 3 s of
// its last packet by both ends: the dialer's Status goes down and the
// listener drops the link from Peers and Open. Once the path forwards
// again the dialer reconnects. The bound asserted is looser than 3 s so
// that a loaded test machine does not fail it; the figures are logged.
func TestFrozenPeerDeclaredDown(t *testing.T) {
	const (
		keepAlive = time.Second
		idle      = 3 * time.Second
		bound     = 4500 * time.Millisecond
	)
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{KeepAlive: keepAlive, IdleTimeout: idle})
			var fr *freezeRelay
			cfg := dialerFor(t, l)
			if tr == TransportQUIC {
				fr = startFreezeRelay(t, l.UDPAddr().String(), "")
				cfg.UDPAddr = fr.udpAddr()
			} else {
				fr = startFreezeRelay(t, "", l.TCPAddr().String())
				cfg.TCPAddr = fr.tcpAddr()
			}
			cfg.KeepAlive, cfg.IdleTimeout = keepAlive, idle
			cfg.Handle = relay
			d := startDialer(t, cfg)
			waitUp(t, d, tr)
			waitPeer(t, l, westID, tr)

			fr.frozen.Store(true)
			frozen := time.Now()
			var dialerDown, listenerDown time.Duration
			eventually(t, 2*bound, "both ends to declare the frozen peer down", func() bool {
				if dialerDown == 0 && d.Status().State == StateDown {
					dialerDown = time.Since(frozen)
				}
				if _, ok := peerStatus(l, westID); listenerDown == 0 && !ok {
					listenerDown = time.Since(frozen)
				}
				return dialerDown > 0 && listenerDown > 0
			})
			t.Logf("%s: frozen peer declared down after %s by the dialer, %s by the listener", tr, dialerDown.Round(time.Millisecond), listenerDown.Round(time.Millisecond))
			if dialerDown > bound || listenerDown > bound {
				t.Errorf("frozen peer declared down after %s (dialer) and %s (listener), want within %s", dialerDown, listenerDown, bound)
			}
			if st := d.Status(); st.LastError == nil {
				t.Error("Status.LastError is nil after the link went down")
			}

			fr.frozen.Store(false)
			waitUp(t, d, tr)
			waitPeer(t, l, westID, tr)
			for name, open := range map[string]func() (net.Conn, error){
				"dialer":   func() (net.Conn, error) { return d.Open(openCtx(t, 5*time.Second), echo) },
				"listener": func() (net.Conn, error) { return l.Open(openCtx(t, 5*time.Second), westID, echo) },
			} {
				c, err := open()
				if err != nil {
					t.Fatalf("Open from the %s after reconnecting: %v", name, err)
				}
				if got, err := roundTrip(c, []byte("back")); err != nil || string(got) != "back" {
					t.Fatalf("round trip from the %s after reconnecting = %q, %v", name, got, err)
				}
				_ = c.Close()
			}
		})
	}
}
