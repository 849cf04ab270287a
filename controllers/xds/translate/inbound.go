package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Inbound builds the inbound configuration of sidecar workloads (the
// listener xdsconv.VirtualInboundListener and its clusters) from one
// translation's Services, AuthorizationPolicies and
// RequestAuthentications. Pods of the same shape (namespace, labels and
// container ports) get the same resources, built once per translation and
// shared. It is safe for concurrent use.
type Inbound struct {
	// services are the Services that select pods (a selector, not
	// ExternalName), by namespace, in name order.
	services map[string][]selectingService
	authz    []*authzPolicy
	authn    []*authnPolicy
	// mtls is the mesh's mode, xdsconv.MTLSStrict or MTLSPermissive.
	mtls string

	mu   sync.Mutex
	memo map[string]Resources
}

type selectingService struct {
	svc *corev1.Service
	sel labels.Selector
}

// For returns the inbound resources of a sidecar's pod: the listener
// VirtualInboundListener (one filter chain per target port of the Services
// that select the pod, and a pass-through default chain) and the clusters
// it uses, sorted by name, with the RBAC and jwt_authn filters of the
// AuthorizationPolicies and RequestAuthentications that apply to the pod.
// The resources are shared and must not be modified. A nil Inbound or pod
// gives nil.
func (ib *Inbound) For(pod *corev1.Pod) Resources {
	if ib == nil || pod == nil {
		return nil
	}
	key := shapeKey(pod)
	ib.mu.Lock()
	defer ib.mu.Unlock()
	if rs, ok := ib.memo[key]; ok {
		return rs
	}
	rs := ib.build(pod)
	ib.memo[key] = rs
	return rs
}

// shapeKey is what the inbound configuration of a pod depends on: its
// namespace, its labels and its containers' ports.
func shapeKey(pod *corev1.Pod) string {
	var b strings.Builder
	b.WriteString(pod.Namespace)
	b.WriteByte(0)
	keys := make([]string, 0, len(pod.Labels))
	for k := range pod.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(pod.Labels[k])
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, c := range podContainers(pod) {
		for _, p := range c.Ports {
			fmt.Fprintf(&b, "%s/%d/%s\x00", p.Name, p.ContainerPort, p.Protocol)
		}
	}
	return b.String()
}

// inboundPort is a port of a workload that a Service sends to.
type inboundPort struct {
	number   int32
	protocol xdsconv.Protocol
}

// workloadPorts are the target ports of the Services that select pod,
// sorted. A port that two Services give different protocols is opaque TCP:
// that always carries the bytes unchanged.
func (ib *Inbound) workloadPorts(pod *corev1.Pod) []inboundPort {
	byNumber := map[int32]xdsconv.Protocol{}
	podLabels := labels.Set(pod.Labels)
	for _, ss := range ib.services[pod.Namespace] {
		if !ss.sel.Matches(podLabels) {
			continue
		}
		for _, sp := range ss.svc.Spec.Ports {
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			n := resolveTargetPort(pod, sp)
			if n <= 0 || n > 65535 {
				continue
			}
			proto := xdsconv.ProtocolFor(sp.AppProtocol, sp.Name)
			if old, ok := byNumber[n]; ok && old != proto {
				proto = xdsconv.ProtocolTCP
			}
			byNumber[n] = proto
		}
	}
	out := make([]inboundPort, 0, len(byNumber))
	for n, p := range byNumber {
		out = append(out, inboundPort{n, p})
	}
	slices.SortFunc(out, func(a, b inboundPort) int { return cmp.Compare(a.number, b.number) })
	return out
}

// resolveTargetPort is the container port a Service port sends to: its
// targetPort number, the port of a container port of that name (TCP; in
// the containers, then in the sidecar init containers, as the EndpointSlice
// controller looks), or the Service port when targetPort is unset. 0 when
// a name resolves to nothing.
func resolveTargetPort(pod *corev1.Pod, sp corev1.ServicePort) int32 {
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.Int && tp.IntVal == 0:
		return sp.Port
	case tp.Type == intstr.Int:
		return tp.IntVal
	}
	for _, c := range podContainers(pod) {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// podContainers are the pod's containers and its sidecar containers (init
// containers that keep running: restartPolicy Always).
func podContainers(pod *corev1.Pod) []corev1.Container {
	out := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(slices.Clip(out), c)
		}
	}
	return out
}

