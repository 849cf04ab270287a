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

// Package match compiles and evaluates the Envoy matchers that the data
// plane's HTTP code shares: StringMatcher, HeaderMatcher and RouteMatch
// (envoy.type.matcher.v3 and envoy.config.route.v3).
//
// The proxy's route table, the jwt_authn filter's requirement rules and the
// RBAC engine all need the same meaning for the same configuration, the
// meaning Envoy gives it, so they compile through this one package.
//
// # Use
//
// Compile when configuration arrives (an xDS update), evaluate per request:
//
//	rm, err := match.CompileRoute(route.GetMatch()) // an error: NACK
//	...
//	if rm.Match(r, path) { ... }
//
// CompileString, CompileHeader and CompileRoute refuse what they cannot
// honour (runtime_fraction, dynamic_metadata, custom string matchers, ...)
// with an error that names the field and wraps ErrUnsupported, rather than
// ignore it: a matcher that silently matches more than it says is a
// security bug in a proxy.
//
// # Trade-offs
//
//   - safe_regex is RE2 (Envoy's google_re2), which Go's regexp implements;
//     it matches the whole value, and a regex is at most MaxRegexLen bytes.
//   - ignore_case folds ASCII letters only, as Envoy's absl helpers do, and
//     does not apply to safe_regex (use (?i)). String.Match never
//     allocates, so the RBAC engine can evaluate it per request.
//   - Header.Match reads an *http.Request: repeated headers match as one
//     value joined by ",", and the pseudo-headers :method, :authority,
//     :path (the request-target as sent) and :scheme are derived from it.
//   - Route.Match takes the path separately, so that a caller can match
//     the raw or the normalised path; query parameters are parsed only
//     when a route has query matchers, and a caller that tries many
//     routes can parse them once (MatchQuery).
package match
