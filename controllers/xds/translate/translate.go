package translate

import (
	"cmp"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/linkplan"
)

// ControllerName is the Gateway API controller name under which the agent
// reports route status (status.parents[].controllerName).
const ControllerName gatewayv1.GatewayController = "causeway.dev/agent"

// Inputs is everything a translation reads. Translate never modifies it.
// Result.Inbound keeps references to its Services and policies (the
// informer cache's objects, which are never modified in place); nothing
// else in the Result does.
type Inputs struct {
	// ClusterName is the name of the member cluster the agent runs in:
	// endpoints of this cluster get priority 0.
	ClusterName string
	// Region and Zone of the local cluster, optional. Region is the
	// locality region of the local Services' endpoints (their zones come
	// from the EndpointSlices).
	Region, Zone string

	// Services and their EndpointSlices (label kubernetes.io/service-name).
	Services []*corev1.Service
	// EndpointSlices are the cluster's slices, local and imported
	// (labels multicluster.kubernetes.io/service-name and
	// multicluster.kubernetes.io/source-cluster; topology.kubernetes.io/region
	// when the source cluster has a region).
	EndpointSlices []*discoveryv1.EndpointSlice
	// ServiceImports of type ClusterSetIP are translated; Headless ones are
	// not yet.
	ServiceImports []*mcsv1beta1.ServiceImport

	// HTTPRoutes and GRPCRoutes attach to Services or ServiceImports
	// (GAMMA): a parentRef of group "" and kind Service, or of group
	// multicluster.x-k8s.io and kind ServiceImport, in the route's
	// namespace.
	HTTPRoutes []*gatewayv1.HTTPRoute
	GRPCRoutes []*gatewayv1.GRPCRoute

	// TrafficPolicies shape traffic to their target.
	TrafficPolicies []*causewayv1alpha1.TrafficPolicy

	// AuthorizationPolicies and RequestAuthentications protect the
	// workloads of sidecars (Result.Inbound).
	AuthorizationPolicies  []*causewayv1alpha1.AuthorizationPolicy
	RequestAuthentications []*causewayv1alpha1.RequestAuthentication

	// HBONEPods are the local pods ("namespace/name") whose sidecars accept
	// HBONE: connected sidecars that said so on an authenticated stream
	// (xdsconv.NodeMetaHBONE), and pods labelled xdsconv.LabelTunnel. Their
	// endpoints carry metadata tunnel=hbone, so proxies reach them through
	// a tunnel.
	HBONEPods map[string]bool

	// MTLSMode is the mesh's mTLS mode (the MeshConfig's spec.mtls.mode):
	// xdsconv.MTLSStrict (also when empty) or xdsconv.MTLSPermissive. It
	// goes to sidecars as metadata of their inbound listener.
	MTLSMode string

	// RootNamespace is the namespace whose AuthorizationPolicies and
	// RequestAuthentications without a targetRef apply to every workload;
	// causewayv1alpha1.SystemNamespace when empty.
	RootNamespace string

	// LinkPlan is the member's link plan (internal/linkplan), validated:
	// a Gateway node gets one cluster per peer. Nil: no links.
	LinkPlan *linkplan.Plan
}

// NodeKind is the kind of xDS client a set of resources is for.
type NodeKind int

const (
	// Proxy is causeway-proxy or Envoy: it gets listeners on service
	// addresses, route configurations by RDS, clusters and endpoints.
	Proxy NodeKind = iota
	// Proxyless is a gRPC client with an xDS resolver: it gets API
	// listeners named after the service host and port, with the route
	// configuration inline, and only what gRPC supports.
	Proxyless
	// Gateway is the member's east-west gateway (causeway-proxy
	// --mode=gateway): everything a Proxy gets, and a cluster per peer of
	// the link plan (Result.Links).
	Gateway
)

// String returns "proxy", "proxyless" or "gateway".
func (k NodeKind) String() string {
	switch k {
	case Proxyless:
		return "proxyless"
	case Gateway:
		return "gateway"
	}
	return "proxy"
}

// Resources are xDS resources by type URL, each list sorted by resource
// name, ready for go-control-plane's cache.NewSnapshot. The resources are
// shared between results and nodes and must not be modified.
type Resources map[resource.Type][]cachetypes.Resource

// PolicyStatus is the status a TrafficPolicy should have. Conditions carry
// no LastTransitionTime: the writer sets it when a condition changes.
type PolicyStatus struct {
	ObservedGeneration int64
	Conditions         []metav1.Condition
}

// Result is the outcome of a translation.
type Result struct {
	// Proxy and Proxyless are the resources of each kind of node.
	Proxy, Proxyless Resources

	// Links are what a Gateway node gets on top of Proxy: the clusters of
	// its links, xdsconv.LinkClusterPrefix + peer, self-contained (STATIC
	// or STRICT_DNS, no EDS).
	Links Resources

	// HTTPRoutes and GRPCRoutes hold, for every route with at least one
	// parentRef to a Service or ServiceImport, this controller's
	// status.parents entries, in the order of spec.parentRefs. Routes
	// without such a parentRef are absent: the writer removes any entry of
	// ours they still carry. Conditions carry no LastTransitionTime.
	HTTPRoutes map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus
	GRPCRoutes map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus

	// TrafficPolicies holds the status of every TrafficPolicy.
	TrafficPolicies map[ktypes.NamespacedName]PolicyStatus

	// AuthorizationPolicies and RequestAuthentications hold the status of
	// every one of them.
	AuthorizationPolicies  map[ktypes.NamespacedName]PolicyStatus
	RequestAuthentications map[ktypes.NamespacedName]PolicyStatus

	// Inbound builds the inbound resources of each sidecar's pod, which a
	// sidecar gets on top of Proxy.
	Inbound *Inbound
}

