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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// maxTokenBytes bounds a token. Request heads are bounded by the proxy
// already; this keeps a long query parameter from reaching the parser.
const maxTokenBytes = 16 << 10

// provider is a compiled JwtProvider.
type provider struct {
	name            string
	issuer          string // "" accepts any iss (but see allow_missing)
	audiences       []string
	subjects        *match.String
	requireExp      bool
	maxLifetime     time.Duration
	skew            time.Duration
	keys            keySource
	locations       []*location
	forward         bool
	payloadHeader   string
	padPayload      bool
	payloadKey      string
	spaceDelimited  []string
	claimHeaders    []claimHeader
	clearRouteCache bool
}

type claimHeader struct {
	header string
	path   []string
}

type locKind uint8

const (
	locHeader locKind = iota
	locParam
	locCookie
)

// location is where a provider looks for tokens.
type location struct {
	kind       locKind
	name       string // canonical header name, query parameter or cookie name
	prefix     string // headers: the value starts with it, then the token
	foldPrefix bool   // compare prefix case-insensitively (auth-schemes)
}

func (l *location) key() string {
	return string(rune('0'+l.kind)) + "\x00" + l.name + "\x00" + l.prefix
}

// anyLocation is a location in the union that allow_missing and
// allow_missing_or_failed search, with the providers that use it.
type anyLocation struct {
	loc       *location
	providers []*provider
}

type rule struct {
	match match.Route
	req   *requirement // nil: no verification
}

type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

// requirement is a compiled JwtRequirement.
type requirement struct {
	kind      reqKind
	provider  *provider
	audiences []string // reqProvider: the audiences to accept (nil: any)
	children  []*requirement
}

// status orders outcomes: a higher one is the more informative failure
// when requires_any reports why none of its entries passed.
type status uint8

const (
	stOK status = iota
	stMissing
	stUnknownIssuer
	stFailed
)

type outcome struct {
	status   status
	err      error
	provider string
	tokens   []verified
}

type verified struct {
	p       *provider
	locs    []*location
	claims  map[string]any
	payload []byte
}

// request is the per-request state of one Authenticate call.
type request struct {
	ctx    context.Context
	r      *http.Request
	now    time.Time
	query  url.Values
	parsed bool
	keyBuf []any
}

func (rq *request) queryValues() url.Values {
	if !rq.parsed {
		rq.parsed = true
		// A malformed pair is skipped; the rest still counts.
		rq.query, _ = url.ParseQuery(rq.r.URL.RawQuery)
	}
	return rq.query
}

// found is one distinct token of a request and where it was.
type found struct {
	raw  string
	locs []*location
	any  []*anyLocation // set when searching the union of locations
}

func addFound(list []found, raw string, l *location, al *anyLocation) []found {
	for i := range list {
		if list[i].raw == raw {
			list[i].locs = append(list[i].locs, l)
			if al != nil {
				list[i].any = append(list[i].any, al)
			}
			return list
		}
	}
	f := found{raw: raw, locs: []*location{l}}
	if al != nil {
		f.any = []*anyLocation{al}
	}
	return append(list, f)
}

// extract appends the tokens at l to list. Empty values count as absent.
func (rq *request) extract(l *location, al *anyLocation, list []found) []found {
	switch l.kind {
	case locHeader:
		for _, v := range rq.r.Header[l.name] {
			if l.prefix != "" {
				if len(v) < len(l.prefix) {
					continue
				}
				if l.foldPrefix && !strings.EqualFold(v[:len(l.prefix)], l.prefix) || !l.foldPrefix && v[:len(l.prefix)] != l.prefix {
					continue
				}
				v = v[len(l.prefix):]
			}
			// Whatever follows the prefix, except surrounding
			// whitespace, is the token: a value with more in it is a
			// malformed token, not a shorter one.
			if v = strings.Trim(v, " \t"); v != "" {
				list = addFound(list, v, l, al)
			}
		}
	case locParam:
		for _, v := range rq.queryValues()[l.name] {
			if v != "" {
				list = addFound(list, v, l, al)
			}
		}
	case locCookie:
		for _, c := range rq.r.CookiesNamed(l.name) {
			if c.Value != "" {
				list = addFound(list, c.Value, l, al)
			}
		}
	}
	return list
}

