package authz

import (
	"errors"
	"strings"
	"testing"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	exprv1alpha1 "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/types/known/anypb"
)

func typed(url string) *corev3.TypedExtensionConfig {
	return &corev3.TypedExtensionConfig{Name: "x", TypedConfig: &anypb.Any{TypeUrl: url}}
}

// TestCompileUnsupported checks that every rule kind the engine does not
// implement is refused by name, wherever it is nested, rather than taken
// to match or not to match.
func TestCompileUnsupported(t *testing.T) {
	customString := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Custom{Custom: xdsTyped}}
	tests := map[string]struct {
		policy *rbacv3.Policy
		want   string // in the error
	}{
		"principal filter_state address_match": {
			policy: pol(perms(pAny()), ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{
				FilterState: &matcherv3.FilterStateMatcher{Key: "io.istio.peer", Matcher: &matcherv3.FilterStateMatcher_AddressMatch{AddressMatch: &matcherv3.AddressMatcher{}}},
			}})),
			want: `principals[0]: filter_state: key "io.istio.peer": matcher *matcherv3.FilterStateMatcher_AddressMatch`,
		},
		"principal custom": {
			policy: pol(perms(pAny()), ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_Custom{Custom: typed("type.googleapis.com/envoy.extensions.rbac.principals.mtls_authenticated.v3.Config")}})),
			want:   "principal custom (type.googleapis.com/envoy.extensions.rbac.principals.mtls_authenticated.v3.Config)",
		},
		"permission matcher": {
			policy: pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Matcher{Matcher: typed("type.googleapis.com/x.Y")}}), ids(idAny())),
			want:   "permissions[0]: permission matcher",
		},
		"permission uri_template": {
			policy: pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: typed("type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig")}}), ids(idAny())),
			want:   "permission uri_template",
		},
		"nested in and/or/not": {
			policy: pol(perms(pAny()), ids(idOr(idAny(), idAnd(idAny(), idNot(&rbacv3.Principal{Identifier: &rbacv3.Principal_Custom{Custom: typed("type.googleapis.com/x.Y")}}))))),
			want:   "principals[0]: or_ids[1]: and_ids[1]: not_id: principal custom",
		},
		"CEL condition": {
			policy: &rbacv3.Policy{Permissions: perms(pAny()), Principals: ids(idAny()), Condition: &exprv1alpha1.Expr{}},
			want:   "condition (CEL)",
		},
		"checked CEL condition": {
			policy: &rbacv3.Policy{Permissions: perms(pAny()), Principals: ids(idAny()), CheckedCondition: &exprv1alpha1.CheckedExpr{}},
			want:   "checked_condition (CEL)",
		},
		"metadata of another filter": {
			policy: pol(perms(pAny()), ids(idMeta(func() *matcherv3.MetadataMatcher {
				m := jwt(vPresent(), "request.auth.claims", "iss")
				m.Filter = "istio_authn"
				return m
			}()))),
			want: `principals[0]: metadata: filter "istio_authn"`,
		},
		"route metadata": {
			policy: pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
				MetadataMatcher: jwt(vPresent(), "jwt_payload"), MetadataSource: rbacv3.MetadataSource_ROUTE,
			}}}), ids(idAny())),
			want: "sourced_metadata: metadata_source ROUTE",
		},
		"custom string matcher": {
			policy: pol(perms(pAny()), ids(idAuth(customString))),
			want:   "authenticated.principal_name: string matcher custom",
		},
		"pseudo-header :scheme": {
			policy: pol(perms(pHeader(hString(":scheme", sExact("https")))), ids(idAny())),
			want:   "header: pseudo-header :scheme",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(allowRBAC(map[string]*rbacv3.Policy{"p": tc.policy}))
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile: %v; want ErrUnsupported naming %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), `policy "p"`) {
				t.Errorf("error %q does not name the policy", err)
			}
		})
	}
}

var xdsTyped = &xdscorev3.TypedExtensionConfig{Name: "x", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Y"}}

func TestCompileHTTPFilterMatcherUnsupported(t *testing.T) {
	_, err := CompileHTTPFilter(&rbacfilterv3.RBAC{
		Rules:   allowRBAC(nil),
		Matcher: &xdsmatcherv3.Matcher{OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: xdsTyped}}},
	})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "matcher") {
		t.Fatalf("CompileHTTPFilter(matcher): %v; want ErrUnsupported", err)
	}
}

