package h1guard

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const benchReq = "GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: causeway-bench/1\r\n" +
	"Accept: */*\r\nAccept-Encoding: gzip\r\nX-Request-Id: 0123456789abcdef\r\n\r\n"

// BenchmarkGuardKeepAlive measures requests per second through a real
// http.Server on loopback, with and without the guard, over keep-alive
// connections (one per parallel client). allocs/op counts the whole process,
// client included; the difference between the two is the guard's.
func BenchmarkGuardKeepAlive(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "plain"
		if guarded {
			name = "guard"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			if guarded {
				ln = NewListener(ln, Options{})
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			})}
			go func() { _ = srv.Serve(ln) }() // ErrServerClosed once closed
			defer srv.Close()
			addr := ln.Addr().String()

			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
					b.Error(err)
					return
				}
				br := bufio.NewReader(conn)
				for pb.Next() {
					if _, err := io.WriteString(conn, benchReq); err != nil {
						b.Error(err)
						return
					}
					res, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err != nil {
						b.Error(err)
						return
					}
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// loopConn replays data forever.
type loopConn struct {
	memConn
	data []byte
	off  int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off = (c.off + n) % len(c.data)
	return n, nil
}

// BenchmarkGuardScan measures the guard alone: Read over an in-memory
// connection that replays pipelined requests, with net/http's 4 KiB buffer.
// One op is one request.
func BenchmarkGuardScan(b *testing.B) {
	cases := map[string]string{
		"get": benchReq,
		"post-chunked": "POST /bench HTTP/1.1\r\nHost: bench.example\r\nTransfer-Encoding: chunked\r\n" +
			"Content-Type: application/json\r\n\r\n" + "40\r\n" + strings.Repeat("x", 64) + "\r\n0\r\n\r\n",
		"post-1k": "POST /bench HTTP/1.1\r\nHost: bench.example\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024),
	}
	for name, req := range cases {
		b.Run(name, func(b *testing.B) {
			// Whole requests per 4 KiB read, as a busy pipelining client
			// would send them; a request split across reads is the rarer
			// slow path (a copy).
			data := []byte(strings.Repeat(req, 4096/len(req)))
			g := newConn(&loopConn{data: data}, Options{})
			buf := make([]byte, len(data))
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			b.ResetTimer()
			need := int64(b.N) * int64(len(req))
			for got := int64(0); got < need; {
				n, err := g.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				got += int64(n)
			}
		})
	}
}
