/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

	http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// DefaultSDSAddr is where the agent serves SDS unless told otherwise.
const DefaultSDSAddr = ":15012"

// SDS resource names, as Istio names them, so Envoy configurations written
// for Istio's agent work unchanged.
const (
	// SecretDefault is the node's own SVID: a tls.Secret with a
	// TlsCertificate (the SVID's chain without the root, and its key).
	SecretDefault = xdsconv.SecretDefault
	// SecretRootCA is the trust bundle: a tls.Secret with a
	// ValidationContext whose trusted_ca holds every trusted root.
	SecretRootCA = xdsconv.SecretRootCA
)

// NodeMetaServiceAccount is the node metadata key of the ServiceAccount of
// the workload a proxy serves (xdsconv.NodeMetaNamespace holds its
// namespace). Both must name the ServiceAccount of the stream's token.
const NodeMetaServiceAccount = xdsconv.NodeMetaServiceAccount

// The east-west gateway's ServiceAccount: a token of it gets the
// cluster's gateway identity, spiffe://<td>/cluster/<member>/gateway.
const (
	GatewayNamespace      = causewayv1alpha1.SystemNamespace
	GatewayServiceAccount = "causeway-gateway"
)

// The agent's own ServiceAccount by default: its serving SVID is
// spiffe://<td>/ns/causeway-system/sa/causeway-agent.
const (
	AgentNamespace      = causewayv1alpha1.SystemNamespace
	AgentServiceAccount = "causeway-agent"
)

// maxNodeIDBytes bounds a node ID (it is part of a map key).
const maxNodeIDBytes = 1024

// retryAfter is how long a failed renewal waits before the next try.
const retryAfter = 30 * time.Second

// Keepalive, as for the xDS server: Envoy and gRPC ping idle streams.
const (
	keepaliveMinClientPing = 10 * time.Second
	keepalivePing          = 30 * time.Second
	keepaliveTimeout       = 10 * time.Second
)

// SDSOptions configure an SDSServer.
type SDSOptions struct {
	// Authority supplies the CA; Issuer signs with it; Authenticator
	// reviews tokens. All required.
	Authority     *Authority
	Issuer        *Issuer
	Authenticator *Authenticator
	// ClusterName is the member's name, in its gateway's ID.
	ClusterName string
	// AgentNamespace and AgentServiceAccount name the agent's own
	// identity; AgentNamespace and AgentServiceAccount (the constants)
	// when empty.
	AgentNamespace, AgentServiceAccount string
	// Clock schedules renewals; the real clock when nil. The Issuer should
	// use the same clock.
	Clock clock.WithDelayedExecution
	// Logger; discarded when zero.
	Logger logr.Logger
	// Registerer gets the server's metrics; none when nil.
	Registerer prometheus.Registerer
	// Register, if set, registers more services on the server's gRPC
	// server (the agent's xDS services), with the Serve context. Their
	// streams and calls pass the same TLS and token authentication as SDS;
	// CallerFrom gives them the caller, and they check what it may do.
	Register func(ctx context.Context, g *grpc.Server)
}

// SDSServer serves workload SVIDs and the trust bundle over Envoy's Secret
// Discovery Service (state of the world and delta) on gRPC with TLS. See
// the package documentation for the protocol and its checks.
type SDSServer struct {
	opts    SDSOptions
	log     logr.Logger
	clock   clock.WithDelayedExecution
	cache   cachev3.SnapshotCache
	metrics *sdsMetrics

	// serving is the agent's own certificate, renewed on demand.
	servingMu  sync.Mutex
	serving    *Issued
	servingTLS *tls.Certificate

	mu sync.Mutex
	// ctx is the Serve context, for work started by timers.
	ctx     context.Context
	nodes   map[string]*sdsNode
	streams map[streamKey]*sdsStream
	version uint64
}

// streamKey names a stream: the state-of-the-world and delta servers
// number their streams separately.
type streamKey struct {
	delta bool
	id    int64
}

// sdsStream is an open stream: its caller and, after its first request,
// its node.
type sdsStream struct {
	caller *Caller
	node   string
}

// sdsNode is a node with open streams and the SVID it is served.
type sdsNode struct {
	key     string
	caller  *Caller
	id      spiffeid.ID
	kind    string
	streams int
	issued  *Issued
	timer   clock.Timer
	// revoked stops renewals: what the token vouched for is gone.
	revoked bool
}

