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
	"regexp"
	"regexp/syntax"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// MaxRegexLen bounds a regular expression of a configuration: RE2 matching
// is linear in the input, but compiling is not free.
const MaxRegexLen = 1024

// ErrUnsupported is wrapped by the errors for matcher forms that this
// package refuses to compile.
var ErrUnsupported = errors.New("unsupported")

func unsupported(field string) error { return fmt.Errorf("%s: %w", field, ErrUnsupported) }

const (
	strExact uint8 = iota
	strPrefix
	strSuffix
	strContains
	strRegex
	strAny // deprecated exact_match "": any value
)

// String is a compiled StringMatcher. The zero value matches only the
// empty string.
type String struct {
	kind  uint8
	fold  bool           // ignore_case: ASCII only, as Envoy's absl helpers
	value string         // lower-cased when fold
	re    *regexp.Regexp // anchored at both ends
}

// CompileString compiles m. Unsupported patterns (custom, none) are an
// error that names them.
func CompileString(m *matcherv3.StringMatcher) (String, error) {
	s := String{fold: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		s.kind, s.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		s.kind, s.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		s.kind, s.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		s.kind, s.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := CompileRegex(p.SafeRegex)
		if err != nil {
			return s, fmt.Errorf("safe_regex: %w", err)
		}
		s.kind, s.re, s.fold = strRegex, re, false // ignore_case has no effect on safe_regex
	case *matcherv3.StringMatcher_Custom:
		return s, fmt.Errorf("string matcher custom (%s): %w", p.Custom.GetTypedConfig().GetTypeUrl(), ErrUnsupported)
	case nil:
		return s, errors.New("string matcher without a pattern")
	default:
		return s, fmt.Errorf("string matcher %T: %w", p, ErrUnsupported)
	}
	if s.fold {
		s.value = asciiLower(s.value)
	}
	return s, nil
}

// CompileRegex compiles an RE2 expression with Go's regexp to match whole
// strings, as Envoy's safe_regex does. Like Envoy it refuses an empty
// expression.
func CompileRegex(r *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	expr := r.GetRegex()
	if expr == "" {
		return nil, errors.New("empty regex")
	}
	if len(expr) > MaxRegexLen {
		return nil, fmt.Errorf("regex is longer than %d bytes", MaxRegexLen)
	}
	// Parse expr alone first: wrapped unparsed, "a)|(b" would become the
	// valid "^(?:a)|(b)$", which matches any value that starts with a.
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// HeaderValue compiles the value specifier of h: string_match, or one of
// the deprecated exact_match, prefix_match, suffix_match, contains_match
// and safe_regex_match, which control planes still send and which behave
// like the corresponding string_match (an empty exact_match matches any
// value, as in Envoy). ok is false when h has another specifier
// (present_match, range_match or none), which the caller handles.
//
//nolint:staticcheck // the deprecated *_match specifiers are still sent by control planes
func HeaderValue(h *routev3.HeaderMatcher) (s String, ok bool, err error) {
	switch p := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		s, err = CompileString(p.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		s = String{kind: strExact, value: p.ExactMatch}
		if p.ExactMatch == "" {
			s.kind = strAny
		}
	case *routev3.HeaderMatcher_PrefixMatch:
		s = String{kind: strPrefix, value: p.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		s = String{kind: strSuffix, value: p.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		s = String{kind: strContains, value: p.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		s.kind = strRegex
		s.re, err = CompileRegex(p.SafeRegexMatch)
		if err != nil {
			err = fmt.Errorf("safe_regex_match: %w", err)
		}
	default:
		return String{}, false, nil
	}
	return s, true, err
}

// Match reports whether v matches. It never allocates.
func (m *String) Match(v string) bool {
	switch m.kind {
	case strExact:
		if m.fold {
			return len(v) == len(m.value) && equalFoldLower(v, m.value)
		}
		return v == m.value
	case strPrefix:
		if m.fold {
			return len(v) >= len(m.value) && equalFoldLower(v[:len(m.value)], m.value)
		}
		return strings.HasPrefix(v, m.value)
	case strSuffix:
		if m.fold {
			return len(v) >= len(m.value) && equalFoldLower(v[len(v)-len(m.value):], m.value)
		}
		return strings.HasSuffix(v, m.value)
	case strContains:
		if m.fold {
			for i := 0; i+len(m.value) <= len(v); i++ {
				if equalFoldLower(v[i:i+len(m.value)], m.value) {
					return true
				}
			}
			return false
		}
		return strings.Contains(v, m.value)
	case strRegex:
		return m.re.MatchString(v)
	case strAny:
		return true
	}
	return false
}

// equalFoldLower compares s with lower, of the same length and already in
// lower case, folding ASCII letters only (strings.EqualFold would also
// fold Unicode, which Envoy does not).
func equalFoldLower(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == lower[i] || 'A' <= c && c <= 'Z' && c+'a'-'A' == lower[i] {
			continue
		}
		return false
	}
	return true
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
