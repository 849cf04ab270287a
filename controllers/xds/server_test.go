package xds_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// proxyNode is a causeway-proxy node.
func proxyNode(id string) *corev3.Node {
	return &corev3.Node{Id: id, UserAgentName: "causeway-proxy", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		xdsconv.NodeMetaMode: structpb.NewStringValue(xdsconv.ModeSidecar),
	}}}
}

func dialXDS(t testing.TB, addr string) discoverygrpc.AggregatedDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
}

// recv receives one response within d.
func recv[T any](t testing.TB, d time.Duration, f func() (T, error)) T {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("receive: %v", r.err)
		}
		return r.v
	case <-time.After(d):
		t.Fatalf("no response within %s", d)
	}
	panic("unreachable")
}

func names(rs []*anypb.Any, typ resource.Type) []string {
	var out []string
	for _, a := range rs {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if r, ok := m.(interface{ GetName() string }); ok {
			out = append(out, r.GetName())
		}
	}
	_ = typ
	return out
}

// TestDeltaStreamReceivesResources is a delta xDS client (as Envoy with
// delta ADS) subscribing by wildcard to clusters and listeners.
func TestDeltaStreamReceivesResources(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	ns := newNamespace(ctx, t)
	svc := createService(ctx, t, ns, "web", "http", 80)
	createSlice(ctx, t, ns, "web", "http", "192.0.2.30", 8080)
	cluster := xdsconv.ClusterName(80, "", xdsconv.ServiceHost("web", ns))
	listener := xdsconv.ListenerName(svc.Spec.ClusterIP, 80)

	stream, err := dialXDS(t, stack.addr).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, typ := range []resource.Type{resource.ClusterType, resource.ListenerType} {
		req := &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typ}
		if typ == resource.ClusterType {
			req.Node = proxyNode("delta-" + ns)
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !seen[cluster] || !seen[listener] {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s the delta stream delivered %d resources without %s and %s", len(seen), cluster, listener)
		}
		resp := recv(t, 20*time.Second, stream.Recv)
		for _, r := range resp.Resources {
			seen[r.Name] = true
			if r.Version == "" || r.Resource == nil {
				t.Errorf("resource %s without version or body", r.Name)
			}
		}
		// ACK, as a client must.
		if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
			t.Fatal(err)
		}
	}
	if !seen[xdsconv.VirtualOutboundListener] || !seen[xdsconv.PassthroughCluster] {
		t.Errorf("delta stream lacks the well-known resources: %v", seen)
	}
}

// sotwClient is a raw state-of-the-world ADS stream.
type sotwClient struct {
	t      testing.TB
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
}

func newSotwClient(ctx context.Context, t testing.TB, addr string, n *corev3.Node) *sotwClient {
	t.Helper()
	stream, err := dialXDS(t, addr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &sotwClient{t: t, stream: stream}
	c.send(&discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType})
	return c
}

func (c *sotwClient) send(r *discoverygrpc.DiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(r); err != nil {
		c.t.Fatal(err)
	}
}

func (c *sotwClient) recv() *discoverygrpc.DiscoveryResponse {
	c.t.Helper()
	return recv(c.t, 20*time.Second, c.stream.Recv)
}