// Translate turns the inputs into xDS resources for both kinds of node and
// the status of every route and TrafficPolicy. It is a pure function of
// its inputs: the same inputs give the same, sorted, output.
func Translate(in *Inputs) *Result {
	t := newTranslator(in)
	t.collectTargets()
	t.resolvePolicies()
	t.attachRoutes()
	authz := t.resolveAuthorizationPolicies()
	authn := t.resolveRequestAuthentications()
	res := &Result{
		Proxy:                  t.build(Proxy),
		Proxyless:              t.build(Proxyless),
		HTTPRoutes:             t.httpStatus,
		GRPCRoutes:             t.grpcStatus,
		TrafficPolicies:        t.policyStatus,
		AuthorizationPolicies:  t.authzStatus,
		RequestAuthentications: t.authnStatus,
		Inbound:                newInbound(t.in.Services, authz, authn, t.in.MTLSMode),
		Links:                  links(t.in.LinkPlan),
	}
	return res
}

// Resources returns everything a kind of node gets (for a Gateway, Proxy
// and Links merged, sorted; a sidecar also gets Inbound.For its pod).
func (r *Result) Resources(kind NodeKind) Resources {
	switch kind {
	case Proxyless:
		return r.Proxyless
	case Gateway:
		return withLinks(r.Proxy, r.Links)
	}
	return r.Proxy
}

// translator holds the state of one translation.
type translator struct {
	in *Inputs

	// targets are the translated Services and ServiceImports, sorted by
	// host; byKey finds them by kind, namespace and name.
	targets []*target
	byKey   map[targetKey]*target
	// skipped are Services and ServiceImports that exist but are not
	// translated, with the reason, for status messages.
	skipped map[targetKey]string

	// localSlices and importSlices index EndpointSlices by namespace and
	// service name.
	localSlices, importSlices map[ktypes.NamespacedName][]*discoveryv1.EndpointSlice

	// rendered memoises the routes of a port for a kind of node.
	rendered map[routesKey][]*routev3.Route

	// allServices and allImports index every Service and ServiceImport,
	// translated or not, for the targets of authorization policies.
	allServices map[ktypes.NamespacedName]*corev1.Service
	allImports  map[ktypes.NamespacedName]bool

	httpStatus   map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus
	grpcStatus   map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus
	policyStatus map[ktypes.NamespacedName]PolicyStatus
	authzStatus  map[ktypes.NamespacedName]PolicyStatus
	authnStatus  map[ktypes.NamespacedName]PolicyStatus
}

func newTranslator(in *Inputs) *translator {
	t := &translator{
		in:           in,
		byKey:        map[targetKey]*target{},
		skipped:      map[targetKey]string{},
		localSlices:  map[ktypes.NamespacedName][]*discoveryv1.EndpointSlice{},
		importSlices: map[ktypes.NamespacedName][]*discoveryv1.EndpointSlice{},
		rendered:     map[routesKey][]*routev3.Route{},
		allServices:  make(map[ktypes.NamespacedName]*corev1.Service, len(in.Services)),
		allImports:   make(map[ktypes.NamespacedName]bool, len(in.ServiceImports)),
		httpStatus:   map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus{},
		grpcStatus:   map[ktypes.NamespacedName][]gatewayv1.RouteParentStatus{},
		policyStatus: map[ktypes.NamespacedName]PolicyStatus{},
		authzStatus:  map[ktypes.NamespacedName]PolicyStatus{},
		authnStatus:  map[ktypes.NamespacedName]PolicyStatus{},
	}
	for _, svc := range in.Services {
		t.allServices[ktypes.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = svc
	}
	for _, si := range in.ServiceImports {
		t.allImports[ktypes.NamespacedName{Namespace: si.Namespace, Name: si.Name}] = true
	}
	return t
}

// build renders every resource for one kind of node.
func (t *translator) build(kind NodeKind) Resources {
	out := Resources{
		resource.ClusterType:  nil,
		resource.EndpointType: nil,
		resource.ListenerType: nil,
		resource.RouteType:    nil,
	}
	for _, tg := range t.targets {
		for _, p := range tg.ports {
			if kind == Proxyless && !p.protocol.IsHTTP() {
				continue
			}
			out[resource.ClusterType] = append(out[resource.ClusterType], t.cluster(tg, p, kind))
			out[resource.EndpointType] = append(out[resource.EndpointType], p.assignment)
		}
	}
	if kind == Proxy {
		out[resource.ClusterType] = append(out[resource.ClusterType], passthroughCluster(), blackHoleCluster())
		out[resource.ListenerType] = t.proxyListeners()
		out[resource.RouteType] = t.proxyRoutes()
	} else {
		out[resource.ListenerType] = t.proxylessListeners()
	}
	for typ := range out {
		sortByName(out[typ])
	}
	return out
}

// sortByName sorts resources by their xDS name.
func sortByName(rs []cachetypes.Resource) {
	slices.SortFunc(rs, func(a, b cachetypes.Resource) int { return cmp.Compare(resourceName(a), resourceName(b)) })
}
