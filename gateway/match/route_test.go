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

package match

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func request(method, target string, header map[string][]string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

func TestHeaderMatch(t *testing.T) {
	str := func(name string, m *matcherv3.StringMatcher) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
	}
	present := func(name string, v bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: v}}
	}
	invert := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.InvertMatch = true; return h }
	missingEmpty := func(h *routev3.HeaderMatcher) *routev3.HeaderMatcher { h.TreatMissingHeaderAsEmpty = true; return h }
	overTLS := httptest.NewRequest("GET", "https://a.example/x", nil)
	overTLS.TLS = &tls.ConnectionState{}
	tests := map[string]struct {
		h    *routev3.HeaderMatcher
		r    *http.Request
		want bool
	}{
		"exact":                     {h: str("x-a", exact("1")), r: request("GET", "/", map[string][]string{"X-A": {"1"}}), want: true},
		"name is canonicalised":     {h: str("X-a", exact("1")), r: request("GET", "/", map[string][]string{"x-A": {"1"}}), want: true},
		"exact mismatch":            {h: str("x-a", exact("1")), r: request("GET", "/", map[string][]string{"X-A": {"2"}})},
		"missing":                   {h: str("x-a", exact("1")), r: request("GET", "/", nil)},
		"repeated joined with ,":    {h: str("x-a", exact("1,2")), r: request("GET", "/", map[string][]string{"X-A": {"1", "2"}}), want: true},
		"repeated is not any value": {h: str("x-a", exact("2")), r: request("GET", "/", map[string][]string{"X-A": {"1", "2"}})},
		"inverted":                  {h: invert(str("x-a", exact("beta"))), r: request("GET", "/", map[string][]string{"X-A": {"alpha"}}), want: true},
		"inverted, match":           {h: invert(str("x-a", exact("beta"))), r: request("GET", "/", map[string][]string{"X-A": {"beta"}})},
		"inverted, missing":         {h: invert(str("x-a", exact("beta"))), r: request("GET", "/", nil), want: true},
		"missing as empty":          {h: missingEmpty(str("x-a", exact(""))), r: request("GET", "/", nil), want: true},
		"present":                   {h: present("x-a", true), r: request("GET", "/", map[string][]string{"X-A": {""}}), want: true},
		"present, missing":          {h: present("x-a", true), r: request("GET", "/", nil)},
		"absent":                    {h: present("x-a", false), r: request("GET", "/", nil), want: true},
		"absent, inverted":          {h: invert(present("x-a", false)), r: request("GET", "/", nil)},
		"no specifier is present":   {h: &routev3.HeaderMatcher{Name: "x-a"}, r: request("GET", "/", map[string][]string{"X-A": {"v"}}), want: true},
		"missing as empty, present": {h: missingEmpty(present("x-a", true)), r: request("GET", "/", nil), want: true},
		":method":                   {h: str(":method", exact("DELETE")), r: request("DELETE", "/", nil), want: true},
		":method mismatch":          {h: str(":method", exact("DELETE")), r: request("GET", "/", nil)},
		":authority":                {h: str(":authority", exact("a.example")), r: request("GET", "http://a.example/", nil), want: true},
		":path has the query":       {h: str(":path", exact("/x?q=1")), r: request("GET", "/x?q=1", nil), want: true},
		":scheme http":              {h: str(":scheme", exact("http")), r: request("GET", "/", nil), want: true},
		":scheme https":             {h: str(":scheme", exact("https")), r: overTLS, want: true},
		"unknown pseudo-header":     {h: present(":protocol", true), r: request("GET", "/", nil)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, err := CompileHeader(tc.h)
			if err != nil {
				t.Fatalf("CompileHeader: %v", err)
			}
			if got := h.Match(tc.r); got != tc.want {
				t.Errorf("Match = %t, want %t", got, tc.want)
			}
		})
	}
	rng := &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: 1, End: 2}}}
	if _, err := CompileHeader(rng); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "range_match") {
		t.Errorf("CompileHeader(range_match): %v, want ErrUnsupported naming range_match", err)
	}
}