// TestNACKDoesNotChangeOtherNodes has one proxy reject its clusters: the
// rejection is counted, its own snapshot stays, another node's snapshot
// and stream are untouched, and both still get the next change.
func TestNACKDoesNotChangeOtherNodes(t *testing.T) {
	ctx := testContext(t, 40*time.Second)
	ns := newNamespace(ctx, t)
	createService(ctx, t, ns, "first", "http", 80)
	first := xdsconv.ClusterName(80, "", xdsconv.ServiceHost("first", ns))
	hasFirst := func(r *discoverygrpc.DiscoveryResponse) bool {
		return slices.Contains(names(r.Resources, resource.ClusterType), first)
	}

	a := newSotwClient(ctx, t, stack.addr, proxyNode("nack-a-"+ns))
	b := newSotwClient(ctx, t, stack.addr, proxyNode("nack-b-"+ns))
	// Read until both have the Service's cluster, ACKing.
	var ra, rb *discoverygrpc.DiscoveryResponse
	for ra == nil || !hasFirst(ra) {
		if ra != nil {
			a.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: ra.VersionInfo, ResponseNonce: ra.Nonce})
		}
		ra = a.recv()
	}
	for rb == nil || !hasFirst(rb) {
		if rb != nil {
			b.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: rb.VersionInfo, ResponseNonce: rb.Nonce})
		}
		rb = b.recv()
	}
	b.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: rb.VersionInfo, ResponseNonce: rb.Nonce})
	snapB, err := stack.server.Snapshot("nack-b-" + ns)
	if err != nil {
		t.Fatal(err)
	}
	nacksBefore := metricValue(t, "causeway_xds_nacks_total", "cluster")

	// A rejects what it got: version_info stays the last accepted (none).
	a.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: ra.Nonce, ErrorDetail: &rpcstatus.Status{Code: 3, Message: "test rejects it"}})
	eventually(t, 10*time.Second, func() error {
		if got := metricValue(t, "causeway_xds_nacks_total", "cluster"); got != nacksBefore+1 {
			return fmt.Errorf("nacks %v, want %v", got, nacksBefore+1)
		}
		return nil
	})
	// The cache answers a NACK by resending the same version to A.
	again := a.recv()
	if again.VersionInfo != ra.VersionInfo {
		t.Errorf("A got version %s after its NACK, want the same %s", again.VersionInfo, ra.VersionInfo)
	}
	// This time A accepts it.
	a.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: again.VersionInfo, ResponseNonce: again.Nonce})
	snapB2, err := stack.server.Snapshot("nack-b-" + ns)
	if err != nil {
		t.Fatal(err)
	}
	if snapB2 != snapB {
		t.Error("A's NACK replaced B's snapshot")
	}

	// The next change reaches both.
	createService(ctx, t, ns, "second", "http", 80)
	second := xdsconv.ClusterName(80, "", xdsconv.ServiceHost("second", ns))
	for _, c := range []*sotwClient{a, b} {
		r := c.recv()
		if !slices.Contains(names(r.Resources, resource.ClusterType), second) {
			t.Errorf("after the change: clusters %v lack %s", names(r.Resources, resource.ClusterType), second)
		}
		if r.VersionInfo == rb.VersionInfo {
			t.Error("the change did not change the clusters' version")
		}
	}
}

// metricValue reads a counter or gauge of the shared stack's registry with
// one label value ("" for no labels); 0 when absent.
func metricValue(t testing.TB, name, label string) float64 {
	t.Helper()
	mfs, err := stack.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestRouteStatusKeepsOtherControllersEntries: the agent writes its own
// status.parents entries only, keeps another controller's, removes its own
// when the parentRef goes, and writes nothing when nothing changed.
func TestRouteStatusKeepsOtherControllersEntries(t *testing.T) {
	ctx := testContext(t, 40*time.Second)
	ns := newNamespace(ctx, t)
	createService(ctx, t, ns, "web", "http", 80)
	createService(ctx, t, ns, "v1", "http", 8080)
	gw := gatewayv1.ParentReference{Name: "gw"}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent("web"), gw}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "v1", Port: ptr.To[int32](8080)},
			}}}}},
		},
	}
	if err := k8s.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	foreign := gatewayv1.RouteParentStatus{ParentRef: gw, ControllerName: "example.com/gateway", Conditions: []metav1.Condition{{
		Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
	}}}
	// Another controller writes its entry (retrying on conflicts with ours).
	eventually(t, 10*time.Second, func() error {
		var r gatewayv1.HTTPRoute
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(route), &r); err != nil {
			return err
		}
		r.Status.Parents = append(r.Status.Parents, foreign)
		return k8s.Status().Update(ctx, &r)
	})
	var got gatewayv1.HTTPRoute
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(route), &got); err != nil {
			return err
		}
		ours := routeCondition(got.Status.Parents, "Accepted")
		if ours == nil || ours.Status != metav1.ConditionTrue || ours.LastTransitionTime.IsZero() {
			return fmt.Errorf("our Accepted = %+v", ours)
		}
		if !slices.ContainsFunc(got.Status.Parents, func(p gatewayv1.RouteParentStatus) bool { return p.ControllerName == foreign.ControllerName }) {
			return fmt.Errorf("the other controller's entry is gone: %+v", got.Status.Parents)
		}
		return nil
	})
	// A round with nothing new writes nothing.
	for range 2 {
		if err := stack.controller.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var again gatewayv1.HTTPRoute
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(route), &again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != got.ResourceVersion {
		t.Errorf("a round without changes wrote the route (resourceVersion %s → %s)", got.ResourceVersion, again.ResourceVersion)
	}
	// Without our parentRef, our entry goes and the other stays.
	again.Spec.ParentRefs = []gatewayv1.ParentReference{gw}
	if err := k8s.Update(ctx, &again); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var r gatewayv1.HTTPRoute
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(route), &r); err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || r.Status.Parents[0].ControllerName != foreign.ControllerName {
			return fmt.Errorf("parents %+v, want only the other controller's", r.Status.Parents)
		}
		if !r.Status.Parents[0].Conditions[0].LastTransitionTime.Equal(&foreign.Conditions[0].LastTransitionTime) {
			return fmt.Errorf("the other controller's entry changed: %+v", r.Status.Parents[0])
		}
		return nil
	})
}

