/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// outcomeOf summarises an Authenticate result for table tests: "ok
// <providers>", "missing" or "invalid".
func outcomeOf(res Result, err error) string {
	var ae *Error
	switch {
	case err == nil:
		s := "ok"
		for _, tk := range res.Tokens {
			s += " " + tk.Provider
		}
		return s
	case errors.As(err, &ae) && ae.Missing:
		return "missing"
	case errors.As(err, &ae):
		return "invalid"
	default:
		return "error: " + err.Error()
	}
}

func TestRules(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, ecKey)
	req := requireProvider("p")
	rule := func(m *routev3.RouteMatch, r *jwtauthnv3.JwtRequirement) *jwtauthnv3.RequirementRule {
		out := &jwtauthnv3.RequirementRule{Match: m}
		if r != nil {
			out.RequirementType = &jwtauthnv3.RequirementRule_Requires{Requires: r}
		}
		return out
	}
	cfg := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{"p": localProvider(jwks)},
		Rules: []*jwtauthnv3.RequirementRule{
			rule(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}}, nil),
			rule(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/public/"}}, nil),
			rule(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `/static/[a-z]+\.css`}},
			}, nil),
			rule(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/docs"},
			}, nil),
			rule(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/CI/"},
				CaseSensitive: wrapperspb.Bool(false),
			}, nil),
			rule(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{
					Name:                 "x-internal",
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "yes"}}},
				}, {
					Name:                 ":method",
					HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}}},
				}},
			}, nil),
			rule(&routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				QueryParameters: []*routev3.QueryParameterMatcher{{
					Name:                         "preview",
					QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true},
				}},
			}, nil),
			rule(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/"}}, req),
			// Nothing else matches: no verification.
		},
	}
	a := compile(t, cfg, Options{})
	good := sign(t, ecKey, claims())

	tests := map[string]struct {
		method, target string
		header         http.Header
		token          string
		want           string
	}{
		"exact path skips":              {target: "/healthz", want: "ok"},
		"exact path is exact":           {target: "/healthz/x", want: "ok"}, // no rule matches either
		"prefix skips":                  {target: "/public/a", want: "ok"},
		"regex skips":                   {target: "/static/site.css", want: "ok"},
		"regex is a full match":         {target: "/api/static/site.css", want: "missing"},
		"regex without match":           {target: "/static/site.css.map", want: "ok"},
		"separated prefix, exact":       {target: "/docs", want: "ok"},
		"separated prefix, segment":     {target: "/docs/a", want: "ok"},
		"case-insensitive prefix":       {target: "/ci/x", want: "ok"},
		"header match skips":            {target: "/api/a", header: http.Header{"X-Internal": {"yes"}}, want: "ok"},
		"header match needs all":        {method: http.MethodPost, target: "/api/a", header: http.Header{"X-Internal": {"yes"}}, want: "missing"},
		"header value differs":          {target: "/api/a", header: http.Header{"X-Internal": {"no"}}, want: "missing"},
		"query present skips":           {target: "/api/a?preview", want: "ok"},
		"api requires a token":          {target: "/api/a", want: "missing"},
		"api with a token":              {target: "/api/a", token: good, want: "ok p"},
		"api with a bad token":          {target: "/api/a", token: good + "x", want: "invalid"},
		"no rule, bad token is ignored": {target: "/other", token: "garbage", want: "ok"},
		"raw path is matched":           {target: "/public/../api/a", want: "ok"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tc.target, nil)
			for k, v := range tc.header {
				r.Header[k] = v
			}
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if got := outcomeOf(a.Authenticate(r)); got != tc.want {
				t.Fatalf("outcome = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRequirements checks requires_any, requires_all, allow_missing,
// allow_missing_or_failed and provider_and_audiences with two providers
// that read different headers, and a third sharing Authorization.
func TestRequirements(t *testing.T) {
	keys(t)
	const issuerB = "https://b.example"
	providers := map[string]*jwtauthnv3.JwtProvider{
		"a": localProvider(jwksJSON(t, ecKey), func(p *jwtauthnv3.JwtProvider) {
			p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: "x-a"}}
		}),
		"b": localProvider(jwksJSON(t, rsaKey), func(p *jwtauthnv3.JwtProvider) {
			p.Issuer = issuerB
			p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: "x-b"}}
		}),
	}
	pa := func(name string, auds ...string) *jwtauthnv3.JwtRequirement {
		return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderAndAudiences{
			ProviderAndAudiences: &jwtauthnv3.ProviderWithAudiences{ProviderName: name, Audiences: auds},
		}}
	}
	allowMissing := &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}
	allowFailed := &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}}
	cfg := &jwtauthnv3.JwtAuthentication{
		Providers: providers,
		Rules: []*jwtauthnv3.RequirementRule{
			prefixRule("/any", requireAny(requireProvider("a"), requireProvider("b"))),
			prefixRule("/both", requireAll(requireProvider("a"), requireProvider("b"))),
			prefixRule("/optional-a", requireAny(requireProvider("a"), allowMissing)),
			prefixRule("/allow-missing", allowMissing),
			prefixRule("/allow-failed", allowFailed),
			prefixRule("/aud-empty", pa("a")),
			prefixRule("/aud", pa("a", "other-aud")),
		},
	}
	a := compile(t, cfg, Options{})

	goodA := sign(t, ecKey, claims())
	goodB := sign(t, rsaKey, with(claims(), "iss", issuerB))
	badA := sign(t, ecKey, with(claims(), "exp", testNow.Add(-time.Hour).Unix()))
	unknownIss := sign(t, ecKey, with(claims(), "iss", "https://nobody.example"))
	otherAud := sign(t, ecKey, with(claims(), "aud", "other-aud"))
	// A token of b's issuer at a's location: allow_missing finds no
	// provider that reads x-a and has that issuer.
	bAtA := sign(t, rsaKey, with(claims(), "iss", issuerB))

	tests := map[string]struct {
		path    string
		xa, xb  string
		want    string
		wantErr error
	}{
		"any: a":                          {path: "/any", xa: goodA, want: "ok a"},
		"any: b":                          {path: "/any", xb: goodB, want: "ok b"},
		"any: neither":                    {path: "/any", want: "missing", wantErr: ErrMissing},
		"any: bad a, no b":                {path: "/any", xa: badA, want: "invalid", wantErr: ErrExpired},
		"any: bad a, good b":              {path: "/any", xa: badA, xb: goodB, want: "ok b"},
		"any: issuer of b at a":           {path: "/any", xa: bAtA, want: "invalid", wantErr: ErrUnknownIssuer},
		"all: both":                       {path: "/both", xa: goodA, xb: goodB, want: "ok a b"},
		"all: only a":                     {path: "/both", xa: goodA, want: "missing"},
		"all: bad b":                      {path: "/both", xa: goodA, xb: goodA, want: "invalid"},
		"optional a: missing":             {path: "/optional-a", want: "ok"},
		"optional a: good":                {path: "/optional-a", xa: goodA, want: "ok a"},
		"optional a: bad":                 {path: "/optional-a", xa: badA, want: "invalid", wantErr: ErrExpired},
		"allow_missing: none":             {path: "/allow-missing", want: "ok"},
		"allow_missing: good a and b":     {path: "/allow-missing", xa: goodA, xb: goodB, want: "ok a b"},
		"allow_missing: bad":              {path: "/allow-missing", xa: badA, want: "invalid", wantErr: ErrExpired},
		"allow_missing: unknown issuer":   {path: "/allow-missing", xa: unknownIss, want: "invalid", wantErr: ErrUnknownIssuer},
		"allow_missing: issuer elsewhere": {path: "/allow-missing", xa: bAtA, want: "invalid", wantErr: ErrUnknownIssuer},
		"allow_missing: garbage":          {path: "/allow-missing", xa: "garbage", want: "invalid", wantErr: ErrMalformed},
		"allow_failed: none":              {path: "/allow-failed", want: "ok"},
		"allow_failed: bad a, good b":     {path: "/allow-failed", xa: badA, xb: goodB, want: "ok b"},
		"allow_failed: garbage":           {path: "/allow-failed", xa: "garbage", want: "ok"},
		"audiences override: match":       {path: "/aud", xa: otherAud, want: "ok a"},
		"audiences override: provider's":  {path: "/aud", xa: goodA, want: "invalid", wantErr: ErrAudience},
		"empty override: provider's":      {path: "/aud-empty", xa: goodA, want: "ok a"},
		"empty override is not any":       {path: "/aud-empty", xa: otherAud, want: "invalid", wantErr: ErrAudience},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.xa != "" {
				r.Header.Set("x-a", tc.xa)
			}
			if tc.xb != "" {
				r.Header.Set("x-b", tc.xb)
			}
			res, err := a.Authenticate(r)
			if got := outcomeOf(res, err); got != tc.want {
				t.Fatalf("outcome = %q (%v), want %q", got, err, tc.want)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestRequirementMapAndCORS(t *testing.T) {
	keys(t)
	cfg := &jwtauthnv3.JwtAuthentication{
		Providers:           map[string]*jwtauthnv3.JwtProvider{"p": localProvider(jwksJSON(t, ecKey))},
		RequirementMap:      map[string]*jwtauthnv3.JwtRequirement{"need-p": requireProvider("p")},
		BypassCorsPreflight: true,
		Rules: []*jwtauthnv3.RequirementRule{{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtauthnv3.RequirementRule_RequirementName{RequirementName: "need-p"},
		}},
	}
	a := compile(t, cfg, Options{})
	if got := outcomeOf(a.Authenticate(bearer("/", ""))); got != "missing" {
		t.Errorf("rule by requirement_name: %q, want missing", got)
	}
	if !a.HasRequirement("need-p") || a.HasRequirement("nope") {
		t.Errorf("HasRequirement is wrong")
	}
	if got := outcomeOf(a.AuthenticateRequirement(bearer("/", sign(t, ecKey, claims())), "need-p")); got != "ok p" {
		t.Errorf("AuthenticateRequirement: %q, want ok p", got)
	}
	if _, err := a.AuthenticateRequirement(bearer("/", ""), "nope"); err == nil || errors.As(err, new(*Error)) {
		t.Errorf("unknown requirement name: err = %v, want a plain error", err)
	}

	pre := httptest.NewRequest(http.MethodOptions, "/", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	if got := outcomeOf(a.Authenticate(pre)); got != "ok" {
		t.Errorf("CORS preflight: %q, want ok", got)
	}
	pre.Header.Del("Access-Control-Request-Method")
	if got := outcomeOf(a.Authenticate(pre)); got != "missing" {
		t.Errorf("OPTIONS that is not a preflight: %q, want missing", got)
	}
}

func TestLocations(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, ecKey)
	good := sign(t, ecKey, claims())
	tests := map[string]struct {
		mod     func(*jwtauthnv3.JwtProvider)
		build   func(r *http.Request)
		want    string
		wantURL string            // after Apply
		wantHdr map[string]string // after Apply; "" means absent
	}{
		"default header, forwarded": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.Forward = true },
			build:   func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) },
			want:    "ok p",
			wantHdr: map[string]string{"Authorization": "Bearer " + good},
		},
		"default header, removed": {
			build:   func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) },
			want:    "ok p",
			wantHdr: map[string]string{"Authorization": ""},
		},
		"scheme is case-insensitive": {
			build: func(r *http.Request) { r.Header.Set("Authorization", "bEARER  "+good) },
			want:  "ok p",
		},
		"token with trailing junk is malformed": {
			build: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good+", Basic x") },
			want:  "invalid",
		},
		"empty bearer is missing": {
			build: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") },
			want:  "missing",
		},
		"default param, removed keeping order": {
			build:   func(r *http.Request) { r.URL.RawQuery = "a=1&access_token=" + good + "&b=2" },
			want:    "ok p",
			wantURL: "/x?a=1&b=2",
		},
		"good header and bad param": {
			build: func(r *http.Request) {
				r.Header.Set("Authorization", "Bearer "+good)
				r.URL.RawQuery = "access_token=bad"
			},
			want: "invalid",
		},
		"same token twice is verified once": {
			build: func(r *http.Request) {
				r.Header.Set("Authorization", "Bearer "+good)
				r.URL.RawQuery = "access_token=" + good
			},
			want:    "ok p",
			wantURL: "/x",
		},
		"repeated header with a bad value": {
			build: func(r *http.Request) {
				r.Header.Add("Authorization", "Bearer "+good)
				r.Header.Add("Authorization", "Bearer "+good+"x")
			},
			want: "invalid",
		},
		"custom header with prefix": {
			mod: func(p *jwtauthnv3.JwtProvider) {
				p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: "x-token", ValuePrefix: "JWT:"}}
			},
			build:   func(r *http.Request) { r.Header.Set("X-Token", "JWT:"+good) },
			want:    "ok p",
			wantHdr: map[string]string{"X-Token": ""},
		},
		"custom prefix is case-sensitive": {
			mod: func(p *jwtauthnv3.JwtProvider) {
				p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: "x-token", ValuePrefix: "JWT:"}}
			},
			build: func(r *http.Request) { r.Header.Set("X-Token", "jwt:"+good) },
			want:  "missing",
		},
		"custom header replaces the defaults": {
			mod: func(p *jwtauthnv3.JwtProvider) {
				p.FromHeaders = []*jwtauthnv3.JwtHeader{{Name: "x-token"}}
			},
			build: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+good) },
			want:  "missing",
		},
		"custom param": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.FromParams = []string{"jwt"} },
			build:   func(r *http.Request) { r.URL.RawQuery = "jwt=" + good },
			want:    "ok p",
			wantURL: "/x",
		},
		"cookie": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.FromCookies = []string{"session"} },
			build:   func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: good}) },
			want:    "ok p",
			wantHdr: map[string]string{"Cookie": "session=" + good},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := localProvider(jwks)
			if tc.mod != nil {
				tc.mod(p)
			}
			a := compile(t, oneProvider(p), Options{})
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			tc.build(r)
			r.RequestURI = r.URL.RequestURI()
			res, err := a.Authenticate(r)
			if got := outcomeOf(res, err); got != tc.want {
				t.Fatalf("outcome = %q (%v), want %q", got, err, tc.want)
			}
			if err != nil {
				return
			}
			res.Apply(r)
			if tc.wantURL != "" {
				if got := r.URL.RequestURI(); got != tc.wantURL {
					t.Errorf("URL after Apply = %q, want %q", got, tc.wantURL)
				}
				if r.RequestURI != tc.wantURL {
					t.Errorf("RequestURI after Apply = %q, want %q", r.RequestURI, tc.wantURL)
				}
			}
			for k, v := range tc.wantHdr {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s after Apply = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestResultHeadersAndMetadata(t *testing.T) {
	keys(t)
	p := localProvider(jwksJSON(t, ecKey), func(p *jwtauthnv3.JwtProvider) {
		p.Forward = true
		p.PayloadInMetadata = "jwt_payload"
		p.NormalizePayloadInMetadata = &jwtauthnv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"scope"}}
		p.ForwardPayloadHeader = "x-jwt-payload"
		p.ClearRouteCache = true
		p.ClaimToHeaders = []*jwtauthnv3.JwtClaimToHeader{
			{HeaderName: "x-sub", ClaimName: "sub"},
			{HeaderName: "x-tenant", ClaimName: "org.tenant"},
			{HeaderName: "x-level", ClaimName: "level"},
			{HeaderName: "x-admin", ClaimName: "admin"},
			{HeaderName: "x-ratio", ClaimName: "ratio"},
			{HeaderName: "x-groups", ClaimName: "groups"},
			{HeaderName: "x-dotted", ClaimPath: []*jwtauthnv3.JwtClaimToHeader_PathSegment{{Key: "https://example.com/role"}}},
			{HeaderName: "x-evil", ClaimName: "evil"},
			{HeaderName: "x-absent", ClaimName: "absent"},
		}
	})
	cfg := &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{"p": p},
		Rules: []*jwtauthnv3.RequirementRule{
			prefixRule("/open", nil),
			prefixRule("/", requireProvider("p")),
		},
	}
	a := compile(t, cfg, Options{})
	c := with(claims(),
		"scope", "read write",
		"org", map[string]any{"tenant": "acme"},
		"level", 3,
		"admin", true,
		"ratio", 0.5,
		"groups", []string{"a", "b"},
		"https://example.com/role", "owner",
		"evil", "x\r\nInjected: 1",
	)
	tok := sign(t, ecKey, c)

	r := bearer("/api", tok)
	// Forged values must not survive.
	r.Header.Set("X-Sub", "mallory")
	r.Header.Set("X-Evil", "forged")
	r.Header.Set("X-Jwt-Payload", "forged")
	res, err := a.Authenticate(r)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	res.Apply(r)
	groups, _ := json.Marshal([]string{"a", "b"})
	want := map[string]string{
		"X-Sub":         "alice",
		"X-Tenant":      "acme",
		"X-Level":       "3",
		"X-Admin":       "true",
		"X-Ratio":       "0.5",
		"X-Groups":      base64.StdEncoding.EncodeToString(groups),
		"X-Dotted":      "owner",
		"X-Evil":        "",
		"X-Absent":      "",
		"Authorization": "Bearer " + tok,
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	payload, err := base64.RawURLEncoding.DecodeString(r.Header.Get("X-Jwt-Payload"))
	if err != nil {
		t.Fatalf("payload header: %v", err)
	}
	var gotPayload map[string]any
	if err := json.Unmarshal(payload, &gotPayload); err != nil || gotPayload["sub"] != "alice" {
		t.Errorf("payload header decodes to %v (%v)", gotPayload, err)
	}
	md, ok := res.Metadata["jwt_payload"].(map[string]any)
	if !ok {
		t.Fatalf("Metadata = %v, want jwt_payload", res.Metadata)
	}
	if !reflect.DeepEqual(md["scope"], []any{"read", "write"}) || md["sub"] != "alice" || md["iss"] != testIssuer {
		t.Errorf("metadata payload = %v", md)
	}
	if res.Tokens[0].Claims["scope"] != "read write" {
		t.Errorf("normalisation changed the token's claims: %v", res.Tokens[0].Claims["scope"])
	}
	if !res.ClearRouteCache {
		t.Errorf("ClearRouteCache = false, want true")
	}

	// A path that skips verification still loses forged claim headers.
	r = bearer("/open", "")
	r.Header.Set("X-Sub", "mallory")
	r.Header.Set("X-Jwt-Payload", "forged")
	r.Header.Set("X-Other", "kept")
	res, err = a.Authenticate(r)
	if err != nil {
		t.Fatalf("Authenticate /open: %v", err)
	}
	res.Apply(r)
	if r.Header.Get("X-Sub") != "" || r.Header.Get("X-Jwt-Payload") != "" || r.Header.Get("X-Other") != "kept" {
		t.Errorf("headers after Apply on a skipped path: %v", r.Header)
	}
	if res.Metadata != nil || res.Tokens != nil {
		t.Errorf("skipped path has results: %+v", res)
	}
	if !slices.Contains(res.RemoveHeaders, "X-Sub") {
		t.Errorf("RemoveHeaders = %v, want X-Sub", res.RemoveHeaders)
	}
}

