package xds

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

func svc(name, ip string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP}, {Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP}}},
	}
}

// inputs: a, b and c; a GRPCRoute on a splits to b and c, and a query
// match rule (ignored by gRPC) would send to a itself.
func inputs() *translate.Inputs {
	ref := func(name string, w int32) gatewayv1.GRPCBackendRef {
		return gatewayv1.GRPCBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[int32](9090)}, Weight: ptr.To(w)}}
	}
	return &translate.Inputs{
		ClusterName: "east",
		Services:    []*corev1.Service{svc("a", "10.0.0.1"), svc("b", "10.0.0.2"), svc("c", "10.0.0.3"), svc("d", "10.0.0.4")},
		GRPCRoutes: []*gatewayv1.GRPCRoute{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "split"},
			Spec: gatewayv1.GRPCRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: "a"}}},
				Rules:           []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{ref("b", 3), ref("c", 1), ref("d", 0)}}},
			},
		}},
	}
}

func resourceNames(rs translate.Resources, typ resource.Type) []string {
	var out []string
	for _, r := range rs[typ] {
		out = append(out, cachev3.GetResourceName(r))
	}
	return out
}

func TestProxylessSubset(t *testing.T) {
	ix, err := index(translate.Translate(inputs()).Proxyless)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		sub          subscription
		wantListener []string
		wantClusters []string
	}{
		"a's listener reaches b and c (weight 0 d is not used)": {
			sub:          subscription{listeners: map[string]bool{"a.default.svc.cluster.local:9090": true}},
			wantListener: []string{"a.default.svc.cluster.local:9090"},
			wantClusters: []string{"outbound|9090||b.default.svc.cluster.local", "outbound|9090||c.default.svc.cluster.local"},
		},
		"an alias and a plain service": {
			sub:          subscription{listeners: map[string]bool{"b.default:9090": true, "d.default.svc.cluster.local:9090": true, "missing:1": true}},
			wantListener: []string{"b.default:9090", "d.default.svc.cluster.local:9090"},
			wantClusters: []string{"outbound|9090||b.default.svc.cluster.local", "outbound|9090||d.default.svc.cluster.local"},
		},
		"clusters still subscribed to stay while they exist (make before break)": {
			sub: subscription{
				listeners: map[string]bool{"a.default.svc.cluster.local:9090": true},
				clusters:  map[string]bool{"outbound|9090||d.default.svc.cluster.local": true, "outbound|9090||gone.default.svc.cluster.local": true},
			},
			wantListener: []string{"a.default.svc.cluster.local:9090"},
			wantClusters: []string{"outbound|9090||b.default.svc.cluster.local", "outbound|9090||c.default.svc.cluster.local", "outbound|9090||d.default.svc.cluster.local"},
		},
		"nothing": {sub: subscription{listeners: map[string]bool{}}},
		"wildcard is everything": {
			sub: subscription{wildcard: true},
			wantListener: []string{"a.default.svc.cluster.local:9090", "a.default:9090", "b.default.svc.cluster.local:9090", "b.default:9090",
				"c.default.svc.cluster.local:9090", "c.default:9090", "d.default.svc.cluster.local:9090", "d.default:9090"},
			wantClusters: []string{"outbound|9090||a.default.svc.cluster.local", "outbound|9090||b.default.svc.cluster.local", "outbound|9090||c.default.svc.cluster.local", "outbound|9090||d.default.svc.cluster.local"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := ix.subset(tc.sub)
			if got := resourceNames(rs, resource.ListenerType); !slices.Equal(got, tc.wantListener) {
				t.Errorf("listeners %v, want %v", got, tc.wantListener)
			}
			if got := resourceNames(rs, resource.ClusterType); !slices.Equal(got, tc.wantClusters) {
				t.Errorf("clusters %v, want %v", got, tc.wantClusters)
			}
			if got := resourceNames(rs, resource.EndpointType); !slices.Equal(got, tc.wantClusters) {
				t.Errorf("endpoints %v, want %v", got, tc.wantClusters)
			}
			if err := ix.snapshot(rs).Consistent(); err != nil {
				t.Errorf("subset not consistent: %v", err)
			}
		})
	}
}

// TestVersionsAreContentHashesPerType: a change to one Service changes the
// versions of the types it touches only, and an identical result gives
// identical versions.
func TestVersionsAreContentHashesPerType(t *testing.T) {
	version := func(in *translate.Inputs) map[resource.Type]string {
		ix, err := index(translate.Translate(in).Proxy)
		if err != nil {
			t.Fatal(err)
		}
		snap := ix.snapshot(ix.resources)
		out := map[resource.Type]string{}
		for _, typ := range snapshotTypes {
			out[typ] = snap.GetVersion(typ)
		}
		return out
	}
	base := version(inputs())
	if again := version(inputs()); !mapsEqual(base, again) {
		t.Fatalf("identical inputs, different versions: %v %v", base, again)
	}
	in := inputs()
	in.Services[3].Spec.Ports[1].Port = 5433 // d's TCP port: a cluster, endpoints and a listener change
	changed := version(in)
	for _, typ := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType} {
		if changed[typ] == base[typ] {
			t.Errorf("%s version unchanged", typ)
		}
	}
	if changed[resource.RouteType] != base[resource.RouteType] {
		t.Error("route version changed though no HTTP port did")
	}
}

