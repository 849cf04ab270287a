package echo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Response headers set on every HTTP response, errors and WebSocket
// handshakes included, so that a test can attribute even a failure to a pod.
const (
	HeaderPod     = "X-Causeway-Pod"
	HeaderCluster = "X-Causeway-Cluster"
)

// WebSocketPath is the path on which the HTTP listener accepts WebSocket
// connections and echoes every message back with its type.
const WebSocketPath = "/ws"

// HTTPReport is the JSON body of every HTTP response other than errors and
// WebSocket. Tests decode it to learn who served a request and what arrived
// after the mesh was done with it.
type HTTPReport struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Cluster   string `json:"cluster"`
	Node      string `json:"node"`
	IP        string `json:"ip"`

	Method string `json:"method"`
	Path   string `json:"path"`
	// Query is the raw query string, without the '?'.
	Query string `json:"query"`
	Host  string `json:"host"`
	// Proto is "HTTP/1.1" or "HTTP/2.0".
	Proto string `json:"proto"`
	// Headers are the request headers as received (Host excluded: see Host).
	Headers    http.Header `json:"headers"`
	RemoteAddr string      `json:"remoteAddr"`
	// BodyBytes is the length of the request body.
	BodyBytes int64 `json:"bodyBytes"`
	// Padding holds exactly ?size= bytes of 'x'; it is omitted when size is
	// 0.
	Padding string `json:"padding,omitempty"`
}

type httpServer struct {
	ln  net.Listener
	id  Identity
	log *slog.Logger
	srv *http.Server

	// stopping is cancelled when a graceful stop begins, killed when its grace
	// runs out. http.Server.Shutdown does not track hijacked connections, so
	// WebSocket connections are stopped and waited for here.
	stopping, killed context.Context
	stop, kill       context.CancelFunc
	mu               sync.Mutex // orders ws.Add against stop and ws.Wait
	ws               sync.WaitGroup
}

func newHTTPServer(ln net.Listener, id Identity, log *slog.Logger) *httpServer {
	s := &httpServer{ln: ln, id: id, log: log}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.killed, s.kill = context.WithCancel(context.Background())

	// Cleartext HTTP/2 is prior knowledge only. The HTTP/1.1 "Upgrade: h2c"
	// dance is not offered: RFC 9113 section 3.1 deprecates it, net/http does
	// not implement it, and golang.org/x/net/http2/h2c, which does, is itself
	// deprecated. An Upgrade: h2c request is answered over HTTP/1.1.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:   s,
		Protocols: &protocols,
		// Bounds idle and half-sent connections only; no WriteTimeout, since
		// ?delay= and ?size= legitimately make responses slow and large.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Connection-level errors (a client resetting mid-request) are per
		// request, so they are Debug, not the log package's stderr default.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

func (s *httpServer) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *httpServer) shutdown(ctx context.Context) {
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()

	// Shutdown's error is ctx's, checked below.
	_ = s.srv.Shutdown(ctx)
	wsDone := make(chan struct{})
	go func() {
		s.ws.Wait()
		close(wsDone)
	}()
	select {
	case <-wsDone:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		s.kill()
		_ = s.srv.Close() // Forced stop; the connections' errors are moot.
	}
	<-wsDone
	s.kill()
}

// paddingChunk is written repeatedly for ?size=, so a 10 MiB response costs
// no 10 MiB allocation.
var paddingChunk = bytes.Repeat([]byte{'x'}, 32<<10)

