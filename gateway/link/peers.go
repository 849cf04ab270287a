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
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	// ErrNoLink is returned (wrapped) by Listener.Open when the peer
	// has no live link to this listener.
	ErrNoLink = errors.New("no link from peer gateway")
	// ErrTooManyLinks is why a link beyond MaxLinks or MaxLinksPerPeer
	// is refused.
	ErrTooManyLinks = errors.New("too many links")
)

// PeerStatus is a snapshot of a peer gateway's links to a Listener.
type PeerStatus struct {
	// Peer is the peer gateway's verified SPIFFE ID.
	Peer spiffeid.ID
	// Transport is TransportQUIC or TransportTCP: that of the peer's
	// current link, the one Open uses (its most recent).
	Transport string
	// RTT is the current link's smoothed round-trip time: quic-go's
	// estimate on QUIC, the kernel's TCP estimate on TCP; zero when
	// unknown.
	RTT time.Duration
	// RemoteAddr is the current link's remote address.
	RemoteAddr net.Addr
	// Since is when the current link came up.
	Since time.Time
	// Links is the number of the peer's live links: more than one while
	// its dialer moves from TCP back to QUIC, or while the link of a
	// dialer that restarted has not yet timed out.
	Links int
	// OpenStreams is the number of streams, opened by either side, not
	// yet closed, over all the peer's links.
	OpenStreams int64
	// BytesSent and BytesReceived count stream payload both ways over
	// all the peer's links since its first link to this listener: they
	// do not go back when it reconnects.
	BytesSent, BytesReceived uint64
}

// peerState is what a Listener knows of one peer gateway. It is kept
// after the peer's last link goes, so that its counts stay monotonic:
// one per gateway identity that passed AuthorizePeer.
type peerState struct {
	counters
	links []*peerLink // live links, in the order they were registered
}

// peerLink is one link a peer dialled to a Listener. Its connection
// fields are set before it is registered (rev and revConn, of a TCP link,
// under Listener.mu when its reverse connection is paired) and not
// changed after.
type peerLink struct {
	peer      spiffeid.ID
	transport string
	remote    net.Addr
	st        *counters
	done      chan struct{} // closed by linkDown
	down      atomic.Bool

	// Under Listener.mu.
	up    bool
	since time.Time

	qc *quic.Conn // QUIC

	// TCP: the forward connection (served by Listener.httpSrv), the
	// token that pairs the reverse connection with it, and the reverse
	// connection once paired.
	fwd       *h2Conn
	rawTCP    *net.TCPConn
	token     string
	pairTimer *time.Timer
	rev       *http.ClientConn
	revConn   *h2Conn
}

func (pl *peerLink) open(ctx context.Context, authority string) (opener, error) {
	if pl.qc != nil {
		return openQUIC(ctx, pl.qc, authority)
	}
	return openH2(ctx, pl.rev, authority, pl.revConn.LocalAddr(), pl.revConn.RemoteAddr())
}

func (pl *peerLink) rtt() time.Duration {
	if pl.qc != nil {
		return pl.qc.ConnectionStats().SmoothedRTT
	}
	return tcpRTT(pl.rawTCP)
}

func (l *Listener) admitLocked(peer spiffeid.ID) error {
	if l.nlinks >= l.cfg.MaxLinks {
		return fmt.Errorf("%w: this gateway holds %d links (MaxLinks)", ErrTooManyLinks, l.nlinks)
	}
	if ps := l.peers[peer]; ps != nil && len(ps.links) >= l.cfg.MaxLinksPerPeer {
		return fmt.Errorf("%w: %s holds %d links (MaxLinksPerPeer)", ErrTooManyLinks, peer, len(ps.links))
	}
	return nil
}

// register adds a handshaken link within the limits. They are checked
// here, as soon as the handshake has verified the peer's identity, rather
// than inside the handshake: refusing there would save no work and tell
// the peer only "bad certificate".
func (l *Listener) register(pl *peerLink) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closed:
		return ErrListenerClosed
	default:
	}
	if err := l.admitLocked(pl.peer); err != nil {
		return err
	}
	ps := l.peers[pl.peer]
	if ps == nil {
		ps = &peerState{}
		l.peers[pl.peer] = ps
	}
	pl.st = &ps.counters
	pl.done = make(chan struct{})
	ps.links = append(ps.links, pl)
	l.nlinks++
	if pl.token != "" {
		l.tokens[pl.token] = pl
		pl.pairTimer = time.AfterFunc(l.cfg.HandshakeTimeout, func() {
			l.linkDown(pl, errors.New("no reverse connection within the handshake timeout"))
		})
	}
	return nil
}

