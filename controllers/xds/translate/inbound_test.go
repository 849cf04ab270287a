package translate_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// ---- fixtures ----

// pod is a pod in namespace with labels and named container ports
// ("name=number").
func pod(namespace, name string, labels map[string]string, ports ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels}}
	c := corev1.Container{Name: "app", Image: "app"}
	for _, s := range ports {
		n, num, _ := strings.Cut(s, "=")
		var v int32
		_, _ = fmt.Sscan(num, &v)
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: n, ContainerPort: v})
	}
	p.Spec.Containers = []corev1.Container{c}
	return p
}

// selecting is a ClusterIP Service in namespace selecting labels.
func selecting(namespace, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	svc := service(name, "10.0.9.9", ports...)
	svc.Namespace, svc.Spec.Selector = namespace, selector
	return svc
}

func target(p corev1.ServicePort, tp intstr.IntOrString) corev1.ServicePort {
	p.TargetPort = tp
	return p
}

func authzPolicy(namespace, name string, action causewayv1alpha1.AuthorizationAction, ref *causewayv1alpha1.PolicyTargetReference, rules ...causewayv1alpha1.AuthorizationRule) *causewayv1alpha1.AuthorizationPolicy {
	return &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 4},
		Spec:       causewayv1alpha1.AuthorizationPolicySpec{TargetRef: ref, Action: action, Rules: rules},
	}
}

func svcRef(name string) *causewayv1alpha1.PolicyTargetReference {
	return &causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: name}
}

// es256JWKS is a JSON Web Key Set with one P-256 public key.
const es256JWKS = `{"keys":[{"use":"sig","kty":"EC","kid":"k1","crv":"P-256","alg":"ES256","x":"3uI-t0GfKiI9-AkUwvNQW1nOLd_NpvDnStlfWpM7jlQ","y":"byf3o5KyljAqPAW3Nh1nVkb1mIUq5Zuw_xoN8Z6q_gE"}]}`

func requestAuthn(namespace, name string, ref *causewayv1alpha1.PolicyTargetReference, rules ...causewayv1alpha1.JWTRule) *causewayv1alpha1.RequestAuthentication {
	return &causewayv1alpha1.RequestAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 2},
		Spec:       causewayv1alpha1.RequestAuthenticationSpec{TargetRef: ref, JWTRules: rules},
	}
}

// shopInputs: Service web (http 80 → container port "http" 8080, grpc
// 9090 → 9091) and Service db (tcp 5432) select app=web in namespace
// shop.
func shopInputs() (*translate.Inputs, *corev1.Pod) {
	in := &translate.Inputs{
		ClusterName: "east",
		Services: []*corev1.Service{
			selecting("shop", "web", map[string]string{"app": "web"}, target(port("http", 80), intstr.FromString("http")), target(port("grpc", 9090), intstr.FromInt32(9091))),
			selecting("shop", "db", map[string]string{"app": "web"}, port("tcp-db", 5432)),
		},
	}
	return in, pod("shop", "web-1", map[string]string{"app": "web"}, "http=8080", "grpc=9091")
}

// inboundView is a sidecar's inbound listener, decoded.
type inboundView struct {
	listener *listenerv3.Listener
	chains   map[uint32]*chainView
	dflt     *chainView
	clusters map[string]*clusterv3.Cluster
}

type chainView struct {
	hcm         *hcmv3.HttpConnectionManager
	httpFilters []string
	jwt         *jwtauthnv3.JwtAuthentication
	// httpRBAC and netRBAC are the RBAC filters' rules, in filter order.
	httpRBAC []*rbacv3.RBAC
	netRBAC  []*rbacv3.RBAC
	tcp      *tcpproxyv3.TcpProxy
}