func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set(HeaderPod, s.id.Pod)
	h.Set(HeaderCluster, s.id.Cluster)
	if r.URL.Path == WebSocketPath {
		s.serveWebSocket(w, r)
		return
	}

	ctl, err := parseControls(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "bad echo control: "+err.Error(), http.StatusBadRequest)
		return
	}
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request body larger than "+strconv.Itoa(MaxRequestBody)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		s.log.Debug("read request body", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if ctl.delay > 0 {
		s.log.Debug("delaying response", "path", r.URL.Path, "remote", r.RemoteAddr, "delay", ctl.delay)
		t := time.NewTimer(ctl.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // The client is gone; nobody to answer.
		}
	}

	body, err := json.Marshal(HTTPReport{
		Pod:        s.id.Pod,
		Namespace:  s.id.Namespace,
		Cluster:    s.id.Cluster,
		Node:       s.id.Node,
		IP:         s.id.IP,
		Method:     r.Method,
		Path:       r.URL.Path,
		Query:      r.URL.RawQuery,
		Host:       r.Host,
		Proto:      r.Proto,
		Headers:    r.Header,
		RemoteAddr: r.RemoteAddr,
		BodyBytes:  n,
	})
	if err != nil { // Unreachable: every field is a string, int or header map.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if err := writeReport(w, ctl, body); err != nil {
		s.log.Debug("write response", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	}
}

// writeReport writes the JSON report body, splicing in ctl.size bytes of
// padding as the last field so the response stays one valid JSON object with
// an exact Content-Length.
func writeReport(w http.ResponseWriter, ctl controls, body []byte) error {
	h := w.Header()
	if ctl.status == http.StatusNoContent || ctl.status == http.StatusNotModified {
		w.WriteHeader(ctl.status) // These statuses forbid a body (RFC 9110).
		return nil
	}
	const padOpen, padClose = `,"padding":"`, "\"}\n"
	h.Set("Content-Type", "application/json")
	if ctl.size == 0 {
		h.Set("Content-Length", strconv.Itoa(len(body)+1))
		w.WriteHeader(ctl.status)
		_, err := w.Write(append(body, '\n'))
		return err
	}
	head := body[:len(body)-1] // Drop the closing brace.
	h.Set("Content-Length", strconv.FormatInt(int64(len(head)+len(padOpen))+ctl.size+int64(len(padClose)), 10))
	w.WriteHeader(ctl.status)
	if _, err := w.Write(append(head, padOpen...)); err != nil {
		return err
	}
	for left := ctl.size; left > 0; {
		chunk := paddingChunk[:min(left, int64(len(paddingChunk)))]
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	_, err := io.WriteString(w, padClose)
	return err
}

func (s *httpServer) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.stopping.Err() != nil {
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	s.ws.Add(1)
	s.mu.Unlock()
	defer s.ws.Done()

	// Origin checks protect browsers' cookies; a test workload has none, and
	// tests dial through gateways whose Host differs from any Origin.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("accept websocket", "remote", r.RemoteAddr, "err", err)
		return // Accept has answered the request.
	}
	c.SetReadLimit(MaxRequestBody)

	closed := make(chan struct{})
	stopGoingAway := context.AfterFunc(s.stopping, func() {
		defer close(closed)
		_ = c.Close(websocket.StatusGoingAway, "server shutting down") // Best effort; killed bounds it.
	})
	defer func() {
		if !stopGoingAway() {
			<-closed
		}
	}()

	// The request context must not be used after Accept (see its doc), so the
	// loop runs under killed: a graceful stop lets the close handshake above
	// end it, a forced one aborts it.
	err = echoWebSocket(s.killed, c)
	if status := websocket.CloseStatus(err); status != websocket.StatusNormalClosure && status != websocket.StatusGoingAway {
		s.log.Debug("websocket echo ended", "remote", r.RemoteAddr, "err", err)
	}
	_ = c.CloseNow() // Usually already closed by the handshake.
}

// echoWebSocket sends every message back with its type until the connection
// ends, streaming so a large message is not held in memory twice.
func echoWebSocket(ctx context.Context, c *websocket.Conn) error {
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		wr, err := c.Writer(ctx, typ)
		if err != nil {
			return err
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return err
		}
		if err := wr.Close(); err != nil {
			return err
		}
	}
}
