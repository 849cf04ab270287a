package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The proxy serves HTTP/1.x connections on their own goroutine with a
// small server loop instead of net/http's Server: net/http's parser
// (http.ReadRequest) reads each request, Proxy.ServeHTTP handles it as it
// handles HTTP/2 requests, and h1Writer frames the response. What the loop
// leaves out is what made net/http's server the larger part of the proxy's
// CPU per request: a background read and its abort per request, a
// cancellable context per request, and a response writer built for
// arbitrary handlers. It does not notice a client that disconnects while
// its request waits for the endpoint (net/http's background read did):
// the request then ends when the endpoint answers or the route's timeout
// expires, and the connection is closed.
//
// Connections whose first bytes are the HTTP/2 preface go to net/http's
// server (h2c), as TLS connections that negotiate h2 do.

const (
	h1ReadHeaderTimeout = 30 * time.Second
	h1IdleTimeout       = 5 * time.Minute
	// h1MaxDrain is how much of a request body the handler left unread the
	// server reads to keep the connection; more, and it closes (as
	// net/http does).
	h1MaxDrain = 256 << 10
)

var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// h1Conns tracks the connections the HTTP/1 loop serves, so a drain can
// close the idle ones and wait for the others.
type h1Conns struct {
	mu       sync.Mutex
	conns    map[*h1ServerConn]struct{}
	draining bool
	done     chan struct{} // closed when the last one ends after a drain began
}

type h1ServerConn struct {
	c    net.Conn
	idle atomic.Bool
}

func (t *h1Conns) add(sc *h1ServerConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return false
	}
	if t.conns == nil {
		t.conns = map[*h1ServerConn]struct{}{}
	}
	t.conns[sc] = struct{}{}
	return true
}

func (t *h1Conns) remove(sc *h1ServerConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, sc)
	if len(t.conns) == 0 && t.done != nil {
		close(t.done)
		t.done = nil
	}
}

// drain refuses new connections, closes idle ones and waits for the
// others to finish their request, until ctx ends; then it closes them.
func (t *h1Conns) drain(ctx context.Context) error {
	t.mu.Lock()
	t.draining = true
	for sc := range t.conns {
		if sc.idle.Load() {
			_ = sc.c.Close()
		}
	}
	if len(t.conns) == 0 {
		t.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	t.done = done
	t.mu.Unlock()
	// A connection that went idle after the first pass is closed by its
	// loop, which checks for the drain before waiting again.
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for sc := range t.conns {
			_ = sc.c.Close()
		}
		t.mu.Unlock()
		return ctx.Err()
	}
}

func (t *h1Conns) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

