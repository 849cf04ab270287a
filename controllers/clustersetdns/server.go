package clustersetdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

const (
	// DefaultDomain is the MCS clusterset zone.
	DefaultDomain = "clusterset.local"
	// DefaultTTL is the TTL, in seconds, of every answer and of negative
	// answers (the SOA minimum). It is short because endpoints move.
	DefaultTTL uint32 = 5
	// DNSSchemaVersion is the version of the MCS DNS specification served
	// at dns-version.<domain>.
	DNSSchemaVersion = "1.0.0"

	// lookupTimeout bounds the Reader calls of one query. An informer cache
	// that is not yet synced blocks until it is; past this the query gets
	// SERVFAIL, which resolvers retry, rather than an NXDOMAIN they would
	// cache. It is below the usual stub-resolver timeout (5 s) so the
	// client sees the failure instead of a silent drop.
	lookupTimeout = 2 * time.Second

	// maxUDPSize caps UDP answers whatever the client advertises, to stay
	// clear of IP fragmentation (DNS flag day 2020's 1232 bytes).
	maxUDPSize = 1232

	// shutdownTimeout bounds ListenAndServe's drain of in-flight queries.
	shutdownTimeout = 5 * time.Second
)

// Server answers DNS queries for the MCS clusterset zone from the
// ServiceImports and EndpointSlices that the agent maintains. The zero
// value is not usable: Reader is required. Fields must not change once
// Handler, Listen, Serve or ListenAndServe has been called.
type Server struct {
	// Reader reads ServiceImports (sigs.k8s.io/mcs-api v1beta1) and
	// discovery/v1 EndpointSlices; its scheme must know both. The agent
	// passes its informer cache, so a query costs no API call. The server
	// never modifies the objects it reads, so a cache may hand them out
	// without deep copies.
	Reader client.Reader
	// Domain is the zone the server is authoritative for; DefaultDomain if
	// empty. Names outside it are REFUSED.
	Domain string
	// TTL is the TTL of answers and of negative answers, in seconds;
	// DefaultTTL if zero.
	TTL uint32
	// Logger receives lookup failures and serving errors, never one line
	// per query; nothing is logged if nil.
	Logger *slog.Logger
	// Registerer, if not nil, gets the causeway_dns_queries_total counter.
	// Registering twice (a second Handler call, a second Server) reuses the
	// counter already there.
	Registerer prometheus.Registerer
}

// Handler validates the configuration and returns the DNS handler that
// Listen and Serve use. Tests and benchmarks call it to drive the handler
// without sockets; a caller with its own dns.Server may mount it too.
func (s *Server) Handler() (dns.Handler, error) {
	if s.Reader == nil {
		return nil, errors.New("clustersetdns: Server.Reader is nil")
	}
	domain := s.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	zone := lowerASCII(dns.Fqdn(domain))
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." || strings.Contains(zone, `\`) {
		return nil, fmt.Errorf("clustersetdns: invalid domain %q", s.Domain)
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return nil, err
	}
	return newHandler(s.Reader, zone, ttl, logger, m), nil
}

// Running is a server bound to its sockets and serving.
type Running struct {
	// TCPAddr and UDPAddr are the bound addresses; they share the port.
	TCPAddr *net.TCPAddr
	UDPAddr *net.UDPAddr

	tcp, udp *dns.Server
	// failed is closed when a server stops on its own, err is set first.
	failed chan struct{}
	err    error
	// done is closed once both servers have stopped.
	done chan struct{}

	shutdownOnce sync.Once
	shutdownErr  error
}

// Addr returns the bound address as host:port, for dig's -p or a
// net.Resolver's Dial.
func (r *Running) Addr() string { return r.UDPAddr.AddrPort().String() }

// Done is closed once both the UDP and the TCP server have stopped after
// Shutdown, or as soon as either failed on its own: the caller should then
// Shutdown to stop the other.
func (r *Running) Done() <-chan struct{} { return r.failed }

// Err returns why serving stopped: the socket error once Done is closed
// by a failure, nil otherwise.
func (r *Running) Err() error {
	select {
	case <-r.failed:
		return r.err
	default:
		return nil
	}
}

// collect waits for both servers to return. The first error closes
// failed; both returning closes done (and failed, for Done's readers).
func (r *Running) collect(errs <-chan error) {
	failed := false
	for range 2 {
		if err := <-errs; err != nil && !failed {
			r.err = fmt.Errorf("serve DNS on %s: %w", r.Addr(), err)
			failed = true
			close(r.failed)
		}
	}
	if !failed {
		close(r.failed)
	}
	close(r.done)
}

