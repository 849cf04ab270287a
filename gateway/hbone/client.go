package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Client defaults, used when the corresponding field is zero.
const (
	// DefaultClientHandshakeTimeout bounds the TLS handshake with a
	// proxy.
	DefaultClientHandshakeTimeout = 10 * time.Second
	// DefaultClientIdleTimeout is how long a pooled connection without
	// open tunnels is kept.
	DefaultClientIdleTimeout = 5 * time.Minute
)

// StatusError is the error Dial returns when the proxy answers the
// CONNECT with a status other than 200.
type StatusError struct {
	// Code is the HTTP status code, such as 403 when the proxy's policy
	// refused the tunnel.
	Code int
	// Proxy and Dst are Dial's arguments.
	Proxy string
	Dst   netip.AddrPort
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("hbone CONNECT %s via %s: proxy answered %d %s", e.Dst, e.Proxy, e.Code, http.StatusText(e.Code))
}

// Client opens HBONE tunnels. It keeps one HTTP/2 connection per proxy
// address and opens every tunnel to that proxy as a stream on it; a
// connection that is gone, or going away (GOAWAY), or at the proxy's
// stream limit is replaced by a new one for new tunnels, while its open
// tunnels run on.
//
// Set the fields, then call Dial; they must not change after that. A
// Client is safe for concurrent use. Close it to release its connections.
type Client struct {
	// Bundle holds the trust domain's authorities. The proxy must
	// present an X509-SVID that verifies against it. Required.
	Bundle x509bundle.Source

	// Certificate returns the client's own X509-SVID, presented to
	// proxies. It is called for every handshake, so a rotated SVID is
	// used from the next connection on. Required.
	Certificate func() (*tls.Certificate, error)

	// ExpectPeer checks the proxy's verified SPIFFE ID; a non-nil error
	// fails the handshake. Required: any workload of the trust domain can
	// present a valid SVID, so a valid chain alone does not say that the
	// peer is the proxy meant.
	ExpectPeer func(spiffeid.ID) error

	// Logger receives connection failures at Debug level. slog.Default()
	// when nil.
	Logger *slog.Logger

	// HandshakeTimeout bounds each TLS handshake;
	// DefaultClientHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
	// IdleTimeout closes pooled connections without open tunnels;
	// DefaultClientIdleTimeout when zero.
	IdleTimeout time.Duration

	// Header, when set, is sent with every CONNECT request (the server
	// gives it to Handle as Peer.Header).
	Header http.Header

	// DialContext, when set, makes the connection to a proxy instead of a
	// plain TCP dial: to bind a source address, or to reach the proxy
	// through another tunnel (a cross-cluster session to a remote
	// proxy runs inside a tunnel through the east-west gateways).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	initOnce sync.Once
	initErr  error
	tr       *http.Transport
	log      *slog.Logger

	mu     sync.Mutex
	conns  map[string]*poolConn // by proxy address
	closed bool
}

// poolConn is a pooled connection, or one being made: ready is closed
// when cc or err is set.
type poolConn struct {
	ready chan struct{}
	cc    *http.ClientConn
	err   error
	local net.Addr
}

