// Package link is the cluster link: the long-lived mutual-TLS connection
// between two clusters' east-west gateways, over which every cross-cluster
// connection travels as one stream.
//
// # Use
//
// The gateway that accepts links runs a Listener; each Accept returns a
// Stream with the authenticated Peer gateway and the Authority (host:port
// or ip:port) the peer asked for. The caller decides: Refuse(reason) — a
// gateway forwards only to endpoints of exported services and is never an
// open proxy — or Accept and relay bytes to the destination (Stream is a
// net.Conn with CloseWrite, so half-closes pass through).
//
// The gateway that keeps links up runs one Dialer per planned peer.
// Open(ctx, authority) returns a net.Conn (a *Conn, with CloseWrite) over
// the current link; Status reports state, transport, RTT, open streams and
// byte counts, and DialerConfig.OnStateChange is called on every state or
// transport change, for metrics. The inner mTLS session between the two
// workload proxies is carried as opaque bytes: this package never sees
// plaintext.
//
// # Transports
//
// QUIC (quic-go, ALPN "causeway-link/1") is preferred: streams are
// independent (a lost packet stalls only its own stream, not every
// connection between two clusters), the handshake is one round trip, and
// connection IDs survive NAT rebinding. Each stream starts with a header
// naming the authority (see header.go) and the listener's one-byte
// verdict; then bytes flow both ways, FIN is a half-close.
//
// HTTP/2 CONNECT over TCP+TLS (ALPN "h2", net/http's HTTP/2 on both
// sides) is the fallback for networks that drop UDP. One CONNECT request
// is one stream; the verdict is the response status (200, or 403 with the
// reason as body). net/http's server cannot end a response while it is
// still reading the request, so on this transport the listener's
// CloseWrite reaches the peer only once the listener has also read EOF
// (or closes): a protocol in which the destination closes first and the
// source waits for that EOF before closing its own side stalls until one
// side closes. Deadlines are not supported on the dialer's HTTP/2 conns.
//
// # QUIC parameters
//
//   - HandshakeIdleTimeout = HandshakeTimeout (5 s by default): bounds how
//     long a blocked UDP path delays the TCP fallback.
//   - MaxIdleTimeout = IdleTimeout (30 s) and KeepAlivePeriod = KeepAlive
//     (10 s): keepalives hold NAT and firewall state open and detect a
//     dead peer within the idle timeout; a listener that closes sends
//     CONNECTION_CLOSE, which the dialer sees at once.
//   - MaxIncomingStreams = MaxStreamsPerLink (1000) on the listener, the
//     per-link concurrency bound (HTTP/2: MaxConcurrentStreams). A dialer
//     at the limit waits in Open until a stream finishes or ctx ends. The
//     dialer accepts no streams (MaxIncomingStreams -1), and unidirectional
//     streams are refused on both sides.
//   - Receive windows up to 16 MiB per stream and 64 MiB per link: one
//     link carries a whole cluster pair's traffic over WAN round trips;
//     quic-go's 6/15 MiB defaults would cap a link's throughput on long
//     paths.
//   - Allow0RTT false, DialAddr (never DialAddrEarly) and no session
//     tickets: 0-RTT data is replayable, and a replayed stream header
//     would open a connection the peer never asked for.
//
// # Fallback and reconnection
//
// A Dialer keeps exactly one link. To connect it tries QUIC, then TCP.
// While on TCP it retries QUIC every QUICRetryInterval (30 s, jittered)
// and switches when it works: new streams go to QUIC at once, the TCP link
// is closed once its streams finish (or after IdleTimeout). When a link
// dies the dialer reconnects; failed attempts back off exponentially from
// MinBackoff to MaxBackoff, each wait drawn in [d/2, d) so that gateways
// that lost their links together do not reconnect in lockstep. A link is
// declared up only after a probe (an empty-authority QUIC stream, or a
// GET of probePath on HTTP/2) is answered: in TLS 1.3 the client finishes
// its handshake before the server has checked the client certificate.
// Open issued while the link is down waits for it until its ctx ends.
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
// The listener treats stream headers as hostile: the authority is
// syntax-checked (checkAuthority, fuzzed) and must arrive within
// HeaderTimeout, but it is not authorized here — the caller must.
package link
