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
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/test/delayrelay"
)

// greeter answers a stream only after it has read "hello" from it, then
// says "world" and ends: it shows that the opener's bytes flow before the
// verdict. Any other greeting is refused.
func greeter(s *Stream) {
	defer func() { _ = s.Close() }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello" {
		_ = s.Refuse("say hello first")
		return
	}
	if err := s.Accept(); err != nil {
		return
	}
	_, _ = s.Write([]byte("world"))
	_ = s.CloseWrite()
	_, _ = io.Copy(io.Discard, s)
}

// earlyOpeners returns how each side opens early streams over one link:
// the dialer towards the listener and the listener back.
func earlyOpeners(d *Dialer, l *Listener) map[string]func(context.Context, string) (net.Conn, error) {
	return map[string]func(context.Context, string) (net.Conn, error){
		"forward": d.OpenEarly,
		"reverse": func(ctx context.Context, a string) (net.Conn, error) { return l.OpenEarly(ctx, westID, a) },
	}
}

// TestOpenEarlySendsBeforeTheVerdict: OpenEarly returns before the peer
// has answered, and the bytes written then reach the accepting side
// before it answers, both ways, on both transports (on HTTP/2 the request
// body flows before the response).
func TestOpenEarlySendsBeforeTheVerdict(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			l := startListenerFunc(t, ListenerConfig{}, greeter)
			cfg := dialerFor(t, l, tr)
			cfg.Handle = greeter
			d := startDialer(t, cfg)
			waitUp(t, d, tr)
			waitPeer(t, l, westID, tr)
			for dir, open := range earlyOpeners(d, l) {
				c, err := open(openCtx(t, 5*time.Second), "greeter.test:1")
				if err != nil {
					t.Fatalf("%s OpenEarly: %v", dir, err)
				}
				got, err := roundTrip(c, []byte("hello"))
				if err != nil || string(got) != "world" {
					t.Fatalf("%s: greeted with %q, %v; want world", dir, got, err)
				}
				_ = c.Close()
			}
		})
	}
}

// TestOpenEarlyRefused: a refusal reaches an early stream's Read as a
// *RefusedError with the peer's reason, and Write fails with it from then
// on; Open, which waits for the verdict, returns it.
func TestOpenEarlyRefused(t *testing.T) {
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			l := startListener(t, ListenerConfig{})
			cfg := dialerFor(t, l, tr)
			cfg.Handle = relay
			d := startDialer(t, cfg)
			waitUp(t, d, tr)
			waitPeer(t, l, westID, tr)
			for dir, open := range earlyOpeners(d, l) {
				c, err := open(openCtx(t, 5*time.Second), "refused.test:1")
				if err != nil {
					t.Fatalf("%s OpenEarly = %v; want the stream, refused later", dir, err)
				}
				// Written before the verdict: the peer discards it.
				if _, err := c.Write([]byte("early")); err != nil && !isRefused(err) {
					t.Fatalf("%s: first Write = %v", dir, err)
				}
				_, err = c.Read(make([]byte, 1))
				var refused *RefusedError
				if !errors.As(err, &refused) || refused.Reason != "not an exported service" {
					t.Fatalf("%s: Read = %v, want a *RefusedError with the peer's reason", dir, err)
				}
				if _, err := c.Write([]byte("late")); !isRefused(err) {
					t.Fatalf("%s: Write after the refusal = %v, want the *RefusedError", dir, err)
				}
				_ = c.Close()
			}
			if _, err := d.Open(openCtx(t, 5*time.Second), "refused.test:1"); !isRefused(err) {
				t.Fatalf("Open = %v, want a *RefusedError", err)
			}
			eventually(t, 5*time.Second, "refused streams counted closed", func() bool {
				ps, _ := peerStatus(l, westID)
				return d.Status().OpenStreams == 0 && ps.OpenStreams == 0
			})
		})
	}
}

func isRefused(err error) bool {
	var refused *RefusedError
	return errors.As(err, &refused)
}

// TestStreamsBeforeConfirmation: across a WAN (50 ms each way), a link is
// usable as soon as its handshake is done; the peer's confirmation (the
// probe, and on TCP the pairing of the reverse connection) follows about
// a round trip later, and Status says connecting until then.
func TestStreamsBeforeConfirmation(t *testing.T) {
	const delay = 50 * time.Millisecond
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			rc := delayrelay.Config{Delay: delay}
			if tr == TransportQUIC {
				rc.UDPTarget = l.UDPAddr().String()
			} else {
				rc.TCPTarget = l.TCPAddr().String()
			}
			r, err := delayrelay.New(rc)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			cfg := dialerFor(t, l)
			if tr == TransportQUIC {
				cfg.UDPAddr = r.Addr()
			} else {
				cfg.TCPAddr = r.Addr()
			}
			cfg.HandshakeTimeout = 5 * time.Second
			var mu sync.Mutex
			var states []State
			cfg.OnStateChange = func(st LinkStatus) {
				mu.Lock()
				states = append(states, st.State)
				mu.Unlock()
			}
			d := startDialer(t, cfg)
			c, err := d.OpenEarly(openCtx(t, 5*time.Second), echo)
			if err != nil {
				t.Fatalf("OpenEarly: %v", err)
			}
			if st := d.Status(); st.State != StateConnecting || st.Transport != tr {
				t.Errorf("Status when the first stream was opened = %s over %q, want connecting over %s", st.State, st.Transport, tr)
			}
			if got, err := roundTrip(c, []byte("early")); err != nil || string(got) != "early" {
				t.Fatalf("round trip on the unconfirmed link = %q, %v", got, err)
			}
			_ = c.Close()
			waitUp(t, d, tr)
			mu.Lock()
			defer mu.Unlock()
			if len(states) != 2 || states[0] != StateConnecting || states[1] != StateUp {
				t.Errorf("OnStateChange saw %v, want [connecting up]", states)
			}
		})
	}
}

// TestOpenEarlyOnARefusedLink: a stream opened early on a link the peer
// then refuses (it checks the client certificate after this side's
// handshake is done) fails; it does not hang.
func TestOpenEarlyOnARefusedLink(t *testing.T) {
	w := testWorld(t)
	for _, tr := range []string{TransportQUIC, TransportTCP} {
		t.Run(tr, func(t *testing.T) {
			echo := startEcho(t)
			l := startListener(t, ListenerConfig{})
			cfg := dialerFor(t, l, tr)
			cfg.Certificate = certFunc(w.workload)
			d := startDialer(t, cfg)
			c, err := d.OpenEarly(openCtx(t, 2*time.Second), echo)
			if err != nil {
				// It never caught the short unconfirmed window.
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("OpenEarly = %v, want a stream or deadline exceeded", err)
				}
				return
			}
			defer func() { _ = c.Close() }()
			done := make(chan error, 1)
			go func() {
				_, err := roundTrip(c, []byte("x"))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a stream on a refused link carried bytes")
				}
				t.Logf("stream on the refused link: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("a stream on a refused link hangs")
			}
		})
	}
}
