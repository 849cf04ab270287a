package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// connCountingBackend counts the connections an endpoint accepts.
func connCountingBackend(t *testing.T, idle time.Duration, handler http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{Handler: handler, IdleTimeout: idle, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), &conns
}

func TestBodylessRequestsReuseConnectionsAndSurviveStaleOnes(t *testing.T) {
	addr, conns := connCountingBackend(t, 100*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
			return
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	})
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("b")}}}}
	h.configure(t, "1", vhosts, map[string][]string{"b": {addr}}, nil, "")
	client := &http.Client{Timeout: 5 * time.Second}
	do := func(method, path string) string {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+h.httpAddr+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, err)
		}
		return string(body)
	}
	for i := range 20 {
		if got := do("GET", "/a"); got != "GET /a" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests opened %d connections to the endpoint, want 1", n)
	}
	// The endpoint closes the idle connection; the next request finds it
	// stale and is sent again on a new one.
	time.Sleep(300 * time.Millisecond)
	if got := do("GET", "/after-idle"); got != "GET /after-idle" {
		t.Fatalf("after the endpoint closed the idle connection: %q", got)
	}
	// Connection: close is honoured: the request after it needs a new
	// connection (the pooled one carried /close); a body read to its end
	// keeps the connection; HEAD and DELETE take the same path.
	before := conns.Load()
	do("GET", "/close")
	do("GET", "/a")
	do("GET", "/a")
	if n := conns.Load() - before; n != 1 {
		t.Fatalf("a response with Connection: close was followed by %d new connections, want 1", n)
	}
	if got := do("DELETE", "/d"); got != "DELETE /d" {
		t.Fatalf("DELETE: %q", got)
	}
	if got := len(do("GET", "/big")); got != 1<<20 {
		t.Fatalf("big body: %d bytes", got)
	}
	req, _ := http.NewRequest("HEAD", "http://"+h.httpAddr+"/big", nil)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v", err)
	}
	resp.Body.Close()
	if got := do("GET", "/a"); got != "GET /a" {
		t.Fatalf("after HEAD: %q", got)
	}
}