// TestTrafficPolicyStatus: the oldest policy for a target is accepted and
// ready, a younger one is Conflicted, one without a target says so.
func TestTrafficPolicyStatus(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	ns := newNamespace(ctx, t)
	createService(ctx, t, ns, "web", "http", 80)
	tp := func(name, target string) *causewayv1alpha1.TrafficPolicy {
		p := &causewayv1alpha1.TrafficPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: causewayv1alpha1.TrafficPolicySpec{
				TargetRef:    causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: target},
				LoadBalancer: &causewayv1alpha1.LoadBalancer{Algorithm: causewayv1alpha1.LoadBalancerLeastRequest},
			},
		}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	older := tp("older", "web")
	// Creation timestamps have one-second resolution: make the second
	// policy clearly younger.
	time.Sleep(1100 * time.Millisecond)
	younger := tp("younger", "web")
	ghost := tp("ghost", "ghost")
	want := map[*causewayv1alpha1.TrafficPolicy]string{older: "Accepted", younger: "Conflicted", ghost: "TargetNotFound"}
	eventually(t, 20*time.Second, func() error {
		for p, reason := range want {
			var got causewayv1alpha1.TrafficPolicy
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
				return err
			}
			acc := meta.FindStatusCondition(got.Status.Conditions, "Accepted")
			ready := meta.FindStatusCondition(got.Status.Conditions, "Ready")
			if acc == nil || ready == nil || acc.Reason != reason || got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("%s: status %+v, want Accepted reason %s", p.Name, got.Status, reason)
			}
			if (acc.Status == metav1.ConditionTrue) != (reason == "Accepted") || ready.Status != acc.Status {
				return fmt.Errorf("%s: Accepted %s, Ready %s", p.Name, acc.Status, ready.Status)
			}
		}
		return nil
	})
}

