package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the resources the client subscribes to.
const (
	// ListenerType is the LDS type URL, subscribed by wildcard.
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	// ClusterType is the CDS type URL, subscribed by wildcard.
	ClusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	// RouteType is the RDS type URL, subscribed by the names that
	// Applier.Names returns.
	RouteType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	// EndpointType is the EDS type URL, subscribed by the names that
	// Applier.Names returns.
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	// SecretType is the SDS type URL, the only type of an SDS client,
	// subscribed by the names that Applier.Names returns.
	SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Service is the discovery service a Client speaks.
type Service int

const (
	// ServiceADS is the Aggregated Discovery Service
	// (StreamAggregatedResources): listeners, clusters, route
	// configurations and endpoints on one stream. The default.
	ServiceADS Service = iota
	// ServiceSDS is the Secret Discovery Service
	// (envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets):
	// secrets only, by name.
	ServiceSDS
)

func (s Service) String() string {
	if s == ServiceSDS {
		return "SDS"
	}
	return "ADS"
}

// Default backoff bounds, used when Config leaves them zero.
const (
	// DefaultInitialBackoff is the default Config.InitialBackoff.
	DefaultInitialBackoff = 200 * time.Millisecond
	// DefaultMaxBackoff is the default Config.MaxBackoff.
	DefaultMaxBackoff = 10 * time.Second
)

// defaultMaxResponseBytes bounds one DiscoveryResponse. gRPC's default of
// 4 MiB is too small for the state of the world of a large mesh (every
// cluster, or every endpoint of a big service, in one message); a bound is
// still needed so that a broken server cannot exhaust the proxy's memory.
// A grpc.MaxCallRecvMsgSize in Config.DialOptions overrides it.
const defaultMaxResponseBytes = 64 << 20

// grpcMinConnectTimeout is the time a single connection attempt (TCP and
// TLS handshakes) may take. gRPC's own default; it must be set explicitly
// because WithConnectParams turns a zero value into "no minimum".
const grpcMinConnectTimeout = 20 * time.Second

// Applier validates and applies configuration. The client calls it from the
// goroutine running Run only, never concurrently.
type Applier interface {
	// Apply validates and applies one response's resources of typeURL.
	// For ListenerType and ClusterType they are the whole set (state of
	// the world): a resource absent from them is removed. For RouteType
	// and EndpointType the xDS protocol gives absence no meaning, so a
	// resource goes when Names stops returning it (no accepted listener
	// or cluster refers to it any more). Every resource's TypeUrl equals
	// typeURL; the client does not touch resources after Apply returns.
	//
	// Apply returns an error when the resources cannot be applied; the
	// client then NACKs with the error's message in error_detail, and the
	// previous configuration must stay in force (all or nothing). Apply
	// may be called again with a version it already has (after a
	// reconnection or a name change) and must be idempotent.
	Apply(typeURL string, version string, resources []*anypb.Any) error

	// Names returns the resource names to subscribe for typeURL (RouteType
	// and EndpointType), computed from what has been applied so far: the
	// route configurations the accepted listeners use, the accepted
	// clusters of type EDS. The order does not matter. It is not called
	// for wildcard types.
	Names(typeURL string) []string
}

// Hooks are optional callbacks on state changes, for metrics and readiness.
// They run on the goroutine running Run, after the state change is visible
// in Status, and must return quickly. Any of them may be nil.
type Hooks struct {
	// OnConnect is called when a stream to the server is open.
	OnConnect func()
	// OnDisconnect is called when an open stream ended, with the reason.
	OnDisconnect func(err error)
	// OnAccept is called after a response was applied and ACKed.
	OnAccept func(typeURL, version string)
	// OnReject is called after a response was rejected, whether its NACK
	// was sent at once or paced.
	OnReject func(typeURL, version string, err error)
}

// Config configures a Client. ServerAddress, Node and Applier are required.
type Config struct {
	// ServerAddress is the gRPC target of the ADS server, for example
	// "dns:///causeway-agent.causeway-system:15010" or
	// "unix:///var/run/causeway/xds.sock".
	ServerAddress string

	// DialOptions are passed to grpc.NewClient after the client's own
	// (connection backoff aligned with InitialBackoff and MaxBackoff, a
	// 64 MiB response size limit), so they may override them. They must
	// carry the transport credentials (mTLS in production, insecure in
	// tests). Keepalive parameters belong here too: without them a
	// half-open connection to a vanished server is only noticed when the
	// kernel gives up, but their ping interval must respect the server's
	// enforcement policy (grpc-go servers close connections that ping more
	// often than every 5 minutes unless configured otherwise).
	DialOptions []grpc.DialOption

	// Node identifies the proxy to the server. Its Id is required: the
	// control plane keys snapshots by it. The client keeps a copy.
	Node *corev3.Node

	// Applier receives every response.
	Applier Applier

	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger

	// InitialBackoff is the upper bound of the first reconnection delay
	// (and of the second NACK of a repeated rejection); each further
	// attempt doubles it up to MaxBackoff. Delays are drawn uniformly
	// from [0, bound] ("full jitter"). Zero means DefaultInitialBackoff.
	InitialBackoff time.Duration

	// MaxBackoff caps the delay bound. Zero means DefaultMaxBackoff.
	MaxBackoff time.Duration

	// Hooks are called on state changes.
	Hooks Hooks

	// Service is the discovery service to speak; ServiceADS when zero.
	Service Service
}

// Client is an ADS client. Create it with New, start it with Run.
type Client struct {
	cfg   Config
	log   *slog.Logger
	randN func(n int64) int64 // returns [0, n); replaced in tests

	running atomic.Bool
	// resubscribe wakes the stream to ask Applier.Names again.
	resubscribe chan struct{}

	mu    sync.Mutex
	state clientState // guarded by mu
}

var errAlreadyRunning = errors.New("xds client is already running")

// New returns a Client for cfg. It does not connect: Run does. The zero
// backoff fields get their defaults.
func New(cfg Config) *Client {
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = cfg.InitialBackoff
	}
	if cfg.Node != nil {
		// The caller may go on using its Node; requests are marshalled
		// on the Run goroutine.
		cfg.Node = proto.CloneOf(cfg.Node)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg:         cfg,
		log:         log.With("xdsServer", cfg.ServerAddress, "service", cfg.Service.String()),
		randN:       rand.Int64N,
		resubscribe: make(chan struct{}, 1),
		state:       clientState{types: map[string]*TypeStatus{}},
	}
}

