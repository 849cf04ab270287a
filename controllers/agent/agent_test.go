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

package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/agent"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/internal/cli"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// restConfig reaches the package's API server, which plays both the hub
// and the member.
var restConfig *rest.Config

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	env, err := world.StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v (run `make test-bins` to build etcd and kube-apiserver)\n", err)
		os.Exit(1)
	}
	restConfig = env.Config
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// eventually retries check until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeKubeconfig writes a kubeconfig whose context "env" reaches the
// package's API server.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cl := clientcmdapi.NewCluster()
	cl.Server, cl.CertificateAuthorityData = restConfig.Host, restConfig.CAData
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData, user.ClientKeyData = restConfig.CertData, restConfig.KeyData
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo = "env", "env"
	cfg.Clusters["env"], cfg.AuthInfos["env"], cfg.Contexts["env"] = cl, user, kctx
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGatewayGetsItsLinkPlan runs the real agent of a member joined with
// `causeway join` (one API server plays both the hub and the member; the
// test plays the hub's part: the member's CA and its link plan) and a
// gateway's xDS stream on the agent's SDS port, authenticated as
// causeway-system/causeway-gateway: through the agent's own hub
// credentials (whose RBAC must let it watch its plan) the gateway gets a
// link cluster per peer of the plan, and follows a change of the plan.
func TestGatewayGetsItsLinkPlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := client.New(restConfig, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	join := cli.NewRoot(&out, &out)
	join.SetArgs([]string{"join", "m", "--hub-context", "env", "--context", "env", "--kubeconfig", writeKubeconfig(t)})
	if err := join.ExecuteContext(ctx); err != nil {
		t.Fatalf("causeway join: %v\n%s", err, out.String())
	}
	memberNS := causewayv1alpha1.MemberNamespace("m")

	// The hub's part: the member's intermediate CA ...
	td := spiffeid.RequireTrustDomainFromString("mesh.example.com")
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: memberNS, Name: identity.CASecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: inter.ChainPEM(), corev1.TLSPrivateKeyKey: key, identity.CASecretBundleKey: root.CertificatePEM()},
	}); err != nil {
		t.Fatal(err)
	}
	// ... and its link plan: m dials peer.
	writePlan := func(addr string) {
		t.Helper()
		data, err := linkplan.Plan{Cluster: "m", Peers: []linkplan.Peer{
			{Cluster: "peer", Role: linkplan.RoleDial, Addresses: []string{addr}, Transport: causewayv1alpha1.GatewayTransportTCP},
		}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: memberNS, Name: linkplan.ConfigMapName}}
		_, err = controllerutil.CreateOrUpdate(ctx, c, cm, func() error {
			cm.Data = map[string]string{linkplan.ConfigMapKey: string(data)}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	writePlan("10.255.9.9:15443")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	sdsAddr := freeAddr(t)
	go func() {
		done <- agent.Run(runCtx, agent.Config{
			Member: restConfig, SDSAddr: sdsAddr, MetricsAddr: "0", HealthAddr: "0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	// The trust bundle the agent publishes, as a proxy mounts it.
	var bundle *pki.Bundle
	eventually(t, time.Minute, "the trust bundle", func() error {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: identity.TrustBundleConfigMap}, &cm); err != nil {
			return err
		}
		bundle, err = pki.ParseBundle(td, []byte(cm.Data[identity.TrustBundleKey]))
		return err
	})

	// The gateway's token and node.
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: xdsconv.GatewayNamespace, Name: xdsconv.GatewayServiceAccount}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(xdsconv.GatewayNamespace).CreateToken(ctx, xdsconv.GatewayServiceAccount, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{identity.DefaultAudience}, ExpirationSeconds: ptr.To[int64](3600),
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "gateway.m", UserAgentName: "causeway-proxy", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		xdsconv.NodeMetaMode:           structpb.NewStringValue(xdsconv.ModeGateway),
		xdsconv.NodeMetaNamespace:      structpb.NewStringValue(xdsconv.GatewayNamespace),
		xdsconv.NodeMetaServiceAccount: structpb.NewStringValue(xdsconv.GatewayServiceAccount),
	}}}
	agentID := spiffeid.RequireFromSegments(bundle.TrustDomain(), "ns", identity.AgentNamespace, "sa", identity.AgentServiceAccount)
	conn, err := grpc.NewClient(sdsAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(agentID)))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	// links reads one CDS response, ACKs it, and describes its link
	// clusters as "name role transport first-address".
	links := func(stream grpc.BidiStreamingClient[discoverygrpc.DiscoveryRequest, discoverygrpc.DiscoveryResponse]) ([]string, error) {
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			return nil, err
		}
		var got []string
		for _, a := range resp.GetResources() {
			var cl clusterv3.Cluster
			if err := a.UnmarshalTo(&cl); err != nil {
				return nil, err
			}
			if !strings.HasPrefix(cl.Name, xdsconv.LinkClusterPrefix) {
				continue
			}
			md := cl.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()
			sa := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			got = append(got, fmt.Sprintf("%s %s %s %s:%d", cl.Name, md[xdsconv.MetadataLinkRole].GetStringValue(),
				md[xdsconv.MetadataLinkTransport].GetStringValue(), sa.GetAddress(), sa.GetPortValue()))
		}
		return got, nil
	}
	// waitLink follows the gateway's CDS (reconnecting while the agent
	// starts) until the peer's link cluster dials want.
	waitLink := func(want string) {
		t.Helper()
		w := "causeway-link|peer dial TCP " + want
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		var last error
		for sctx.Err() == nil {
			s, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(
				metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+tr.Status.Token))
			if err == nil {
				err = s.Send(&discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType})
			}
			for err == nil {
				var got []string
				if got, err = links(s); err == nil {
					if len(got) == 1 && got[0] == w {
						return
					}
					last = fmt.Errorf("link clusters %q, want %q", got, w)
				}
			}
			if sctx.Err() == nil {
				last = err
				time.Sleep(100 * time.Millisecond) // the agent is starting
			}
		}
		t.Fatalf("the gateway's link to peer: %v", last)
	}
	waitLink("10.255.9.9:15443")

	// The hub moves the peer: the agent re-translates, the gateway
	// gets the new address.
	writePlan("gw.peer.example:9443")
	waitLink("gw.peer.example:9443")
}
