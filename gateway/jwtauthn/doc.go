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

// Package jwtauthn authenticates end users by JSON Web Token for the
// causeway-proxy. Its configuration is Envoy's JWT authentication HTTP
// filter, envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, as
// the agent sends it over xDS; its results feed RBAC metadata matchers
// under the "envoy.filters.http.jwt_authn" namespace (MetadataNamespace).
//
// # Use
//
//	a, err := jwtauthn.Compile(cfg, jwtauthn.Options{Logger: log})
//	if err != nil {
//		return err // NACK: the config asks for something this package does not do
//	}
//	defer a.Close()
//
//	res, err := a.Authenticate(r)
//	var ae *jwtauthn.Error
//	if errors.As(err, &ae) {
//		ae.WriteResponse(w) // 401 with WWW-Authenticate
//		return
//	}
//	res.Apply(r)          // strip tokens and forged claim headers, add claim headers
//	meta := res.Metadata  // for RBAC, under MetadataNamespace
//
// A route's PerRouteConfig is the caller's business: skip Authenticate
// when it says disabled, call AuthenticateRequirement when it names a
// requirement (check the name with HasRequirement when compiling routes).
//
// # What is implemented
//
// Rules: the first rule whose match selects the request applies; no rule
// means no verification. A match has prefix, path, path_separated_prefix
// or safe_regex (RE2, full match), case_sensitive, headers (string_match,
// the deprecated exact/prefix/suffix/contains/safe_regex forms,
// present_match, invert_match, treat_missing_header_as_empty, pseudo
// headers :method, :authority, :path, :scheme) and query_parameters,
// compiled by gateway/match, as the proxy's routes are.
// Requirements: provider_name, provider_and_audiences, requires_any,
// requires_all, allow_missing, allow_missing_or_failed, requirement_name
// with requirement_map. Also bypass_cors_preflight, strip_failure_response
// and stat_prefix (which has nothing to count here yet).
//
// Providers: issuer, audiences, subjects, require_expiration,
// max_lifetime, clock_skew_seconds (60 s by default, for exp, nbf and iat),
// local_jwks (inline_string, inline_bytes, filename, environment_variable,
// read once by Compile), remote_jwks (http_uri.uri and timeout,
// cache_duration, async_fetch, retry_policy num_retries and
// retry_back_off), from_headers with value_prefix, from_params,
// from_cookies (by default "Authorization: Bearer" then access_token),
// forward, forward_payload_header, pad_forward_payload_header,
// payload_in_metadata, normalize_payload_in_metadata, claim_to_headers
// (claim_name and claim_path), clear_route_cache (reported in
// Result.ClearRouteCache). jwt_cache_config is accepted and has no effect:
// it only saves work in Envoy.
//
// Everything else is refused by Compile with an error that names the
// field: filter_state_rules, header_in_metadata, failed_status_in_metadata,
// extract_only_without_validation (it would forward claims of unverified
// tokens), DataSource watched_directory, retry_policy fields other than
// num_retries and retry_back_off, and route match fields other than the
// ones above. A config that asks for something this package does not do is
// NACKed; it never runs with a security setting dropped.
//
// # Verification
//
// Tokens are JWS compact serialisations parsed by go-jose with an explicit
// algorithm allow-list: RS256/384/512, PS256/384/512, ES256/384/512 and
// EdDSA. "none" and every HMAC algorithm are refused before any key is
// looked at, so the classic confusion attack (HS256 "signed" with the RSA
// public key) cannot work, and keys in a "jwk" header are never used. A key
// must fit the token's alg (RSA for RS/PS, the matching curve for ES,
// Ed25519 for EdDSA), and the JWK's own "alg" and "use", when present,
// must agree. With a kid only keys with that kid are tried; without one,
// every key that fits. Symmetric and encryption keys in a JWKS are
// skipped. The iss is read before verification only to choose the
// provider; after verification iss, aud (any configured audience), exp,
// nbf and iat (with the clock skew), sub and the lifetime limits are
// checked on the authentic payload. Payloads are decoded with go-jose's
// JSON decoder, which matches names case-sensitively and refuses duplicate
// members, so the claims that are checked are the claims that are
// published.
//
// All tokens found at a provider's locations must verify: a good token
// does not carry a bad one through. requires_any passes with its first
// passing entry; when none passes it reports a bad token before a token of
// another issuer before a missing one. allow_missing and
// allow_missing_or_failed search every provider's locations and verify
// each token with the providers whose issuer equals its iss (a provider
// without issuer takes tokens without iss), as the API describes.
//
// A missing token gets 401 with `WWW-Authenticate: Bearer
// realm="<url>"`; any other failure 401 with `Bearer realm="<url>",
// error="invalid_token"`. The realm is the request URL without the query.
// Claims of a token that did not verify never reach Result.
//
// # Keys
//
// A remote JWKS is fetched on first use (at Compile, in the background,
// with async_fetch), used for cache_duration (10 minutes by default) and
// then fetched again by the next request that needs it; concurrent
// requests wait for one fetch. When a fetch fails the last good set stays
// in use (stale-while-error, without limit) and no fetch is tried for
// failed_refetch_duration (1 s by default); meanwhile requests do not wait.
// A token whose kid is in no key of the set causes a fetch, at most once a
// minute per provider (KidRefreshInterval), so that key rotation is picked
// up at once while forged kids cannot flood the JWKS server. Fetches use
// Options.HTTPClient directly (http_uri.cluster is not consulted), accept
// at most 1 MiB, and refuse http:// URIs except to loopback addresses
// unless Options.AllowPlaintextJWKS is set: a JWKS read in the clear can be
// replaced by anyone on the path.
//
// # Trade-offs and differences from Envoy
//
//   - Rules match the raw request path, as Envoy does without
//     normalize_path: "/public/../admin" does not match prefix "/admin".
//     Write rules that require a token by default ("/" last) and list the
//     exceptions, or normalise paths before this filter.
//   - A header value that starts with the prefix but has more than the
//     token after it ("Bearer a.b.c, x") is a malformed token, where Envoy
//     would extract the leading part. Repeated token headers are separate
//     tokens, and all must verify.
//   - The header named by forward_payload_header is removed from every
//     request, like claim_to_headers headers, so that clients cannot
//     forge it on paths that skip verification.
//   - An empty value, or a prefix with nothing after it, is no token
//     (missing), not a malformed one.
//   - provider_and_audiences with an empty audience list uses the
//     provider's audiences; it does not mean "any audience".
//   - An empty entry in requires_any or requires_all (which Envoy reads
//     as "always passes") is a Compile error; say allow_missing_or_failed
//     if that is meant.
//   - fast_listener has no effect: the proxy does not hold listeners for
//     JWKS fetches; requests that arrive before the first fetch wait for it.
//   - Verified tokens are not cached: every request verifies its
//     signature (see BenchmarkAuthenticateES256 for the cost).
package jwtauthn
