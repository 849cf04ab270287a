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
package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// One real kube-apiserver and etcd for the package. It plays both the hub
// (the CA Secret in causeway-member-<member>) and the member (tokens,
// pods, the bundle ConfigMap); each test's stack has its own member name.
var (
	env        *envtest.Environment
	restConfig *rest.Config
	sch        *runtime.Scheme
	k8s        client.Client
	clientset  kubernetes.Interface
)

// td is the trust domain of every test CA.
var td = spiffeid.RequireTrustDomainFromString("mesh.example.com")

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// Fuzz targets need no API server, and every fuzzing worker
		// process would start its own.
		return m.Run()
	}
	var err error
	env, err = world.StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v (run `make test-bins` to build etcd and kube-apiserver)\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	restConfig = env.Config
	sch = scheme.New()
	if k8s, err = client.New(restConfig, client.Options{Scheme: sch}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(restConfig); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create clientset: %v\n", err)
		return 1
	}
	// The gateway's ServiceAccount lives in causeway-system.
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		fmt.Fprintf(os.Stderr, "FAIL: create namespace: %v\n", err)
		return 1
	}
	return m.Run()
}

// stack is one agent's identity service: a manager with the CA
// reconciler (its hub cluster is the same API server), and the SDS server
// on a loopback port, on a fake clock.
type stack struct {
	member    string
	bundleNS  string
	addr      string
	clock     *clocktesting.FakeClock
	authority *identity.Authority
	server    *identity.SDSServer
	registry  *prometheus.Registry
}

type stackOptions struct {
	ttl time.Duration
	// register registers more services on the SDS server's gRPC server.
	register func(ctx context.Context, g *grpc.Server)
}

// startStack starts a stack for member; it stops when the test ends.
func startStack(t *testing.T, member string, opts stackOptions) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stack{
		member:    member,
		bundleNS:  newNamespace(ctx, t, "bundle-"),
		clock:     clocktesting.NewFakeClock(time.Now()),
		authority: identity.NewAuthority(),
		registry:  prometheus.NewRegistry(),
	}
	ensureNamespace(ctx, t, causewayv1alpha1.MemberNamespace(member))
	log := testLogger()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 sch,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 log,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{st.bundleNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.TrustBundleConfigMap),
			},
		}},
	})
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	hub, err := cluster.New(restConfig, func(o *cluster.Options) {
		o.Scheme = sch
		o.Cache.ByObject = map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{causewayv1alpha1.MemberNamespace(member): {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.CASecretName),
			},
		}
	})
	if err != nil {
		t.Fatalf("create hub cluster: %v", err)
	}
	if err := mgr.Add(hub); err != nil {
		t.Fatal(err)
	}
	if err := (&identity.CAReconciler{Hub: hub.GetClient(), Member: mgr.GetClient(), ClusterName: member, BundleNamespace: st.bundleNS, Authority: st.authority}).SetupWithManager(mgr, hub); err != nil {
		t.Fatalf("set up CA reconciler: %v", err)
	}
	issuer := &identity.Issuer{Authority: st.authority, Clock: st.clock, DefaultTTL: opts.ttl}
	if err := issuer.SetupWithManager(mgr); err != nil {
		t.Fatalf("set up MeshConfig controller: %v", err)
	}
	auth := &identity.Authenticator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Clock: st.clock}
	st.server, err = identity.NewSDSServer(identity.SDSOptions{
		Authority: st.authority, Issuer: issuer, Authenticator: auth, ClusterName: member,
		Clock: st.clock, Logger: log.WithName("sds"), Registerer: st.registry,
		Register: opts.register,
	})
	if err != nil {
		t.Fatalf("new SDS server: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = lis.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- mgr.Start(ctx) }()
	go func() { errs <- st.server.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("stack: %v", err)
			}
		}
	})
	return st
}

// testCA is a root and a member intermediate.
type testCA struct {
	root, inter *pki.CA
}

func newTestCA(t testing.TB, member string) testCA {
	t.Helper()
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate(member, 0)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{root: root, inter: inter}
}

// caSecretData is a CA Secret's data as the hub writes it.
func caSecretData(t testing.TB, inter *pki.CA, roots ...*pki.CA) map[string][]byte {
	t.Helper()
	key, err := inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, r := range roots {
		bundle = append(bundle, r.CertificatePEM()...)
	}
	return map[string][]byte{
		corev1.TLSCertKey:          inter.ChainPEM(),
		corev1.TLSPrivateKeyKey:    key,
		identity.CASecretBundleKey: bundle,
	}
}

