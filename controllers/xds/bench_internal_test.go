package xds

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// benchInputs: 1,000 Services (HTTP and gRPC ports, three endpoints each)
// in 10 namespaces, each selecting the pods app=svc-N, and with policies
// one ALLOW and one DENY AuthorizationPolicy in each namespace.
func benchInputs(policies bool) *translate.Inputs {
	in := &translate.Inputs{ClusterName: "east"}
	for i := range 1000 {
		ns, name := fmt.Sprintf("ns-%d", i%10), fmt.Sprintf("svc-%04d", i)
		in.Services = append(in.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP},
			}},
		})
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}, {Name: ptr.To("grpc"), Port: ptr.To[int32](9090)}}}
		for j := range 3 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, j+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	for n := range 10 {
		if !policies {
			break
		}
		ns := fmt.Sprintf("ns-%d", n)
		in.AuthorizationPolicies = append(in.AuthorizationPolicies,
			&causewayv1alpha1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "allow"}, Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionAllow, Rules: []causewayv1alpha1.AuthorizationRule{{From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{causewayv1alpha1.NamespaceName(ns)}}}},
			}},
			&causewayv1alpha1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deny"}, Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionDeny, Rules: []causewayv1alpha1.AuthorizationRule{{To: &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/admin/*"}}}},
			}})
	}
	return in
}

// BenchmarkUpdate500Sidecars sets the snapshots of 500 sidecars, of pods
// of 100 Services (5 replicas each), after one translation of
// benchInputs: what each debounced round costs the server.
func BenchmarkUpdate500Sidecars(b *testing.B) {
	in := benchInputs(true)
	pods := map[string]*corev1.Pod{}
	s, err := NewServer(Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 500 {
		svc := in.Services[i/5]
		name := fmt.Sprintf("%s-%d", svc.Name, i%5)
		pods[svc.Namespace+"/"+name] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name, Labels: map[string]string{"app": svc.Name}}}
		s.nodes[name] = &node{id: name, kind: translate.Proxy, acked: map[string]string{}, pod: ktypes.NamespacedName{Namespace: svc.Namespace, Name: name}}
	}
	s.SetPodSource(func(namespace, name string) *corev1.Pod { return pods[namespace+"/"+name] })
	benchUpdate(b, s, in)
}

// BenchmarkUpdate500Proxies is the same with 500 proxies that have no pod
// (node proxies, or sidecars before their pod is known), and no policies:
// the configuration every proxy had before inbound configuration.
func BenchmarkUpdate500Proxies(b *testing.B) {
	in := benchInputs(false)
	s, err := NewServer(Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 500 {
		id := fmt.Sprintf("proxy-%d", i)
		s.nodes[id] = &node{id: id, kind: translate.Proxy, acked: map[string]string{}}
	}
	benchUpdate(b, s, in)
}

func benchUpdate(b *testing.B, s *Server, in *translate.Inputs) {
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(translate.Translate(in)); err != nil {
			b.Fatal(err)
		}
	}
}
