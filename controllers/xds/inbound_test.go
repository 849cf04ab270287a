package xds_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// sidecarNode is a causeway-proxy sidecar of a pod.
func sidecarNode(id, namespace, pod string) *corev3.Node {
	return &corev3.Node{Id: id, UserAgentName: "causeway-proxy", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		xdsconv.NodeMetaMode:      structpb.NewStringValue(xdsconv.ModeSidecar),
		xdsconv.NodeMetaNamespace: structpb.NewStringValue(namespace),
		xdsconv.NodeMetaPod:       structpb.NewStringValue(pod),
	}}}
}

// inboundOf reads the virtualInbound listener of a node's current
// snapshot (nil when it has none).
func inboundOf(t testing.TB, nodeID string) *listenerv3.Listener {
	t.Helper()
	snap, err := stack.server.Snapshot(nodeID)
	if err != nil {
		return nil
	}
	r, ok := snap.GetResources(resource.ListenerType)[xdsconv.VirtualInboundListener]
	if !ok {
		return nil
	}
	return r.(*listenerv3.Listener)
}

// httpRBACActions are the actions of the RBAC filters of a port's chain.
func httpRBACActions(t testing.TB, l *listenerv3.Listener, port uint32) ([]rbacv3.RBAC_Action, error) {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		if fc.GetFilterChainMatch().GetDestinationPort().GetValue() != port {
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		var out []rbacv3.RBAC_Action
		for _, hf := range hcm.GetHttpFilters() {
			if hf.GetName() == wellknown.HTTPRoleBasedAccessControl {
				cfg := &rbachttpv3.RBAC{}
				if err := hf.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				out = append(out, cfg.GetRules().GetAction())
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no chain for port %d", port)
}

// accepted waits for an object's Accepted condition with reason (and
// status True exactly for "Accepted") for the object's generation, and
// returns the object.
func accepted[T client.Object](ctx context.Context, t *testing.T, obj T, conds func(T) ([]metav1.Condition, int64), reason string) T {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		cs, observed := conds(obj)
		acc, ready := meta.FindStatusCondition(cs, "Accepted"), meta.FindStatusCondition(cs, "Ready")
		if acc == nil || ready == nil || acc.Reason != reason || observed != obj.GetGeneration() || acc.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s: conditions %+v (observed generation %d), want Accepted with reason %s for generation %d", obj.GetName(), cs, observed, reason, obj.GetGeneration())
		}
		if (acc.Status == metav1.ConditionTrue) != (reason == "Accepted") || ready.Status != acc.Status {
			return fmt.Errorf("%s: Accepted %s, Ready %s", obj.GetName(), acc.Status, ready.Status)
		}
		return nil
	})
	return obj
}

func authzConds(p *causewayv1alpha1.AuthorizationPolicy) ([]metav1.Condition, int64) {
	return p.Status.Conditions, p.Status.ObservedGeneration
}

func authnConds(p *causewayv1alpha1.RequestAuthentication) ([]metav1.Condition, int64) {
	return p.Status.Conditions, p.Status.ObservedGeneration
}

