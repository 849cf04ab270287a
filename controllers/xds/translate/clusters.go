package translate

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// connectTimeout bounds TCP connection setup to an endpoint: endpoints
// are in the cluster set's networks, so a second is generous, and a dead
// endpoint is given up quickly for another.
const connectTimeout = time.Second

// httpProtocolOptionsName is the key under which Envoy looks for upstream
// HTTP protocol options in typed_extension_protocol_options.
const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// cluster builds the EDS cluster of a target port for a kind of node.
func (t *translator) cluster(tg *target, p *targetPort, kind NodeKind) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 p.cluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if p.protocol == xdsconv.ProtocolHTTP2 || p.protocol == xdsconv.ProtocolGRPC {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			httpProtocolOptionsName: mustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	if tp := tg.policy; tp != nil {
		applyLoadBalancer(c, tp.Spec.LoadBalancer, kind)
		applyConnectionPool(c, tp.Spec.ConnectionPool)
		applyOutlierDetection(c, tp.Spec.OutlierDetection)
	}
	return c
}

// applyLoadBalancer sets the cluster's algorithm. gRPC implements neither
// RANDOM nor MAGLEV (it NACKs clusters that use them), so proxyless nodes
// get ROUND_ROBIN for Random — the same spread on average — and RING_HASH
// for Maglev — the same consistent-hash contract with a different table.
func applyLoadBalancer(c *clusterv3.Cluster, lb *causewayv1alpha1.LoadBalancer, kind NodeKind) {
	if lb == nil {
		return
	}
	switch lb.Algorithm {
	case causewayv1alpha1.LoadBalancerLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(2)}}
	case causewayv1alpha1.LoadBalancerRandom:
		if kind == Proxy {
			c.LbPolicy = clusterv3.Cluster_RANDOM
		}
	case causewayv1alpha1.LoadBalancerMaglev:
		if kind == Proxy {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			return
		}
		fallthrough
	case causewayv1alpha1.LoadBalancerRingHash:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
			HashFunction:    clusterv3.Cluster_RingHashLbConfig_XX_HASH,
			MinimumRingSize: wrapperspb.UInt64(1024),
		}}
	}
}

// applyConnectionPool sets circuit breakers at the default priority.
func applyConnectionPool(c *clusterv3.Cluster, cp *causewayv1alpha1.ConnectionPool) {
	if cp == nil {
		return
	}
	th := &clusterv3.CircuitBreakers_Thresholds{Priority: corev3.RoutingPriority_DEFAULT}
	set := false
	for _, f := range []struct {
		v   *int32
		dst **wrapperspb.UInt32Value
	}{{cp.MaxConnections, &th.MaxConnections}, {cp.MaxPendingRequests, &th.MaxPendingRequests}, {cp.MaxRequests, &th.MaxRequests}, {cp.MaxRetries, &th.MaxRetries}} {
		if f.v != nil && *f.v > 0 {
			*f.dst = wrapperspb.UInt32(uint32(*f.v))
			set = true
		}
	}
	if set {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}
}

// applyOutlierDetection sets outlier detection; unset fields keep the data
// plane's defaults.
func applyOutlierDetection(c *clusterv3.Cluster, od *causewayv1alpha1.OutlierDetection) {
	if od == nil {
		return
	}
	o := &clusterv3.OutlierDetection{}
	if od.Consecutive5xx != nil && *od.Consecutive5xx > 0 {
		o.Consecutive_5Xx = wrapperspb.UInt32(uint32(*od.Consecutive5xx))
	}
	if od.Interval != nil {
		o.Interval = durationpb.New(od.Interval.Duration)
	}
	if od.BaseEjectionTime != nil {
		o.BaseEjectionTime = durationpb.New(od.BaseEjectionTime.Duration)
	}
	if od.MaxEjectionPercent != nil {
		o.MaxEjectionPercent = wrapperspb.UInt32(uint32(*od.MaxEjectionPercent))
	}
	c.OutlierDetection = o
}

// passthroughCluster sends a connection to its original destination.
func passthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 xdsconv.PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
	}
}

// blackHoleCluster has no endpoints: what is sent there fails.
func blackHoleCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 xdsconv.BlackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
	}
}

// adsConfigSource says "over the same ADS stream".
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// mustAny packs a message deterministically, so equal configuration
// always has equal bytes (and equal snapshot versions).
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		// Only a message that is not a valid proto fails, a programming
		// error.
		panic(fmt.Sprintf("pack %T: %v", m, err))
	}
	return a
}