// TestCompileInvalid checks configurations Envoy would NACK.
func TestCompileInvalid(t *testing.T) {
	tests := map[string]*rbacv3.RBAC{
		"unknown action":            {Action: rbacv3.RBAC_Action(7)},
		"nil policy":                allowRBAC(map[string]*rbacv3.Policy{"p": nil}),
		"no principals":             allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pAny()), nil)}),
		"no permissions":            allowRBAC(map[string]*rbacv3.Policy{"p": pol(nil, ids(idAny()))}),
		"nil permission":            allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(nil), ids(idAny()))}),
		"nil principal":             allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pAny()), ids(nil))}),
		"any: false":                allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Any{}}), ids(idAny()))}),
		"empty and_rules":           allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pAnd()), ids(idAny()))}),
		"nil and_rules":             allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{}}), ids(idAny()))}),
		"nil or_ids":                allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pAny()), ids(&rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{}}))}),
		"nil not_rule":              allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{}}), ids(idAny()))}),
		"bad regex":                 allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pPath(sRegex("a("))), ids(idAny()))}),
		"long regex":                allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pPath(sRegex(strings.Repeat("a", 2000)))), ids(idAny()))}),
		"empty prefix":              allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pPath(sPrefix(""))), ids(idAny()))}),
		"bad CIDR":                  allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pDestIP("10.0.0", 8)), ids(idAny()))}),
		"prefix_len too long":       allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pDestIP("10.0.0.0", 33)), ids(idAny()))}),
		"CIDR with zone":            allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pDestIP("fe80::1%eth0", 64)), ids(idAny()))}),
		"port out of range":         allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pPort(70000)), ids(idAny()))}),
		"header without name":       allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_Header{}}), ids(idAny()))}),
		"nil url_path":              allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(&rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{}}), ids(idAny()))}),
		"string matcher no pattern": allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pSNI(&matcherv3.StringMatcher{})), ids(idAny()))}),
		"metadata without path":     allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pMeta(jwt(vPresent()))), ids(idAny()))}),
		"metadata without value":    allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pMeta(jwt(nil, "a"))), ids(idAny()))}),
		"or_match of one":           allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pMeta(jwt(vOr(vPresent()), "a"))), ids(idAny()))}),
		"nil safe_regex_match": allowRBAC(map[string]*rbacv3.Policy{"p": pol(perms(pHeader(&routev3.HeaderMatcher{
			Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{},
		})), ids(idAny()))}),
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			e, err := Compile(cfg)
			if err == nil {
				t.Fatalf("Compile = %v, nil; want an error", e)
			}
			t.Log(err)
		})
	}
	if _, err := Compile(nil); err == nil {
		t.Error("Compile(nil): no error")
	}
	if _, err := CompileHTTPFilter(nil); err == nil {
		t.Error("CompileHTTPFilter(nil): no error")
	}
}

func TestCompileDeprecatedHeaderForms(t *testing.T) {
	h := func(name string, spec any) *rbacv3.Policy {
		m := &routev3.HeaderMatcher{Name: name}
		switch s := spec.(type) {
		case *routev3.HeaderMatcher_ExactMatch:
			m.HeaderMatchSpecifier = s
		case *routev3.HeaderMatcher_PrefixMatch:
			m.HeaderMatchSpecifier = s
		case *routev3.HeaderMatcher_SuffixMatch:
			m.HeaderMatchSpecifier = s
		case *routev3.HeaderMatcher_ContainsMatch:
			m.HeaderMatchSpecifier = s
		case *routev3.HeaderMatcher_SafeRegexMatch:
			m.HeaderMatchSpecifier = s
		}
		return pol(perms(pHeader(m)), ids(idAny()))
	}
	//nolint:staticcheck // the deprecated forms are what this test is about
	e, err := Compile(allowRBAC(map[string]*rbacv3.Policy{
		"a": h("x-a", &routev3.HeaderMatcher_ExactMatch{ExactMatch: "1"}),
		"b": h("x-b", &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "p"}),
		"c": h("x-c", &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "s"}),
		"d": h("x-d", &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "c"}),
		"e": h("x-e", &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[a-z]+"}}),
		"f": h("x-f", &routev3.HeaderMatcher_ExactMatch{}),                          // empty exact_match: any value
		"g": pol(perms(pHeader(&routev3.HeaderMatcher{Name: "x-g"})), ids(idAny())), // no specifier: present
	}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		k, v   string
		policy string
	}{
		{"X-A", "1", "a"}, {"X-A", "12", ""},
		{"X-B", "pq", "b"}, {"X-B", "qp", ""},
		{"X-C", "ss", "c"}, {"X-C", "sx", ""},
		{"X-D", "acb", "d"}, {"X-D", "ab", ""},
		{"X-E", "abc", "e"}, {"X-E", "ab1", ""},
		{"X-F", "anything", "f"},
		{"X-G", "", "g"},
	}
	for _, tc := range tests {
		ok, p := e.Allowed(with(mtls(web), header(tc.k, tc.v)))
		if p != tc.policy || ok != (tc.policy != "") {
			t.Errorf("%s: %s: Allowed = %v, %q; want policy %q", tc.k, tc.v, ok, p, tc.policy)
		}
	}
}
