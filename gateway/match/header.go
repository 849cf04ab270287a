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
	"fmt"
	"net/http"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Header is a compiled HeaderMatcher.
type Header struct {
	name           string // canonical, or a pseudo-header
	s              String
	present        bool // a present_match (or no specifier)
	presentValue   bool
	invert         bool
	missingIsEmpty bool
}

// CompileHeader compiles h. range_match is refused. Header names are
// canonicalised; a name starting with ":" is a pseudo-header, of which
// :method, :authority, :path and :scheme are derived from the request
// and any other is never present.
func CompileHeader(h *routev3.HeaderMatcher) (Header, error) {
	m := Header{name: h.GetName(), invert: h.GetInvertMatch(), missingIsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if !strings.HasPrefix(m.name, ":") {
		m.name = http.CanonicalHeaderKey(m.name)
	}
	s, ok, err := HeaderValue(h)
	if err != nil {
		return m, fmt.Errorf("header %q: %w", h.GetName(), err)
	}
	if ok {
		m.s = s
		return m, nil
	}
	switch p := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		m.present, m.presentValue = true, p.PresentMatch
	case nil:
		m.present, m.presentValue = true, true // Envoy's default: present_match
	case *routev3.HeaderMatcher_RangeMatch:
		return m, fmt.Errorf("header %q: %w", h.GetName(), unsupported("range_match"))
	default:
		return m, fmt.Errorf("header %q: match %T: %w", h.GetName(), p, ErrUnsupported)
	}
	return m, nil
}

// Match reports whether r matches. present_match compares presence
// (treat_missing_header_as_empty makes a missing header present, with an
// empty value); any other matcher does not match a missing header, and
// invert_match inverts the result: an inverted matcher matches a request
// without the header. (The RBAC engine's header matcher differs here: it
// fails on a missing header, inverted or not.)
func (m *Header) Match(r *http.Request) bool {
	var v string
	var ok bool
	switch m.name {
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
		vals := r.Header[m.name]
		switch len(vals) {
		case 0:
		case 1:
			v, ok = vals[0], true
		default:
			// Envoy matches repeated headers as one comma-joined value.
			v, ok = strings.Join(vals, ","), true
		}
	}
	if !ok && m.missingIsEmpty {
		v, ok = "", true
	}
	var matched bool
	if m.present {
		matched = ok == m.presentValue
	} else {
		matched = ok && m.s.Match(v)
	}
	return matched != m.invert
}