// serveHTTP1 serves the HTTP/1 connection c (already guarded) until the
// client or the proxy closes it.
func (p *Proxy) serveHTTP1(c net.Conn, info connInfo) {
	sc := &h1ServerConn{c: c}
	if !p.h1conns.add(sc) {
		_ = c.Close()
		return
	}
	defer p.h1conns.remove(sc)
	br := h1Readers.Get().(*bufio.Reader)
	br.Reset(c)
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(c)
	hijacked := false
	defer func() {
		if !hijacked {
			_ = c.Close()
			br.Reset(nil)
			bw.Reset(nil)
			h1Readers.Put(br)
			h1Writers.Put(bw)
		}
	}()

	_ = c.SetReadDeadline(time.Now().Add(h1ReadHeaderTimeout))
	if head, err := br.Peek(len(http2Preface)); err == nil && string(head) == string(http2Preface) {
		// Prior-knowledge h2c: net/http's HTTP/2 server takes it, with the
		// bytes read so far.
		_ = c.SetReadDeadline(time.Time{})
		hijacked = true
		if !p.httpLn.push(&trackedConn{Conn: &bufferedConn{Conn: c, r: br}, info: info}) {
			_ = c.Close()
		}
		return
	}

	remote := c.RemoteAddr().String()
	ctx := context.WithValue(context.Background(), connInfoKey{}, &info)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	w := &h1Writer{conn: c, reader: br, bw: bw, header: make(http.Header, 8)}
	for first := true; ; first = false {
		if !first {
			sc.idle.Store(true)
			if p.h1conns.isDraining() {
				return
			}
			// One deadline covers the wait and the head: the guard
			// releases a request head only once all of it arrived, so
			// when the first byte is here the head is too.
			_ = c.SetReadDeadline(time.Now().Add(h1IdleTimeout))
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		req, err := http.ReadRequest(br)
		sc.idle.Store(false)
		if err != nil {
			// The guard answers framing violations itself when the
			// connection closes; what it let through and net/http still
			// refuses gets a plain 400.
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isTimeout(err) {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}
			return
		}
		if req.ContentLength != 0 || req.Header["Upgrade"] != nil {
			// The body (or an upgraded stream) may take any time.
			_ = c.SetReadDeadline(time.Time{})
		}
		req.RemoteAddr = remote
		req.TLS = info.tls
		req = req.WithContext(ctx)
		body := &h1ReqBody{ReadCloser: req.Body}
		if req.ProtoAtLeast(1, 1) && strings.EqualFold(req.Header.Get("Expect"), "100-continue") && req.ContentLength != 0 {
			body.w, body.continue100 = w, true
		}
		req.Body = body
		w.reset(req)
		if !p.serveOne(w, req) {
			return
		}
		if w.hijacked {
			hijacked = true
			return
		}
		if err := w.finish(); err != nil {
			return
		}
		if w.closeAfter || req.Close || p.h1conns.isDraining() {
			return
		}
		// What the handler left of the body is read and dropped to reach
		// the next request; an unread body behind "Expect: 100-continue"
		// was never sent, so the connection cannot continue.
		if body.continue100 && !body.started {
			return
		}
		if !body.eof {
			if n, _ := io.CopyN(io.Discard, body.ReadCloser, h1MaxDrain+1); n > h1MaxDrain {
				return
			}
		}
		_ = body.ReadCloser.Close()
	}
}

// serveOne runs the handler for one request. A panic in it ends the
// connection, never the process; http.ErrAbortHandler (ReverseProxy's way
// to abort a response it cannot finish) is not logged.
func (p *Proxy) serveOne(w *h1Writer, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler { //nolint:errorlint // compared as net/http does
				p.log.Error("handler panic", "panic", v, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	p.ServeHTTP(w, req)
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// h1ReqBody sends "100 Continue" when the handler first reads a body the
// client is holding back for it, and notes when the body ended.
type h1ReqBody struct {
	io.ReadCloser
	w           *h1Writer
	continue100 bool
	started     bool
	eof         bool
}

func (b *h1ReqBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		if b.continue100 && !b.w.wroteHeader {
			_, _ = b.w.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := b.w.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close leaves the rest of the body to the server loop, which drains it
// or closes the connection.
func (b *h1ReqBody) Close() error { return nil }

// bufferedConn replays bytes already read into r before reading c.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}

// h1Writer is the http.ResponseWriter of the HTTP/1 loop. Framing: the
// handler's Content-Length if it set one; no body for HEAD, 1xx, 204 and
// 304; otherwise chunked for HTTP/1.1 clients (with trailers) and
// delimited by closing the connection for HTTP/1.0 ones.
type h1Writer struct {
	conn        net.Conn
	reader      *bufio.Reader
	bw          *bufio.Writer
	header      http.Header
	req         *http.Request
	status      int
	wroteHeader bool
	hijacked    bool
	closeAfter  bool
	chunked     bool
	noBody      bool
	remaining   int64 // of a declared Content-Length; -1 when none
	trailers    []string
	err         error
}

func (w *h1Writer) reset(req *http.Request) {
	clear(w.header)
	*w = h1Writer{conn: w.conn, reader: w.reader, bw: w.bw, header: w.header, req: req, remaining: -1}
}

func (w *h1Writer) Header() http.Header { return w.header }

func (w *h1Writer) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response goes out at once; the final one follows.
		w.writeStatusLine(code)
		w.writeFields(w.header, nil)
		_, _ = w.bw.WriteString("\r\n")
		w.setErr(w.bw.Flush())
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.header
	req := w.req
	switch {
	case req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols:
		w.noBody = true
	}
	if code == http.StatusSwitchingProtocols {
		// Written now; the handler hijacks the connection next.
		w.writeStatusLine(code)
		w.writeFields(h, nil)
		_, _ = w.bw.WriteString("\r\n")
		return
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			h.Del("Content-Length")
		} else if !w.noBody {
			w.remaining = n
		}
	}
	delete(h, "Transfer-Encoding")
	if te := h["Trailer"]; len(te) > 0 {
		for _, v := range te {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	if !w.noBody && w.remaining < 0 && code != http.StatusNoContent {
		if req.ProtoAtLeast(1, 1) {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	}
	if (code == http.StatusNoContent || code == http.StatusNotModified || code < 200) && w.remaining >= 0 {
		h.Del("Content-Length")
		w.remaining = -1
	}
	// req.Close is ReadRequest's reading of the client's wish (HTTP/1.0
	// closes unless it asked for keep-alive); the request's Connection
	// field is gone by now, removed before forwarding.
	if connectionClose(h) || req.Close {
		w.closeAfter = true
	}
	w.writeStatusLine(code)
	extra := ""
	switch {
	case w.closeAfter:
		if !connectionClose(h) {
			extra = "Connection: close\r\n"
		}
	case !req.ProtoAtLeast(1, 1):
		extra = "Connection: keep-alive\r\n"
	}
	if w.chunked {
		extra += "Transfer-Encoding: chunked\r\n"
	}
	if _, ok := h["Date"]; !ok {
		extra += "Date: " + httpDate() + "\r\n"
	}
	w.writeFields(h, w.trailers)
	_, _ = w.bw.WriteString(extra)
	_, _ = w.bw.WriteString("\r\n")
}

func (w *h1Writer) writeStatusLine(code int) {
	if w.req.ProtoAtLeast(1, 1) {
		_, _ = w.bw.WriteString("HTTP/1.1 ")
	} else {
		_, _ = w.bw.WriteString("HTTP/1.0 ")
	}
	var num [3]byte
	_, _ = w.bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	_ = w.bw.WriteByte(' ')
	_, _ = w.bw.WriteString(http.StatusText(code))
	_, _ = w.bw.WriteString("\r\n")
}

// writeFields writes h as field lines, leaving out the trailer fields
// (and their prefixed form) and Connection's hop-by-hop companions that
// the writer sets itself. Values never contain CR or LF: they come from
// http.ReadResponse/ReadRequest or from configuration the proxy checked,
// and the guard below refuses them again.
func (w *h1Writer) writeFields(h http.Header, skip []string) {
	for k, vs := range h {
		if k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix) || contains(skip, k) {
			continue
		}
		for _, v := range vs {
			v = strings.TrimSpace(v)
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(k, "\r\n: ") {
				continue
			}
			_, _ = w.bw.WriteString(k)
			_, _ = w.bw.WriteString(": ")
			_, _ = w.bw.WriteString(v)
			_, _ = w.bw.WriteString("\r\n")
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func connectionClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "close") {
				return true
			}
		}
	}
	return false
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.remaining >= 0 {
		if int64(len(p)) > w.remaining {
			w.closeAfter = true
			return 0, http.ErrContentLength
		}
		w.remaining -= int64(len(p))
	}
	if w.chunked {
		var size [16]byte
		_, _ = w.bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		_, _ = w.bw.WriteString("\r\n")
	}
	n, err := w.bw.Write(p)
	if w.chunked {
		_, err = w.bw.WriteString("\r\n")
	}
	w.setErr(err)
	return n, err
}

// abort marks the response as failed: the connection closes without
// completing it.
func (w *h1Writer) abort() {
	// What was written goes out first: the client sees a response
	// shorter than its length, or chunks without the last one, which is
	// how HTTP/1.1 says a response failed.
	_ = w.bw.Flush()
	w.setErr(errAborted)
}

var errAborted = errors.New("response aborted")

func (w *h1Writer) setErr(err error) {
	if err != nil && w.err == nil {
		w.err, w.closeAfter = err, true
	}
}

// Flush sends what is buffered (ReverseProxy flushes streaming responses
// after each write).
func (w *h1Writer) Flush() { _ = w.FlushError() }

func (w *h1Writer) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	err := w.bw.Flush()
	w.setErr(err)
	return err
}

// Hijack hands the connection to the handler (ReverseProxy does so after
// a 101 for WebSocket): the loop ends and leaves it open.
func (w *h1Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if err := w.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	_ = w.conn.SetReadDeadline(time.Time{})
	return w.conn, bufio.NewReadWriter(w.reader, w.bw), nil
}

// finish completes the response: the header if none was written, the
// last chunk and trailers, and the flush. A response shorter than its
// Content-Length closes the connection, which is all the client can be
// told.
func (w *h1Writer) finish() error {
	if !w.wroteHeader {
		if _, ok := w.header["Content-Length"]; !ok {
			w.header["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		_, _ = w.bw.WriteString("0\r\n")
		tr := http.Header{}
		for _, k := range w.trailers {
			if vs, ok := w.header[k]; ok {
				tr[k] = vs
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && name != "" {
				tr[http.CanonicalHeaderKey(name)] = vs
			}
		}
		w.writeFields(tr, nil)
		_, _ = w.bw.WriteString("\r\n")
	}
	if w.remaining > 0 {
		w.closeAfter = true
	}
	err := w.bw.Flush()
	w.setErr(err)
	return err
}

var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	sec  int64
	text string
}

// httpDate is the Date field value for now, formatted once a second.
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &cachedDate{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}
