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
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Transport names, as in LinkStatus.Transport and Stream.Transport.
const (
	TransportQUIC = "quic"
	TransportTCP  = "tcp"
)

// counters are the stream and byte counts of a Dialer's link, or of one
// peer's links to a Listener: both directions, every transport.
type counters struct {
	openStreams   atomic.Int64
	bytesSent     atomic.Uint64
	bytesReceived atomic.Uint64
}

// opener is the opening side's backend. Its Read returns the peer's
// verdict first: a *RefusedError when refused.
type opener interface {
	backend
	// verdict waits for the peer's answer while ctx allows: nil when the
	// stream was accepted, a *RefusedError when refused, another error
	// when the stream failed first.
	verdict(ctx context.Context) error
}

// backend is one stream of a link, either side, either transport.
type backend interface {
	io.ReadWriter
	// answer sends the accepting side's verdict; only that side
	// implements it meaningfully.
	answer(ok bool, reason string) error
	CloseWrite() error
	Close() error
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Stream is one proxied connection arriving on a link, opened by the
// peer gateway: as returned by Listener.Accept, or as passed to
// DialerConfig.Handle. The caller must answer it: Refuse, or Accept (Write
// and CloseWrite accept implicitly) and then relay bytes; and must Close
// it. Read may be called before the answer. Stream implements net.Conn
// plus CloseWrite; Read and Write may be called concurrently with each
// other.
type Stream struct {
	// Peer is the authenticated SPIFFE ID of the gateway at the other end
	// of the link, the one that opened the stream:
	// spiffe://<td>/cluster/<name>/gateway.
	Peer spiffeid.ID
	// Authority is the destination the peer asked for, "host:port" or
	// "ip:port", syntax-checked but not authorized: the caller must check
	// that it is an exported endpoint.
	Authority string
	// Transport is TransportQUIC or TransportTCP.
	Transport string

	b        backend
	st       *counters
	once     sync.Once
	answered error
	closed   atomic.Bool
}

// newStream counts a stream that arrived on a link in st.
func newStream(peer spiffeid.ID, authority, transport string, b backend, st *counters) *Stream {
	st.openStreams.Add(1)
	return &Stream{Peer: peer, Authority: authority, Transport: transport, b: b, st: st}
}

// Accept tells the peer that the stream is accepted; bytes may flow
// both ways afterwards. Calling it again returns the first result.
func (s *Stream) Accept() error { return s.answer(true, "") }

// Refuse tells the peer that the stream is refused, with a short reason
// that the opener's Open (Dialer.Open or Listener.Open) returns in a
// *RefusedError (cut to 255 bytes on QUIC), and closes the stream. It has
// no effect after Accept.
func (s *Stream) Refuse(reason string) error {
	err := s.answer(false, reason)
	return errors.Join(err, s.Close())
}

func (s *Stream) answer(ok bool, reason string) error {
	s.once.Do(func() { s.answered = s.b.answer(ok, reason) })
	return s.answered
}

// Read reads bytes sent by the peer.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.b.Read(p)
	s.st.bytesReceived.Add(uint64(n))
	return n, err
}

// Write accepts the stream if needed, then sends p to the peer.
func (s *Stream) Write(p []byte) (int, error) {
	if err := s.Accept(); err != nil {
		return 0, err
	}
	n, err := s.b.Write(p)
	s.st.bytesSent.Add(uint64(n))
	return n, err
}

// CloseWrite accepts the stream if needed, then ends the direction
// towards the peer. On QUIC the peer reads EOF at once; on HTTP/2 it
// reads EOF once this side has also read EOF or is closed (net/http's
// server cannot end a response while still reading the request).
func (s *Stream) CloseWrite() error {
	if err := s.Accept(); err != nil {
		return err
	}
	return s.b.CloseWrite()
}

// Close closes both directions. A stream closed before it was answered is
// refused.
func (s *Stream) Close() error {
	_ = s.answer(false, "closed by gateway")
	if s.closed.CompareAndSwap(false, true) {
		s.st.openStreams.Add(-1)
	}
	return s.b.Close()
}

// LocalAddr is the link's local address.
func (s *Stream) LocalAddr() net.Addr { return s.b.LocalAddr() }

// RemoteAddr is the peer gateway's address.
func (s *Stream) RemoteAddr() net.Addr { return s.b.RemoteAddr() }

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	return errors.Join(s.b.SetReadDeadline(t), s.b.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.b.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.b.SetWriteDeadline(t) }

var _ net.Conn = (*Stream)(nil)

