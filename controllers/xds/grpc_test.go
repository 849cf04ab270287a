package xds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// backend is a gRPC TestService that answers UnaryCall with its name.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
	port int32
}

func (b *backend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: b.name}, nil
}

// startBackend serves a named TestService on a loopback port.
func startBackend(t testing.TB, name string) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, port: int32(lis.Addr().(*net.TCPAddr).Port)}
	g := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(g, b)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return b
}

// proxylessClient dials target through a real gRPC xDS resolver whose
// bootstrap points at the shared stack's server, as node nodeID.
//
// The API server refuses loopback endpoint addresses, so slices carry
// TEST-NET addresses with the backends' real ports, and the channel's
// dialer sends every connection to 127.0.0.1 on the resolved port: the
// endpoint choice is xDS's, the bytes are real.
func proxylessClient(t testing.TB, nodeID, target string) testgrpc.TestServiceClient {
	t.Helper()
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      stack.addr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": nodeID},
	})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatalf("xDS resolver: %v", err)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		}),
	)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// call makes one UnaryCall and returns the answering backend's name.
func call(ctx context.Context, c testgrpc.TestServiceClient) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetServerId(), nil
}

// spread makes n calls and counts the answers by backend; every call must
// succeed.
func spread(ctx context.Context, t testing.TB, c testgrpc.TestServiceClient, n int) map[string]int {
	t.Helper()
	counts, err := trySpread(ctx, c, n)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// trySpread is spread for waiting on a change: while gRPC switches to a
// new route a call may fail (the channel can pick a new cluster a moment
// before its balancer has it), so an error is returned, not fatal.
func trySpread(ctx context.Context, c testgrpc.TestServiceClient, n int) (map[string]int, error) {
	counts := map[string]int{}
	for range n {
		name, err := call(ctx, c)
		if err != nil {
			return counts, fmt.Errorf("call: %w", err)
		}
		counts[name]++
	}
	return counts, nil
}

func grpcBackendRef(name string, port int32, weight int32) gatewayv1.GRPCBackendRef {
	return gatewayv1.GRPCBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To(port)},
		Weight:                 ptr.To(weight),
	}}
}

func serviceParent(name string) gatewayv1.ParentReference {
	return gatewayv1.ParentReference{Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name)}
}

// routeAccepted returns the Accepted condition of our status entry.
func routeCondition(parents []gatewayv1.RouteParentStatus, typ string) *metav1.Condition {
	for _, p := range parents {
		if p.ControllerName == "causeway.dev/agent" {
			return meta.FindStatusCondition(p.Conditions, typ)
		}
	}
	return nil
}

