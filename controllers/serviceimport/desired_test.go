package serviceimport_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/serviceimport"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

var (
	v4Group = causewayv1alpha1.ExportedEndpointSlice{
		AddressType: "IPv4",
		Ports:       []causewayv1alpha1.EndpointPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080, AppProtocol: ptr.To("http")}},
		Endpoints: []causewayv1alpha1.ExportedEndpoint{
			{Addresses: []string{"10.0.0.1"}, Hostname: "web-0", Zone: "eu-1a", TargetPod: "web-0"},
			{Addresses: []string{"10.0.0.2"}},
		},
	}
	v6Group = causewayv1alpha1.ExportedEndpointSlice{
		AddressType: "IPv6",
		Ports:       []causewayv1alpha1.EndpointPort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}},
		Endpoints:   []causewayv1alpha1.ExportedEndpoint{{Addresses: []string{"fd00::1"}}},
	}
)

func globalService(mod func(*causewayv1alpha1.GlobalServiceSpec)) *causewayv1alpha1.GlobalService {
	gs := &causewayv1alpha1.GlobalService{Spec: causewayv1alpha1.GlobalServiceSpec{
		Service: causewayv1alpha1.ServiceRef{Namespace: "default", Name: "hello"},
		ServiceProperties: causewayv1alpha1.ServiceProperties{
			Type:            causewayv1alpha1.ServiceTypeClusterSetIP,
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports:           []causewayv1alpha1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
		Clusters: []causewayv1alpha1.GlobalServiceCluster{
			{Name: "west", EndpointSlices: []causewayv1alpha1.ExportedEndpointSlice{v4Group}},
			{Name: "east", EndpointSlices: []causewayv1alpha1.ExportedEndpointSlice{v4Group, v6Group}},
		},
	}}
	// A deep copy: the groups' endpoints must not share v4Group's arrays,
	// which a mod would change for every later test.
	gs = gs.DeepCopy()
	if mod != nil {
		mod(&gs.Spec)
	}
	return gs
}

func clusterNames(cs []mcsv1beta1.ClusterStatus) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Cluster)
	}
	return out
}

func TestDesiredImport(t *testing.T) {
	tests := map[string]struct {
		gs              *causewayv1alpha1.GlobalService
		ip              string
		wantIPs         []string
		wantFamilies    []corev1.IPFamily
		wantType        mcsv1beta1.ServiceImportType
		wantLabels      map[string]string
		wantAnnotations map[string]string
		wantClusters    []string
		wantSlices      mcsv1beta1.EndpointSliceObjectsStatus
	}{
		"ClusterSetIP IPv4": {
			gs: globalService(nil), ip: "10.128.0.7",
			wantIPs: []string{"10.128.0.7"}, wantFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"ClusterSetIP IPv6": {
			gs: globalService(nil), ip: "fd00:c0::7",
			wantIPs: []string{"fd00:c0::7"}, wantFamilies: []corev1.IPFamily{corev1.IPv6Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"ClusterSetIP without an address yet": {
			gs: globalService(nil), wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"Headless ignores the address": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) { s.Type = causewayv1alpha1.ServiceTypeHeadless }), ip: "10.128.0.7",
			wantType:     mcsv1beta1.Headless,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"exported labels and annotations plus the managed-by label": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.ExportedLabels = map[string]string{"tier": "web", serviceimport.LabelManagedBy: "someone-else"}
				s.ExportedAnnotations = map[string]string{"note": "x"}
			}), ip: "10.128.0.7",
			wantIPs: []string{"10.128.0.7"}, wantFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:      map[string]string{"tier": "web", serviceimport.LabelManagedBy: "causeway-agent"},
			wantAnnotations: map[string]string{"note": "x"},
			wantClusters:    []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"one cluster withdrawn, the other serving": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) { s.Clusters[0].Withdrawn = true }), ip: "10.128.0.7",
			wantIPs: []string{"10.128.0.7"}, wantFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsPresent,
		},
		"all clusters withdrawn": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[0].Withdrawn = true
				s.Clusters[1].Withdrawn = true
			}), ip: "10.128.0.7",
			wantIPs: []string{"10.128.0.7"}, wantFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsAbsent,
		},
		"clusters without endpoints": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[0].EndpointSlices = nil
				s.Clusters[1].EndpointSlices = nil
			}), ip: "10.128.0.7",
			wantIPs: []string{"10.128.0.7"}, wantFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, wantType: mcsv1beta1.ClusterSetIP,
			wantLabels:   map[string]string{serviceimport.LabelManagedBy: "causeway-agent"},
			wantClusters: []string{"west", "east"}, wantSlices: mcsv1beta1.EndpointSliceObjectsAbsent,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var ip netip.Addr
			if tc.ip != "" {
				ip = netip.MustParseAddr(tc.ip)
			}
			before := tc.gs.DeepCopy()
			si := serviceimport.DesiredImport(tc.gs, ip)
			if !reflect.DeepEqual(tc.gs, before) {
				t.Error("DesiredImport modified the GlobalService")
			}
			if si.Namespace != "default" || si.Name != "hello" {
				t.Errorf("name = %s/%s, want default/hello", si.Namespace, si.Name)
			}
			if si.Spec.Type != tc.wantType {
				t.Errorf("type = %q, want %q", si.Spec.Type, tc.wantType)
			}
			if !reflect.DeepEqual(si.Spec.IPs, tc.wantIPs) || !reflect.DeepEqual(si.Spec.IPFamilies, tc.wantFamilies) {
				t.Errorf("IPs, families = %v, %v; want %v, %v", si.Spec.IPs, si.Spec.IPFamilies, tc.wantIPs, tc.wantFamilies)
			}
			if !reflect.DeepEqual(si.Labels, tc.wantLabels) || !reflect.DeepEqual(si.Annotations, tc.wantAnnotations) {
				t.Errorf("labels, annotations = %v, %v; want %v, %v", si.Labels, si.Annotations, tc.wantLabels, tc.wantAnnotations)
			}
			if got := clusterNames(si.Status.Clusters); !reflect.DeepEqual(got, tc.wantClusters) {
				t.Errorf("status.clusters = %v, want %v", got, tc.wantClusters)
			}
			if si.Status.EndpointSliceObjects != tc.wantSlices {
				t.Errorf("endpointSliceObjects = %q, want %q", si.Status.EndpointSliceObjects, tc.wantSlices)
			}
			wantPorts := []mcsv1beta1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
			if !reflect.DeepEqual(si.Spec.Ports, wantPorts) {
				t.Errorf("ports = %+v, want %+v", si.Spec.Ports, wantPorts)
			}
			if si.Spec.SessionAffinity != corev1.ServiceAffinityNone {
				t.Errorf("session affinity = %q", si.Spec.SessionAffinity)
			}
			if len(si.Status.Conditions) != 1 || si.Status.Conditions[0].Type != string(mcsv1beta1.ServiceImportConditionReady) {
				t.Errorf("conditions = %+v, want one Ready", si.Status.Conditions)
			}
			// The import shares no maps with the GlobalService.
			si.Labels["tier"] = "changed"
			if !reflect.DeepEqual(tc.gs, before) {
				t.Error("editing the ServiceImport changed the GlobalService")
			}
		})
	}
}

