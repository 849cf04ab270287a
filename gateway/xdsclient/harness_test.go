package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/config"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	testNodeID = "proxy-0.default"
	// waitTimeout bounds every condition wait; tests finish far sooner.
	waitTimeout = 4 * time.Second
)

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// --- go-control-plane server -------------------------------------------

// recordedRequest is a DiscoveryRequest seen by the server.
type recordedRequest struct {
	stream int64
	at     time.Time
	req    *discoveryv3.DiscoveryRequest
}

// recordedResponse is a DiscoveryResponse the server sent (resources
// omitted).
type recordedResponse struct {
	stream  int64
	typeURL string
	version string
	nonce   string
}

// xdsServer is a real go-control-plane ADS server (SnapshotCache in ADS
// mode behind the state-of-the-world server) that records the traffic
// through its callbacks. The ADS gRPC service is wired to the sotw server
// the way pkg/server/v3 does it; pkg/server/v3 itself also pulls in the
// ratelimit module, which this repository does not depend on.
type xdsServer struct {
	addr  string
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	stop  context.CancelFunc
	done  chan struct{}

	mu        sync.Mutex
	requests  []recordedRequest
	responses []recordedResponse
}

type adsService struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	sotw sotwv3.Server
}

func (a adsService) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return a.sotw.StreamHandler(st, resourcev3.AnyType)
}

// startServer serves ADS on addr ("127.0.0.1:0" for any port).
func startServer(t *testing.T, addr string, ordered bool) *xdsServer {
	t.Helper()
	var lis net.Listener
	// A restarted server reuses the address of a stopped one; the port
	// is free once Stop returns, but allow the kernel a moment.
	waitFor(t, "listen on "+addr, func() bool {
		var err error
		lis, err = net.Listen("tcp", addr)
		return err == nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	s := &xdsServer{
		addr:  lis.Addr().String(),
		cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		grpc:  grpc.NewServer(),
		stop:  cancel,
		done:  make(chan struct{}),
	}
	var sopts []config.XDSOption
	if ordered {
		sopts = append(sopts, sotwv3.WithOrderedADS())
	}
	srv := sotwv3.NewServer(ctx, s.cache, s, sopts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, adsService{sotw: srv})
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(lis)
	}()
	t.Cleanup(s.shutdown)
	return s
}

// shutdown stops the server and closes every connection, as a crash would.
func (s *xdsServer) shutdown() {
	s.grpc.Stop()
	s.stop()
	<-s.done
}

func (s *xdsServer) setSnapshot(t *testing.T, snap *cachev3.Snapshot) {
	t.Helper()
	if err := snap.Consistent(); err != nil {
		t.Fatalf("inconsistent test snapshot: %v", err)
	}
	if err := s.cache.SetSnapshot(context.Background(), testNodeID, snap); err != nil {
		t.Fatalf("set snapshot: %v", err)
	}
}

// OnStreamOpen implements sotw.Callbacks.
func (s *xdsServer) OnStreamOpen(context.Context, int64, string) error { return nil }

// OnStreamClosed implements sotw.Callbacks.
func (s *xdsServer) OnStreamClosed(int64, *corev3.Node) {}

// OnStreamRequest implements sotw.Callbacks.
func (s *xdsServer) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, recordedRequest{stream: id, at: time.Now(), req: proto.CloneOf(req)})
	return nil
}

// OnStreamResponse implements sotw.Callbacks.
func (s *xdsServer) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responses = append(s.responses, recordedResponse{stream: id, typeURL: resp.GetTypeUrl(), version: resp.GetVersionInfo(), nonce: resp.GetNonce()})
}

// firstRequest returns the first request the server received.
func (s *xdsServer) firstRequest() *discoveryv3.DiscoveryRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return nil
	}
	return s.requests[0].req
}

// requestsOf returns the requests of typeURL, in arrival order.
func (s *xdsServer) requestsOf(typeURL string) []recordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []recordedRequest
	for _, r := range s.requests {
		if r.req.GetTypeUrl() == typeURL {
			out = append(out, r)
		}
	}
	return out
}

// findRequest returns the first request of typeURL that match accepts.
func (s *xdsServer) findRequest(typeURL string, match func(*discoveryv3.DiscoveryRequest) bool) (*discoveryv3.DiscoveryRequest, bool) {
	for _, r := range s.requestsOf(typeURL) {
		if match(r.req) {
			return r.req, true
		}
	}
	return nil, false
}

// responseNonces returns the nonces of the responses of typeURL at version.
func (s *xdsServer) responseNonces(typeURL, version string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.responses {
		if r.typeURL == typeURL && r.version == version {
			out = append(out, r.nonce)
		}
	}
	return out
}

// acked reports whether the client ACKed a response of typeURL at version
// with that response's nonce.
func (s *xdsServer) acked(typeURL, version string) bool {
	nonces := s.responseNonces(typeURL, version)
	_, ok := s.findRequest(typeURL, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetErrorDetail() == nil && r.GetVersionInfo() == version && slices.Contains(nonces, r.GetResponseNonce())
	})
	return ok
}

// --- snapshots -----------------------------------------------------------

// testConfig describes a snapshot: listeners by name with the route
// configuration each uses, and EDS clusters. Routes and endpoints follow.
type testConfig struct {
	listeners map[string]string
	clusters  []string
}