// Shutdown stops accepting queries, waits for in-flight ones until ctx is
// done and closes the sockets. It is safe to call more than once.
func (r *Running) Shutdown(ctx context.Context) error {
	r.shutdownOnce.Do(func() {
		var errs []error
		for _, srv := range []*dns.Server{r.tcp, r.udp} {
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		r.shutdownErr = errors.Join(errs...)
	})
	if r.shutdownErr != nil {
		return fmt.Errorf("shut down DNS server on %s: %w", r.Addr(), r.shutdownErr)
	}
	return nil
}

// Listen binds addr ("host:port") for TCP and UDP on the same port and
// starts serving; it returns once both servers are accepting queries. With
// port 0 the kernel picks a free TCP port and UDP binds the same one
// (retrying a few times if that UDP port is taken). Stop it with
// Running.Shutdown.
func (s *Server) Listen(addr string) (*Running, error) {
	h, err := s.Handler()
	if err != nil {
		return nil, err
	}
	tcp, udp, err := bindPair(addr)
	if err != nil {
		return nil, err
	}
	return s.serve(h, tcp, udp)
}

// Serve serves on sockets the caller bound (socket activation, or a
// listener shared with something else) until ctx is done, then shuts down.
// It takes ownership of both and closes them.
func (s *Server) Serve(ctx context.Context, tcp net.Listener, udp net.PacketConn) error {
	h, err := s.Handler()
	if err != nil {
		return errors.Join(err, tcp.Close(), udp.Close())
	}
	r, err := s.serve(h, tcp, udp)
	if err != nil {
		return err
	}
	return r.wait(ctx)
}

// ListenAndServe is Listen followed by serving until ctx is done. It
// returns nil after a clean shutdown, or the error that stopped it.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	r, err := s.Listen(addr)
	if err != nil {
		return err
	}
	return r.wait(ctx)
}

// wait serves until ctx is done or a socket fails, then shuts down.
func (r *Running) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-r.failed:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := r.Shutdown(sctx)
	<-r.done
	if serveErr := r.Err(); serveErr != nil {
		// Shutdown's complaint about the failed server adds nothing.
		return serveErr
	}
	return err
}

// Runnable returns the server as a controller-runtime manager.Runnable
// serving on addr. It runs on every replica, not only the leader: every
// agent replica answers DNS.
func (s *Server) Runnable(addr string) manager.Runnable {
	return runnable{s: s, addr: addr}
}

type runnable struct {
	s    *Server
	addr string
}

func (r runnable) Start(ctx context.Context) error { return r.s.ListenAndServe(ctx, r.addr) }

func (runnable) NeedLeaderElection() bool { return false }

// serve starts a dns.Server on each socket and returns once both run.
func (s *Server) serve(h dns.Handler, tcp net.Listener, udp net.PacketConn) (*Running, error) {
	tcpAddr, ok1 := tcp.Addr().(*net.TCPAddr)
	udpAddr, ok2 := udp.LocalAddr().(*net.UDPAddr)
	if !ok1 || !ok2 {
		return nil, errors.Join(
			fmt.Errorf("serve DNS: want TCP and UDP sockets, got %s and %s", tcp.Addr().Network(), udp.LocalAddr().Network()),
			tcp.Close(), udp.Close())
	}
	r := &Running{TCPAddr: tcpAddr, UDPAddr: udpAddr, failed: make(chan struct{}), done: make(chan struct{})}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	r.tcp = &dns.Server{Listener: tcp, Handler: h, NotifyStartedFunc: notify}
	r.udp = &dns.Server{PacketConn: udp, Handler: h, NotifyStartedFunc: notify, UDPSize: dns.DefaultMsgSize}

	errs := make(chan error, 2)
	for _, srv := range []*dns.Server{r.tcp, r.udp} {
		go func() { errs <- srv.ActivateAndServe() }()
	}
	for n := 0; n < 2; n++ {
		select {
		case <-started:
		case err := <-errs:
			// One server failed before both ran: closing the sockets stops
			// the other, whether it started or not.
			closeErr := errors.Join(ignoreClosed(tcp.Close()), ignoreClosed(udp.Close()))
			// Wait for the other server; its error only says the close
			// stopped it.
			if other := <-errs; other != nil && s.Logger != nil {
				s.Logger.Debug("DNS server stopped after the other failed", "error", other)
			}
			return nil, errors.Join(fmt.Errorf("start DNS server on %s: %w", r.Addr(), err), closeErr)
		}
	}
	go r.collect(errs)
	if s.Logger != nil {
		s.Logger.Info("Serving clusterset DNS", "address", r.Addr())
	}
	return r, nil
}

// ignoreClosed drops the error of closing a socket that a stopped server
// had already closed.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// bindPair binds TCP first, then UDP on the port TCP got.
func bindPair(addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("parse DNS listen address %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" || port == "" {
		// The kernel's free TCP port may be taken for UDP; try another.
		attempts = 5
	}
	var errs []error
	for range attempts {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on TCP %s: %w", addr, err)
		}
		tcpPort := tcp.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(tcpPort)))
		if err == nil {
			return tcp, udp, nil
		}
		errs = append(errs, fmt.Errorf("listen on UDP port %d: %w", tcpPort, err))
		if cerr := tcp.Close(); cerr != nil {
			errs = append(errs, cerr)
		}
	}
	return nil, nil, fmt.Errorf("bind DNS on %s: %w", addr, errors.Join(errs...))
}