func TestDesiredSlices(t *testing.T) {
	labels := func(cluster string) map[string]string {
		return map[string]string{
			mcsv1beta1.LabelServiceName:   "hello",
			mcsv1beta1.LabelSourceCluster: cluster,
			discoveryv1.LabelManagedBy:    "agent.causeway.dev",
		}
	}
	ready := discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}
	v4 := func(name, cluster string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080), AppProtocol: ptr.To("http")}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.1"}, Hostname: ptr.To("web-0"), Zone: ptr.To("eu-1a"), Conditions: ready},
				{Addresses: []string{"10.0.0.2"}, Conditions: ready},
			},
		}
		s.Namespace, s.Name, s.Labels = "default", name, labels(cluster)
		return s
	}
	v6 := func(name, cluster string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			AddressType: discoveryv1.AddressTypeIPv6,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"fd00::1"}, Conditions: ready}},
		}
		s.Namespace, s.Name, s.Labels = "default", name, labels(cluster)
		return s
	}
	tests := map[string]struct {
		gs   *causewayv1alpha1.GlobalService
		want []*discoveryv1.EndpointSlice
	}{
		"one slice per cluster and group, in order": {
			gs:   globalService(nil),
			want: []*discoveryv1.EndpointSlice{v4("hello.west.0", "west"), v4("hello.east.0", "east"), v6("hello.east.1", "east")},
		},
		"the source cluster's region labels its slices": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) { s.Clusters[0].Region = "eu-west" }),
			want: func() []*discoveryv1.EndpointSlice {
				west := v4("hello.west.0", "west")
				west.Labels[corev1.LabelTopologyRegion] = "eu-west"
				return []*discoveryv1.EndpointSlice{west, v4("hello.east.0", "east"), v6("hello.east.1", "east")}
			}(),
		},
		"withdrawn clusters produce no slices": {
			gs:   globalService(func(s *causewayv1alpha1.GlobalServiceSpec) { s.Clusters[1].Withdrawn = true }),
			want: []*discoveryv1.EndpointSlice{v4("hello.west.0", "west")},
		},
		"all withdrawn": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[0].Withdrawn = true
				s.Clusters[1].Withdrawn = true
			}),
		},
		"no clusters": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) { s.Clusters = nil }),
		},
		"HBONE-capable endpoints go to a slice of their own, labelled": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[1].EndpointSlices[0].Endpoints[1].Tunnel = causewayv1alpha1.EndpointTunnelHBONE
			}),
			want: func() []*discoveryv1.EndpointSlice {
				plain, tunnelled := v4("hello.east.0", "east"), v4("hello.east.0.hbone", "east")
				plain.Endpoints = plain.Endpoints[:1]
				tunnelled.Endpoints = tunnelled.Endpoints[1:]
				tunnelled.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
				return []*discoveryv1.EndpointSlice{v4("hello.west.0", "west"), plain, tunnelled, v6("hello.east.1", "east")}
			}(),
		},
		"a group whose endpoints all take HBONE has no plain slice": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[0].Region = "eu-west"
				for i := range s.Clusters[0].EndpointSlices[0].Endpoints {
					s.Clusters[0].EndpointSlices[0].Endpoints[i].Tunnel = causewayv1alpha1.EndpointTunnelHBONE
				}
			}),
			want: func() []*discoveryv1.EndpointSlice {
				west := v4("hello.west.0.hbone", "west")
				west.Labels[corev1.LabelTopologyRegion] = "eu-west"
				west.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
				return []*discoveryv1.EndpointSlice{west, v4("hello.east.0", "east"), v6("hello.east.1", "east")}
			}(),
		},
		"a tunnel this version does not know counts as plain": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters[0].EndpointSlices[0].Endpoints[0].Tunnel = "GENEVE"
				s.Clusters[0].EndpointSlices[0].Endpoints[1].Tunnel = "hbone"
			}),
			want: []*discoveryv1.EndpointSlice{v4("hello.west.0", "west"), v4("hello.east.0", "east"), v6("hello.east.1", "east")},
		},
		"a group without endpoints keeps its plain slice": {
			gs: globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
				s.Clusters = s.Clusters[1:]
				s.Clusters[0].EndpointSlices[1].Endpoints = nil
			}),
			want: func() []*discoveryv1.EndpointSlice {
				empty := v6("hello.east.1", "east")
				empty.Endpoints = nil
				return []*discoveryv1.EndpointSlice{v4("hello.east.0", "east"), empty}
			}(),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := tc.gs.DeepCopy()
			got := serviceimport.DesiredSlices(tc.gs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DesiredSlices:")
				for _, s := range got {
					t.Errorf(" got %s %v %+v %+v", s.Name, s.Labels, s.Ports, s.Endpoints)
				}
				for _, s := range tc.want {
					t.Errorf("want %s %v %+v %+v", s.Name, s.Labels, s.Ports, s.Endpoints)
				}
			}
			// The slices share no memory with the GlobalService.
			for _, s := range got {
				for i := range s.Endpoints {
					s.Endpoints[i].Addresses[0] = "changed"
				}
				for i := range s.Ports {
					*s.Ports[i].Port = 1
				}
			}
			if !reflect.DeepEqual(tc.gs, before) {
				t.Error("editing the slices changed the GlobalService")
			}
		})
	}
}