// Dial opens a tunnel to dst through the HBONE proxy at proxyAddr
// ("host:port"), reusing the pooled connection to that proxy or making
// one. ctx bounds the connection (when one is made) and the CONNECT
// exchange; once Dial has returned, it no longer affects the tunnel.
// A non-200 answer is a *StatusError.
//
// The returned net.Conn's CloseWrite ends the request body (END_STREAM),
// which the proxy passes on as a half-close; Close resets the stream if it
// is still open. Deadlines are not supported: the Set*Deadline methods
// return an error wrapping errors.ErrUnsupported.
func (c *Client) Dial(ctx context.Context, proxyAddr string, dst netip.AddrPort) (net.Conn, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	pc, err := c.reserve(ctx, proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("hbone dial %s via %s: %w", dst, proxyAddr, err)
	}

	// The stream must outlive ctx, which bounds only its opening: it gets
	// its own context, cancelled by ctx until RoundTrip returns and by
	// Close afterwards.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	pr, pw := io.Pipe()
	authority := dst.String()
	header := c.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	req := (&http.Request{
		Method:        http.MethodConnect,
		URL:           &url.URL{Scheme: "https", Host: authority},
		Host:          authority,
		Header:        header,
		Body:          pr,
		ContentLength: -1,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
	}).WithContext(streamCtx)
	resp, err := pc.cc.RoundTrip(req)
	stopped := stop()
	if err != nil {
		cancel()
		_ = pw.Close()
		if !stopped {
			err = errors.Join(err, ctx.Err())
		}
		return nil, fmt.Errorf("hbone dial %s via %s: %w", dst, proxyAddr, err)
	}
	if !stopped {
		// ctx ended just as the answer came; the stream is being reset.
		_ = resp.Body.Close()
		_ = pw.Close()
		return nil, fmt.Errorf("hbone dial %s via %s: %w", dst, proxyAddr, ctx.Err())
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		_ = pw.Close()
		cancel()
		return nil, &StatusError{Code: resp.StatusCode, Proxy: proxyAddr, Dst: dst}
	}
	return &tunnelConn{
		body:   resp.Body,
		pw:     pw,
		cancel: cancel,
		local:  pc.local,
		remote: net.TCPAddrFromAddrPort(dst),
	}, nil
}

// Close closes every pooled connection, which ends their tunnels. Dial
// fails after Close.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	var errs []error
	for _, pc := range conns {
		<-pc.ready
		if pc.cc != nil {
			errs = append(errs, pc.cc.Close())
		}
	}
	return errors.Join(errs...)
}

func (c *Client) init() error {
	c.initOnce.Do(func() {
		switch {
		case c.Bundle == nil:
			c.initErr = errors.New("hbone client: Bundle is nil")
			return
		case c.Certificate == nil:
			c.initErr = errors.New("hbone client: Certificate is nil")
			return
		case c.ExpectPeer == nil:
			c.initErr = errors.New("hbone client: ExpectPeer is nil")
			return
		}
		c.log = c.Logger
		if c.log == nil {
			c.log = slog.Default()
		}
		tlsConf := baseTLSConfig()
		// crypto/tls's own verification checks host names, which SVIDs
		// do not carry; VerifyConnection does the X509-SVID verification
		// instead (it runs on every handshake, resumed or not).
		tlsConf.InsecureSkipVerify = true
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			id, err := verifyPeer(c.Bundle, cs)
			if err != nil {
				return err
			}
			if err := c.ExpectPeer(id); err != nil {
				return fmt.Errorf("unexpected proxy identity %s: %w", id, err)
			}
			return nil
		}
		tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.Certificate()
		}
		tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(clientSessionCacheSize)
		var protos http.Protocols
		protos.SetHTTP2(true)
		dial := c.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		c.tr = &http.Transport{
			// No Proxy: tunnels go straight to the HBONE proxy, whatever
			// the environment says.
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := dial(ctx, network, addr)
				if err == nil {
					if slot, ok := ctx.Value(localAddrKey{}).(*net.Addr); ok {
						*slot = conn.LocalAddr()
					}
				}
				return conn, err
			},
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: or(c.HandshakeTimeout, DefaultClientHandshakeTimeout),
			IdleConnTimeout:     or(c.IdleTimeout, DefaultClientIdleTimeout),
			Protocols:           &protos,
		}
		c.conns = make(map[string]*poolConn)
	})
	return c.initErr
}

// localAddrKey is the context key under which NewClientConn's dial
// reports the connection's local address.
type localAddrKey struct{}

