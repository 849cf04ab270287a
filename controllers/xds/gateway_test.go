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

package xds_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// logBuffer collects log lines, for tests that assert what was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		fmt.Fprintln(&b.buf, prefix, args)
	}, funcr.Options{})
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// secureStack is an agent's xDS served as the agent serves it to
// proxies: on the identity service's SDS server (TLS, ServiceAccount
// tokens checked with TokenReview), with a Controller that reads the
// member's link plan from the "hub" (the same API server).
type secureStack struct {
	member, memberNS string
	server           *xds.Server
	addr             string // the SDS server's
	bundle           *pki.Bundle
	logs             *logBuffer
	clientset        kubernetes.Interface
}

// startSecureStack starts a secure stack for a new member; it stops when
// the test ends.
func startSecureStack(t *testing.T) *secureStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &secureStack{member: "gw-" + utilrand.String(6), logs: &logBuffer{}}
	st.memberNS = causewayv1alpha1.MemberNamespace(st.member)
	for _, ns := range []string{st.memberNS, causewayv1alpha1.SystemNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	bundleNS := newNamespace(ctx, t)

	// The member's CA, as the hub issues it into its namespace.
	td := spiffeid.RequireTrustDomainFromString("mesh.example.com")
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate(st.member, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: st.memberNS, Name: identity.CASecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: inter.ChainPEM(), corev1.TLSPrivateKeyKey: key, identity.CASecretBundleKey: root.CertificatePEM()},
	}); err != nil {
		t.Fatal(err)
	}
	if st.bundle, err = pki.NewBundle(td, root.Certificate()); err != nil {
		t.Fatal(err)
	}

	log := st.logs.logger()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 sch,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 log,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// As the agent caches them: the trust bundle in the member, the
			// CA Secret and the link plan in the member's hub namespace.
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
				bundleNS:    {FieldSelector: fields.OneTermEqualSelector("metadata.name", identity.TrustBundleConfigMap)},
				st.memberNS: {FieldSelector: fields.OneTermEqualSelector("metadata.name", linkplan.ConfigMapName)},
			}},
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{st.memberNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.CASecretName),
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	authority := identity.NewAuthority()
	if err := (&identity.CAReconciler{Hub: mgr.GetClient(), Member: mgr.GetClient(), ClusterName: st.member, BundleNamespace: bundleNS, Authority: authority}).SetupWithManager(mgr, mgr); err != nil {
		t.Fatal(err)
	}
	issuer := &identity.Issuer{Authority: authority}
	if err := issuer.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if st.server, err = xds.NewServer(xds.Options{Logger: log.WithName("xds")}); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(&xds.Controller{
		Client: mgr.GetClient(), Cache: mgr.GetCache(), Server: st.server, ClusterName: st.member, Logger: log,
		LinkPlan: &xds.LinkPlanSource{Cache: mgr.GetCache(), Namespace: st.memberNS},
	}); err != nil {
		t.Fatal(err)
	}
	sds, err := identity.NewSDSServer(identity.SDSOptions{
		Authority: authority, Issuer: issuer, ClusterName: st.member, Logger: log.WithName("sds"),
		Authenticator: &identity.Authenticator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		Register:      st.server.Register,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = lis.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- mgr.Start(ctx) }()
	go func() { errs <- sds.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("secure stack: %v", err)
			}
		}
	})
	if st.clientset, err = kubernetes.NewForConfig(restConfig); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, authority.Ready)
	return st
}

// token returns a token of ServiceAccount ns/sa (created if missing) for
// the agent's audience.
func (st *secureStack) token(ctx context.Context, t *testing.T, ns, sa string) string {
	t.Helper()
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := st.clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{identity.DefaultAudience}, ExpirationSeconds: ptr.To[int64](3600),
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// ads dials the SDS server as causeway-proxy does (the agent's SPIFFE ID
// verified against the bundle) and returns its ADS client.
func (st *secureStack) ads(t *testing.T) discoverygrpc.AggregatedDiscoveryServiceClient {
	t.Helper()
	agent := spiffeid.RequireFromSegments(st.bundle.TrustDomain(), "ns", identity.AgentNamespace, "sa", identity.AgentServiceAccount)
	conn, err := grpc.NewClient(st.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsconfig.TLSClientConfig(st.bundle, tlsconfig.AuthorizeID(agent)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
}

// writePlan creates or replaces the member's plan ConfigMap with data.
func (st *secureStack) writePlan(ctx context.Context, t *testing.T, data map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: st.memberNS, Name: linkplan.ConfigMapName}}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	cm.Data = data
	switch {
	case apierrors.IsNotFound(err):
		err = k8s.Create(ctx, cm)
	case err == nil:
		err = k8s.Update(ctx, cm)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// dialConn is a plaintext connection to addr.
func dialConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// gatewayNode is a node as causeway-proxy --mode=gateway sends it, for
// the ServiceAccount ns/sa.
func gatewayNode(id, ns, sa string) *corev3.Node {
	return &corev3.Node{Id: id, UserAgentName: "causeway-proxy", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		xdsconv.NodeMetaMode:           structpb.NewStringValue(xdsconv.ModeGateway),
		xdsconv.NodeMetaNamespace:      structpb.NewStringValue(ns),
		xdsconv.NodeMetaServiceAccount: structpb.NewStringValue(sa),
	}}}
}

// cdsStream is a state-of-the-world ADS stream asking for clusters, which
// ACKs every response.
type cdsStream struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[discoverygrpc.DiscoveryRequest, discoverygrpc.DiscoveryResponse]
	node   *corev3.Node
}

