package world

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
)

// maxPortTries bounds the search for a free host port after the preferred
// one is taken.
const maxPortTries = 100

// Forward relays connections from a listener on the host's 127.0.0.1 to an
// address inside the world's network namespace, so kubectl, a browser or an
// external test suite on the host reach what runs inside.
type Forward struct {
	// Addr is the host address to connect to, e.g. "127.0.0.1:16443".
	Addr string
	// Target is the address inside the namespace.
	Target string

	l      net.Listener
	ns     *Namespace
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newForward listens on 127.0.0.1:port (port 0: any free port). If the port
// is taken it tries the next ones, up to maxPortTries, and reports clearly if
// none is free.
func newForward(ns *Namespace, port int, target string) (*Forward, error) {
	l, err := listenLoopback(port)
	if err != nil {
		return nil, fmt.Errorf("forward to %s: %w", target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forward{Addr: l.Addr().String(), Target: target, l: l, ns: ns, ctx: ctx, cancel: cancel}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

func listenLoopback(port int) (net.Listener, error) {
	if port == 0 {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	var firstErr error
	for p := port; p < port+maxPortTries && p <= 65535; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on 127.0.0.1:%d: %w", p, err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, fmt.Errorf("no free port on 127.0.0.1 in %d..%d (first: %w)", port, port+maxPortTries-1, firstErr)
}

func (f *Forward) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.relay(c)
		}()
	}
}

func (f *Forward) relay(c net.Conn) {
	defer func() { _ = c.Close() }()
	up, err := f.ns.DialContext(f.ctx, "tcp", f.Target)
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	stop := context.AfterFunc(f.ctx, func() {
		_ = c.Close()
		_ = up.Close()
	})
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// Close stops listening, ends every relayed connection and waits for them.
func (f *Forward) Close() error {
	f.cancel()
	err := f.l.Close()
	f.wg.Wait()
	return err
}
