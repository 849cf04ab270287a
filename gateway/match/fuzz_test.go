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
	"regexp"
	"strings"
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// FuzzString checks String.Match against a reference built from the
// strings package: folding is ASCII-only, and a compiled regex never
// matches only a part of the value.
func FuzzString(f *testing.F) {
	f.Add(uint8(0), false, "abc", "abc")
	f.Add(uint8(1), true, "/API", "/api/v1")
	f.Add(uint8(2), true, ".Css", "a.CSS")
	f.Add(uint8(3), true, "MiD", "aMIDb")
	f.Add(uint8(4), false, "[0-9]+", "42z")
	f.Add(uint8(3), true, "é", "É")
	f.Add(uint8(4), false, "a)|(b", "axxx")
	f.Fuzz(func(t *testing.T, kind uint8, ignoreCase bool, pattern, v string) {
		m := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
		lower := func(s string) string {
			if !ignoreCase {
				return s
			}
			b := []byte(s) // byte by byte: v need not be valid UTF-8
			for i, c := range b {
				if 'A' <= c && c <= 'Z' {
					b[i] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
		var want func() bool
		switch kind % 5 {
		case 0:
			m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: pattern}
			want = func() bool { return lower(v) == lower(pattern) }
		case 1:
			m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: pattern}
			want = func() bool { return strings.HasPrefix(lower(v), lower(pattern)) }
		case 2:
			m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: pattern}
			want = func() bool { return strings.HasSuffix(lower(v), lower(pattern)) }
		case 3:
			m.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: pattern}
			want = func() bool { return strings.Contains(lower(v), lower(pattern)) }
		default:
			m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: pattern}}
		}
		s, err := CompileString(m)
		if err != nil {
			if want != nil {
				t.Fatalf("CompileString(%v): %v", m, err)
			}
			return // a bad or empty regex
		}
		got := s.Match(v)
		if want != nil {
			// ASCII folding keeps byte lengths, so the reference is exact
			// for any bytes, valid UTF-8 or not.
			if got != want() {
				t.Fatalf("%v: Match(%q) = %t, want %t", m, v, got, !got)
			}
			return
		}
		// Reference: the leftmost-longest match of the unanchored
		// expression spans v exactly when some match is all of v.
		ref := regexp.MustCompile(pattern)
		ref.Longest()
		loc := ref.FindStringIndex(v)
		if full := loc != nil && loc[0] == 0 && loc[1] == len(v); got != full {
			t.Fatalf("%v: Match(%q) = %t, want %t (Envoy's full match)", m, v, got, full)
		}
	})
}
