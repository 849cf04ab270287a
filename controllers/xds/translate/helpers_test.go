package translate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	ktypes "k8s.io/apimachinery/pkg/types"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/controllers/xds/translate/translatetest"
)

func loadInputs(t testing.TB, path string) (*translate.Inputs, []*corev1.Pod) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, pods, err := translatetest.Decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return in, pods
}

// sidecarResources are what a sidecar of pod gets: the shared proxy
// resources and the pod's inbound ones.
func sidecarResources(res *translate.Result, pod *corev1.Pod) translate.Resources {
	out := translate.Resources{}
	inbound := res.Inbound.For(pod)
	for _, typ := range typeURLs {
		out[typ] = append(slices.Clone(res.Proxy[typ]), inbound[typ]...)
		slices.SortFunc(out[typ], func(a, b cachetypes.Resource) int {
			return strings.Compare(cachev3.GetResourceName(a), cachev3.GetResourceName(b))
		})
	}
	return out
}

// types are the resource types a Result holds, in a fixed order.
var typeURLs = []resource.Type{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// checkResources asserts what every output must satisfy: each resource
// passes its proto validation, names are unique and sorted, and the
// resources make a consistent snapshot.
func checkResources(t testing.TB, kind string, rs translate.Resources) {
	t.Helper()
	for _, typ := range typeURLs {
		var names []string
		for _, r := range rs[typ] {
			v, ok := r.(interface{ ValidateAll() error })
			if !ok {
				t.Fatalf("%s %s: %T has no ValidateAll", kind, typ, r)
			}
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s %s %s: %v", kind, typ, cachev3.GetResourceName(r), err)
			}
			// Snapshot versions and the wire need it to marshal (proto3
			// strings must be valid UTF-8, for one).
			if _, err := cachev3.MarshalResource(r); err != nil {
				t.Errorf("%s %s %s: marshal: %v", kind, typ, cachev3.GetResourceName(r), err)
			}
			names = append(names, cachev3.GetResourceName(r))
		}
		if !slices.IsSorted(names) {
			t.Errorf("%s %s: names not sorted: %v", kind, typ, names)
		}
		if len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Errorf("%s %s: duplicate names: %v", kind, typ, names)
		}
	}
	snap, err := cachev3.NewSnapshot("1", map[resource.Type][]cachetypes.Resource(rs))
	if err != nil {
		t.Fatalf("%s: NewSnapshot: %v", kind, err)
	}
	if err := snap.Consistent(); err != nil {
		t.Errorf("%s: snapshot not consistent: %v", kind, err)
	}
}

// goldenJSON renders a Result as indented JSON: resources by protojson,
// status by encoding/json, and the inbound resources of each pod.
func goldenJSON(t testing.TB, res *translate.Result, pods []*corev1.Pod) []byte {
	t.Helper()
	out := map[string]any{}
	render := func(rs translate.Resources) map[string][]json.RawMessage {
		byType := map[string][]json.RawMessage{}
		for _, typ := range typeURLs {
			for _, r := range rs[typ] {
				b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				short := typ[strings.LastIndex(typ, ".")+1:]
				byType[short] = append(byType[short], json.RawMessage(b))
			}
		}
		return byType
	}
	for kind, rs := range map[string]translate.Resources{"proxy": res.Proxy, "proxyless": res.Proxyless} {
		out[kind] = render(rs)
	}
	if len(res.Links[resource.ClusterType]) > 0 {
		// What a gateway gets on top of the proxy resources.
		out["links"] = render(res.Links)
	}
	if len(pods) > 0 {
		inbound := map[string]any{}
		for _, p := range pods {
			inbound[p.Namespace+"/"+p.Name] = render(res.Inbound.For(p))
		}
		out["inbound"] = inbound
	}
	status := map[string]any{}
	for k, v := range res.HTTPRoutes {
		status["HTTPRoute "+k.String()] = v
	}
	for k, v := range res.GRPCRoutes {
		status["GRPCRoute "+k.String()] = v
	}
	for k, v := range res.TrafficPolicies {
		status["TrafficPolicy "+k.String()] = v
	}
	for k, v := range res.AuthorizationPolicies {
		status["AuthorizationPolicy "+k.String()] = v
	}
	for k, v := range res.RequestAuthentications {
		status["RequestAuthentication "+k.String()] = v
	}
	out["status"] = status
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	// protojson adds random spaces so nobody depends on its bytes;
	// re-indenting normalises them.
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// find returns the resource of a type with a name, or nil.
func find[T proto.Message](rs translate.Resources, typ resource.Type, name string) T {
	var zero T
	for _, r := range rs[typ] {
		if cachev3.GetResourceName(r) == name {
			return r.(T)
		}
	}
	return zero
}

func nsName(name string) ktypes.NamespacedName {
	return ktypes.NamespacedName{Namespace: ns, Name: name}
}
