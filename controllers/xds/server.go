package xds

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// DefaultAddr is where the agent serves xDS unless told otherwise.
const DefaultAddr = ":15010"

// DefaultForgetAfter is how long a node's snapshot is kept after its last
// stream closed: long enough for a reconnect (a proxy restart, a gRPC
// channel idling and coming back) to find it, short enough that departed
// pods do not accumulate.
const DefaultForgetAfter = 5 * time.Minute

// Keepalive: clients may ping every 10 s (gRPC clients and Envoy ping
// idle streams; the default enforcement, 5 minutes, would close their
// connections with GOAWAY "too_many_pings"); the server pings after 30 s
// of silence to find dead peers.
const (
	keepaliveMinClientPing = 10 * time.Second
	keepalivePing          = 30 * time.Second
	keepaliveTimeout       = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	// Logger; discarded when zero.
	Logger logr.Logger
	// Clock, for forgetting nodes; the real clock when nil.
	Clock clock.WithDelayedExecution
	// ForgetAfter is DefaultForgetAfter when zero.
	ForgetAfter time.Duration
	// Registerer gets the server's metrics; none when nil.
	Registerer prometheus.Registerer
}

// Server is the agent's xDS control plane: an ADS server (state of the
// world and delta) and the per-type LDS, RDS, CDS and EDS services, backed
// by go-control-plane's snapshot caches with one snapshot per connected
// node.
//
// Proxies are served from a snapshot cache in ADS mode: it holds a
// response until the request names every resource of the snapshot, so a
// proxy never sees routes before their clusters' endpoints. Proxyless
// gRPC clients cannot use it: gRPC opens one ADS stream per channel
// target, all with the same node, each naming only its own listener, so
// no stream ever names the whole snapshot. They are served from a second
// snapshot cache, not in ADS mode, which answers each request with the
// resources it names (gRPC waits for a route's clusters and endpoints
// itself, gRFC A74). A MuxCache picks the cache by node kind.
type Server struct {
	proxyCache, proxylessCache cachev3.SnapshotCache
	mux                        *cachev3.MuxCache
	log                        logr.Logger
	clock                      clock.WithDelayedExecution
	forget                     time.Duration
	metrics                    *metrics

	mu sync.Mutex
	// proxy and proxyless index the current result's resources; nil until
	// the first Update.
	proxy, proxyless *indexed
	// proxySnap is the snapshot of every proxy without inbound
	// configuration, shared by them.
	proxySnap *cachev3.Snapshot
	// gatewaySnap is the gateways' snapshot: proxySnap with the links.
	gatewaySnap *cachev3.Snapshot
	// inbound builds sidecars' inbound resources; sidecars caches the
	// snapshots built from them, by the (shared) inbound listener, until
	// the next Update.
	inbound  *translate.Inbound
	sidecars map[*listenerv3.Listener]*cachev3.Snapshot
	// pods finds a sidecar's pod; nil until a Controller sets it, and then
	// sidecars get no inbound configuration.
	pods    func(namespace, name string) *corev1.Pod
	nodes   map[string]*node
	streams map[streamKey]*stream
	// registered counts Register calls, numbering their servers.
	registered int
	// onHBONE are told when HBONEPods changes (see OnHBONEPodsChanged).
	onHBONE []func()
}

// node is an xDS client known by its node ID.
type node struct {
	id      string
	kind    translate.NodeKind
	streams int
	// generation invalidates a pending forget when a stream reopens.
	generation int
	forget     clock.Timer
	// sub is the proxyless node's listener subscription, the union of its
	// streams'; set ensures the snapshot was set at least once.
	sub subscription
	set bool
	// acked is the last version the node accepted, by type (state of
	// the world only; delta has no per-type version).
	acked map[string]string
	// pod is the workload of a sidecar (empty for other nodes): it gets
	// inbound configuration for that pod.
	pod ktypes.NamespacedName
	// admin is a gateway's admin address (node metadata
	// xdsconv.NodeMetaAdmin), where its links' state is read.
	admin string
	// owner is the namespace/serviceaccount of the authenticated caller
	// whose stream created the node, or "" for the plaintext port; only
	// streams of the same owner may use the node ID.
	owner string
	// hbone: an authenticated sidecar that accepts HBONE for its pod
	// (node metadata NodeMetaHBONE); its pod is in HBONEPods while it has
	// a stream.
	hbone bool
}

