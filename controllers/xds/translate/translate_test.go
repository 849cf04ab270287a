package translate_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

const ns = "default"

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// service is a ClusterIP Service in ns with TCP ports.
func service(name, ip string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip}, Ports: ports},
	}
}

func port(name string, number int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: number, Protocol: corev1.ProtocolTCP}
}

// slice is a local EndpointSlice of a service with one port and ready
// endpoints.
func slice(svc, portName string, portNumber int32, addrs ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + portName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(portNumber), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return es
}

// serviceParent is a GAMMA parentRef to a Service.
func serviceParent(name string) gatewayv1.ParentReference {
	return gatewayv1.ParentReference{Group: ptr.To(gatewayv1.Group("")), Kind: ptr.To(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name)}
}

func backend(name string, port int32, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To(port)},
		Weight:                 weight,
	}}
}

// httpRoute is an HTTPRoute in ns attached to Service web, created age
// after epoch.
func httpRoute(name string, age time.Duration, rules ...gatewayv1.HTTPRouteRule) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 7, CreationTimestamp: metav1.NewTime(epoch.Add(age))},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent("web")}},
			Rules:           rules,
		},
	}
}

func pathMatch(typ gatewayv1.PathMatchType, value string) gatewayv1.HTTPRouteMatch {
	return gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(typ), Value: ptr.To(value)}}
}

// webInputs are Service web (http 80) and backends v1 and v2 (http 8080).
func webInputs() *translate.Inputs {
	return &translate.Inputs{
		ClusterName: "east",
		Services: []*corev1.Service{
			service("web", "10.0.0.1", port("http", 80)),
			service("v1", "10.0.0.2", port("http", 8080)),
			service("v2", "10.0.0.3", port("http", 8080)),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("web", "http", 8080, "10.1.0.1"), slice("v1", "http", 8080, "10.1.0.2"), slice("v2", "http", 8080, "10.1.0.3")},
	}
}

// webRoutes returns the routes of web's port 80 for proxies.
func webRoutes(t *testing.T, res *translate.Result) []*routev3.Route {
	t.Helper()
	rc := find[*routev3.RouteConfiguration](res.Proxy, resource.RouteType, "web.default.svc.cluster.local:80")
	if rc == nil {
		t.Fatal("no route configuration for web:80")
	}
	return rc.VirtualHosts[0].Routes
}

