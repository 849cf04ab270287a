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
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// PathKind is the kind of a RouteMatch's path specifier.
type PathKind uint8

// The path specifiers that CompileRoute supports.
const (
	PathPrefix PathKind = iota
	PathExact
	PathSeparatedPrefix
	PathRegex
)

// Route is a compiled RouteMatch.
type Route struct {
	kind          PathKind
	path          string // ASCII lower case when !caseSensitive
	re            *regexp.Regexp
	caseSensitive bool
	headers       []Header
	query         []queryParam
}

type queryParam struct {
	name    string
	present bool
	s       String
}

// CompileRoute compiles m. It refuses the path specifiers connect_matcher
// and path_match_policy and the fields runtime_fraction, grpc,
// tls_context, dynamic_metadata, filter_state and cookies, which it cannot
// honour, and present_match false on a query parameter, which Envoy
// refuses too.
func CompileRoute(m *routev3.RouteMatch) (Route, error) {
	if m == nil {
		return Route{}, errors.New("match is required")
	}
	out := Route{caseSensitive: m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.path = PathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.path = PathExact, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.path = PathSeparatedPrefix, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := CompileRegex(ps.SafeRegex)
		if err != nil {
			return Route{}, fmt.Errorf("safe_regex: %w", err)
		}
		out.kind, out.re = PathRegex, re
	case *routev3.RouteMatch_ConnectMatcher_:
		return Route{}, unsupported("connect_matcher")
	case *routev3.RouteMatch_PathMatchPolicy:
		return Route{}, unsupported("path_match_policy")
	case nil:
		return Route{}, errors.New("match without a path specifier")
	default:
		return Route{}, fmt.Errorf("path specifier %T: %w", ps, ErrUnsupported)
	}
	if !out.caseSensitive {
		out.path = asciiLower(out.path)
	}
	switch {
	case m.GetRuntimeFraction() != nil:
		return Route{}, unsupported("runtime_fraction")
	case m.GetGrpc() != nil:
		return Route{}, unsupported("grpc")
	case m.GetTlsContext() != nil:
		return Route{}, unsupported("tls_context")
	case len(m.GetDynamicMetadata()) > 0:
		return Route{}, unsupported("dynamic_metadata")
	case len(m.GetFilterState()) > 0:
		return Route{}, unsupported("filter_state")
	case len(m.GetCookies()) > 0:
		return Route{}, unsupported("cookies")
	}
	for i, h := range m.GetHeaders() {
		hm, err := CompileHeader(h)
		if err != nil {
			return Route{}, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qp := queryParam{name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := CompileString(s.StringMatch)
			if err != nil {
				return Route{}, fmt.Errorf("query_parameters[%d] %q: %w", i, q.GetName(), err)
			}
			qp.s = sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			if !s.PresentMatch {
				return Route{}, fmt.Errorf("query_parameters[%d] %q: present_match false: %w", i, q.GetName(), ErrUnsupported)
			}
			qp.present = true
		default:
			return Route{}, fmt.Errorf("query_parameters[%d] %q: needs string_match or present_match", i, q.GetName())
		}
		out.query = append(out.query, qp)
	}
	return out, nil
}

// RawPath is the path that routes match by default: r's request-target as
// the client sent it, without the query, like Envoy's :path. It is not
// normalised; a caller that wants the normalised path computes it.
func RawPath(r *http.Request) string {
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") {
		path = r.URL.EscapedPath()
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return path
}

// Kind returns the kind of the path specifier.
func (m *Route) Kind() PathKind { return m.kind }

// Path returns the prefix, path or path_separated_prefix, in ASCII lower
// case when the match is not case sensitive; "" for PathRegex.
func (m *Route) Path() string { return m.path }

// Match reports whether r matches, with path (without the query) as its
// path: the raw request-target or a normalised one, as the caller decides.
func (m *Route) Match(r *http.Request, path string) bool {
	return m.MatchQuery(r, path, r.URL.Query)
}

// MatchQuery is Match with the query parameters from query, which it calls
// only when m has query matchers; a caller that tries many routes can
// parse the query once. A parameter that appears more than once matches
// by its first value, as in Envoy.
func (m *Route) MatchQuery(r *http.Request, path string, query func() url.Values) bool {
	if !m.matchPath(path) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].Match(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		q := query()
		for i := range m.query {
			qp := &m.query[i]
			vals, ok := q[qp.name]
			if !ok || !qp.present && !qp.s.Match(vals[0]) {
				return false
			}
		}
	}
	return true
}

func (m *Route) matchPath(path string) bool {
	switch m.kind {
	case PathRegex:
		return m.re.MatchString(path)
	case PathExact:
		return len(path) == len(m.path) && m.hasPrefix(path)
	case PathSeparatedPrefix:
		return m.hasPrefix(path) && (len(path) == len(m.path) || strings.HasSuffix(m.path, "/") || path[len(m.path)] == '/')
	default:
		return m.hasPrefix(path)
	}
}

func (m *Route) hasPrefix(path string) bool {
	if m.caseSensitive {
		return strings.HasPrefix(path, m.path)
	}
	return len(path) >= len(m.path) && equalFoldLower(path[:len(m.path)], m.path)
}
