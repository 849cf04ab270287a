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
// Open(ctx, authority) returns a net.Conn (a *Conn, with CloseWrite) over
// the current link; Status reports state, transport, RTT, open streams and
// byte counts (both directions), and DialerConfig.OnStateChange is called
// on every state or transport change, for metrics. Streams the peer opens
// go to DialerConfig.Handle; without it they are refused.
//
// The gateway that accepts links runs a Listener; each Accept returns a
// Stream the peer opened, with the authenticated Peer gateway and the
// Authority (host:port or ip:port) the peer asked for. Open(ctx, peer,
// authority) opens a stream to a peer over the link that peer dialled
// (its most recent live one), waiting for one while ctx allows and failing
// with ErrNoLink; Peers reports the linked peers with transport, RTT, open
// streams and byte counts.
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
// the authority (see header.go) and the accepting end's one-byte verdict;
// then bytes flow both ways, FIN is a half-close.
//
// HTTP/2 CONNECT over TCP+TLS (net/http's HTTP/2 at both ends) is the
// fallback for networks that drop UDP. One CONNECT request is one stream;
// the verdict is the response status (200, or 403 with the reason as
// body). HTTP/2 is asymmetric, so a TCP link is two TLS connections, both
// dialled by the dialer, both verified alike: the forward one (ALPN "h2",
// the dialer is the HTTP/2 client) and the reverse one (ALPN
// "causeway-link-rev/1", the listener is the HTTP/2 client). The listener
// pairs them by a token it hands out on the forward connection, and they
// live and die together (see h2.go). net/http's server cannot end a
// response while it is still reading the request, so on this transport
// the accepting end's CloseWrite reaches the peer only once it has also
// read EOF (or closes): a protocol in which the destination closes first
// and the source waits for that EOF before closing its own side stalls
// until one side closes. Deadlines are not supported on the opening
// end's HTTP/2 conns.
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
//   - Receive windows up to 16 MiB per stream and 64 MiB per link: one
//     link carries a whole cluster pair's traffic over WAN round trips;
//     quic-go's 6/15 MiB defaults would cap a link's throughput on long
//     paths.
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
// and switches when it works: new streams go to QUIC at once (the
// listener's Open too: it takes the peer's most recent link), the TCP link
// is closed once its streams finish, both ways (or after IdleTimeout).
// When a link dies the dialer reconnects; failed attempts back off
// exponentially from MinBackoff to MaxBackoff, each wait drawn in [d/2, d)
// so that gateways that lost their links together do not reconnect in
// lockstep. A link is declared up only after a probe (an empty-authority
// QUIC stream, or a GET of probePath on HTTP/2 followed by the pairing of
// the reverse connection) is answered: in TLS 1.3 the client finishes its
// handshake before the server has checked the client certificate. Open
// issued while the link is down waits for it until its ctx ends.
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
// Streams are bounded per link and per direction (MaxStreamsPerLink), and
// a QUIC stream's header must arrive within HeaderTimeout.
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
