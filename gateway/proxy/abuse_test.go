package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// countingBackend answers 200 and counts requests and any header named
// Injected (which would mean a header value was split into two).
type countingBackend struct {
	addr     string
	requests atomic.Int64
	injected atomic.Int64
}

func startCounting(t *testing.T) *countingBackend {
	t.Helper()
	b := &countingBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		if r.Header.Get("Injected") != "" {
			b.injected.Add(1)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

func abuseHarness(t *testing.T) (*harness, *countingBackend) {
	t.Helper()
	b := startCounting(t)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("b")}}}}
	h.configure(t, "1", vhosts, map[string][]string{"b": {b.addr}}, nil, "")
	return h, b
}

// h2conn opens a prior-knowledge HTTP/2 connection with a raw framer.
func h2conn(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

func headerBlock(fields ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return buf.Bytes()
}

// readUntil reads frames until f returns true, the connection ends, or
// the deadline passes. It returns whether f matched and the error that
// ended reading.
func readUntil(c net.Conn, fr *http2.Framer, d time.Duration, f func(http2.Frame) bool) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return false, err
		}
		if f(frame) {
			return true, nil
		}
	}
}

// TestHTTP2RapidResetIsBounded sends many requests, each cancelled at
// once (CVE-2023-44487). The proxy must not do unbounded work: it may
// close the connection, and afterwards it still serves and its goroutines
// return to where they were.
func TestHTTP2RapidResetIsBounded(t *testing.T) {
	h, b := abuseHarness(t)
	before := runtime.NumGoroutine()
	c, fr := h2conn(t, h.httpAddr)
	// Drain whatever the server sends so its writes never block.
	go func() {
		_, _ = readUntil(c, http2.NewFramer(io.Discard, c), 30*time.Second, func(http2.Frame) bool { return false })
	}()
	const n = 20000
	block := headerBlock(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	sent := 0
	for i := range n {
		id := uint32(2*i + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	c.Close()
	t.Logf("rapid reset: %d streams sent, %d reached the endpoint", sent, b.requests.Load())
	if got := b.requests.Load(); got > n/2 {
		t.Fatalf("%d of %d cancelled streams were forwarded", got, sent)
	}
	// Still serving.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	code, _, _ := get(t, client, "http://"+h.httpAddr+"/", "x", nil)
	if code != 200 {
		t.Fatalf("after the flood: %d", code)
	}
	// Idle upstream connections are kept for reuse; they are not work
	// left over from the flood.
	h.proxy.h1.CloseIdleConnections()
	h.proxy.h2.CloseIdleConnections()
	h.proxy.h1fast.CloseIdleConnections()
	waitGoroutines(t, before)
}

// TestHTTP2ContinuationFloodIsBounded sends one header block that never
// ends (CONTINUATION frames forever). The proxy must cut the connection
// once the header list exceeds its limit, long before memory grows.
func TestHTTP2ContinuationFloodIsBounded(t *testing.T) {
	h, b := abuseHarness(t)
	c, fr := h2conn(t, h.httpAddr)
	block := headerBlock(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	junk := headerBlock("x-junk", strings.Repeat("a", 8000))
	var written int
	var writeErr error
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for written < 64<<20 {
		if writeErr = fr.WriteContinuation(1, false, junk); writeErr != nil {
			break
		}
		written += len(junk)
	}
	if writeErr == nil {
		t.Fatalf("the proxy accepted %d MiB of one header block without closing the connection", written>>20)
	}
	t.Logf("connection cut after %d KiB of CONTINUATION frames: %v", written>>10, writeErr)
	if written > 8<<20 {
		t.Fatalf("connection cut only after %d KiB", written>>10)
	}
	if got := b.requests.Load(); got != 0 {
		t.Fatalf("%d requests reached the endpoint", got)
	}
}

// TestHTTP2HeaderInjectionIsRefused sends header values with CR, LF and
// NUL over HTTP/2, where HPACK can carry them. Forwarded to an HTTP/1
// endpoint they would split into two headers (or two requests); the proxy
// must refuse them (RFC 9113 §8.2.1: a malformed request, answered with a
// stream error or 400) and forward nothing.
func TestHTTP2HeaderInjectionIsRefused(t *testing.T) {
	for name, value := range map[string]string{
		"CRLF": "a\r\nInjected: 1",
		"LF":   "a\nInjected: 1",
		"CR":   "a\rInjected: 1",
		"NUL":  "a\x00b",
	} {
		t.Run(name, func(t *testing.T) {
			h, b := abuseHarness(t)
			c, fr := h2conn(t, h.httpAddr)
			block := headerBlock(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/", "x-evil", value)
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			var status string
			refused, err := readUntil(c, fr, 5*time.Second, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.RSTStreamFrame:
					return f.StreamID == 1
				case *http2.GoAwayFrame:
					return true
				case *http2.MetaHeadersFrame:
					for _, hf := range f.Fields {
						if hf.Name == ":status" {
							status = hf.Value
						}
					}
					return f.StreamID == 1
				}
				return false
			})
			if err != nil && !errors.Is(err, io.EOF) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("no answer to a malformed request")
				}
			}
			if !refused && err == nil {
				t.Fatal("stream neither answered nor reset")
			}
			if status != "" && status != "400" {
				t.Fatalf("malformed request answered %s", status)
			}
			if b.requests.Load() != 0 || b.injected.Load() != 0 {
				t.Fatalf("malformed request forwarded (%d requests, %d injected)", b.requests.Load(), b.injected.Load())
			}
		})
	}
}

func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+20 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("goroutines stay at %d (baseline %d)", n, baseline)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func testutilCount(c interface {
	Collect(chan<- prometheus.Metric)
}) int {
	ch := make(chan prometheus.Metric, 100)
	go func() { c.Collect(ch); close(ch) }()
	total := 0
	for m := range ch {
		var pb dto.Metric
		_ = m.Write(&pb)
		total += int(pb.GetCounter().GetValue())
	}
	return total
}