// TestProxylessGRPCClient is the user story of a gRPC client with an xDS
// resolver: it reaches a Service through the agent, a GRPCRoute splits its
// traffic 80/20 between two other Services, and an invalid GRPCRoute is
// reported and changes nothing.
func TestProxylessGRPCClient(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	ns := newNamespace(ctx, t)
	echo1, echo2 := startBackend(t, "echo-1"), startBackend(t, "echo-2")
	canaryA, canaryB := startBackend(t, "a"), startBackend(t, "b")

	createService(ctx, t, ns, "echo", "grpc", 9090)
	createService(ctx, t, ns, "echo-a", "grpc", 9090)
	createService(ctx, t, ns, "echo-b", "grpc", 9090)
	// Two slices of one Service and port name, each with its own port.
	createSlice(ctx, t, ns, "echo", "grpc", "192.0.2.10", echo1.port)
	createSlice(ctx, t, ns, "echo", "grpc", "192.0.2.11", echo2.port)
	createSlice(ctx, t, ns, "echo-a", "grpc", "192.0.2.20", canaryA.port)
	createSlice(ctx, t, ns, "echo-b", "grpc", "192.0.2.21", canaryB.port)

	tc := proxylessClient(t, "grpc-client-"+ns, "xds:///echo."+ns+".svc.cluster.local:9090")

	t.Run("resolves and balances over both slices", func(t *testing.T) {
		start := time.Now()
		eventually(t, 30*time.Second, func() error {
			_, err := call(ctx, tc)
			return err
		})
		t.Logf("first call answered after %s", time.Since(start).Round(time.Millisecond))
		eventually(t, 10*time.Second, func() error {
			got, err := trySpread(ctx, tc, 20)
			if err != nil {
				return err
			}
			if got["echo-1"] == 0 || got["echo-2"] == 0 || got["echo-1"]+got["echo-2"] != 20 {
				return fmt.Errorf("answers %v, want both echo backends", got)
			}
			return nil
		})
	})

	split := &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "split"},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent("echo")}},
			Rules:           []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{grpcBackendRef("echo-a", 9090, 80), grpcBackendRef("echo-b", 9090, 20)}}},
		},
	}
	t.Run("a GRPCRoute splits 80/20", func(t *testing.T) {
		if err := k8s.Create(ctx, split); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			var r gatewayv1.GRPCRoute
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(split), &r); err != nil {
				return err
			}
			if c := routeCondition(r.Status.Parents, "Accepted"); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != r.Generation {
				return fmt.Errorf("Accepted = %+v", c)
			}
			return nil
		})
		// Wait for the client to switch: no answer from echo's own
		// endpoints any more.
		eventually(t, 20*time.Second, func() error {
			got, err := trySpread(ctx, tc, 30)
			if err != nil {
				return err
			}
			if got["echo-1"]+got["echo-2"] > 0 {
				return fmt.Errorf("answers %v, still from echo", got)
			}
			return nil
		})
		const n = 1000
		got := spread(ctx, t, tc, n)
		if got["a"]+got["b"] != n {
			t.Fatalf("answers %v", got)
		}
		// Binomial(1000, 0.8) has a standard deviation of 12.6 calls:
		// ±60 is more than 4.7 of them.
		t.Logf("split: %v", got)
		if share := float64(got["a"]) / n; share < 0.74 || share > 0.86 {
			t.Errorf("echo-a got %.1f%% of calls (%v), want 80%% ± 6%%", share*100, got)
		}
	})

	t.Run("an invalid GRPCRoute is reported and changes nothing", func(t *testing.T) {
		bad := &gatewayv1.GRPCRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-regex"},
			Spec: gatewayv1.GRPCRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent("echo")}},
				Rules: []gatewayv1.GRPCRouteRule{{
					Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{
						Type: ptr.To(gatewayv1.GRPCMethodMatchRegularExpression), Service: ptr.To("grpc.testing.(Test"),
					}}},
					BackendRefs: []gatewayv1.GRPCBackendRef{grpcBackendRef("echo", 9090, 1)},
				}},
			},
		}
		if err := k8s.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			var r gatewayv1.GRPCRoute
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(bad), &r); err != nil {
				return err
			}
			c := routeCondition(r.Status.Parents, "Accepted")
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != string(gatewayv1.RouteReasonUnsupportedValue) {
				return fmt.Errorf("Accepted = %+v", c)
			}
			return nil
		})
		// Traffic still follows the split route only.
		got := spread(ctx, t, tc, 200)
		if got["a"]+got["b"] != 200 || got["a"] < got["b"] {
			t.Errorf("answers after the invalid route: %v", got)
		}
		// The valid route's status is untouched by the invalid one.
		var r gatewayv1.GRPCRoute
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(split), &r); err != nil {
			t.Fatal(err)
		}
		if c := routeCondition(r.Status.Parents, "Accepted"); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("split route Accepted = %+v", c)
		}
	})

	t.Run("deleting the route restores the Service's own endpoints", func(t *testing.T) {
		if err := k8s.Delete(ctx, split); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, func() error {
			got, err := trySpread(ctx, tc, 20)
			if err != nil {
				return err
			}
			if got["echo-1"]+got["echo-2"] != 20 {
				return fmt.Errorf("answers %v, want only echo's", got)
			}
			return nil
		})
	})
	if n := stack.server.Nodes()["grpc-client-"+ns]; n.String() != "proxyless" {
		t.Errorf("the gRPC client's node is %s, want proxyless", n)
	}
}
