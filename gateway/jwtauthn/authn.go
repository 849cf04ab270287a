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
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// MetadataNamespace is the dynamic metadata namespace that RBAC metadata
// matchers use for the payloads in Result.Metadata.
const MetadataNamespace = "envoy.filters.http.jwt_authn"

// Authenticator verifies requests against a compiled JwtAuthentication.
// It is safe for concurrent use. Create it with Compile.
type Authenticator struct {
	providers    map[string]*provider
	ordered      []*provider // by name
	anyLocations []*anyLocation
	rules        []rule
	reqMap       map[string]*requirement
	bypassCORS   bool
	strip        bool
	sanitize     []string // canonical header names removed from every request
	now          func() time.Time
	cancel       context.CancelFunc
}

// Token is one verified token.
type Token struct {
	// Provider is the name of the provider whose keys verified it.
	Provider string
	// Claims is the verified payload, decoded with encoding/json (numbers
	// are float64). It must not be modified.
	Claims map[string]any
}

// Result is what a successful Authenticate hands to the rest of the
// request's processing. Its maps and slices may be shared with the
// Authenticator and must not be modified; Apply copies what it writes.
type Result struct {
	// Tokens are the verified tokens, in verification order. Empty when
	// no rule required verification, or when allow_missing(_or_failed)
	// found no valid token.
	Tokens []Token

	// Metadata is the content of the MetadataNamespace dynamic metadata:
	// for each verified token whose provider sets payload_in_metadata,
	// that key maps to the token's claims (after
	// normalize_payload_in_metadata). Only verified tokens appear here.
	Metadata map[string]any

	// SetHeaders are request headers to set (replacing any value):
	// forward_payload_header and claim_to_headers.
	SetHeaders http.Header

	// RemoveHeaders are request headers to delete before SetHeaders are
	// set: every header the filter may write (on every request, so that
	// clients cannot forge them) and the token headers of verified tokens
	// whose provider does not forward them.
	RemoveHeaders []string

	// RemoveParams are query parameters that carried verified tokens of
	// providers that do not forward them.
	RemoveParams []string

	// ClearRouteCache is true when a provider with clear_route_cache
	// added headers or metadata: the route should be matched again.
	ClearRouteCache bool
}

// Apply edits r as res says: it deletes RemoveHeaders and RemoveParams
// (from r.URL.RawQuery and r.RequestURI, keeping the order of the other
// parameters) and then sets SetHeaders.
func (res *Result) Apply(r *http.Request) {
	for _, h := range res.RemoveHeaders {
		r.Header.Del(h)
	}
	if len(res.RemoveParams) > 0 && r.URL != nil {
		r.URL.RawQuery = removeParams(r.URL.RawQuery, res.RemoveParams)
		if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
			r.RequestURI = r.RequestURI[:i]
			if r.URL.RawQuery != "" {
				r.RequestURI += "?" + r.URL.RawQuery
			}
		}
	}
	for k, v := range res.SetHeaders {
		r.Header[k] = slices.Clone(v)
	}
}

