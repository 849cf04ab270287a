package inbound_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/gateway/authz"
	"github.com/causeway-mesh/causeway/gateway/jwtauthn"
)

// issuer signs tokens with a P-256 key and publishes it as a JWKS.
type issuer struct {
	name string
	key  *ecdsa.PrivateKey
	jwks string
}

func newIssuer(t testing.TB, name string) *issuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: name, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{name: name, key: k, jwks: string(b)}
}

// token signs claims (iss is the issuer's, exp an hour away unless set).
func (is *issuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key}, (&jose.SignerOptions{}).WithHeader("kid", is.name).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"iss": is.name, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		all[k] = v
	}
	s, err := jwt.Signed(sig).Claims(all).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (is *issuer) rule() causewayv1alpha1.JWTRule {
	return causewayv1alpha1.JWTRule{Issuer: is.name, JWKS: is.jwks}
}

// workload: namespace shop, Service web (http 80 → container port 8080)
// and Service db (tcp 5432) select pod web-1.
func workload() (*translate.Inputs, *corev1.Pod) {
	sel := map[string]string{"app": "web"}
	in := &translate.Inputs{ClusterName: "east", Services: []*corev1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.1", Selector: sel, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.2", Selector: sel, Ports: []corev1.ServicePort{
				{Name: "tcp", Port: 5432, Protocol: corev1.ProtocolTCP},
			}},
		},
	}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: sel}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
	}}
	return in, pod
}

// engines are one workload's inbound configuration compiled by the data
// plane's engines: the HTTP chain of port 8080 and the TCP chain of port
// 5432.
type engines struct {
	jwt               []*jwtauthn.Authenticator
	httpDeny, tcpDeny *authz.Engine
	httpAllow         *authz.Engine
	tcpAllow          *authz.Engine
	hcm               *hcmv3.HttpConnectionManager
}

// compile translates in and compiles pod's inbound chains. Policies must
// all be accepted: a test of semantics must not pass because its policy
// was thrown out.
func compile(t testing.TB, in *translate.Inputs, pod *corev1.Pod) *engines {
	t.Helper()
	res := translate.Translate(in)
	for k, st := range res.AuthorizationPolicies {
		if st.Conditions[0].Status != metav1.ConditionTrue {
			t.Fatalf("AuthorizationPolicy %s not accepted: %s", k, st.Conditions[0].Message)
		}
	}
	for k, st := range res.RequestAuthentications {
		if st.Conditions[0].Status != metav1.ConditionTrue {
			t.Fatalf("RequestAuthentication %s not accepted: %s", k, st.Conditions[0].Message)
		}
	}
	l := res.Inbound.For(pod)[resource.ListenerType][0].(*listenerv3.Listener)
	e := &engines{}
	for _, fc := range l.FilterChains {
		switch fc.GetFilterChainMatch().GetDestinationPort().GetValue() {
		case 8080:
			e.hcm = &hcmv3.HttpConnectionManager{}
			if err := fc.Filters[0].GetTypedConfig().UnmarshalTo(e.hcm); err != nil {
				t.Fatal(err)
			}
			for _, hf := range e.hcm.HttpFilters {
				switch hf.Name {
				case "envoy.filters.http.jwt_authn":
					cfg := &jwtauthnv3.JwtAuthentication{}
					if err := hf.GetTypedConfig().UnmarshalTo(cfg); err != nil {
						t.Fatal(err)
					}
					a, err := jwtauthn.Compile(cfg, jwtauthn.Options{})
					if err != nil {
						t.Fatalf("the proxy refuses the jwt_authn filter: %v", err)
					}
					t.Cleanup(a.Close)
					e.jwt = append(e.jwt, a)
				case wellknown.HTTPRoleBasedAccessControl:
					cfg := &rbachttpv3.RBAC{}
					if err := hf.GetTypedConfig().UnmarshalTo(cfg); err != nil {
						t.Fatal(err)
					}
					eng, err := authz.CompileHTTPFilter(cfg)
					if err != nil {
						t.Fatalf("the proxy refuses the RBAC filter: %v", err)
					}
					if eng.Action().String() == "DENY" {
						e.httpDeny = eng
					} else {
						e.httpAllow = eng
					}
				}
			}
		case 5432:
			for _, f := range fc.Filters {
				if f.Name != wellknown.RoleBasedAccessControl {
					continue
				}
				cfg := &rbacnetv3.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				eng, err := authz.Compile(cfg.GetRules())
				if err != nil {
					t.Fatalf("the RBAC engine refuses the network RBAC rules: %v", err)
				}
				if eng.Action().String() == "DENY" {
					e.tcpDeny = eng
				} else {
					e.tcpAllow = eng
				}
			}
		}
	}
	if e.hcm == nil {
		t.Fatal("no HTTP chain for port 8080")
	}
	return e
}