// Conn is the opener's side of a stream, as returned by Dialer.Open and
// Listener.Open. It implements net.Conn plus CloseWrite. On HTTP/2 it
// supports no deadlines.
type Conn struct {
	b      backend
	st     *counters
	closed atomic.Bool
}

// newConn counts a stream opened on a link in st.
func newConn(b backend, st *counters) *Conn {
	st.openStreams.Add(1)
	return &Conn{b: b, st: st}
}

// Read reads bytes sent by the destination through the peer gateway.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.b.Read(p)
	c.st.bytesReceived.Add(uint64(n))
	return n, err
}

// Write sends p towards the destination.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.b.Write(p)
	c.st.bytesSent.Add(uint64(n))
	return n, err
}

// CloseWrite ends the direction towards the destination; Read still works.
func (c *Conn) CloseWrite() error { return c.b.CloseWrite() }

// Close closes both directions.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.st.openStreams.Add(-1)
	}
	return c.b.Close()
}

// LocalAddr is the link's local address.
func (c *Conn) LocalAddr() net.Addr { return c.b.LocalAddr() }

// RemoteAddr is the peer gateway's address.
func (c *Conn) RemoteAddr() net.Addr { return c.b.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.b.SetReadDeadline(t), c.b.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.b.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.b.SetWriteDeadline(t) }

var _ net.Conn = (*Conn)(nil)

// quicStream is a stream on a QUIC link, either side.
type quicStream struct {
	*quic.Stream
	conn      *quic.Conn
	closeOnce sync.Once
	wmu       sync.Mutex
	wclosed   bool
}

func (q *quicStream) answer(ok bool, reason string) error {
	st := byte(statusOK)
	if !ok {
		st = statusRefused
	}
	if _, err := q.Write(appendResponse(nil, st, reason)); err != nil {
		return fmt.Errorf("answer stream: %w", err)
	}
	return nil
}

func (q *quicStream) CloseWrite() error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.wclosed {
		return nil
	}
	q.wclosed = true
	return q.Stream.Close()
}

func (q *quicStream) Close() error {
	q.closeOnce.Do(func() {
		// Stop the peer's sending (STOP_SENDING, code 0) and end ours
		// with a FIN, so the stream completes and its credit returns to
		// the peer's MaxIncomingStreams. The FIN fails only when the
		// peer already stopped our direction, which is no error for a
		// full close.
		q.CancelRead(0)
		_ = q.CloseWrite()
	})
	return nil
}

func (q *quicStream) LocalAddr() net.Addr  { return q.conn.LocalAddr() }
func (q *quicStream) RemoteAddr() net.Addr { return q.conn.RemoteAddr() }

// h2ServerStream is the accepting side of an HTTP/2 CONNECT stream (the
// listener's on the forward connection, the dialer's on the reverse one). Its
// handler goroutine waits on done; no ResponseWriter call may happen after
// the handler returns, hence finished and writers.
type h2ServerStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	body io.ReadCloser
	done chan struct{}
	// abort is set when the stream ends before both directions finished:
	// the handler then unblocks pending writes.
	abort         atomic.Bool
	local, remote net.Addr

	mu       sync.Mutex
	finished bool
	wclosed  bool
	reof     bool
	writers  sync.WaitGroup
}

func (h *h2ServerStream) answer(ok bool, reason string) error {
	return h.write(func() error {
		if ok {
			h.w.WriteHeader(http.StatusOK)
			return h.rc.Flush()
		}
		h.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		h.w.WriteHeader(http.StatusForbidden)
		_, err := io.WriteString(h.w, reason)
		// A refusal ends the stream cleanly: the handler returns and
		// net/http sends the response.
		h.finish(false)
		return err
	})
}

// write runs f unless the handler is finishing.
func (h *h2ServerStream) write(f func() error) error {
	h.mu.Lock()
	if h.finished || h.wclosed {
		h.mu.Unlock()
		return net.ErrClosed
	}
	h.writers.Add(1)
	h.mu.Unlock()
	defer h.writers.Done()
	return f()
}

func (h *h2ServerStream) Read(p []byte) (int, error) {
	n, err := h.body.Read(p)
	if errors.Is(err, io.EOF) {
		h.mu.Lock()
		h.reof = true
		both := h.wclosed
		h.mu.Unlock()
		if both {
			h.finish(false)
		}
	}
	return n, err
}

func (h *h2ServerStream) Write(p []byte) (int, error) {
	var n int
	err := h.write(func() error {
		var err error
		if n, err = h.w.Write(p); err != nil {
			return err
		}
		return h.rc.Flush()
	})
	return n, err
}

