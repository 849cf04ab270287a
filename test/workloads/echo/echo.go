package echo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Protocol names accepted in Listener.Protocol.
const (
	// ProtocolHTTP serves HTTP/1.1, cleartext HTTP/2 (prior knowledge) and
	// WebSocket on /ws.
	ProtocolHTTP = "http"
	// ProtocolGRPC serves grpc.testing.TestService, grpc.health.v1 and
	// server reflection.
	ProtocolGRPC = "grpc"
	// ProtocolTCP greets with one line and then echoes raw bytes.
	ProtocolTCP = "tcp"
)

// DefaultShutdownGrace bounds a graceful stop when Config.ShutdownGrace is
// zero. It is well under the 30 s default terminationGracePeriodSeconds, so
// the test world never has to escalate to SIGKILL.
const DefaultShutdownGrace = 5 * time.Second

// Identity is who the workload claims to be; it is reported verbatim in every
// HTTP response, gRPC SimpleResponse and TCP greeting so that a test can tell
// which pod in which cluster served it.
type Identity struct {
	Pod       string
	Namespace string
	Cluster   string
	Node      string
	IP        string
}

// Listener is one address to serve one protocol on.
type Listener struct {
	// Addr is host:port. The host must be an IP literal or empty (all
	// interfaces); the port must be numeric, and 0 picks a free port.
	Addr string
	// Protocol is one of ProtocolHTTP, ProtocolGRPC or ProtocolTCP.
	Protocol string
}

// String formats l as ADDR=PROTO, the form ParseListener accepts.
func (l Listener) String() string { return l.Addr + "=" + l.Protocol }

// ParseListener parses ADDR=PROTO (for example "10.0.0.7:8080=http") and
// validates the result.
func ParseListener(s string) (Listener, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return Listener{}, fmt.Errorf("listener %q: want ADDR=PROTO", s)
	}
	l := Listener{Addr: s[:i], Protocol: s[i+1:]}
	if err := l.validate(); err != nil {
		return Listener{}, err
	}
	return l, nil
}

func (l Listener) validate() error {
	switch l.Protocol {
	case ProtocolHTTP, ProtocolGRPC, ProtocolTCP:
	default:
		return fmt.Errorf("listener %q: unknown protocol %q (want %s, %s or %s)",
			l.Addr, l.Protocol, ProtocolHTTP, ProtocolGRPC, ProtocolTCP)
	}
	host, port, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return fmt.Errorf("listener %q: parse address: %w", l.Addr, err)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("listener %q: host must be an IP address or empty: %w", l.Addr, err)
		}
	}
	// Strict on purpose: net.Listen would also accept service names such as
	// "http", which silently depend on /etc/services.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listener %q: port must be a number from 0 to 65535", l.Addr)
	}
	return nil
}

// Config configures Run and Listen.
type Config struct {
	Identity  Identity
	Listeners []Listener
	// ShutdownGrace bounds the graceful stop after the serving context is
	// done; connections still open after it are closed. Zero means
	// DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Logger receives lifecycle logs at Info and per-request logs at Debug.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	if len(c.Listeners) == 0 {
		return errors.New("no listeners configured")
	}
	var errs []error
	for _, l := range c.Listeners {
		errs = append(errs, l.validate())
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown grace %s is negative", c.ShutdownGrace))
	}
	return errors.Join(errs...)
}

// protocolServer is one listener's server. serve blocks until shutdown is
// called and then returns nil; any other return is a failure. shutdown stops
// gracefully until ctx is done and then forcibly; it returns once every
// connection is closed.
type protocolServer interface {
	serve() error
	shutdown(ctx context.Context)
}

// Server is a set of bound listeners; Serve serves them. A Server is used
// once.
type Server struct {
	cfg     Config
	log     *slog.Logger
	addrs   []net.Addr
	servers []protocolServer
}

// Listen validates cfg and binds every listener, so that a caller (a test
// using port 0, say) can learn the bound addresses before serving. Nothing is
// bound if cfg is invalid; if any bind fails, the listeners already bound are
// closed and the error names the address.
func Listen(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid echo config: %w", err)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("cluster", cfg.Identity.Cluster, "pod", cfg.Identity.Pod)

	s := &Server{cfg: cfg, log: log}
	var lc net.ListenConfig
	lns := make([]net.Listener, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		ln, err := lc.Listen(context.Background(), "tcp", l.Addr)
		if err != nil {
			for _, ln := range lns {
				_ = ln.Close() // Nothing was served; the bind error is what matters.
			}
			return nil, fmt.Errorf("listen on %s for %s: %w", l.Addr, l.Protocol, err)
		}
		lns = append(lns, ln)
	}
	for i, l := range cfg.Listeners {
		ln := lns[i]
		plog := log.With("protocol", l.Protocol, "addr", ln.Addr().String())
		var ps protocolServer
		switch l.Protocol {
		case ProtocolHTTP:
			ps = newHTTPServer(ln, cfg.Identity, plog)
		case ProtocolGRPC:
			ps = newGRPCServer(ln, cfg.Identity, plog)
		case ProtocolTCP:
			ps = newTCPServer(ln, cfg.Identity, plog)
		}
		s.addrs = append(s.addrs, ln.Addr())
		s.servers = append(s.servers, ps)
	}
	return s, nil
}

// Addrs returns the bound address of each listener, in Config.Listeners
// order.
func (s *Server) Addrs() []net.Addr { return s.addrs }

// Serve serves every listener until ctx is done, then stops them all
// gracefully within Config.ShutdownGrace. It returns nil after a stop caused
// by ctx; if a listener fails while serving, the others are stopped too and
// the failure is returned.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.servers))
	var wg sync.WaitGroup
	for i, ps := range s.servers {
		wg.Go(func() {
			if err := ps.serve(); err != nil {
				errc <- fmt.Errorf("serve %s on %s: %w", s.cfg.Listeners[i].Protocol, s.addrs[i], err)
			}
		})
		s.log.Info("echo listening", "protocol", s.cfg.Listeners[i].Protocol, "addr", s.addrs[i].String())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}

	start := time.Now()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
	defer cancel()
	var swg sync.WaitGroup
	for _, ps := range s.servers {
		swg.Go(func() { ps.shutdown(sctx) })
	}
	swg.Wait()
	wg.Wait()
	close(errc)

	errs := []error{serveErr}
	for err := range errc {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err == nil {
		s.log.Info("echo stopped", "took", time.Since(start), "graceful", sctx.Err() == nil)
	}
	return err
}

// Run binds every listener in cfg and serves until ctx is done, then shuts
// down gracefully within cfg.ShutdownGrace. Invalid config is reported before
// anything listens.
func Run(ctx context.Context, cfg Config) error {
	s, err := Listen(cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}