// reserve returns a connection to proxyAddr with a stream slot reserved
// for the caller's RoundTrip: the pooled one when it can take a stream,
// else a new one that replaces it in the pool.
func (c *Client) reserve(ctx context.Context, proxyAddr string) (*poolConn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, net.ErrClosed
		}
		pc, ok := c.conns[proxyAddr]
		if !ok {
			pc = &poolConn{ready: make(chan struct{})}
			c.conns[proxyAddr] = pc
			c.mu.Unlock()
			c.connect(ctx, proxyAddr, pc)
			if pc.err != nil {
				return nil, pc.err
			}
			if err := pc.cc.Reserve(); err == nil {
				return pc, nil
			}
			continue
		}
		c.mu.Unlock()

		select {
		case <-pc.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if pc.err == nil {
			if err := pc.cc.Reserve(); err == nil {
				return pc, nil
			}
		}
		// Failed, gone, going away or full: drop it from the pool so
		// that the next round makes a new one. A failure of another
		// caller's dial (its ctx, say) is retried with ours.
		c.mu.Lock()
		if c.conns[proxyAddr] == pc {
			delete(c.conns, proxyAddr)
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// connect makes pc's connection and closes pc.ready.
func (c *Client) connect(ctx context.Context, proxyAddr string, pc *poolConn) {
	defer close(pc.ready)
	var local net.Addr
	cc, err := c.tr.NewClientConn(context.WithValue(ctx, localAddrKey{}, &local), "https", proxyAddr)
	if err != nil {
		pc.err = fmt.Errorf("connect to proxy: %w", err)
		c.log.Debug("hbone connect", "proxy", proxyAddr, "error", err)
		c.mu.Lock()
		if c.conns[proxyAddr] == pc {
			delete(c.conns, proxyAddr)
		}
		c.mu.Unlock()
		return
	}
	if local == nil {
		// The dial did not go through DialContext (a proxy's, say).
		local = &net.TCPAddr{}
	}
	pc.cc, pc.local = cc, local
	// The hook drops the connection from the pool once it is unusable,
	// and closes a connection that left the pool once its last tunnel
	// ends (nothing else would).
	cc.SetStateHook(func(cc *http.ClientConn) {
		c.mu.Lock()
		pooled := c.conns[proxyAddr] == pc
		if pooled && cc.Err() != nil {
			delete(c.conns, proxyAddr)
			pooled = false
		}
		c.mu.Unlock()
		if !pooled && cc.InFlight() == 0 {
			_ = cc.Close()
		}
	})
}

// errDeadline is returned by the tunnel's Set*Deadline methods.
var errDeadline = fmt.Errorf("hbone tunnel deadlines: %w", errors.ErrUnsupported)

// tunnelConn is a tunnel seen as a net.Conn: reads come from the CONNECT
// response body, writes go to the request body through a pipe.
type tunnelConn struct {
	body          io.ReadCloser
	pw            *io.PipeWriter
	cancel        context.CancelFunc
	local, remote net.Addr

	closeOnce sync.Once
}

func (t *tunnelConn) Read(p []byte) (int, error) { return t.body.Read(p) }

func (t *tunnelConn) Write(p []byte) (int, error) { return t.pw.Write(p) }

// CloseWrite ends the request body: the proxy sees END_STREAM and
// half-closes the destination. Reads go on until the destination closes.
func (t *tunnelConn) CloseWrite() error { return t.pw.Close() }

// Close ends the tunnel both ways: a stream still open is reset.
func (t *tunnelConn) Close() error {
	t.closeOnce.Do(func() {
		_ = t.pw.CloseWithError(net.ErrClosed)
		_ = t.body.Close()
		t.cancel()
	})
	return nil
}

func (t *tunnelConn) LocalAddr() net.Addr { return t.local }

func (t *tunnelConn) RemoteAddr() net.Addr { return t.remote }

func (t *tunnelConn) SetDeadline(time.Time) error      { return errDeadline }
func (t *tunnelConn) SetReadDeadline(time.Time) error  { return errDeadline }
func (t *tunnelConn) SetWriteDeadline(time.Time) error { return errDeadline }