func TestPaddedPayloadHeader(t *testing.T) {
	keys(t)
	p := localProvider(jwksJSON(t, ecKey), func(p *jwtauthnv3.JwtProvider) {
		p.ForwardPayloadHeader = "x-jwt-payload"
		p.PadForwardPayloadHeader = true
	})
	a := compile(t, oneProvider(p), Options{})
	// A payload whose length is not a multiple of 3 needs padding.
	for _, sub := range []string{"a", "ab", "abc"} {
		res, err := a.Authenticate(bearer("/", sign(t, ecKey, with(claims(), "sub", sub))))
		if err != nil {
			t.Fatal(err)
		}
		v := res.SetHeaders.Get("X-Jwt-Payload")
		if _, err := base64.URLEncoding.DecodeString(v); err != nil {
			t.Errorf("sub %q: padded payload %q does not decode: %v", sub, v, err)
		}
	}
}

// TestConcurrentAuthenticate runs many requests at once (for -race).
func TestConcurrentAuthenticate(t *testing.T) {
	keys(t)
	a := compile(t, oneProvider(localProvider(jwksJSON(t, ecKey, rsaKey))), Options{})
	toks := []string{sign(t, ecKey, claims()), sign(t, rsaKey, claims()), "bad"}
	errs := make(chan error, 64)
	for i := range 64 {
		go func() {
			_, err := a.Authenticate(bearer("/", toks[i%3]))
			if (i%3 == 2) != (err != nil) {
				errs <- errors.New("wrong outcome for " + toks[i%3][:3])
				return
			}
			errs <- nil
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
