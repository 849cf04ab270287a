package link

import (
	"io"
	"testing"
	"time"
)

func BenchmarkStreamThroughputQUIC(b *testing.B) { benchThroughput(b, TransportQUIC) }

func BenchmarkStreamThroughputTCP(b *testing.B) { benchThroughput(b, TransportTCP) }

// benchThroughput pushes b.N chunks of 64 KiB through one stream to a
// listener that discards them, and counts until the listener has read
// the last byte (it closes its side after EOF).
func benchThroughput(b *testing.B, transport string) {
	w := testWorld(b)
	cfg := ListenerConfig{Certificate: certFunc(w.east), Bundle: w.bundle, Logger: quietLogger()}
	if transport == TransportQUIC {
		cfg.UDPAddr = "127.0.0.1:0"
	} else {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	l, err := Listen(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = s.Close() }()
				_ = s.Accept()
				_, _ = io.Copy(io.Discard, s)
				_ = s.CloseWrite()
			}()
		}
	}()
	dcfg := dialerFor(b, l, transport)
	dcfg.KeepAlive, dcfg.IdleTimeout = time.Second, 10*time.Second
	d := startDialer(b, dcfg)
	waitUp(b, d, transport)
	c, err := d.Open(openCtx(b, 5*time.Second), "sink.test:9")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.(*Conn).CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		b.Fatal(err)
	}
}