// TestDesiredSlicesStable: the same GlobalService always yields the same
// slices, whatever moves between the plain and the HBONE slice of a group,
// with names unique within the import — so the controller, which compares
// before it writes, writes nothing on a re-run and touches only the slices
// whose endpoints changed.
func TestDesiredSlicesStable(t *testing.T) {
	gs := globalService(func(s *causewayv1alpha1.GlobalServiceSpec) {
		s.Clusters[1].EndpointSlices[0].Endpoints[0].Tunnel = causewayv1alpha1.EndpointTunnelHBONE
		s.Clusters[1].EndpointSlices[1].Endpoints[0].Tunnel = causewayv1alpha1.EndpointTunnelHBONE
	})
	first := serviceimport.DesiredSlices(gs)
	if again := serviceimport.DesiredSlices(gs.DeepCopy()); !reflect.DeepEqual(first, again) {
		t.Fatal("DesiredSlices is not deterministic")
	}
	names := map[string]bool{}
	for _, s := range first {
		if names[s.Name] {
			t.Errorf("slice name %s used twice", s.Name)
		}
		names[s.Name] = true
		if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
			t.Errorf("slice name %s: %v", s.Name, errs)
		}
		hbone := s.Labels[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE
		if hbone != strings.HasSuffix(s.Name, ".hbone") {
			t.Errorf("slice %s labelled %q", s.Name, s.Labels[xdsconv.LabelTunnel])
		}
	}
	want := "hello.west.0 hello.east.0 hello.east.0.hbone hello.east.1.hbone"
	var got []string
	for _, s := range first {
		got = append(got, s.Name)
	}
	if strings.Join(got, " ") != want {
		t.Errorf("slices %v, want %s", got, want)
	}

	// A pod of east's group 0 starts to accept HBONE: only that group's
	// two slices change.
	gs.Spec.Clusters[1].EndpointSlices[0].Endpoints[1].Tunnel = causewayv1alpha1.EndpointTunnelHBONE
	next := serviceimport.DesiredSlices(gs)
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range next {
		byName[s.Name] = s
	}
	for _, s := range first {
		n, ok := byName[s.Name]
		changed := !ok || !reflect.DeepEqual(s, n)
		if wantChanged := s.Name == "hello.east.0" || s.Name == "hello.east.0.hbone"; changed != wantChanged {
			t.Errorf("slice %s changed = %v, want %v", s.Name, changed, wantChanged)
		}
	}
	if _, ok := byName["hello.east.0"]; ok {
		t.Error("hello.east.0 still wanted with no plain endpoints left")
	}
	if n := len(byName["hello.east.0.hbone"].Endpoints); n != 2 {
		t.Errorf("hello.east.0.hbone has %d endpoints, want 2", n)
	}
}
