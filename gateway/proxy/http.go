package proxy

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/gateway/authz"
	"github.com/causeway-mesh/causeway/gateway/jwtauthn"
	"github.com/causeway-mesh/causeway/gateway/lb"
	"github.com/causeway-mesh/causeway/gateway/match"
)

// request is the per-request state the round tripper needs.
type request struct {
	model     *model
	route     *route
	vhost     *virtualHost
	rc        *routeConfig
	cluster   *cluster
	retry     *retryPolicy
	hash      uint64
	hasHash   bool
	setCookie *http.Cookie
	upgrade   bool
	start     time.Time
	info      *connInfo
	wc        weightedCluster
	host      string // the client's authority
}

type requestKey struct{}

// ServeHTTP routes one request. It never panics on client input: every
// failure becomes a local reply (an HTTP status, or a gRPC status for gRPC
// requests) and a metric.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m := p.store.model()
	info, _ := r.Context().Value(connInfoKey{}).(*connInfo)
	if info == nil {
		p.localReply(w, r, http.StatusInternalServerError, "no connection state", "-")
		return
	}
	var hm *httpManager
	if info.chain != nil {
		hm = info.chain.http
	}
	if cur := m.listeners[info.listener.name]; cur != nil {
		// The current configuration's chain for the same destination
		// port, so that a policy change applies to the next request.
		ch := cur.chain
		if len(cur.byPort) > 0 {
			ch = cur.chainFor(info.port)
		}
		if ch != nil && ch.http != nil {
			hm = ch.http
		}
	}
	if hm == nil {
		p.localReply(w, r, http.StatusNotFound, "listener has no HTTP configuration", "-")
		return
	}
	// An identity a client claims in a header is never trusted: the proxy
	// learns identities from certificates only, and adds none. What
	// arrives for the workload loses every such header.
	if info.listener.inbound {
		for _, h := range identityHeaders {
			delete(r.Header, h)
		}
	} else {
		delete(r.Header, "X-Forwarded-Client-Cert")
	}
	path := match.RawPath(r)
	if hm.normalize {
		target := r.RequestURI
		if !strings.HasPrefix(target, "/") && target != "*" {
			target = r.URL.EscapedPath() // absolute-form: the path part
		}
		np, err := authz.NormalizePath(target, hm.pathOptions)
		if err != nil {
			p.metrics.badRequests.WithLabelValues("path").Inc()
			p.localReply(w, r, http.StatusBadRequest, "invalid path", "-")
			return
		}
		if np != path {
			// What Envoy does to :path: every filter, the route and the
			// endpoint see the normalised path.
			path = np
			if unescaped, err := url.PathUnescape(np); err == nil {
				r.URL.Path, r.URL.RawPath = unescaped, np
			}
			r.RequestURI = np
			if r.URL.RawQuery != "" {
				r.RequestURI += "?" + r.URL.RawQuery
			}
		}
	}
	var jwtMeta map[string]any
	for _, a := range hm.jwt {
		res, err := a.Authenticate(r)
		if err != nil {
			p.metrics.denied.WithLabelValues("jwt").Inc()
			var je *jwtauthn.Error
			if errors.As(err, &je) {
				je.WriteResponse(w)
			} else {
				p.localReply(w, r, http.StatusUnauthorized, "Jwt verification fails", "-")
			}
			return
		}
		res.Apply(r)
		for k, v := range res.Metadata {
			if jwtMeta == nil {
				jwtMeta = map[string]any{}
			}
			jwtMeta[k] = v
		}
	}
	if len(hm.rbac) > 0 {
		areq := authzRequest(r, info, path, jwtMeta)
		for _, e := range hm.rbac {
			if ok, _ := e.Allowed(areq); !ok {
				p.metrics.denied.WithLabelValues("rbac").Inc()
				p.localReply(w, r, http.StatusForbidden, "RBAC: access denied", "-")
				return
			}
		}
	}
	rc := hm.inline
	if rc == nil {
		rc = m.routes[hm.routeName]
	}
	if rc == nil {
		p.localReply(w, r, http.StatusNotFound, "route configuration "+hm.routeName+" not found", "-")
		return
	}
	vh := rc.find(r.Host)
	if vh == nil {
		p.localReply(w, r, http.StatusNotFound, "no virtual host for "+r.Host, "-")
		return
	}
	rt := vh.matchPath(r, path)
	if rt == nil {
		p.localReply(w, r, http.StatusNotFound, "no route matched", "-")
		return
	}
	switch {
	case rt.direct != nil:
		p.writeHeaderOps(w.Header(), rt, vh, rc, nil)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(rt.direct.status)
		_, _ = w.Write([]byte(rt.direct.body))
		p.metrics.observe("-", rt.direct.status, start)
		return
	case rt.redirect != nil:
		p.serveRedirect(w, r, rt.redirect)
		p.metrics.observe("-", rt.redirect.status, start)
		return
	}
	wc := pickWeighted(rt.clusters, rt.totalWeight)
	c := m.clusters[wc.name]
	if c == nil {
		p.localReply(w, r, rt.notFoundCode, "cluster "+wc.name+" not found", wc.name)
		return
	}
	inflight := p.inflight(c.name)
	if n := inflight.Add(1); c.maxRequests > 0 && n > c.maxRequests {
		inflight.Add(-1)
		p.metrics.overflow.WithLabelValues(c.name).Inc()
		w.Header().Set("X-Envoy-Overloaded", "true")
		p.localReply(w, r, http.StatusServiceUnavailable, "upstream overflow", c.name)
		return
	}
	defer inflight.Add(-1)
	p.active.Add(1)
	defer p.active.Add(-1)

	req := &request{model: m, route: rt, vhost: vh, rc: rc, cluster: c, start: start, info: info}
	req.retry = rt.retry
	if req.retry == nil {
		req.retry = vh.retry
	}
	req.upgrade = isUpgrade(r)
	if req.upgrade && (!hm.websocket || r.ProtoMajor != 1 || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket")) {
		// Only WebSocket upgrades are proxied, and only where the listener
		// allows them; others (h2c, TLS) are dropped so the request is an
		// ordinary one.
		r.Header.Del("Upgrade")
		req.upgrade = false
	}
	p.computeHash(r, rt, req)

	ctx := context.WithValue(r.Context(), requestKey{}, req)
	if rt.timeout > 0 && !req.upgrade {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.timeout)
		defer cancel()
	}
	r = r.WithContext(ctx)
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", newRequestID())
	}
	for _, mp := range rt.mirrors {
		p.mirror(r, mp, m)
	}
	req.wc, req.host = wc, r.Host
	if hw, ok := w.(*h1Writer); ok && !req.upgrade {
		p.forwardHTTP1(hw, r, req)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// newReverseProxy returns the one ReverseProxy every request goes
// through; the per-request choices travel in the request's context.
func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			p.rewriteOutbound(pr.Out, pr.In, pr.In.Context().Value(requestKey{}).(*request))
		},
		Transport: p,
		// 0: ReverseProxy still flushes at once for streaming responses
		// (no Content-Length: gRPC, chunked) and server-sent events; a
		// negative interval would cost a timer and a write per response.
		FlushInterval: 0,
		BufferPool:    bufferPool{},
		ErrorLog:      p.server.ErrorLog,
		ModifyResponse: func(resp *http.Response) error {
			p.modifyResponse(resp, resp.Request.Context().Value(requestKey{}).(*request))
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			req := r.Context().Value(requestKey{}).(*request)
			status, msg := classifyError(r.Context(), err)
			p.localReply(w, r, status, msg, req.cluster.name)
		},
	}
}

