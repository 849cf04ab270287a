package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// startBackend serves h on 127.0.0.1 with net/http and returns its
// address.
func startBackend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawProxy configures the harness with one catch-all route to a cluster
// whose endpoint is addr, and returns a raw connection to the proxy.
func rawProxy(t *testing.T, addr string) (*harness, net.Conn, *bufio.Reader) {
	t.Helper()
	h := startProxy(t)
	h.configure(t, "1", []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("be")}}}},
		map[string][]string{"be": {addr}}, nil, "")
	c, err := net.DialTimeout("tcp", h.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return h, c, bufio.NewReader(c)
}

// rawResp is a response read whole off a raw connection.
type rawResp struct {
	StatusCode       int
	Header, Trailer  http.Header
	ContentLength    int64
	TransferEncoding []string
	Close            bool
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (rawResp, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return rawResp{resp.StatusCode, resp.Header, resp.Trailer, resp.ContentLength, resp.TransferEncoding, resp.Close}, string(body)
}

// TestHTTP1LoopFraming covers what the HTTP/1 server loop frames itself:
// pipelined requests answered in order, HEAD without a body, a streamed
// response chunked with its trailers, HTTP/1.0 without keep-alive closed
// after the response and with keep-alive kept open.
func TestHTTP1LoopFraming(t *testing.T) {
	addr := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part1;")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		default:
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "path="+r.URL.Path)
		}
	})
	_, c, br := rawProxy(t, addr)

	// Two requests in one write: answered in order on one connection.
	if _, err := io.WriteString(c, "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"path=/one", "path=/two"} {
		resp, body := readResponse(t, br, http.MethodGet)
		if resp.StatusCode != 200 || body != want || resp.Header.Get("Date") == "" {
			t.Fatalf("pipelined: %d %q (want %q), Date %q", resp.StatusCode, body, want, resp.Header.Get("Date"))
		}
	}

	// HEAD: the length of the GET, no body bytes (the next response
	// parses, so none were sent).
	_, _ = io.WriteString(c, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := readResponse(t, br, http.MethodHead); resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("path=/h")) {
		t.Fatalf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}

	// A streamed response: chunked, with the trailer the endpoint sent.
	_, _ = io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
	resp, body := readResponse(t, br, http.MethodGet)
	if body != "part1;part2" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("stream: %q TE %v trailer %v", body, resp.TransferEncoding, resp.Trailer)
	}

	// HTTP/1.0 with keep-alive stays open; without it, the proxy closes.
	_, _ = io.WriteString(c, "GET /ka HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := readResponse(t, br, http.MethodGet); body != "path=/ka" || resp.Close {
		t.Fatalf("HTTP/1.0 keep-alive: %q close=%v", body, resp.Close)
	}
	_, _ = io.WriteString(c, "GET /last HTTP/1.0\r\nHost: a\r\n\r\n")
	if _, body := readResponse(t, br, http.MethodGet); body != "path=/last" {
		t.Fatalf("HTTP/1.0: %q", body)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("HTTP/1.0 without keep-alive: connection still open (%d, %v)", n, err)
	}
}

// TestHTTP1LoopExpectContinue: the proxy sends "100 Continue" when it
// starts forwarding the body, and the body arrives.
func TestHTTP1LoopExpectContinue(t *testing.T) {
	addr := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, "got="+string(b))
	})
	_, c, br := rawProxy(t, addr)
	_, _ = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("want 100 Continue first, got %q (%v)", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("interim response not ended: %q", blank)
	}
	_, _ = io.WriteString(c, "hello")
	if resp, body := readResponse(t, br, http.MethodPost); resp.StatusCode != 200 || body != "got=hello" {
		t.Fatalf("after 100: %d %q", resp.StatusCode, body)
	}
}

// TestHTTP1LoopEndpointDiesMidBody: an endpoint that promises 1,000
// bytes and hangs up after 10 costs the client its connection (the
// response cannot be completed), not the proxy its life; the next
// connection is served.
func TestHTTP1LoopEndpointDiesMidBody(t *testing.T) {
	addr := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			_, _ = io.WriteString(w, "fine")
			return
		}
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	h, c, br := rawProxy(t, addr)
	_, _ = io.WriteString(c, "GET /die HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read head: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err == nil || len(got) >= 1000 {
		t.Fatalf("truncated response read as complete: %d bytes, %v", len(got), err)
	}
	c2, err := net.DialTimeout("tcp", h.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c2, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := readResponse(t, bufio.NewReader(c2), http.MethodGet); resp.StatusCode != 200 || body != "fine" {
		t.Fatalf("next connection: %d %q", resp.StatusCode, body)
	}
}

// TestHTTP1LoopDrainClosesIdleConnections: a drain closes keep-alive
// connections that wait for a request at once, and finishes in time.
func TestHTTP1LoopDrainClosesIdleConnections(t *testing.T) {
	addr := startBackend(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "x") })
	store := NewStore()
	p := New(Config{Store: store, Bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "http"}}, Logger: discardLogger(), DrainTimeout: 5 * time.Second})
	h := &harness{store: store, proxy: p}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for p.Addrs()["http"] == "" {
		if time.Now().After(deadline) {
			t.Fatal("no listener")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.httpAddr = p.Addrs()["http"]
	h.configure(t, "1", []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("be")}}}},
		map[string][]string{"be": {addr}}, nil, "")
	c, err := net.DialTimeout("tcp", h.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	readResponse(t, br, http.MethodGet)
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("drain waited %s for an idle connection", d)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("idle connection still open after the drain (%d, %v)", n, err)
	}
}