func TestProtocolDecidesFilterChainAndUpstreamHTTP2(t *testing.T) {
	tests := map[string]struct {
		port      corev1.ServicePort
		wantHCM   bool
		wantWS    bool
		wantHTTP2 bool
	}{
		"http by name":             {port: port("http", 80), wantHCM: true, wantWS: true},
		"http prefix":              {port: port("http-web", 80), wantHCM: true, wantWS: true},
		"grpc by name prefix":      {port: port("grpc-echo", 9090), wantHCM: true, wantHTTP2: true},
		"h2c app protocol":         {port: corev1.ServicePort{Name: "api", Port: 8080, AppProtocol: ptr.To("kubernetes.io/h2c")}, wantHCM: true, wantHTTP2: true},
		"app protocol beats name":  {port: corev1.ServicePort{Name: "http", Port: 8080, AppProtocol: ptr.To("tcp")}},
		"https is opaque":          {port: corev1.ServicePort{Name: "web", Port: 443, AppProtocol: ptr.To("https")}},
		"unknown name is TCP":      {port: port("mysql", 3306)},
		"unnamed port is TCP":      {port: port("", 7000)},
		"unknown appProtocol":      {port: corev1.ServicePort{Name: "http", Port: 80, AppProtocol: ptr.To("example.com/custom")}},
		"http2 by name is HTTP2":   {port: port("http2", 8443), wantHCM: true, wantHTTP2: true},
		"websocket app protocol":   {port: corev1.ServicePort{Name: "x", Port: 80, AppProtocol: ptr.To("kubernetes.io/ws")}, wantHCM: true, wantWS: true},
		"grpc-web app protocol":    {port: corev1.ServicePort{Name: "x", Port: 80, AppProtocol: ptr.To("grpc-web")}, wantHCM: true, wantHTTP2: true},
		"uppercase appProtocol ok": {port: corev1.ServicePort{Name: "x", Port: 80, AppProtocol: ptr.To("HTTP")}, wantHCM: true, wantWS: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.port.Protocol = corev1.ProtocolTCP
			res := translate.Translate(&translate.Inputs{ClusterName: "east", Services: []*corev1.Service{service("s", "10.0.0.9", tc.port)}})
			checkResources(t, "proxy", res.Proxy)
			l := find[*listenerv3.Listener](res.Proxy, resource.ListenerType, xdsconv.ListenerName("10.0.0.9", tc.port.Port))
			if l == nil {
				t.Fatal("no listener")
			}
			f := l.FilterChains[0].Filters[0]
			if gotHCM := f.Name == wellknown.HTTPConnectionManager; gotHCM != tc.wantHCM {
				t.Fatalf("filter %s, want HCM %v", f.Name, tc.wantHCM)
			}
			if tc.wantHCM {
				hcm := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
				if got := len(hcm.UpgradeConfigs) == 1 && hcm.UpgradeConfigs[0].UpgradeType == "websocket"; got != tc.wantWS {
					t.Errorf("websocket upgrade %v, want %v", got, tc.wantWS)
				}
				if got := hcm.GetRds().GetRouteConfigName(); got != xdsconv.RouteName("s.default.svc.cluster.local", tc.port.Port) {
					t.Errorf("RDS route %q", got)
				}
			}
			c := find[*clusterv3.Cluster](res.Proxy, resource.ClusterType, xdsconv.ClusterName(tc.port.Port, "", "s.default.svc.cluster.local"))
			_, gotHTTP2 := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
			if gotHTTP2 != tc.wantHTTP2 {
				t.Errorf("HTTP/2 upstream %v, want %v", gotHTTP2, tc.wantHTTP2)
			}
			// Proxyless nodes get API listeners for HTTP ports only.
			api := find[*listenerv3.Listener](res.Proxyless, resource.ListenerType, xdsconv.RouteName("s.default.svc.cluster.local", tc.port.Port))
			if (api != nil) != tc.wantHCM {
				t.Errorf("proxyless API listener present %v, want %v", api != nil, tc.wantHCM)
			}
		})
	}
}

