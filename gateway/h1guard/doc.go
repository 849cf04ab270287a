// Package h1guard keeps HTTP/1.1 request smuggling away from net/http.
//
// The causeway-proxy serves HTTP/1.1 and prior-knowledge HTTP/2 (h2c) on one
// port with net/http's http.Server. net/http is lenient where an intermediary
// cannot afford it: it accepts Content-Length together with
// Transfer-Encoding: chunked and drops the Content-Length, and it trims
// whitespace (HTAB included) around Transfer-Encoding. A front-end that reads
// such a request differently from us is the start of a desynchronisation
// (RFC 9112 §11.2). h1guard rejects those requests before net/http sees them.
//
// # Use
//
// Wrap each accepted connection, or wrap the listener:
//
//	ln = h1guard.NewListener(ln, h1guard.Options{OnReject: rejects.Inc})
//	srv.Serve(ln)
//
// For TLS, finish the handshake first, serve connections that negotiated "h2"
// with the HTTP/2 server directly, and wrap the others with Wrap (net/http
// does not recognise a wrapped *tls.Conn; the wrapper forwards its
// ConnectionState so that Request.TLS is still set).
//
// # How it works
//
// The guard is a net.Conn between the socket and net/http. Its Read runs an
// incremental, allocation-free state machine over the client's bytes and
// hands them to net/http unchanged, but a request head only once all of it
// has arrived and passed:
//
//   - request-line: method token, one SP, request-target of VCHAR without
//     "#" (origin-form, absolute-form, authority-form for CONNECT, "*" for
//     OPTIONS; valid %-escapes in the path), one SP, HTTP/1.1 or HTTP/1.0
//     (other versions get 505), CRLF (RFC 9112 §3, §2.3). One empty line
//     before it is allowed after a POST, where net/http skips it (§2.2).
//   - field lines: token ":" OWS value OWS CRLF, no whitespace before the
//     colon (§5.1), value bytes VCHAR, obs-text, SP and HTAB only, no obs-fold
//     (§5.2); bare CR or bare LF anywhere is an error (§2.2). A head larger
//     than Options.MaxHeaderBytes or with more than Options.MaxHeaderFields
//     fields gets 431.
//   - framing (§6): Transfer-Encoding must be a single field whose value is
//     exactly "chunked", case-insensitive, with optional SP around it. HTAB
//     anywhere in that value is refused, because front-ends disagree about
//     whether it is whitespace; lists, other codings and duplicates are
//     refused with 400. Transfer-Encoding with Content-Length, and
//     Transfer-Encoding in HTTP/1.0, are refused. Content-Length is 1*DIGIT
//     fitting int64; repeated fields must be identical strings (net/http
//     compares strings); a list value is refused, as net/http refuses it.
//     HTTP/1.1 requests need exactly one Host field (§3.2; CONNECT is exempt,
//     as in net/http).
//   - content: Content-Length bytes, or chunks: 1 to 16 HEXDIG, optional
//     chunk-ext of token[=token/quoted-string] without BWS and at most 1 KiB,
//     CRLF, data, CRLF, then the last chunk and a trailer section checked
//     like header fields (§7.1).
//
// Content flows as it arrives, with no copy when it lands in net/http's own
// buffer. Only bytes of an incomplete head are kept back (and copied once).
//
// # Rejections
//
// On a violation Read delivers what precedes the bad request and then returns
// io.EOF: net/http finishes the responses it owes and closes the connection.
// Close then writes "400 Bad Request" (or 431, 505) with Connection: close and
// a fixed reason before closing, and drains unread input for up to half a
// second so that the close does not turn into an RST that destroys the
// response. Options.OnReject reports the reason.
//
// When the violation is in the content of a request whose head net/http
// already has (a bad chunk that arrives after the head was delivered), that
// request cannot be taken back: its body read fails with
// io.ErrUnexpectedEOF, net/http answers it however the handler decides and
// closes the connection, and the guard sends no response of its own. Bytes
// after the violation never reach net/http either way.
//
// net/http starts a one-byte background read while a handler runs, and an
// error from it cancels that handler's request context. After a violation
// the guard therefore holds such a read (discarding input) until net/http
// interrupts it with a deadline, so that a valid request in flight is not
// cancelled by the garbage pipelined behind it.
//
// # Protocol switches
//
// The HTTP/2 connection preface as the first bytes makes the connection pass
// through unchecked: HTTP/2 has its own framing.
//
// A request with an Upgrade field, and a CONNECT request, may switch the
// connection away from HTTP/1.1, but only the response says whether it did.
// Switching on the request alone would let any client turn the guard off by
// adding "Upgrade: x" to a request the server then refuses. So the guard
// reads the status line of the response from the bytes written through it:
// 101 after Upgrade, 2xx after CONNECT, switch to pass-through after the
// request (and its content); any other final status keeps validating. To tell
// which status line answers that request, the guard releases its head only
// when nothing before it is outstanding and net/http reads with more than its
// one-byte background buffer, that is when it is back in its read loop, every
// earlier response written. Bytes behind it wait in the guard (at most
// MaxHeaderBytes plus 8 KiB; more is rejected) until the status is known.
// Consequences: a hijacking handler must write the 101 or 2xx status line
// through the hijacked connection (as ReverseProxy, coder/websocket and
// golang.org/x/net/http2/h2c do) before it expects client data; and
// Expect: 100-continue and other 1xx interim responses are skipped.
//
// # Limits
//
// The guard validates syntax and framing, not meaning: Host values, URI
// details beyond the above, and field semantics stay with net/http, which
// rejects what it cannot parse on its own (and closes). A handler that
// hijacks a request that had neither Upgrade nor CONNECT keeps reading
// validated HTTP/1.1. Concurrent Reads are serialised.
package h1guard