func TestRouteMatch(t *testing.T) {
	path := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p}}
	}
	pfx := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
	}
	sep := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: p}}
	}
	re := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p}}}
	}
	nocase := func(m *routev3.RouteMatch) *routev3.RouteMatch { m.CaseSensitive = wrapperspb.Bool(false); return m }
	withHeader := func(m *routev3.RouteMatch) *routev3.RouteMatch {
		m.Headers = []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("POST")}}}
		return m
	}
	withQuery := func(m *routev3.RouteMatch) *routev3.RouteMatch {
		m.QueryParameters = []*routev3.QueryParameterMatcher{
			{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: regex(`2|3`)}},
			{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
		}
		return m
	}
	tests := map[string]struct {
		m     *routev3.RouteMatch
		match []string // "METHOD target" or a target for GET
		miss  []string
	}{
		"path":                   {m: path("/exact"), match: []string{"/exact", "/exact?q=1"}, miss: []string{"/exact/", "/EXACT", "/exac"}},
		"path, no case":          {m: nocase(path("/Exact")), match: []string{"/exact", "/EXACT"}, miss: []string{"/exact/"}},
		"prefix":                 {m: pfx("/api"), match: []string{"/api", "/apiv1", "/api/v1"}, miss: []string{"/ap", "/API"}},
		"prefix, no case":        {m: nocase(pfx("/CaSe")), match: []string{"/case/x", "/CASE"}, miss: []string{"/cas"}},
		"separated prefix":       {m: sep("/api"), match: []string{"/api", "/api/v1", "/api/"}, miss: []string{"/apiv1", "/ap"}},
		"separated prefix /":     {m: sep("/api/"), match: []string{"/api/", "/api/v1"}, miss: []string{"/api"}},
		"separated, no case":     {m: nocase(sep("/API")), match: []string{"/api/v1", "/Api"}, miss: []string{"/apiv1"}},
		"regex is a full match":  {m: re(`/items/[0-9]+`), match: []string{"/items/42"}, miss: []string{"/items/42/x", "/x/items/42"}},
		"regex ignores no case":  {m: nocase(re(`/items`)), match: []string{"/items"}, miss: []string{"/ITEMS"}},
		"headers":                {m: withHeader(pfx("/")), match: []string{"POST /x"}, miss: []string{"GET /x"}},
		"query":                  {m: withQuery(pfx("/")), match: []string{"/x?v=3&debug", "/x?debug=0&v=2&v=9"}, miss: []string{"/x?v=23&debug", "/x?v=3", "/x?debug", "/x?v=9&v=2&debug"}},
		"path before the header": {m: withHeader(path("/a")), match: []string{"POST /a"}, miss: []string{"POST /b"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, err := CompileRoute(tc.m)
			if err != nil {
				t.Fatalf("CompileRoute: %v", err)
			}
			try := func(s string) bool {
				method, target, ok := strings.Cut(s, " ")
				if !ok {
					method, target = "GET", s
				}
				r := request(method, target, nil)
				p, _, _ := strings.Cut(target, "?")
				return m.Match(r, p)
			}
			for _, s := range tc.match {
				if !try(s) {
					t.Errorf("Match(%s) = false, want true", s)
				}
			}
			for _, s := range tc.miss {
				if try(s) {
					t.Errorf("Match(%s) = true, want false", s)
				}
			}
		})
	}
}