func TestDomains(t *testing.T) {
	in := &translate.Inputs{
		ClusterName: "east",
		Services: []*corev1.Service{
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
				Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1", ClusterIPs: []string{"10.0.0.1", "fd00::1"},
					Ports: []corev1.ServicePort{port("http", 80), port("http-admin", 8080)}},
			},
		},
		ServiceImports: []*mcsv1beta1.ServiceImport{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec:       mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, IPs: []string{"240.0.0.1"}, Ports: []mcsv1beta1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
		}},
	}
	res := translate.Translate(in)
	checkResources(t, "proxy", res.Proxy)
	tests := map[string]struct {
		route, vhost string
		want         []string
	}{
		"service port 80": {
			route: "web.shop.svc.cluster.local:80", vhost: "web.shop.svc.cluster.local:80",
			want: []string{"web.shop.svc.cluster.local", "web.shop.svc.cluster.local:80", "web.shop", "web.shop:80", "web.shop.svc", "web.shop.svc:80", "web", "web:80", "10.0.0.1", "10.0.0.1:80", "[fd00::1]", "[fd00::1]:80"},
		},
		"service other port": {
			route: "web.shop.svc.cluster.local:8080", vhost: "web.shop.svc.cluster.local:8080",
			want: []string{"web.shop.svc.cluster.local", "web.shop.svc.cluster.local:8080", "web.shop", "web.shop:8080", "web.shop.svc", "web.shop.svc:8080", "web", "web:8080", "10.0.0.1", "10.0.0.1:8080", "[fd00::1]", "[fd00::1]:8080"},
		},
		"import": {
			route: "web.shop.svc.clusterset.local:80", vhost: "web.shop.svc.clusterset.local:80",
			want: []string{"web.shop.svc.clusterset.local", "web.shop.svc.clusterset.local:80", "240.0.0.1", "240.0.0.1:80"},
		},
		"explicit, port 80 keeps bare names, no short name": {
			route: xdsconv.ExplicitHTTPListener, vhost: "web.shop.svc.cluster.local:80",
			want: []string{"web.shop.svc.cluster.local", "web.shop.svc.cluster.local:80", "web.shop", "web.shop:80", "web.shop.svc", "web.shop.svc:80", "10.0.0.1", "10.0.0.1:80", "[fd00::1]", "[fd00::1]:80"},
		},
		"explicit, other ports only port-qualified": {
			route: xdsconv.ExplicitHTTPListener, vhost: "web.shop.svc.cluster.local:8080",
			want: []string{"web.shop.svc.cluster.local:8080", "web.shop:8080", "web.shop.svc:8080", "10.0.0.1:8080", "[fd00::1]:8080"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rc := find[*routev3.RouteConfiguration](res.Proxy, resource.RouteType, tc.route)
			if rc == nil {
				t.Fatalf("no route configuration %s", tc.route)
			}
			var got []string
			for _, vh := range rc.VirtualHosts {
				if vh.Name == tc.vhost {
					got = vh.Domains
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("domains\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// Every domain of the explicit route configuration is unique.
	explicit := find[*routev3.RouteConfiguration](res.Proxy, resource.RouteType, xdsconv.ExplicitHTTPListener)
	seen := map[string]bool{}
	for _, vh := range explicit.VirtualHosts {
		for _, d := range vh.Domains {
			if seen[d] {
				t.Errorf("explicit domain %q appears twice", d)
			}
			seen[d] = true
		}
	}
}

func TestPrecedence(t *testing.T) {
	header := func(m gatewayv1.HTTPRouteMatch, names ...string) gatewayv1.HTTPRouteMatch {
		for _, n := range names {
			m.Headers = append(m.Headers, gatewayv1.HTTPHeaderMatch{Name: gatewayv1.HTTPHeaderName(n), Value: "x"})
		}
		return m
	}
	query := func(m gatewayv1.HTTPRouteMatch, names ...string) gatewayv1.HTTPRouteMatch {
		for _, n := range names {
			m.QueryParams = append(m.QueryParams, gatewayv1.HTTPQueryParamMatch{Name: gatewayv1.HTTPHeaderName(n), Value: "x"})
		}
		return m
	}
	method := func(m gatewayv1.HTTPRouteMatch) gatewayv1.HTTPRouteMatch {
		m.Method = ptr.To(gatewayv1.HTTPMethodPost)
		return m
	}
	rule := func(ms ...gatewayv1.HTTPRouteMatch) gatewayv1.HTTPRouteRule {
		return gatewayv1.HTTPRouteRule{Matches: ms, BackendRefs: []gatewayv1.HTTPBackendRef{backend("v1", 8080, nil)}}
	}
	tests := map[string]struct {
		routes []*gatewayv1.HTTPRoute
		want   []string // route names, rule/match
	}{
		"exact before regex before prefix, longest prefix first": {
			routes: []*gatewayv1.HTTPRoute{httpRoute("r", 0, rule(
				pathMatch(gatewayv1.PathMatchPathPrefix, "/"),
				pathMatch(gatewayv1.PathMatchPathPrefix, "/a"),
				pathMatch(gatewayv1.PathMatchRegularExpression, "/a/.*"),
				pathMatch(gatewayv1.PathMatchPathPrefix, "/a/b/"),
				pathMatch(gatewayv1.PathMatchExact, "/a/b"),
			))},
			want: []string{"r/0/4", "r/0/2", "r/0/3", "r/0/1", "r/0/0"},
		},
		"then method, headers, query parameters": {
			routes: []*gatewayv1.HTTPRoute{httpRoute("r", 0, rule(
				query(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), "q1", "q2"),
				header(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), "h1"),
				header(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), "h1", "h2"),
				method(pathMatch(gatewayv1.PathMatchPathPrefix, "/a")),
				pathMatch(gatewayv1.PathMatchPathPrefix, "/a"),
			))},
			want: []string{"r/0/3", "r/0/2", "r/0/1", "r/0/0", "r/0/4"},
		},
		"ties: oldest route, then name, then rule order": {
			routes: []*gatewayv1.HTTPRoute{
				httpRoute("young", time.Hour, rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"))),
				httpRoute("b-old", 0, rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/a")), rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"))),
				httpRoute("a-old", 0, rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/a"))),
			},
			want: []string{"a-old/0/0", "b-old/0/0", "b-old/1/0", "young/0/0"},
		},
		"a trailing slash does not make a prefix longer": {
			routes: []*gatewayv1.HTTPRoute{
				httpRoute("slash", 0, rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/abc/"))),
				httpRoute("longer", time.Hour, rule(pathMatch(gatewayv1.PathMatchPathPrefix, "/abcd"))),
			},
			want: []string{"longer/0/0", "slash/0/0"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := webInputs()
			in.HTTPRoutes = tc.routes
			res := translate.Translate(in)
			checkResources(t, "proxy", res.Proxy)
			var got []string
			for _, r := range webRoutes(t, res) {
				var route string
				var rule, match int
				if _, err := fmt.Sscanf(strings.ReplaceAll(r.Name, "/", " "), "HTTPRoute default %s rule %d match %d", &route, &rule, &match); err != nil {
					t.Fatalf("route name %q: %v", r.Name, err)
				}
				got = append(got, fmt.Sprintf("%s/%d/%d", route, rule, match))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("order\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestWeights(t *testing.T) {
	type wc struct {
		name   string
		weight uint32
	}
	v1 := xdsconv.ClusterName(8080, "", "v1.default.svc.cluster.local")
	v2 := xdsconv.ClusterName(8080, "", "v2.default.svc.cluster.local")
	tests := map[string]struct {
		backends    []gatewayv1.HTTPBackendRef
		wantCluster string
		wantWeights []wc
		want500     bool
	}{
		"one backend":                 {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, nil)}, wantCluster: v1},
		"one weighted backend":        {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To[int32](7))}, wantCluster: v1},
		"split":                       {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To[int32](80)), backend("v2", 8080, ptr.To[int32](20))}, wantWeights: []wc{{v1, 80}, {v2, 20}}},
		"default weight is 1":         {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, nil), backend("v2", 8080, ptr.To[int32](3))}, wantWeights: []wc{{v1, 1}, {v2, 3}}},
		"zero weight excluded":        {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To[int32](0)), backend("v2", 8080, nil)}, wantCluster: v2},
		"all zero is 500":             {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To[int32](0))}, want500: true},
		"no backends is 500":          {want500: true},
		"unresolved share is 500":     {backends: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To[int32](50)), backend("nope", 80, ptr.To[int32](30)), backend("v2", 9999, ptr.To[int32](20))}, wantWeights: []wc{{v1, 50}, {xdsconv.InvalidBackendCluster, 50}}},
		"only unresolved is 500":      {backends: []gatewayv1.HTTPBackendRef{backend("nope", 80, nil)}, want500: true},
		"service without port is 500": {backends: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "v1"}}}}, want500: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := webInputs()
			in.HTTPRoutes = []*gatewayv1.HTTPRoute{httpRoute("r", 0, gatewayv1.HTTPRouteRule{BackendRefs: tc.backends})}
			res := translate.Translate(in)
			checkResources(t, "proxy", res.Proxy)
			checkResources(t, "proxyless", res.Proxyless)
			routes := webRoutes(t, res)
			if len(routes) != 1 {
				t.Fatalf("%d routes, want 1", len(routes))
			}
			r := routes[0]
			if tc.want500 {
				if r.GetDirectResponse().GetStatus() != 500 {
					t.Fatalf("want a direct 500, got %v", r.Action)
				}
				return
			}
			ra := r.GetRoute()
			if tc.wantCluster != "" {
				if ra.GetCluster() != tc.wantCluster {
					t.Fatalf("cluster %q, want %q (action %v)", ra.GetCluster(), tc.wantCluster, ra.ClusterSpecifier)
				}
				return
			}
			var got []wc
			for _, c := range ra.GetWeightedClusters().GetClusters() {
				got = append(got, wc{c.Name, c.Weight.GetValue()})
			}
			if !slices.Equal(got, tc.wantWeights) {
				t.Errorf("weights %v, want %v", got, tc.wantWeights)
			}
			invalid := slices.ContainsFunc(got, func(w wc) bool { return w.name == xdsconv.InvalidBackendCluster })
			if invalid != (ra.ClusterNotFoundResponseCode == routev3.RouteAction_INTERNAL_SERVER_ERROR) {
				t.Errorf("cluster_not_found_response_code %v with InvalidBackendCluster %v", ra.ClusterNotFoundResponseCode, invalid)
			}
		})
	}
}