// build renders the inbound resources of a pod.
func (ib *Inbound) build(pod *corev1.Pod) Resources {
	var policies []*authzPolicy
	for _, ap := range ib.authz {
		if ap.sel.selects(pod) {
			policies = append(policies, ap)
		}
	}
	var providers []namedProvider
	var issuers []string
	for _, ra := range ib.authn {
		if !ra.sel.selects(pod) {
			continue
		}
		for _, np := range ra.providers {
			providers = append(providers, np)
			issuers = append(issuers, np.p.Issuer)
		}
	}
	slices.Sort(issuers)
	issuers = slices.Compact(issuers)

	httpFilters := inboundHTTPFilters(jwtFilterConfig(providers),
		renderRBAC(policies, causewayv1alpha1.AuthorizationActionDeny, issuers, rbacHTTP),
		renderRBAC(policies, causewayv1alpha1.AuthorizationActionAllow, issuers, rbacHTTP))
	tcpFilters := inboundTCPFilters(
		renderRBAC(policies, causewayv1alpha1.AuthorizationActionDeny, issuers, rbacTCP),
		renderRBAC(policies, causewayv1alpha1.AuthorizationActionAllow, issuers, rbacTCP))

	l := &listenerv3.Listener{
		Name:             xdsconv.VirtualInboundListener,
		Address:          socketAddress("0.0.0.0", xdsconv.VirtualInboundPort),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
			xdsconv.MetadataMTLS: structpb.NewStringValue(ib.mtls),
		}}}},
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:    "inbound_passthrough",
			Filters: append(slices.Clone(tcpFilters), tcpProxy("inbound_passthrough", xdsconv.InboundPassthroughCluster, nil)),
		},
	}
	clusters := []*clusterv3.Cluster{inboundPassthroughCluster()}
	for _, p := range ib.workloadPorts(pod) {
		name := xdsconv.InboundClusterName(p.number)
		stat := "inbound_" + itoa(p.number)
		fc := &listenerv3.FilterChain{
			Name:             stat,
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(p.number))},
		}
		if p.protocol.IsHTTP() {
			fc.Filters = []*listenerv3.Filter{inboundHCM(stat, name, p.protocol == xdsconv.ProtocolHTTP, httpFilters)}
		} else {
			fc.Filters = append(slices.Clone(tcpFilters), tcpProxy(stat, name, nil))
		}
		l.FilterChains = append(l.FilterChains, fc)
		clusters = append(clusters, inboundCluster(name, p))
	}
	out := Resources{resource.ListenerType: {l}}
	for _, c := range clusters {
		out[resource.ClusterType] = append(out[resource.ClusterType], c)
	}
	sortByName(out[resource.ClusterType])
	return out
}

// inboundHTTPFilters are an inbound HCM's HTTP filters: jwt_authn, RBAC
// DENY, RBAC ALLOW (each when configured), then the router. They are
// shared by every HTTP chain of the workload.
func inboundHTTPFilters(jwt *jwtauthnv3.JwtAuthentication, deny, allow *rbacv3.RBAC) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if jwt != nil {
		out = append(out, &hcmv3.HttpFilter{Name: jwtAuthnFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(jwt)}})
	}
	for _, r := range []*rbacv3.RBAC{deny, allow} {
		if r != nil {
			out = append(out, &hcmv3.HttpFilter{Name: wellknown.HTTPRoleBasedAccessControl, ConfigType: &hcmv3.HttpFilter_TypedConfig{
				TypedConfig: mustAny(&rbachttpv3.RBAC{Rules: r}),
			}})
		}
	}
	return append(out, &hcmv3.HttpFilter{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}})
}

// inboundTCPFilters are the network RBAC filters (DENY, then ALLOW) that
// come before a tcp_proxy.
func inboundTCPFilters(deny, allow *rbacv3.RBAC) []*listenerv3.Filter {
	var out []*listenerv3.Filter
	for _, r := range []struct {
		rbac *rbacv3.RBAC
		stat string
	}{{deny, "inbound_rbac_deny"}, {allow, "inbound_rbac_allow"}} {
		if r.rbac != nil {
			out = append(out, &listenerv3.Filter{Name: wellknown.RoleBasedAccessControl, ConfigType: &listenerv3.Filter_TypedConfig{
				TypedConfig: mustAny(&rbacnetv3.RBAC{Rules: r.rbac, StatPrefix: r.stat}),
			}})
		}
	}
	return out
}

// inboundHCM is the HTTP connection manager of an inbound HTTP port: paths
// normalised before any filter sees them (so authorization matches the
// path the workload gets), encoded slashes refused, and every request
// routed to the port's inbound cluster without a timeout (the caller's
// proxy applies the route's).
func inboundHCM(stat, cluster string, websocket bool, filters []*hcmv3.HttpFilter) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:                   stat,
		CodecType:                    hcmv3.HttpConnectionManager_AUTO,
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: cluster,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    cluster,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "default",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						Timeout:          durationpb.New(0),
					}},
				}},
			}},
		}},
		HttpFilters: filters,
	}
	if websocket {
		hcm.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	}
	return &listenerv3.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)}}
}

// inboundCluster sends to the workload at the address the client meant
// (the HBONE tunnel's CONNECT target, or a captured connection's original
// destination): its pod IP and the target port, as Istio has done since
// 1.10, so workloads that listen on their pod IP rather than on loopback
// are reached, and pods of the same shape share the cluster.
func inboundCluster(name string, p inboundPort) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
	}
	if p.protocol == xdsconv.ProtocolHTTP2 || p.protocol == xdsconv.ProtocolGRPC {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: http2ProtocolOptions()}
	}
	return c
}

