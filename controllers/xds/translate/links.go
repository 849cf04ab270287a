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

package translate

import (
	"net/netip"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// linkConnectTimeout bounds a link's connection setup to a peer gateway:
// across a WAN a QUIC or TLS handshake takes a few round trips of up to a
// few hundred milliseconds each.
const linkConnectTimeout = 5 * time.Second

// links builds a gateway's link clusters, one per peer of the plan (see
// xdsconv and the package documentation); nil without a plan. The plan
// should be valid (linkplan.Parse); of an invalid one, peers without a
// name or named twice and addresses that do not split are left out.
func links(plan *linkplan.Plan) Resources {
	out := Resources{resource.ClusterType: nil}
	if plan == nil {
		return out
	}
	seen := map[string]bool{}
	for _, peer := range plan.Peers {
		if peer.Cluster == "" || peer.Cluster == plan.Cluster || seen[peer.Cluster] {
			continue
		}
		seen[peer.Cluster] = true
		out[resource.ClusterType] = append(out[resource.ClusterType], linkCluster(peer))
	}
	sortByName(out[resource.ClusterType])
	return out
}

// linkCluster is the cluster of one peer: STATIC for an accepting link
// (no endpoints: the peer dials in) and for a dialling one whose
// addresses are all IPs, STRICT_DNS when one is a name; the addresses are
// endpoints in order, at priority = index, so the first is preferred and
// the others are fallbacks.
func linkCluster(peer linkplan.Peer) *clusterv3.Cluster {
	name := xdsconv.LinkClusterPrefix + peer.Cluster
	transport := peer.Transport
	if transport == "" {
		transport = causewayv1alpha1.GatewayTransportQUIC
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(linkConnectTimeout),
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
				xdsconv.MetadataLinkRole:      structpb.NewStringValue(string(peer.Role)),
				xdsconv.MetadataLinkTransport: structpb.NewStringValue(string(transport)),
				xdsconv.MetadataPeerCluster:   structpb.NewStringValue(peer.Cluster),
			}},
		}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name},
	}
	if peer.Role != linkplan.RoleDial {
		return c
	}
	var priority uint32
	for _, a := range peer.Addresses {
		host, port, err := linkplan.SplitAddress(a)
		if err != nil {
			continue
		}
		if _, err := netip.ParseAddr(host); err != nil {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		}
		c.LoadAssignment.Endpoints = append(c.LoadAssignment.Endpoints, &endpointv3.LocalityLbEndpoints{
			Priority: priority,
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}},
		})
		priority++
	}
	return c
}

// withLinks is base (a Proxy node's resources) with the link clusters
// added, sorted: what a Gateway node gets.
func withLinks(base, links Resources) Resources {
	out := make(Resources, len(base))
	for typ, rs := range base {
		out[typ] = rs
	}
	if extra := links[resource.ClusterType]; len(extra) > 0 {
		out[resource.ClusterType] = append(append(make([]cachetypes.Resource, 0, len(base[resource.ClusterType])+len(extra)), base[resource.ClusterType]...), extra...)
		sortByName(out[resource.ClusterType])
	}
	return out
}
