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

// Package link is the cluster link: the long-lived mutual-TLS connection
// between two clusters' east-west gateways, over which every cross-cluster
// connection travels as one stream, in either direction.
//
// # Use
//
// There is one link per pair of clusters: one gateway dials it (a
// Dialer), the other accepts it (a Listener), and then either can open
// streams to the other over it. A cluster behind NAT only ever dials out.
//
// The gateway that keeps links up runs one Dialer per planned peer.
// OpenEarly(ctx, authority) and Open(ctx, authority) return a net.Conn (a
// *Conn, with CloseWrite) over the current link; Status reports state,
// transport, RTT, open streams and byte counts (both directions), and
// DialerConfig.OnStateChange is called on every state or transport
// change, for metrics. Streams the peer opens go to DialerConfig.Handle;
// without it they are refused.
//
// The gateway that accepts links runs a Listener; each Accept returns a
// Stream the peer opened, with the authenticated Peer gateway and the
// Authority (host:port or ip:port) the peer asked for. OpenEarly and
// Open(ctx, peer, authority) open a stream to a peer over the link that
// peer dialled (its most recent live one), waiting for one while ctx
// allows and failing with ErrNoLink; Peers reports the linked peers with
// transport, RTT, open streams and byte counts.
//
// # Opening streams: OpenEarly and Open
//
// OpenEarly returns as soon as the stream's header is sent. The caller's
// first bytes follow at once (on QUIC usually in the same packet; on
// HTTP/2 the CONNECT request's body flows before its response), and the
// peer's verdict comes back first on the stream, ahead of the first bytes
// from the destination: a new connection over an established link costs
// one round trip to its first byte back. If the peer refused the stream,
// Read returns the *RefusedError, and so does Write once the refusal is
// known; the peer never forwards a byte of a stream it has not accepted
// (it answers before it relays), so bytes written early are discarded.
// Open waits for the verdict before it returns, one round trip more, and
// returns the *RefusedError itself: for callers that must know before
// they answer their own client. The gateway needs no verdict for its
// fail-fast on a link that is down (it checks Status before opening), so
// it can use OpenEarly for a sidecar's tunnel and answer 200 at once; a
// refusal then ends the tunnel instead of answering 403. Both wait for a
// link and for a stream slot while ctx allows; neither retries once it
// has returned a stream. No 0-RTT is involved: streams are opened over an
// established link, whose handshakes are never replayable (below).
//
// Whoever receives a Stream decides: Refuse(reason) — a gateway forwards
// only to endpoints of exported services and is never an open proxy — or
// Accept and relay bytes to the destination (Stream is a net.Conn with
// CloseWrite, so half-closes pass through). Both directions use the same
// stream header, verdict and peer verification. The inner mTLS session
// between the two workload proxies is carried as opaque bytes: this
// package never sees plaintext.
//
// # Transports
//
// QUIC (quic-go, ALPN "causeway-link/1") is preferred: streams are
// independent (a lost packet stalls only its own stream, not every
// connection between two clusters), the handshake is one round trip, and
// connection IDs survive NAT rebinding. Either end opens bidirectional
// streams on the one connection. Each stream starts with a header naming
// the authority (see header.go), and the other direction with the
// accepting end's verdict; bytes flow both ways, FIN is a half-close.
//
// HTTP/2 CONNECT over TCP+TLS (net/http's HTTP/2 at both ends) is the
// fallback for networks that drop UDP. One CONNECT request is one stream;
// the verdict is the response status (200, or 403 with the reason as
// body); the request runs from the opening on, its body carrying the
// opener's bytes. HTTP/2 is asymmetric, so a TCP link is two TLS
// connections, both dialled by the dialer, both verified alike: the
// forward one (ALPN "h2", the dialer is the HTTP/2 client) and the
// reverse one (ALPN "causeway-link-rev/1", the listener is the HTTP/2
// client). The listener pairs them by a token it hands out on the forward
// connection, and they live and die together (see h2.go). net/http's
// server cannot end a response while it is still reading the request, so
// on this transport the accepting end's CloseWrite reaches the peer only
// once it has also read EOF (or closes): a protocol in which the
// destination closes first and the source waits for that EOF before
// closing its own side stalls until one side closes. Deadlines are not
// supported on the opening end's HTTP/2 conns.
//
// # QUIC parameters
//
//   - HandshakeIdleTimeout = HandshakeTimeout (5 s by default): bounds how
//     long a blocked UDP path delays the TCP fallback.
//   - KeepAlivePeriod = KeepAlive (10 s) and MaxIdleTimeout = IdleTimeout
//     (30 s) minus KeepAlive: keepalives hold NAT and firewall state open,
//     and since QUIC restarts its idle timer at the first packet sent
//     after the last one received (at the latest the keepalive), a silent
//     peer is declared dead at most IdleTimeout after its last packet. A
//     peer that closes sends CONNECTION_CLOSE, which is seen at once.
//   - MaxIncomingStreams = MaxStreamsPerLink (1000) at both ends (the
//     listener's and the dialer's own settings), the per-link concurrency
//     bound in each direction (HTTP/2: MaxConcurrentStreams). An opener at
//     the limit waits in Open until a stream finishes or ctx ends.
//     Unidirectional streams are refused at both ends.
//   - Receive windows of 16 MiB per stream and 64 MiB per link from the
//     start (no auto-tuning ramp): one link carries a whole cluster
//     pair's traffic over WAN round trips, and a window caps what a
//     stream moves per round trip. The memory is spent only while a
//     reader falls behind, and the peer is an authenticated gateway.
//     HTTP/2 links use the same windows (MaxReceiveBufferPerStream and
//     PerConnection, at both ends; net/http's server defaults of 1 MiB
//     would cap a link at 20 ms of RTT near 50 MB/s).
//   - UDP socket buffers: quic-go asks for 7 MiB each way and logs a
//     warning when it gets less; the kernel doubles what it grants, so
//     net.core.rmem_max and wmem_max of at least 4 MiB suffice (or
//     CAP_NET_ADMIN, with which quic-go forces the size).
//   - Allow0RTT false, DialAddr (never DialAddrEarly) and no session
//     tickets: 0-RTT data is replayable, and a replayed stream header
//     would open a connection the peer never asked for.
//
// # Dead peers
//
// A peer that vanishes without closing (killed with SIGKILL, frozen, cut
// off) is declared dead at most IdleTimeout after its last packet, at
// both ends: QUIC by its idle timer (above), HTTP/2 by PINGs (each end
// sends one after KeepAlive without a frame and closes if the answer has
// not come by IdleTimeout). With the gateway's settings (1 s and 3 s) the
// tests measure 2 to 3 s. The dialer then reconnects; the listener drops
// the link from Open and Peers.
//
// # Fallback and reconnection
//
// A Dialer keeps exactly one link. To connect it tries QUIC, then TCP.
// While on TCP it retries QUIC every QUICRetryInterval (30 s, jittered)
// and switches once the peer confirmed the QUIC link: new streams go to
// QUIC at once (the listener's Open too: it takes the peer's most recent
// link), the TCP link is closed once its streams finish, both ways (or
// after IdleTimeout). When a link dies the dialer reconnects; failed
// attempts back off exponentially from MinBackoff to MaxBackoff, each
// wait drawn in [d/2, d) so that gateways that lost their links together
// do not reconnect in lockstep. Open issued while the link is down waits
// for it until its ctx ends.
//
// # Link states
//
// Status.State is down, connecting or up. A link is connecting from the
// moment its handshake is done, this side having verified the peer (QUIC:
// the QUIC handshake; TCP: the forward connection's TCP and TLS
// handshakes), and streams may be opened on it from then on: setting up
// a link over QUIC costs one round trip before the first stream, over TCP
// two. What is not known yet is whether the peer accepted this side: in
// TLS 1.3 the client finishes its handshake before the server has checked
// the client certificate, and the listener applies its link limits after
// the handshake. So a probe runs meanwhile (an empty-authority QUIC
// stream, or a GET of probePath on HTTP/2 followed by the pairing of the
// reverse connection, whose handshakes overlap the forward one's); its
// answer, a round trip later, makes the link up. If the probe fails the
// link goes down, LastError says why (the peer's TLS alert, "bad
// certificate", or its refusal, "too many links"), and streams opened on
// it fail; Open (which waits for the verdict) and a stream opening that
// has not returned yet wait for the next link instead. The listener
// counts a link from its own handshake on (QUIC) or once the reverse
// connection is paired (TCP). Nothing here is 0-RTT: the peer processes
// no stream before its handshake has verified this side.
//
// # Limits
//
// A Listener holds at most MaxLinks links (256) and MaxLinksPerPeer (4)
// per peer gateway identity; a link beyond either is refused as soon as
// its handshake has verified the peer, with the reason (QUIC: closed with
// an application error; TCP: the probe answers 503), which the dialer
// reports in LastError. At most MaxLinks TCP handshakes (with unpaired
// reverse connections) are in progress at once; connections beyond that
// are closed unread, and each handshake is bounded by HandshakeTimeout.
// A TCP connection whose handshake failed is half-closed and drained for
// at most 250 ms (64 KiB) before it is closed, so that the dialer reads
// the TLS alert saying why rather than a reset. Streams are bounded per
// link and per direction (MaxStreamsPerLink), and a QUIC stream's header
// must arrive within HeaderTimeout.
//
// # Performance
//
// The benchmarks (bench_test.go; go test -run '^$' -bench .
// ./gateway/link/) compare a QUIC link, a TCP+TLS link and a direct TCP
// connection at 0 and 20 ms of RTT, everything in one process on the
// 2-core test machine, and print each goal as PASS or MISS. What they
// show, and why:
//
//   - Time to first byte of a new connection over an established link
//     (OpenEarly): one round trip plus a few tenths of a millisecond on
//     both transports (Open, which waits for the verdict: two).
//   - Link setup, NewDialer until a stream can be opened: QUIC one round
//     trip, TCP+TLS two (TCP, then TLS 1.3), so about 0.55× at 20 ms; at
//     0 ms both are CPU-bound by the same certificate checks and key
//     exchange, about 0.6×. Confirmation (state up) takes a round trip
//     more on both.
//   - Throughput: a QUIC link (quic-go) costs the gateways about two and a
//     half times the CPU per byte of a TCP+TLS link with one stream
//     (per-packet encryption of 1,452-byte packets, user-space
//     acknowledgements), four to five times with 100 concurrent streams,
//     which quic-go interleaves packet by packet so that the receiving
//     end reads and relays small pieces. On a CPU-bound machine QUIC moves
//     well under TCP+TLS's bytes. Across 20 ms, quic-go drops packets in
//     its own per-connection queue (256 packets) when the receiving
//     goroutine falls behind, and its Cubic congestion control then
//     recovers slowly, so a link runs far below its windows; the delay
//     relay's TCP, split at the relay, never meets the round trip in its
//     congestion control at all (see test/delayrelay). A gateway with
//     cores of its own does better on both counts.
//
// # Security
//
// Both sides use TLS 1.3 only, present their SVID (Certificate is called
// on every handshake, so rotations apply to new links at once) and verify
// the peer's with go-spiffe through pki.Verify against the trust bundle:
// chain to a root of the trust domain, X509-SVID leaf rules, and the
// extended key usage of its role (clientAuth for dialers, serverAuth for
// listeners), which go-spiffe does not check. Only gateway identities,
// spiffe://<td>/cluster/<name>/gateway, may link: a workload SVID, though
// valid, is refused in both directions, and so is any SVID of another
// trust domain. AuthorizePeer (listener) and ExpectPeer (dialer) narrow
// this further to the gateways the hub planned; set ExpectPeer, since a
// gateway should reach the gateway it meant to. As the pki package notes,
// any cluster's intermediate can sign any cluster's gateway ID; this
// package does not bind the name to the intermediate.
//
// Both ends treat stream headers as hostile: the authority is
// syntax-checked (checkAuthority, fuzzed) and on QUIC must arrive within
// HeaderTimeout, but it is not authorized here — the caller (Accept's or
// Handle's) must.
package link
