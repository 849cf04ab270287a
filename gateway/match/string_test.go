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
	"errors"
	"strings"
	"testing"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func exact(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func prefix(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: v}}
}

func suffix(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v}}
}

func contains(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: v}}
}

func regex(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}}
}

func fold(m *matcherv3.StringMatcher) *matcherv3.StringMatcher {
	m.IgnoreCase = true
	return m
}

func TestStringMatch(t *testing.T) {
	tests := map[string]struct {
		m     *matcherv3.StringMatcher
		match []string
		miss  []string
	}{
		"exact":              {m: exact("abc"), match: []string{"abc"}, miss: []string{"ABC", "abcd", "", "ab"}},
		"exact empty":        {m: exact(""), match: []string{""}, miss: []string{"a"}},
		"exact fold":         {m: fold(exact("aBc")), match: []string{"abc", "ABC", "AbC"}, miss: []string{"abcd", "ab"}},
		"fold is ASCII only": {m: fold(exact("é")), match: []string{"é"}, miss: []string{"É"}},
		"prefix":             {m: prefix("/api"), match: []string{"/api", "/api/v1", "/apix"}, miss: []string{"/ap", "/API", "x/api"}},
		"prefix fold":        {m: fold(prefix("/API")), match: []string{"/api/v1", "/Api"}, miss: []string{"/ap"}},
		"suffix":             {m: suffix(".css"), match: []string{"a.css", ".css"}, miss: []string{"a.CSS", "css", "a.cssx"}},
		"suffix fold":        {m: fold(suffix(".CSS")), match: []string{"a.css", "a.Css"}, miss: []string{"css"}},
		"contains":           {m: contains("mid"), match: []string{"mid", "amidb"}, miss: []string{"MID", "mi"}},
		"contains fold":      {m: fold(contains("MiD")), match: []string{"aMIDb", "mid"}, miss: []string{"md", ""}},
		"regex full match":   {m: regex(`[0-9]+`), match: []string{"42", "0"}, miss: []string{"42z", "a42", ""}},
		"regex alternation":  {m: regex(`2|3`), match: []string{"2", "3"}, miss: []string{"23", "32"}},
		"regex ignores fold": {m: fold(regex(`abc`)), match: []string{"abc"}, miss: []string{"ABC"}},
		"regex (?i)":         {m: regex(`(?i)abc`), match: []string{"ABC", "abc"}, miss: []string{"abcd"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := CompileString(tc.m)
			if err != nil {
				t.Fatalf("CompileString: %v", err)
			}
			for _, v := range tc.match {
				if !s.Match(v) {
					t.Errorf("Match(%q) = false, want true", v)
				}
			}
			for _, v := range tc.miss {
				if s.Match(v) {
					t.Errorf("Match(%q) = true, want false", v)
				}
			}
		})
	}
}

func TestCompileStringRefuses(t *testing.T) {
	custom := &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Custom{Custom: &xdscorev3.TypedExtensionConfig{
		Name: "x", TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Y"},
	}}}
	tests := map[string]struct {
		m           *matcherv3.StringMatcher
		want        string
		unsupported bool
	}{
		"custom":                                {m: custom, want: "string matcher custom (type.googleapis.com/x.Y)", unsupported: true},
		"no pattern":                            {m: &matcherv3.StringMatcher{}, want: "without a pattern"},
		"nil":                                   {m: nil, want: "without a pattern"},
		"bad regex":                             {m: regex("("), want: "safe_regex: regex"},
		"empty regex":                           {m: regex(""), want: "empty regex"},
		"regex that closes the anchoring group": {m: regex("a)|(b"), want: "safe_regex: regex"},
		"long regex":                            {m: regex(strings.Repeat("a", MaxRegexLen+1)), want: "longer than 1024 bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := CompileString(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CompileString: %v, want an error naming %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %t, want %t", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
	if _, err := CompileString(regex(strings.Repeat("a", MaxRegexLen))); err != nil {
		t.Errorf("a regex of MaxRegexLen bytes: %v", err)
	}
}

//nolint:staticcheck // the deprecated specifiers are what HeaderValue must still accept
func TestHeaderValue(t *testing.T) {
	tests := map[string]struct {
		h     *routev3.HeaderMatcher
		ok    bool
		match []string
		miss  []string
	}{
		"string_match":     {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("a")}}, ok: true, match: []string{"a"}, miss: []string{"b"}},
		"exact_match":      {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "a"}}, ok: true, match: []string{"a"}, miss: []string{"A", ""}},
		"empty exact":      {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{}}, ok: true, match: []string{"", "anything"}},
		"prefix_match":     {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "pre"}}, ok: true, match: []string{"prefix"}, miss: []string{"pr"}},
		"suffix_match":     {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "-suf"}}, ok: true, match: []string{"a-suf"}, miss: []string{"suf"}},
		"contains_match":   {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "mid"}}, ok: true, match: []string{"amidb"}, miss: []string{"ab"}},
		"safe_regex_match": {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "[0-9]+z"}}}, ok: true, match: []string{"42z"}, miss: []string{"42"}},
		"present_match":    {h: &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
		"none":             {h: &routev3.HeaderMatcher{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, ok, err := HeaderValue(tc.h)
			if err != nil || ok != tc.ok {
				t.Fatalf("HeaderValue = %t, %v; want %t, nil", ok, err, tc.ok)
			}
			for _, v := range tc.match {
				if !s.Match(v) {
					t.Errorf("Match(%q) = false, want true", v)
				}
			}
			for _, v := range tc.miss {
				if s.Match(v) {
					t.Errorf("Match(%q) = true, want false", v)
				}
			}
		})
	}
	bad := &routev3.HeaderMatcher{HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "("}}}
	if _, _, err := HeaderValue(bad); err == nil || !strings.Contains(err.Error(), "safe_regex_match") {
		t.Errorf("HeaderValue of a bad regex: %v, want an error naming safe_regex_match", err)
	}
}

func BenchmarkStringMatch(b *testing.B) {
	s, err := CompileString(fold(contains("ORDERS")))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Match("/api/v1/customers/42/orders/7")
	}
}