// NewSDSServer returns a server; Serve runs it.
func NewSDSServer(opts SDSOptions) (*SDSServer, error) {
	if opts.Authority == nil || opts.Issuer == nil || opts.Authenticator == nil {
		return nil, errors.New("new SDS server: Authority, Issuer and Authenticator are required")
	}
	if opts.ClusterName == "" {
		return nil, errors.New("new SDS server: ClusterName is required")
	}
	if opts.AgentNamespace == "" {
		opts.AgentNamespace = AgentNamespace
	}
	if opts.AgentServiceAccount == "" {
		opts.AgentServiceAccount = AgentServiceAccount
	}
	s := &SDSServer{
		opts:    opts,
		log:     opts.Logger,
		clock:   opts.Clock,
		nodes:   map[string]*sdsNode{},
		streams: map[streamKey]*sdsStream{},
	}
	if s.log.GetSink() == nil {
		s.log = logr.Discard()
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	// Not ADS: Envoy opens one SDS stream per secret name, and each is
	// answered with the names it asks for.
	s.cache = cachev3.NewSnapshotCache(false, nodeHash{}, cacheLogger{s.log.WithName("cache")})
	m, err := newSDSMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// AgentID is the agent's own SPIFFE ID in td, as its serving certificate
// carries it: what clients should authorize.
func (s *SDSServer) AgentID(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return workloadID(td, s.opts.AgentNamespace, s.opts.AgentServiceAccount)
}

// ListenAndServe serves on addr until ctx is done.
func (s *SDSServer) ListenAndServe(ctx context.Context, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for SDS on %s: %w", addr, err)
	}
	return s.Serve(ctx, lis)
}

// Serve serves on lis until ctx is done, then stops, closing open
// streams (SDS streams never end on their own, so a graceful stop would
// wait forever).
func (s *SDSServer) Serve(ctx context.Context, lis net.Listener) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.getCertificate}
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConfig)),
		grpc.ChainStreamInterceptor(s.authenticateStream),
		grpc.ChainUnaryInterceptor(s.authenticateUnary),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinClientPing, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepalivePing, Timeout: keepaliveTimeout}),
	)
	xds := serverv3.NewServer(ctx, s.cache, s.callbacks())
	secretservice.RegisterSecretDiscoveryServiceServer(g, xds)
	if s.opts.Register != nil {
		s.opts.Register(ctx, g)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watchAuthority(ctx)
	}()
	go func() {
		<-ctx.Done()
		g.Stop()
	}()
	s.log.Info("serving SDS", "addr", lis.Addr().String())
	err := g.Serve(lis)
	<-done
	s.stopTimers()
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve SDS: %w", err)
	}
	return nil
}

// watchAuthority re-serves every node when the CA changes.
func (s *SDSServer) watchAuthority(ctx context.Context) {
	for {
		changed := s.opts.Authority.Changed()
		select {
		case <-ctx.Done():
			return
		case <-changed:
			s.caChanged()
		}
	}
}

// callerKey is the context key of the authenticated Caller.
type callerKey struct{}

// CallerFrom returns the caller the SDSServer's interceptors
// authenticated, in the context of a stream (or call) they let through:
// any service the server carries (SDSOptions.Register) finds it there.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok && c != nil
}

// CheckNode checks an xDS node against an authenticated caller as SDS
// does: a node ID, and node metadata (xdsconv.NodeMetaNamespace,
// NodeMetaServiceAccount and, when the token is bound to a pod,
// xdsconv.NodeMetaPod) that agrees with the caller. The error is a gRPC
// status: InvalidArgument or PermissionDenied.
func CheckNode(node *corev3.Node, caller *Caller) error {
	_, err := checkNode(node, caller)
	return err
}

func (s *SDSServer) authenticate(ctx context.Context) (context.Context, error) {
	caller, err := s.opts.Authenticator.AuthenticateContext(ctx)
	if err != nil {
		s.reject(err)
		return nil, err
	}
	return context.WithValue(ctx, callerKey{}, caller), nil
}

// authenticateStream reviews the stream's token before any SDS handling:
// a stream without a valid token gets nothing.
func (s *SDSServer) authenticateStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &authenticatedStream{ServerStream: ss, ctx: ctx})
}

func (s *SDSServer) authenticateUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

type authenticatedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authenticatedStream) Context() context.Context { return a.ctx }

// reject counts and logs (at debug verbosity: a misconfigured proxy
// retries in a loop) a refused stream.
func (s *SDSServer) reject(err error) {
	st := status.Convert(err)
	s.metrics.rejected.WithLabelValues(st.Code().String()).Inc()
	s.log.V(1).Info("SDS stream refused", "code", st.Code().String(), "reason", st.Message())
}

func (s *SDSServer) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			return s.opened(ctx, streamKey{id: id})
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			return s.opened(ctx, streamKey{delta: true, id: id})
		},
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			return s.request(streamKey{id: id}, req.GetTypeUrl(), req.GetNode())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			return s.request(streamKey{delta: true, id: id}, req.GetTypeUrl(), req.GetNode())
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { s.closed(streamKey{id: id}) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(streamKey{delta: true, id: id}) },
		FetchRequestFunc: func(context.Context, *discoveryv3.DiscoveryRequest) error {
			// A fetch has no stream whose end would forget the node's
			// key; SDS clients stream.
			return status.Error(codes.Unimplemented, "FetchSecrets is not served; use StreamSecrets or DeltaSecrets")
		},
	}
}

func (s *SDSServer) opened(ctx context.Context, k streamKey) error {
	caller, ok := CallerFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "stream has no authenticated caller")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[k] = &sdsStream{caller: caller}
	return nil
}

// request checks a request's type and node; a stream's first request
// registers its node, which signs the node's SVID when it is the node's
// first stream.
func (s *SDSServer) request(k streamKey, typeURL string, node *corev3.Node) error {
	if typeURL != resource.SecretType {
		return s.refuse(status.Errorf(codes.InvalidArgument, "type %q is not served here; this endpoint serves only %s", typeURL, resource.SecretType))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	if st == nil {
		return status.Error(codes.Internal, "request on an unknown stream")
	}
	if node == nil && st.node != "" {
		return nil // later requests may omit the node
	}
	key, err := checkNode(node, st.caller)
	if err != nil {
		return s.refuse(err)
	}
	if st.node != "" {
		if key != st.node {
			return s.refuse(status.Error(codes.InvalidArgument, "the node changed within a stream"))
		}
		return nil
	}
	n := s.nodes[key]
	if n == nil {
		state, err := s.opts.Authority.Current()
		if err != nil {
			return s.refuse(status.Errorf(codes.Unavailable, "%v", err))
		}
		id, kind, err := s.identity(state.TrustDomain(), st.caller)
		if err != nil {
			return s.refuse(status.Errorf(codes.PermissionDenied, "%v", err))
		}
		n = &sdsNode{key: key, caller: st.caller, id: id, kind: kind}
		if err := s.renewLocked(n); err != nil {
			return s.refuse(status.Errorf(codes.Unavailable, "issue a certificate for %s: %v", id, err))
		}
		s.nodes[key] = n
		s.metrics.nodes.Set(float64(len(s.nodes)))
		s.log.V(1).Info("serving SDS node", "node", node.GetId(), "caller", st.caller.String(), "id", id.String())
	}
	if n.revoked {
		// A stream with a fresh token: renew again.
		n.caller, n.revoked = st.caller, false
		if err := s.renewLocked(n); err != nil {
			return s.refuse(status.Errorf(codes.Unavailable, "issue a certificate for %s: %v", n.id, err))
		}
	}
	n.streams++
	st.node = key
	return nil
}

func (s *SDSServer) refuse(err error) error {
	s.reject(err)
	return err
}

// closed forgets a stream, and its node with its last stream.
func (s *SDSServer) closed(k streamKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[k]
	delete(s.streams, k)
	if st == nil || st.node == "" {
		return
	}
	n := s.nodes[st.node]
	if n == nil {
		return
	}
	if n.streams--; n.streams > 0 {
		return
	}
	if n.timer != nil {
		n.timer.Stop()
	}
	delete(s.nodes, n.key)
	s.cache.ClearSnapshot(n.key)
	s.metrics.nodes.Set(float64(len(s.nodes)))
}

// checkNode checks a node's metadata against the stream's caller and
// returns the node's cache key. The key holds the verified namespace and
// ServiceAccount, so two callers that claim the same node ID never share
// a snapshot.
func checkNode(node *corev3.Node, caller *Caller) (string, error) {
	switch {
	case node.GetId() == "":
		return "", status.Error(codes.InvalidArgument, "the request has no node ID")
	case len(node.GetId()) > maxNodeIDBytes:
		return "", status.Errorf(codes.InvalidArgument, "node ID is longer than %d bytes", maxNodeIDBytes)
	}
	ns := nodeMeta(node, xdsconv.NodeMetaNamespace)
	sa := nodeMeta(node, NodeMetaServiceAccount)
	if ns != caller.Namespace || sa != caller.ServiceAccount {
		return "", status.Errorf(codes.PermissionDenied, "node metadata %s=%q %s=%q does not match the token's ServiceAccount %s/%s",
			xdsconv.NodeMetaNamespace, ns, NodeMetaServiceAccount, sa, caller.Namespace, caller.ServiceAccount)
	}
	if pod := nodeMeta(node, xdsconv.NodeMetaPod); pod != "" && caller.PodName != "" && pod != caller.PodName {
		return "", status.Errorf(codes.PermissionDenied, "node metadata %s=%q does not match the token's pod %s", xdsconv.NodeMetaPod, pod, caller.PodName)
	}
	return nodeKey(node), nil
}

// nodeKey is a node's snapshot cache key: namespace/serviceaccount/id.
// Namespaces and ServiceAccount names cannot hold "/".
func nodeKey(node *corev3.Node) string {
	return nodeMeta(node, xdsconv.NodeMetaNamespace) + "/" + nodeMeta(node, NodeMetaServiceAccount) + "/" + node.GetId()
}

func nodeMeta(node *corev3.Node, key string) string {
	return node.GetMetadata().GetFields()[key].GetStringValue()
}

// nodeHash keys the snapshot cache by nodeKey; requests reach the cache
// only after checkNode accepted their node.
type nodeHash struct{}

func (nodeHash) ID(node *corev3.Node) string { return nodeKey(node) }

// SVID kinds, the values of the kind label of the issued metric.
const (
	kindWorkload = "workload"
	kindGateway  = "gateway"
	kindAgent    = "agent"
)

// identity is the SPIFFE ID a caller is served.
func (s *SDSServer) identity(td spiffeid.TrustDomain, c *Caller) (spiffeid.ID, string, error) {
	if c.Namespace == GatewayNamespace && c.ServiceAccount == GatewayServiceAccount {
		id, err := GatewayID(td, s.opts.ClusterName)
		return id, kindGateway, err
	}
	id, err := workloadID(td, c.Namespace, c.ServiceAccount)
	return id, kindWorkload, err
}

// GatewayID is the SPIFFE ID of a member's east-west gateway.
func GatewayID(td spiffeid.TrustDomain, cluster string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "cluster", cluster, "gateway")
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("gateway ID of cluster %q: %w", cluster, err)
	}
	return id, nil
}

