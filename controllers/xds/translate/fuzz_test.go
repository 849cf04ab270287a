package translate_test

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

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