// req is a request to the workload's HTTP port, as the proxy sees it.
type req struct {
	method, target, host string
	// peer is the client's SPIFFE ID; "" is a plaintext client.
	peer    string
	headers map[string]string
	port    uint16 // destination (target) port; 8080 when 0
}

// serve decides a request the way causeway-proxy's HTTP path does:
// normalise the path (400), jwt_authn (401), RBAC DENY then ALLOW (403).
func (e *engines) serve(t testing.TB, r req) int {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	if r.host == "" {
		r.host = "web.shop.svc.cluster.local"
	}
	opts := authz.NormalizeOptions{}
	if e.hcm.GetPathWithEscapedSlashesAction() == hcmv3.HttpConnectionManager_KEEP_UNCHANGED {
		opts.EscapedSlashes = authz.KeepEscapedSlashes
	}
	path, query, _ := strings.Cut(r.target, "?")
	if e.hcm.GetNormalizePath().GetValue() {
		p, err := authz.NormalizePath(r.target, opts)
		if err != nil {
			return http.StatusBadRequest
		}
		path = p
	}
	uri := "http://" + r.host + path
	if query != "" {
		uri += "?" + query // the proxy keeps the raw query
	}
	hr := httptest.NewRequest(r.method, uri, nil)
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	meta := map[string]any{}
	for _, a := range e.jwt {
		res, err := a.Authenticate(hr)
		if err != nil {
			var je *jwtauthn.Error
			if !errors.As(err, &je) {
				t.Fatalf("authenticate: %v", err)
			}
			return je.StatusCode()
		}
		res.Apply(hr)
		for k, v := range res.Metadata {
			meta[k] = v
		}
	}
	port := r.port
	if port == 0 {
		port = 8080
	}
	ar := &authz.Request{
		Method: r.method, Path: path, Query: hr.URL.RawQuery, Host: r.host, Header: hr.Header, JWTMetadata: meta,
		DestinationIP: netip.MustParseAddr("10.1.0.1"), DestinationPort: port, SourceIP: netip.MustParseAddr("10.1.0.2"),
		TLS: r.peer != "", PeerPrincipal: r.peer,
	}
	if ok, _ := authz.Evaluate(e.httpDeny, e.httpAllow, ar); !ok {
		return http.StatusForbidden
	}
	return http.StatusOK
}

// connect decides a TCP connection to port 5432 (or port) from peer.
func (e *engines) connect(peer string, port uint16) bool {
	if port == 0 {
		port = 5432
	}
	ar := &authz.Request{DestinationIP: netip.MustParseAddr("10.1.0.1"), DestinationPort: port, TLS: peer != "", PeerPrincipal: peer}
	ok, _ := authz.Evaluate(e.tcpDeny, e.tcpAllow, ar)
	return ok
}

func policy(name string, action causewayv1alpha1.AuthorizationAction, rules ...causewayv1alpha1.AuthorizationRule) *causewayv1alpha1.AuthorizationPolicy {
	return &causewayv1alpha1.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       causewayv1alpha1.AuthorizationPolicySpec{Action: action, Rules: rules},
	}
}

func authn(name string, rules ...causewayv1alpha1.JWTRule) *causewayv1alpha1.RequestAuthentication {
	return &causewayv1alpha1.RequestAuthentication{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       causewayv1alpha1.RequestAuthenticationSpec{JWTRules: rules},
	}
}
