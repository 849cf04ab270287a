package h1guard

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero Options.
const (
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultMaxHeaderFields = 100
)

// Options configure a guarded connection. The zero value is ready to use.
type Options struct {
	// MaxHeaderBytes bounds a request head (request-line and header
	// section) and, separately, a chunked trailer section, in bytes. Zero
	// means DefaultMaxHeaderBytes. A larger section is rejected with 431.
	// Keep it at or below http.Server.MaxHeaderBytes so that the guard, not
	// net/http, is the one that answers.
	MaxHeaderBytes int

	// MaxHeaderFields bounds the number of field lines in a header or trailer
	// section. Zero means DefaultMaxHeaderFields. More are rejected with 431.
	MaxHeaderFields int

	// OnReject, if not nil, is called once per connection when the guard
	// rejects a message, on the goroutine that reads the connection. reason
	// is one of a small fixed set of strings (never client data), fit for a
	// metric label. It must not block and must not use the connection.
	OnReject func(reason string)
}

// Error is the violation for which a guard rejected a request.
type Error struct {
	// Status is the status code of the response sent for it: 400, 431 or
	// 505.
	Status int
	// Reason is a short fixed description; it never contains client data.
	Reason string
}

func (e *Error) Error() string { return "h1guard: " + e.Reason }

type rejection struct {
	err *Error
	// respond is false when bytes of the rejected request already went to
	// net/http (the violation was in its content): net/http answers that
	// request itself, and a second response would be unsolicited.
	respond bool
}

type mode uint8

const (
	modeHTTP   mode = iota // validating HTTP/1.1 requests
	modeHold               // an Upgrade/CONNECT head waits until net/http is idle
	modeAwait              // the Upgrade/CONNECT request was delivered; waiting for its response
	modePass               // not HTTP/1.1 any more: bytes flow unchecked
	modeFailed             // a violation was found
)

const (
	poolBufSize = 4 << 10
	// bufSlack is how far past MaxHeaderBytes the guard buffers: room for a
	// head at the limit plus what arrives behind it in the same read.
	bufSlack = 8 << 10
	// lingerTimeout bounds how long Close spends sending the rejection and
	// draining unread input, which would otherwise turn the close into an
	// RST that can destroy the response (cf. net/http's rstAvoidanceDelay).
	lingerTimeout = 500 * time.Millisecond
	drainLimit    = 256 << 10
	// parkLimit bounds the bytes a parked read discards (see park).
	parkLimit = 1 << 20
)

var bufPool = sync.Pool{New: func() any { return new([poolBufSize]byte) }}

var errOverflow = errors.New("h1guard: buffer limit")

// Conn is a guarded connection: a net.Conn that delivers the client's bytes
// unchanged but only once they are known to belong to well-framed requests.
// See the package documentation.
type Conn struct {
	conn     net.Conn
	onReject func(string)
	bufLimit int

	// Reader state, guarded by rmu.
	rmu sync.Mutex
	m   machine
	// mode is the reader's mode.
	mode mode
	// buf[r:w] holds the bytes read from conn and not yet delivered; they
	// start at absolute offset del. arr is buf's array when it came from
	// bufPool.
	buf  []byte
	arr  *[poolBufSize]byte
	r, w int
	del  int64
	// cut is the end of what may still be delivered in modeFailed.
	cut int64
	// The pending or current Upgrade/CONNECT request.
	uStart   int64
	uConnect bool
	uActive  bool
	// rerr is a read error from conn to report once the buffer is drained.
	rerr error

	rej    atomic.Pointer[rejection]
	sent   atomic.Bool
	parked atomic.Int32 // reads held by park, for tests

	// Writer side: the detector is armed while the response to an
	// Upgrade/CONNECT request is awaited.
	armed    atomic.Bool
	decision atomic.Int32
	wmu      sync.Mutex
	det      detector

	closeOnce sync.Once
	closeErr  error
}

type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

type closeWriter interface {
	CloseWrite() error
}

