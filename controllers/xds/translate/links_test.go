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
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// linkSummary is what a test checks of a link cluster.
type linkSummary struct {
	typ                   clusterv3.Cluster_DiscoveryType
	role, transport, peer string
	endpoints             []string // host:port by priority
	priorities            []uint32
}

func summarise(t *testing.T, c *clusterv3.Cluster) linkSummary {
	t.Helper()
	md := c.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()
	s := linkSummary{
		typ:       c.GetType(),
		role:      md[xdsconv.MetadataLinkRole].GetStringValue(),
		transport: md[xdsconv.MetadataLinkTransport].GetStringValue(),
		peer:      md[xdsconv.MetadataPeerCluster].GetStringValue(),
	}
	if c.GetEdsClusterConfig() != nil {
		t.Errorf("%s: a link cluster must not use EDS", c.Name)
	}
	if c.GetLoadAssignment().GetClusterName() != c.Name {
		t.Errorf("%s: load_assignment.cluster_name %q", c.Name, c.GetLoadAssignment().GetClusterName())
	}
	for _, l := range c.GetLoadAssignment().GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			s.endpoints = append(s.endpoints, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			s.priorities = append(s.priorities, l.GetPriority())
		}
	}
	return s
}

// TestGatewayLinks checks what a Gateway node gets: exactly the Proxy
// resources plus one cluster per peer, named, typed and labelled as the
// xdsconv contract says, every resource valid; and that a Proxy or
// proxyless node gets none of them.
func TestGatewayLinks(t *testing.T) {
	static, dns := clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS
	tests := map[string]struct {
		plan *linkplan.Plan
		want map[string]linkSummary
	}{
		"no plan: no links":    {want: map[string]linkSummary{}},
		"a plan without peers": {plan: &linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{}}, want: map[string]linkSummary{}},
		"dial by IPs, dial by name, accept": {
			plan: &linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{
				{Cluster: "a", Role: linkplan.RoleDial, Addresses: []string{"10.255.1.2:15443", "[2001:db8::2]:15443", "10.255.1.3:9443"}, Transport: "QUIC"},
				{Cluster: "c", Role: linkplan.RoleDial, Addresses: []string{"10.255.3.2:15443", "gw.c.example:443"}, Transport: "TCP"},
				{Cluster: "d", Role: linkplan.RoleAccept, Transport: "TCP"},
				{Cluster: "e", Role: linkplan.RoleAccept},
			}},
			want: map[string]linkSummary{
				"causeway-link|a": {typ: static, role: "dial", transport: "QUIC", peer: "a",
					endpoints: []string{"10.255.1.2:15443", "[2001:db8::2]:15443", "10.255.1.3:9443"}, priorities: []uint32{0, 1, 2}},
				"causeway-link|c": {typ: dns, role: "dial", transport: "TCP", peer: "c",
					endpoints: []string{"10.255.3.2:15443", "gw.c.example:443"}, priorities: []uint32{0, 1}},
				"causeway-link|d": {typ: static, role: "accept", transport: "TCP", peer: "d"},
				// An accept entry without a transport: QUIC, the default.
				"causeway-link|e": {typ: static, role: "accept", transport: "QUIC", peer: "e"},
			},
		},
		"an invalid plan: a peer twice, itself, no name, a bad address": {
			plan: &linkplan.Plan{Cluster: "b", Peers: []linkplan.Peer{
				{Cluster: "a", Role: linkplan.RoleDial, Addresses: []string{"not an address", "10.0.0.1:1"}, Transport: "QUIC"},
				{Cluster: "a", Role: linkplan.RoleAccept},
				{Cluster: "b", Role: linkplan.RoleAccept},
				{Cluster: "", Role: linkplan.RoleAccept},
			}},
			want: map[string]linkSummary{
				"causeway-link|a": {typ: static, role: "dial", transport: "QUIC", peer: "a", endpoints: []string{"10.0.0.1:1"}, priorities: []uint32{0}},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := webInputs()
			in.LinkPlan = tc.plan
			res := translate.Translate(in)
			gw := res.Resources(translate.Gateway)
			checkResources(t, "gateway", gw)
			checkResources(t, "links", res.Links)

			got := map[string]linkSummary{}
			for _, r := range res.Links[resource.ClusterType] {
				c := r.(*clusterv3.Cluster)
				got[c.Name] = summarise(t, c)
			}
			if len(got) != len(tc.want) {
				t.Errorf("link clusters %v, want %d", slices.Sorted(mapKeys(got)), len(tc.want))
			}
			for name, want := range tc.want {
				g, ok := got[name]
				if !ok {
					t.Errorf("no cluster %s", name)
					continue
				}
				if g.typ != want.typ || g.role != want.role || g.transport != want.transport || g.peer != want.peer ||
					!slices.Equal(g.endpoints, want.endpoints) || !slices.Equal(g.priorities, want.priorities) {
					t.Errorf("%s = %+v, want %+v", name, g, want)
				}
			}

			// The gateway's resources are the proxy's plus the links.
			for _, typ := range typeURLs {
				var want []string
				for _, r := range res.Proxy[typ] {
					want = append(want, cachev3.GetResourceName(r))
				}
				if typ == resource.ClusterType {
					for _, r := range res.Links[typ] {
						want = append(want, cachev3.GetResourceName(r))
					}
				}
				slices.Sort(want)
				var names []string
				for _, r := range gw[typ] {
					names = append(names, cachev3.GetResourceName(r))
				}
				if !slices.Equal(names, want) {
					t.Errorf("gateway %s = %v, want %v", typ, names, want)
				}
			}
			for kind, rs := range map[string]translate.Resources{"proxy": res.Proxy, "proxyless": res.Proxyless} {
				for _, r := range rs[resource.ClusterType] {
					if n := cachev3.GetResourceName(r); strings.HasPrefix(n, xdsconv.LinkClusterPrefix) {
						t.Errorf("%s node gets link cluster %s", kind, n)
					}
				}
			}
			if res.Resources(translate.Proxy)[resource.ClusterType] == nil || len(res.Resources(translate.Proxyless)) == 0 {
				t.Error("Resources(Proxy/Proxyless) are empty")
			}
		})
	}
}

func TestNodeKindString(t *testing.T) {
	for kind, want := range map[translate.NodeKind]string{translate.Proxy: "proxy", translate.Proxyless: "proxyless", translate.Gateway: "gateway"} {
		if got := kind.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", kind, got, want)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
