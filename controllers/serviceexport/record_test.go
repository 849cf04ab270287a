package serviceexport_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/serviceexport"
)

var created = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func TestValidate(t *testing.T) {
	deleting := metav1.NewTime(created.Add(time.Minute))
	tests := map[string]struct {
		svc        *corev1.Service
		wantValid  bool
		wantReason mcsv1beta1.ServiceExportConditionReason
	}{
		"no service": {svc: nil, wantReason: mcsv1beta1.ServiceExportReasonNoService},
		"service being deleted": {
			svc:        &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hello", DeletionTimestamp: &deleting}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
			wantReason: mcsv1beta1.ServiceExportReasonNoService,
		},
		"ExternalName": {
			svc:        &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
			wantReason: mcsv1beta1.ServiceExportReasonInvalidServiceType,
		},
		"ClusterIP": {
			svc:       &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.0.0.1"}},
			wantValid: true, wantReason: mcsv1beta1.ServiceExportReasonValid,
		},
		"headless": {
			svc:       &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone}},
			wantValid: true, wantReason: mcsv1beta1.ServiceExportReasonValid,
		},
		"type unset": {
			svc:       &corev1.Service{},
			wantValid: true, wantReason: mcsv1beta1.ServiceExportReasonValid,
		},
		"LoadBalancer": {
			svc:       &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}},
			wantValid: true, wantReason: mcsv1beta1.ServiceExportReasonValid,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			valid, reason, message := serviceexport.Validate(tc.svc)
			if valid != tc.wantValid || reason != tc.wantReason {
				t.Errorf("Validate = (%v, %q), want (%v, %q)", valid, reason, tc.wantValid, tc.wantReason)
			}
			if message == "" {
				t.Error("Validate returned an empty message")
			}
		})
	}
}

// Builders of inputs.

func export(labels, annotations map[string]string) *mcsv1beta1.ServiceExport {
	return &mcsv1beta1.ServiceExport{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello", CreationTimestamp: created},
		Spec:       mcsv1beta1.ServiceExportSpec{ExportedLabels: labels, ExportedAnnotations: annotations},
	}
}

func service(mod func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeClusterIP,
			ClusterIP:       "10.96.0.10",
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports:           []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func epPort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)}
}

var httpPorts = []discoveryv1.EndpointPort{epPort("http", 8080)}

func epSlice(name string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func endpoint(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

// podEndpoint is a ready endpoint of pod name in namespace ns ("" for the
// slice's).
func podEndpoint(addr, ns, name string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{addr}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: name}}
}

// Expected outputs.

func wantSpec(mod func(*causewayv1alpha1.ExportRecordSpec)) causewayv1alpha1.ExportRecordSpec {
	s := causewayv1alpha1.ExportRecordSpec{
		Cluster:                 "east",
		Service:                 causewayv1alpha1.ServiceRef{Namespace: "default", Name: "hello"},
		ExportCreationTimestamp: created,
		ServiceProperties: causewayv1alpha1.ServiceProperties{
			Type:            causewayv1alpha1.ServiceTypeClusterSetIP,
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports:           []causewayv1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	if mod != nil {
		mod(&s)
	}
	return s
}

var wantHTTPPorts = []causewayv1alpha1.EndpointPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}}

func exported(addrs ...string) causewayv1alpha1.ExportedEndpoint {
	return causewayv1alpha1.ExportedEndpoint{Addresses: addrs}
}