// tlsConn is a guarded connection over one that has TLS state, which it
// exposes so that net/http fills in Request.TLS.
type tlsConn struct{ *Conn }

func (c tlsConn) ConnectionState() tls.ConnectionState {
	return c.conn.(connectionStater).ConnectionState()
}

// Wrap returns c guarded: the returned net.Conn is to be served by
// http.Server in place of c. When c has TLS state (a *tls.Conn), the result
// exposes it through a ConnectionState method; complete the handshake first,
// and hand connections that negotiated "h2" to the HTTP/2 server unwrapped.
func Wrap(c net.Conn, opts Options) net.Conn {
	g := newConn(c, opts)
	if _, ok := c.(connectionStater); ok {
		return tlsConn{g}
	}
	return g
}

func newConn(c net.Conn, opts Options) *Conn {
	maxHead := opts.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = DefaultMaxHeaderBytes
	}
	maxFields := opts.MaxHeaderFields
	if maxFields <= 0 {
		maxFields = DefaultMaxHeaderFields
	}
	return &Conn{
		conn:     c,
		onReject: opts.OnReject,
		bufLimit: maxHead + bufSlack,
		m:        newMachine(int64(maxHead), maxFields),
	}
}

// Lookup returns the guard of a connection returned by Wrap or by a listener
// from NewListener, or nil if c is not guarded.
func Lookup(c net.Conn) *Conn {
	switch c := c.(type) {
	case *Conn:
		return c
	case tlsConn:
		return c.Conn
	}
	return nil
}

// NewListener returns a listener whose accepted connections are guarded with
// opts. Do not use it over a TLS listener: wrap after the handshake instead
// (see Wrap).
func NewListener(l net.Listener, opts Options) net.Listener {
	return listener{Listener: l, opts: opts}
}

type listener struct {
	net.Listener
	opts Options
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c, l.opts), nil
}

// Err returns the *Error for which the guard rejected a request, or nil.
func (g *Conn) Err() error {
	if rj := g.rej.Load(); rj != nil {
		return rj.err
	}
	return nil
}

// NetConn returns the wrapped connection. Reading from it directly bypasses
// the guard.
func (g *Conn) NetConn() net.Conn { return g.conn }

// Read delivers the next bytes of the client's stream that are known to be
// well framed: content as it arrives, a request head only once it is
// complete and valid. After a violation it delivers the complete requests
// before it, then io.EOF.
func (g *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	g.rmu.Lock()
	defer g.rmu.Unlock()
	for idle := 0; ; {
		if a := g.approved(); a > g.del {
			n := copy(p, g.buf[g.r:g.r+int(min(a-g.del, int64(len(p))))])
			g.r += n
			g.del += int64(n)
			g.recycle()
			return n, nil
		}
		switch g.mode {
		case modeFailed:
			g.r, g.w = 0, 0
			g.recycle()
			if len(p) == 1 {
				return g.park()
			}
			return 0, io.EOF
		case modePass:
			n, err := g.conn.Read(p)
			g.del += int64(n)
			return n, err
		case modeHold:
			// Release the Upgrade/CONNECT head only to a read that is not
			// net/http's one-byte background read: then net/http has
			// answered every earlier request, and the next status line
			// written is the answer to this one.
			if g.del == g.uStart && len(p) > 1 {
				g.mode = modeHTTP
				g.uActive = true
				g.arm(g.uConnect)
				g.scanBuffered()
				continue
			}
		case modeAwait:
			switch g.decision.Swap(decNone) {
			case decPass:
				g.mode = modePass
				continue
			case decRefused:
				g.mode = modeHTTP
				g.scanBuffered()
				continue
			}
		}
		if g.rerr != nil {
			return 0, g.rerr
		}
		if g.mode == modeHTTP && g.r == g.w {
			// Common case: nothing is pending, so read straight into p
			// and, unless p ends inside a request head, hand it all over.
			n, err := g.conn.Read(p)
			if n > 0 {
				k := g.direct(p[:n])
				if err != nil && !isTimeout(err) {
					g.rerr = err
				}
				if k > 0 {
					return k, nil
				}
				continue
			}
			if err != nil {
				return 0, err
			}
		} else {
			n, err := g.fill()
			if errors.Is(err, errOverflow) {
				g.overflow()
				continue
			}
			if n > 0 && g.mode == modeHTTP {
				g.scanBuffered()
			}
			if err != nil {
				if !isTimeout(err) {
					g.rerr = err
				}
				if n > 0 {
					continue
				}
				return 0, err
			}
			if n > 0 {
				continue
			}
		}
		if idle++; idle > 100 {
			return 0, io.ErrNoProgress
		}
	}
}

