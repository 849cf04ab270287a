package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/gateway/lb"
)

// maxRetryBody is the most request body kept for replay. A longer body
// is streamed and its request is not retried (Envoy's
// per_request_buffer_limit has the same effect).
const maxRetryBody = 64 << 10

// newTransports returns the plaintext pools; local, when not nil, is the
// source address of their connections.
func newTransports(local net.Addr) (h1, h2 *http.Transport) {
	dialer := &net.Dialer{Timeout: defaultConnectTimeout, KeepAlive: 30 * time.Second, LocalAddr: local}
	base := func() *http.Transport {
		return &http.Transport{
			DialContext:           dialer.DialContext,
			MaxIdleConns:          4096,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 0,
			DisableCompression:    true,
			ForceAttemptHTTP2:     false,
		}
	}
	h1 = base()
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	h2 = base()
	h2.Protocols = new(http.Protocols)
	h2.Protocols.SetUnencryptedHTTP2(true)
	h2.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 1 << 20}
	return h1, h2
}

// RoundTrip forwards one request for ReverseProxy: it picks an endpoint
// per try with the cluster's balancer and retries by the route's policy.
func (p *Proxy) RoundTrip(out *http.Request) (*http.Response, error) {
	req, _ := out.Context().Value(requestKey{}).(*request)
	if req == nil {
		return nil, errors.New("request state missing")
	}
	c := req.cluster
	rp := req.retry
	if rp == nil {
		rp = &defaultRetry
		if idempotentNoBody(out) {
			rp = &defaultRetryIdempotent
		}
	}
	tries := 1
	if rp != nil && !req.upgrade {
		tries += rp.numRetries
	}
	var body *replayBody
	if tries > 1 && out.Body != nil && out.Body != http.NoBody && (out.ContentLength <= 0 || out.ContentLength > maxRetryBody) {
		// A body of unknown length (streaming gRPC, chunked uploads) or
		// over the buffer limit is streamed, not read ahead: reading it
		// first would stall a client that waits for an answer before it
		// sends more. Such requests are not retried.
		tries = 1
	}
	if tries > 1 && out.Body != nil && out.Body != http.NoBody {
		var err error
		body, err = newReplayBody(out.Body)
		if err != nil {
			return nil, &clientBodyError{err}
		}
		if !body.replayable() {
			tries = 1
		}
		out.Body = body.reader()
	}
	tr := p.h1
	switch {
	case c.tls != nil:
		tr = p.tlsTransport(c, req.upgrade, false)
	case c.http2 && !req.upgrade:
		tr = p.h2
	}
	var tried []string
	avoid := func(addr string) bool {
		for _, t := range tried {
			if t == addr {
				return true
			}
		}
		return false
	}
	for try := 0; ; try++ {
		var addr string
		var done func()
		switch {
		case c.kind == clusterOriginalDst:
			if !req.info.origDst.IsValid() {
				return nil, errNoEndpoint
			}
			addr, done = req.info.origDst.String(), func() {}
		case c.balancer == nil:
			return nil, errNoEndpoint
		default:
			pick, err := c.balancer.Pick(lb.Request{Hash: req.hash, HasHash: req.hasHash, Avoid: avoid})
			if err != nil {
				return nil, errNoEndpoint
			}
			addr, done = pick.Endpoint.Address, pick.Done
		}
		tried = append(tried, addr)
		attempt := out
		var cancel context.CancelFunc = func() {}
		if try > 0 || (rp != nil && rp.perTryTimeout > 0) {
			ctx := out.Context()
			if rp != nil && rp.perTryTimeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, rp.perTryTimeout)
			}
			attempt = out.Clone(ctx)
			if body != nil {
				attempt.Body = body.reader()
			}
		}
		attempt.URL.Host = addr
		var rt http.RoundTripper = tr
		switch {
		case p.useTunnel(c, addr):
			// HTTP/1, HTTP/2 and TLS alike go through the tunnel: the
			// pools that dial it are separate, so a connection made in
			// plaintext is never reused for an endpoint that wants HBONE.
			switch {
			case c.tls != nil:
				rt = p.tlsTransport(c, req.upgrade, true)
			case tr == p.h1 && p.h1fastT.eligible(attempt, req.upgrade):
				rt = p.h1fastT
			default:
				rt = p.tunnelTransport(tr)
			}
		case tr == p.h1 && p.h1fast.eligible(attempt, req.upgrade):
			rt = p.h1fast
		}
		resp, err := rt.RoundTrip(attempt)
		if try+1 < tries && p.shouldRetry(rp, attempt, resp, err) && p.takeRetry() {
			if resp != nil {
				_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
				_ = resp.Body.Close()
			}
			cancel()
			done()
			p.metrics.retries.WithLabelValues(c.name).Inc()
			wait := backoff(rp, try)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				p.retries.Add(-1)
			case <-out.Context().Done():
				t.Stop()
				p.retries.Add(-1)
				return nil, out.Context().Err()
			}
			continue
		}
		if err != nil {
			cancel()
			done()
			if errors.Is(err, context.DeadlineExceeded) && out.Context().Err() == nil {
				return nil, errPerTryTimeout
			}
			return nil, err
		}
		resp.Body = wrapBody(resp.Body, func() { cancel(); done() })
		return resp, nil
	}
}

