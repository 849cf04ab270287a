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

package delayrelay

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRTTMatchesDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), TCPTarget: startTCPEcho(t), Delay: delay})

	t.Run("udp", func(t *testing.T) {
		c := dialUDP(t, r.Addr())
		rtts := make([]time.Duration, 0, 10)
		for i := range 10 {
			start := time.Now()
			if got := udpPing(t, c, []byte{byte(i)}, time.Second); got[0] != byte(i) {
				t.Fatalf("ping %d answered %d", i, got[0])
			}
			rtts = append(rtts, time.Since(start))
		}
		checkRTT(t, rtts, 2*delay)
	})
	t.Run("tcp", func(t *testing.T) {
		// A new connection's first exchange pays for the connect's round
		// trip too.
		firsts := make([]time.Duration, 0, 5)
		var c *net.TCPConn
		for range 5 {
			start := time.Now()
			c = dialTCP(t, r.Addr())
			if got := tcpPing(t, c, 0); got != 0 {
				t.Fatalf("first ping answered %d", got)
			}
			firsts = append(firsts, time.Since(start))
		}
		checkRTT(t, firsts, 4*delay)
		rtts := make([]time.Duration, 0, 10)
		for i := range 10 {
			start := time.Now()
			if got := tcpPing(t, c, byte(i)); got != byte(i) {
				t.Fatalf("ping %d answered %d", i, got)
			}
			rtts = append(rtts, time.Since(start))
		}
		checkRTT(t, rtts, 2*delay)
	})
	t.Run("set delay", func(t *testing.T) {
		r.SetDelay(5 * time.Millisecond)
		if r.Delay() != 5*time.Millisecond {
			t.Fatalf("Delay() = %s after SetDelay(5ms)", r.Delay())
		}
		c := dialUDP(t, r.Addr())
		rtts := make([]time.Duration, 0, 10)
		for i := range 10 {
			start := time.Now()
			udpPing(t, c, []byte{byte(i)}, time.Second)
			rtts = append(rtts, time.Since(start))
		}
		checkRTT(t, rtts, 10*time.Millisecond)
	})
}

// checkRTT asserts that every sample is at least want (the relay never
// delivers early) and that the median is within want + 20 ms (timers and
// a loaded machine add a little).
func checkRTT(t *testing.T, rtts []time.Duration, want time.Duration) {
	t.Helper()
	slices.Sort(rtts)
	if rtts[0] < want {
		t.Errorf("fastest round trip %s, below the configured %s", rtts[0], want)
	}
	med := rtts[len(rtts)/2]
	if med >= want+20*time.Millisecond {
		t.Errorf("median round trip %s, want [%s, %s); all: %v", med, want, want+20*time.Millisecond, rtts)
	}
	t.Logf("round trips: min %s, median %s, max %s (configured %s)", rtts[0], med, rtts[len(rtts)-1], want)
}

func TestOrderKeptWhenDelayShrinks(t *testing.T) {
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), TCPTarget: startTCPEcho(t), Delay: 100 * time.Millisecond})
	u := dialUDP(t, r.Addr())
	tc := dialTCP(t, r.Addr())
	tcpPing(t, tc, 0)
	// Half the datagrams and bytes leave with 100 ms of delay, the rest
	// with none: without care the later ones would overtake.
	for i := range 20 {
		if i == 10 {
			r.SetDelay(0)
		}
		if _, err := u.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		got, err := readUDP(u, time.Second)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if got[0] != byte(i) {
			t.Fatalf("datagram %d came back as number %d: reordered", i, got[0])
		}
	}
	got := make([]byte, 20)
	_ = tc.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := io.ReadFull(tc, got); err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("TCP bytes came back as %v: reordered", got)
		}
	}
}