// workloadID is spiffe://<td>/ns/<ns>/sa/<sa>.
func workloadID(td spiffeid.TrustDomain, ns, sa string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload ID of %s/%s: %w", ns, sa, err)
	}
	return id, nil
}

// renewLocked issues n a new SVID, serves it and schedules the next
// renewal at its half-life. s.mu is held.
func (s *SDSServer) renewLocked(n *sdsNode) error {
	issued, err := s.opts.Issuer.Issue(n.id, s.opts.Issuer.TTL())
	if err != nil {
		return err
	}
	s.metrics.issued.WithLabelValues(n.kind).Inc()
	if err := s.serveLocked(n, issued, issued.CA.BundlePEM); err != nil {
		return err
	}
	s.scheduleLocked(n, pki.RotationTime(issued.SVID.Leaf()).Sub(s.clock.Now()))
	return nil
}

// serveLocked sets n's snapshot: its SVID and the bundle.
func (s *SDSServer) serveLocked(n *sdsNode, issued *Issued, bundlePEM []byte) error {
	s.version++
	snap, err := cachev3.NewSnapshot(strconv.FormatUint(s.version, 10), map[resource.Type][]types.Resource{
		resource.SecretType: {certificateSecret(issued), rootSecret(bundlePEM)},
	})
	if err != nil {
		return fmt.Errorf("build SDS snapshot: %w", err)
	}
	if err := s.cache.SetSnapshot(s.context(), n.key, snap); err != nil {
		return fmt.Errorf("set SDS snapshot: %w", err)
	}
	n.issued = issued
	return nil
}