// rewriteOutbound makes out, a copy of in, the request for the endpoint.
func (p *Proxy) rewriteOutbound(out, in *http.Request, req *request) {
	rt := req.route
	out.URL.Scheme = "http"
	if req.cluster.tls != nil {
		out.URL.Scheme = "https"
	}
	out.URL.Host = req.cluster.name // replaced per try by the round tripper
	out.Host = req.host
	if rt.hostRewrite != "" {
		out.Host = rt.hostRewrite
	}
	rewritePath(out, in, rt)
	applyOps(out.Header, req.wc.reqAdd, req.wc.reqDel)
	applyOps(out.Header, rt.reqAdd, rt.reqDel)
	applyOps(out.Header, req.vhost.reqAdd, req.vhost.reqDel)
	applyOps(out.Header, req.rc.reqAdd, req.rc.reqDel)
	// ReverseProxy's Rewrite drops the client's forwarding headers;
	// like Envoy, keep X-Forwarded-For and say how the request came.
	if xff := in.Header["X-Forwarded-For"]; len(xff) > 0 {
		out.Header["X-Forwarded-For"] = xff
	}
	if req.info.tls != nil || in.TLS != nil {
		out.Header["X-Forwarded-Proto"] = []string{"https"}
	} else {
		out.Header["X-Forwarded-Proto"] = []string{"http"}
	}
}

