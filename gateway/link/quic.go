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
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// codeLinkRefused is the QUIC application error code with which a
// listener closes a link it refuses after the handshake (see
// Listener.register); the reason phrase says why.
const codeLinkRefused quic.ApplicationErrorCode = 1

// quicConfig is the quic-go configuration of a link, either end; see the
// package documentation for the reasons behind each value. maxStreams
// bounds the streams the peer may open.
func quicConfig(maxStreams int, handshake, idle, keepAlive time.Duration) *quic.Config {
	// The idle timer restarts at the first ack-eliciting packet sent
	// after the last one received (RFC 9000 section 10.1), at the latest
	// the keepalive PING: idle minus the keepalive period after that is
	// at most idle after the peer's last packet.
	ping, wait := pingTimeouts(keepAlive, idle)
	return &quic.Config{
		HandshakeIdleTimeout: handshake,
		MaxIdleTimeout:       wait,
		KeepAlivePeriod:      ping,
		MaxIncomingStreams:   int64(maxStreams),
		// Streams are bidirectional; neither end accepts others.
		MaxIncomingUniStreams: -1,
		// A link multiplexes many streams across a WAN: allow large
		// windows so one link is not flow-control bound.
		InitialStreamReceiveWindow:     streamReceiveWindow,
		MaxStreamReceiveWindow:         streamReceiveWindow,
		InitialConnectionReceiveWindow: linkReceiveWindow,
		MaxConnectionReceiveWindow:     linkReceiveWindow,
		Allow0RTT:                      false,
	}
}

// openQUIC opens a stream to authority on c and sends its header; the
// peer's answer is read later (quicOpener). It waits for a stream slot
// while ctx allows. "" is a probe.
func openQUIC(ctx context.Context, c *quic.Conn, authority string) (opener, error) {
	qs, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	// Small writes are buffered in quic-go's next STREAM frame: Write
	// returns at once, and data written right after goes out in the
	// same packet.
	if _, err := qs.Write(appendRequest(nil, authority)); err != nil {
		qs.CancelRead(0)
		qs.CancelWrite(0)
		return nil, err
	}
	return &quicOpener{quicStream: quicStream{Stream: qs, conn: c}}, nil
}

// quicOpener is the opening side of a QUIC stream: the peer's answer
// comes first in the stream, read by the first Read (or by verdict).
type quicOpener struct {
	quicStream
	// vmu is held while reading the answer.
	vmu   sync.Mutex
	ans   answerReader
	known atomic.Bool
	verr  error // the verdict once known
	// rdl is the caller's read deadline, restored after verdict.
	rdl atomic.Pointer[time.Time]
}

// awaitVerdict reads the peer's answer unless known: nil when accepted.
// A timeout (a read deadline) leaves it unknown.
func (q *quicOpener) awaitVerdict() error {
	if q.known.Load() {
		return q.verr
	}
	q.vmu.Lock()
	defer q.vmu.Unlock()
	return q.awaitVerdictLocked()
}

func (q *quicOpener) awaitVerdictLocked() error {
	if q.known.Load() {
		return q.verr
	}
	err := q.ans.read(q.Stream)
	if isTimeout(err) {
		return err
	}
	q.verr = err
	q.known.Store(true)
	return err
}

// userReadDeadline is the read deadline the caller set.
func (q *quicOpener) userReadDeadline() time.Time {
	if p := q.rdl.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

func (q *quicOpener) verdict(ctx context.Context) error {
	if q.known.Load() {
		return q.verr
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.Stream.SetReadDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = q.Stream.SetReadDeadline(time.Now())
	})
	err := q.awaitVerdict()
	if !stop() {
		<-fired
		if err != nil {
			err = errors.Join(err, context.Cause(ctx))
		}
	}
	_ = q.Stream.SetReadDeadline(q.userReadDeadline())
	return err
}

func (q *quicOpener) Read(p []byte) (int, error) {
	if err := q.awaitVerdict(); err != nil {
		return 0, err
	}
	return q.Stream.Read(p)
}

// answerGrace bounds how long a failed Write looks for the answer that
// explains the failure.
const answerGrace = 250 * time.Millisecond

func (q *quicOpener) Write(p []byte) (int, error) {
	if q.known.Load() && q.verr != nil {
		return 0, q.verr
	}
	n, err := q.Stream.Write(p)
	var se *quic.StreamError
	if err == nil || !errors.As(err, &se) || !se.Remote {
		return n, err
	}
	// The peer stopped the stream. If it refused it, its answer came
	// first: look for it briefly, unless a Read already is.
	if !q.known.Load() && q.vmu.TryLock() {
		_ = q.Stream.SetReadDeadline(time.Now().Add(answerGrace))
		_ = q.awaitVerdictLocked()
		_ = q.Stream.SetReadDeadline(q.userReadDeadline())
		q.vmu.Unlock()
	}
	var refused *RefusedError
	if q.known.Load() && errors.As(q.verr, &refused) {
		err = q.verr
	}
	return n, err
}

func (q *quicOpener) SetReadDeadline(t time.Time) error {
	q.rdl.Store(&t)
	return q.Stream.SetReadDeadline(t)
}

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// serveQUICStreams accepts the streams the peer opens on c until c ends.
// Each stream's header must arrive within headerTimeout (in its own
// goroutine, counted in wg; at most the link's MaxIncomingStreams at
// once); probes are answered here, the rest handed to deliver.
func serveQUICStreams(wg *sync.WaitGroup, c *quic.Conn, peer spiffeid.ID, st *counters, headerTimeout time.Duration, log *slog.Logger, deliver func(*Stream, <-chan struct{}) bool) {
	for {
		qs, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() {
			s := &quicStream{Stream: qs, conn: c}
			_ = qs.SetReadDeadline(time.Now().Add(headerTimeout))
			authority, err := readRequest(qs)
			if err != nil {
				log.Debug("bad stream header", "error", err)
				qs.CancelRead(0)
				qs.CancelWrite(0)
				return
			}
			_ = qs.SetReadDeadline(time.Time{})
			if authority == "" {
				_ = s.answer(true, "")
				_ = s.Close()
				return
			}
			deliver(newStream(peer, authority, TransportQUIC, s, st), c.Context().Done())
		})
	}
}