// streamKey names a stream: each registration (Register) has its own
// go-control-plane server, whose state-of-the-world and delta servers
// number their streams separately.
type streamKey struct {
	server int
	delta  bool
	id     int64
}

// stream is one open xDS stream.
type stream struct {
	node *node
	// caller is the authenticated caller of a stream that came through the
	// identity service's server; nil on the plaintext port.
	caller *identity.Caller
	// subs are the stream's subscriptions by type (listeners and clusters
	// matter, for proxyless nodes).
	subs map[resource.Type]*typeSub
}

// typeSub is a stream's subscription to one type.
type typeSub struct {
	names    map[string]bool
	wildcard bool
}

// sotw replaces the subscription with a state-of-the-world request's
// names; none is the legacy wildcard.
func (ts *typeSub) sotw(names []string) {
	ts.names = setOf(names)
	ts.wildcard = len(names) == 0 || ts.names["*"]
}

// delta applies a delta request; a first request subscribing to nothing
// is the legacy wildcard.
func (ts *typeSub) delta(first bool, subscribe, unsubscribe []string) {
	if first {
		ts.names = map[string]bool{}
		ts.wildcard = len(subscribe) == 0
	}
	for _, n := range subscribe {
		ts.names[n] = true
	}
	for _, n := range unsubscribe {
		delete(ts.names, n)
	}
	if ts.names["*"] {
		ts.wildcard = true
	}
}

// NewServer returns a server with an empty cache: nodes get a snapshot
// once Update has been called.
func NewServer(opts Options) (*Server, error) {
	s := &Server{
		log:     opts.Logger,
		clock:   opts.Clock,
		forget:  opts.ForgetAfter,
		nodes:   map[string]*node{},
		streams: map[streamKey]*stream{},
	}
	if s.log.GetSink() == nil {
		s.log = logr.Discard()
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.forget <= 0 {
		s.forget = DefaultForgetAfter
	}
	s.proxyCache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, cacheLogger{s.log.WithName("cache")})
	s.proxylessCache = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, cacheLogger{s.log.WithName("proxyless-cache")})
	s.mux = &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return Kind(r.GetNode()).String() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return Kind(r.GetNode()).String() },
		Caches: map[string]cachev3.Cache{
			translate.Proxy.String():     s.proxyCache,
			translate.Gateway.String():   s.proxyCache,
			translate.Proxyless.String(): s.proxylessCache,
		},
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// cacheFor is the snapshot cache that serves a kind of node.
func (s *Server) cacheFor(kind translate.NodeKind) cachev3.SnapshotCache {
	if kind == translate.Proxyless {
		return s.proxylessCache
	}
	return s.proxyCache
}

// Snapshot returns a node's current snapshot, for tests and debugging.
func (s *Server) Snapshot(nodeID string) (cachev3.ResourceSnapshot, error) {
	s.mu.Lock()
	n := s.nodes[nodeID]
	s.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("no node %q", nodeID)
	}
	return s.cacheFor(n.kind).GetSnapshot(nodeID)
}

