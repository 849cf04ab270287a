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

package aggregate_test

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/aggregate"
)

// withTunnel sets the tunnel of the record's first endpoint.
func withTunnel(tunnel v1alpha1.EndpointTunnel) func(*v1alpha1.ExportRecordSpec) {
	return func(r *v1alpha1.ExportRecordSpec) { r.EndpointSlices[0].Endpoints[0].Tunnel = tunnel }
}

// TestMergeKeepsEndpointTunnels: each cluster's endpoints reach the
// GlobalService as the record has them, tunnel included — also a tunnel
// this version does not know (a newer agent's, which the hub passes on and
// importers ignore). A tunnel is no property of the service: exports that
// differ only in it do not conflict. A withdrawn cluster has no endpoints.
func TestMergeKeepsEndpointTunnels(t *testing.T) {
	records := []v1alpha1.ExportRecordSpec{
		rec("a", 0, withTunnel(v1alpha1.EndpointTunnelHBONE)),
		rec("b", 1),
		rec("c", 2, withTunnel("GENEVE")),
	}
	spec, verdicts, ok := aggregate.Merge(records, defaultMembers)
	if !ok {
		t.Fatal("ok = false, want true")
	}
	want := []v1alpha1.EndpointTunnel{v1alpha1.EndpointTunnelHBONE, "", "GENEVE"}
	for i, c := range spec.Clusters {
		if got := c.EndpointSlices[0].Endpoints[0].Tunnel; got != want[i] {
			t.Errorf("cluster %s: tunnel %q, want %q", c.Name, got, want[i])
		}
		if !reflect.DeepEqual(c.EndpointSlices, records[i].EndpointSlices) {
			t.Errorf("cluster %s: endpoints\n got %+v\nwant %+v", c.Name, c.EndpointSlices, records[i].EndpointSlices)
		}
	}
	for cluster, v := range verdicts {
		if len(v.Reasons) != 0 {
			t.Errorf("%s: conflict %v, want none", cluster, v.Reasons)
		}
	}

	members := map[string]aggregate.Member{"a": {Healthy: false}}
	spec, _, _ = aggregate.Merge(records[:1], members)
	if c := spec.Clusters[0]; !c.Withdrawn || c.EndpointSlices != nil {
		t.Errorf("unhealthy cluster: %+v, want withdrawn without endpoints", c)
	}
}

// TestEqualSpecSeesTunnels: a tunnel that changes is a change, so the hub
// rewrites the GlobalService and importers learn of it.
func TestEqualSpecSeesTunnels(t *testing.T) {
	plain, _, _ := aggregate.Merge([]v1alpha1.ExportRecordSpec{rec("a", 0)}, defaultMembers)
	hbone, _, _ := aggregate.Merge([]v1alpha1.ExportRecordSpec{rec("a", 0, withTunnel(v1alpha1.EndpointTunnelHBONE))}, defaultMembers)
	if aggregate.EqualSpec(&plain, &hbone) {
		t.Error("EqualSpec says specs that differ in an endpoint's tunnel are equal")
	}
	again, _, _ := aggregate.Merge([]v1alpha1.ExportRecordSpec{rec("a", 0, withTunnel(v1alpha1.EndpointTunnelHBONE))}, defaultMembers)
	if !aggregate.EqualSpec(&hbone, &again) {
		t.Error("EqualSpec says equal merges differ")
	}
}