func TestBuildRecord(t *testing.T) {
	deleting := metav1.NewTime(created.Add(time.Minute))
	timeout := &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
	tests := map[string]struct {
		se    *mcsv1beta1.ServiceExport
		svc   *corev1.Service
		eps   []discoveryv1.EndpointSlice
		hbone func(namespace, pod string) bool
		want  causewayv1alpha1.ExportRecordSpec
	}{
		"ClusterIP service without endpoints": {
			svc:  service(nil),
			want: wantSpec(nil),
		},
		"clusterIP None is Headless": {
			svc:  service(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }),
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) { s.Type = causewayv1alpha1.ServiceTypeHeadless }),
		},
		"empty protocol defaults to TCP, others kept": {
			svc: service(func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{
					{Name: "http", Port: 80},
					{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
					{Name: "h2", Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c"), Port: 81},
				}
			}),
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.Ports = []causewayv1alpha1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
					{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
					{Name: "h2", Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c"), Port: 81},
				}
			}),
		},
		"empty session affinity defaults to None": {
			svc:  service(func(s *corev1.Service) { s.Spec.SessionAffinity = "" }),
			want: wantSpec(nil),
		},
		"ClientIP affinity, its config, traffic policy and distribution are copied": {
			svc: service(func(s *corev1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = timeout.DeepCopy()
				s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
				s.Spec.TrafficDistribution = ptr.To("PreferClose")
			}),
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.SessionAffinity = corev1.ServiceAffinityClientIP
				s.SessionAffinityConfig = timeout.DeepCopy()
				s.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
				s.TrafficDistribution = ptr.To("PreferClose")
			}),
		},
		"exported labels and annotations are copied": {
			se:  export(map[string]string{"tier": "web"}, map[string]string{"note": "x"}),
			svc: service(nil),
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.ExportedLabels = map[string]string{"tier": "web"}
				s.ExportedAnnotations = map[string]string{"note": "x"}
			}),
		},
		"empty exported labels and annotations become nil": {
			se:   export(map[string]string{}, map[string]string{}),
			svc:  service(nil),
			want: wantSpec(nil),
		},
		"not-ready endpoints are dropped, ready and unknown kept": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts,
				endpoint(ptr.To(false), "10.0.0.1"),
				endpoint(ptr.To(true), "10.0.0.2"),
				endpoint(nil, "10.0.0.3"),
			)},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{
					AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.2"), exported("10.0.0.3")},
				}}
			}),
		},
		"endpoints without addresses are dropped": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts,
				endpoint(ptr.To(true)),
				endpoint(ptr.To(true), "10.0.0.2"),
			)},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.2")}}}
			}),
		},
		"a slice whose endpoints are all dropped is omitted": {
			svc:  service(nil),
			eps:  []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts, endpoint(ptr.To(false), "10.0.0.1"), endpoint(nil))},
			want: wantSpec(nil),
		},
		"hostname, zone and target pod are copied": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts,
				discoveryv1.Endpoint{
					Addresses: []string{"10.0.0.1"}, Hostname: ptr.To("web-0"), Zone: ptr.To("eu-1a"),
					TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0"},
				},
				discoveryv1.Endpoint{
					Addresses: []string{"10.0.0.2"},
					TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "node-1"},
				},
			)},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{
					{Addresses: []string{"10.0.0.1"}, Hostname: "web-0", Zone: "eu-1a", TargetPod: "web-0"},
					exported("10.0.0.2"),
				}}}
			}),
		},
		"endpoints of pods that accept HBONE are marked, others not": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts,
				podEndpoint("10.0.0.1", "", "web-1"),
				podEndpoint("10.0.0.2", "", "web-2"),
				podEndpoint("10.0.0.3", "other", "web-2"),
				discoveryv1.Endpoint{Addresses: []string{"10.0.0.4"}, TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "web-2"}},
				endpoint(nil, "10.0.0.5"),
			)},
			hbone: func(namespace, pod string) bool { return namespace == "default" && pod == "web-2" },
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{
					{Addresses: []string{"10.0.0.1"}, TargetPod: "web-1"},
					{Addresses: []string{"10.0.0.2"}, TargetPod: "web-2", Tunnel: causewayv1alpha1.EndpointTunnelHBONE},
					// The same pod name in another namespace is another pod.
					{Addresses: []string{"10.0.0.3"}, TargetPod: "web-2"},
					// Only pods take tunnels.
					exported("10.0.0.4"),
					exported("10.0.0.5"),
				}}}
			}),
		},
		"a targetRef's own namespace is the pod's": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts,
				podEndpoint("10.0.0.3", "other", "web-2"),
			)},
			hbone: func(namespace, pod string) bool { return namespace == "other" && pod == "web-2" },
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{
					{Addresses: []string{"10.0.0.3"}, TargetPod: "web-2", Tunnel: causewayv1alpha1.EndpointTunnelHBONE},
				}}}
			}),
		},
		"not-ready endpoints of HBONE pods are still dropped": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{epSlice("s1", discoveryv1.AddressTypeIPv4, httpPorts, func() discoveryv1.Endpoint {
				e := podEndpoint("10.0.0.2", "", "web-2")
				e.Conditions.Ready = ptr.To(false)
				return e
			}())},
			hbone: func(string, string) bool { return true },
			want:  wantSpec(nil),
		},
		"FQDN slices are dropped": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{
				epSlice("fqdn", discoveryv1.AddressTypeFQDN, httpPorts, endpoint(nil, "db.example.com")),
				epSlice("v4", discoveryv1.AddressTypeIPv4, httpPorts, endpoint(nil, "10.0.0.1")),
			},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.1")}}}
			}),
		},
		"slices being deleted are dropped": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{func() discoveryv1.EndpointSlice {
				s := epSlice("gone", discoveryv1.AddressTypeIPv4, httpPorts, endpoint(nil, "10.0.0.1"))
				s.DeletionTimestamp = &deleting
				return s
			}()},
			want: wantSpec(nil),
		},
		"two slices with identical ports are merged, endpoints sorted": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{
				epSlice("s1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{epPort("http", 8080)}, endpoint(nil, "10.0.0.9"), endpoint(nil, "10.0.0.3")),
				epSlice("s2", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{epPort("http", 8080)}, endpoint(nil, "10.0.0.5"), endpoint(nil, "10.0.0.1")),
			},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{
					exported("10.0.0.1"), exported("10.0.0.3"), exported("10.0.0.5"), exported("10.0.0.9"),
				}}}
			}),
		},
		"slices with different ports or address types stay apart, sorted": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{
				epSlice("v6", discoveryv1.AddressTypeIPv6, httpPorts, endpoint(nil, "fd00::1")),
				epSlice("v4-9090", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{epPort("http", 9090)}, endpoint(nil, "10.0.0.2")),
				epSlice("v4-8080", discoveryv1.AddressTypeIPv4, httpPorts, endpoint(nil, "10.0.0.1")),
			},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{
					{AddressType: "IPv4", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.1")}},
					{AddressType: "IPv4", Ports: []causewayv1alpha1.EndpointPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 9090}}, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.2")}},
					{AddressType: "IPv6", Ports: wantHTTPPorts, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("fd00::1")}},
				}
			}),
		},
		"slice ports are sorted by name, ports without a number skipped": {
			svc: service(nil),
			eps: []discoveryv1.EndpointSlice{
				epSlice("s1", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{
					epPort("metrics", 9100),
					{Name: ptr.To("none")},
					{Name: ptr.To("grpc"), Protocol: ptr.To(corev1.ProtocolTCP), AppProtocol: ptr.To("grpc"), Port: ptr.To[int32](9000)},
					{Port: ptr.To[int32](53)},
				}, endpoint(nil, "10.0.0.1")),
			},
			want: wantSpec(func(s *causewayv1alpha1.ExportRecordSpec) {
				s.EndpointSlices = []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Ports: []causewayv1alpha1.EndpointPort{
					{Port: 53},
					{Name: "grpc", Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("grpc"), Port: 9000},
					{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9100},
				}, Endpoints: []causewayv1alpha1.ExportedEndpoint{exported("10.0.0.1")}}}
			}),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			se := tc.se
			if se == nil {
				se = export(nil, nil)
			}
			got := serviceexport.BuildRecord("east", se, tc.svc, tc.eps, tc.hbone)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("BuildRecord:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// richSlices is an input with merged groups, several address types, dropped
// endpoints and every optional endpoint field.
func richSlices() []discoveryv1.EndpointSlice {
	pod := func(addr, name, zone string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses: []string{addr}, Hostname: ptr.To(name), Zone: ptr.To(zone),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: name},
		}
	}
	two := []discoveryv1.EndpointPort{epPort("http", 8080), epPort("admin", 9000)}
	return []discoveryv1.EndpointSlice{
		epSlice("a", discoveryv1.AddressTypeIPv4, two, pod("10.0.0.4", "web-4", "z1"), pod("10.0.0.2", "web-2", "z2"), endpoint(ptr.To(false), "10.0.0.99")),
		epSlice("b", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{epPort("admin", 9000), epPort("http", 8080)}, pod("10.0.0.1", "web-1", "z1")),
		epSlice("c", discoveryv1.AddressTypeIPv4, httpPorts, pod("10.0.0.3", "web-3", "z2"), endpoint(nil, "10.0.0.7")),
		epSlice("d", discoveryv1.AddressTypeIPv6, two, pod("fd00::2", "web-2", "z2"), pod("fd00::1", "web-1", "z1")),
		epSlice("e", discoveryv1.AddressTypeFQDN, httpPorts, endpoint(nil, "x.example.com")),
		epSlice("f", discoveryv1.AddressTypeIPv6, two, pod("fd00::3", "web-3", "z2")),
		epSlice("g", discoveryv1.AddressTypeIPv4, httpPorts, endpoint(ptr.To(false), "10.0.0.8")),
	}
}

