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
	"net/netip"
	"testing"
)

// A dialer with LocalAddr makes its link's connections from that address,
// over both transports: firewalls between clusters are written for the
// gateways' addresses.
func TestDialerLocalAddr(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.2")
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			l := startListener(t, ListenerConfig{})
			cfg := dialerFor(t, l, tr)
			cfg.LocalAddr = src
			startDialer(t, cfg)
			ps := waitPeer(t, l, westID, tr)
			var got net.IP
			switch a := ps.RemoteAddr.(type) {
			case *net.UDPAddr:
				got = a.IP
			case *net.TCPAddr:
				got = a.IP
			}
			if ip, ok := netip.AddrFromSlice(got); !ok || ip.Unmap() != src {
				t.Fatalf("the listener sees the link from %v, want %s", ps.RemoteAddr, src)
			}
		})
	}
}
