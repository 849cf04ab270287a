// Package hbone carries TCP connections between Causeway proxies inside
// a cluster through HBONE-style tunnels, as Istio ambient does: one
// mutually authenticated TLS 1.3 connection between two proxies speaks
// HTTP/2, and each tunnelled TCP connection is one plain HTTP/2 CONNECT
// stream (RFC 9113, section 8.5) whose :authority is the destination
// "ip:port". After a 200 answer the request body carries the client's
// bytes and the response body the destination's.
//
// # Use
//
// The receiving proxy runs a Server (on port 15008 in a mesh):
//
//	srv := &hbone.Server{
//		Bundle:      bundle,                // *pki.Bundle or any x509bundle.Source
//		Certificate: svids.Current,         // the proxy's own SVID, read per handshake
//		Authorize:   policy.AllowTunnel,    // peer SPIFFE ID × destination
//	}
//	go srv.Serve(listener)                  // a TCP listener; Serve does the TLS
//	defer srv.Shutdown(drainCtx)
//
// The sending proxy keeps one Client and dials through it:
//
//	c := &hbone.Client{Bundle: bundle, Certificate: svids.Current, ExpectPeer: wantNodeProxy}
//	conn, err := c.Dial(ctx, "10.0.3.7:15008", netip.MustParseAddrPort("10.0.3.12:8080"))
//
// conn is a net.Conn with CloseWrite; a refused tunnel is a *StatusError.
//
// A Server dials each tunnel's destination itself (Dial), or, with
// Handle, hands the stream to the caller as a net.Conn: the proxy serves
// tunnels to its workload through its own inbound listener that way,
// with the verified Peer (SPIFFE ID and address) attached.
//
// # Identity
//
// Both ends verify the other's X509-SVID with go-spiffe's x509svid.Verify
// in tls.Config.VerifyConnection: RFC 5280 path validation against the
// bundle, and exactly one URI SAN holding a SPIFFE ID whose trust domain
// the bundle knows. crypto/tls's own verification is off on the client
// (InsecureSkipVerify) because SVIDs carry no host name, and the server
// asks for any client certificate (RequireAnyClientCert) for the same
// reason; VerifyConnection is the replacement in both, and unlike
// VerifyPeerCertificate it also runs on resumed sessions. Sessions are
// resumed (TLS 1.3 tickets) to save the signatures of a full handshake,
// but each resumed connection is verified again against the bundle as it
// is then, so a ticket issued before a root was removed, or before the
// peer's certificate expired, does not let the peer in. A client
// certificate from another trust domain, an expired one, or one naming
// its SPIFFE ID only in a DNS SAN fails the handshake.
//
// Authentication says who the peer is; the policy is the caller's: the
// server calls Authorize with the verified peer ID and the destination
// for every stream, and the client calls ExpectPeer with the proxy's ID
// for every connection. Both are required: a server without Authorize
// would be an open proxy, and a client without ExpectPeer would talk to
// any workload of the trust domain.
//
// # Server answers
//
//	405 Method Not Allowed   the method is not CONNECT
//	400 Bad Request          :authority is not an IP:port literal (non-zero port, specified address)
//	403 Forbidden            Authorize refused the peer for the destination
//	503 Service Unavailable  the destination dial failed (DialTimeout, 5 s by default)
//	200 OK                   the tunnel is open (with Handle: handed to it)
//
// # Half-close
//
// The end of the request body (the client's CloseWrite, END_STREAM) is
// passed to the destination as CloseWrite, and the destination's bytes
// keep flowing until it closes: request–response protocols that signal
// the end of a request by half-closing work. The other direction is
// coarser: when the destination closes its side, the server ends the
// response, and net/http then resets the stream (RST_STREAM NO_ERROR,
// RFC 9113 section 8.1) because it cannot close a response while still
// reading the request. The client reads everything up to EOF; what it is
// still sending is dropped.
//
// # Connections and limits
//
// The Client keeps one HTTP/2 connection per proxy address (made with
// http.Transport.NewClientConn) and opens every tunnel to that proxy on
// it. A connection that is closed, going away (GOAWAY) or at the
// server's stream limit is replaced in the pool by a new one; its open
// tunnels run on and it is closed when the last ends. The Server
// advertises MaxConcurrentStreams (100 by default) in its SETTINGS,
// bounds each TLS handshake by HandshakeTimeout and closes connections
// without tunnels after IdleTimeout. It sets neither ReadTimeout nor
// WriteTimeout: net/http's HTTP/2 server applies them to each stream,
// which would cut long-lived tunnels.
//
// # Trade-offs
//
// Everything HTTP/2 and TLS is net/http and crypto/tls; nothing here
// parses frames. The cost is the half-close limitation above and flow
// control tuned for requests rather than bulk transfer (see
// BenchmarkTunnelThroughput). The tunnel net.Conn supports no deadlines
// (its Set*Deadline methods return an error wrapping
// errors.ErrUnsupported): the response body has none to offer; close the
// conn instead. Shutdown drains for as long as its context allows and
// then closes the remaining tunnels, so a tunnel is never cut while the
// drain period lasts.
package hbone
