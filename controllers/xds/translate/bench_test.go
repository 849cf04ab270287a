package translate_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// BenchmarkTranslate1000Services translates 1,000 Services with two ports
// (HTTP and gRPC) and three endpoints each, and 100 HTTPRoutes splitting
// traffic between pairs of them: the size of a busy cluster, rebuilt on
// every debounced change.
func BenchmarkTranslate1000Services(b *testing.B) {
	in := &translate.Inputs{ClusterName: "east", Region: "eu"}
	for i := range 1000 {
		name := fmt.Sprintf("svc-%04d", i)
		in.Services = append(in.Services, service(name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), port("http", 80), port("grpc", 9090)))
		es := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4}
		es.Namespace, es.Name, es.Labels = ns, name+"-abcde", map[string]string{discoveryv1.LabelServiceName: name}
		es.Ports = []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)},
			{Name: ptr.To("grpc"), Port: ptr.To[int32](9090), Protocol: ptr.To(corev1.ProtocolTCP)},
		}
		for j := range 3 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, j+1)},
				Zone:       ptr.To(fmt.Sprintf("eu-%d", j)),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	for i := range 100 {
		r := httpRoute(fmt.Sprintf("route-%03d", i), 0, gatewayv1.HTTPRouteRule{
			Matches: []gatewayv1.HTTPRouteMatch{pathMatch(gatewayv1.PathMatchPathPrefix, "/api")},
			BackendRefs: []gatewayv1.HTTPBackendRef{
				backend(fmt.Sprintf("svc-%04d", 2*i+1), 80, ptr.To[int32](90)),
				backend(fmt.Sprintf("svc-%04d", 2*i+2), 80, ptr.To[int32](10)),
			},
		}, gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{backend(fmt.Sprintf("svc-%04d", 2*i+1), 80, nil)}})
		r.Spec.ParentRefs = []gatewayv1.ParentReference{serviceParent(fmt.Sprintf("svc-%04d", 2*i))}
		in.HTTPRoutes = append(in.HTTPRoutes, r)
	}
	b.ReportAllocs()
	var res *translate.Result
	for b.Loop() {
		res = translate.Translate(in)
	}
	b.StopTimer()
	checkResources(b, "proxy", res.Proxy)
	checkResources(b, "proxyless", res.Proxyless)
}