func TestRouteStatusReasons(t *testing.T) {
	ok := func(r *gatewayv1.HTTPRoute) {}
	tests := map[string]struct {
		mutate       func(*gatewayv1.HTTPRoute)
		wantAccepted string
		wantResolved string
	}{
		"valid": {mutate: ok, wantAccepted: "Accepted", wantResolved: "ResolvedRefs"},
		"missing backend": {
			mutate:       func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Name = "nope" },
			wantAccepted: "Accepted", wantResolved: "BackendNotFound",
		},
		"backend port missing": {
			mutate:       func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Port = ptr.To[int32](1) },
			wantAccepted: "Accepted", wantResolved: "BackendNotFound",
		},
		"backend kind": {
			mutate:       func(r *gatewayv1.HTTPRoute) { r.Spec.Rules[0].BackendRefs[0].Kind = ptr.To(gatewayv1.Kind("Pod")) },
			wantAccepted: "Accepted", wantResolved: "InvalidKind",
		},
		"backend in another namespace": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].BackendRefs[0].Namespace = ptr.To(gatewayv1.Namespace("other"))
			},
			wantAccepted: "Accepted", wantResolved: "RefNotPermitted",
		},
		"parent missing": {
			mutate:       func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Name = "nope" },
			wantAccepted: "NoMatchingParent", wantResolved: "ResolvedRefs",
		},
		"parent port missing": {
			mutate:       func(r *gatewayv1.HTTPRoute) { r.Spec.ParentRefs[0].Port = ptr.To[int32](81) },
			wantAccepted: "NoMatchingParent", wantResolved: "ResolvedRefs",
		},
		"bad path regex": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchRegularExpression, "/a(")}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"Perl-only regex": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchRegularExpression, "/a(?=b)")}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"huge regex": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchRegularExpression, strings.Repeat("(a|b|c)", 40))}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"bad header regex": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Type: ptr.To(gatewayv1.HeaderMatchRegularExpression), Name: "x", Value: "[z-a]"}}}}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"unsupported filter": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gatewayv1.LocalObjectReference{Kind: "X", Name: "y"}}}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"Host header filter": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{{Name: "Host", Value: "x"}}}}}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"header value with a newline": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "X-A", Value: "a\nb"}}}}}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"redirect with backends": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{Hostname: ptr.To(gatewayv1.PreciseHostname("x.example"))}}}
			},
			wantAccepted: "IncompatibleFilters", wantResolved: "ResolvedRefs",
		},
		"prefix rewrite without a prefix match": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchExact, "/a")}
				r.Spec.Rules[0].Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
					Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To("/b")},
				}}}
			},
			wantAccepted: "IncompatibleFilters", wantResolved: "ResolvedRefs",
		},
		"bad duration": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration("1d"))}
			},
			wantAccepted: "UnsupportedValue", wantResolved: "ResolvedRefs",
		},
		"invalid and unresolved": {
			mutate: func(r *gatewayv1.HTTPRoute) {
				r.Spec.Rules[0].Matches = []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchRegularExpression, "(")}
				r.Spec.Rules[0].BackendRefs[0].Name = "nope"
			},
			wantAccepted: "UnsupportedValue", wantResolved: "BackendNotFound",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := webInputs()
			base := translate.Translate(in)
			r := httpRoute("r", 0, gatewayv1.HTTPRouteRule{
				Matches:     []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchPathPrefix, "/a")},
				BackendRefs: []gatewayv1.HTTPBackendRef{backend("v1", 8080, nil)},
			})
			tc.mutate(r)
			in.HTTPRoutes = []*gatewayv1.HTTPRoute{r}
			res := translate.Translate(in)
			checkResources(t, "proxy", res.Proxy)
			checkResources(t, "proxyless", res.Proxyless)
			parents := res.HTTPRoutes[ktypes.NamespacedName{Namespace: ns, Name: "r"}]
			if len(parents) != 1 {
				t.Fatalf("%d parent statuses, want 1", len(parents))
			}
			p := parents[0]
			if p.ControllerName != translate.ControllerName || !equalParentRef(p.ParentRef, r.Spec.ParentRefs[0]) {
				t.Errorf("parent status %+v", p)
			}
			conds := map[string]metav1.Condition{}
			for _, c := range p.Conditions {
				conds[c.Type] = c
				if c.ObservedGeneration != 7 {
					t.Errorf("%s observedGeneration %d, want 7", c.Type, c.ObservedGeneration)
				}
			}
			if got := conds["Accepted"]; got.Reason != tc.wantAccepted || (got.Status == metav1.ConditionTrue) != (tc.wantAccepted == "Accepted") {
				t.Errorf("Accepted %s/%s (%s), want %s", got.Status, got.Reason, got.Message, tc.wantAccepted)
			}
			if got := conds["ResolvedRefs"]; got.Reason != tc.wantResolved || (got.Status == metav1.ConditionTrue) != (tc.wantResolved == "ResolvedRefs") {
				t.Errorf("ResolvedRefs %s/%s (%s), want %s", got.Status, got.Reason, got.Message, tc.wantResolved)
			}
			// A route that is not accepted changes nothing.
			if tc.wantAccepted != "Accepted" && !resourcesEqual(base.Proxy, res.Proxy) {
				t.Error("a route that is not accepted changed the proxy resources")
			}
			if tc.wantAccepted != "Accepted" && !resourcesEqual(base.Proxyless, res.Proxyless) {
				t.Error("a route that is not accepted changed the proxyless resources")
			}
		})
	}
}