func TestUDPOrderAndBoundaries(t *testing.T) {
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), Delay: 5 * time.Millisecond})
	// Two clients at once: each gets its own session and only its own
	// answers.
	var wg sync.WaitGroup
	for client := range 2 {
		wg.Go(func() {
			c := dialUDP(t, r.Addr())
			const n = 1000
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				for i := range n {
					if _, err := c.Write(datagram(client, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			buf := make([]byte, 64<<10)
			for i := range n {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				m, err := c.Read(buf)
				if err != nil {
					t.Errorf("client %d: datagram %d: %v", client, i, err)
					break
				}
				if want := datagram(client, i); !bytes.Equal(buf[:m], want) {
					gotClient, gotSeq := binary.BigEndian.Uint32(buf), binary.BigEndian.Uint32(buf[4:])
					t.Errorf("client %d: datagram %d: got %d bytes of client %d seq %d, want %d bytes", client, i, m, gotClient, gotSeq, len(want))
					break
				}
			}
			<-sent
		})
	}
	wg.Wait()
	// The relay counts a datagram after sending it: the client may read
	// the last one first.
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := r.Stats()
		if st.UDPSessions == 2 && st.UDPDropped == 0 && st.UDPForwarded == 4000 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("Stats = %+v, want 2 sessions, 4000 forwarded, none dropped", st)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// datagram is client's i-th datagram: client and i, then filler up to a
// size that varies with i (so merged or split datagrams show).
func datagram(client, i int) []byte {
	b := make([]byte, 8+(i*37)%1400)
	binary.BigEndian.PutUint32(b, uint32(client))
	binary.BigEndian.PutUint32(b[4:], uint32(i))
	for j := 8; j < len(b); j++ {
		b[j] = byte(i + j)
	}
	return b
}

func TestTCPOrderAndHalfClose(t *testing.T) {
	r := newRelay(t, Config{TCPTarget: startTCPEcho(t), Delay: 5 * time.Millisecond, TCPBuffer: 1 << 20})
	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	c := dialTCP(t, r.Addr())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- errors.Join(err, c.CloseWrite())
	}()
	// ReadAll returns at EOF: the echo's half-close came back through the
	// relay after ours reached it.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, not the %d sent in order", len(got), len(payload))
	}
}

func TestBlock(t *testing.T) {
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), TCPTarget: startTCPEcho(t), Delay: 2 * time.Millisecond})
	u := dialUDP(t, r.Addr())
	tc := dialTCP(t, r.Addr())
	udpPing(t, u, []byte("before"), time.Second)
	tcpPing(t, tc, 1)

	r.Block()
	if _, err := u.Write([]byte("blocked")); err != nil {
		t.Fatal(err)
	}
	if got, err := readUDP(u, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("UDP while blocked: read %q, %v; want a timeout", got, err)
	}
	if _, err := tc.Write([]byte{2}); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := tc.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("TCP while blocked: read %d bytes, %v; want a timeout (held, not closed)", n, err)
	}
	// A connection made during the partition does not reach the target.
	echoed := make(chan byte, 1)
	go func() {
		c2, err := net.Dial("tcp", r.Addr())
		if err != nil {
			return
		}
		defer c2.Close()
		_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
		b := []byte{3}
		if _, err := c2.Write(b); err == nil {
			if _, err := io.ReadFull(c2, b); err == nil {
				echoed <- b[0]
			}
		}
	}()
	select {
	case <-echoed:
		t.Fatal("a connection opened while blocked got an answer")
	case <-time.After(300 * time.Millisecond):
	}
	if st := r.Stats(); st.TCPConns != 1 {
		t.Errorf("Stats.TCPConns = %d while blocked, want 1 (the new connection is not passed on)", st.TCPConns)
	}

	r.Unblock()
	// TCP's held byte arrives now; the blocked datagram is gone.
	_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(tc, b); err != nil || b[0] != 2 {
		t.Fatalf("TCP after Unblock: %v %v, want the held byte 2", b, err)
	}
	select {
	case got := <-echoed:
		if got != 3 {
			t.Fatalf("connection opened while blocked echoed %d", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("connection opened while blocked did not work after Unblock")
	}
	if got := udpPing(t, u, []byte("after"), time.Second); string(got) != "after" {
		t.Fatalf("UDP after Unblock answered %q, want %q (the blocked datagram must be dropped)", got, "after")
	}
}

func TestBlockUDP(t *testing.T) {
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), TCPTarget: startTCPEcho(t)})
	u := dialUDP(t, r.Addr())
	tc := dialTCP(t, r.Addr())
	r.BlockUDP()
	if _, err := u.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := readUDP(u, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("UDP while UDP blocked: read %q, %v; want a timeout", got, err)
	}
	if got := tcpPing(t, tc, 7); got != 7 {
		t.Fatalf("TCP while UDP blocked answered %d", got)
	}
	r.Unblock()
	udpPing(t, u, []byte("y"), time.Second)
}

