package xdsclient

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// sdsServer is a real go-control-plane SDS server: a snapshot cache that
// is not in ADS mode (as an SDS server's is) behind the state-of-the-world
// server, wired to envoy.service.secret.v3.SecretDiscoveryService. It
// refuses streams without the bearer token it was given.
type sdsServer struct {
	*xdsServer
	token string
}

type secretService struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer
	sotw  sotwv3.Server
	token string
}

func (s secretService) StreamSecrets(st secretv3.SecretDiscoveryService_StreamSecretsServer) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	if !slices.Contains(md.Get("authorization"), "Bearer "+s.token) {
		return status.Error(codes.Unauthenticated, "no valid token")
	}
	return s.sotw.StreamHandler(st, resourcev3.SecretType)
}

func startSDSServer(t *testing.T, token string) *sdsServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sdsServer{token: token, xdsServer: &xdsServer{
		addr:  lis.Addr().String(),
		cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil),
		grpc:  grpc.NewServer(),
		stop:  cancel,
		done:  make(chan struct{}),
	}}
	srv := sotwv3.NewServer(ctx, s.cache, s.xdsServer)
	secretv3.RegisterSecretDiscoveryServiceServer(s.grpc, secretService{sotw: srv, token: token})
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(lis)
	}()
	t.Cleanup(s.shutdown)
	return s
}

func (s *sdsServer) setSecrets(t *testing.T, version string, names ...string) {
	t.Helper()
	var rs []types.Resource
	for _, n := range names {
		rs = append(rs, &tlsv3.Secret{Name: n, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "v" + version}},
		}}})
	}
	snap, err := cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{resourcev3.SecretType: rs})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cache.SetSnapshot(context.Background(), testNodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// secretApplier keeps secrets by name (a response updates the names it
// carries; the others stay) and wants the names the test sets.
type secretApplier struct {
	mu      sync.Mutex
	want    []string
	secrets map[string]string // name → trusted_ca
	bad     string            // a name whose secret is refused
}

func (a *secretApplier) Apply(typeURL, _ string, resources []*anypb.Any) error {
	if typeURL != SecretType {
		return errors.New("not a secret")
	}
	next := map[string]string{}
	for _, r := range resources {
		var s tlsv3.Secret
		if err := r.UnmarshalTo(&s); err != nil {
			return err
		}
		if s.GetName() == a.bad {
			return errors.New("refused " + s.GetName())
		}
		next[s.GetName()] = s.GetValidationContext().GetTrustedCa().GetInlineString()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range next {
		a.secrets[k] = v
	}
	return nil
}

func (a *secretApplier) Names(typeURL string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if typeURL != SecretType {
		return nil
	}
	return slices.Clone(a.want)
}

func (a *secretApplier) get(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets[name]
}

func (a *secretApplier) setWant(names ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want = names
}

// bearer is per-RPC credentials that read the token for every stream.
type bearer struct{ token func() string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token()}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// TestSDSClient: an SDS client subscribes to the secrets its applier
// names on one StreamSecrets stream, with the node and the per-stream
// credentials, applies and ACKs them, changes its subscription on
// Resubscribe, and resumes after the server restarts with the token read
// anew, keeping what it had.
func TestSDSClient(t *testing.T) {
	srv := startSDSServer(t, "token-1")
	srv.setSecrets(t, "1", "default", "ROOTCA", "extra")
	app := &secretApplier{want: []string{"default", "ROOTCA"}, secrets: map[string]string{}}
	var tokenMu sync.Mutex
	token := "token-1"
	c := startClient(t, srv.addr, app, func(cfg *Config) {
		cfg.Service = ServiceSDS
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithPerRPCCredentials(bearer{token: func() string {
			tokenMu.Lock()
			defer tokenMu.Unlock()
			return token
		}}))
	})

	waitFor(t, "both secrets applied and ACKed", func() bool {
		return app.get("default") == "v1" && app.get("ROOTCA") == "v1" && srv.acked(SecretType, "1")
	})
	first := srv.firstRequest()
	if first.GetTypeUrl() != SecretType || first.GetNode().GetId() != testNodeID || !slices.Equal(first.GetResourceNames(), []string{"ROOTCA", "default"}) {
		t.Fatalf("first request = %v, want %s for [ROOTCA default] with the node", first, SecretType)
	}
	if got := app.get("extra"); got != "" {
		t.Fatalf("a secret that was not asked for was applied: extra=%q", got)
	}
	if n := len(srv.requestsOf(ListenerType)) + len(srv.requestsOf(ClusterType)); n != 0 {
		t.Fatalf("an SDS client sent %d LDS/CDS requests", n)
	}

	app.setWant("default", "ROOTCA", "extra")
	c.Resubscribe()
	waitFor(t, "the new name subscribed and applied", func() bool { return app.get("extra") == "v1" })

	// The server goes and comes back on the same address with a new
	// token in force: the client reconnects, reads the token again and
	// resubscribes; meanwhile its secrets stay.
	srv.shutdown()
	tokenMu.Lock()
	token = "token-2"
	tokenMu.Unlock()
	if app.get("default") != "v1" {
		t.Fatal("secrets were dropped when the server went away")
	}
	srv2 := &sdsServer{token: "token-2", xdsServer: &xdsServer{}}
	lis := listenAgain(t, srv.addr)
	ctx, cancel := context.WithCancel(context.Background())
	srv2.addr, srv2.cache, srv2.grpc, srv2.stop, srv2.done = srv.addr, cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), grpc.NewServer(), cancel, make(chan struct{})
	secretv3.RegisterSecretDiscoveryServiceServer(srv2.grpc, secretService{sotw: sotwv3.NewServer(ctx, srv2.cache, srv2.xdsServer), token: "token-2"})
	go func() {
		defer close(srv2.done)
		_ = srv2.grpc.Serve(lis)
	}()
	t.Cleanup(srv2.shutdown)
	srv2.setSecrets(t, "2", "default", "ROOTCA", "extra")
	waitFor(t, "the secrets of the restarted server applied", func() bool {
		return app.get("default") == "v2" && app.get("extra") == "v2" && srv2.acked(SecretType, "2")
	})
	if c.Status().Types[SecretType].Version != "2" {
		t.Fatalf("status = %+v, want secret version 2", c.Status().Types[SecretType])
	}
}

// TestSDSClientNACKsRefusedSecret: a secret the applier refuses is
// NACKed with the reason; the last accepted ones stay.
func TestSDSClientNACKsRefusedSecret(t *testing.T) {
	srv := startSDSServer(t, "t")
	srv.setSecrets(t, "1", "default")
	app := &secretApplier{want: []string{"default"}, secrets: map[string]string{}, bad: "default"}
	startClient(t, srv.addr, app, func(cfg *Config) {
		cfg.Service = ServiceSDS
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithPerRPCCredentials(bearer{token: func() string { return "t" }}))
	})
	waitFor(t, "the refused secret NACKed", func() bool {
		_, ok := srv.findRequest(SecretType, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetErrorDetail().GetMessage() == "refused default" && r.GetVersionInfo() == ""
		})
		return ok
	})
	if got := app.get("default"); got != "" {
		t.Fatalf("refused secret applied: %q", got)
	}
}

func listenAgain(t *testing.T, addr string) net.Listener {
	t.Helper()
	var lis net.Listener
	waitFor(t, "listen on "+addr, func() bool {
		var err error
		lis, err = net.Listen("tcp", addr)
		return err == nil
	})
	return lis
}
