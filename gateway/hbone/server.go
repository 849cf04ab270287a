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
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Server defaults, used when the corresponding field is zero.
const (
	// DefaultMaxConcurrentStreams is how many tunnels one client
	// connection may hold open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
	DefaultMaxConcurrentStreams = 100
	// DefaultHandshakeTimeout bounds the TLS handshake of a new
	// connection, so that a peer that connects and stays silent does not
	// hold a goroutine and a socket.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a connection with no open tunnel is
	// kept before the server closes it (with GOAWAY).
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultDialTimeout bounds the dial of a tunnel's destination.
	DefaultDialTimeout = 5 * time.Second
)

// copyBufferSize is the size of the buffer a tunnel copies the
// destination's bytes through; 32 KiB is io.Copy's and fills two default
// HTTP/2 DATA frames.
const copyBufferSize = 32 << 10

// Server accepts HBONE tunnels: mutually authenticated TLS 1.3
// connections speaking HTTP/2, each CONNECT stream of which is one TCP
// connection to the stream's :authority.
//
// Set the fields, then call Serve; they must not change after that. A
// Server is safe for concurrent use.
type Server struct {
	// Bundle holds the trust domain's authorities. Every client must
	// present an X509-SVID that verifies against it; the leaf's trust
	// domain selects the bundle, so a client of another trust domain is
	// refused during the handshake. A *pki.Bundle is a Source. Required.
	Bundle x509bundle.Source

	// Certificate returns the server's own X509-SVID, leaf first. It is
	// called for every handshake, so a rotated SVID is used from the next
	// connection on. Required.
	Certificate func() (*tls.Certificate, error)

	// Authorize decides whether the verified peer may open a tunnel to
	// dst. A non-nil error refuses the stream with 403. It is called once
	// per stream, on the stream's goroutine, and must be fast. Required:
	// a server without a policy would be an open proxy.
	Authorize func(peer spiffeid.ID, dst netip.AddrPort) error

	// Dial connects to a tunnel's destination; a *net.Dialer when nil.
	// ctx ends when the stream does and after DialTimeout. A connection
	// that implements CloseWrite() error is half-closed when the client
	// half-closes the tunnel. A failure answers 503. Unused when Handle
	// is set.
	Dial func(ctx context.Context, dst netip.AddrPort) (net.Conn, error)

	// Handle, when set, serves every authorized tunnel itself instead of
	// dialling its destination: the server answers 200 and hands Handle
	// the stream as a net.Conn (see Stream). Handle runs on the stream's
	// goroutine; it may return before the stream ends, having handed conn
	// on, and the stream then lasts until conn is closed or the client
	// goes. A proxy uses it to serve tunnels with its own listeners.
	Handle func(peer Peer, dst netip.AddrPort, conn net.Conn)

	// Logger receives connection and stream failures at Debug level and
	// nothing per stream above it. slog.Default() when nil.
	Logger *slog.Logger

	// MaxConcurrentStreams is the per-connection stream limit
	// advertised in HTTP/2 SETTINGS; DefaultMaxConcurrentStreams when
	// zero.
	MaxConcurrentStreams int
	// HandshakeTimeout bounds each TLS handshake; DefaultHandshakeTimeout
	// when zero.
	HandshakeTimeout time.Duration
	// IdleTimeout closes connections without open tunnels;
	// DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// DialTimeout bounds each destination dial; DefaultDialTimeout when
	// zero.
	DialTimeout time.Duration

	initOnce sync.Once
	initErr  error
	srv      *http.Server
	log      *slog.Logger
	// streams counts running handlers, so that Shutdown returns only
	// once every tunnel's goroutines are gone.
	streams sync.WaitGroup
}

// Serve accepts connections on l (a plain TCP listener: Serve does the
// TLS) until Shutdown is called or l fails. It returns
// http.ErrServerClosed after Shutdown, and an error without serving when
// a required field is missing. Serve may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	// The certificate comes from TLSConfig.GetCertificate, hence no files.
	return s.srv.ServeTLS(l, "", "")
}

