package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Client forwards bodyless HTTP/1.1 requests on the calling goroutine:
// it writes the request and reads the response head on a pooled
// connection itself, where http.Transport hands every request to a write
// goroutine and back from a read goroutine. Most requests in a mesh have
// no body (GET, HEAD, DELETE), and those hand-offs were the largest cost
// of a request through the proxy. The wire format is net/http's own
// (Request.Write, ReadResponse); only the connection handling is here.
// Requests with a body, upgrades and CONNECT go through http.Transport,
// which can write a body while it reads an early response.
type h1Client struct {
	dialer net.Dialer
	// dial, when set, makes connections instead of dialer (an HBONE
	// tunnel); its connections get no raw I/O.
	dial        func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle     int           // per endpoint
	idleTimeout time.Duration // an idle connection older than this is closed, not reused

	mu     sync.Mutex
	idle   map[string][]*h1Conn
	closed bool
}

type h1Conn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	addr     string
	reused   bool
	idleFrom time.Time
}

func newH1Client(local net.Addr) *h1Client {
	return &h1Client{
		dialer:      net.Dialer{Timeout: defaultConnectTimeout, KeepAlive: 30 * time.Second, LocalAddr: local},
		maxIdle:     256,
		idleTimeout: 60 * time.Second,
		idle:        map[string][]*h1Conn{},
	}
}

// eligible reports whether the fast path can carry req.
func (h *h1Client) eligible(req *http.Request, upgrade bool) bool {
	return !upgrade && req.Method != http.MethodConnect && (req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0
}

// RoundTrip sends req to req.URL.Host. A reused connection that turns out
// to be closed by the endpoint before answering is replaced once, as
// http.Transport does for requests that are safe to repeat.
func (h *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, err := h.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := h.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		_ = c.Close()
		if c.reused && attempt == 0 && errors.Is(err, errStaleConn) && isReplayable(req) {
			continue
		}
		return nil, err
	}
}

// errStaleConn: the endpoint closed the connection before sending a byte
// of the response (typically an idle keep-alive connection it timed out).
var errStaleConn = errors.New("connection closed before the response")

func isReplayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

func (h *h1Client) exchange(c *h1Conn, req *http.Request) (*http.Response, error) {
	// Cancellation (client gone, route or per-try timeout) interrupts any
	// blocked read or write on the connection.
	stop := context.AfterFunc(req.Context(), func() {
		if c.SetDeadline(time.Unix(1, 0)) != nil {
			// A connection without deadlines (a tunnel) is closed instead.
			_ = c.Close()
		}
	})
	if err := writeRequestHead(c.bw, req); err != nil {
		stop()
		return nil, h.wrapErr(req, err)
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, h.wrapErr(req, err)
	}
	if _, err := c.br.Peek(1); err != nil {
		stop()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errStaleConn
		}
		return nil, h.wrapErr(req, err)
	}
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			return nil, h.wrapErr(req, err)
		}
		// Interim responses (103 Early Hints and the like) are not
		// forwarded on this path; 101 never comes for a request that
		// asked for no upgrade, and is refused if it does.
		if resp.StatusCode >= 200 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			stop()
			return nil, errors.New("endpoint switched protocols without an upgrade request")
		}
	}
	resp.Body = &h1Body{ReadCloser: resp.Body, c: c, h: h, stop: stop, keep: !resp.Close && !req.Close}
	return resp, nil
}

// writeRequestHead writes a bodyless request as Request.Write would,
// with fewer copies: request line, Host, the fields (values with CR or LF
// get spaces, as Request.Write does; a field whose name is invalid is left
// out), "Content-Length: 0" where the method implies a body, and no
// default User-Agent.
func writeRequestHead(bw *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return errors.New("invalid Host header")
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	ruri := req.URL.RequestURI()
	if strings.ContainsAny(ruri, " \r\n") || !validMethod(method) {
		return errors.New("invalid request line")
	}
	_, _ = bw.WriteString(method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(ruri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue
			}
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(strings.TrimSpace(v))
			_, _ = bw.WriteString("\r\n")
		}
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		_, _ = bw.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return m != ""
}

func (h *h1Client) wrapErr(req *http.Request, err error) error {
	if ctxErr := req.Context().Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// h1Body returns the connection to the pool when the body was read to its
// end, and closes it otherwise (bytes of an unread body would be taken for
// the next response).
type h1Body struct {
	io.ReadCloser
	c      *h1Conn
	h      *h1Client
	stop   func() bool
	keep   bool
	eof    bool
	closed bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.eof {
		// The body's own Close would read the rest of it (possibly
		// forever); the connection cannot be reused anyway.
		_ = b.c.Close()
	}
	err := b.ReadCloser.Close()
	// stop reports false when the context was already cancelled: the
	// deadline may be set, so the connection cannot be reused.
	reusable := b.stop() && b.keep && b.eof && err == nil
	if reusable {
		b.h.put(b.c)
	} else {
		_ = b.c.Close()
	}
	return err
}

func (h *h1Client) get(ctx context.Context, addr string) (*h1Conn, error) {
	now := time.Now()
	h.mu.Lock()
	for {
		list := h.idle[addr]
		if len(list) == 0 {
			break
		}
		c := list[len(list)-1]
		h.idle[addr] = list[:len(list)-1]
		if now.Sub(c.idleFrom) > h.idleTimeout {
			_ = c.Close()
			continue
		}
		h.mu.Unlock()
		c.reused = true
		return c, nil
	}
	h.mu.Unlock()
	if h.dial != nil {
		nc, err := h.dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return &h1Conn{Conn: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 4<<10), addr: addr}, nil
	}
	nc, err := h.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc = rawConn(nc)
	return &h1Conn{Conn: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 4<<10), addr: addr}, nil
}

func (h *h1Client) put(c *h1Conn) {
	c.idleFrom = time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.idle[c.addr]) >= h.maxIdle || c.br.Buffered() > 0 {
		// Bytes after the response's end: the endpoint is not speaking
		// HTTP/1.1 keep-alive correctly; do not reuse.
		_ = c.Close()
		return
	}
	h.idle[c.addr] = append(h.idle[c.addr], c)
}

// CloseIdleConnections closes every pooled connection; connections
// returned later are closed too (the proxy is draining).
func (h *h1Client) CloseIdleConnections() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for addr, list := range h.idle {
		for _, c := range list {
			_ = c.Close()
		}
		delete(h.idle, addr)
	}
}