// Serve serves xDS on lis until ctx is done, in plaintext and without
// authentication: for proxyless gRPC clients and proxies outside the
// mesh. Proxies with an identity get xDS on the SDS server's
// authenticated port (Register).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinClientPing, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepalivePing, Timeout: keepaliveTimeout}),
	)
	s.Register(ctx, g)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		// xDS streams never end on their own: give in-flight responses a
		// moment, then close everything.
		t := time.AfterFunc(time.Second, g.Stop)
		g.GracefulStop()
		t.Stop()
	}()
	s.log.Info("serving xDS (plaintext, unauthenticated)", "addr", lis.Addr().String())
	if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve xDS on %s: %w", lis.Addr(), err)
	}
	return nil
}

// Register registers the ADS, LDS, RDS, CDS and EDS services on g; their
// streams end when ctx is done. Streams whose context carries a caller
// authenticated by the identity service's interceptors (identity.CallerFrom)
// must name a node whose metadata agrees with that caller
// (identity.CheckNode), or they are closed with PermissionDenied; other
// streams are served as they come.
func (s *Server) Register(ctx context.Context, g *grpc.Server) {
	s.mu.Lock()
	s.registered++
	server := s.registered
	s.mu.Unlock()
	xs := serverv3.NewServer(ctx, s.mux, s.callbacks(server))
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(g, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, xs)
}

// ListenAndServe listens on addr (TCP) and serves xDS until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for xDS on %s: %w", addr, err)
	}
	return s.Serve(ctx, lis)
}