// Resubscribe makes the client ask Applier.Names again for every named
// type and update its subscriptions if they changed. Call it when what
// decides the names changed outside this client's responses (an SDS
// client's names come from the xDS configuration). It does not block; a
// client without an open stream subscribes with the current names when
// it connects.
func (c *Client) Resubscribe() {
	select {
	case c.resubscribe <- struct{}{}:
	default:
	}
}

// discoveryStream is the bidirectional stream both services use.
type discoveryStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

func (c *Client) validate() error {
	var errs []error
	if c.cfg.ServerAddress == "" {
		errs = append(errs, errors.New("ServerAddress is empty"))
	}
	if c.cfg.Node.GetId() == "" {
		errs = append(errs, errors.New("Node.Id is empty"))
	}
	if c.cfg.Applier == nil {
		errs = append(errs, errors.New("Applier is nil"))
	}
	return errors.Join(errs...)
}

// Run connects to the server and keeps the ADS stream open, reconnecting
// with backoff, until ctx is done; it then returns nil. It returns an
// error at once, without connecting, when the Config is invalid or the
// gRPC client cannot be created (for example without transport
// credentials). A Client runs at most once at a time.
func (c *Client) Run(ctx context.Context) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("invalid xds client config: %w", err)
	}
	if !c.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer c.running.Store(false)

	opts := append([]grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  c.cfg.InitialBackoff,
				Multiplier: grpcbackoff.DefaultConfig.Multiplier,
				Jitter:     grpcbackoff.DefaultConfig.Jitter,
				MaxDelay:   c.cfg.MaxBackoff,
			},
			MinConnectTimeout: grpcMinConnectTimeout,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaultMaxResponseBytes)),
	}, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.ServerAddress, opts...)
	if err != nil {
		return fmt.Errorf("create gRPC client for %s: %w", c.cfg.ServerAddress, err)
	}
	defer conn.Close()
	open := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources
	if c.cfg.Service == ServiceSDS {
		open = secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets
	}

	attempt := 0
	for {
		gotResponse, err := c.runStream(ctx, open)
		if ctx.Err() != nil {
			return nil
		}
		if gotResponse {
			attempt = 0
		}
		delay := fullJitter(backoffCeiling(attempt, c.cfg.InitialBackoff, c.cfg.MaxBackoff), c.randN)
		attempt++
		c.log.Warn("xDS stream failed, retrying", "error", err, "attempt", attempt, "retryIn", delay)

		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

type recvResult struct {
	resp *discoveryv3.DiscoveryResponse
	err  error
}

// runStream opens one stream and serves it until it fails or ctx is
// done. gotResponse reports whether the server sent anything, which resets
// the reconnection backoff.
func (c *Client) runStream(ctx context.Context, open func(context.Context, ...grpc.CallOption) (discoveryStream, error)) (gotResponse bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stream, err := open(sctx)
	if err != nil {
		err = fmt.Errorf("open %s stream: %w", c.cfg.Service, err)
		c.setStreamError(err)
		return false, err
	}
	c.setConnected()
	c.log.Info("xDS stream open")
	if h := c.cfg.Hooks.OnConnect; h != nil {
		h()
	}
	defer func() {
		c.setDisconnected(err)
		if h := c.cfg.Hooks.OnDisconnect; h != nil {
			h(err)
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred later, runs first): Recv returns
	defer cancel()
	recvCh := make(chan recvResult)
	wg.Go(func() {
		for {
			resp, err := stream.Recv()
			select {
			case recvCh <- recvResult{resp: resp, err: err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})

	s := newSession(c, stream.Send)
	if err := s.start(); err != nil {
		return false, err
	}

	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	for {
		var paceC <-chan time.Time
		if due, ok := s.nextDue(); ok {
			pace.Reset(time.Until(due))
			paceC = pace.C
		}
		select {
		case <-sctx.Done():
			return gotResponse, sctx.Err()
		case r := <-recvCh:
			if r.err != nil {
				return gotResponse, fmt.Errorf("receive from %s stream: %w", c.cfg.Service, r.err)
			}
			gotResponse = true
			if err := s.handle(r.resp); err != nil {
				return gotResponse, err
			}
		case now := <-paceC:
			if err := s.flush(now); err != nil {
				return gotResponse, err
			}
		case <-c.resubscribe:
			for _, typeURL := range s.namedTypes() {
				if err := s.resubscribe(typeURL); err != nil {
					return gotResponse, err
				}
			}
		}
	}
}
