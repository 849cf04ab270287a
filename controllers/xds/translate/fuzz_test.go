package translate_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// FuzzTranslateHTTPRoute builds an HTTPRoute from fuzzed paths, regular
// expressions, weights, header names and values and filter settings, and
// checks that Translate never panics, that its output always passes the
// protos' validation and makes consistent snapshots, and that no route
// reaches the validation safety net (which would mean a check is missing).
func FuzzTranslateHTTPRoute(f *testing.F) {
	f.Add(uint8(0), "/api", "/items/[0-9]+", "X-User", "alice", int32(80), int32(20), uint8(0), "/v2", "q")
	f.Add(uint8(1), "/a/b/", "(unclosed", "bad header", "a\nb", int32(-1), int32(0), uint8(1), "", "")
	f.Add(uint8(2), "/", ".*", "host", "x", int32(0), int32(0), uint8(2), "/", "full")
	f.Add(uint8(3), "//x?#", "[z-a]", ":method", "\x00", int32(1_000_001), int32(5), uint8(3), "no-slash", "a=b")
	f.Add(uint8(4), "/\u00e9", "a{1001}", "X-Ok", strings.Repeat("v", 5000), int32(1), int32(1), uint8(4), "/x\\y", "")
	f.Fuzz(func(t *testing.T, pathType uint8, path, regex, headerName, headerValue string, w1, w2 int32, filter uint8, rewrite, query string) {
		pathTypes := []gatewayv1.PathMatchType{gatewayv1.PathMatchPathPrefix, gatewayv1.PathMatchExact, gatewayv1.PathMatchRegularExpression, "Bogus"}
		match := gatewayv1.HTTPRouteMatch{
			Path:    &gatewayv1.HTTPPathMatch{Type: ptr.To(pathTypes[int(pathType)%len(pathTypes)]), Value: ptr.To(path)},
			Headers: []gatewayv1.HTTPHeaderMatch{{Name: gatewayv1.HTTPHeaderName(headerName), Value: headerValue}, {Type: ptr.To(gatewayv1.HeaderMatchRegularExpression), Name: "x-re", Value: regex}},
		}
		if pathType&8 != 0 {
			match.Path.Value = ptr.To(regex)
		}
		if query != "" {
			match.QueryParams = []gatewayv1.HTTPQueryParamMatch{{Name: gatewayv1.HTTPHeaderName(query), Value: headerValue}}
		}
		if pathType&16 != 0 {
			match.Method = ptr.To(gatewayv1.HTTPMethod(headerName))
		}
		rule := gatewayv1.HTTPRouteRule{
			Matches:     []gatewayv1.HTTPRouteMatch{match},
			BackendRefs: []gatewayv1.HTTPBackendRef{backend("v1", 8080, ptr.To(w1)), backend("v2", 8080, ptr.To(w2)), backend("missing", 80, ptr.To(w2))},
		}
		header := gatewayv1.HTTPHeader{Name: gatewayv1.HTTPHeaderName(headerName), Value: headerValue}
		switch filter % 6 {
		case 1:
			rule.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Set: []gatewayv1.HTTPHeader{header}, Remove: []string{query}}}}
		case 2:
			rule.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
				Hostname: ptr.To(gatewayv1.PreciseHostname(headerValue)),
				Path:     &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To(rewrite)},
			}}}
		case 3:
			rule.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterURLRewrite, URLRewrite: &gatewayv1.HTTPURLRewriteFilter{
				Path: &gatewayv1.HTTPPathModifier{Type: gatewayv1.FullPathHTTPPathModifier, ReplaceFullPath: ptr.To(rewrite)},
			}}}
		case 4:
			rule.BackendRefs = nil
			rule.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gatewayv1.HTTPRequestRedirectFilter{
				Hostname:   ptr.To(gatewayv1.PreciseHostname(headerValue)),
				StatusCode: ptr.To(int(w1)),
				Path:       &gatewayv1.HTTPPathModifier{Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr.To(rewrite)},
			}}}
		case 5:
			rule.Filters = []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{
				BackendRef: gatewayv1.BackendObjectReference{Name: "v2", Port: ptr.To[int32](8080)},
				Fraction:   &gatewayv1.Fraction{Numerator: w1, Denominator: ptr.To(w2)},
			}}}
			rule.Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptr.To(gatewayv1.Duration(rewrite)), BackendRequest: ptr.To(gatewayv1.Duration(query))}
			rule.Retry = &gatewayv1.HTTPRouteRetry{Attempts: ptr.To(int(w2)), Codes: []gatewayv1.HTTPRouteRetryStatusCode{gatewayv1.HTTPRouteRetryStatusCode(w1)}, Backoff: ptr.To(gatewayv1.Duration(rewrite))}
		}
		in := webInputs()
		in.HTTPRoutes = []*gatewayv1.HTTPRoute{httpRoute("fuzz", 0, rule)}
		res := translate.Translate(in)
		checkResources(t, "proxy", res.Proxy)
		checkResources(t, "proxyless", res.Proxyless)
		for _, p := range res.HTTPRoutes[nsName("fuzz")] {
			for _, c := range p.Conditions {
				if strings.Contains(c.Message, "rejected by xDS validation") {
					t.Errorf("only the safety net caught it: %s", c.Message)
				}
			}
		}
	})
}

