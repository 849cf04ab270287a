package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTP1SmugglingIsRejected sends, through the proxy, request pairs
// that front ends and back ends have been known to frame differently.
// Each must get 400 (or 431) and a closed connection, and the request
// hidden behind it must never reach the endpoint.
func TestHTTP1SmugglingIsRejected(t *testing.T) {
	const hidden = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := map[string]struct {
		req  string
		want int
	}{
		"CL and TE":           {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, 400},
		"TE and CL":           {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + hidden, 400},
		"different CLs":       {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + hidden, 400},
		"bad chunk size":      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n" + hidden, 400},
		"chunk size with 0x":  {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + hidden, 400},
		"obs-fold":            {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + hidden, 400},
		"tab in TE":           {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + hidden, 400},
		"TE chunked, chunked": {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + hidden, 400},
		"space before colon":  {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello" + hidden, 400},
		"CR in a value":       {"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + hidden, 400},
		"bare LF":             {"GET / HTTP/1.1\nHost: x\n\n" + hidden, 400},
		"oversized header":    {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70000) + "\r\n\r\n" + hidden, 431},
		"HTTP/1.0 with TE":    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, 400},
	}
	h, b := abuseHarness(t)
	t.Run("cases", func(t *testing.T) {
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				before := b.requests.Load()
				c, err := net.Dial("tcp", h.httpAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, tc.req); err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no response: %v", err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
				}
				if resp2, err := http.ReadResponse(br, nil); err == nil {
					resp2.Body.Close()
					t.Fatal("a second response: the hidden request was handled")
				}
				if n := b.requests.Load() - before; n != 0 {
					t.Fatalf("%d requests reached the endpoint", n)
				}
			})
		}
	})
	// The metric counts the rejections by reason.
	if n := testutilCount(h.proxy.metrics.badRequests); n < len(cases) {
		t.Fatalf("bad-request metric counted %d of %d", n, len(cases))
	}
}