// modifyResponse applies the route's response header operations and
// counts the response.
func (p *Proxy) modifyResponse(resp *http.Response, req *request) {
	applyOps(resp.Header, req.wc.respAdd, req.wc.respDel)
	p.writeHeaderOps(resp.Header, req.route, req.vhost, req.rc, req.setCookie)
	p.metrics.observe(req.cluster.name, resp.StatusCode, req.start)
}

// bufferPool lends ReverseProxy its copy buffers instead of allocating
// 32 KiB per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		copyBuffers.Put((*[32 << 10]byte)(b[:32<<10]))
	}
}

func (p *Proxy) writeHeaderOps(h http.Header, rt *route, vh *virtualHost, rc *routeConfig, cookie *http.Cookie) {
	applyOps(h, rt.respAdd, rt.respDel)
	applyOps(h, vh.respAdd, vh.respDel)
	applyOps(h, rc.respAdd, rc.respDel)
	if cookie != nil {
		h.Add("Set-Cookie", cookie.String())
	}
}

func applyOps(h http.Header, add []headerOp, del []string) {
	for _, name := range del {
		h.Del(name)
	}
	for _, op := range add {
		switch {
		case op.ifAbsent:
			if _, ok := h[op.name]; !ok {
				h[op.name] = []string{op.value}
			}
		case op.append:
			h[op.name] = append(h[op.name], op.value)
		default:
			h[op.name] = []string{op.value}
		}
	}
}

func rewritePath(out, in *http.Request, rt *route) {
	switch {
	case rt.rewriteRe != nil:
		out.URL.Path, out.URL.RawPath = rt.rewriteRe.ReplaceAllString(in.URL.Path, rt.rewriteRepl), ""
	case rt.prefixRewrite != "" && (rt.match.Kind() == match.PathSeparatedPrefix || rt.match.Kind() == match.PathPrefix):
		path := in.URL.Path
		rest := path[min(len(rt.match.Path()), len(path)):]
		np := rt.prefixRewrite + rest
		if strings.HasSuffix(rt.prefixRewrite, "/") && strings.HasPrefix(rest, "/") {
			np = rt.prefixRewrite + rest[1:]
		}
		if np == "" {
			np = "/"
		}
		out.URL.Path, out.URL.RawPath = np, ""
	}
}

func (p *Proxy) serveRedirect(w http.ResponseWriter, r *http.Request, rd *redirect) {
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	if rd.scheme != "" {
		u.Scheme = rd.scheme
	}
	if rd.host != "" {
		u.Host = rd.host
	}
	if rd.port != 0 {
		host := u.Host
		if h, _, ok := strings.Cut(host, ":"); ok {
			host = h
		}
		u.Host = host + ":" + strconv.Itoa(int(rd.port))
	}
	if rd.path != "" {
		u.Path = rd.path
	}
	if rd.stripQuery {
		u.RawQuery = ""
	}
	http.Redirect(w, r, u.String(), rd.status)
}

func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

func pickWeighted(cs []weightedCluster, total uint32) weightedCluster {
	if len(cs) == 1 {
		return cs[0]
	}
	n := rand.Uint32N(total)
	for _, c := range cs {
		if n < c.weight {
			return c
		}
		n -= c.weight
	}
	return cs[len(cs)-1]
}