// markUp makes a registered link usable by Open, unless it went down.
func (l *Listener) markUp(pl *peerLink) bool {
	l.mu.Lock()
	if pl.down.Load() {
		l.mu.Unlock()
		return false
	}
	pl.up, pl.since = true, time.Now()
	if pl.pairTimer != nil {
		pl.pairTimer.Stop()
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	l.log.Info("link up", "peer", pl.peer.String(), "transport", pl.transport, "remote", pl.remote.String())
	return true
}

// linkDown drops a registered link and closes its connections; it may
// be called any number of times, from any of them.
func (l *Listener) linkDown(pl *peerLink, cause error) {
	if !pl.down.CompareAndSwap(false, true) {
		return
	}
	l.mu.Lock()
	if ps := l.peers[pl.peer]; ps != nil && slices.Contains(ps.links, pl) {
		ps.links = slices.DeleteFunc(ps.links, func(x *peerLink) bool { return x == pl })
		l.nlinks--
	}
	delete(l.tokens, pl.token)
	wasUp := pl.up
	rev, revConn := pl.rev, pl.revConn
	if pl.pairTimer != nil {
		pl.pairTimer.Stop()
	}
	l.mu.Unlock()
	close(pl.done)
	if pl.qc != nil {
		_ = pl.qc.CloseWithError(0, "link closed")
	}
	if pl.fwd != nil {
		_ = pl.fwd.Close()
	}
	if rev != nil {
		_ = rev.Close()
		_ = revConn.Close()
	}
	if wasUp {
		l.log.Info("link down", "peer", pl.peer.String(), "transport", pl.transport, "cause", cause)
	}
}

// currentLocked is peer's most recent usable link, nil if none.
func (l *Listener) currentLocked(peer spiffeid.ID) *peerLink {
	ps := l.peers[peer]
	if ps == nil {
		return nil
	}
	var cur *peerLink
	for _, pl := range ps.links {
		if pl.up && (cur == nil || !pl.since.Before(cur.since)) {
			cur = pl
		}
	}
	return cur
}

// Open opens a stream to authority ("host:port" or "ip:port") through
// the peer gateway, over the link that peer dialled to this listener (its
// most recent, if it has several), so that traffic flows both ways over
// one link per pair of clusters, and returns once the peer accepted it.
// When the peer has no live link, Open waits for one while ctx allows (a
// dialer reconnects within its backoff), then returns an error wrapping
// ErrNoLink and ctx's cause: give ctx a deadline. Like Dialer.Open it
// waits for a free stream slot when the peer's limit is reached, returns
// a *RefusedError when the peer refuses the stream, and ctx bounds only
// the opening, not the returned conn's life.
func (l *Listener) Open(ctx context.Context, peer spiffeid.ID, authority string) (net.Conn, error) {
	return l.open(ctx, peer, authority, true)
}

// OpenEarly is Open without the wait for the peer's verdict, as
// Dialer.OpenEarly: it returns once the stream's header is sent; a
// refusal comes as a *RefusedError from Read (and from Write once known).
func (l *Listener) OpenEarly(ctx context.Context, peer spiffeid.ID, authority string) (net.Conn, error) {
	return l.open(ctx, peer, authority, false)
}

func (l *Listener) open(ctx context.Context, peer spiffeid.ID, authority string, wait bool) (net.Conn, error) {
	if err := checkAuthority(authority); err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	for {
		l.mu.Lock()
		pl, changed := l.currentLocked(peer), l.changed
		l.mu.Unlock()
		if pl != nil {
			b, err := openOn(ctx, pl, authority, wait)
			if err != nil {
				return nil, fmt.Errorf("open stream to %s over %s link from %s: %w", authority, pl.transport, peer, err)
			}
			return newConn(b, pl.st), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("open stream to %s: %w %s: %w", authority, ErrNoLink, peer, context.Cause(ctx))
		case <-l.closed:
			return nil, ErrListenerClosed
		}
	}
}

// Peers reports the peer gateways that have a live link to this
// listener, sorted by ID.
func (l *Listener) Peers() []PeerStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []PeerStatus
	for id, ps := range l.peers {
		cur := l.currentLocked(id)
		if cur == nil {
			continue
		}
		n := 0
		for _, pl := range ps.links {
			if pl.up {
				n++
			}
		}
		out = append(out, PeerStatus{
			Peer:          id,
			Transport:     cur.transport,
			RTT:           cur.rtt(),
			RemoteAddr:    cur.remote,
			Since:         cur.since,
			Links:         n,
			OpenStreams:   ps.openStreams.Load(),
			BytesSent:     ps.bytesSent.Load(),
			BytesReceived: ps.bytesReceived.Load(),
		})
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return cmp.Compare(a.Peer.String(), b.Peer.String()) })
	return out
}
