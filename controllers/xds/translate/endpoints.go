package translate

import (
	"cmp"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// locality groups endpoints: one LocalityLbEndpoints per source cluster,
// region and zone.
type locality struct {
	cluster, region, zone string
}

type endpointAddr struct {
	addr netip.Addr
	port uint32
	// hbone: the endpoint's sidecar accepts HBONE (a local pod in
	// Inputs.HBONEPods, or an endpoint of an imported slice labelled
	// xdsconv.LabelTunnel=TunnelHBONE).
	hbone bool
}

// assignment builds the ClusterLoadAssignment of a port from the ready
// endpoints of the target's slices. The port is found in each slice by the
// service port's name.
//
// Localities: Locality{Region, Zone, SubZone: source cluster}. The sub-zone
// keeps localities of different clusters apart even when they share a
// region and zone (or have none): gRPC rejects two localities with the same
// identity at one priority. Priority 0 holds the local cluster's endpoints
// and 1 the other clusters'; when no endpoint is local the others take
// priority 0, because gRPC rejects priorities with a gap.
func (t *translator) assignment(p *targetPort, eps []*discoveryv1.EndpointSlice, imported bool) *endpointv3.ClusterLoadAssignment {
	groups := map[locality][]endpointAddr{}
	// seen finds an address:port already taken, by its place in groups.
	type place struct {
		l locality
		i int
	}
	seen := map[endpointAddr]place{}
	for _, es := range eps {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		number, ok := slicePort(es, p.name)
		if !ok {
			continue
		}
		loc := locality{cluster: t.in.ClusterName, region: t.in.Region}
		// An imported slice says whether its endpoints take HBONE by its
		// label (the agent keeps them in slices of their own); a local
		// slice's label means nothing: local pods are looked up.
		importedHBONE := false
		if imported {
			loc.cluster = es.Labels[mcsv1beta1.LabelSourceCluster]
			loc.region = es.Labels[corev1.LabelTopologyRegion]
			importedHBONE = es.Labels[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			// Addresses are fungible; consumers use the first.
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || a.Zone() != "" {
				continue
			}
			key := endpointAddr{addr: a.Unmap(), port: number}
			hbone := importedHBONE
			if !imported && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				ns := ep.TargetRef.Namespace
				if ns == "" {
					ns = es.Namespace
				}
				hbone = t.in.HBONEPods[ns+"/"+ep.TargetRef.Name]
			}
			if at, ok := seen[key]; ok {
				// gRPC rejects duplicate addresses. An endpoint in two
				// slices (an import's endpoint moving between its plain
				// and its HBONE slice) takes HBONE if either says so,
				// whatever the order of the slices.
				if hbone {
					groups[at.l][at.i].hbone = true
				}
				continue
			}
			l := loc
			if ep.Zone != nil {
				l.zone = *ep.Zone
			}
			seen[key] = place{l: l, i: len(groups[l])}
			key.hbone = hbone
			groups[l] = append(groups[l], key)
		}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: p.cluster}
	locs := make([]locality, 0, len(groups))
	hasLocal := false
	for l := range groups {
		locs = append(locs, l)
		hasLocal = hasLocal || l.cluster == t.in.ClusterName
	}
	slices.SortFunc(locs, func(a, b locality) int {
		// Local first, then by cluster, region and zone.
		if la, lb := a.cluster == t.in.ClusterName, b.cluster == t.in.ClusterName; la != lb {
			if la {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.cluster, b.cluster), cmp.Compare(a.region, b.region), cmp.Compare(a.zone, b.zone))
	})
	for _, l := range locs {
		addrs := groups[l]
		slices.SortFunc(addrs, func(a, b endpointAddr) int { return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.port, b.port)) })
		var priority uint32
		if hasLocal && l.cluster != t.in.ClusterName {
			priority = 1
		}
		lle := &endpointv3.LocalityLbEndpoints{
			Locality: &corev3.Locality{Region: l.region, Zone: l.zone, SubZone: l.cluster},
			Priority: priority,
			// gRPC ignores localities without a weight; weighting by the
			// endpoint count keeps the spread even across endpoints.
			LoadBalancingWeight: wrapperspb.UInt32(uint32(len(addrs))),
		}
		meta := clusterMetadata(l.cluster)
		var hboneMeta *corev3.Metadata
		for _, a := range addrs {
			meta := meta
			if a.hbone {
				if hboneMeta == nil {
					hboneMeta = clusterMetadata(l.cluster)
					hboneMeta.FilterMetadata[xdsconv.MetadataNamespace].Fields[xdsconv.MetadataTunnel] = structpb.NewStringValue(xdsconv.TunnelHBONE)
				}
				meta = hboneMeta
			}
			lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(a.addr.String(), a.port),
				}},
				Metadata:            meta,
				LoadBalancingWeight: wrapperspb.UInt32(1),
			})
		}
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	return cla
}

// slicePort finds the port of a slice with the service port's name.
func slicePort(es *discoveryv1.EndpointSlice, name string) (uint32, bool) {
	for _, p := range es.Ports {
		pname := ""
		if p.Name != nil {
			pname = *p.Name
		}
		if pname != name || p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		return uint32(*p.Port), true
	}
	return 0, false
}

// clusterMetadata is an endpoint's metadata naming its member cluster.
func clusterMetadata(cluster string) *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
			xdsconv.MetadataCluster: structpb.NewStringValue(cluster),
		}},
	}}
}

// socketAddress is a TCP address.
func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
