package link

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		Allow0RTT:                  false,
	}
}

// openQUIC opens a stream to authority on c: header, then the peer's
// verdict. "" is a probe.
func openQUIC(ctx context.Context, c *quic.Conn, authority string) (backend, error) {
	qs, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = qs.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = qs.SetDeadline(time.Now()) })
	_, err = qs.Write(appendRequest(nil, authority))
	if err == nil {
		err = readResponse(qs)
	}
	if !stop() && err != nil {
		err = errors.Join(err, context.Cause(ctx))
	}
	if err != nil {
		qs.CancelRead(0)
		qs.CancelWrite(0)
		return nil, err
	}
	_ = qs.SetDeadline(time.Time{})
	return &quicStream{Stream: qs, conn: c}, nil
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