func equalParentRef(a, b gatewayv1.ParentReference) bool {
	return fmt.Sprint(a.Name, deref(a.Port), deref(a.Kind)) == fmt.Sprint(b.Name, deref(b.Port), deref(b.Kind))
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func resourcesEqual(a, b translate.Resources) bool {
	for _, typ := range typeURLs {
		if len(a[typ]) != len(b[typ]) {
			return false
		}
		for i := range a[typ] {
			if !proto.Equal(a[typ][i], b[typ][i]) {
				return false
			}
		}
	}
	return true
}

func TestEndpoints(t *testing.T) {
	imported := func(cluster, region string, addrs ...string) *discoveryv1.EndpointSlice {
		es := slice("x", "http", 8080, addrs...)
		es.Name = "web." + cluster
		es.Labels = map[string]string{mcsv1beta1.LabelServiceName: "web", mcsv1beta1.LabelSourceCluster: cluster}
		if region != "" {
			es.Labels[corev1.LabelTopologyRegion] = region
		}
		return es
	}
	si := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, IPs: []string{"240.0.0.1"}, Ports: []mcsv1beta1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	type loc struct {
		subZone, region string
		priority        uint32
		addrs           string
	}
	tests := map[string]struct {
		slices []*discoveryv1.EndpointSlice
		want   []loc
	}{
		"local first at priority 0": {
			slices: []*discoveryv1.EndpointSlice{imported("west", "us", "10.2.0.1"), imported("east", "eu", "10.1.0.1")},
			want:   []loc{{"east", "eu", 0, "10.1.0.1:8080"}, {"west", "us", 1, "10.2.0.1:8080"}},
		},
		"no local endpoint: others at priority 0": {
			slices: []*discoveryv1.EndpointSlice{imported("west", "", "10.2.0.1"), imported("north", "", "10.3.0.1")},
			want:   []loc{{"north", "", 0, "10.3.0.1:8080"}, {"west", "", 0, "10.2.0.1:8080"}},
		},
		"duplicates and unready dropped, sorted": {
			slices: func() []*discoveryv1.EndpointSlice {
				a := imported("east", "", "10.1.0.9", "10.1.0.1")
				b := imported("east", "", "10.1.0.1", "10.1.0.5")
				b.Name = "web.east.1"
				b.Endpoints[1].Conditions.Ready = ptr.To(false)
				return []*discoveryv1.EndpointSlice{a, b}
			}(),
			want: []loc{{"east", "", 0, "10.1.0.1:8080,10.1.0.9:8080"}},
		},
		"port found by name": {
			slices: func() []*discoveryv1.EndpointSlice {
				a := imported("east", "", "10.1.0.1")
				a.Ports[0].Name = ptr.To("other")
				return []*discoveryv1.EndpointSlice{a, imported("west", "", "10.2.0.1")}
			}(),
			want: []loc{{"west", "", 0, "10.2.0.1:8080"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate.Translate(&translate.Inputs{ClusterName: "east", ServiceImports: []*mcsv1beta1.ServiceImport{si}, EndpointSlices: tc.slices})
			checkResources(t, "proxy", res.Proxy)
			checkResources(t, "proxyless", res.Proxyless)
			cla := find[*endpointv3.ClusterLoadAssignment](res.Proxy, resource.EndpointType, xdsconv.ClusterName(80, "", "web.default.svc.clusterset.local"))
			var got []loc
			for _, l := range cla.Endpoints {
				var addrs []string
				for _, e := range l.LbEndpoints {
					sa := e.GetEndpoint().GetAddress().GetSocketAddress()
					addrs = append(addrs, fmt.Sprintf("%s:%d", sa.Address, sa.GetPortValue()))
					if c := e.Metadata.FilterMetadata[xdsconv.MetadataNamespace].Fields[xdsconv.MetadataCluster].GetStringValue(); c != l.Locality.SubZone {
						t.Errorf("endpoint metadata cluster %q in locality %q", c, l.Locality.SubZone)
					}
				}
				if l.LoadBalancingWeight.GetValue() != uint32(len(addrs)) {
					t.Errorf("locality weight %d for %d endpoints", l.LoadBalancingWeight.GetValue(), len(addrs))
				}
				got = append(got, loc{l.Locality.SubZone, l.Locality.Region, l.Priority, strings.Join(addrs, ",")})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("localities\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPolicyConflictOldestThenName(t *testing.T) {
	tp := func(name string, age time.Duration) *causewayv1alpha1.TrafficPolicy {
		return &causewayv1alpha1.TrafficPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 2, CreationTimestamp: metav1.NewTime(epoch.Add(age))},
			Spec: causewayv1alpha1.TrafficPolicySpec{
				TargetRef:    causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: "web"},
				LoadBalancer: &causewayv1alpha1.LoadBalancer{Algorithm: causewayv1alpha1.LoadBalancerLeastRequest},
			},
		}
	}
	in := webInputs()
	in.TrafficPolicies = []*causewayv1alpha1.TrafficPolicy{tp("c", 0), tp("b", 0), tp("a", time.Hour)}
	res := translate.Translate(in)
	want := map[string]string{"a": "Conflicted", "b": "Accepted", "c": "Conflicted"}
	for name, reason := range want {
		st := res.TrafficPolicies[ktypes.NamespacedName{Namespace: ns, Name: name}]
		if st.ObservedGeneration != 2 || len(st.Conditions) != 2 {
			t.Fatalf("%s: status %+v", name, st)
		}
		acc, ready := st.Conditions[0], st.Conditions[1]
		if acc.Type != "Accepted" || acc.Reason != reason || ready.Type != "Ready" || (ready.Status == metav1.ConditionTrue) != (reason == "Accepted") {
			t.Errorf("%s: %+v, want Accepted reason %s", name, st.Conditions, reason)
		}
	}
	c := find[*clusterv3.Cluster](res.Proxy, resource.ClusterType, xdsconv.ClusterName(80, "", "web.default.svc.cluster.local"))
	if c.LbPolicy != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("lb policy %v", c.LbPolicy)
	}
}