func TestKind(t *testing.T) {
	tests := map[string]struct {
		node *corev3.Node
		want translate.NodeKind
	}{
		"gRPC without mode":       {&corev3.Node{Id: "a", UserAgentName: "gRPC Go"}, translate.Proxyless},
		"gRPC Java":               {&corev3.Node{Id: "a", UserAgentName: "gRPC Java"}, translate.Proxyless},
		"gRPC with a mode":        {&corev3.Node{Id: "a", UserAgentName: "gRPC Go", Metadata: proxyNode("a").Metadata}, translate.Proxy},
		"causeway-proxy":          {proxyNode("a"), translate.Proxy},
		"Envoy":                   {&corev3.Node{Id: "a", UserAgentName: "envoy"}, translate.Proxy},
		"no user agent at all":    {&corev3.Node{Id: "a"}, translate.Proxy},
		"lower-case grpc is not":  {&corev3.Node{Id: "a", UserAgentName: "grpc-go"}, translate.Proxy},
		"gateway":                 {gatewayNode("a", "causeway-system", "causeway-gateway"), translate.Gateway},
		"gateway with gRPC agent": {&corev3.Node{Id: "a", UserAgentName: "gRPC Go", Metadata: gatewayNode("a", "", "").Metadata}, translate.Gateway},
		"other modes are proxies": {&corev3.Node{Id: "a", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			xdsconv.NodeMetaMode: structpb.NewStringValue("Gateway"),
		}}}, translate.Proxy},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := xds.Kind(tc.node); got != tc.want {
				t.Errorf("Kind = %s, want %s", got, tc.want)
			}
		})
	}
}

// standalone starts a Server with a fake clock on a loopback port,
// without the API server.
func standalone(t *testing.T) (*xds.Server, *clocktesting.FakeClock, string) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	srv, err := xds.NewServer(xds.Options{Clock: clk, ForgetAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := (&netListenConfig{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv, clk, lis.Addr().String()
}

func smallResult(clusterIP string) *translate.Result {
	return translate.Translate(&translate.Inputs{ClusterName: "east", Services: []*corev1.Service{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}}})
}

// TestNodesAreForgottenAfterTheirLastStream: a node keeps its snapshot
// while it reconnects within ForgetAfter, and loses it after.
func TestNodesAreForgottenAfterTheirLastStream(t *testing.T) {
	srv, clk, addr := standalone(t)
	if err := srv.Update(smallResult("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	connect := func() context.CancelFunc {
		ctx, cancel := context.WithCancel(t.Context())
		c := newSotwClient(ctx, t, addr, proxyNode("n1"))
		if r := c.recv(); len(r.Resources) == 0 {
			t.Fatal("no clusters")
		}
		return cancel
	}
	waitForget := func() {
		eventually(t, 10*time.Second, func() error {
			if !clk.HasWaiters() {
				return fmt.Errorf("no forget timer yet")
			}
			return nil
		})
	}
	cancel := connect()
	cancel()
	waitForget()
	// Reconnecting before the timer fires keeps the node.
	clk.Step(30 * time.Second)
	cancel = connect()
	clk.Step(time.Minute)
	if _, err := srv.Snapshot("n1"); err != nil {
		t.Fatalf("a reconnected node lost its snapshot: %v", err)
	}
	cancel()
	waitForget()
	clk.Step(time.Minute)
	eventually(t, 10*time.Second, func() error {
		if _, ok := srv.Nodes()["n1"]; ok {
			return fmt.Errorf("node n1 still known")
		}
		if _, err := srv.ProxyCache().GetSnapshot("n1"); err == nil {
			return fmt.Errorf("node n1 still has a snapshot in the cache")
		}
		return nil
	})
}

// TestInconsistentSnapshotIsNeverSet: a result whose listener uses a route
// configuration it does not contain is refused, and the node keeps its
// snapshot.
func TestInconsistentSnapshotIsNeverSet(t *testing.T) {
	srv, _, addr := standalone(t)
	good := smallResult("10.0.0.1")
	if err := srv.Update(good); err != nil {
		t.Fatal(err)
	}
	c := newSotwClient(t.Context(), t, addr, proxyNode("n1"))
	first := c.recv()
	before, err := srv.Snapshot("n1")
	if err != nil {
		t.Fatal(err)
	}
	bad := smallResult("10.0.0.2")
	bad.Proxy[resource.RouteType] = nil // listeners now name missing routes
	if err := srv.Update(bad); err == nil {
		t.Fatal("Update accepted an inconsistent snapshot")
	}
	after, err := srv.Snapshot("n1")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("the node's snapshot was replaced by an inconsistent one")
	}
	if v := after.GetVersion(resource.ClusterType); v != first.VersionInfo {
		t.Errorf("cluster version %s, want %s", v, first.VersionInfo)
	}
}