func (a *Authenticator) eval(rq *request, req *requirement) outcome {
	switch req.kind {
	case reqProvider:
		return rq.evalProvider(req.provider, req.audiences)
	case reqAny:
		// The first entry that passes wins. When none does, report the
		// most informative failure: a bad token rather than a token of
		// another issuer, and either rather than a missing one.
		best := outcome{status: stMissing, err: ErrMissing}
		for _, c := range req.children {
			o := a.eval(rq, c)
			if o.status == stOK {
				return o
			}
			if o.status >= best.status {
				best = o
			}
		}
		return best
	case reqAll:
		var all outcome
		for _, c := range req.children {
			o := a.eval(rq, c)
			if o.status != stOK {
				return o
			}
			all.tokens = append(all.tokens, o.tokens...)
		}
		return all
	case reqAllowMissing, reqAllowMissingOrFailed:
		return a.evalAnyProvider(rq, req.kind == reqAllowMissingOrFailed)
	}
	return outcome{status: stFailed, err: errors.New("unknown requirement")}
}

// evalProvider verifies every token at p's locations: all must be valid,
// so that a bad token cannot ride along with a good one to a backend that
// reads the bad one.
func (rq *request) evalProvider(p *provider, auds []string) outcome {
	var toks []found
	for _, l := range p.locations {
		toks = rq.extract(l, nil, toks)
	}
	if len(toks) == 0 {
		return outcome{status: stMissing, err: ErrMissing, provider: p.name}
	}
	var out outcome
	for _, t := range toks {
		pt, err := parseToken(t.raw)
		if err != nil {
			return outcome{status: stFailed, err: err, provider: p.name}
		}
		v, st, err := rq.verify(p, pt, auds)
		if st != stOK {
			return outcome{status: st, err: err, provider: p.name}
		}
		v.locs = t.locs
		out.tokens = append(out.tokens, v)
	}
	return out
}

// evalAnyProvider implements allow_missing and allow_missing_or_failed:
// tokens from every provider's locations, each verified by a provider
// whose issuer equals the token's iss (both may be empty) and that reads
// the location it came from. A token that no provider accepts fails
// allow_missing and is ignored by allow_missing_or_failed; its claims are
// never used.
func (a *Authenticator) evalAnyProvider(rq *request, ignoreFailed bool) outcome {
	var toks []found
	for _, al := range a.anyLocations {
		toks = rq.extract(al.loc, al, toks)
	}
	var out outcome
	for _, t := range toks {
		v, o := rq.verifyAny(t)
		if o.status != stOK {
			if ignoreFailed {
				continue
			}
			return o
		}
		out.tokens = append(out.tokens, v)
	}
	return out
}

func (rq *request) verifyAny(t found) (verified, outcome) {
	pt, err := parseToken(t.raw)
	if err != nil {
		return verified{}, outcome{status: stFailed, err: err}
	}
	iss, err := pt.issuer()
	if err != nil {
		return verified{}, outcome{status: stFailed, err: err}
	}
	last := outcome{status: stUnknownIssuer, err: fmt.Errorf("%w: %q", ErrUnknownIssuer, iss)}
	var tried []*provider
	for _, al := range t.any {
		for _, p := range al.providers {
			if p.issuer != iss || containsProvider(tried, p) {
				continue
			}
			tried = append(tried, p)
			v, st, err := rq.verify(p, pt, p.audiences)
			if st == stOK {
				v.locs = t.locs
				return v, outcome{}
			}
			last = outcome{status: st, err: err, provider: p.name}
		}
	}
	return verified{}, last
}

func containsProvider(list []*provider, p *provider) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// parsedToken is a token that go-jose parsed: its alg is allowed, but
// nothing in it is verified yet.
type parsedToken struct {
	jws *jose.JSONWebSignature
	alg jose.SignatureAlgorithm
	kid string

	iss     string
	issErr  error
	issDone bool
}

