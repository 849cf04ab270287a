package proxy

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// forwardHTTP1 proxies an ordinary request that arrived on the HTTP/1
// loop, doing what the shared ReverseProxy does (see newReverseProxy)
// without its per-request copies: the request is the server loop's own,
// so its header map is edited in place, and the response is framed by
// h1Writer directly. Upgrades, and every request on net/http's servers
// (HTTP/2, TLS h2), go through the ReverseProxy.
func (p *Proxy) forwardHTTP1(w *h1Writer, in *http.Request, req *request) {
	out := new(http.Request)
	*out = *in
	u := *in.URL
	out.URL = &u
	out.RequestURI, out.Close = "", false
	if in.ContentLength == 0 {
		out.Body = nil // as Transport wants a request without a body
	}
	removeHopByHop(out.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		// Not Go's default user agent: none, as the client sent none.
		out.Header["User-Agent"] = []string{""}
	}
	p.rewriteOutbound(out, in, req)

	resp, err := p.RoundTrip(out)
	if err != nil {
		status, msg := classifyError(out.Context(), err)
		p.localReply(w, in, status, msg, req.cluster.name)
		return
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	p.modifyResponse(resp, req)
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	// Streaming responses (no length: chunked, server-sent events) are
	// flushed after each read, as ReverseProxy does.
	flush := resp.ContentLength < 0
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf[:])
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				// The client is gone: nothing more can be sent.
				w.closeAfter = true
				return
			}
			if flush {
				if werr := w.FlushError(); werr != nil {
					w.closeAfter = true
					return
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The endpoint failed mid-body: the response cannot be
			// completed, so the connection is closed without the final
			// chunk (a client sees a truncated response, not a whole one).
			if !errors.Is(rerr, io.ErrUnexpectedEOF) {
				p.log.Debug("read response body", "cluster", req.cluster.name, "err", rerr)
			}
			w.abort()
			return
		}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
}

// hopByHop are the connection-specific fields a proxy does not forward
// (RFC 9110 §7.6.1), besides those that Connection names.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	te := h["Te"]
	for _, name := range hopByHop {
		delete(h, name)
	}
	// "TE: trailers" says the client takes trailers: gRPC needs it to
	// reach the endpoint.
	for _, v := range te {
		if strings.EqualFold(textproto.TrimString(v), "trailers") {
			h["Te"] = []string{"trailers"}
			break
		}
	}
}