// writeCASecret creates or replaces the member's CA Secret.
func writeCASecret(ctx context.Context, t testing.TB, member string, data map[string][]byte) {
	t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(member), Name: identity.CASecretName}}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(sec), sec)
	switch {
	case apierrors.IsNotFound(err):
		sec.Type = corev1.SecretTypeTLS
		sec.Data = data
		err = k8s.Create(ctx, sec)
	case err == nil:
		sec.Data = data
		err = k8s.Update(ctx, sec)
	}
	if err != nil {
		t.Fatalf("write CA Secret of %s: %v", member, err)
	}
}

// workload is a ServiceAccount, a pod running as it, and a pod-bound
// token for audience "causeway".
type workload struct {
	ns, sa string
	pod    *corev1.Pod
	token  string
}

func newWorkload(ctx context.Context, t testing.TB, ns, sa string) workload {
	t.Helper()
	createServiceAccount(ctx, t, ns, sa)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: sa + "-"},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "causeway.dev/echo"}},
		},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	return workload{ns: ns, sa: sa, pod: pod, token: requestToken(ctx, t, ns, sa, identity.DefaultAudience, pod)}
}

func createServiceAccount(ctx context.Context, t testing.TB, ns, name string) {
	t.Helper()
	err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
}

// requestToken asks the TokenRequest API for a token of ns/sa for
// audience, bound to pod when it is not nil.
func requestToken(ctx context.Context, t testing.TB, ns, sa, audience string, pod *corev1.Pod) string {
	t.Helper()
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To[int64](3600)}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	out, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token of %s/%s: %v", ns, sa, err)
	}
	return out.Status.Token
}

func newNamespace(ctx context.Context, t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func ensureNamespace(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// waitReady waits for the stack's CA and returns the published bundle.
func (st *stack) waitReady(t testing.TB) *pki.Bundle {
	t.Helper()
	var bundle *pki.Bundle
	eventually(t, 20*time.Second, func() error {
		if err := st.authority.Ready(); err != nil {
			return err
		}
		var err error
		bundle, err = st.publishedBundle(context.Background())
		return err
	})
	return bundle
}

// publishedBundle reads the trust bundle ConfigMap, as a proxy mounts it.
func (st *stack) publishedBundle(ctx context.Context) (*pki.Bundle, error) {
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: st.bundleNS, Name: identity.TrustBundleConfigMap}, &cm); err != nil {
		return nil, err
	}
	return pki.ParseBundle(td, []byte(cm.Data[identity.TrustBundleKey]))
}

// agentID is the SPIFFE ID the agent serves SDS with.
func agentID() spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "ns", identity.AgentNamespace, "sa", identity.AgentServiceAccount)
}

// dial connects to the SDS server trusting bundle and authorizing the
// agent's ID, as a proxy does.
func dial(t testing.TB, addr string, bundle *pki.Bundle) *grpc.ClientConn {
	t.Helper()
	return dialTLS(t, addr, tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(agentID())))
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// node is an SDS client's node: its ID and the metadata causeway-proxy
// sets.
func node(id, ns, sa, pod string) *corev3.Node {
	fields := map[string]any{xdsconv.NodeMetaNamespace: ns, identity.NodeMetaServiceAccount: sa}
	if pod != "" {
		fields[xdsconv.NodeMetaPod] = pod
	}
	md, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	return &corev3.Node{Id: id, Metadata: md}
}

func (w workload) node() *corev3.Node {
	return node(w.pod.Name+"."+w.ns, w.ns, w.sa, w.pod.Name)
}

// withToken adds the bearer token metadata; "" adds none.
func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// sotwClient is a state-of-the-world SDS stream.
type sotwClient struct {
	stream secretservice.SecretDiscoveryService_StreamSecretsClient
	node   *corev3.Node
	last   *discoveryv3.DiscoveryResponse
}

// openSotw opens a stream and requests names.
func openSotw(ctx context.Context, t testing.TB, conn *grpc.ClientConn, token string, n *corev3.Node, names ...string) *sotwClient {
	t.Helper()
	s, err := secretservice.NewSecretDiscoveryServiceClient(conn).StreamSecrets(withToken(ctx, token))
	if err != nil {
		t.Fatalf("open SDS stream: %v", err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resource.SecretType, ResourceNames: names}); err != nil {
		t.Fatalf("send SDS request: %v", err)
	}
	return &sotwClient{stream: s, node: n}
}

