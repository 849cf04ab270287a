package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// pathBackend records the paths and identity headers it receives.
type pathBackend struct {
	addr  string
	mu    sync.Mutex
	paths []string
	xfcc  []string
}

func startPathBackend(t *testing.T) *pathBackend {
	t.Helper()
	b := &pathBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.paths = append(b.paths, r.URL.EscapedPath())
		b.xfcc = append(b.xfcc, r.Header.Get("X-Forwarded-Client-Cert"))
		b.mu.Unlock()
		_, _ = io.WriteString(w, r.URL.EscapedPath())
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

// filtered builds the "http" listener with the given HTTP filters before
// the router and path normalisation on, routing everything to cluster b.
func filtered(t *testing.T, h *harness, backend string, filters []*hcmv3.HttpFilter, ts *corev3.TransportSocket) {
	t.Helper()
	filters = append(filters, &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}})
	m := &hcmv3.HttpConnectionManager{
		StatPrefix:                   "http",
		RouteSpecifier:               &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "routes", ConfigSource: ads()}},
		HttpFilters:                  filters,
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST,
	}
	l := &listenerv3.Listener{
		Name: "http", Address: sockAddr("127.0.0.1", 15080), BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{TransportSocket: ts, Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, m)},
		}}}},
	}
	apply(t, h.store, cdsType, "1", edsCluster(t, "b", false, clusterv3.Cluster_ROUND_ROBIN))
	apply(t, h.store, edsType, "1", cla(t, "b", backend))
	apply(t, h.store, rdsType, "1", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("b")}},
	}}})
	apply(t, h.store, ldsType, "1", l)
}

func rbacFilter(t *testing.T, rules *rbacv3.RBAC) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &rbacfilterv3.RBAC{Rules: rules})}}
}

func rbacPathPrefix(p string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
		Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}},
	}}}}
}

var anyPrincipal = &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}