func unpack[T proto.Message](t testing.TB, a *anypb.Any, m T) T {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func viewInbound(t testing.TB, rs translate.Resources) *inboundView {
	t.Helper()
	if len(rs[resource.ListenerType]) != 1 {
		t.Fatalf("want one inbound listener, got %d", len(rs[resource.ListenerType]))
	}
	v := &inboundView{listener: rs[resource.ListenerType][0].(*listenerv3.Listener), chains: map[uint32]*chainView{}, clusters: map[string]*clusterv3.Cluster{}}
	chain := func(fc *listenerv3.FilterChain) *chainView {
		cv := &chainView{}
		for _, f := range fc.Filters {
			switch f.Name {
			case wellknown.HTTPConnectionManager:
				cv.hcm = unpack(t, f.GetTypedConfig(), &hcmv3.HttpConnectionManager{})
				for _, hf := range cv.hcm.HttpFilters {
					cv.httpFilters = append(cv.httpFilters, hf.Name)
					switch hf.Name {
					case "envoy.filters.http.jwt_authn":
						cv.jwt = unpack(t, hf.GetTypedConfig(), &jwtauthnv3.JwtAuthentication{})
					case wellknown.HTTPRoleBasedAccessControl:
						cv.httpRBAC = append(cv.httpRBAC, unpack(t, hf.GetTypedConfig(), &rbachttpv3.RBAC{}).GetRules())
					}
				}
			case wellknown.RoleBasedAccessControl:
				cv.netRBAC = append(cv.netRBAC, unpack(t, f.GetTypedConfig(), &rbacnetv3.RBAC{}).GetRules())
			case wellknown.TCPProxy:
				cv.tcp = unpack(t, f.GetTypedConfig(), &tcpproxyv3.TcpProxy{})
			default:
				t.Fatalf("unexpected filter %s", f.Name)
			}
		}
		return cv
	}
	for _, fc := range v.listener.FilterChains {
		v.chains[fc.GetFilterChainMatch().GetDestinationPort().GetValue()] = chain(fc)
	}
	v.dflt = chain(v.listener.DefaultFilterChain)
	for _, r := range rs[resource.ClusterType] {
		c := r.(*clusterv3.Cluster)
		v.clusters[c.Name] = c
	}
	return v
}

func actions(rs []*rbacv3.RBAC) []rbacv3.RBAC_Action {
	var out []rbacv3.RBAC_Action
	for _, r := range rs {
		out = append(out, r.Action)
	}
	return out
}

func policyNames(r *rbacv3.RBAC) []string {
	var out []string
	for n := range r.GetPolicies() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ---- tests ----

// TestInboundMTLSMode: the mesh's mode reaches the sidecar as listener
// metadata, STRICT unless PERMISSIVE is asked for.
func TestInboundMTLSMode(t *testing.T) {
	for mode, want := range map[string]string{"": xdsconv.MTLSStrict, xdsconv.MTLSStrict: xdsconv.MTLSStrict, xdsconv.MTLSPermissive: xdsconv.MTLSPermissive, "bogus": xdsconv.MTLSStrict} {
		in, p := shopInputs()
		in.MTLSMode = mode
		l := viewInbound(t, translate.Translate(in).Inbound.For(p)).listener
		got := l.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()[xdsconv.MetadataMTLS].GetStringValue()
		if got != want {
			t.Errorf("mode %q: listener metadata %q, want %q", mode, got, want)
		}
	}
}

func TestInboundListenerContract(t *testing.T) {
	in, p := shopInputs()
	res := translate.Translate(in)
	rs := res.Inbound.For(p)
	checkResources(t, "inbound", rs)
	checkResources(t, "sidecar", sidecarResources(res, p))
	v := viewInbound(t, rs)
	l := v.listener
	if l.Name != xdsconv.VirtualInboundListener || l.GetAddress().GetSocketAddress().GetAddress() != "0.0.0.0" ||
		l.GetAddress().GetSocketAddress().GetPortValue() != xdsconv.VirtualInboundPort {
		t.Errorf("listener %s at %v", l.Name, l.GetAddress())
	}
	if l.GetBindToPort() == nil || l.GetBindToPort().GetValue() || l.GetUseOriginalDst().GetValue() {
		t.Errorf("bind_to_port %v use_original_dst %v: want false, false (the proxy owns the sockets)", l.GetBindToPort(), l.GetUseOriginalDst())
	}
	if got := slices.Sorted(func(yield func(uint32) bool) {
		for p := range v.chains {
			if !yield(p) {
				return
			}
		}
	}); !slices.Equal(got, []uint32{5432, 8080, 9091}) {
		t.Fatalf("chains for ports %v, want the target ports 5432 8080 9091", got)
	}
	for port, wantHTTP := range map[uint32]bool{8080: true, 9091: true, 5432: false} {
		cv := v.chains[port]
		cluster := xdsconv.InboundClusterName(int32(port))
		if wantHTTP {
			if cv.hcm == nil {
				t.Fatalf("port %d: no HCM", port)
			}
			h := cv.hcm
			if !h.GetNormalizePath().GetValue() || !h.GetMergeSlashes() || h.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
				t.Errorf("port %d: normalize_path %v merge_slashes %v escaped slashes %v", port, h.GetNormalizePath(), h.GetMergeSlashes(), h.GetPathWithEscapedSlashesAction())
			}
			route := h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
			if route.GetRoute().GetCluster() != cluster || route.GetRoute().GetTimeout().AsDuration() != 0 {
				t.Errorf("port %d: route to %q timeout %v", port, route.GetRoute().GetCluster(), route.GetRoute().GetTimeout())
			}
			if !slices.Equal(cv.httpFilters, []string{wellknown.Router}) {
				t.Errorf("port %d: filters %v without policies, want only the router", port, cv.httpFilters)
			}
		} else if cv.tcp.GetCluster() != cluster || len(cv.netRBAC) != 0 {
			t.Errorf("port %d: tcp_proxy to %q with %d RBAC filters", port, cv.tcp.GetCluster(), len(cv.netRBAC))
		}
		c := v.clusters[cluster]
		if c == nil {
			t.Fatalf("no cluster %s", cluster)
		}
		// To the address the client meant (the pod IP and this port).
		if c.GetType() != clusterv3.Cluster_ORIGINAL_DST || c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED || c.GetLoadAssignment() != nil {
			t.Errorf("cluster %s: %v, %v, assignment %v", cluster, c.GetType(), c.GetLbPolicy(), c.GetLoadAssignment())
		}
		_, h2 := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		if h2 != (port == 9091) {
			t.Errorf("cluster %s: HTTP/2 upstream %v", cluster, h2)
		}
	}
	if v.dflt.tcp.GetCluster() != xdsconv.InboundPassthroughCluster || v.clusters[xdsconv.InboundPassthroughCluster].GetType() != clusterv3.Cluster_ORIGINAL_DST {
		t.Errorf("default chain to %q", v.dflt.tcp.GetCluster())
	}
}

func TestInboundPorts(t *testing.T) {
	web := map[string]string{"app": "web"}
	tests := map[string]struct {
		services []*corev1.Service
		pod      *corev1.Pod
		want     map[uint32]bool // port → HTTP
	}{
		"no service selects the pod": {
			services: []*corev1.Service{selecting("shop", "other", map[string]string{"app": "other"}, port("http", 80))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{},
		},
		"a service of another namespace does not count": {
			services: []*corev1.Service{selecting("other", "web", web, port("http", 80))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{},
		},
		"a service without selector selects nothing": {
			services: []*corev1.Service{selecting("shop", "web", nil, port("http", 80))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{},
		},
		"unset target port is the service port": {
			services: []*corev1.Service{selecting("shop", "web", web, port("http", 80))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{80: true},
		},
		"named target port resolves through the pod": {
			services: []*corev1.Service{selecting("shop", "web", web, target(port("http", 80), intstr.FromString("web")))},
			pod:      pod("shop", "p", web, "web=8081"),
			want:     map[uint32]bool{8081: true},
		},
		"a name the pod lacks is left out": {
			services: []*corev1.Service{selecting("shop", "web", web, target(port("http", 80), intstr.FromString("missing")), port("grpc", 9090))},
			pod:      pod("shop", "p", web, "web=8081"),
			want:     map[uint32]bool{9090: true},
		},
		"a sidecar container's port name resolves too": {
			services: []*corev1.Service{selecting("shop", "web", web, target(port("http", 80), intstr.FromString("side")))},
			pod: func() *corev1.Pod {
				p := pod("shop", "p", web)
				p.Spec.InitContainers = []corev1.Container{
					{Name: "init", Ports: []corev1.ContainerPort{{Name: "side", ContainerPort: 1}}},
					{Name: "side", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{Name: "side", ContainerPort: 7070}}},
				}
				return p
			}(),
			want: map[uint32]bool{7070: true},
		},
		"UDP is left out": {
			services: []*corev1.Service{selecting("shop", "dns", web, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, port("tcp-dns", 53))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{53: false},
		},
		"two services disagreeing on a port's protocol make it TCP": {
			services: []*corev1.Service{
				selecting("shop", "a", web, target(port("http", 80), intstr.FromInt32(8080))),
				selecting("shop", "b", web, target(port("tcp", 81), intstr.FromInt32(8080))),
			},
			pod:  pod("shop", "p", web),
			want: map[uint32]bool{8080: false},
		},
		"two services agreeing keep it HTTP": {
			services: []*corev1.Service{
				selecting("shop", "a", web, target(port("http", 80), intstr.FromInt32(8080))),
				selecting("shop", "b", web, target(port("http-alt", 81), intstr.FromInt32(8080))),
			},
			pod:  pod("shop", "p", web),
			want: map[uint32]bool{8080: true},
		},
		"a selector needs every label": {
			services: []*corev1.Service{selecting("shop", "web", map[string]string{"app": "web", "tier": "front"}, port("http", 80))},
			pod:      pod("shop", "p", web),
			want:     map[uint32]bool{},
		},
		"ExternalName services select nothing": {
			services: func() []*corev1.Service {
				s := selecting("shop", "ext", web, port("http", 80))
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
				return []*corev1.Service{s}
			}(),
			pod:  pod("shop", "p", web),
			want: map[uint32]bool{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := translate.Translate(&translate.Inputs{ClusterName: "east", Services: tc.services})
			rs := res.Inbound.For(tc.pod)
			checkResources(t, "inbound", rs)
			v := viewInbound(t, rs)
			got := map[uint32]bool{}
			for p, cv := range v.chains {
				got[p] = cv.hcm != nil
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ports %v, want %v", got, tc.want)
			}
			if len(v.clusters) != len(tc.want)+1 {
				t.Errorf("%d clusters, want %d and the pass-through", len(v.clusters), len(tc.want))
			}
		})
	}
}

func TestInboundFilters(t *testing.T) {
	allow := authzPolicy("shop", "allow", causewayv1alpha1.AuthorizationActionAllow, nil, causewayv1alpha1.AuthorizationRule{
		From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"shop"}},
		To:   &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/api/*"}},
	})
	deny := authzPolicy("shop", "deny", causewayv1alpha1.AuthorizationActionDeny, nil, causewayv1alpha1.AuthorizationRule{
		From: &causewayv1alpha1.AuthorizationSource{Clusters: []causewayv1alpha1.ClusterName{"west"}},
	})
	emptyDeny := authzPolicy("shop", "empty-deny", causewayv1alpha1.AuthorizationActionDeny, nil)
	allowNothing := authzPolicy("shop", "allow-nothing", causewayv1alpha1.AuthorizationActionAllow, nil)
	ra := requestAuthn("shop", "idp", nil, causewayv1alpha1.JWTRule{Issuer: "https://idp.example.com", JWKS: es256JWKS})
	const jwt, rbac, router = "envoy.filters.http.jwt_authn", wellknown.HTTPRoleBasedAccessControl, wellknown.Router
	tests := map[string]struct {
		authz []*causewayv1alpha1.AuthorizationPolicy
		authn []*causewayv1alpha1.RequestAuthentication
		// want: HTTP filters, HTTP RBAC actions, TCP RBAC actions (and
		// their policy counts)
		wantHTTP    []string
		wantActions []rbacv3.RBAC_Action
		wantTCP     []int // policies per network RBAC filter
	}{
		"nothing": {wantHTTP: []string{router}},
		"a DENY policy without rules is no filter": {authz: []*causewayv1alpha1.AuthorizationPolicy{emptyDeny}, wantHTTP: []string{router}},
		"ALLOW without rules denies everything": {
			authz: []*causewayv1alpha1.AuthorizationPolicy{allowNothing}, wantHTTP: []string{rbac, router},
			wantActions: []rbacv3.RBAC_Action{rbacv3.RBAC_ALLOW}, wantTCP: []int{0},
		},
		"DENY before ALLOW": {
			authz: []*causewayv1alpha1.AuthorizationPolicy{allow, deny}, wantHTTP: []string{rbac, rbac, router},
			wantActions: []rbacv3.RBAC_Action{rbacv3.RBAC_DENY, rbacv3.RBAC_ALLOW},
			// The ALLOW rule needs a path: TCP connections match none.
			wantTCP: []int{1, 0},
		},
		"jwt_authn first": {
			authz: []*causewayv1alpha1.AuthorizationPolicy{deny}, authn: []*causewayv1alpha1.RequestAuthentication{ra},
			wantHTTP: []string{jwt, rbac, router}, wantActions: []rbacv3.RBAC_Action{rbacv3.RBAC_DENY}, wantTCP: []int{1},
		},
		"jwt_authn alone": {authn: []*causewayv1alpha1.RequestAuthentication{ra}, wantHTTP: []string{jwt, router}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in, p := shopInputs()
			in.AuthorizationPolicies, in.RequestAuthentications = tc.authz, tc.authn
			rs := translate.Translate(in).Inbound.For(p)
			checkResources(t, "inbound", rs)
			v := viewInbound(t, rs)
			for _, port := range []uint32{8080, 9091} {
				cv := v.chains[port]
				if !slices.Equal(cv.httpFilters, tc.wantHTTP) {
					t.Errorf("port %d: HTTP filters %v, want %v", port, cv.httpFilters, tc.wantHTTP)
				}
				if got := actions(cv.httpRBAC); !slices.Equal(got, tc.wantActions) {
					t.Errorf("port %d: RBAC actions %v, want %v", port, got, tc.wantActions)
				}
			}
			for _, cv := range []*chainView{v.chains[5432], v.dflt} {
				var got []int
				for _, r := range cv.netRBAC {
					got = append(got, len(r.GetPolicies()))
				}
				if !slices.Equal(got, tc.wantTCP) {
					t.Errorf("network RBAC policies %v, want %v", got, tc.wantTCP)
				}
				if cv.tcp == nil {
					t.Error("no tcp_proxy after the RBAC filters")
				}
			}
		})
	}
}

func TestAuthorizationPolicySelection(t *testing.T) {
	web, api := map[string]string{"app": "web"}, map[string]string{"app": "api"}
	services := []*corev1.Service{
		selecting("shop", "web", web, port("http", 80)),
		selecting("shop", "api", api, port("http", 80)),
	}
	imports := []*mcsv1beta1.ServiceImport{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, IPs: []string{"240.0.0.1"}, Ports: []mcsv1beta1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}}
	rule := causewayv1alpha1.AuthorizationRule{From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"shop"}}}
	tests := map[string]struct {
		policy   *causewayv1alpha1.AuthorizationPolicy
		root     string
		wantWeb  bool
		wantAPI  bool
		wantElse bool // a pod in another namespace
	}{
		"namespace-wide": {policy: authzPolicy("shop", "p", causewayv1alpha1.AuthorizationActionDeny, nil, rule), wantWeb: true, wantAPI: true},
		"a Service's pods": {
			policy: authzPolicy("shop", "p", causewayv1alpha1.AuthorizationActionDeny, svcRef("web"), rule), wantWeb: true,
		},
		"a ServiceImport's pods: those of the Service of its name": {
			policy: authzPolicy("shop", "p", causewayv1alpha1.AuthorizationActionDeny,
				&causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindServiceImport, Name: "web"}, rule),
			wantWeb: true,
		},
		"root namespace: every workload": {
			policy:  authzPolicy(causewayv1alpha1.SystemNamespace, "p", causewayv1alpha1.AuthorizationActionDeny, nil, rule),
			wantWeb: true, wantAPI: true, wantElse: true,
		},
		"another root namespace": {
			policy: authzPolicy("mesh-root", "p", causewayv1alpha1.AuthorizationActionDeny, nil, rule), root: "mesh-root",
			wantWeb: true, wantAPI: true, wantElse: true,
		},
		"causeway-system is not root when another is": {
			policy: authzPolicy(causewayv1alpha1.SystemNamespace, "p", causewayv1alpha1.AuthorizationActionDeny, nil, rule), root: "mesh-root",
		},
		"another namespace's policy": {policy: authzPolicy("other", "p", causewayv1alpha1.AuthorizationActionDeny, nil, rule), wantElse: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := &translate.Inputs{ClusterName: "east", Services: services, ServiceImports: imports, RootNamespace: tc.root,
				AuthorizationPolicies: []*causewayv1alpha1.AuthorizationPolicy{tc.policy}}
			res := translate.Translate(in)
			if st := res.AuthorizationPolicies[ktypesName(tc.policy)]; st.Conditions[0].Status != metav1.ConditionTrue {
				t.Fatalf("policy not accepted: %+v", st)
			}
			for _, c := range []struct {
				pod  *corev1.Pod
				want bool
			}{{pod("shop", "w", web), tc.wantWeb}, {pod("shop", "a", api), tc.wantAPI}, {pod("other", "o", web), tc.wantElse}} {
				cv := viewInbound(t, res.Inbound.For(c.pod)).dflt
				if got := len(cv.netRBAC) > 0; got != c.want {
					t.Errorf("pod %s/%s protected %v, want %v", c.pod.Namespace, c.pod.Name, got, c.want)
				}
			}
		})
	}
}

func ktypesName(o metav1.Object) ktypes.NamespacedName {
	return ktypes.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}