// approved returns the absolute end of the bytes that may be delivered.
func (g *Conn) approved() int64 {
	switch g.mode {
	case modeHold:
		return g.uStart
	case modeAwait:
		return g.m.pos
	case modePass:
		return g.del + int64(g.w-g.r)
	case modeFailed:
		return g.cut
	}
	if g.m.headOpen() {
		return g.m.msgStart
	}
	return g.m.pos
}

// direct scans b, freshly read into the caller's buffer at offset del, and
// returns how many of its bytes may be delivered; it keeps the others.
func (g *Conn) direct(b []byte) int {
	g.drive(b)
	k := len(b)
	if g.mode != modePass {
		k = int(g.approved() - g.del)
	}
	if k < len(b) && g.mode != modeFailed {
		g.stash(b[k:])
	}
	g.del += int64(k)
	return k
}

// scanBuffered scans the buffered bytes the machine has not seen yet.
func (g *Conn) scanBuffered() {
	g.drive(g.buf[g.r+int(g.m.pos-g.del) : g.w])
}

// drive runs the machine over b while the guard is validating, and acts on
// its events.
func (g *Conn) drive(b []byte) {
	for g.mode == modeHTTP {
		n, ev := g.m.scan(b)
		b = b[n:]
		switch ev {
		case evNone:
			return
		case evHeadDone:
			if g.m.candidate {
				g.mode = modeHold
				g.uStart, g.uConnect = g.m.headStart, g.m.connect
			}
		case evMsgDone:
			if g.uActive {
				g.uActive = false
				g.mode = modeAwait
			}
		case evPreface:
			g.mode = modePass
		case evError:
			g.reject(g.m.status, g.m.reason, g.m.msgStart)
		}
	}
}

// overflow rejects the connection when the buffer is full.
func (g *Conn) overflow() {
	switch g.mode {
	case modeHold:
		g.reject(400, "too much data behind an upgrade request", g.uStart)
	case modeAwait:
		g.reject(400, "too much data before the upgrade response", g.m.pos)
	default:
		g.reject(431, "header section too large", g.m.msgStart)
	}
}

// reject records a violation in the request starting at msgStart.
func (g *Conn) reject(status int, reason string, msgStart int64) {
	exposed := g.del > msgStart
	g.cut = msgStart
	if exposed {
		g.cut = g.del
	}
	g.mode = modeFailed
	g.rej.Store(&rejection{err: &Error{Status: status, Reason: reason}, respond: !exposed})
	if g.onReject != nil {
		g.onReject(reason)
	}
}

// park holds net/http's one-byte background read (which it starts while a
// handler runs) after a violation instead of failing it: an error there
// would cancel the context of the valid request being answered. It discards
// input until the read is interrupted (net/http sets a past deadline when the
// handler is done) or the client goes away; the next read gets io.EOF.
func (g *Conn) park() (int, error) {
	g.parked.Add(1)
	var scratch [512]byte
	for total := 0; total < parkLimit; {
		n, err := g.conn.Read(scratch[:])
		total += n
		if err != nil {
			return 0, err
		}
	}
	return 0, io.EOF
}

// stash keeps b, which the caller's buffer cannot deliver yet, in an empty
// guard buffer. Its size is bounded by the caller's buffer.
func (g *Conn) stash(b []byte) {
	if len(b) <= poolBufSize {
		g.arr = bufPool.Get().(*[poolBufSize]byte)
		g.buf = g.arr[:]
	} else {
		g.buf = make([]byte, max(len(b), 2*poolBufSize))
	}
	g.r, g.w = 0, copy(g.buf, b)
}