// Shutdown stops accepting connections, sends GOAWAY on every open one,
// and waits for the tunnels to end on their own until ctx is done; then
// it closes every connection and destination, which ends the remaining
// tunnels at once, waits for their goroutines and returns ctx's error.
// Use a short ctx deadline as the drain period.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Closing the connections cancels every stream's context,
		// which closes its destination (see serveTunnel), so the
		// handlers return promptly.
		err = errors.Join(fmt.Errorf("shutdown hbone server: %w", err), s.srv.Close())
	}
	s.streams.Wait()
	return err
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		switch {
		case s.Bundle == nil:
			s.initErr = errors.New("hbone server: Bundle is nil")
			return
		case s.Certificate == nil:
			s.initErr = errors.New("hbone server: Certificate is nil")
			return
		case s.Authorize == nil:
			s.initErr = errors.New("hbone server: Authorize is nil")
			return
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		tlsConf := baseTLSConfig()
		// RequireAnyClientCert asks for a certificate and lets
		// VerifyConnection verify it as an X509-SVID; crypto/tls's own
		// client verification knows nothing of SPIFFE IDs.
		tlsConf.ClientAuth = tls.RequireAnyClientCert
		tlsConf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.Certificate()
		}
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			_, err := verifyPeer(s.Bundle, cs)
			return err
		}
		var protos http.Protocols
		protos.SetHTTP2(true)
		handshake := or(s.HandshakeTimeout, DefaultHandshakeTimeout)
		s.srv = &http.Server{
			Handler:   http.HandlerFunc(s.serveTunnel),
			TLSConfig: tlsConf,
			Protocols: &protos,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams: or(s.MaxConcurrentStreams, DefaultMaxConcurrentStreams),
			},
			// net/http bounds the TLS handshake by the smallest of
			// ReadHeaderTimeout, ReadTimeout and WriteTimeout. HTTP/2
			// applies ReadTimeout and WriteTimeout to every stream,
			// which would cut long-lived tunnels, so only
			// ReadHeaderTimeout is set.
			ReadHeaderTimeout: handshake,
			IdleTimeout:       or(s.IdleTimeout, DefaultIdleTimeout),
			// Handshake failures are a peer's problem, not ours: they
			// are logged at Debug.
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	})
	return s.initErr
}

// serveTunnel handles one stream. See the package documentation for the
// status codes and the half-close rules.
func (s *Server) serveTunnel(w http.ResponseWriter, r *http.Request) {
	s.streams.Add(1)
	defer s.streams.Done()

	if r.Method != http.MethodConnect {
		w.Header().Set("Allow", http.MethodConnect)
		http.Error(w, "only CONNECT is allowed", http.StatusMethodNotAllowed)
		return
	}
	dst, err := netip.ParseAddrPort(r.Host)
	if err != nil || dst.Port() == 0 || !dst.Addr().IsValid() || dst.Addr().IsUnspecified() {
		http.Error(w, "CONNECT authority must be an IP:port literal", http.StatusBadRequest)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		// Unreachable: the handshake requires a verified client SVID.
		http.Error(w, "no client certificate", http.StatusForbidden)
		return
	}
	// The chain was verified in the handshake (VerifyConnection, which
	// runs on resumed sessions too), so reading the ID from the leaf
	// suffices.
	peer, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	if err != nil {
		http.Error(w, "client certificate has no SPIFFE ID", http.StatusForbidden)
		return
	}
	if err := s.Authorize(peer, dst); err != nil {
		s.log.Debug("hbone tunnel denied", "peer", peer.String(), "dst", dst.String(), "error", err)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if s.Handle != nil {
		s.serveStream(w, r, peer, dst)
		return
	}
	target, err := s.dial(r.Context(), dst)
	if err != nil {
		s.log.Debug("hbone tunnel dial", "peer", peer.String(), "dst", dst.String(), "error", err)
		http.Error(w, "destination unreachable", http.StatusServiceUnavailable)
		return
	}
	defer target.Close()
	// The stream's context ends when the client resets the stream or the
	// connection goes (including Shutdown's forced close): closing the
	// destination then unblocks both copies.
	stop := context.AfterFunc(r.Context(), func() { _ = target.Close() })
	defer stop()

	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}

	uploadDone := make(chan struct{})
	go func() {
		defer close(uploadDone)
		// Client → destination. A clean request-body EOF is the
		// client's half-close, passed on as CloseWrite.
		if _, err := io.Copy(target, r.Body); err != nil {
			_ = target.Close()
			return
		}
		closeWrite(target)
	}()

	// Destination → client, flushed per read so that interactive
	// protocols are not delayed.
	buf := make([]byte, copyBufferSize)
	for {
		n, rerr := target.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				break
			}
			if err := rc.Flush(); err != nil {
				break
			}
		}
		if rerr != nil {
			break
		}
	}
	// The response ends when this handler returns; net/http then resets
	// a request stream the client is still sending on (RST_STREAM
	// NO_ERROR, RFC 9113 §8.1), as it has no way to half-close a
	// response while still reading the request. Closing the body here
	// unblocks the upload copy, which must finish before the handler
	// returns.
	_ = r.Body.Close()
	_ = target.Close()
	<-uploadDone
}

func (s *Server) dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, or(s.DialTimeout, DefaultDialTimeout))
	defer cancel()
	if s.Dial != nil {
		return s.Dial(ctx, dst)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", dst.String())
}

// closeWrite half-closes c when it can, and does nothing otherwise.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