func mapsEqual(a, b map[resource.Type]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// sidecarInputs: Services a (grpc 9090, tcp 5432) and b (http 80) select
// app=a and app=b; a namespace-wide ALLOW policy protects both.
func sidecarInputs() *translate.Inputs {
	in := inputs()
	in.Services[0].Spec.Selector = map[string]string{"app": "a"}
	in.Services[1].Spec.Selector = map[string]string{"app": "b"}
	in.Services[1].Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
	in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "allow"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{Action: causewayv1alpha1.AuthorizationActionAllow, Rules: []causewayv1alpha1.AuthorizationRule{{
			From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"default"}},
		}}},
	}}
	return in
}

func testPod(name, app string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": app}}}
}

// TestSidecarSnapshots: sidecars get the shared outbound resources and
// their pod's inbound ones; sidecars of one shape share a snapshot,
// proxies without a pod share the plain one, and only listener and
// cluster versions differ between them.
func TestSidecarSnapshots(t *testing.T) {
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*corev1.Pod{"a-1": testPod("a-1", "a"), "a-2": testPod("a-2", "a"), "b-1": testPod("b-1", "b")}
	s.SetPodSource(func(namespace, name string) *corev1.Pod {
		if namespace != "default" {
			return nil
		}
		return pods[name]
	})
	for _, id := range []string{"a-1", "a-2", "b-1", "gone"} {
		s.nodes[id] = &node{id: id, kind: translate.Proxy, acked: map[string]string{}, pod: ktypes.NamespacedName{Namespace: "default", Name: id}}
	}
	s.nodes["plain"] = &node{id: "plain", kind: translate.Proxy, acked: map[string]string{}}
	if err := s.Update(translate.Translate(sidecarInputs())); err != nil {
		t.Fatal(err)
	}
	snap := func(id string) *cachev3.Snapshot {
		r, err := s.proxyCache.GetSnapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		return r.(*cachev3.Snapshot)
	}
	a1, a2, b1, plain, gone := snap("a-1"), snap("a-2"), snap("b-1"), snap("plain"), snap("gone")
	if a1 != a2 {
		t.Error("sidecars of one shape have different snapshots")
	}
	if plain != gone || plain == a1 || a1 == b1 {
		t.Error("want one snapshot for proxies without a known pod, one per shape of sidecar")
	}
	for name, sn := range map[string]*cachev3.Snapshot{"a": a1, "b": b1, "plain": plain} {
		if err := sn.Consistent(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		_, has := sn.GetResources(resource.ListenerType)[xdsconv.VirtualInboundListener]
		if has != (name != "plain") {
			t.Errorf("%s: inbound listener %v", name, has)
		}
	}
	if _, ok := a1.GetResources(resource.ClusterType)[xdsconv.InboundClusterName(9090)]; !ok {
		t.Error("a's sidecar lacks its inbound cluster")
	}
	for _, typ := range snapshotTypes {
		shared := typ == resource.RouteType || typ == resource.EndpointType
		if (a1.GetVersion(typ) == plain.GetVersion(typ)) != shared || (a1.GetVersion(typ) == b1.GetVersion(typ)) != shared {
			t.Errorf("%s versions: a %s, b %s, plain %s", typ, a1.GetVersion(typ), b1.GetVersion(typ), plain.GetVersion(typ))
		}
		if len(a1.GetResources(typ)) < len(plain.GetResources(typ)) {
			t.Errorf("%s: a sidecar has fewer resources than a plain proxy", typ)
		}
	}
	// The same inputs again: the same versions.
	if err := s.Update(translate.Translate(sidecarInputs())); err != nil {
		t.Fatal(err)
	}
	for _, typ := range snapshotTypes {
		if snap("a-1").GetVersion(typ) != a1.GetVersion(typ) {
			t.Errorf("%s: an identical translation changed the sidecar's version", typ)
		}
	}
	// The pod moves to b: its snapshot follows.
	pods["a-1"] = testPod("a-1", "b")
	if err := s.Update(translate.Translate(sidecarInputs())); err != nil {
		t.Fatal(err)
	}
	if snap("a-1") != snap("b-1") {
		t.Error("a pod that changed shape kept its old snapshot")
	}
}

func TestWithInboundRefusesConflictsAndReferences(t *testing.T) {
	res := translate.Translate(sidecarInputs())
	ix, err := index(res.Proxy)
	if err != nil {
		t.Fatal(err)
	}
	base := ix.snapshot(ix.resources)
	in := res.Inbound.For(testPod("p", "a"))
	if _, err := ix.withInbound(base, in); err != nil {
		t.Fatalf("inbound resources refused: %v", err)
	}
	dup := translate.Resources{resource.ClusterType: {res.Proxy[resource.ClusterType][0]}}
	if _, err := ix.withInbound(base, dup); err == nil || !strings.Contains(err.Error(), "is also an outbound one") {
		t.Errorf("a name clash: %v", err)
	}
	// An EDS cluster refers to endpoints the inbound set does not carry.
	eds := translate.Resources{resource.ClusterType: {&clusterv3.Cluster{Name: "inbound|1||", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}}}
	if _, err := ix.withInbound(base, eds); err == nil || !strings.Contains(err.Error(), "must be self-contained") {
		t.Errorf("an inbound EDS cluster: %v", err)
	}
	routes := translate.Resources{resource.RouteType: {res.Proxy[resource.RouteType][0]}}
	if _, err := ix.withInbound(base, routes); err == nil {
		t.Error("inbound route configurations accepted")
	}
}

// TestGatewaySnapshots: gateways share one snapshot, the proxies' plus
// the link clusters; only the cluster version differs from the proxies',
// a change of plan changes only the gateways' clusters, and without a
// plan a gateway gets what a proxy gets.
func TestGatewaySnapshots(t *testing.T) {
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.nodes["gw-1"] = &node{id: "gw-1", kind: translate.Gateway, acked: map[string]string{}}
	s.nodes["gw-2"] = &node{id: "gw-2", kind: translate.Gateway, acked: map[string]string{}}
	s.nodes["plain"] = &node{id: "plain", kind: translate.Proxy, acked: map[string]string{}}
	snap := func(id string) *cachev3.Snapshot {
		r, err := s.proxyCache.GetSnapshot(id)
		if err != nil {
			t.Fatal(err)
		}
		return r.(*cachev3.Snapshot)
	}
	withPlan := func(peers ...linkplan.Peer) *translate.Inputs {
		in := inputs()
		in.LinkPlan = &linkplan.Plan{Cluster: in.ClusterName, Peers: peers}
		return in
	}
	a := linkplan.Peer{Cluster: "a", Role: linkplan.RoleDial, Addresses: []string{"10.255.1.2:15443"}, Transport: "QUIC"}
	c := linkplan.Peer{Cluster: "c", Role: linkplan.RoleAccept, Transport: "QUIC"}
	if err := s.Update(translate.Translate(withPlan(a, c))); err != nil {
		t.Fatal(err)
	}
	gw, plain := snap("gw-1"), snap("plain")
	if snap("gw-2") != gw {
		t.Error("gateways do not share their snapshot")
	}
	if err := gw.Consistent(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"causeway-link|a", "causeway-link|c", xdsconv.PassthroughCluster} {
		if _, ok := gw.GetResources(resource.ClusterType)[name]; !ok {
			t.Errorf("gateway lacks cluster %s", name)
		}
	}
	for name := range plain.GetResources(resource.ClusterType) {
		if strings.HasPrefix(name, xdsconv.LinkClusterPrefix) {
			t.Errorf("a proxy gets link cluster %s", name)
		}
	}
	for _, typ := range snapshotTypes {
		if same := gw.GetVersion(typ) == plain.GetVersion(typ); same != (typ != resource.ClusterType) {
			t.Errorf("%s versions: gateway %s, proxy %s", typ, gw.GetVersion(typ), plain.GetVersion(typ))
		}
	}

	// Another plan: the gateways' cluster version moves, nothing else.
	if err := s.Update(translate.Translate(withPlan(a))); err != nil {
		t.Fatal(err)
	}
	gw2 := snap("gw-1")
	for _, typ := range snapshotTypes {
		if moved := gw2.GetVersion(typ) != gw.GetVersion(typ); moved != (typ == resource.ClusterType) {
			t.Errorf("%s: version moved %v after a plan change", typ, moved)
		}
		if snap("plain").GetVersion(typ) != plain.GetVersion(typ) {
			t.Errorf("%s: a plan change moved the proxies' version", typ)
		}
	}
	if _, ok := gw2.GetResources(resource.ClusterType)["causeway-link|c"]; ok {
		t.Error("a link that left the plan is still served")
	}

	// No plan: the gateway gets what a proxy gets.
	if err := s.Update(translate.Translate(inputs())); err != nil {
		t.Fatal(err)
	}
	for _, typ := range snapshotTypes {
		if snap("gw-1").GetVersion(typ) != snap("plain").GetVersion(typ) {
			t.Errorf("%s: without a plan the gateway's version differs from a proxy's", typ)
		}
	}
}
