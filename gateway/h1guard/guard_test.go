package h1guard

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	first    = "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
	smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	closing  = "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
)

// TestServerAccepts sends valid requests to a real http.Server behind the
// guard and checks that every one is answered and handled exactly once.
func TestServerAccepts(t *testing.T) {
	ts := startServer(t, true, Options{}, nil)
	tests := map[string]struct {
		raw  string
		want []string // what the handler saw, in order
	}{
		"plain get": {
			raw:  "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			want: []string{"GET /a 0"},
		},
		"pipelined gets": {
			raw:  "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" + closing,
			want: []string{"GET /a 0", "GET /b 0", "GET /last 0"},
		},
		"post content-length": {
			raw:  "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + closing,
			want: []string{"POST /p 5", "GET /last 0"},
		},
		"chunked with extensions and trailers": {
			raw: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
				"5;name=val;flag\r\nhello\r\n6;q=\"a \\\"b\\\"\"\r\n world\r\n0;last\r\nX-Sum: 11\r\n\r\n" + closing,
			want: []string{"POST /c 11", "GET /last 0"},
		},
		"identical duplicate content-length": {
			raw:  "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + closing,
			want: []string{"POST /p 5", "GET /last 0"},
		},
		"empty line after post": {
			raw:  "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx\r\n" + closing,
			want: []string{"POST /p 1", "GET /last 0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := len(ts.rec.handled())
			rs := exchange(t, ts.addr, tc.raw)
			for _, r := range rs {
				if r.status != http.StatusOK {
					t.Fatalf("statuses %v, want all 200: %q", statuses(rs), r.body)
				}
			}
			if got := ts.rec.handled()[before:]; !slices.Equal(got, tc.want) {
				t.Fatalf("handled %q, want %q", got, tc.want)
			}
			if len(rs) != len(tc.want) {
				t.Fatalf("%d responses, want %d", len(rs), len(tc.want))
			}
		})
	}
	if r := ts.rec.rejected(); len(r) != 0 {
		t.Fatalf("rejections %q", r)
	}
}

