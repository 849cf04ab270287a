package h1guard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// memConn is a net.Conn that reads from a byte slice, at most chunk bytes
// per Read, and records what is written to it.
type memConn struct {
	data    []byte
	chunk   int
	written strings.Builder
	closed  bool
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data))
	if c.chunk > 0 {
		n = min(n, c.chunk)
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) { return c.written.Write(p) }
func (c *memConn) Close() error                { c.closed = true; return nil }
func (*memConn) LocalAddr() net.Addr           { return &net.TCPAddr{} }
func (*memConn) RemoteAddr() net.Addr          { return &net.TCPAddr{} }
func (*memConn) SetDeadline(time.Time) error   { return nil }
func (*memConn) SetReadDeadline(time.Time) error {
	return nil
}
func (*memConn) SetWriteDeadline(time.Time) error { return nil }

// pump reads everything a guard over in delivers, with reads of readSize
// bytes and the underlying conn returning at most chunk bytes per read.
func pump(in []byte, chunk, readSize int, opts Options) ([]byte, *Conn) {
	g := newConn(&memConn{data: in, chunk: chunk}, opts)
	var out []byte
	buf := make([]byte, readSize)
	for {
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, g
		}
	}
}

// recorder is the test handler: it reads the body and answers
// "METHOD path bodylen", recording the same line. Paths with special
// behaviour are documented at their cases.
type recorder struct {
	mu      sync.Mutex
	seen    []string
	rejects []string

	// slowIn receives the context of /slow when it starts; slowGo
	// releases it.
	slowIn chan context.Context
	slowGo chan struct{}
	// streamed is signalled when /stream has read its first body bytes.
	streamed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{
		slowIn:   make(chan context.Context, 1),
		slowGo:   make(chan struct{}),
		streamed: make(chan struct{}, 1),
	}
}

func (rec *recorder) add(s string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.seen = append(rec.seen, s)
}

func (rec *recorder) handled() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

func (rec *recorder) onReject(reason string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.rejects = append(rec.rejects, reason)
}

func (rec *recorder) rejected() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.rejects...)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		rec.add("CONNECT " + r.Host)
		// A tunnel: 200, then echo.
		hijackEcho(w, "HTTP/1.1 200 Connection established\r\n\r\n")
		return
	case r.Header.Get("Upgrade") == "echo":
		rec.add("UPGRADE " + r.URL.Path)
		hijackEcho(w, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		return
	case r.Header.Get("Upgrade") == "refuse":
		rec.add("REFUSED " + r.URL.Path)
		http.Error(w, "no upgrade", http.StatusForbidden)
		return
	case r.URL.Path == "/slow":
		// Waits for the test, then reports whether its context survived.
		rec.slowIn <- r.Context()
		<-rec.slowGo
		rec.add("GET /slow")
		fmt.Fprintf(w, "ctx=%v", r.Context().Err())
		return
	case r.URL.Path == "/stream":
		buf := make([]byte, 5)
		n, err := io.ReadFull(r.Body, buf)
		if err == nil {
			rec.streamed <- struct{}{}
			var m int64
			m, err = io.Copy(io.Discard, r.Body)
			n += int(m)
		}
		rec.add(fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, n))
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, n)
		return
	}
	n, err := io.Copy(io.Discard, r.Body)
	rec.add(fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, n))
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s %d", r.Proto, r.Method, r.URL.Path, n)
}

func hijackEcho(w http.ResponseWriter, status string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	if _, err := brw.WriteString(status); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	buf := make([]byte, 512)
	for {
		n, err := brw.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

type testServer struct {
	addr string
	rec  *recorder
	srv  *http.Server
	// conns receives the guard of each new connection.
	conns chan *Conn
}

// startServer runs a real http.Server on 127.0.0.1 behind the guard (or
// without it when guarded is false).
func startServer(t testing.TB, guarded bool, opts Options, configure func(*http.Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), rec: newRecorder(), conns: make(chan *Conn, 16)}
	if opts.OnReject == nil {
		opts.OnReject = ts.rec.onReject
	}
	ts.srv = &http.Server{
		Handler:  ts.rec,
		ErrorLog: log.New(io.Discard, "", 0),
		ConnState: func(c net.Conn, s http.ConnState) {
			if g := Lookup(c); g != nil && s == http.StateNew {
				select {
				case ts.conns <- g:
				default:
				}
			}
		},
	}
	if configure != nil {
		configure(ts.srv)
	}
	if guarded {
		ln = NewListener(ln, opts)
	}
	go func() { _ = ts.srv.Serve(ln) }() // ErrServerClosed once the cleanup closes it
	t.Cleanup(func() { ts.srv.Close() })
	return ts
}

// response is one response read by a raw client.
type response struct {
	status int
	body   string
}

// client is a raw TCP client that writes byte-exact requests.
type client struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response; ok is false at a clean end of stream.
func (c *client) read() (response, bool) {
	c.t.Helper()
	if _, err := c.br.Peek(1); errors.Is(err, io.EOF) {
		return response{}, false
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.t.Fatalf("read response body: %v", err)
	}
	return response{status: res.StatusCode, body: string(body)}, true
}

// readAll reads responses until the server closes the connection, and fails
// the test if it does not close it.
func (c *client) readAll() []response {
	c.t.Helper()
	var out []response
	for {
		res, ok := c.read()
		if !ok {
			return out
		}
		out = append(out, res)
	}
}

// exchange sends raw on a new connection and reads every response until the
// server closes the connection.
func exchange(t testing.TB, addr, raw string) []response {
	t.Helper()
	c := dial(t, addr)
	c.write(raw)
	return c.readAll()
}

func statuses(rs []response) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.status
	}
	return out
}