func parseToken(raw string) (*parsedToken, error) {
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(raw, allowedAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformed, len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	return &parsedToken{jws: jws, alg: jose.SignatureAlgorithm(h.Algorithm), kid: h.KeyID}, nil
}

// issuer is the token's unverified iss. It only selects the provider and
// keys to verify with; the verified iss is checked again.
func (pt *parsedToken) issuer() (string, error) {
	if !pt.issDone {
		pt.issDone = true
		var peek struct {
			Iss string `json:"iss"`
		}
		if err := json.Unmarshal(pt.jws.UnsafePayloadWithoutVerification(), &peek); err != nil {
			pt.issErr = fmt.Errorf("%w: payload: %w", ErrMalformed, err)
		}
		pt.iss = peek.Iss
	}
	return pt.iss, pt.issErr
}

// verify checks pt's signature with p's keys and its claims with p's
// rules and auds.
func (rq *request) verify(p *provider, pt *parsedToken, auds []string) (verified, status, error) {
	if p.issuer != "" {
		iss, err := pt.issuer()
		if err != nil {
			return verified{}, stFailed, err
		}
		if iss != p.issuer {
			// Checked before the keys, so that a token meant for another
			// provider does not make this one fetch its JWKS.
			return verified{}, stUnknownIssuer, fmt.Errorf("%w: %q", ErrUnknownIssuer, iss)
		}
	}
	set, err := p.keys.keys(rq.ctx)
	if err != nil {
		return verified{}, stFailed, fmt.Errorf("%w: %w", ErrJWKSUnavailable, err)
	}
	cands, kidKnown := set.candidates(pt.kid, pt.alg, rq.keyBuf[:0])
	if len(cands) == 0 && pt.kid != "" && !kidKnown {
		// Perhaps the issuer rotated its keys.
		if fresh, err := p.keys.refresh(rq.ctx); err == nil && fresh != set {
			cands, _ = fresh.candidates(pt.kid, pt.alg, cands)
		}
	}
	rq.keyBuf = cands
	if len(cands) == 0 {
		return verified{}, stFailed, fmt.Errorf("%w: kid %q, alg %s", ErrUnknownKey, pt.kid, pt.alg)
	}
	var payload []byte
	for _, k := range cands {
		if payload, err = pt.jws.Verify(k); err == nil {
			break
		}
	}
	if err != nil {
		return verified{}, stFailed, fmt.Errorf("%w: %w", ErrSignature, err)
	}

	// From here on the payload is authentic. It is decoded with
	// go-jose's JSON decoder, which matches member names case-sensitively
	// and refuses duplicate members, so that the claims map (metadata,
	// headers) and the registered claims checked below cannot disagree:
	// with encoding/json, {"exp":1,"EXP":2e9} would be checked as 2e9 and
	// published as 1.
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return verified{}, stFailed, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return verified{}, stFailed, fmt.Errorf("%w: registered claims: %w", ErrMalformed, err)
	}
	if err := rq.checkClaims(p, &c, auds); err != nil {
		return verified{}, stFailed, err
	}
	return verified{p: p, claims: claims, payload: payload}, stOK, nil
}

func (rq *request) checkClaims(p *provider, c *jwt.Claims, auds []string) error {
	err := c.ValidateWithLeeway(jwt.Expected{Issuer: p.issuer, AnyAudience: auds, Time: rq.now}, p.skew)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return fmt.Errorf("%w: %q", ErrUnknownIssuer, c.Issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return fmt.Errorf("%w: %q", ErrAudience, []string(c.Audience))
	case errors.Is(err, jwt.ErrExpired):
		return fmt.Errorf("%w: at %s", ErrExpired, c.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet):
		return fmt.Errorf("%w: until %s", ErrNotYetValid, c.NotBefore.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return fmt.Errorf("%w: at %s", ErrIssuedInFuture, c.IssuedAt.Time().UTC().Format(time.RFC3339))
	default:
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if (p.requireExp || p.maxLifetime > 0) && c.Expiry == nil {
		return ErrExpirationRequired
	}
	if p.maxLifetime > 0 && c.Expiry.Time().Sub(rq.now) > p.maxLifetime {
		return fmt.Errorf("%w: expires at %s", ErrLifetime, c.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if p.subjects != nil && !p.subjects.Match(c.Subject) {
		return fmt.Errorf("%w: %q", ErrSubject, c.Subject)
	}
	return nil
}