// inboundPassthroughCluster sends an inbound connection to the port it
// was addressed to.
func inboundPassthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 xdsconv.InboundPassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
	}
}

func http2ProtocolOptions() *anypb.Any {
	return mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
}

// ---- selection ----

// workloadSelector says which pods a policy applies to.
type workloadSelector struct {
	// all: every pod of the cluster (a policy in the root namespace
	// without a target).
	all bool
	// namespace holds the pods otherwise.
	namespace string
	// target: only pods sel selects (nil: none).
	target bool
	sel    labels.Selector
}

func (s workloadSelector) selects(pod *corev1.Pod) bool {
	switch {
	case s.all:
		return true
	case pod.Namespace != s.namespace:
		return false
	case !s.target:
		return true
	}
	return s.sel != nil && s.sel.Matches(labels.Set(pod.Labels))
}

// selectorFor resolves the scope of a policy in namespace: its target's
// pods, or the namespace's, or (root namespace, no target) every pod. The
// reason is Accepted, Invalid or TargetNotFound, with a message.
func (t *translator) selectorFor(namespace string, ref *causewayv1alpha1.PolicyTargetReference) (workloadSelector, string, string) {
	if ref == nil {
		if namespace == t.rootNamespace() {
			return workloadSelector{all: true}, causewayv1alpha1.ReasonAccepted, "applies to every workload in the cluster (root namespace)"
		}
		return workloadSelector{namespace: namespace}, causewayv1alpha1.ReasonAccepted, "applies to every workload in namespace " + namespace
	}
	key, err := targetKeyOf(namespace, *ref)
	if err != nil {
		return workloadSelector{}, causewayv1alpha1.ReasonInvalid, err.Error()
	}
	nn := ktypes.NamespacedName{Namespace: namespace, Name: ref.Name}
	svc := t.allServices[nn]
	if key.kind == kindService && svc == nil || key.kind == kindServiceImport && svc == nil && !t.allImports[nn] {
		return workloadSelector{}, causewayv1alpha1.ReasonTargetNotFound, fmt.Sprintf("target %s does not exist", key)
	}
	sel := workloadSelector{namespace: namespace, target: true}
	message := fmt.Sprintf("applies to the workloads of %s", key)
	switch {
	case svc == nil:
		message += " (no Service of that name selects pods in this cluster)"
	case svc.Spec.Type == corev1.ServiceTypeExternalName || len(svc.Spec.Selector) == 0:
		message += " (Service " + nn.String() + " has no selector: it selects no pods)"
	default:
		sel.sel = labels.SelectorFromSet(svc.Spec.Selector)
	}
	return sel, causewayv1alpha1.ReasonAccepted, message
}

// rootNamespace is the namespace whose untargeted policies apply to every
// workload.
func (t *translator) rootNamespace() string {
	if t.in.RootNamespace != "" {
		return t.in.RootNamespace
	}
	return causewayv1alpha1.SystemNamespace
}

// targetKeyOf is the key of a policy's target in namespace.
func targetKeyOf(namespace string, ref causewayv1alpha1.PolicyTargetReference) (targetKey, error) {
	switch {
	case ref.Kind == causewayv1alpha1.TargetKindService && ref.GroupOrDefault() == "":
		return targetKey{kindService, namespace, ref.Name}, nil
	case ref.Kind == causewayv1alpha1.TargetKindServiceImport && ref.GroupOrDefault() == causewayv1alpha1.MCSGroup:
		return targetKey{kindServiceImport, namespace, ref.Name}, nil
	}
	return targetKey{}, fmt.Errorf("targetRef group %q kind %q: want group \"\" with kind Service, or %s with kind ServiceImport", ref.Group, ref.Kind, causewayv1alpha1.MCSGroup)
}

// compareNames orders objects by namespace, then name.
func compareNames(a, b metav1.Object) int {
	return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
}

// newInbound indexes the Services that select pods and keeps the valid
// policies.
func newInbound(services []*corev1.Service, authz []*authzPolicy, authn []*authnPolicy, mtlsMode string) *Inbound {
	if mtlsMode != xdsconv.MTLSPermissive {
		mtlsMode = xdsconv.MTLSStrict
	}
	ib := &Inbound{services: map[string][]selectingService{}, authz: authz, authn: authn, mtls: mtlsMode, memo: map[string]Resources{}}
	for _, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName || len(svc.Spec.Selector) == 0 {
			continue
		}
		ib.services[svc.Namespace] = append(ib.services[svc.Namespace], selectingService{svc: svc, sel: labels.SelectorFromSet(svc.Spec.Selector)})
	}
	for _, ss := range ib.services {
		slices.SortFunc(ss, func(a, b selectingService) int { return cmp.Compare(a.svc.Name, b.svc.Name) })
	}
	return ib
}