// Update makes res the configuration of every node, present and future.
// A kind whose resources fail indexing keeps its previous configuration.
func (s *Server) Update(res *translate.Result) error {
	proxy, err := index(res.Proxy)
	if err != nil {
		return fmt.Errorf("index proxy resources: %w", err)
	}
	proxyless, err := index(res.Proxyless)
	if err != nil {
		return fmt.Errorf("index proxyless resources: %w", err)
	}
	// Every proxy without inbound configuration gets this one snapshot.
	proxySnap := proxy.snapshot(proxy.resources)
	if err := proxySnap.Consistent(); err != nil {
		s.log.Error(err, "inconsistent proxy snapshot not set; proxies keep their previous ones")
		return fmt.Errorf("proxy snapshot: %w", err)
	}
	// Gateways get the same with their links.
	gatewaySnap, err := proxy.withExtra(proxySnap, res.Links, "link")
	if err != nil {
		s.log.Error(err, "gateway snapshot not built; gateways keep their previous ones")
		return fmt.Errorf("gateway snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proxy, s.proxyless, s.proxySnap, s.gatewaySnap = proxy, proxyless, proxySnap, gatewaySnap
	s.inbound, s.sidecars = res.Inbound, map[*listenerv3.Listener]*cachev3.Snapshot{}
	var errs []error
	for _, n := range s.nodes {
		errs = append(errs, s.setSnapshot(n))
	}
	return errors.Join(errs...)
}

// SetPodSource tells the server how to find a sidecar's pod (by namespace
// and name; nil when it does not exist), so that sidecars get inbound
// configuration. The Controller sets it when it starts. get is called with
// the server's lock held and must not call back into the server.
func (s *Server) SetPodSource(get func(namespace, name string) *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pods = get
}

// setSnapshot gives a node the snapshot of the current resources. It never
// sets an inconsistent snapshot: the node keeps its previous one. Callers
// hold s.mu.
func (s *Server) setSnapshot(n *node) error {
	ix := s.proxy
	if n.kind == translate.Proxyless {
		ix = s.proxyless
	}
	if ix == nil {
		return nil // nothing translated yet
	}
	var snap *cachev3.Snapshot
	switch n.kind {
	case translate.Proxyless:
		snap = ix.snapshot(ix.subset(n.sub))
		if err := snap.Consistent(); err != nil {
			s.log.Error(err, "inconsistent snapshot not set; the node keeps its previous one", "node", n.id, "kind", n.kind.String())
			return fmt.Errorf("snapshot for node %s: %w", n.id, err)
		}
	case translate.Gateway:
		snap = s.gatewaySnap
	default:
		var err error
		if snap, err = s.proxySnapshot(n); err != nil {
			s.log.Error(err, "sidecar snapshot not set; the node keeps its previous one", "node", n.id, "pod", n.pod.String())
			return fmt.Errorf("snapshot for node %s: %w", n.id, err)
		}
	}
	if err := s.cacheFor(n.kind).SetSnapshot(context.Background(), n.id, snap); err != nil {
		return fmt.Errorf("set snapshot for node %s: %w", n.id, err)
	}
	n.set = true
	return nil
}

// proxySnapshot is a proxy's snapshot: the shared one, with the inbound
// configuration of its pod for a sidecar whose pod is known. Sidecars of
// pods of the same shape share one snapshot. Callers hold s.mu.
func (s *Server) proxySnapshot(n *node) (*cachev3.Snapshot, error) {
	if n.pod.Name == "" || s.pods == nil || s.inbound == nil {
		return s.proxySnap, nil
	}
	pod := s.pods(n.pod.Namespace, n.pod.Name)
	if pod == nil {
		// Not in the cache (yet): the pod's arrival starts a round that
		// adds its inbound configuration.
		return s.proxySnap, nil
	}
	in := s.inbound.For(pod)
	ls := in[resource.ListenerType]
	if len(ls) == 0 {
		return s.proxySnap, nil
	}
	l, ok := ls[0].(*listenerv3.Listener)
	if !ok {
		return nil, fmt.Errorf("inbound listener is a %T", ls[0])
	}
	if snap := s.sidecars[l]; snap != nil {
		return snap, nil
	}
	snap, err := s.proxy.withInbound(s.proxySnap, in)
	if err != nil {
		return nil, fmt.Errorf("inbound configuration of pod %s: %w", n.pod, err)
	}
	s.sidecars[l] = snap
	return snap, nil
}

// sidecarPod is the pod a node's metadata names when the node is a
// sidecar, or the zero name.
func sidecarPod(n *corev3.Node) ktypes.NamespacedName {
	f := n.GetMetadata().GetFields()
	if f[xdsconv.NodeMetaMode].GetStringValue() != xdsconv.ModeSidecar {
		return ktypes.NamespacedName{}
	}
	ns, pod := f[xdsconv.NodeMetaNamespace].GetStringValue(), f[xdsconv.NodeMetaPod].GetStringValue()
	if ns == "" || pod == "" {
		return ktypes.NamespacedName{}
	}
	return ktypes.NamespacedName{Namespace: ns, Name: pod}
}

// Kind is how a node is served: a gateway when its causeway.dev/mode
// metadata says so (served only to the gateway's ServiceAccount: see
// checkGateway), a proxy unless it looks like a proxyless gRPC client (no
// causeway.dev/mode metadata and a gRPC user agent).
func Kind(n *corev3.Node) translate.NodeKind {
	if mode, ok := n.GetMetadata().GetFields()[xdsconv.NodeMetaMode]; ok {
		if mode.GetStringValue() == xdsconv.ModeGateway {
			return translate.Gateway
		}
		return translate.Proxy
	}
	if strings.HasPrefix(n.GetUserAgentName(), "gRPC") {
		return translate.Proxyless
	}
	return translate.Proxy
}

// ---- callbacks ----

// callbacks are the callbacks of the server of one registration.
func (s *Server) callbacks(server int) serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.openStream(ctx, streamKey{server: server, id: id})
			return nil
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.openStream(ctx, streamKey{server: server, delta: true, id: id})
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.closeStream(streamKey{server: server, id: id}) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closeStream(streamKey{server: server, delta: true, id: id}) },
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			return s.request(streamKey{server: server, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetVersionInfo(), req.GetErrorDetail(), func(ts *typeSub, _ bool) {
				ts.sotw(req.GetResourceNames())
			})
		},
		StreamDeltaRequestFunc: func(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
			return s.request(streamKey{server: server, delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), "", req.GetErrorDetail(), func(ts *typeSub, first bool) {
				ts.delta(first, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
			})
		},
		FetchRequestFunc: func(ctx context.Context, req *discoverygrpc.DiscoveryRequest) error {
			caller, ok := identity.CallerFrom(ctx)
			if ok {
				if err := s.authorize(caller, req.GetNode()); err != nil {
					return err
				}
			}
			return s.checkGateway(caller, req.GetNode())
		},
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			s.metrics.push(resp.GetTypeUrl())
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discoverygrpc.DeltaDiscoveryRequest, resp *discoverygrpc.DeltaDiscoveryResponse) {
			s.metrics.push(resp.GetTypeUrl())
		},
	}
}

