package xds

import (
	"slices"
	"testing"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
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