// TestSidecarInboundAuthorization is the user story against a real API
// server: a sidecar connects for its pod and gets an inbound listener for
// the ports its Services send to; AuthorizationPolicies and
// RequestAuthentications reach it and report Accepted; invalid ones report
// why and change nothing; status is written once; a pod that changes its
// labels gets the configuration of its new shape.
func TestSidecarInboundAuthorization(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	ns := newNamespace(ctx, t)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP},
		}},
	}
	if err := k8s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080}}}}},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	nodeID := "sidecar-" + ns
	c := newSotwClient(ctx, t, stack.addr, sidecarNode(nodeID, ns, pod.Name))
	c.send(&discoverygrpc.DiscoveryRequest{TypeUrl: resource.ListenerType})
	// The stream delivers the inbound listener (ADS, state of the world).
	deadline := time.Now().Add(20 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("the sidecar got no inbound listener")
		}
		r := c.recv()
		if r.TypeUrl == resource.ListenerType && slices.Contains(names(r.Resources, resource.ListenerType), xdsconv.VirtualInboundListener) {
			got = true
		}
		c.send(&discoverygrpc.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
	}
	// The Service may reach the cache after the pod: wait for its port.
	eventually(t, 20*time.Second, func() error {
		acts, err := httpRBACActions(t, inboundOf(t, nodeID), 8080)
		if err != nil {
			return err
		}
		if len(acts) != 0 {
			return fmt.Errorf("before any policy: RBAC %v on the target port 8080, want none", acts)
		}
		return nil
	})
	// Another proxy, not a sidecar, gets no inbound listener.
	newSotwClient(ctx, t, stack.addr, proxyNode("plain-"+ns))
	eventually(t, 20*time.Second, func() error {
		if _, err := stack.server.Snapshot("plain-" + ns); err != nil {
			return err
		}
		if inboundOf(t, "plain-"+ns) != nil {
			return errors.New("a proxy that is not a sidecar got an inbound listener")
		}
		return nil
	})

	// Valid policies reach the sidecar.
	allowPol := &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "allow-front"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{Action: causewayv1alpha1.AuthorizationActionAllow, Rules: []causewayv1alpha1.AuthorizationRule{{
			From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"front"}},
		}}},
	}
	denyPol := &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deny-admin"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{
			TargetRef: &causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: "web"},
			Action:    causewayv1alpha1.AuthorizationActionDeny,
			Rules:     []causewayv1alpha1.AuthorizationRule{{To: &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/admin/*"}}}},
		},
	}
	for _, p := range []*causewayv1alpha1.AuthorizationPolicy{allowPol, denyPol} {
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	accepted(ctx, t, allowPol, authzConds, "Accepted")
	accepted(ctx, t, denyPol, authzConds, "Accepted")
	eventually(t, 20*time.Second, func() error {
		acts, err := httpRBACActions(t, inboundOf(t, nodeID), 8080)
		if err != nil {
			return err
		}
		if !slices.Equal(acts, []rbacv3.RBAC_Action{rbacv3.RBAC_DENY, rbacv3.RBAC_ALLOW}) {
			return fmt.Errorf("RBAC %v, want DENY then ALLOW", acts)
		}
		return nil
	})
	before := inboundOf(t, nodeID)

	// Invalid ones say why and change nothing. The API server admits
	// them: what is wrong needs more than the object to see.
	badRegex := &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-regex"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{Action: causewayv1alpha1.AuthorizationActionDeny, Rules: []causewayv1alpha1.AuthorizationRule{{
			From: &causewayv1alpha1.AuthorizationSource{Namespaces: []causewayv1alpha1.NamespaceName{"x"}},
			When: &causewayv1alpha1.AuthorizationCondition{Headers: []causewayv1alpha1.HeaderMatch{{Name: "x-a", Regex: ptr.To("(unclosed")}}},
		}}},
	}
	badPath := &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-path"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{Action: causewayv1alpha1.AuthorizationActionDeny, Rules: []causewayv1alpha1.AuthorizationRule{{
			To: &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/%61dmin"}},
		}}},
	}
	ghost := &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"},
		Spec: causewayv1alpha1.AuthorizationPolicySpec{
			TargetRef: &causewayv1alpha1.PolicyTargetReference{Kind: causewayv1alpha1.TargetKindService, Name: "ghost"},
			Action:    causewayv1alpha1.AuthorizationActionAllow,
		},
	}
	symmetric := &causewayv1alpha1.RequestAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "symmetric"},
		Spec: causewayv1alpha1.RequestAuthenticationSpec{JWTRules: []causewayv1alpha1.JWTRule{{
			Issuer: "https://idp.example.com", JWKS: `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		}}},
	}
	for _, o := range []client.Object{badRegex, badPath, ghost, symmetric} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for p, reason := range map[*causewayv1alpha1.AuthorizationPolicy]string{badRegex: "Invalid", badPath: "Invalid", ghost: "TargetNotFound"} {
		got := accepted(ctx, t, p, authzConds, reason)
		t.Logf("%s: %s", p.Name, meta.FindStatusCondition(got.Status.Conditions, "Accepted").Message)
	}
	accepted(ctx, t, symmetric, authnConds, "Invalid")
	// The status was written after the round that left them out: the
	// listener is the one from before.
	if after := inboundOf(t, nodeID); !proto.Equal(after, before) {
		t.Error("invalid objects changed the sidecar's inbound listener")
	}

	// A round with nothing new writes no status.
	rvs := map[string]string{}
	objs := []client.Object{allowPol, denyPol, badRegex, badPath, ghost, symmetric}
	for _, o := range objs {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatal(err)
		}
		rvs[o.GetName()] = o.GetResourceVersion()
	}
	for range 2 {
		if err := stack.controller.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatal(err)
		}
		if o.GetResourceVersion() != rvs[o.GetName()] {
			t.Errorf("%s was written by a round without changes", o.GetName())
		}
	}

	// Fixing an invalid object makes it Accepted for its new generation.
	symmetric.Spec.JWTRules[0].JWKS = `{"keys":[{"use":"sig","kty":"EC","kid":"k1","crv":"P-256","alg":"ES256","x":"3uI-t0GfKiI9-AkUwvNQW1nOLd_NpvDnStlfWpM7jlQ","y":"byf3o5KyljAqPAW3Nh1nVkb1mIUq5Zuw_xoN8Z6q_gE"}]}`
	if err := k8s.Update(ctx, symmetric); err != nil {
		t.Fatal(err)
	}
	accepted(ctx, t, symmetric, authnConds, "Accepted")

	// A pod that leaves the Service keeps the namespace-wide policy but
	// loses the port and the targeted one.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels = map[string]string{"app": "moved"}
	if err := k8s.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		l := inboundOf(t, nodeID)
		if l == nil || len(l.GetFilterChains()) != 0 || len(l.GetDefaultFilterChain().GetFilters()) != 2 {
			return fmt.Errorf("inbound listener %v: want only the default chain, with the namespace's ALLOW filter", l)
		}
		return nil
	})
}