// removeParams drops the parameters named in names from a raw query.
func removeParams(raw string, names []string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && slices.Contains(names, uk) {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// Reasons a request is rejected. Authenticate's *Error wraps one of them;
// test with errors.Is.
var (
	ErrMissing            = errors.New("jwt is missing")
	ErrMalformed          = errors.New("jwt is malformed")
	ErrUnknownIssuer      = errors.New("jwt issuer is not configured")
	ErrUnknownKey         = errors.New("jwt key is not in the jwks")
	ErrSignature          = errors.New("jwt signature is invalid")
	ErrExpired            = errors.New("jwt is expired")
	ErrNotYetValid        = errors.New("jwt is not yet valid")
	ErrIssuedInFuture     = errors.New("jwt is issued in the future")
	ErrAudience           = errors.New("audiences in jwt are not allowed")
	ErrSubject            = errors.New("jwt subject is not allowed")
	ErrExpirationRequired = errors.New("jwt has no expiration")
	ErrLifetime           = errors.New("jwt lifetime is longer than max_lifetime")
	ErrJWKSUnavailable    = errors.New("jwks is unavailable")
)

// Error is the error Authenticate returns for a request that must be
// rejected with 401. WriteResponse writes that response.
type Error struct {
	// Missing is true when no token was found where one is required, and
	// false when a token was present but is not acceptable.
	Missing bool
	// Provider names the provider whose check failed, if one did.
	Provider string
	// Realm is the challenge's realm: the request URL without its query.
	Realm string

	reason error // one of the Err* sentinels
	err    error // the full cause; wraps reason
	strip  bool  // strip_failure_response
}

func (e *Error) Error() string {
	if e.Provider != "" {
		return fmt.Sprintf("jwt authentication (provider %q): %v", e.Provider, e.err)
	}
	return "jwt authentication: " + e.err.Error()
}

// Unwrap returns the cause, which wraps one of the Err* sentinels.
func (e *Error) Unwrap() error { return e.err }

// StatusCode is the HTTP status to answer with: 401.
func (e *Error) StatusCode() int { return http.StatusUnauthorized }

// Challenge is the WWW-Authenticate value (RFC 6750 §3): the realm alone
// for a missing token, with error="invalid_token" for a bad one.
func (e *Error) Challenge() string {
	if e.Missing {
		return `Bearer realm="` + e.Realm + `"`
	}
	return `Bearer realm="` + e.Realm + `", error="invalid_token"`
}

// WriteResponse writes the 401 response: the challenge and, unless
// strip_failure_response is set, the reason as a text body. The reason
// never contains token contents or key-fetch details.
func (e *Error) WriteResponse(w http.ResponseWriter) {
	h := w.Header()
	h.Set("WWW-Authenticate", e.Challenge())
	if e.strip {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body := e.reason.Error()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(body))
}

// Close stops background JWKS fetches. Authenticate keeps working with
// the keys already fetched; fetches it needs fail.
func (a *Authenticator) Close() { a.cancel() }

// HasRequirement reports whether requirement_map has name, for callers
// that validate PerRouteConfig.requirement_name when compiling routes.
func (a *Authenticator) HasRequirement(name string) bool {
	_, ok := a.reqMap[name]
	return ok
}

// Authenticate applies the first rule whose match selects r (path prefix,
// exact path, path_separated_prefix or safe_regex, then headers and query
// parameters) and verifies the tokens that rule requires. No matching
// rule, or a rule without a requirement, means no verification.
//
// A nil error means r may proceed: call Result.Apply before forwarding
// it. A non-nil error is always an *Error: answer with its
// WriteResponse and do not forward r.
func (a *Authenticator) Authenticate(r *http.Request) (Result, error) {
	res := Result{RemoveHeaders: slices.Clip(a.sanitize)}
	if a.bypassCORS && isCORSPreflight(r) {
		return res, nil
	}
	rq := &request{ctx: r.Context(), r: r, now: a.now()}
	path := match.RawPath(r)
	for i := range a.rules {
		if a.rules[i].match.MatchQuery(r, path, rq.queryValues) {
			return a.run(rq, a.rules[i].req, res)
		}
	}
	return res, nil
}

// AuthenticateRequirement verifies r against requirement_map[name], as a
// route's PerRouteConfig.requirement_name asks; rules are not consulted.
// An unknown name is an error that is not an *Error (a configuration
// bug: check names with HasRequirement).
func (a *Authenticator) AuthenticateRequirement(r *http.Request, name string) (Result, error) {
	req, ok := a.reqMap[name]
	if !ok {
		return Result{}, fmt.Errorf("requirement %q is not in requirement_map", name)
	}
	res := Result{RemoveHeaders: slices.Clip(a.sanitize)}
	if a.bypassCORS && isCORSPreflight(r) {
		return res, nil
	}
	return a.run(&request{ctx: r.Context(), r: r, now: a.now()}, req, res)
}

func isCORSPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

func (a *Authenticator) run(rq *request, req *requirement, res Result) (Result, error) {
	if req == nil {
		return res, nil
	}
	o := a.eval(rq, req)
	if o.status != stOK {
		return res, a.reject(rq.r, o)
	}
	added := false
	for _, v := range o.tokens {
		p := v.p
		res.Tokens = append(res.Tokens, Token{Provider: p.name, Claims: v.claims})
		if p.payloadKey != "" {
			if res.Metadata == nil {
				res.Metadata = map[string]any{}
			}
			res.Metadata[p.payloadKey] = p.metadataClaims(v.claims)
			added = true
		}
		if p.payloadHeader != "" {
			enc := base64.RawURLEncoding
			if p.padPayload {
				enc = base64.URLEncoding
			}
			res.setHeader(p.payloadHeader, enc.EncodeToString(v.payload))
		}
		for _, ch := range p.claimHeaders {
			if s, ok := claimValue(v.claims, ch.path); ok {
				res.setHeader(ch.header, s)
				added = true
			}
		}
		if !p.forward {
			for _, l := range v.locs {
				switch l.kind {
				case locHeader:
					if !slices.Contains(res.RemoveHeaders, l.name) {
						res.RemoveHeaders = append(res.RemoveHeaders, l.name)
					}
				case locParam:
					if !slices.Contains(res.RemoveParams, l.name) {
						res.RemoveParams = append(res.RemoveParams, l.name)
					}
				case locCookie:
					// forward has no effect on cookies (as in Envoy).
				}
			}
		}
		if p.clearRouteCache && added {
			res.ClearRouteCache = true
		}
	}
	return res, nil
}

func (res *Result) setHeader(name, value string) {
	if res.SetHeaders == nil {
		res.SetHeaders = http.Header{}
	}
	res.SetHeaders[name] = []string{value}
}

func (a *Authenticator) reject(r *http.Request, o outcome) *Error {
	reason := ErrMissing
	for _, s := range []error{ErrMalformed, ErrUnknownIssuer, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYetValid,
		ErrIssuedInFuture, ErrAudience, ErrSubject, ErrExpirationRequired, ErrLifetime, ErrJWKSUnavailable} {
		if errors.Is(o.err, s) {
			reason = s
			break
		}
	}
	err := o.err
	if err == nil {
		err = reason
	}
	return &Error{
		Missing:  o.status == stMissing,
		Provider: o.provider,
		Realm:    realm(r),
		reason:   reason,
		err:      err,
		strip:    a.strip,
	}
}

// realm is the request URL without the query (which may hold a token),
// reduced to characters that are safe inside a quoted-string.
func realm(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	s := scheme + "://" + r.Host + match.RawPath(r)
	return strings.Map(func(c rune) rune {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return -1
		}
		return c
	}, s)
}

// claimValue renders the claim at path as a header value: strings, numbers
// and booleans verbatim, arrays and objects as base64 (standard alphabet,
// padded) of their JSON. Missing or null claims, and values that are not
// valid in a header, give false.
func claimValue(claims map[string]any, path []string) (string, bool) {
	var cur any = claims
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[seg]; !ok {
			return "", false
		}
	}
	var s string
	switch v := cur.(type) {
	case string:
		s = v
	case bool:
		s = strconv.FormatBool(v)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			s = strconv.FormatInt(int64(v), 10)
		} else {
			s = strconv.FormatFloat(v, 'g', -1, 64)
		}
	case []any, map[string]any:
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		s = base64.StdEncoding.EncodeToString(b)
	default:
		return "", false
	}
	if !httpguts.ValidHeaderFieldValue(s) {
		return "", false
	}
	return s, true
}

// metadataClaims applies normalize_payload_in_metadata.
func (p *provider) metadataClaims(claims map[string]any) map[string]any {
	if len(p.spaceDelimited) == 0 {
		return claims
	}
	out := maps.Clone(claims)
	for _, name := range p.spaceDelimited {
		s, ok := out[name].(string)
		if !ok {
			continue
		}
		fields := strings.Fields(s)
		list := make([]any, len(fields))
		for i, f := range fields {
			list[i] = f
		}
		out[name] = list
	}
	return out
}
