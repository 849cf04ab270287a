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

package apis_test

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// tunnelSlices is one group of endpoints, one of them HBONE-capable.
func tunnelSlices() []v1alpha1.ExportedEndpointSlice {
	return []v1alpha1.ExportedEndpointSlice{{
		AddressType: "IPv4",
		Ports:       []v1alpha1.EndpointPort{{Name: "http", Port: 8080}},
		Endpoints: []v1alpha1.ExportedEndpoint{
			{Addresses: []string{"10.0.0.1"}, TargetPod: "web-1", Tunnel: v1alpha1.EndpointTunnelHBONE},
			{Addresses: []string{"10.0.0.2"}, TargetPod: "web-2"},
		},
	}}
}

// checkTunnels fails unless slices still say which endpoint takes HBONE:
// an API server whose schema lacked the field would drop it silently.
func checkTunnels(t *testing.T, slices []v1alpha1.ExportedEndpointSlice) {
	t.Helper()
	if len(slices) != 1 || len(slices[0].Endpoints) != 2 {
		t.Fatalf("endpoint slices came back as %+v", slices)
	}
	if got := slices[0].Endpoints[0].Tunnel; got != v1alpha1.EndpointTunnelHBONE {
		t.Errorf("tunnel of the HBONE endpoint came back as %q, want HBONE", got)
	}
	if got := slices[0].Endpoints[1].Tunnel; got != "" {
		t.Errorf("tunnel of the plain endpoint came back as %q, want none", got)
	}
}

func TestExportRecordTunnelValidation(t *testing.T) {
	t.Run("an ExportRecord keeps its endpoints' tunnels", func(t *testing.T) {
		rec := &v1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "shop.web"},
			Spec: v1alpha1.ExportRecordSpec{
				Cluster:                 "east",
				Service:                 v1alpha1.ServiceRef{Namespace: "shop", Name: "web"},
				ExportCreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
				ServiceProperties:       v1alpha1.ServiceProperties{Type: v1alpha1.ServiceTypeClusterSetIP},
				EndpointSlices:          tunnelSlices(),
			},
		}
		mustAccept(t, rec)
		checkTunnels(t, rec.Spec.EndpointSlices)
	})
	t.Run("a GlobalService keeps its endpoints' tunnels", func(t *testing.T) {
		gs := &v1alpha1.GlobalService{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "shop.web"},
			Spec: v1alpha1.GlobalServiceSpec{
				Service:           v1alpha1.ServiceRef{Namespace: "shop", Name: "web"},
				ServiceProperties: v1alpha1.ServiceProperties{Type: v1alpha1.ServiceTypeClusterSetIP},
				Clusters:          []v1alpha1.GlobalServiceCluster{{Name: "east", EndpointSlices: tunnelSlices()}},
			},
		}
		mustAccept(t, gs)
		if len(gs.Spec.Clusters) != 1 {
			t.Fatalf("clusters came back as %+v", gs.Spec.Clusters)
		}
		checkTunnels(t, gs.Spec.Clusters[0].EndpointSlices)
	})

	const record = `{cluster: east, service: {namespace: shop, name: web}, exportCreationTimestamp: "2026-01-02T03:04:05Z", type: ClusterSetIP, endpointSlices: [{addressType: IPv4, endpoints: [%s]}]}`
	spec := func(endpoint string) string { return fmt.Sprintf(record, endpoint) }
	causewayCases(t, "ExportRecord", "shop.web", true, map[string]manifestCase{
		"HBONE endpoint": {spec: spec(`{addresses: [10.0.0.1], targetPod: web-1, tunnel: HBONE}`)},
		"no tunnel":      {spec: spec(`{addresses: [10.0.0.1]}`)},
		"lower-case hbone (the label's spelling, not the field's)": {
			spec:     spec(`{addresses: [10.0.0.1], tunnel: hbone}`),
			wantErrs: []string{`spec.endpointSlices[0].endpoints[0].tunnel: Unsupported value: "hbone"`},
		},
		"a tunnel this version does not know": {
			spec:     spec(`{addresses: [10.0.0.1], tunnel: GENEVE}`),
			wantErrs: []string{`spec.endpointSlices[0].endpoints[0].tunnel: Unsupported value: "GENEVE"`},
		},
	})
	const global = `{service: {namespace: shop, name: web}, type: ClusterSetIP, clusters: [{name: east, endpointSlices: [{addressType: IPv4, endpoints: [%s]}]}]}`
	causewayCases(t, "GlobalService", "shop.web", true, map[string]manifestCase{
		"HBONE endpoint in a GlobalService": {spec: fmt.Sprintf(global, `{addresses: [10.0.0.1], tunnel: HBONE}`)},
		"unknown tunnel": {
			spec:     fmt.Sprintf(global, `{addresses: [10.0.0.1], tunnel: Other}`),
			wantErrs: []string{`spec.clusters[0].endpointSlices[0].endpoints[0].tunnel: Unsupported value: "Other"`},
		},
	})
}