func (p *Proxy) computeHash(r *http.Request, rt *route, req *request) {
	for _, hp := range rt.hash {
		var key string
		switch {
		case hp.header != "":
			key = strings.Join(r.Header.Values(hp.header), ",")
		case hp.cookie != "":
			if ck, err := r.Cookie(hp.cookie); err == nil {
				key = ck.Value
			} else if hp.cookieTT != nil {
				key = newRequestID()
				req.setCookie = &http.Cookie{Name: hp.cookie, Value: key, Path: hp.cookiePath, HttpOnly: true}
				if *hp.cookieTT > 0 {
					req.setCookie.MaxAge = int(hp.cookieTT.Seconds())
				}
			}
		case hp.sourceIP:
			if req.info != nil && req.info.source.IsValid() {
				key = req.info.source.Addr().String()
			}
		}
		if key == "" {
			continue
		}
		h := lb.HashString(key)
		if req.hasHash {
			req.hash = (req.hash<<1 | req.hash>>63) ^ h
		} else {
			req.hash, req.hasHash = h, true
		}
		if hp.terminal {
			break
		}
	}
}

func newRequestID() string {
	// A version 4 UUID from the runtime's ChaCha8 generator: unique and
	// unpredictable enough for tracing, without a system call per request.
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// find returns the virtual host for an authority, as Envoy matches
// domains: exact, then the longest suffix wildcard, then the longest
// prefix wildcard, then "*". An authority with a port that matches no
// domain is tried again without it.
func (rc *routeConfig) find(host string) *virtualHost {
	host = strings.ToLower(host)
	if v := rc.findOne(host); v != nil {
		return v
	}
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		if v := rc.findOne(host[:i]); v != nil {
			return v
		}
	}
	return rc.star
}

func (rc *routeConfig) findOne(host string) *virtualHost {
	if v := rc.exact[host]; v != nil {
		return v
	}
	for _, d := range rc.suffix {
		if len(host) > len(d.part) && strings.HasSuffix(host, d.part) {
			return d.vhost
		}
	}
	for _, d := range rc.prefix {
		if len(host) > len(d.part) && strings.HasPrefix(host, d.part) {
			return d.vhost
		}
	}
	return nil
}

// match returns the first route that matches r, by its raw path.
func (v *virtualHost) match(r *http.Request) *route { return v.matchPath(r, match.RawPath(r)) }

// matchPath returns the first route that matches r with path (raw or
// normalised, without query).
func (v *virtualHost) matchPath(r *http.Request, path string) *route {
	// The query is parsed once, and only if a route has query matchers.
	var q url.Values
	query := func() url.Values {
		if q == nil {
			q = r.URL.Query()
		}
		return q
	}
	for _, rt := range v.routes {
		if rt.match.MatchQuery(r, path, query) {
			return rt
		}
	}
	return nil
}

func canonical(name string) string { return http.CanonicalHeaderKey(name) }

// identityHeaders are request headers that claim a client identity. They
// are removed from every request an inbound listener serves before any
// filter runs (X-Forwarded-Client-Cert from every request): identities
// come from verified certificates and tunnels only, and the proxy forwards
// none (Envoy's forward_client_cert_details SANITIZE, its default, does
// the same for X-Forwarded-Client-Cert). The Istio peer-metadata headers
// are among them because a workload behind Istio-compatible tooling could
// trust them.
var identityHeaders = []string{
	"X-Forwarded-Client-Cert",
	"X-Envoy-Peer-Metadata",
	"X-Envoy-Peer-Metadata-Id",
	"X-Client-Cert",
	"X-Ssl-Client-Cert",
	"X-Spiffe-Id",
}

// authzRequest describes r for the RBAC engines. The peer identity comes
// only from what the connection verified: a client certificate the
// listener's TLS context checked, or the SVID of the HBONE tunnel.
func authzRequest(r *http.Request, info *connInfo, path string, jwtMeta map[string]any) *authz.Request {
	areq := &authz.Request{
		Method: r.Method, Path: path, Query: r.URL.RawQuery, Host: r.Host, Header: r.Header,
		SourceIP: info.source.Addr(), JWTMetadata: jwtMeta, FilterState: info.filterState,
	}
	dst := info.origDst
	if !dst.IsValid() {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil {
				dst = ap
			}
		}
	}
	areq.DestinationIP, areq.DestinationPort = dst.Addr().Unmap(), dst.Port()
	fillPeer(areq, info)
	if info.tls == nil && r.TLS != nil {
		areq.TLS, areq.ServerName = true, r.TLS.ServerName
	}
	return areq
}
