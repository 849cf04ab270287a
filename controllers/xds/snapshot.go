package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// snapshotTypes are the types a snapshot holds, in a fixed order.
var snapshotTypes = []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// indexed is one kind's resources with a content hash per resource, so
// per-type versions of any subset are cheap to compute.
type indexed struct {
	resources translate.Resources
	// hashes holds each resource's hash, by type and name.
	hashes map[resource.Type]map[string][sha256.Size]byte
	// clustersOf holds, for proxyless API listeners, the clusters their
	// routes send to, as gRPC subscribes to them.
	clustersOf map[string][]string
}

// index hashes every resource (deterministic marshalling) and, for
// proxyless resources, records each listener's clusters.
func index(rs translate.Resources) (*indexed, error) {
	ix := &indexed{resources: rs, hashes: map[resource.Type]map[string][sha256.Size]byte{}, clustersOf: map[string][]string{}}
	opts := proto.MarshalOptions{Deterministic: true}
	for _, typ := range snapshotTypes {
		m := make(map[string][sha256.Size]byte, len(rs[typ]))
		for _, r := range rs[typ] {
			b, err := opts.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("marshal %s %s: %w", typ, cachev3.GetResourceName(r), err)
			}
			m[cachev3.GetResourceName(r)] = sha256.Sum256(b)
			if l, ok := r.(*listenerv3.Listener); ok && l.GetApiListener() != nil {
				cs, err := apiListenerClusters(l)
				if err != nil {
					return nil, err
				}
				ix.clustersOf[l.Name] = cs
			}
		}
		ix.hashes[typ] = m
	}
	return ix, nil
}

// apiListenerClusters lists the clusters an API listener's inline routes
// use, the way gRPC does: routes matching query parameters are ignored,
// and only cluster and weighted_clusters actions (weight above 0) count.
func apiListenerClusters(l *listenerv3.Listener) ([]string, error) {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	var out []string
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if len(r.GetMatch().GetQueryParameters()) > 0 {
				continue
			}
			switch cs := r.GetRoute().GetClusterSpecifier().(type) {
			case *routev3.RouteAction_Cluster:
				out = append(out, cs.Cluster)
			case *routev3.RouteAction_WeightedClusters:
				for _, c := range cs.WeightedClusters.GetClusters() {
					if c.GetWeight().GetValue() > 0 {
						out = append(out, c.Name)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// subscription is what a proxyless node asked for: listeners by name, or
// all of them, and the clusters it currently subscribes to.
type subscription struct {
	wildcard  bool
	listeners map[string]bool
	clusters  map[string]bool
}

// subset is the part of the proxyless resources a subscription reaches:
// the listeners it names, the clusters their routes use and those
// clusters' endpoints. A node's snapshot versions then change only when
// what it uses changes, so a change to another service pushes it nothing.
//
// Clusters the node still subscribes to stay in the subset while they
// exist, even when no route uses them any more: the cache sends clusters
// before listeners, and dropping one at once would delete it under the
// client's old routes for a moment (make before break). The node drops
// it from its requests once it has the new routes, and the next subset
// leaves it out.
func (ix *indexed) subset(sub subscription) translate.Resources {
	if sub.wildcard {
		return ix.resources
	}
	out := translate.Resources{}
	clusters := map[string]bool{}
	for _, r := range ix.resources[resource.ListenerType] {
		name := cachev3.GetResourceName(r)
		if !sub.listeners[name] {
			continue
		}
		out[resource.ListenerType] = append(out[resource.ListenerType], r)
		for _, c := range ix.clustersOf[name] {
			clusters[c] = true
		}
	}
	maps.Copy(clusters, sub.clusters)
	eds := map[string]bool{}
	for _, r := range ix.resources[resource.ClusterType] {
		c := r.(*clusterv3.Cluster)
		if !clusters[c.Name] {
			continue
		}
		out[resource.ClusterType] = append(out[resource.ClusterType], r)
		if c.GetType() == clusterv3.Cluster_EDS {
			eds[c.Name] = true
		}
	}
	for _, r := range ix.resources[resource.EndpointType] {
		if eds[cachev3.GetResourceName(r)] {
			out[resource.EndpointType] = append(out[resource.EndpointType], r)
		}
	}
	return out
}

// snapshot builds a snapshot of resources (some or all of ix) with a
// content-hash version per type: a type whose resources did not change
// keeps its version, so the cache does not push it again.
func (ix *indexed) snapshot(rs translate.Resources) *cachev3.Snapshot {
	snap := &cachev3.Snapshot{}
	for _, typ := range snapshotTypes {
		h := sha256.New()
		for _, r := range rs[typ] {
			name := cachev3.GetResourceName(r)
			sum := ix.hashes[typ][name]
			h.Write([]byte(name))
			h.Write([]byte{0})
			h.Write(sum[:])
		}
		version := hex.EncodeToString(h.Sum(nil)[:8])
		snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources(version, slices.Clone(rs[typ]))
	}
	return snap
}

// withInbound returns base (the snapshot of all of ix) with a sidecar's
// inbound listener and clusters added (see withExtra).
func (ix *indexed) withInbound(base *cachev3.Snapshot, in translate.Resources) (*cachev3.Snapshot, error) {
	return ix.withExtra(base, in, "inbound")
}

// withExtra returns base with more listeners and clusters added: a
// sidecar's inbound ones, or a gateway's links. Only the listener and
// cluster types get new resource maps and versions; the others are
// base's, shared. The added resources must be self-contained (inline
// routes, no EDS clusters), so that adding them keeps base consistent; a
// name that base already has is an error. what names them in errors.
func (ix *indexed) withExtra(base *cachev3.Snapshot, in translate.Resources, what string) (*cachev3.Snapshot, error) {
	out := &cachev3.Snapshot{Resources: base.Resources}
	var self [types.UnknownType]cachev3.Resources
	opts := proto.MarshalOptions{Deterministic: true}
	for _, typ := range snapshotTypes {
		if len(in[typ]) == 0 {
			continue
		}
		if typ != resource.ListenerType && typ != resource.ClusterType {
			return nil, fmt.Errorf("%s %s resources are not supported", what, typ)
		}
		i := cachev3.GetResponseType(typ)
		items := make(map[string]types.ResourceWithTTL, len(base.Resources[i].Items)+len(in[typ]))
		maps.Copy(items, base.Resources[i].Items)
		self[i] = cachev3.NewResources("", in[typ])
		h := sha256.New()
		h.Write([]byte(base.Resources[i].Version))
		for _, r := range in[typ] {
			name := cachev3.GetResourceName(r)
			if _, dup := items[name]; dup {
				return nil, fmt.Errorf("%s %s %q is also an outbound one", what, typ, name)
			}
			b, err := opts.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("marshal %s %s: %w", typ, name, err)
			}
			sum := sha256.Sum256(b)
			h.Write([]byte(name))
			h.Write([]byte{0})
			h.Write(sum[:])
			items[name] = types.ResourceWithTTL{Resource: r}
		}
		out.Resources[i] = cachev3.Resources{Version: hex.EncodeToString(h.Sum(nil)[:8]), Items: items}
	}
	for typ, names := range cachev3.GetAllResourceReferences(self) {
		if len(names) > 0 {
			return nil, fmt.Errorf("%s resources refer to %s resources %v; they must be self-contained", what, typ, slices.Sorted(maps.Keys(names)))
		}
	}
	return out, nil
}
