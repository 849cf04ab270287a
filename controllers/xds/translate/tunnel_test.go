/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package translate_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/serviceexport"
	"github.com/causeway-mesh/causeway/controllers/serviceimport"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// endpointTunnels lists a ClusterLoadAssignment's endpoints as
// "ip:port/cluster" plus "+hbone" for those marked for HBONE, sorted.
func endpointTunnels(t *testing.T, cla *endpointv3.ClusterLoadAssignment) string {
	t.Helper()
	if cla == nil {
		t.Fatal("no ClusterLoadAssignment")
	}
	var out []string
	for _, l := range cla.Endpoints {
		for _, e := range l.LbEndpoints {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			fields := e.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()
			s := fmt.Sprintf("%s:%d/%s", sa.GetAddress(), sa.GetPortValue(), fields[xdsconv.MetadataCluster].GetStringValue())
			switch v, ok := fields[xdsconv.MetadataTunnel]; {
			case ok && v.GetStringValue() == xdsconv.TunnelHBONE:
				s += "+hbone"
			case ok:
				t.Errorf("endpoint %s has tunnel metadata %v", s, v)
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestHBONEEndpointMetadata: endpoints of an import's slices labelled
// causeway.dev/tunnel=hbone are marked for HBONE; a local slice's label
// means nothing (local pods count only if in HBONEPods), and HBONEPods
// means nothing for imported endpoints.
func TestHBONEEndpointMetadata(t *testing.T) {
	imported := func(name, cluster, tunnel string, addrs ...string) *discoveryv1.EndpointSlice {
		es := slice("x", "http", 8080, addrs...)
		es.Name = name
		es.Labels = map[string]string{mcsv1beta1.LabelServiceName: "web", mcsv1beta1.LabelSourceCluster: cluster, discoveryv1.LabelManagedBy: causewayv1alpha1.ManagedByAgent}
		if tunnel != "" {
			es.Labels[xdsconv.LabelTunnel] = tunnel
		}
		return es
	}
	local := func(tunnel string, pods ...string) *discoveryv1.EndpointSlice {
		es := slice("web", "http", 8080)
		if tunnel != "" {
			es.Labels[xdsconv.LabelTunnel] = tunnel
		}
		for i, p := range pods {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.1.0.%d", i+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: p},
			})
		}
		return es
	}
	withPods := func(es *discoveryv1.EndpointSlice, pods ...string) *discoveryv1.EndpointSlice {
		for i, p := range pods {
			es.Endpoints[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p}
		}
		return es
	}
	si := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, IPs: []string{"240.0.0.1"}, Ports: []mcsv1beta1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	tests := map[string]struct {
		slices     []*discoveryv1.EndpointSlice
		hbonePods  map[string]bool
		wantImport string
		wantLocal  string
	}{
		"an import's HBONE slice is marked, its plain slice not": {
			slices: []*discoveryv1.EndpointSlice{
				imported("web.west.0", "west", "", "10.2.0.1"),
				imported("web.west.0.hbone", "west", xdsconv.TunnelHBONE, "10.2.0.2", "10.2.0.3"),
			},
			wantImport: "10.2.0.1:8080/west 10.2.0.2:8080/west+hbone 10.2.0.3:8080/west+hbone",
		},
		"an import's slice with another tunnel label value is plain": {
			slices:     []*discoveryv1.EndpointSlice{imported("web.west.0", "west", "HBONE", "10.2.0.1"), imported("web.west.1", "west", "geneve", "10.2.0.2")},
			wantImport: "10.2.0.1:8080/west 10.2.0.2:8080/west",
		},
		"HBONEPods does not mark imported endpoints": {
			slices:     []*discoveryv1.EndpointSlice{withPods(imported("web.west.0", "west", "", "10.2.0.1"), "web-1")},
			hbonePods:  map[string]bool{ns + "/web-1": true},
			wantImport: "10.2.0.1:8080/west",
		},
		"the local cluster's own import follows the label too": {
			slices:     []*discoveryv1.EndpointSlice{imported("web.east.0.hbone", "east", xdsconv.TunnelHBONE, "10.1.0.1")},
			wantImport: "10.1.0.1:8080/east+hbone",
		},
		"a local slice's label is ignored": {
			slices:    []*discoveryv1.EndpointSlice{local(xdsconv.TunnelHBONE, "web-1", "web-2")},
			wantLocal: "10.1.0.1:8080/east 10.1.0.2:8080/east",
		},
		"local pods in HBONEPods are marked, as before": {
			slices:    []*discoveryv1.EndpointSlice{local("", "web-1", "web-2")},
			hbonePods: map[string]bool{ns + "/web-2": true},
			wantLocal: "10.1.0.1:8080/east 10.1.0.2:8080/east+hbone",
		},
		"an endpoint moving between an import's slices is listed once, as HBONE": {
			slices: []*discoveryv1.EndpointSlice{
				imported("web.west.0", "west", "", "10.2.0.1", "10.2.0.2"),
				imported("web.west.0.hbone", "west", xdsconv.TunnelHBONE, "10.2.0.2"),
			},
			wantImport: "10.2.0.1:8080/west 10.2.0.2:8080/west+hbone",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// Both orders of the slices: the result must not depend on it.
			reversed := slices.Clone(tc.slices)
			slices.Reverse(reversed)
			for _, eps := range [][]*discoveryv1.EndpointSlice{tc.slices, reversed} {
				res := translate.Translate(&translate.Inputs{
					ClusterName:    "east",
					Services:       []*corev1.Service{service("web", "10.0.0.1", port("http", 80))},
					ServiceImports: []*mcsv1beta1.ServiceImport{si},
					EndpointSlices: eps,
					HBONEPods:      tc.hbonePods,
				})
				checkResources(t, "proxy", res.Proxy)
				checkResources(t, "proxyless", res.Proxyless)
				imp := find[*endpointv3.ClusterLoadAssignment](res.Proxy, resource.EndpointType, xdsconv.ClusterName(80, "", xdsconv.ClusterSetHost("web", ns)))
				if got := endpointTunnels(t, imp); got != tc.wantImport {
					t.Errorf("import's endpoints\n got %q\nwant %q", got, tc.wantImport)
				}
				loc := find[*endpointv3.ClusterLoadAssignment](res.Proxy, resource.EndpointType, xdsconv.ClusterName(80, "", xdsconv.ServiceHost("web", ns)))
				if got := endpointTunnels(t, loc); got != tc.wantLocal {
					t.Errorf("Service's endpoints\n got %q\nwant %q", got, tc.wantLocal)
				}
			}
		})
	}
}

// TestHBONEThroughTheClusterSet follows an HBONE-capable pod from the
// exporting cluster to the importing cluster's EDS, through the pure parts
// of each step: west's export controller builds the record (BuildRecord:
// web-2 is labelled for HBONE, web-3's sidecar announced it); the hub
// copies each cluster's endpoints into the GlobalService as they are
// (federation/aggregate.Merge; controllers may not import federation, and
// its own tests check the copy); east's import controller splits them into
// slices (DesiredImport, DesiredSlices); east's translation marks them.
// A record from a newer agent with a tunnel this one does not know is
// translated as plain, without failing.
func TestHBONEThroughTheClusterSet(t *testing.T) {
	pod := func(i int) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.2.0.%d", i)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("web-%d", i)},
		}
	}
	westSlice := discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{pod(1), pod(2), pod(3), pod(4)},
	}
	westSvc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.7", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	export := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	labelled := map[string]bool{ns + "/web-2": true}
	announced := map[string]bool{ns + "/web-3": true}
	record := serviceexport.BuildRecord("west", export, westSvc, []discoveryv1.EndpointSlice{westSlice}, func(namespace, pod string) bool {
		return labelled[namespace+"/"+pod] || announced[namespace+"/"+pod]
	})

	// A newer agent's tunnel kind on web-4 (the API server would refuse
	// it; a reader must still not trip over it).
	record.EndpointSlices[0].Endpoints[3].Tunnel = "GENEVE"

	gs := &causewayv1alpha1.GlobalService{Spec: causewayv1alpha1.GlobalServiceSpec{
		Service:           record.Service,
		ServiceProperties: *record.ServiceProperties.DeepCopy(),
		Clusters:          []causewayv1alpha1.GlobalServiceCluster{{Name: "west", EndpointSlices: record.EndpointSlices}},
	}}
	si := serviceimport.DesiredImport(gs, netip.MustParseAddr("240.0.0.9"))
	eps := serviceimport.DesiredSlices(gs)
	var names []string
	for _, es := range eps {
		names = append(names, es.Name+"="+es.Labels[xdsconv.LabelTunnel])
	}
	if got, want := strings.Join(names, " "), "web.west.0= web.west.0.hbone=hbone"; got != want {
		t.Errorf("east's import slices %q, want %q", got, want)
	}

	res := translate.Translate(&translate.Inputs{ClusterName: "east", ServiceImports: []*mcsv1beta1.ServiceImport{si}, EndpointSlices: eps})
	checkResources(t, "proxy", res.Proxy)
	cla := find[*endpointv3.ClusterLoadAssignment](res.Proxy, resource.EndpointType, xdsconv.ClusterName(80, "", xdsconv.ClusterSetHost("web", ns)))
	want := "10.2.0.1:8080/west 10.2.0.2:8080/west+hbone 10.2.0.3:8080/west+hbone 10.2.0.4:8080/west"
	if got := endpointTunnels(t, cla); got != want {
		t.Errorf("east's EDS for web\n got %q\nwant %q", got, want)
	}
}