func (tc testConfig) snapshot(t *testing.T, version string) *cachev3.Snapshot {
	t.Helper()
	var listeners, routes, clusters, endpoints []types.Resource
	seenRoutes := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(tc.listeners)) {
		rc := tc.listeners[name]
		listeners = append(listeners, httpListener(t, name, rc))
		if !seenRoutes[rc] {
			seenRoutes[rc] = true
			routes = append(routes, &routev3.RouteConfiguration{Name: rc})
		}
	}
	for _, name := range tc.clusters {
		clusters = append(clusters, &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
				EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
			},
		})
		endpoints = append(endpoints, &endpointv3.ClusterLoadAssignment{ClusterName: name})
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: listeners,
		resourcev3.RouteType:    routes,
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: endpoints,
	})
	if err != nil {
		t.Fatalf("new snapshot: %v", err)
	}
	return snap
}

func httpListener(t *testing.T, name, routeConfig string) *listenerv3.Listener {
	t.Helper()
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeConfig,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
	})
	if err != nil {
		t.Fatalf("marshal HttpConnectionManager: %v", err)
	}
	return &listenerv3.Listener{
		Name: name,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
}

// --- applier -------------------------------------------------------------

// applyCall is one call of testApplier.Apply.
type applyCall struct {
	typeURL string
	version string
	names   []string
	err     error
}

// testApplier decodes resources like the proxy's store does, rejects a
// listener named "bad", and derives RDS and EDS names from what it
// accepted. Only the client's goroutine calls Apply and Names; tests read
// it concurrently, hence the mutex.
type testApplier struct {
	mu       sync.Mutex
	calls    []applyCall
	versions map[string]string
	// accepted holds, per type, the accepted resource names; for
	// listeners, the name maps to the route configuration it uses.
	accepted map[string]map[string]string
}

func newTestApplier() *testApplier {
	return &testApplier{versions: map[string]string{}, accepted: map[string]map[string]string{}}
}

var errBadListener = errors.New("rejected by the test rule")

// Apply implements Applier.
func (a *testApplier) Apply(typeURL, version string, resources []*anypb.Any) error {
	next, names, err := decodeResources(typeURL, resources)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, applyCall{typeURL: typeURL, version: version, names: names, err: err})
	if err != nil {
		return err
	}
	a.versions[typeURL] = version
	a.accepted[typeURL] = next
	return nil
}

func decodeResources(typeURL string, resources []*anypb.Any) (map[string]string, []string, error) {
	next := map[string]string{}
	for _, r := range resources {
		m, err := r.UnmarshalNew()
		if err != nil {
			return nil, nil, fmt.Errorf("decode %s: %w", r.GetTypeUrl(), err)
		}
		switch m := m.(type) {
		case *listenerv3.Listener:
			if m.GetName() == "bad" {
				return nil, nil, fmt.Errorf("listener %q: %w", m.GetName(), errBadListener)
			}
			next[m.GetName()] = listenerRoute(m)
		case *clusterv3.Cluster:
			next[m.GetName()] = ""
			if m.GetType() == clusterv3.Cluster_EDS {
				next[m.GetName()] = m.GetName()
			}
		case *routev3.RouteConfiguration:
			next[m.GetName()] = ""
		case *endpointv3.ClusterLoadAssignment:
			next[m.GetClusterName()] = ""
		default:
			return nil, nil, fmt.Errorf("unexpected %T in %s", m, typeURL)
		}
	}
	return next, slices.Sorted(maps.Keys(next)), nil
}

func listenerRoute(l *listenerv3.Listener) string {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
				return hcm.GetRds().GetRouteConfigName()
			}
		}
	}
	return ""
}

// Names implements Applier.
func (a *testApplier) Names(typeURL string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var from string
	switch typeURL {
	case RouteType:
		from = ListenerType
	case EndpointType:
		from = ClusterType
	default:
		return nil
	}
	var out []string
	for _, ref := range a.accepted[from] {
		if ref != "" {
			out = append(out, ref)
		}
	}
	return out
}

func (a *testApplier) version(typeURL string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.versions[typeURL]
}

// resources returns the accepted resource names of typeURL, sorted.
func (a *testApplier) resources(typeURL string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.accepted[typeURL]))
}

func (a *testApplier) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

func (a *testApplier) callsOf(typeURL string) []applyCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []applyCall
	for _, c := range a.calls {
		if c.typeURL == typeURL {
			out = append(out, c)
		}
	}
	return out
}

// allAt reports whether the applier accepted version for all four types.
func (a *testApplier) allAt(version string) bool {
	for _, typeURL := range []string{ListenerType, ClusterType, RouteType, EndpointType} {
		if a.version(typeURL) != version {
			return false
		}
	}
	return true
}

// --- client --------------------------------------------------------------

// startClient runs a client against addr until the test ends.
func startClient(t *testing.T, addr string, applier Applier, mutate func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		ServerAddress:  addr,
		DialOptions:    []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Node:           &corev3.Node{Id: testNodeID, Cluster: "test"},
		Applier:        applier,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		InitialBackoff: 10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return c
}

// testWriter sends logs to t.Log, so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