// tlsTransport returns the connection pool of a cluster that originates
// TLS, made once per TLS configuration. HTTP/2 clusters speak h2 over
// TLS (ALPN); upgrades always go over HTTP/1.1.
func (p *Proxy) tlsTransport(c *cluster, upgrade, tunnel bool) *http.Transport {
	key := c.tlsKey
	if upgrade {
		key += "|upgrade"
	}
	if tunnel {
		key += "|hbone"
	}
	if v, ok := p.tlsTransports.Load(key); ok {
		return v.(*http.Transport)
	}
	t := p.h1.Clone()
	if tunnel {
		t.DialContext = p.h1t.DialContext
	}
	t.TLSClientConfig = c.tls.Clone()
	t.Protocols = new(http.Protocols)
	if c.http2 && !upgrade {
		t.Protocols.SetHTTP2(true)
		t.TLSClientConfig.NextProtos = []string{"h2"}
	} else {
		t.Protocols.SetHTTP1(true)
		t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	v, _ := p.tlsTransports.LoadOrStore(key, t)
	return v.(*http.Transport)
}

// takeRetry enforces the retry budget: retries in flight may be at most
// max(3, 20% of active requests), Envoy's default budget.
func (p *Proxy) takeRetry() bool {
	limit := max(3, p.active.Load()/5)
	if p.retries.Add(1) > limit {
		p.retries.Add(-1)
		p.metrics.retryOverflow.Inc()
		return false
	}
	return true
}

// backoff is Envoy's: a random time in [0, base·2^try), capped at max.
func backoff(rp *retryPolicy, try int) time.Duration {
	ceiling := rp.baseInterval << min(try, 20)
	if ceiling > rp.maxInterval || ceiling <= 0 {
		ceiling = rp.maxInterval
	}
	return rand.N(ceiling) + 1
}

func (p *Proxy) shouldRetry(rp *retryPolicy, r *http.Request, resp *http.Response, err error) bool {
	if rp == nil || r.Context().Err() != nil && !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		return false
	}
	if err != nil {
		if isClientGone(err) {
			return false
		}
		connectFailure := isConnectFailure(err)
		switch {
		case rp.on&(retry5xx|retryGatewayError) != 0:
			return true
		case connectFailure && rp.on&retryConnectFailure != 0:
			return true
		case !connectFailure && rp.on&retryReset != 0:
			return true
		case isRefusedStream(err) && rp.on&retryRefusedStream != 0:
			return true
		}
		return false
	}
	code := resp.StatusCode
	switch {
	case rp.on&retry5xx != 0 && code >= 500:
		return true
	case rp.on&retryGatewayError != 0 && (code == 502 || code == 503 || code == 504):
		return true
	case rp.on&retryRetriable4xx != 0 && code == 409:
		return true
	case rp.on&retryRetriableStatusCodes != 0:
		for _, c := range rp.codes {
			if c == code {
				return true
			}
		}
	}
	if gs := resp.Header.Get("Grpc-Status"); gs != "" {
		switch gs {
		case "1":
			return rp.on&retryGRPCCancelled != 0
		case "4":
			return rp.on&retryGRPCDeadlineExceeded != 0
		case "8":
			return rp.on&retryGRPCResourceExhausted != 0
		case "13":
			return rp.on&retryGRPCInternal != 0
		case "14":
			return rp.on&retryGRPCUnavailable != 0
		}
	}
	return false
}

var (
	errNoEndpoint    = errors.New("no healthy upstream")
	errPerTryTimeout = errors.New("upstream per-try timeout")
)

type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// defaultRetry is the retry policy of routes that have none, as Istio's
// sidecars have: a request that cannot have reached the application (no
// connection could be made, the stream was refused) is tried again, up to
// twice, on other endpoints. This is what moves traffic to another
// cluster's endpoints at once when a cluster link goes down.
var defaultRetry = retryPolicy{on: retryConnectFailure | retryRefusedStream, numRetries: 2, baseInterval: defaultRetryBase, maxInterval: 10 * defaultRetryBase}

// defaultRetryIdempotent is the default for an idempotent request without
// a body (RFC 9110, section 9.2.2): it is also tried again when its
// connection fails before the response (a pooled connection that died
// with a cluster link, say).
var defaultRetryIdempotent = retryPolicy{on: retryConnectFailure | retryRefusedStream | retryReset, numRetries: 2, baseInterval: defaultRetryBase, maxInterval: 10 * defaultRetryBase}

func idempotentNoBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return r.Body == nil || r.Body == http.NoBody
	}
	return false
}

func isConnectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isRefusedStream(err error) bool {
	var se http2.StreamError
	return errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream
}

func isClientGone(err error) bool {
	var cbe *clientBodyError
	return errors.As(err, &cbe) || errors.Is(err, context.Canceled)
}

