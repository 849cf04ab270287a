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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/pki"
)

var (
	tdTest  = spiffeid.RequireTrustDomainFromString("td.test")
	tdOther = spiffeid.RequireTrustDomainFromString("other.test")
	eastID  = spiffeid.RequireFromPath(tdTest, "/cluster/east/gateway")
	westID  = spiffeid.RequireFromPath(tdTest, "/cluster/west/gateway")
	wlID    = spiffeid.RequireFromPath(tdTest, "/ns/shop/sa/checkout")
	otherID = spiffeid.RequireFromPath(tdOther, "/cluster/west/gateway")
)

// world is a trust domain with the test's SVIDs, made once per package
// run: key generation dominates otherwise.
type world struct {
	bundle                      *pki.Bundle
	east, west, workload, alien *tls.Certificate
}

var (
	worldOnce sync.Once
	theWorld  world
	worldErr  error
)

func testWorld(t testing.TB) world {
	t.Helper()
	worldOnce.Do(func() { theWorld, worldErr = makeWorld() })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return theWorld
}

func makeWorld() (world, error) {
	root, err := pki.NewRoot(tdTest, pki.RootOptions{})
	if err != nil {
		return world{}, err
	}
	eastCA, err := root.NewIntermediate("east", 0)
	if err != nil {
		return world{}, err
	}
	westCA, err := root.NewIntermediate("west", 0)
	if err != nil {
		return world{}, err
	}
	otherRoot, err := pki.NewRoot(tdOther, pki.RootOptions{})
	if err != nil {
		return world{}, err
	}
	otherCA, err := otherRoot.NewIntermediate("west", 0)
	if err != nil {
		return world{}, err
	}
	bundle, err := pki.NewBundle(tdTest, root.Certificate())
	if err != nil {
		return world{}, err
	}
	w := world{bundle: bundle}
	for _, c := range []struct {
		ca  *pki.CA
		id  spiffeid.ID
		out **tls.Certificate
	}{
		{eastCA, eastID, &w.east},
		{westCA, westID, &w.west},
		{westCA, wlID, &w.workload},
		{otherCA, otherID, &w.alien},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return world{}, err
		}
		svid, err := c.ca.SignPublicKey(&key.PublicKey, c.id, 0)
		if err != nil {
			return world{}, err
		}
		*c.out = &tls.Certificate{Certificate: svid.ChainDER(), PrivateKey: key, Leaf: svid.Leaf()}
	}
	return w, nil
}

func certFunc(c *tls.Certificate) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return c, nil }
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startListener starts a listener of the east gateway on free loopback
// ports (unless cfg names them) and relays accepted streams to their
// authority, refusing "refused.test:1".
func startListener(t testing.TB, cfg ListenerConfig) *Listener {
	t.Helper()
	return startListenerFunc(t, cfg, relay)
}

// startListenerFunc is startListener with handle serving accepted
// streams, each in its own goroutine.
func startListenerFunc(t testing.TB, cfg ListenerConfig, handle func(*Stream)) *Listener {
	t.Helper()
	w := testWorld(t)
	if cfg.Certificate == nil {
		cfg.Certificate = certFunc(w.east)
	}
	cfg.Bundle = w.bundle
	switch cfg.UDPAddr {
	case "-":
		cfg.UDPAddr = ""
	case "":
		cfg.UDPAddr = "127.0.0.1:0"
	}
	switch cfg.TCPAddr {
	case "-":
		cfg.TCPAddr = ""
	case "":
		cfg.TCPAddr = "127.0.0.1:0"
	}
	// Generous: a test machine under load must not lose links to
	// starvation; the dead-peer tests set the production figures.
	setDefault(&cfg.KeepAlive, 250*time.Millisecond)
	setDefault(&cfg.IdleTimeout, 5*time.Second)
	setDefault(&cfg.HandshakeTimeout, 2*time.Second)
	cfg.Logger = quietLogger()
	l, err := Listen(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			s, err := l.Accept()
			if err != nil {
				return
			}
			go handle(s)
		}
	}()
	return l
}

// relay is what a gateway does with an accepted stream.
func relay(s *Stream) {
	defer func() { _ = s.Close() }()
	if s.Authority == "refused.test:1" {
		_ = s.Refuse("not an exported service")
		return
	}
	dst, err := net.DialTimeout("tcp", s.Authority, 2*time.Second)
	if err != nil {
		_ = s.Refuse("dial failed")
		return
	}
	defer func() { _ = dst.Close() }()
	if err := s.Accept(); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(dst, s)
		_ = dst.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(s, dst)
	_ = s.CloseWrite()
	<-done
}

// startEcho starts a TCP echo server on loopback that half-closes after
// echoing everything.
func startEcho(t testing.TB) string {
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
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// dialerFor returns a dialer config of the west gateway towards l over
// the given transports ("quic", "tcp" or both).
func dialerFor(t testing.TB, l *Listener, transports ...string) DialerConfig {
	t.Helper()
	w := testWorld(t)
	cfg := DialerConfig{
		Name:              "east",
		Certificate:       certFunc(w.west),
		Bundle:            w.bundle,
		ExpectPeer:        ExpectID(eastID),
		HandshakeTimeout:  time.Second,
		IdleTimeout:       5 * time.Second,
		KeepAlive:         250 * time.Millisecond,
		QUICRetryInterval: 200 * time.Millisecond,
		MinBackoff:        20 * time.Millisecond,
		MaxBackoff:        200 * time.Millisecond,
		Logger:            quietLogger(),
	}
	for _, tr := range transports {
		switch tr {
		case TransportQUIC:
			cfg.UDPAddr = l.UDPAddr().String()
		case TransportTCP:
			cfg.TCPAddr = l.TCPAddr().String()
		}
	}
	return cfg
}

func startDialer(t testing.TB, cfg DialerConfig) *Dialer {
	t.Helper()
	d, err := NewDialer(cfg)
	if err != nil {
		t.Fatalf("NewDialer: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// eventually waits up to timeout for cond, failing with what.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitUp(t testing.TB, d *Dialer, transport string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := d.Status()
		if st.State == StateUp && st.Transport == transport {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link not up over %s after 5s: %+v", transport, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roundTrip sends payload through c, half-closes, and returns what came
// back before EOF.
func roundTrip(c net.Conn, payload []byte) ([]byte, error) {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(c)
	return got, errors.Join(rerr, <-errc)
}

// waitPeer waits until l reports peer linked over transport.
func waitPeer(t testing.TB, l *Listener, peer spiffeid.ID, transport string) PeerStatus {
	t.Helper()
	var got PeerStatus
	eventually(t, 5*time.Second, "peer "+peer.String()+" linked over "+transport, func() bool {
		ps, ok := peerStatus(l, peer)
		got = ps
		return ok && ps.Transport == transport
	})
	return got
}

// peerStatus is peer's entry in l.Peers.
func peerStatus(l *Listener, peer spiffeid.ID) (PeerStatus, bool) {
	for _, ps := range l.Peers() {
		if ps.Peer == peer {
			return ps, true
		}
	}
	return PeerStatus{}, false
}

func openCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