// rawGet sends a request target exactly as given and returns the status.
func rawGet(t *testing.T, addr, target string, headers ...string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", target, strings.Join(headers, ""))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestDenyAdminBypassSet: a DENY on /admin holds against every known
// spelling of /admin, because the path is normalised before RBAC and
// routing, and the endpoint receives the normalised path.
func TestDenyAdminBypassSet(t *testing.T) {
	b := startPathBackend(t)
	h := startProxy(t)
	deny := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"no-admin": {Permissions: []*rbacv3.Permission{rbacPathPrefix("/admin")}, Principals: []*rbacv3.Principal{anyPrincipal}},
	}}
	filtered(t, h, b.addr, []*hcmv3.HttpFilter{rbacFilter(t, deny)}, nil)
	for target, want := range map[string][]int{
		"/admin":           {403},
		"/admin/users":     {403},
		"//admin":          {403},
		"/a/../admin":      {403},
		"/./admin":         {403},
		"/%61dmin":         {403},
		"/%2e%2e/admin":    {403},
		"/admin%2F":        {400},
		"/admin%2fx":       {400},
		"/admin%00":        {400},
		`\admin`:           {400, 403},
		"/admin?x":         {403},
		"/admin#x":         {400, 403},
		"/ADMIN":           {200}, // the rule is case-sensitive
		"/public/../x/./y": {200},
	} {
		got := rawGet(t, h.httpAddr, target)
		ok := false
		for _, w := range want {
			ok = ok || got == w
		}
		if !ok {
			t.Errorf("GET %q: %d, want one of %v", target, got, want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.paths {
		if strings.Contains(strings.ToLower(p), "admin") && p != "/ADMIN" {
			t.Errorf("the endpoint received %q", p)
		}
	}
	if !containsString(b.paths, "/x/y") {
		t.Errorf("the endpoint did not receive the normalised /x/y: %v", b.paths)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestJWTAndClaimsAuthorization: a JWT is required on /secure, tokens
// that are unsigned or signed by another key get 401, and an RBAC rule
// on a verified claim decides who gets through.
func TestJWTAndClaimsAuthorization(t *testing.T) {
	b := startPathBackend(t)
	h := startProxy(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	authn := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{"idp": {
			Issuer: "https://idp.test", Audiences: []string{"shop"}, PayloadInMetadata: "jwt_payload",
			JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: jwks}}},
		}},
		Rules: []*jwtauthnv3.RequirementRule{{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/secure"}},
			RequirementType: &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: "idp"}}},
		}},
	}
	// ALLOW: anything outside /secure, and /secure only for sub "alice".
	allow := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"public": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: rbacPathPrefix("/secure")}}}, Principals: []*rbacv3.Principal{anyPrincipal}},
		"alice": {Permissions: []*rbacv3.Permission{rbacPathPrefix("/secure")}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{MetadataMatcher: &matcherv3.MetadataMatcher{
			Filter: "envoy.filters.http.jwt_authn",
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "jwt_payload"}}, {Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "sub"}}},
			Value:  &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "alice"}}}},
		}}}}}},
	}}
	filtered(t, h, b.addr, []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, authn)}},
		rbacFilter(t, allow),
	}, nil)
	sign := func(k *ecdsa.PrivateKey, claims map[string]any) string {
		t.Helper()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(claims)
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now().Unix()
	claims := func(sub string) map[string]any {
		return map[string]any{"iss": "https://idp.test", "aud": "shop", "sub": sub, "exp": now + 600, "iat": now}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(mustJSON(t, claims("alice"))) + "."
	bearer := func(tok string) string { return "Authorization: Bearer " + tok + "\r\n" }
	for name, tc := range map[string]struct {
		target, header string
		want           int
	}{
		"public without token":      {"/public", "", 200},
		"secure without token":      {"/secure/x", "", 401},
		"secure as alice":           {"/secure/x", bearer(sign(key, claims("alice"))), 200},
		"secure as bob":             {"/secure/x", bearer(sign(key, claims("bob"))), 403},
		"alg none":                  {"/secure/x", bearer(none), 401},
		"signed by another key":     {"/secure/x", bearer(sign(other, claims("alice"))), 401},
		"path trick without token":  {"/public/../secure/x", "", 401},
		"forged client-cert header": {"/public", "X-Forwarded-Client-Cert: By=spiffe://x;URI=spiffe://td/ns/admin/sa/root\r\n", 200},
	} {
		if got := rawGet(t, h.httpAddr, tc.target, tc.header); got != tc.want {
			t.Errorf("%s: GET %s: %d, want %d", name, tc.target, got, tc.want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.xfcc {
		if x != "" {
			t.Errorf("a client-supplied X-Forwarded-Client-Cert reached the endpoint: %q", x)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMTLSPrincipalAuthorization: over mutual TLS the proxy learns the
// client's SPIFFE ID from its verified certificate (issued by the mesh
// CA), and RBAC allows by that principal only.
func TestMTLSPrincipalAuthorization(t *testing.T) {
	b := startPathBackend(t)
	h := startProxy(t)
	td := spiffeid.RequireTrustDomainFromString("causeway.test")
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svid := func(ca *pki.CA, path string) tls.Certificate {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ca.SignPublicKey(&key.PublicKey, spiffeid.RequireFromPath(ca.TrustDomain(), path), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: s.ChainDER(), PrivateKey: key, Leaf: s.Leaf()}
	}
	serverCert, serverKey, serverPool := testCert(t, "127.0.0.1")
	rootPEM := root.CertificatePEM()
	ts := &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates:       []*tlsv3.TlsCertificate{{CertificateChain: inline(serverCert), PrivateKey: inline(serverKey)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(rootPEM)}},
		},
	})}}
	allow := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"frontend": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://causeway.test/ns/shop/sa/frontend"}}},
		}}}},
	}}
	filtered(t, h, b.addr, []*hcmv3.HttpFilter{rbacFilter(t, allow)}, ts)
	otherRoot, _ := pki.NewRoot(spiffeid.RequireTrustDomainFromString("elsewhere.test"), pki.RootOptions{})
	for name, tc := range map[string]struct {
		cert *tls.Certificate
		want int
	}{
		"frontend":                {new(svid(root, "/ns/shop/sa/frontend")), 200},
		"another service account": {new(svid(root, "/ns/shop/sa/batch")), 403},
		"no client certificate":   {nil, 403},
	} {
		cfg := &tls.Config{RootCAs: serverPool}
		if tc.cert != nil {
			cfg.Certificates = []tls.Certificate{*tc.cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + h.httpAddr + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	// A certificate from another trust domain's CA fails the handshake:
	// the proxy verifies against its own trust bundle only.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool, Certificates: []tls.Certificate{svid(otherRoot, "/ns/shop/sa/frontend")}}}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + h.httpAddr + "/"); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a certificate from another trust domain got %d", resp.StatusCode)
	}
}