// FuzzTranslateAuthorization builds an AuthorizationPolicy and a
// RequestAuthentication from fuzzed principals, paths, headers, claims,
// issuers and key URIs, and checks that Translate never panics, that
// every inbound configuration passes the protos' validation and makes a
// consistent snapshot with the outbound one, and that an object that is
// not accepted changes nothing.
func FuzzTranslateAuthorization(f *testing.F) {
	f.Add("spiffe://td/ns/a/*", "shop", "/api/*", "x-env", "pro.*", "https://idp.example.com/*", "groups", "admin*", "https://idp.example.com", "https://idp.example.com/keys", uint8(0))
	f.Add("*", "Bad_NS", "/a//b", ":path", "(", "*", "", "*a*", "https://", "http://x", uint8(1))
	f.Add("*/sa/x", "a", "/%2e%2E/x", "X", "", "iss/sub", "scope", "read", "iss", "https://k:99999/", uint8(2))
	f.Add("spiffe://*", "b", "/caf\u00e9*", "x y", "\xff", "*/", "a", "*", "ht\ttp://x", "https://u@h/", uint8(3))
	f.Fuzz(func(t *testing.T, principal, namespace, path, header, value, reqPrincipal, claim, claimValue, issuer, jwksURI string, flags uint8) {
		in, p := shopInputs()
		rule := causewayv1alpha1.AuthorizationRule{
			From: &causewayv1alpha1.AuthorizationSource{
				Principals:        []causewayv1alpha1.SPIFFEIDPattern{causewayv1alpha1.SPIFFEIDPattern(principal)},
				Namespaces:        []causewayv1alpha1.NamespaceName{causewayv1alpha1.NamespaceName(namespace)},
				RequestPrincipals: []causewayv1alpha1.RequestPrincipal{causewayv1alpha1.RequestPrincipal(reqPrincipal)},
			},
			To:   &causewayv1alpha1.AuthorizationDestination{Paths: []string{path}, Ports: []causewayv1alpha1.PortNumber{8080}},
			When: &causewayv1alpha1.AuthorizationCondition{Claims: []causewayv1alpha1.ClaimMatch{{Name: claim, Values: []string{claimValue}}}},
		}
		hm := causewayv1alpha1.HeaderMatch{Name: causewayv1alpha1.HTTPHeaderName(header)}
		switch flags % 3 {
		case 0:
			hm.Exact = &value
		case 1:
			hm.Prefix = &value
		case 2:
			hm.Regex = &value
		}
		rule.When.Headers = []causewayv1alpha1.HeaderMatch{hm}
		action := causewayv1alpha1.AuthorizationActionAllow
		if flags&4 != 0 {
			action = causewayv1alpha1.AuthorizationActionDeny
		}
		jr := causewayv1alpha1.JWTRule{Issuer: issuer, JWKSURI: jwksURI, FromParams: []string{claim}}
		if flags&8 != 0 {
			jr.JWKSURI, jr.JWKS = "", jwksURI
		}
		ap := authzPolicy("shop", "fuzz", action, nil, rule)
		ra := requestAuthn("shop", "fuzz", nil, jr)
		baseline := translate.Translate(in).Inbound.For(p)
		in.AuthorizationPolicies = []*causewayv1alpha1.AuthorizationPolicy{ap}
		in.RequestAuthentications = []*causewayv1alpha1.RequestAuthentication{ra}
		res := translate.Translate(in)
		rs := res.Inbound.For(p)
		checkResources(t, "inbound", rs)
		checkResources(t, "sidecar", sidecarResources(res, p))
		apOK := res.AuthorizationPolicies[ktypesName(ap)].Conditions[0].Status == metav1.ConditionTrue
		raOK := res.RequestAuthentications[ktypesName(ra)].Conditions[0].Status == metav1.ConditionTrue
		if !apOK && !raOK && !resourcesEqual(rs, baseline) {
			t.Error("objects that were not accepted changed the configuration")
		}
	})
}