// scheduleLocked renews n after d.
func (s *SDSServer) scheduleLocked(n *sdsNode, d time.Duration) {
	if n.timer != nil {
		n.timer.Stop()
	}
	// A fake clock runs the function while holding its own lock, so the
	// renewal, which reads the clock, runs on its own goroutine.
	n.timer = s.clock.AfterFunc(max(d, 0), func() { go s.renew(n) })
}

// renew renews n's SVID if n is still served and what its token vouched
// for still holds.
func (s *SDSServer) renew(n *sdsNode) {
	ctx, cancel := context.WithTimeout(s.context(), time.Minute)
	defer cancel()
	err := s.opts.Authenticator.Revalidate(ctx, n.caller)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes[n.key] != n || n.revoked {
		return
	}
	switch {
	case status.Code(err) == codes.Unauthenticated:
		n.revoked = true
		s.log.Info("not renewing an SVID: its token's ServiceAccount or pod is gone; the proxy must reconnect with a valid token",
			"node", n.key, "id", n.id.String(), "reason", status.Convert(err).Message())
		return
	case err != nil:
		s.log.Error(err, "cannot check a node's identity before renewing its SVID; retrying", "node", n.key, "retryIn", retryAfter)
		s.scheduleLocked(n, retryAfter)
		return
	}
	if err := s.renewLocked(n); err != nil {
		s.log.Error(err, "cannot renew an SVID; retrying", "node", n.key, "id", n.id.String(), "retryIn", retryAfter)
		s.scheduleLocked(n, retryAfter)
	}
}

// caChanged re-serves every node: a new SVID where the intermediate
// changed, the new bundle everywhere.
func (s *SDSServer) caChanged() {
	state, err := s.opts.Authority.Current()
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.revoked {
			continue
		}
		var err error
		if n.issued.CA.sameIntermediate(state) {
			err = s.serveLocked(n, n.issued, state.BundlePEM)
		} else {
			err = s.renewLocked(n)
		}
		if err != nil {
			s.log.Error(err, "cannot serve a node the new CA; retrying", "node", n.key, "retryIn", retryAfter)
			s.scheduleLocked(n, retryAfter)
		}
	}
}

func (s *SDSServer) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.timer != nil {
			n.timer.Stop()
		}
	}
}

// context is the Serve context, or a background one before Serve.
func (s *SDSServer) context() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// getCertificate serves the agent's own SVID, renewing it at half-life
// and when the CA changes.
func (s *SDSServer) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	state, err := s.opts.Authority.Current()
	if err != nil {
		return nil, err
	}
	s.servingMu.Lock()
	defer s.servingMu.Unlock()
	if cur := s.serving; cur != nil && cur.CA == state && !pki.ShouldRotate(cur.SVID.Leaf(), s.clock.Now()) {
		return s.servingTLS, nil
	}
	id, err := s.AgentID(state.TrustDomain())
	if err != nil {
		return nil, err
	}
	issued, err := issueWith(state, s.clock, id, s.opts.Issuer.TTL())
	if err != nil {
		return nil, fmt.Errorf("issue the agent's serving certificate: %w", err)
	}
	s.metrics.issued.WithLabelValues(kindAgent).Inc()
	s.serving = issued
	s.servingTLS = &tls.Certificate{Certificate: issued.SVID.ChainDER(), PrivateKey: issued.Key, Leaf: issued.SVID.Leaf()}
	return s.servingTLS, nil
}

func certificateSecret(issued *Issued) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: SecretDefault,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(issued.SVID.ChainPEM()),
			PrivateKey:       inline(issued.KeyPEM),
		}},
	}
}

func rootSecret(bundlePEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: SecretRootCA,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(bundlePEM),
		}},
	}
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

// cacheLogger adapts logr to go-control-plane's logger, at debug
// verbosities.
type cacheLogger struct{ log logr.Logger }

func (l cacheLogger) Debugf(format string, args ...any) {
	l.log.V(3).Info(fmt.Sprintf(format, args...))
}
func (l cacheLogger) Infof(format string, args ...any)  { l.log.V(2).Info(fmt.Sprintf(format, args...)) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.log.V(1).Info(fmt.Sprintf(format, args...)) }
func (l cacheLogger) Errorf(format string, args ...any) { l.log.Info(fmt.Sprintf(format, args...)) }