func openCDS(ctx context.Context, t *testing.T, ads discoverygrpc.AggregatedDiscoveryServiceClient, token string, n *corev3.Node) *cdsStream {
	t.Helper()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	s, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return &cdsStream{t: t, stream: s, node: n}
}

// next returns the next response's clusters by name and ACKs it.
func (c *cdsStream) next() map[string]*clusterv3.Cluster {
	c.t.Helper()
	resp := recv(c.t, 20*time.Second, c.stream.Recv)
	out := map[string]*clusterv3.Cluster{}
	for _, a := range resp.GetResources() {
		var cl clusterv3.Cluster
		if err := a.UnmarshalTo(&cl); err != nil {
			c.t.Fatal(err)
		}
		if err := cl.ValidateAll(); err != nil {
			c.t.Errorf("cluster %s: %v", cl.Name, err)
		}
		out[cl.Name] = &cl
	}
	if err := c.stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// until reads responses until check accepts one.
func (c *cdsStream) until(what string, check func(map[string]*clusterv3.Cluster) error) map[string]*clusterv3.Cluster {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs := c.next()
		err := check(cs)
		if err == nil {
			return cs
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
	}
}

// links returns the names of the link clusters among cs, sorted.
func links(cs map[string]*clusterv3.Cluster) []string {
	var out []string
	for name := range cs {
		if strings.HasPrefix(name, xdsconv.LinkClusterPrefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// refused expects the stream to end with PermissionDenied and a message
// containing want.
func refused(t *testing.T, c *cdsStream, want string) {
	t.Helper()
	resp, err := c.stream.Recv()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v (response with %d resources), want PermissionDenied", err, len(resp.GetResources()))
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, want) {
		t.Errorf("message %q does not say %q", msg, want)
	}
}

// The gateway's configuration goes only to the gateway: a node saying
// causeway.dev/mode=gateway gets its link clusters on the authenticated
// port with the token of causeway-system/causeway-gateway, and is refused
// with PermissionDenied and a message saying why with any other token
// (even one whose node metadata is true to it) and on the plaintext port.
// Its links follow the plan on the hub: a plan.json that does not parse,
// or that names another cluster, is logged (once) and read as no plan,
// and nothing else in the gateway's configuration changes; a valid plan
// brings them back.
func TestGatewayNodes(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	st := startSecureStack(t)
	plan := linkplan.Plan{Cluster: st.member, Peers: []linkplan.Peer{
		{Cluster: "a", Role: linkplan.RoleDial, Addresses: []string{"10.255.1.2:15443"}, Transport: "QUIC"},
		{Cluster: "zz", Role: linkplan.RoleAccept, Transport: "TCP"},
	}}
	good, err := plan.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	st.writePlan(ctx, t, map[string]string{linkplan.ConfigMapKey: string(good)})
	ads := st.ads(t)
	gwToken := st.token(ctx, t, xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount)
	wantLinks := func(want ...string) func(map[string]*clusterv3.Cluster) error {
		return func(cs map[string]*clusterv3.Cluster) error {
			if got := links(cs); !slices.Equal(got, want) {
				return fmt.Errorf("link clusters %v, want %v", got, want)
			}
			if cs[xdsconv.PassthroughCluster] == nil {
				return fmt.Errorf("no %s: the proxy resources are missing", xdsconv.PassthroughCluster)
			}
			return nil
		}
	}

	var gw *cdsStream
	t.Run("the gateway's identity gets its links", func(t *testing.T) {
		gw = openCDS(ctx, t, ads, gwToken, gatewayNode("gateway-1", xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount))
		cs := gw.until("gateway clusters", wantLinks("causeway-link|a", "causeway-link|zz"))
		md := cs["causeway-link|a"].GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()
		if md[xdsconv.MetadataLinkRole].GetStringValue() != "dial" || md[xdsconv.MetadataPeerCluster].GetStringValue() != "a" ||
			md[xdsconv.MetadataLinkTransport].GetStringValue() != "QUIC" {
			t.Errorf("causeway-link|a metadata %v", md)
		}
		if got := st.server.Nodes()["gateway-1"]; got != translate.Gateway {
			t.Errorf("node kind %s, want gateway", got)
		}
	})

	t.Run("over delta xDS too", func(t *testing.T) {
		s, err := ads.DeltaAggregatedResources(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+gwToken))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: gatewayNode("gateway-delta", xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount), TypeUrl: resource.ClusterType}); err != nil {
			t.Fatal(err)
		}
		resp := recv(t, 20*time.Second, s.Recv)
		var got []string
		for _, r := range resp.GetResources() {
			if strings.HasPrefix(r.GetName(), xdsconv.LinkClusterPrefix) {
				got = append(got, r.GetName())
			}
		}
		slices.Sort(got)
		if want := []string{"causeway-link|a", "causeway-link|zz"}; !slices.Equal(got, want) {
			t.Errorf("delta link clusters %v, want %v", got, want)
		}
	})

	t.Run("another ServiceAccount saying mode=gateway is refused", func(t *testing.T) {
		tok := st.token(ctx, t, xdsconv.GatewayNamespace, "impostor")
		s := openCDS(ctx, t, ads, tok, gatewayNode("impostor-1", xdsconv.GatewayNamespace, "impostor"))
		refused(t, s, "only causeway-system/causeway-gateway may be the gateway")
		ns := newNamespace(ctx, t)
		tok = st.token(ctx, t, ns, xdsconv.GatewayServiceAccount)
		s = openCDS(ctx, t, ads, tok, gatewayNode("impostor-2", ns, xdsconv.GatewayServiceAccount))
		refused(t, s, "its token is ServiceAccount "+ns+"/causeway-gateway")
		for _, id := range []string{"impostor-1", "impostor-2"} {
			if _, ok := st.server.Nodes()[id]; ok {
				t.Errorf("refused node %s was registered", id)
			}
		}
	})

	t.Run("mode=gateway on the plaintext port is refused", func(t *testing.T) {
		s := openCDS(ctx, t, dialXDS(t, stack.addr), "", gatewayNode("plain-gw", xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount))
		refused(t, s, "plaintext")
		if _, ok := stack.server.Nodes()["plain-gw"]; ok {
			t.Error("the refused plaintext gateway node was registered")
		}
		// A later request on an accepted plaintext stream that turns the
		// node into a gateway closes it too.
		s = openCDS(ctx, t, dialXDS(t, stack.addr), "", proxyNode("plain-turncoat"))
		resp := recv(t, 20*time.Second, s.stream.Recv)
		if err := s.stream.Send(&discoverygrpc.DiscoveryRequest{
			Node: gatewayNode("plain-turncoat", xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount), TypeUrl: resource.ClusterType,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
		}); err != nil {
			t.Fatal(err)
		}
		refused(t, s, "plaintext")

		// A one-off fetch (REST-style CDS) too.
		_, err := clusterservice.NewClusterDiscoveryServiceClient(dialConn(t, stack.addr)).FetchClusters(ctx, &discoverygrpc.DiscoveryRequest{
			Node: gatewayNode("plain-fetch", xdsconv.GatewayNamespace, xdsconv.GatewayServiceAccount), TypeUrl: resource.ClusterType,
		})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "plaintext") {
			t.Errorf("plaintext fetch as a gateway: got %v, want PermissionDenied", err)
		}
	})

	t.Run("a bad plan is logged and read as no plan; a good one restores the links", func(t *testing.T) {
		for name, data := range map[string]map[string]string{
			"not JSON":          {linkplan.ConfigMapKey: "{not json"},
			"invalid plan":      {linkplan.ConfigMapKey: `{"cluster":"` + st.member + `","peers":[{"cluster":"a","role":"sideways"}]}`},
			"another cluster's": {linkplan.ConfigMapKey: `{"cluster":"someone-else","peers":[]}`},
			"no plan.json key":  {"other.json": "{}"},
		} {
			t.Run(name, func(t *testing.T) {
				before := st.logs.count("link plan unusable")
				st.writePlan(ctx, t, data)
				gw.until("links gone", wantLinks())
				eventually(t, 10*time.Second, func() error {
					if st.logs.count("link plan unusable") <= before {
						return fmt.Errorf("the bad plan was not logged")
					}
					return nil
				})
				st.writePlan(ctx, t, map[string]string{linkplan.ConfigMapKey: string(good)})
				gw.until("links back", wantLinks("causeway-link|a", "causeway-link|zz"))
			})
		}
		// Each bad version is logged once, however many rounds read it.
		if n := st.logs.count("link plan unusable"); n != 4 {
			t.Errorf("%d log lines for 4 bad plans", n)
		}
	})

	t.Run("without the ConfigMap there are no links", func(t *testing.T) {
		if err := k8s.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: st.memberNS, Name: linkplan.ConfigMapName}}); err != nil {
			t.Fatal(err)
		}
		gw.until("links gone", wantLinks())
	})
}