// hboneWeb2 says that only default/web-2 accepts HBONE.
func hboneWeb2(namespace, pod string) bool { return namespace == "default" && pod == "web-2" }

func TestBuildRecordOrderIndependent(t *testing.T) {
	se, svc := export(map[string]string{"a": "b"}, nil), service(nil)
	want := serviceexport.BuildRecord("east", se, svc, richSlices(), hboneWeb2)
	if n := len(want.EndpointSlices); n != 3 {
		t.Fatalf("want 3 groups (IPv4 two ports, IPv4 one port, IPv6), got %d: %+v", n, want.EndpointSlices)
	}
	tunnels := 0
	for _, s := range want.EndpointSlices {
		for _, e := range s.Endpoints {
			if e.Tunnel == causewayv1alpha1.EndpointTunnelHBONE {
				tunnels++
			}
		}
	}
	if tunnels != 2 {
		t.Fatalf("want web-2's two endpoints (IPv4 and IPv6) marked HBONE, got %d: %+v", tunnels, want.EndpointSlices)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		eps := richSlices()
		rng.Shuffle(len(eps), func(a, b int) { eps[a], eps[b] = eps[b], eps[a] })
		for j := range eps {
			e := eps[j].Endpoints
			rng.Shuffle(len(e), func(a, b int) { e[a], e[b] = e[b], e[a] })
			p := eps[j].Ports
			rng.Shuffle(len(p), func(a, b int) { p[a], p[b] = p[b], p[a] })
		}
		if got := serviceexport.BuildRecord("east", se, svc, eps, hboneWeb2); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d: BuildRecord depends on input order:\n got %+v\nwant %+v", i, got.EndpointSlices, want.EndpointSlices)
		}
	}
}

