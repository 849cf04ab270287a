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

// Package delayrelay is a WAN in a box for tests: a relay that forwards
// UDP datagrams and TCP connections to a target and adds a one-way delay
// in each direction. The kernels tests run on have no netem, so this is
// how the test harness gives cluster links 10–50 ms of round-trip time,
// and how fault tests partition a link or block its UDP.
//
// # Use
//
//	r, err := delayrelay.New(delayrelay.Config{
//		UDPTarget: gatewayA.UDPAddr().String(), // QUIC
//		TCPTarget: gatewayA.TCPAddr().String(), // TCP+TLS fallback
//		Delay:     10 * time.Millisecond,       // 20 ms RTT
//	})
//	defer r.Close()
//	// Point the peer at r.Addr() (TCP and UDP on the same port) instead
//	// of the target.
//
// The round-trip time through the relay is 2×Delay plus what the path
// costs without it (on loopback, tens of microseconds). Controls for
// fault tests, all safe to call at any time from any goroutine:
//
//   - SetDelay changes the delay of bytes and datagrams received from
//     then on.
//   - Block stops all forwarding silently, as a partition or a killed
//     peer would: nothing is closed or reset. UDP datagrams are dropped;
//     TCP bytes are held (as a real TCP would retransmit them after the
//     partition heals) and new TCP connections are accepted but not
//     connected to the target. BlockUDP blocks only UDP (a firewall that
//     drops UDP; TCP passes). Unblock lifts both.
//   - Close stops the relay, closes every connection and UDP session and
//     returns once all of the relay's goroutines have ended.
//
// Stats reports open sessions and connections and datagram counts.
//
// # Behaviour
//
// UDP: each client address (the 4-tuple, the relay's side being fixed)
// is a session with its own socket towards the target, as a NAT would
// keep it, ending after UDPIdleTimeout without a datagram forwarded
// either way. Datagram boundaries are kept. Each direction of a session
// is a queue of at most UDPQueue datagrams; a datagram that finds its
// queue full is dropped, like a router's full buffer.
//
// TCP: each accepted connection is relayed to a new connection to the
// target, byte order kept and half-closes passed on (after the delay,
// like the bytes before them). Each direction holds at most TCPBuffer
// bytes in flight; beyond, the relay stops reading, so the sender sees
// backpressure. The kernel completes the client's handshake with the
// relay at once, so the relay charges it instead: bytes the client sends
// in its first round trip are held as if sent once the handshake would
// have completed (first byte at the target no earlier than 3×Delay after
// the connect, first answer at the client no earlier than 4×Delay), and a
// new connection costs the round trip it costs on a real path.
//
// Both directions keep their order when the delay changes: a datagram or
// chunk is never delivered before the one received before it, so a
// shorter delay takes effect once the queue ahead has drained.
//
// # Trade-offs
//
// There is no bandwidth limit, loss model or jitter: the relay emulates
// distance, not a bad network. Packets are delivered on time to within
// about a tenth of a millisecond: an idle Go process wakes for its timers
// up to a millisecond late (the netpoller waits in whole milliseconds), so
// the last stretch of a long wait, and any wait of light traffic, is slept
// in nanosleep; back-to-back packets of bulk traffic wait on timers, which
// a busy process checks often. The relay's own work is part of what a
// test through it measures, on the same CPUs as the code under test: a
// read and a write system call per datagram, about 5 µs of CPU per
// datagram on the 2-core test machine (what an unbatched sender and
// receiver spend together; quic-go batches its system calls, so a QUIC
// transfer through the relay can halve on a CPU-bound machine), and one
// per chunk of up to 64 KiB for TCP, far cheaper per byte.
//
// TCP is relayed connection by connection (split TCP): the delay applies
// to the bytes, but each leg's TCP runs over loopback, so a TCP sender's
// congestion control never sees the round trip or a loss, only the
// relay's buffer (TCPBuffer per direction). UDP datagrams, QUIC's among
// them, cross the delay one by one, so QUIC's congestion control does see
// it. A comparison of TCP and QUIC throughput through the relay therefore
// favours TCP on long paths: on a real one, TCP's congestion window has
// to grow across the same round trip.
// Goroutines are per session or connection (three per UDP session, five
// per TCP connection), never per packet.
package delayrelay