// rejectCases are requests the guard must refuse. Each follows a valid
// request and most carry a second request that a parser disagreeing with the
// guard would see.
var rejectCases = map[string]struct {
	bad    string
	status int
}{
	"cl then te": {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te then cl": {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"cl differ":  {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled, 400},
	"cl +5":      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + smuggled, 400},
	"cl 0x5":     {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello" + smuggled, 400},
	"cl ' 5 5'":  {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:  5 5\r\n\r\nhello" + smuggled, 400},

	"te chunked, chunked": {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te gzip, chunked":    {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te tab chunked":      {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te chunked tab":      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te xchunked":         {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"te twice":            {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"http/1.0 with te":    {"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400},

	"chunk size -1":            {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n" + smuggled, 400},
	"chunk size 0x10":          {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n0123456789abcdef\r\n0\r\n\r\n" + smuggled, 400},
	"chunk size 1 0":           {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\n0123456789abcdef\r\n0\r\n\r\n" + smuggled, 400},
	"chunk size 17 digits":     {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n" + smuggled, 400},
	"chunk data without crlf":  {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n" + smuggled, 400},
	"obs-fold":                 {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + smuggled, 400},
	"obs-fold on te":           {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"space before colon":       {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400},
	"cr in value":              {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + smuggled, 400},
	"nul in value":             {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + smuggled, 400},
	"bare lf in value":         {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 5\r\n\r\nhello" + smuggled, 400},
	"bare lf line endings":     {"GET /a HTTP/1.1\nHost: x\n\n" + smuggled, 400},
	"oversized header section": {"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n" + smuggled, 431},
	"too many fields":          {"GET /a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n" + smuggled, 431},
}

// TestServerRejects sends each bad request behind a valid one to a real
// http.Server behind the guard. The valid request must be answered and
// handled, the bad one answered with the guard's status, the connection
// closed, and nothing after the valid request handled: no desync.
func TestServerRejects(t *testing.T) {
	for name, tc := range rejectCases {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, true, Options{}, nil)
			rs := exchange(t, ts.addr, first+tc.bad)
			if got, want := statuses(rs), []int{200, tc.status}; !slices.Equal(got, want) {
				t.Fatalf("statuses %v, want %v (responses %+v)", got, want, rs)
			}
			if got, want := ts.rec.handled(), []string{"GET /first 0"}; !slices.Equal(got, want) {
				t.Fatalf("handled %q, want %q", got, want)
			}
			if r := ts.rec.rejected(); len(r) != 1 || r[0]+"\n" != rs[1].body {
				t.Fatalf("OnReject got %q, response body %q", r, rs[1].body)
			}
		})
	}
}

// TestServerWithoutGuardSmuggles shows what the guard prevents: net/http on
// its own handles the request hidden in the content of a CL+TE request, which
// a front-end that honoured Content-Length never saw.
func TestServerWithoutGuardSmuggles(t *testing.T) {
	ts := startServer(t, false, Options{}, nil)
	c := dial(t, ts.addr)
	c.write(first + rejectCases["cl then te"].bad)
	for range 3 {
		if res, ok := c.read(); !ok || res.status != 200 {
			t.Fatalf("response %v %v", res, ok)
		}
	}
	if got := ts.rec.handled(); !slices.Contains(got, "GET /smuggled 0") {
		t.Fatalf("handled %q: expected net/http alone to handle the smuggled request", got)
	}
}

// TestServerRejectParksBackgroundRead pipelines a bad request behind a slow
// valid one. The guard finds the violation while the handler runs and
// net/http's background read is waiting; the valid request must complete with
// its context intact, then the rejection follows.
func TestServerRejectParksBackgroundRead(t *testing.T) {
	ts := startServer(t, true, Options{}, nil)
	c := dial(t, ts.addr)
	c.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + rejectCases["cl then te"].bad)
	ctx := <-ts.rec.slowIn
	g := <-ts.conns
	// net/http's background read reaches the guard after the violation
	// was found; an error there would cancel ctx.
	waitFor(t, "background read", func() bool { return g.parked.Load() > 0 || ctx.Err() != nil })
	close(ts.rec.slowGo)
	rs := c.readAll()
	if got, want := statuses(rs), []int{200, 400}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if rs[0].body != "ctx=<nil>" {
		t.Fatalf("slow handler saw %q, want an uncancelled context", rs[0].body)
	}
	if got, want := ts.rec.handled(), []string{"GET /slow"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
}

// TestServerRejectInDeliveredContent breaks the chunked framing of a request
// whose head net/http already has. The handler's body read must fail, the
// connection must close after the handler's answer, and nothing behind the
// violation may be handled; the guard adds no second response.
func TestServerRejectInDeliveredContent(t *testing.T) {
	ts := startServer(t, true, Options{}, nil)
	c := dial(t, ts.addr)
	c.write("POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	<-ts.rec.streamed
	c.write("zz\r\nabc\r\n0\r\n\r\n" + smuggled)
	rs := c.readAll()
	if len(rs) != 1 || rs[0].status != 400 || !strings.HasPrefix(rs[0].body, "body: ") {
		t.Fatalf("responses %v, want only the handler's 400 for its failed body read", rs)
	}
	if got, want := ts.rec.handled(), []string{"POST /stream 5"}; !slices.Equal(got, want) {
		t.Fatalf("handled %q, want %q", got, want)
	}
	if got := ts.rec.rejected(); !slices.Equal(got, []string{"invalid chunk-size"}) {
		t.Fatalf("rejections %q", got)
	}
}

// TestServerH2C checks that prior-knowledge HTTP/2 passes through the guard,
// next to HTTP/1.1 on the same port.
func TestServerH2C(t *testing.T) {
	ts := startServer(t, true, Options{}, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, body := range []string{"", "hello over h2"} {
		res, err := cl.Post("http://"+ts.addr+"/h2", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := "HTTP/2.0 POST /h2 " + strconv.Itoa(len(body)); res.StatusCode != 200 || string(got) != want {
			t.Fatalf("got %d %q, want 200 %q", res.StatusCode, got, want)
		}
	}
	rs := exchange(t, ts.addr, closing)
	if len(rs) != 1 || rs[0].body != "HTTP/1.1 GET /last 0" {
		t.Fatalf("HTTP/1.1 on the same port: %v", rs)
	}
	if r := ts.rec.rejected(); len(r) != 0 {
		t.Fatalf("rejections %q", r)
	}
}

// tunnelData is not HTTP/1.1: after a protocol switch it must pass.
const tunnelData = "\x00\x01binary\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\x7f\n"

// TestServerUpgrade checks that after a 101 the connection passes through:
// the hijacking handler echoes bytes that are not HTTP/1.1.
func TestServerUpgrade(t *testing.T) {
	for name, req := range map[string]string{
		"websocket style": "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
		"connect":         "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"behind a get":    first + "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, true, Options{}, nil)
			c := dial(t, ts.addr)
			c.write(req)
			if strings.HasPrefix(req, first) {
				if res, ok := c.read(); !ok || res.status != 200 {
					t.Fatalf("first response %v", res)
				}
			}
			// Read the switch response head by hand: after it the
			// stream is not HTTP.
			head := make([]byte, 0, 256)
			for !strings.HasSuffix(string(head), "\r\n\r\n") {
				b, err := c.br.ReadByte()
				if err != nil {
					t.Fatalf("read switch response: %v (got %q)", err, head)
				}
				head = append(head, b)
			}
			if !strings.HasPrefix(string(head), "HTTP/1.1 101 ") && !strings.HasPrefix(string(head), "HTTP/1.1 200 ") {
				t.Fatalf("switch response %q", head)
			}
			c.write(tunnelData)
			got := make([]byte, len(tunnelData))
			if _, err := io.ReadFull(c.br, got); err != nil {
				t.Fatalf("read echo: %v", err)
			}
			if string(got) != tunnelData {
				t.Fatalf("echo %q, want %q", got, tunnelData)
			}
			if r := ts.rec.rejected(); len(r) != 0 {
				t.Fatalf("rejections %q", r)
			}
		})
	}
}

// TestServerRefusedUpgrade checks that an Upgrade request the server refuses
// does not turn the guard off: what follows is still validated, whether it
// was sent after the refusal or pipelined behind the request.
func TestServerRefusedUpgrade(t *testing.T) {
	const refused = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: refuse\r\n\r\n"
	bad := rejectCases["cl then te"].bad
	t.Run("sequential", func(t *testing.T) {
		ts := startServer(t, true, Options{}, nil)
		c := dial(t, ts.addr)
		c.write(refused)
		if res, ok := c.read(); !ok || res.status != http.StatusForbidden {
			t.Fatalf("upgrade response %v", res)
		}
		c.write(bad)
		if got := statuses(c.readAll()); !slices.Equal(got, []int{400}) {
			t.Fatalf("statuses %v, want [400]", got)
		}
		if got, want := ts.rec.handled(), []string{"REFUSED /ws"}; !slices.Equal(got, want) {
			t.Fatalf("handled %q, want %q", got, want)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		ts := startServer(t, true, Options{}, nil)
		rs := exchange(t, ts.addr, first+refused+bad)
		if got, want := statuses(rs), []int{200, 403, 400}; !slices.Equal(got, want) {
			t.Fatalf("statuses %v, want %v", got, want)
		}
		if got, want := ts.rec.handled(), []string{"GET /first 0", "REFUSED /ws"}; !slices.Equal(got, want) {
			t.Fatalf("handled %q, want %q", got, want)
		}
	})
}

// TestUpgradeDecision drives the Upgrade handling without a server: the
// bytes behind an Upgrade request are held until the response status is
// written through the guard.
func TestUpgradeDecision(t *testing.T) {
	const up = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\n"
	read := func(g *Conn) (string, error) {
		buf := make([]byte, 4096)
		n, err := g.Read(buf)
		return string(buf[:n]), err
	}
	t.Run("switched", func(t *testing.T) {
		g := newConn(&memConn{data: []byte(up + tunnelData)}, Options{})
		if got, err := read(g); got != up || err != nil {
			t.Fatalf("read %q %v, want the upgrade request", got, err)
		}
		if _, err := g.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got, err := read(g); got != tunnelData || err != nil {
			t.Fatalf("read %q %v, want the tunnel bytes", got, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		g := newConn(&memConn{data: []byte(up + tunnelData)}, Options{})
		if got, err := read(g); got != up || err != nil {
			t.Fatalf("read %q %v, want the upgrade request", got, err)
		}
		if _, err := g.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got, err := read(g); got != "" || !errors.Is(err, io.EOF) {
			t.Fatalf("read %q %v, want io.EOF", got, err)
		}
		if g.Err() == nil {
			t.Fatal("no rejection")
		}
	})
	t.Run("background read waits", func(t *testing.T) {
		g := newConn(&memConn{data: []byte(okReq + up + tunnelData)}, Options{})
		if got, err := read(g); got != okReq || err != nil {
			t.Fatalf("read %q %v, want the first request only", got, err)
		}
		// A one-byte read must not get the upgrade request: the
		// response to the first request is not written yet.
		one := make([]byte, 1)
		if n, err := g.Read(one); n != 0 || err == nil {
			t.Fatalf("one-byte read got %d %v", n, err)
		}
		if _, err := g.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got, err := read(g); got != up || err != nil {
			t.Fatalf("read %q %v, want the upgrade request", got, err)
		}
		if _, err := g.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got, err := read(g); got != tunnelData || err != nil {
			t.Fatalf("read %q %v, want the tunnel bytes", got, err)
		}
	})
}

// TestCloseWritesRejection checks the response Close writes and that it is
// written once, and not for a violation inside delivered content.
func TestCloseWritesRejection(t *testing.T) {
	mc := &memConn{data: []byte(okReq + "GET / HTTP/1.1\r\nHost : a\r\n\r\n")}
	g := newConn(mc, Options{})
	out, _ := io.ReadAll(g)
	if string(out) != okReq {
		t.Fatalf("delivered %q", out)
	}
	if err := g.CloseWrite(); err == nil {
		t.Fatal("CloseWrite on a conn without it: want an error")
	}
	g.Close()
	want := "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n" +
		"Content-Length: 24\r\n\r\nwhitespace before colon\n"
	if got := mc.written.String(); got != want || !mc.closed {
		t.Fatalf("wrote %q (closed %v), want %q", got, mc.closed, want)
	}

	mc = &memConn{data: []byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), chunk: 1}
	g = newConn(mc, Options{})
	buf := make([]byte, 4096)
	if n, _ := g.Read(buf); n == 0 {
		t.Fatal("head not delivered")
	}
	mc.data = []byte("x\r\n")
	if n, err := g.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d %v, want io.EOF", n, err)
	}
	g.Close()
	if got := mc.written.String(); got != "" {
		t.Fatalf("wrote %q for a violation in delivered content", got)
	}
}

// TestWrapTLSState checks that a wrapped connection with TLS state keeps a
// ConnectionState method (so net/http sets Request.TLS) and that a plain one
// does not get one.
func TestWrapTLSState(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := Wrap(a, Options{}).(connectionStater); ok {
		t.Fatal("plain conn wrapped with a ConnectionState method")
	}
	w := Wrap(fakeTLS{a}, Options{})
	if _, ok := w.(connectionStater); !ok {
		t.Fatal("TLS conn wrapped without ConnectionState")
	}
	if Lookup(w) == nil || Lookup(a) != nil {
		t.Fatal("Lookup")
	}
}

type fakeTLS struct{ net.Conn }

func (fakeTLS) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