func TestBuildRecordDoesNotModifyInput(t *testing.T) {
	se := export(map[string]string{"tier": "web"}, map[string]string{"note": "x"})
	svc := service(func(s *corev1.Service) {
		s.Spec.SessionAffinity = ""
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](5)}}
		s.Spec.Ports[0].Protocol = ""
	})
	eps := richSlices()
	se0, svc0 := se.DeepCopy(), svc.DeepCopy()
	eps0 := make([]discoveryv1.EndpointSlice, len(eps))
	for i := range eps {
		eps[i].DeepCopyInto(&eps0[i])
	}

	got := serviceexport.BuildRecord("east", se, svc, eps, hboneWeb2)
	if !reflect.DeepEqual(se, se0) || !reflect.DeepEqual(svc, svc0) || !reflect.DeepEqual(eps, eps0) {
		t.Fatal("BuildRecord modified its input")
	}

	// The result shares no maps, slices or the affinity config with the input.
	got.ExportedLabels["tier"] = "changed"
	got.ExportedAnnotations["note"] = "changed"
	got.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptr.To[int32](99)
	for i := range got.EndpointSlices {
		for j := range got.EndpointSlices[i].Endpoints {
			got.EndpointSlices[i].Endpoints[j].Addresses[0] = "changed"
		}
	}
	if !reflect.DeepEqual(se, se0) || !reflect.DeepEqual(svc, svc0) || !reflect.DeepEqual(eps, eps0) {
		t.Fatal("editing BuildRecord's result changed its input")
	}
}