// fill reads more bytes from conn into the buffer.
func (g *Conn) fill() (int, error) {
	if g.buf == nil {
		g.arr = bufPool.Get().(*[poolBufSize]byte)
		g.buf, g.r, g.w = g.arr[:], 0, 0
	}
	if g.w == len(g.buf) {
		switch {
		case g.r > 0:
			g.w = copy(g.buf, g.buf[g.r:g.w])
			g.r = 0
		case len(g.buf) >= g.bufLimit:
			return 0, errOverflow
		default:
			nb := make([]byte, min(2*len(g.buf), g.bufLimit))
			g.w = copy(nb, g.buf[g.r:g.w])
			g.r = 0
			g.release()
			g.buf = nb
		}
	}
	n, err := g.conn.Read(g.buf[g.w:])
	g.w += n
	return n, err
}

// recycle gives the buffer back once it is empty.
func (g *Conn) recycle() {
	if g.r == g.w {
		g.r, g.w = 0, 0
		g.release()
	}
}

func (g *Conn) release() {
	if g.arr != nil {
		bufPool.Put(g.arr)
		g.arr = nil
	}
	g.buf = nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// arm starts watching written bytes for the response to the Upgrade or
// CONNECT request being released.
func (g *Conn) arm(connect bool) {
	g.wmu.Lock()
	g.det = detector{connect: connect}
	g.decision.Store(decNone)
	g.armed.Store(true)
	g.wmu.Unlock()
}

// Write writes p to the connection unchanged. While the response to an
// Upgrade or CONNECT request is awaited it also reads its status code.
func (g *Conn) Write(p []byte) (int, error) {
	if g.armed.Load() {
		g.observe(p)
	}
	return g.conn.Write(p)
}

func (g *Conn) observe(p []byte) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if !g.armed.Load() {
		return
	}
	if d := g.det.feed(p); d != decNone {
		// Published before the bytes go out, so before the client can
		// answer them.
		g.decision.Store(d)
		g.armed.Store(false)
	}
}

// Close closes the connection. If the guard rejected a request that net/http
// never saw, it first sends the rejection response and drains unread input
// for a short while.
func (g *Conn) Close() error {
	g.closeOnce.Do(func() {
		g.sendRejection()
		g.closeErr = g.conn.Close()
	})
	return g.closeErr
}

// CloseWrite sends the rejection response, if one is due, and shuts down the
// writing side of the connection, when the wrapped connection supports it.
func (g *Conn) CloseWrite() error {
	g.sendRejection()
	if cw, ok := g.conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (g *Conn) sendRejection() {
	rj := g.rej.Load()
	if rj == nil || !rj.respond || !g.sent.CompareAndSwap(false, true) {
		return
	}
	_ = g.conn.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := g.conn.Write(rejectionResponse(rj.err)); err != nil {
		return
	}
	if cw, ok := g.conn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = g.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	var scratch [512]byte
	for n := 0; n < drainLimit; {
		k, err := g.conn.Read(scratch[:])
		n += k
		if err != nil {
			break
		}
	}
}

func rejectionResponse(e *Error) []byte {
	body := e.Reason + "\n"
	b := make([]byte, 0, 128+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(e.Status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// LocalAddr returns the local address of the wrapped connection.
func (g *Conn) LocalAddr() net.Addr { return g.conn.LocalAddr() }

// RemoteAddr returns the remote address of the wrapped connection.
func (g *Conn) RemoteAddr() net.Addr { return g.conn.RemoteAddr() }

// SetDeadline sets the deadlines of the wrapped connection.
func (g *Conn) SetDeadline(t time.Time) error { return g.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the wrapped connection; a read
// blocked in the guard returns when it passes.
func (g *Conn) SetReadDeadline(t time.Time) error { return g.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the wrapped connection.
func (g *Conn) SetWriteDeadline(t time.Time) error { return g.conn.SetWriteDeadline(t) }