// recv receives the next response and ACKs it.
func (c *sotwClient) recv() (*served, error) {
	resp, err := c.stream.Recv()
	if err != nil {
		return nil, err
	}
	c.last = resp
	out, err := decode(resp.GetResources())
	if err != nil {
		return nil, err
	}
	if err := c.stream.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl: resource.SecretType, ResourceNames: []string{identity.SecretDefault, identity.SecretRootCA},
		VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
	}); err != nil {
		return nil, fmt.Errorf("ACK: %w", err)
	}
	return out, nil
}

// served is what a response held: the SVID chain and key, and the
// bundle.
type served struct {
	chain  []*x509.Certificate
	keyPEM []byte
	roots  []byte
}

func decode(resources []*anypb.Any) (*served, error) {
	out := &served{}
	for _, a := range resources {
		var sec tlsv3.Secret
		if err := a.UnmarshalTo(&sec); err != nil {
			return nil, fmt.Errorf("unmarshal secret: %w", err)
		}
		switch sec.GetName() {
		case identity.SecretDefault:
			tc := sec.GetTlsCertificate()
			if tc == nil {
				return nil, errors.New("default secret has no TlsCertificate")
			}
			certs, err := parseCerts(tc.GetCertificateChain().GetInlineBytes())
			if err != nil {
				return nil, err
			}
			out.chain, out.keyPEM = certs, tc.GetPrivateKey().GetInlineBytes()
		case identity.SecretRootCA:
			vc := sec.GetValidationContext()
			if vc == nil {
				return nil, errors.New("ROOTCA secret has no ValidationContext")
			}
			out.roots = vc.GetTrustedCa().GetInlineBytes()
		default:
			return nil, fmt.Errorf("unexpected secret %q", sec.GetName())
		}
	}
	return out, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate in the chain")
	}
	return certs, nil
}

// verify checks a served SVID as a peer would: the chain against the
// served bundle (at the stack's time), exactly one URI SAN, and a key
// that matches the leaf.
func (s *served) verify(t testing.TB, now time.Time, want spiffeid.ID) {
	t.Helper()
	if s.chain == nil || s.roots == nil {
		t.Fatalf("response lacks a secret: chain %v, roots %v", s.chain != nil, s.roots != nil)
	}
	bundle, err := pki.ParseBundle(td, s.roots)
	if err != nil {
		t.Fatalf("served ROOTCA: %v", err)
	}
	id, err := pki.Verify(s.chain, bundle, x509svid.WithTime(now))
	if err != nil {
		t.Fatalf("served SVID does not verify: %v", err)
	}
	if id != want {
		t.Fatalf("served SVID is %s, want %s", id, want)
	}
	leaf := s.chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want.String() || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 || len(leaf.EmailAddresses) != 0 {
		t.Fatalf("leaf SANs: URIs %v DNS %v IPs %v, want exactly %s", leaf.URIs, leaf.DNSNames, leaf.IPAddresses, want)
	}
	if _, err := tls.X509KeyPair(pemChain(s.chain), s.keyPEM); err != nil {
		t.Fatalf("served key does not match the SVID: %v", err)
	}
}

func pemChain(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// eventually retries check until it returns nil or the deadline passes.
func eventually(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs to stderr when IDENTITY_TEST_LOG is set.
func testLogger() logr.Logger {
	if os.Getenv("IDENTITY_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05.000"), prefix, strings.TrimSpace(args))
	}, funcr.Options{Verbosity: 1})
}

// metadataContext adds raw metadata pairs.
func metadataContext(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// resign returns token with its times moved so that it expires at exp,
// signed again with the API server's ServiceAccount signing key: a token
// the API server would have issued, but for its times.
func resign(t testing.TB, token string, exp time.Time) string {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(env.ControlPlane.GetAPIServer().CertDir, "sa-signer.key"))
	if err != nil {
		t.Fatalf("read the API server's ServiceAccount signing key: %v", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("no PEM block in the ServiceAccount signing key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("parse the ServiceAccount signing key: %v", err)
	}
	var alg jose.SignatureAlgorithm
	switch key.(type) {
	case *ecdsa.PrivateKey:
		alg = jose.ES256
	case *rsa.PrivateKey:
		alg = jose.RS256
	default:
		t.Fatalf("unexpected signing key type %T", key)
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	claims := map[string]any{}
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	claims["exp"] = exp.Unix()
	claims["iat"] = exp.Add(-2 * time.Hour).Unix()
	claims["nbf"] = exp.Add(-2 * time.Hour).Unix()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", parsed.Headers[0].KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uniqueMember is a member name of its own, so that a repeated run
// (-count) does not find an earlier run's CA Secret on the package's one
// API server.
func uniqueMember(prefix string) string {
	return prefix + "-" + utilrand.String(5)
}