// TestBuildRecordDuplicateFirstAddress: the same address in two slices (the
// EndpointSlice API allows it; the controller may duplicate an endpoint for a
// moment while it moves it between slices) with different details must not
// make the record depend on the order of the slices.
func TestBuildRecordDuplicateFirstAddress(t *testing.T) {
	a := epSlice("a", discoveryv1.AddressTypeIPv4, httpPorts, discoveryv1.Endpoint{Addresses: []string{"10.0.0.3"}, Zone: ptr.To("z1"),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-new"}})
	b := epSlice("b", discoveryv1.AddressTypeIPv4, httpPorts, discoveryv1.Endpoint{Addresses: []string{"10.0.0.3"}, Hostname: ptr.To("web-old")})
	se, svc := export(nil, nil), service(nil)
	ab := serviceexport.BuildRecord("east", se, svc, []discoveryv1.EndpointSlice{a, b}, hboneWeb2)
	ba := serviceexport.BuildRecord("east", se, svc, []discoveryv1.EndpointSlice{b, a}, hboneWeb2)
	if !reflect.DeepEqual(ab, ba) {
		t.Errorf("BuildRecord depends on the order of slices:\n[a b] %+v\n[b a] %+v", ab.EndpointSlices, ba.EndpointSlices)
	}
}

// fuzzSlices decodes EndpointSlices from data. Values come from small pools
// so that slices share ports and addresses; port names within a slice are
// unique, as the API requires. An endpoint's first address is unique in the
// input (TestBuildRecordDuplicateFirstAddress covers endpoints that share
// one).
func fuzzSlices(data []byte) []discoveryv1.EndpointSlice {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	types := []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN}
	names := []string{"", "http", "grpc", "admin"}
	protos := []*corev1.Protocol{nil, ptr.To(corev1.ProtocolTCP), ptr.To(corev1.ProtocolUDP)}
	numbers := []*int32{nil, ptr.To[int32](80), ptr.To[int32](8080)}
	readies := []*bool{nil, ptr.To(true), ptr.To(false)}
	strs := []*string{nil, ptr.To("a"), ptr.To("b")}
	var out []discoveryv1.EndpointSlice
	first := 0
	for n := 0; len(data) > 0 && n < 16; n++ {
		s := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: string(rune('a' + n))}, AddressType: types[int(next())%len(types)]}
		used := map[string]bool{}
		for range int(next()) % 4 {
			b := next()
			name := names[int(b)%len(names)]
			if used[name] {
				continue
			}
			used[name] = true
			p := discoveryv1.EndpointPort{Protocol: protos[int(b>>2)%len(protos)], Port: numbers[int(b>>4)%len(numbers)]}
			if name != "" || b&0x80 != 0 {
				p.Name = ptr.To(name)
			}
			if b&0x40 != 0 {
				p.AppProtocol = ptr.To("h2c")
			}
			s.Ports = append(s.Ports, p)
		}
		for range int(next()) % 5 {
			b := next()
			e := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: readies[int(b)%len(readies)]}}
			for i := range int(b>>2) % 3 {
				if i == 0 {
					first++
					e.Addresses = append(e.Addresses, fmt.Sprintf("10.1.0.%d", first))
					continue
				}
				e.Addresses = append(e.Addresses, fmt.Sprintf("10.0.0.%d", next()%8))
			}
			c := next()
			e.Hostname, e.Zone = strs[int(c)%len(strs)], strs[int(c>>2)%len(strs)]
			if c&0x80 != 0 {
				e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "p" + string(rune('0'+c%4))}
			}
			s.Endpoints = append(s.Endpoints, e)
		}
		out = append(out, s)
	}
	return out
}

// hboneFuzz says that fuzzSlices' pods p1 and p3 accept HBONE.
func hboneFuzz(_, pod string) bool { return pod == "p1" || pod == "p3" }

func FuzzBuildRecord(f *testing.F) {
	f.Add([]byte{0, 1, 0x11, 2, 0x05, 0x01, 0x09, 0x82})
	f.Add([]byte{1, 2, 0x11, 0x22, 3, 0x04, 1, 2, 0x08, 3, 0x83, 0x14, 4, 5, 0x41})
	f.Add([]byte{0, 1, 0x11, 1, 0x08, 3, 0x81, 0, 1, 0x11, 1, 0x08, 3, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		se, svc := export(nil, nil), service(nil)
		eps := fuzzSlices(data)
		want := serviceexport.BuildRecord("east", se, svc, eps, hboneFuzz)
		for _, s := range want.EndpointSlices {
			if len(s.Endpoints) == 0 {
				t.Fatalf("exported slice without endpoints: %+v", s)
			}
			for _, e := range s.Endpoints {
				if len(e.Addresses) == 0 {
					t.Fatalf("exported endpoint without addresses: %+v", s)
				}
				if hbone := e.Tunnel == causewayv1alpha1.EndpointTunnelHBONE; hbone != hboneFuzz("", e.TargetPod) {
					t.Fatalf("endpoint of pod %q has tunnel %q", e.TargetPod, e.Tunnel)
				}
			}
		}
		rev := slices.Clone(eps)
		slices.Reverse(rev)
		if got := serviceexport.BuildRecord("east", se, svc, rev, hboneFuzz); !reflect.DeepEqual(got, want) {
			t.Fatalf("BuildRecord depends on the order of slices:\n   in order %+v\n   reversed %+v", want.EndpointSlices, got.EndpointSlices)
		}
	})
}
