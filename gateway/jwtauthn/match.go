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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// maxRegexLen bounds the regular expressions of a config; RE2 matching is
// linear in the input, but compiling is not free.
const maxRegexLen = 1024

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathSeparatedPrefix
	pathRegex
)

// routeMatch is a compiled RequirementRule.match.
type routeMatch struct {
	kind          pathKind
	path          string // lower case when !caseSensitive
	re            *regexp.Regexp
	caseSensitive bool
	headers       []headerMatch
	query         []queryMatch
}

type headerMatch struct {
	name           string // canonical, or a pseudo-header
	invert         bool
	present        bool // a present_match (or no specifier)
	presentValue   bool
	missingIsEmpty bool
	match          stringMatch
}

type queryMatch struct {
	name    string
	present bool
	match   stringMatch
}

type stringKind uint8

const (
	strExact stringKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

type stringMatch struct {
	kind       stringKind
	value      string // lower case when ignoreCase
	re         *regexp.Regexp
	ignoreCase bool
}

func compileRouteMatch(m *routev3.RouteMatch) (routeMatch, error) {
	if m == nil {
		return routeMatch{}, errors.New("match is required")
	}
	out := routeMatch{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.path = pathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.path = pathExact, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.path = pathSeparatedPrefix, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex.GetRegex())
		if err != nil {
			return routeMatch{}, fmt.Errorf("safe_regex: %w", err)
		}
		out.kind, out.re = pathRegex, re
	case *routev3.RouteMatch_ConnectMatcher_:
		return routeMatch{}, unsupported("connect_matcher")
	case *routev3.RouteMatch_PathMatchPolicy:
		return routeMatch{}, unsupported("path_match_policy")
	default:
		return routeMatch{}, fmt.Errorf("path specifier %T is not supported", ps)
	}
	if !out.caseSensitive {
		out.path = strings.ToLower(out.path)
	}
	switch {
	case m.GetRuntimeFraction() != nil:
		return routeMatch{}, unsupported("runtime_fraction")
	case m.GetGrpc() != nil:
		return routeMatch{}, unsupported("grpc")
	case m.GetTlsContext() != nil:
		return routeMatch{}, unsupported("tls_context")
	case len(m.GetDynamicMetadata()) > 0:
		return routeMatch{}, unsupported("dynamic_metadata")
	case len(m.GetFilterState()) > 0:
		return routeMatch{}, unsupported("filter_state")
	case len(m.GetCookies()) > 0:
		return routeMatch{}, unsupported("cookies")
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeaderMatch(h)
		if err != nil {
			return routeMatch{}, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := queryMatch{name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := compileStringMatch(s.StringMatch)
			if err != nil {
				return routeMatch{}, fmt.Errorf("query_parameters[%d]: %w", i, err)
			}
			qm.match = sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			if !s.PresentMatch {
				return routeMatch{}, fmt.Errorf("query_parameters[%d]: present_match false is not supported", i)
			}
			qm.present = true
		default:
			return routeMatch{}, fmt.Errorf("query_parameters[%d]: needs string_match or present_match", i)
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

//nolint:staticcheck // the deprecated *_match specifiers are still sent by control planes
func compileHeaderMatch(h *routev3.HeaderMatcher) (headerMatch, error) {
	hm := headerMatch{name: h.GetName(), invert: h.GetInvertMatch(), missingIsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if !strings.HasPrefix(hm.name, ":") {
		hm.name = http.CanonicalHeaderKey(hm.name)
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		hm.match, err = compileStringMatch(s.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		hm.match = stringMatch{kind: strExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.match = stringMatch{kind: strPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.match = stringMatch{kind: strSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.match = stringMatch{kind: strContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		var re *regexp.Regexp
		re, err = compileRegex(s.SafeRegexMatch.GetRegex())
		hm.match = stringMatch{kind: strRegex, re: re}
	case *routev3.HeaderMatcher_PresentMatch:
		hm.present, hm.presentValue = true, s.PresentMatch
	case nil:
		hm.present, hm.presentValue = true, true
	case *routev3.HeaderMatcher_RangeMatch:
		return hm, unsupported("range_match")
	default:
		return hm, fmt.Errorf("header %q: match %T is not supported", h.GetName(), s)
	}
	if err != nil {
		return hm, fmt.Errorf("header %q: %w", h.GetName(), err)
	}
	return hm, nil
}

func compileStringMatch(m *matcherv3.StringMatcher) (stringMatch, error) {
	sm := stringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex())
		if err != nil {
			return sm, fmt.Errorf("safe_regex: %w", err)
		}
		sm.kind, sm.re = strRegex, re
	case *matcherv3.StringMatcher_Custom:
		return sm, unsupported("custom string matcher")
	default:
		return sm, fmt.Errorf("string match %T is not supported", p)
	}
	if sm.ignoreCase {
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// compileRegex compiles an RE2 expression (Envoy's google_re2 dialect,
// which Go's regexp implements) for a full match, as Envoy's safe_regex
// matches the whole value.
func compileRegex(expr string) (*regexp.Regexp, error) {
	if len(expr) > maxRegexLen {
		return nil, fmt.Errorf("regex is longer than %d bytes", maxRegexLen)
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("compile regex: %w", err)
	}
	return re, nil
}

func (s *stringMatch) matches(v string) bool {
	if s.kind == strRegex {
		// ignore_case does not apply to safe_regex (Envoy: use (?i)).
		return s.re.MatchString(v)
	}
	if s.ignoreCase {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case strExact:
		return v == s.value
	case strPrefix:
		return strings.HasPrefix(v, s.value)
	case strSuffix:
		return strings.HasSuffix(v, s.value)
	case strContains:
		return strings.Contains(v, s.value)
	}
	return false
}

// requestPath is the path that rules match: the request-target as the
// client sent it, without the query, like Envoy's :path. It is not
// normalised: see the package documentation.
func requestPath(r *http.Request) string {
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") {
		path = r.URL.EscapedPath()
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return path
}

func (m *routeMatch) matches(r *http.Request, path string, query func() url.Values) bool {
	if !m.matchPath(path) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := query()
		for i := range m.query {
			qm := &m.query[i]
			vals, ok := q[qm.name]
			if !ok || !qm.present && !qm.match.matches(vals[0]) {
				return false
			}
		}
	}
	return true
}

func (m *routeMatch) matchPath(path string) bool {
	if m.kind == pathRegex {
		return m.re.MatchString(path)
	}
	if !m.caseSensitive {
		path = strings.ToLower(path)
	}
	switch m.kind {
	case pathExact:
		return path == m.path
	case pathSeparatedPrefix:
		return path == m.path || strings.HasPrefix(path, m.path) && (strings.HasSuffix(m.path, "/") || path[len(m.path)] == '/')
	default:
		return strings.HasPrefix(path, m.path)
	}
}

func (hm *headerMatch) matches(r *http.Request) bool {
	var v string
	var ok bool
	switch hm.name {
	case ":method":
		v, ok = r.Method, true
	case ":authority":
		v, ok = r.Host, true
	case ":path":
		v, ok = r.RequestURI, true
	case ":scheme":
		v, ok = "http", true
		if r.TLS != nil {
			v = "https"
		}
	default:
		vals := r.Header[hm.name]
		ok = len(vals) > 0
		// Envoy matches repeated headers as one comma-joined value.
		v = strings.Join(vals, ",")
	}
	if !ok && hm.missingIsEmpty {
		v, ok = "", true
	}
	var matched bool
	if hm.present {
		matched = ok == hm.presentValue
	} else {
		matched = ok && hm.match.matches(v)
	}
	return matched != hm.invert
}