func (h *h2ServerStream) CloseWrite() error {
	h.mu.Lock()
	h.wclosed = true
	both := h.reof
	h.mu.Unlock()
	if both {
		h.finish(false)
	}
	return nil
}

func (h *h2ServerStream) Close() error {
	h.finish(true)
	return nil
}

// finish lets the handler return. abort says the peer must see a reset
// rather than a clean end.
func (h *h2ServerStream) finish(abort bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished {
		return
	}
	h.finished = true
	if abort && (!h.reof || !h.wclosed) {
		h.abort.Store(true)
	}
	close(h.done)
}

func (h *h2ServerStream) LocalAddr() net.Addr  { return h.local }
func (h *h2ServerStream) RemoteAddr() net.Addr { return h.remote }
func (h *h2ServerStream) SetReadDeadline(t time.Time) error {
	return h.rc.SetReadDeadline(t)
}
func (h *h2ServerStream) SetWriteDeadline(t time.Time) error {
	return h.rc.SetWriteDeadline(t)
}

// h2ClientStream is the opening side of an HTTP/2 CONNECT stream: the
// request body is a pipe, the response the verdict and then the other
// direction. The round trip runs in its own goroutine from the opening on,
// so that bytes written flow before the response arrives.
type h2ClientStream struct {
	pw            *io.PipeWriter
	cancel        func() // ends the request, and so the stream
	local, remote net.Addr
	// sent is closed once the request's HEADERS frame is out.
	sent chan struct{}
	// done is closed once the round trip returned; verr (nil when
	// accepted), answered (a response arrived) and body are set before.
	done     chan struct{}
	verr     error
	answered bool
	mu       sync.Mutex
	body     io.ReadCloser // the response body once accepted, nil after Close
	shut     bool          // Close was called
	wclosed  atomic.Bool   // CloseWrite was called
}

// roundTrip runs the request and records the verdict.
func (h *h2ClientStream) roundTrip(cc *http.ClientConn, req *http.Request, pr *io.PipeReader) {
	defer close(h.done)
	resp, err := cc.RoundTrip(req)
	h.answered = err == nil
	switch {
	case err != nil:
		h.verr = err
	case resp.StatusCode == http.StatusOK:
		h.mu.Lock()
		if h.shut {
			_ = resp.Body.Close()
		} else {
			h.body = resp.Body
		}
		h.mu.Unlock()
		return
	default:
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			h.verr = &RefusedError{Reason: string(reason)}
		} else {
			h.verr = fmt.Errorf("stream answered %s: %s", resp.Status, bytes.TrimSpace(reason))
		}
	}
	// Writes fail with the verdict from now on (unless net/http closed
	// the body first, see Write).
	pr.CloseWithError(h.verr)
	h.cancel()
}

func (h *h2ClientStream) verdict(ctx context.Context) error {
	select {
	case <-h.done:
		return h.verr
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (h *h2ClientStream) answer(bool, string) error { return nil }

func (h *h2ClientStream) Read(p []byte) (int, error) {
	<-h.done
	if h.verr != nil {
		return 0, h.verr
	}
	h.mu.Lock()
	body := h.body
	h.mu.Unlock()
	if body == nil {
		return 0, net.ErrClosed
	}
	return body.Read(p)
}

func (h *h2ClientStream) Write(p []byte) (int, error) {
	n, err := h.pw.Write(p)
	if err != nil && !h.wclosed.Load() {
		// The body was closed: by the round trip's end (net/http stops
		// reading it once the stream is over) or by Close, which ends
		// the round trip. Either way done follows; report the verdict
		// if that is why.
		<-h.done
		var refused *RefusedError
		if errors.As(h.verr, &refused) {
			err = h.verr
		}
	}
	return n, err
}

func (h *h2ClientStream) CloseWrite() error {
	h.wclosed.Store(true)
	return h.pw.Close()
}

func (h *h2ClientStream) LocalAddr() net.Addr              { return h.local }
func (h *h2ClientStream) RemoteAddr() net.Addr             { return h.remote }
func (h *h2ClientStream) SetReadDeadline(time.Time) error  { return errDeadline }
func (h *h2ClientStream) SetWriteDeadline(time.Time) error { return errDeadline }

var errDeadline = fmt.Errorf("link stream over HTTP/2: deadlines: %w", errors.ErrUnsupported)

func (h *h2ClientStream) Close() error {
	h.pw.CloseWithError(net.ErrClosed)
	h.mu.Lock()
	h.shut = true
	body := h.body
	h.body = nil
	h.mu.Unlock()
	var err error
	if body != nil {
		err = body.Close()
	}
	h.cancel()
	return err
}