// authorize checks a node against the caller of an authenticated stream.
func (s *Server) authorize(caller *identity.Caller, cn *corev3.Node) error {
	if err := identity.CheckNode(cn, caller); err != nil {
		s.log.V(1).Info("xDS stream refused", "node", cn.GetId(), "caller", caller.String(), "reason", status.Convert(err).Message())
		return err
	}
	return nil
}

// checkGateway refuses a node that says it is a gateway
// (xdsconv.NodeMetaMode = ModeGateway) unless its stream is authenticated
// as the gateway's ServiceAccount: the gateway's configuration says which
// clusters it links to and where their gateways are, and the gateway
// alone needs it. caller is nil on the plaintext port.
func (s *Server) checkGateway(caller *identity.Caller, cn *corev3.Node) error {
	if Kind(cn) != translate.Gateway {
		return nil
	}
	var err error
	switch {
	case caller == nil:
		err = status.Errorf(codes.PermissionDenied,
			"node %q has %s=%s, but gateways are served only on the agent's authenticated xDS port (its SDS address), with a token of ServiceAccount %s/%s; this port is plaintext",
			cn.GetId(), xdsconv.NodeMetaMode, xdsconv.ModeGateway, xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount)
	case caller.Namespace != xdsconv.GatewayNamespace || caller.ServiceAccount != xdsconv.GatewayServiceAccount:
		err = status.Errorf(codes.PermissionDenied,
			"node %q has %s=%s, but its token is ServiceAccount %s/%s; only %s/%s may be the gateway",
			cn.GetId(), xdsconv.NodeMetaMode, xdsconv.ModeGateway, caller.Namespace, caller.ServiceAccount, xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount)
	default:
		return nil
	}
	who := "plaintext"
	if caller != nil {
		who = caller.String()
	}
	s.log.Info("xDS stream refused: not the gateway's identity", "node", cn.GetId(), "caller", who)
	return err
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// openStream registers a stream, with its caller when it came through
// the identity service's authenticating server.
func (s *Server) openStream(ctx context.Context, k streamKey) {
	caller, _ := identity.CallerFrom(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[k] = &stream{subs: map[resource.Type]*typeSub{}, caller: caller}
}

// request learns the stream's node from its first request, sets a new
// node's snapshot at once, and keeps proxyless subscriptions (and thus
// snapshots) up to date. It runs before the cache sees the request, so the
// request finds the snapshot in place. On an authenticated stream every
// node a request names must agree with the caller.
func (s *Server) request(k streamKey, cn *corev3.Node, typeURL, version string, nack *rpcstatus.Status, subscribe func(ts *typeSub, first bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		return status.Error(codes.Internal, "unknown stream")
	}
	if st.caller != nil && (cn != nil || st.node == nil) {
		if err := s.authorize(st.caller, cn); err != nil {
			return err
		}
	}
	if cn != nil || st.node == nil {
		if err := s.checkGateway(st.caller, cn); err != nil {
			return err
		}
	}
	if st.node == nil {
		if cn.GetId() == "" {
			return status.Error(codes.InvalidArgument, "the first request of a stream must carry a node with an id")
		}
		var owner string
		if st.caller != nil {
			owner = st.caller.Namespace + "/" + st.caller.ServiceAccount
		}
		n := s.nodes[cn.GetId()]
		if n != nil && n.owner != owner {
			// Another identity (or the plaintext port) holds the node ID:
			// sharing it would share, or rewrite, its configuration.
			s.log.V(1).Info("xDS stream refused: node ID held by another identity", "node", n.id, "caller", owner, "holder", n.owner)
			return status.Errorf(codes.PermissionDenied, "node ID %q is in use by another identity", n.id)
		}
		if n == nil {
			n = &node{id: cn.GetId(), kind: Kind(cn), acked: map[string]string{}, pod: sidecarPod(cn), owner: owner}
			// Only a stream authenticated as the pod's ServiceAccount may
			// say its pod takes tunnels: a plaintext claim would let anyone
			// send a pod's clients into tunnels to nowhere.
			n.hbone = owner != "" && n.pod.Name != "" && cn.GetMetadata().GetFields()[xdsconv.NodeMetaHBONE].GetStringValue() == "true"
			if n.kind == translate.Gateway {
				n.admin = cn.GetMetadata().GetFields()[xdsconv.NodeMetaAdmin].GetStringValue()
			}
			s.nodes[n.id] = n
			s.log.V(1).Info("node connected", "node", n.id, "kind", n.kind.String(), "userAgent", cn.GetUserAgentName())
		}
		if n.streams == 0 {
			s.metrics.connected.WithLabelValues(n.kind.String()).Inc()
			if n.hbone {
				s.hboneChanged()
			}
		}
		n.streams++
		n.generation++
		if n.forget != nil {
			n.forget.Stop()
			n.forget = nil
		}
		st.node = n
	}
	n := st.node
	if nack != nil {
		// A NACK changes nothing: the node keeps what it accepted, and
		// other nodes are unaffected.
		s.metrics.nacks.WithLabelValues(shortType(typeURL)).Inc()
		s.log.Info("node rejected configuration", "node", n.id, "type", shortType(typeURL), "acceptedVersion", version, "error", nack.GetMessage())
	} else if version != "" {
		n.acked[typeURL] = version
	}
	changed := false
	if n.kind == translate.Proxyless && (typeURL == resource.ListenerType || typeURL == resource.ClusterType) {
		ts, ok := st.subs[typeURL]
		if !ok {
			ts = &typeSub{}
			st.subs[typeURL] = ts
		}
		subscribe(ts, !ok)
		changed = s.updateSubscription(n)
	}
	if changed || !n.set {
		if err := s.setSnapshot(n); err != nil {
			// The node keeps its previous snapshot (or waits for one);
			// the stream stays open.
			s.log.Error(err, "cannot set the node's snapshot", "node", n.id)
		}
	}
	return nil
}

// updateSubscription recomputes a proxyless node's subscription from its
// streams and reports whether it changed.
func (s *Server) updateSubscription(n *node) bool {
	sub := subscription{listeners: map[string]bool{}, clusters: map[string]bool{}}
	for _, st := range s.streams {
		if st.node != n {
			continue
		}
		if ts := st.subs[resource.ListenerType]; ts != nil {
			sub.wildcard = sub.wildcard || ts.wildcard
			maps.Copy(sub.listeners, ts.names)
		}
		if ts := st.subs[resource.ClusterType]; ts != nil {
			maps.Copy(sub.clusters, ts.names)
		}
	}
	if sub.wildcard == n.sub.wildcard && maps.Equal(sub.listeners, n.sub.listeners) && maps.Equal(sub.clusters, n.sub.clusters) {
		return false
	}
	n.sub = sub
	return true
}

// closeStream forgets a stream and, once a node has none left, schedules
// forgetting the node.
func (s *Server) closeStream(k streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	delete(s.streams, k)
	if st == nil || st.node == nil {
		return
	}
	n := st.node
	n.streams--
	if n.kind == translate.Proxyless && s.updateSubscription(n) && n.streams > 0 {
		if err := s.setSnapshot(n); err != nil {
			s.log.Error(err, "cannot set the node's snapshot", "node", n.id)
		}
	}
	if n.streams > 0 {
		return
	}
	s.metrics.connected.WithLabelValues(n.kind.String()).Dec()
	if n.hbone {
		s.hboneChanged()
	}
	gen := n.generation
	n.forget = s.clock.AfterFunc(s.forget, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.nodes[n.id]; cur != n || n.streams > 0 || n.generation != gen {
			return
		}
		delete(s.nodes, n.id)
		s.cacheFor(n.kind).ClearSnapshot(n.id)
		s.log.V(1).Info("node forgotten", "node", n.id)
	})
}

// OnHBONEPodsChanged adds f to the functions called (with the server's
// lock held: they must not block or call the server) when a sidecar that
// accepts HBONE connects or goes, so that callers re-translate or
// re-export.
func (s *Server) OnHBONEPodsChanged(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onHBONE = append(s.onHBONE, f)
}

func (s *Server) hboneChanged() {
	for _, f := range s.onHBONE {
		f()
	}
}

// GatewayNode is a connected east-west gateway.
type GatewayNode struct {
	// Node is its xDS node ID; Admin its admin address (may be empty).
	Node, Admin string
}

// Gateways returns the gateways with a stream open now, sorted by node
// ID.
func (s *Server) Gateways() []GatewayNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []GatewayNode
	for _, n := range s.nodes {
		if n.kind == translate.Gateway && n.streams > 0 {
			out = append(out, GatewayNode{Node: n.id, Admin: n.admin})
		}
	}
	slices.SortFunc(out, func(a, b GatewayNode) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// HBONEPods returns the pods ("namespace/name") whose sidecars accept
// HBONE and have a stream open now.
func (s *Server) HBONEPods() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pods map[string]bool
	for _, n := range s.nodes {
		if n.hbone && n.streams > 0 {
			if pods == nil {
				pods = map[string]bool{}
			}
			pods[n.pod.String()] = true
		}
	}
	return pods
}

// Acked returns the versions a node last accepted (state of the world),
// by type URL, and the versions of its current snapshot, for debugging and
// tests: a node is up to date when they are equal for the types it uses.
func (s *Server) Acked(nodeID string) (acked, current map[string]string) {
	s.mu.Lock()
	n := s.nodes[nodeID]
	if n != nil {
		acked = maps.Clone(n.acked)
	}
	s.mu.Unlock()
	current = map[string]string{}
	if snap, err := s.Snapshot(nodeID); err == nil {
		for _, typ := range snapshotTypes {
			current[typ] = snap.GetVersion(typ)
		}
	}
	return acked, current
}

// Nodes returns the IDs of the nodes the server knows, for tests.
func (s *Server) Nodes() map[string]translate.NodeKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]translate.NodeKind, len(s.nodes))
	for id, n := range s.nodes {
		out[id] = n.kind
	}
	return out
}

// shortType is a type URL's last element, lower case: "cluster".
func shortType(typeURL string) string {
	return strings.ToLower(typeURL[strings.LastIndex(typeURL, ".")+1:])
}

// cacheLogger adapts logr to go-control-plane's logger. Its Info lines
// (one per response) go to V(2), warnings to V(1).
type cacheLogger struct{ log logr.Logger }

func (l cacheLogger) Debugf(format string, args ...any) {
	l.log.V(3).Info(fmt.Sprintf(format, args...))
}
func (l cacheLogger) Infof(format string, args ...any) { l.log.V(2).Info(fmt.Sprintf(format, args...)) }
func (l cacheLogger) Warnf(format string, args ...any) { l.log.V(1).Info(fmt.Sprintf(format, args...)) }
func (l cacheLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Errorf(format, args...), "snapshot cache")
}