func TestUDPQueueFullDrops(t *testing.T) {
	const queue = 8
	// A delay long enough that all 100 datagrams are queued before the
	// first is due, however loaded the machine.
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), Delay: time.Second, UDPQueue: queue})
	c := dialUDP(t, r.Addr())
	for i := range 100 {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The echoes come back together, 2 s after they were sent.
	var got []byte
	for timeout := 5 * time.Second; ; timeout = 300 * time.Millisecond {
		b, err := readUDP(c, timeout)
		if err != nil {
			break
		}
		got = append(got, b[0])
	}
	if len(got) == 0 || len(got) > queue {
		t.Fatalf("%d datagrams came back, want 1..%d (the queue's bound)", len(got), queue)
	}
	if !slices.IsSorted(got) {
		t.Errorf("datagrams came back out of order: %v", got)
	}
	if st := r.Stats(); st.UDPDropped < 100-queue {
		t.Errorf("Stats.UDPDropped = %d, want at least %d", st.UDPDropped, 100-queue)
	}
}

func TestTCPBackpressure(t *testing.T) {
	// A target that accepts and never reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	r := newRelay(t, Config{TCPTarget: ln.Addr().String(), TCPBuffer: 256 << 10})
	c := dialTCP(t, r.Addr())
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := c.Write(make([]byte, 256<<20))
	if !isTimeout(err) {
		t.Fatalf("writing 256 MiB towards a target that never reads: %d bytes, %v; want a timeout", n, err)
	}
	// Kernel buffers on three sockets hold some; the relay holds at most
	// its TCPBuffer.
	if n > 64<<20 {
		t.Fatalf("%d bytes accepted towards a target that never reads: the relay buffers without bound", n)
	}
	t.Logf("%d bytes accepted before backpressure", n)
}

func TestUDPSessionIdleExpiry(t *testing.T) {
	r := newRelay(t, Config{UDPTarget: startUDPEcho(t), UDPIdleTimeout: 100 * time.Millisecond})
	c := dialUDP(t, r.Addr())
	udpPing(t, c, []byte("a"), time.Second)
	if st := r.Stats(); st.UDPSessions != 1 {
		t.Fatalf("Stats.UDPSessions = %d after a ping, want 1", st.UDPSessions)
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.Stats().UDPSessions != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle UDP session did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The client's next datagram opens a new session.
	udpPing(t, c, []byte("b"), time.Second)
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	r, err := New(Config{UDPTarget: startUDPEcho(t), TCPTarget: startTCPEcho(t), Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Sessions and connections in every state: idle, with bytes in
	// flight, held by a block.
	for range 3 {
		u := dialUDP(t, r.Addr())
		udpPing(t, u, []byte("x"), time.Second)
		_, _ = u.Write([]byte("in flight"))
		tc := dialTCP(t, r.Addr())
		tcpPing(t, tc, 1)
		_, _ = tc.Write(make([]byte, 1<<20))
	}
	r.Block()
	held := dialTCP(t, r.Addr())
	_, _ = held.Write([]byte("held"))
	if n := relayGoroutines(); n == 0 {
		t.Fatal("no relay goroutines found while running: the check below would prove nothing")
	}

	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s")
	}
	if n := relayGoroutines(); n != 0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d relay goroutines left after Close:\n%s", n, buf[:runtime.Stack(buf, true)])
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Clients see their connections end.
	_ = held.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := held.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("client connection after Close: read error %v, want EOF or reset", err)
	}
}

// relayGoroutines counts goroutines running the relay's code (its
// methods; test helpers are functions, never methods).
func relayGoroutines() int {
	buf := make([]byte, 4<<20)
	n := 0
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "test/delayrelay.(*") {
			n++
		}
	}
	return n
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no target":      {},
		"bad UDP target": {UDPTarget: "no port"},
		"bad TCP target": {TCPTarget: "no port"},
		"bad address":    {TCPTarget: "127.0.0.1:1", Addr: "256.0.0.1:0"},
		"negative delay": {TCPTarget: "127.0.0.1:1", Delay: -time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := New(cfg)
			if err == nil {
				_ = r.Close()
				t.Fatal("New accepted the configuration")
			}
		})
	}
}

func newRelay(t *testing.T, cfg Config) *Relay {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func startUDPEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

func startTCPEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.UDPConn)
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

func readUDP(c *net.UDPConn, timeout time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	return buf[:n], err
}

// udpPing sends p and returns the echo, failing t after timeout.
func udpPing(t *testing.T, c *net.UDPConn, p []byte, timeout time.Duration) []byte {
	t.Helper()
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := readUDP(c, timeout)
	if err != nil {
		t.Fatalf("UDP ping: %v", err)
	}
	return got
}

func tcpPing(t *testing.T, c *net.TCPConn, b byte) byte {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{b}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("TCP ping: %v", err)
	}
	return got[0]
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
