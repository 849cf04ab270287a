package inbound_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/gateway/proxy"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

func anys(t testing.TB, rs []cachetypes.Resource) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, r := range rs {
		a, err := anypb.New(r.(proto.Message))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// TestProxyServesInboundHTTPChain hands the HTTP filter chain the agent
// generates for a workload port to a real causeway-proxy (as a listener
// of its own: the proxy does not pick filter chains by destination port
// yet) in front of a real backend, and sends real requests: the proxy
// must accept the configuration (ACK) and enforce it — path normalisation,
// jwt_authn with signed tokens, RBAC DENY and ALLOW.
func TestProxyServesInboundHTTPChain(t *testing.T) {
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.EscapedPath())
		w.Header().Set("X-Had-Authorization", strconv.FormatBool(r.Header.Get("Authorization") != ""))
		_, _ = io.WriteString(w, "backend")
	})}
	go func() { _ = backend.Serve(backendLn) }()
	t.Cleanup(func() { _ = backend.Close() })
	targetPort := int32(backendLn.Addr().(*net.TCPAddr).Port)

	idp := newIssuer(t, "https://idp.example.com")
	in, pod := workload()
	pod.Spec.Containers[0].Ports[0].ContainerPort = targetPort
	in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{authn("idp", idp.rule())}
	in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{
		policy("deny-admin", deny, rule{To: &dst{Paths: []string{"/admin/*"}}}),
		policy("allow", allow,
			rule{To: &dst{Paths: []string{"/public/*"}}},
			rule{From: &src{RequestPrincipals: []causewayv1alpha1.RequestPrincipal{"https://idp.example.com/alice"}}}),
	}
	res := translate.Translate(in)
	inbound := res.Inbound.For(pod)
	l := inbound[resource.ListenerType][0].(*listenerv3.Listener)
	var chain *listenerv3.FilterChain
	for _, fc := range l.FilterChains {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == uint32(targetPort) {
			chain = proto.Clone(fc).(*listenerv3.FilterChain)
		}
	}
	if chain == nil {
		t.Fatalf("no chain for target port %d", targetPort)
	}
	chain.FilterChainMatch = nil
	standalone := &listenerv3.Listener{
		Name:         "inbound-http",
		Address:      &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(targetPort)}}}},
		BindToPort:   wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{chain},
	}
	// The inbound clusters send to the connection's original destination
	// (the tunnel's CONNECT target in a mesh). Here the test's connection
	// goes to the proxy's own port, so the workload's cluster becomes a
	// static one to the backend; everything else is as translated.
	clusters := make([]cachetypes.Resource, 0, len(inbound[resource.ClusterType]))
	for _, r := range inbound[resource.ClusterType] {
		c := r.(*clusterv3.Cluster)
		if c.GetName() == xdsconv.InboundClusterName(targetPort) {
			c = proto.Clone(c).(*clusterv3.Cluster)
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
			c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: c.GetName(), Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(targetPort)},
					}}},
				}}}},
			}}}
		}
		clusters = append(clusters, c)
	}
	store := proxy.NewStore()
	if err := store.Apply(resource.ClusterType, "1", anys(t, clusters)); err != nil {
		t.Fatalf("the proxy NACKs the inbound clusters: %v", err)
	}
	if err := store.Apply(resource.ListenerType, "1", anys(t, []cachetypes.Resource{standalone})); err != nil {
		t.Fatalf("the proxy NACKs the inbound HTTP chain: %v", err)
	}
	p := proxy.New(proxy.Config{Store: store, Bindings: []proxy.Binding{{Addr: "127.0.0.1:0", Listener: "inbound-http"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not bind")
		}
		addr = p.Addrs()["inbound-http"]
	}

	alice := idp.token(t, map[string]any{"sub": "alice"})
	bob := idp.token(t, map[string]any{"sub": "bob"})
	forged := newIssuer(t, "https://idp.example.com").token(t, map[string]any{"sub": "alice"})
	for _, c := range []struct {
		path, token string
		want        int
		wantPath    string
	}{
		{path: "/public/a", want: 200, wantPath: "/public/a"},
		{path: "/public/../public/%62", want: 200, wantPath: "/public/b"},
		{path: "/private", want: 403},
		{path: "/private", token: bob, want: 403},
		{path: "/private", token: alice, want: 200, wantPath: "/private"},
		{path: "/private", token: forged, want: 401},
		{path: "/public/a", token: forged, want: 401},
		{path: "/admin/x", token: alice, want: 403},
		{path: "/public/../admin/x", token: alice, want: 403},
		{path: "//admin//x", token: alice, want: 403},
		{path: "/public/a%2Fb", want: 400},
	} {
		resp := rawGet(t, addr, c.path, c.token)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s (token %v): %d %q, want %d", c.path, c.token != "", resp.StatusCode, strings.TrimSpace(string(body)), c.want)
			continue
		}
		if c.want == 200 {
			if got := resp.Header.Get("X-Path"); got != c.wantPath {
				t.Errorf("GET %s: the backend saw %q, want %q", c.path, got, c.wantPath)
			}
			if resp.Header.Get("X-Had-Authorization") != "false" {
				t.Errorf("GET %s: the token reached the backend (forwardOriginalToken is false)", c.path)
			}
		}
	}
}

// rawGet sends "GET <target>" exactly as written (net/http's client would
// read a target starting with "//" as an authority) and reads the
// response.
func rawGet(t *testing.T, addr, target, token string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: web.shop.svc.cluster.local\r\nConnection: close\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp
}
