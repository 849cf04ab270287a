package echo

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func get(tb testing.TB, c *http.Client, url string) *http.Response {
	tb.Helper()
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp
}

func decodeReport(tb testing.TB, resp *http.Response) HTTPReport {
	tb.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	var rep HTTPReport
	if err := json.Unmarshal(body, &rep); err != nil {
		tb.Fatalf("decode %q: %v", body, err)
	}
	return rep
}

func TestHTTPReport(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	base := "http://" + srv.addrs[0].String()

	req, err := http.NewRequest(http.MethodPost, base+"/a/b?x=1&y=two", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "web.demo.svc.clusterset.local"
	req.Header.Set("X-Test", "v1")
	req.Header.Add("X-Test", "v2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	for h, want := range map[string]string{
		HeaderPod:      testID.Pod,
		HeaderCluster:  testID.Cluster,
		"Content-Type": "application/json",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("response header %s = %q, want %q", h, got, want)
		}
	}
	rep := decodeReport(t, resp)
	want := HTTPReport{
		Pod: testID.Pod, Namespace: testID.Namespace, Cluster: testID.Cluster, Node: testID.Node, IP: testID.IP,
		Method: http.MethodPost, Path: "/a/b", Query: "x=1&y=two", Host: "web.demo.svc.clusterset.local",
		Proto: "HTTP/1.1", BodyBytes: 5,
	}
	gotHeaders, gotRemote := rep.Headers, rep.RemoteAddr
	rep.Headers, rep.RemoteAddr = nil, ""
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report = %+v\nwant     %+v", rep, want)
	}
	if got := gotHeaders.Values("X-Test"); len(got) != 2 || got[0] != "v1" || got[1] != "v2" {
		t.Errorf("headers[X-Test] = %q, want [v1 v2]", got)
	}
	if host, _, err := net.SplitHostPort(gotRemote); err != nil || host != "127.0.0.1" {
		t.Errorf("remoteAddr = %q, want 127.0.0.1:<port>", gotRemote)
	}
}

func TestHTTPUnencryptedHTTP2PriorKnowledge(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // Prior knowledge: the client never speaks HTTP/1.
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()

	resp := get(t, &http.Client{Transport: tr}, "http://"+srv.addrs[0].String()+"/h2")
	if resp.ProtoMajor != 2 {
		t.Errorf("response proto = %s, want HTTP/2.0", resp.Proto)
	}
	if rep := decodeReport(t, resp); rep.Proto != "HTTP/2.0" {
		t.Errorf("reported proto = %q, want HTTP/2.0", rep.Proto)
	}
}

func TestHTTPUpgradeH2CIsServedOverHTTP1(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	req, err := http.NewRequest(http.MethodGet, "http://"+srv.addrs[0].String()+"/up", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (no 101 switch)", resp.StatusCode)
	}
	if rep := decodeReport(t, resp); rep.Proto != "HTTP/1.1" {
		t.Errorf("reported proto = %q, want HTTP/1.1", rep.Proto)
	}
}

func TestHTTPControls(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	base := "http://" + srv.addrs[0].String() + "/c?"

	t.Run("status", func(t *testing.T) {
		resp := get(t, http.DefaultClient, base+"status=503")
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status = %d, want 503", resp.StatusCode)
		}
		if rep := decodeReport(t, resp); rep.Pod != testID.Pod {
			t.Errorf("503 body pod = %q, want %q", rep.Pod, testID.Pod)
		}
	})
	t.Run("status without body", func(t *testing.T) {
		resp := get(t, http.DefaultClient, base+"status=204")
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Errorf("got %d with %d body bytes, want 204 with none", resp.StatusCode, len(body))
		}
		if resp.Header.Get(HeaderPod) != testID.Pod {
			t.Errorf("204 lacks %s", HeaderPod)
		}
	})
	t.Run("delay", func(t *testing.T) {
		start := time.Now()
		resp := get(t, http.DefaultClient, base+"delay=150ms")
		resp.Body.Close()
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Errorf("response after %s, want at least the 150ms asked for", took)
		}
	})
	t.Run("size", func(t *testing.T) {
		for _, n := range []int{1, 32<<10 + 7, MaxSize} {
			resp := get(t, http.DefaultClient, base+"size="+strconv.Itoa(n))
			if resp.ContentLength < int64(n) {
				t.Errorf("size=%d: Content-Length %d, want at least %d", n, resp.ContentLength, n)
			}
			rep := decodeReport(t, resp) // Also proves the body is one JSON object.
			if len(rep.Padding) != n || strings.Trim(rep.Padding, "x") != "" {
				t.Errorf("size=%d: padding has %d bytes, want %d x's", n, len(rep.Padding), n)
			}
		}
	})
	t.Run("unrelated and malformed parameters are ignored", func(t *testing.T) {
		resp := get(t, http.DefaultClient, base+"foo=%zz&bar=1&status=201")
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("status = %d, want 201", resp.StatusCode)
		}
		if rep := decodeReport(t, resp); rep.Query != "foo=%zz&bar=1&status=201" {
			t.Errorf("query = %q, want it verbatim", rep.Query)
		}
	})
}

