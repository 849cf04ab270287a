/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package link

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/test/delayrelay"
)

// The paths the benchmarks compare: a stream over a QUIC link, over a
// TCP+TLS (HTTP/2) link, and a plain TCP connection to the same
// destination through the same delay.
const (
	pathDirect = "direct"
	pathTCP    = "tcp-tls"
	pathQUIC   = "quic"
)

// benchPaths is the order sub-benchmarks run in: the ratios' baselines
// first.
var benchPaths = []string{pathDirect, pathTCP, pathQUIC}

// benchRTTs are the round-trip times measured: loopback, and a WAN-like
// 20 ms through a delay relay.
var benchRTTs = []time.Duration{0, 20 * time.Millisecond}

// benchEnv is one RTT's world, shared by sub-benchmarks: a sink and an
// echo server (the destination endpoints), a link listener relaying to
// them as a gateway does, and established QUIC and TCP+TLS links to it.
// With a non-zero RTT every path crosses a delay relay (RTT/2 each way);
// the listener's hop to the destination stays local, as in a cluster.
type benchEnv struct {
	rtt        time.Duration
	sink, echo string // the destinations, as the listener reaches them
	// directSink and directEcho are what the direct path dials.
	directSink, directEcho string
	// linkUDP and linkTCP are what link dialers dial.
	linkUDP, linkTCP string
	links            map[string]*Dialer
	// pathRTT is the round-trip time of the path as measured: a byte
	// echoed over an established TCP connection to the echo server
	// through the same delay (the median of several). The relay adds
	// its own fraction of a millisecond to the nominal rtt.
	pathRTT time.Duration
}

func newBenchEnv(b *testing.B, rtt time.Duration) *benchEnv {
	b.Helper()
	e := &benchEnv{rtt: rtt, sink: startSink(b), echo: startEcho(b), links: map[string]*Dialer{}}
	l := startListener(b, ListenerConfig{KeepAlive: time.Second, IdleTimeout: 3 * time.Second, HandshakeTimeout: 5 * time.Second})
	e.linkUDP, e.linkTCP = l.UDPAddr().String(), l.TCPAddr().String()
	e.directSink, e.directEcho = e.sink, e.echo
	if rtt > 0 {
		e.directSink = startDelayRelay(b, delayrelay.Config{TCPTarget: e.sink, Delay: rtt / 2})
		e.directEcho = startDelayRelay(b, delayrelay.Config{TCPTarget: e.echo, Delay: rtt / 2})
		e.linkUDP = startDelayRelay(b, delayrelay.Config{UDPTarget: e.linkUDP, Delay: rtt / 2})
		e.linkTCP = startDelayRelay(b, delayrelay.Config{TCPTarget: e.linkTCP, Delay: rtt / 2})
	}
	for _, path := range []string{pathQUIC, pathTCP} {
		d := startDialer(b, e.dialerConfig(b, path))
		waitUp(b, d, transportOf(path))
		e.links[path] = d
	}
	e.pathRTT = measureRTT(b, e.directEcho)
	return e
}

// measureRTT is the median time to echo a byte over an established TCP
// connection to the echo server at addr.
func measureRTT(b *testing.B, addr string) time.Duration {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	p := []byte{1}
	rtts := make([]time.Duration, 0, 21)
	for i := range 22 {
		start := time.Now()
		if _, err := c.Write(p); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, p); err != nil {
			b.Fatal(err)
		}
		if i > 0 { // the first exchange pays for the connect
			rtts = append(rtts, time.Since(start))
		}
	}
	return median(rtts)
}

// dialerConfig is a west gateway dialer towards the env's listener over
// path's transport only, with the gateway's default timers.
func (e *benchEnv) dialerConfig(b *testing.B, path string) DialerConfig {
	w := testWorld(b)
	cfg := DialerConfig{
		Name:             "east",
		Certificate:      certFunc(w.west),
		Bundle:           w.bundle,
		ExpectPeer:       ExpectID(eastID),
		HandshakeTimeout: 5 * time.Second,
		IdleTimeout:      3 * time.Second,
		KeepAlive:        time.Second,
		Logger:           quietLogger(),
	}
	if path == pathQUIC {
		cfg.UDPAddr = e.linkUDP
	} else {
		cfg.TCPAddr = e.linkTCP
	}
	return cfg
}