func TestRouteMatchQueryParsesOnce(t *testing.T) {
	m, err := CompileRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/a"}, QueryParameters: []*routev3.QueryParameterMatcher{
		{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	query := func() url.Values { calls++; return url.Values{"q": {""}} }
	r := request("GET", "/b", nil)
	if m.MatchQuery(r, "/b", query) || calls != 0 {
		t.Errorf("a path mismatch: matched or parsed the query (%d calls)", calls)
	}
	if !m.MatchQuery(r, "/a", query) || calls != 1 {
		t.Errorf("MatchQuery = false or %d calls to query, want true and 1", calls)
	}
}

func TestRouteAccessors(t *testing.T) {
	m, err := CompileRoute(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/Api"}, CaseSensitive: wrapperspb.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind() != PathSeparatedPrefix || m.Path() != "/api" {
		t.Errorf("Kind, Path = %v, %q; want PathSeparatedPrefix, /api", m.Kind(), m.Path())
	}
}

func TestCompileRouteRefuses(t *testing.T) {
	mod := func(f func(m *routev3.RouteMatch)) *routev3.RouteMatch {
		m := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
		f(m)
		return m
	}
	tests := map[string]struct {
		m    *routev3.RouteMatch
		want string
	}{
		"nil":               {m: nil, want: "match is required"},
		"no path specifier": {m: &routev3.RouteMatch{}, want: "path specifier"},
		"connect_matcher":   {m: mod(func(m *routev3.RouteMatch) { m.PathSpecifier = &routev3.RouteMatch_ConnectMatcher_{} }), want: "connect_matcher"},
		"path_match_policy": {m: mod(func(m *routev3.RouteMatch) { m.PathSpecifier = &routev3.RouteMatch_PathMatchPolicy{} }), want: "path_match_policy"},
		"bad regex": {m: mod(func(m *routev3.RouteMatch) {
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(unclosed"}}
		}), want: "safe_regex: regex"},
		"runtime_fraction": {m: mod(func(m *routev3.RouteMatch) {
			m.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 1}}
		}), want: "runtime_fraction"},
		"grpc":        {m: mod(func(m *routev3.RouteMatch) { m.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{} }), want: "grpc"},
		"tls_context": {m: mod(func(m *routev3.RouteMatch) { m.TlsContext = &routev3.RouteMatch_TlsContextMatchOptions{} }), want: "tls_context"},
		"dynamic_metadata": {m: mod(func(m *routev3.RouteMatch) {
			m.DynamicMetadata = []*matcherv3.MetadataMatcher{{Filter: "f"}}
		}), want: "dynamic_metadata"},
		"filter_state": {m: mod(func(m *routev3.RouteMatch) {
			m.FilterState = []*matcherv3.FilterStateMatcher{{Key: "k"}}
		}), want: "filter_state"},
		"cookies": {m: mod(func(m *routev3.RouteMatch) {
			m.Cookies = []*routev3.CookieMatcher{{Name: "c", StringMatch: exact("x")}}
		}), want: "cookies"},
		"bad header": {m: mod(func(m *routev3.RouteMatch) {
			m.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regex("(")}}}
		}), want: `headers[0]: header "x": safe_regex`},
		"query present false": {m: mod(func(m *routev3.RouteMatch) {
			m.QueryParameters = []*routev3.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{}}}
		}), want: `query_parameters[0] "q": present_match false`},
		"query without specifier": {m: mod(func(m *routev3.RouteMatch) {
			m.QueryParameters = []*routev3.QueryParameterMatcher{{Name: "q"}}
		}), want: "needs string_match or present_match"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := CompileRoute(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CompileRoute: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestRawPath(t *testing.T) {
	tests := map[string]struct {
		r    *http.Request
		want string
	}{
		"origin form":          {r: request("GET", "/a/%2e%2e/b?q=1", nil), want: "/a/%2e%2e/b"},
		"not normalised":       {r: request("GET", "//a/./b", nil), want: "//a/./b"},
		"absolute form":        {r: request("GET", "http://h.example/x%2Fy?q", nil), want: "/x%2Fy"},
		"no request-target":    {r: &http.Request{URL: &url.URL{Path: "/p q"}}, want: "/p%20q"},
		"fragment is not path": {r: &http.Request{RequestURI: "/a#f", URL: &url.URL{Path: "/a"}}, want: "/a"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := RawPath(tc.r); got != tc.want {
				t.Errorf("RawPath = %q, want %q", got, tc.want)
			}
		})
	}
}