func TestHTTPBadControls(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	tests := map[string]struct{ query, wantMsg string }{
		"status below range":   {"status=199", "200 to 599"},
		"status above range":   {"status=600", "200 to 599"},
		"status not a number":  {"status=ok", `status "ok"`},
		"status twice":         {"status=200&status=500", "status given 2 times"},
		"delay without unit":   {"delay=200", `delay "200"`},
		"delay not a duration": {"delay=soon", `delay "soon"`},
		"delay negative":       {"delay=-1s", "from 0s to 30s"},
		"delay above cap":      {"delay=31s", "from 0s to 30s"},
		"size negative":        {"size=-1", "from 0 to 10485760"},
		"size above cap":       {"size=10485761", "from 0 to 10485760"},
		"size not a number":    {"size=1k", `size "1k"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp := get(t, http.DefaultClient, "http://"+srv.addrs[0].String()+"/?"+tc.query)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
			if !strings.Contains(string(body), tc.wantMsg) {
				t.Errorf("body = %q, want it to contain %q", body, tc.wantMsg)
			}
			if resp.Header.Get(HeaderPod) != testID.Pod {
				t.Errorf("400 lacks %s", HeaderPod)
			}
		})
	}
}

func TestHTTPRequestBodyLimit(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	url := "http://" + srv.addrs[0].String() + "/upload"

	resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(make([]byte, MaxRequestBody)))
	if err != nil {
		t.Fatal(err)
	}
	if rep := decodeReport(t, resp); rep.BodyBytes != MaxRequestBody {
		t.Errorf("bodyBytes = %d, want %d", rep.BodyBytes, MaxRequestBody)
	}

	resp, err = http.Post(url, "application/octet-stream", bytes.NewReader(make([]byte, MaxRequestBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413 for a body over the limit", resp.StatusCode)
	}
}

func TestWebSocketEcho(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// On success Dial owns the connection and leaves resp.Body nil.
	c, resp, err := websocket.Dial(ctx, "ws://"+srv.addrs[0].String()+WebSocketPath, nil) //nolint:bodyclose // Nothing to close.
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = c.CloseNow() }()
	if resp.Header.Get(HeaderPod) != testID.Pod {
		t.Errorf("handshake lacks %s", HeaderPod)
	}
	c.SetReadLimit(-1)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello, mesh")},
		{websocket.MessageBinary, []byte{0, 1, 2, 255}},
		{websocket.MessageBinary, bytes.Repeat([]byte("big"), 100<<10)},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatalf("write: %v", err)
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Errorf("echo = %v of %d bytes, want %v of %d bytes", typ, len(data), m.typ, len(m.data))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestWebSocketGoingAwayOnStop(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+srv.addrs[0].String()+WebSocketPath, nil) //nolint:bodyclose // See TestWebSocketEcho.
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = c.CloseNow() }()

	// The client keeps reading, as a real one would, so it answers the
	// server's close frame and the handshake completes.
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		readErr <- err
	}()
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil", err)
	}
	if got := websocket.CloseStatus(<-readErr); got != websocket.StatusGoingAway {
		t.Errorf("close status = %v, want StatusGoingAway", got)
	}
}

func BenchmarkHTTPEcho(b *testing.B) {
	b.Run("handler", func(b *testing.B) {
		s := newHTTPServer(nil, testID, slog.New(slog.DiscardHandler))
		req := httptest.NewRequest(http.MethodGet, "http://echo/bench?x=1", nil)
		req.Header.Set("User-Agent", "bench")
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
	for _, proto := range []string{"http1", "h2c"} {
		b.Run("loopback-"+proto, func(b *testing.B) {
			srv := startServer(b, Config{Listeners: listeners(ProtocolHTTP)})
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			if proto == "h2c" {
				tr.Protocols = new(http.Protocols)
				tr.Protocols.SetUnencryptedHTTP2(true)
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + srv.addrs[0].String() + "/bench?x=1"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