func transportOf(path string) string {
	if path == pathQUIC {
		return TransportQUIC
	}
	return TransportTCP
}

// open opens a connection to the sink (echo false) or the echo server
// over path: on a link with OpenEarly, or with Open (which waits for the
// peer's verdict) when verdictFirst.
func (e *benchEnv) open(ctx context.Context, path string, echo, verdictFirst bool) (net.Conn, error) {
	if path == pathDirect {
		addr := e.directSink
		if echo {
			addr = e.directEcho
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || e.rtt == 0 {
			return c, err
		}
		// The relay's kernel completes the handshake at once; a connect
		// across the WAN takes a round trip (the relay holds early bytes
		// accordingly, so waiting here only moves that round trip into
		// the open, where it belongs).
		t := time.NewTimer(e.rtt)
		defer t.Stop()
		select {
		case <-t.C:
			return c, nil
		case <-ctx.Done():
			_ = c.Close()
			return nil, context.Cause(ctx)
		}
	}
	dst := e.sink
	if echo {
		dst = e.echo
	}
	if verdictFirst {
		return e.links[path].Open(ctx, dst)
	}
	return e.links[path].OpenEarly(ctx, dst)
}

func startDelayRelay(b *testing.B, cfg delayrelay.Config) string {
	b.Helper()
	r, err := delayrelay.New(cfg)
	if err != nil {
		b.Fatalf("delay relay: %v", err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r.Addr()
}

// startSink starts a TCP server that reads until EOF, then answers the
// byte count (8 bytes, big endian) and closes.
func startSink(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				buf := make([]byte, 64<<10)
				var n int64
				for {
					m, err := c.Read(buf)
					n += int64(m)
					if err != nil {
						if errors.Is(err, io.EOF) {
							_ = binary.Write(c, binary.BigEndian, n)
						}
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// send writes chunks chunks of buf to a sink connection, half-closes and
// checks the sink's count.
func send(c net.Conn, buf []byte, chunks int) error {
	for range chunks {
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return fmt.Errorf("half-close: %w", err)
	}
	var got int64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil {
		return fmt.Errorf("read the sink's count: %w", err)
	}
	if want := int64(chunks) * int64(len(buf)); got != want {
		return fmt.Errorf("sink received %d bytes, want %d", got, want)
	}
	return nil
}

// figures keeps each sub-benchmark's last figure (the run with the
// largest b.N, which is the one the framework reports), for ratios and
// the goal summaries. A figure missing (a sub-benchmark filtered out)
// leaves its goal unreported.
type figures struct {
	mu sync.Mutex
	m  map[string]float64
}

var benchFigures = figures{m: map[string]float64{}}

func (f *figures) set(key string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[key] = v
}

func (f *figures) get(key string) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	return v, ok
}

// figureKey names a figure: what, the RTT, and the rest of its
// sub-benchmark's name.
func figureKey(what string, rtt time.Duration, parts ...string) string {
	return strings.Join(append([]string{what, rttName(rtt)}, parts...), "/")
}

func rttName(rtt time.Duration) string { return fmt.Sprintf("rtt=%dms", rtt.Milliseconds()) }

// median returns the median of ds, which it sorts.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// goal prints one summary line: what was measured, the goal, and PASS or
// MISS. A missed goal is reported, never a failure: the figures depend
// on the machine.
func goal(what, measured, goal string, ok bool) {
	verdict := "MISS"
	if ok {
		verdict = "PASS"
	}
	fmt.Fprintf(os.Stdout, "goal: %s: %s; goal %s: %s\n", what, measured, goal, verdict)
}