// classifyError maps a forwarding error to the local reply Envoy users
// know: 503 when no connection could be made, 504 on timeouts, 400 when
// the client's own body was bad.
func classifyError(ctx context.Context, err error) (int, string) {
	var cbe *clientBodyError
	switch {
	case errors.As(err, &cbe):
		return http.StatusBadRequest, "bad request body"
	case errors.Is(err, errNoEndpoint):
		return http.StatusServiceUnavailable, "no healthy upstream"
	case errors.Is(err, errPerTryTimeout), errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return http.StatusGatewayTimeout, "upstream request timeout"
	case isConnectFailure(err):
		return http.StatusServiceUnavailable, "upstream connect error"
	case errors.Is(err, errPeerCertificate), errors.As(err, new(tls.AlertError)), errors.As(err, new(*tls.CertificateVerificationError)):
		return http.StatusServiceUnavailable, "upstream connect error: TLS handshake"
	case errors.As(err, new(*hbone.StatusError)):
		return http.StatusServiceUnavailable, "upstream connect error: the endpoint's proxy refused the tunnel"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers"
	}
	return http.StatusBadGateway, "upstream error"
}

// localReply answers a request the proxy could not forward. gRPC clients
// get a trailers-only gRPC status, as Envoy sends, so they see a status
// code rather than a protocol error.
func (p *Proxy) localReply(w http.ResponseWriter, r *http.Request, status int, msg, cluster string) {
	p.metrics.localReplies.WithLabelValues(strconv.Itoa(status)).Inc()
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/grpc") {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", strconv.Itoa(grpcStatusFor(status)))
		w.Header().Set("Grpc-Message", msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
	_ = cluster
}

// grpcStatusFor maps an HTTP status to a gRPC code as gRPC's HTTP
// mapping document says.
func grpcStatusFor(status int) int {
	switch status {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 504:
		return 4 // DEADLINE_EXCEEDED
	case 429, 502, 503:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// mirror sends a copy of r to a mirror cluster and forgets it. Only
// requests whose body is already replayable (none, or buffered) are
// mirrored; at most cap(p.mirrors) mirrors run at once, the rest are
// dropped.
func (p *Proxy) mirror(r *http.Request, mp mirrorPolicy, m *model) {
	if mp.fraction < 1_000_000 && rand.Uint32N(1_000_000) >= mp.fraction {
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		return
	}
	c := m.clusters[mp.cluster]
	if c == nil || c.balancer == nil {
		return
	}
	select {
	case p.mirrors <- struct{}{}:
	default:
		p.metrics.mirrorDropped.Inc()
		return
	}
	pick, err := c.balancer.Pick(lb.Request{})
	if err != nil {
		<-p.mirrors
		return
	}
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", pick.Endpoint.Address
	host := r.Host
	if h, port, ok := strings.Cut(host, ":"); ok {
		out.Host = h + "-shadow:" + port
	} else {
		out.Host = host + "-shadow"
	}
	tr := p.h1
	if c.http2 {
		tr = p.h2
	}
	if p.useTunnel(c, pick.Endpoint.Address) {
		tr = p.tunnelTransport(tr)
	}
	go func() {
		defer func() { <-p.mirrors }()
		defer pick.Done()
		ctx, cancel := context.WithTimeout(out.Context(), 10*time.Second)
		defer cancel()
		resp, err := tr.RoundTrip(out.WithContext(ctx))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		p.metrics.mirrored.WithLabelValues(c.name).Inc()
	}()
}

// replayBody buffers up to maxRetryBody bytes of a request body so a
// retry can send it again. Each try reads its own reader: a transport may
// still be reading the previous try's body when the next one starts.
type replayBody struct {
	buf  []byte
	rest io.ReadCloser // nil when the whole body is in buf
}

func newReplayBody(rc io.ReadCloser) (*replayBody, error) {
	buf, err := io.ReadAll(io.LimitReader(rc, maxRetryBody+1))
	if err != nil {
		return nil, err
	}
	b := &replayBody{buf: buf}
	if len(buf) > maxRetryBody {
		b.rest = rc
	} else {
		_ = rc.Close()
	}
	return b, nil
}

func (b *replayBody) replayable() bool { return b.rest == nil }

func (b *replayBody) reader() io.ReadCloser {
	if b.rest == nil {
		return io.NopCloser(bytes.NewReader(b.buf))
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b.buf), b.rest), b.rest}
}

// wrapBody calls onClose once when the response body is closed. The body
// of a 101 response is the upgraded connection: its Write is kept so
// ReverseProxy can still use it as one.
func wrapBody(rc io.ReadCloser, onClose func()) io.ReadCloser {
	b := &bodyCloser{ReadCloser: rc, onClose: onClose}
	if rw, ok := rc.(io.ReadWriteCloser); ok {
		return &rwBodyCloser{bodyCloser: b, w: rw}
	}
	return b
}

type bodyCloser struct {
	io.ReadCloser
	once    sync.Once
	onClose func()
}

func (b *bodyCloser) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.onClose)
	return err
}

type rwBodyCloser struct {
	*bodyCloser
	w io.Writer
}

func (b *rwBodyCloser) Write(p []byte) (int, error) { return b.w.Write(p) }
