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

package linkplan

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	wire "github.com/causeway-mesh/causeway/internal/linkplan"
)

// The plan's format is internal/linkplan's, shared with the agent (which
// may not import federation/): these are its names here.
type (
	// Plan is one member's links.
	Plan = wire.Plan
	// Peer is one link of a plan.
	Peer = wire.Peer
	// Role is a member's part in a link.
	Role = wire.Role
)

// Roles, and where the hub writes a member's plan (see internal/linkplan).
const (
	RoleDial      = wire.RoleDial
	RoleAccept    = wire.RoleAccept
	ConfigMapName = wire.ConfigMapName
	ConfigMapKey  = wire.ConfigMapKey
)

// Parse decodes and validates a plan (internal/linkplan.Parse).
func Parse(data []byte) (Plan, error) { return wire.Parse(data) }

// endpoint is what a member offers its peers: where to dial it and how.
type endpoint struct {
	addresses []string
	transport causewayv1alpha1.GatewayTransport
}

// gatewayOf normalises a member's spec.gateway; ok is false when the
// member has no gateway or no usable address.
func gatewayOf(mc *causewayv1alpha1.MemberCluster) (endpoint, bool) {
	gw := mc.Spec.Gateway
	if gw == nil {
		return endpoint{}, false
	}
	var e endpoint
	for _, a := range gw.Addresses {
		addr, ok := normalise(a)
		if ok && !slices.Contains(e.addresses, addr) {
			e.addresses = append(e.addresses, addr)
		}
		if len(e.addresses) == wire.MaxAddresses {
			break
		}
	}
	if len(e.addresses) == 0 {
		return endpoint{}, false
	}
	switch gw.Transport {
	case causewayv1alpha1.GatewayTransportTCP:
		e.transport = causewayv1alpha1.GatewayTransportTCP
	default:
		// Unset (the CRD defaults it) or unknown (the CRD admits none):
		// QUIC, which falls back to TCP by itself.
		e.transport = causewayv1alpha1.GatewayTransportQUIC
	}
	return e, true
}

// normalise turns a gateway address into host:port, or reports false for
// one that does not parse.
func normalise(a causewayv1alpha1.GatewayAddress) (string, bool) {
	host, port, err := a.HostPort(causewayv1alpha1.DefaultGatewayPort)
	if err != nil {
		return "", false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", false
		}
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if _, _, err := wire.SplitAddress(addr); err != nil {
		return "", false
	}
	return addr, true
}

// gateways indexes the live members: their names, sorted, and their
// gateways (nil for none). Members being deleted or without a valid name
// are left out; of two with one name (the API server allows none), the
// last counts.
func gateways(members []causewayv1alpha1.MemberCluster) (names []string, gws map[string]*endpoint) {
	gws = map[string]*endpoint{}
	for i := range members {
		mc := &members[i]
		if mc.DeletionTimestamp != nil || len(validation.IsDNS1123Label(mc.Name)) > 0 {
			continue
		}
		if _, dup := gws[mc.Name]; !dup {
			names = append(names, mc.Name)
		}
		gws[mc.Name] = nil
		if e, ok := gatewayOf(mc); ok {
			gws[mc.Name] = &e
		}
	}
	slices.Sort(names)
	return names, gws
}

// link decides the link between two members, first < second by name: who
// dials whom, or ok false for none.
func link(first, second string, gws map[string]*endpoint) (dialer, acceptor string, ok bool) {
	switch {
	case gws[second] != nil:
		// Both have a gateway (the first dials) or only the second.
		return first, second, true
	case gws[first] != nil:
		return second, first, true
	}
	return "", "", false
}

// entry is self's entry for its link with peer.
func entry(self, dialer, acceptor string, gws map[string]*endpoint) Peer {
	e := gws[acceptor]
	if self == dialer {
		return Peer{Cluster: acceptor, Role: RoleDial, Addresses: slices.Clone(e.addresses), Transport: e.transport}
	}
	return Peer{Cluster: dialer, Role: RoleAccept, Transport: e.transport}
}

// Compute decides every member's plan (see the package documentation for
// the rules). It is pure and deterministic: the result depends only on
// the members' names, gateways and deletion, not on their order. Members
// without a valid name or being deleted get no plan and no links; every
// other member gets a plan, with no peers if it has no link. If two
// members have the same name (the API server allows none), the last one
// counts.
func Compute(members []causewayv1alpha1.MemberCluster) map[string]Plan {
	names, gws := gateways(members)
	plans := make(map[string]Plan, len(names))
	for _, n := range names {
		plans[n] = Plan{Cluster: n, Peers: []Peer{}}
	}
	for i, first := range names {
		for _, second := range names[i+1:] {
			dialer, acceptor, ok := link(first, second, gws)
			if !ok {
				continue
			}
			d, a := plans[dialer], plans[acceptor]
			d.Peers = append(d.Peers, entry(dialer, dialer, acceptor, gws))
			a.Peers = append(a.Peers, entry(acceptor, dialer, acceptor, gws))
			plans[dialer], plans[acceptor] = d, a
		}
	}
	for n, p := range plans {
		slices.SortFunc(p.Peers, func(a, b Peer) int { return cmp.Compare(a.Cluster, b.Cluster) })
		plans[n] = p
	}
	return plans
}

// ComputeFor is Compute(members)[cluster] in time linear in the number
// of members, for a reconciler that writes one member's plan at a time.
// ok is false when cluster gets no plan.
func ComputeFor(members []causewayv1alpha1.MemberCluster, cluster string) (plan Plan, ok bool) {
	names, gws := gateways(members)
	if _, ok := gws[cluster]; !ok {
		return Plan{}, false
	}
	plan = Plan{Cluster: cluster, Peers: []Peer{}}
	for _, other := range names {
		if other == cluster {
			continue
		}
		first, second := cluster, other
		if other < cluster {
			first, second = other, cluster
		}
		if dialer, acceptor, ok := link(first, second, gws); ok {
			plan.Peers = append(plan.Peers, entry(cluster, dialer, acceptor, gws))
		}
	}
	return plan, true
}
