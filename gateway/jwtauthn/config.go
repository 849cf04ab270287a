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
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"golang.org/x/net/http/httpguts"

	"github.com/causeway-mesh/causeway/gateway/match"
)

// Defaults taken from the JwtAuthentication API documentation.
const (
	// DefaultCacheDuration is how long a remote JWKS is used before it is
	// fetched again when remote_jwks.cache_duration is unset.
	DefaultCacheDuration = 10 * time.Minute
	// DefaultClockSkew is the leeway for exp, nbf and iat when
	// clock_skew_seconds is unset (or 0, which proto3 cannot tell apart).
	DefaultClockSkew = 60 * time.Second
	// DefaultFailedRefetch is how long a remote JWKS is not fetched again
	// after a failed fetch (async_fetch.failed_refetch_duration).
	DefaultFailedRefetch = time.Second
	// KidRefreshInterval bounds the fetches that a token with an unknown
	// kid may cause: at most one per provider per interval, so that forged
	// kids cannot turn the proxy into a load generator for the JWKS server.
	KidRefreshInterval = time.Minute

	defaultFetchTimeout = 5 * time.Second
	// maxJWKSBytes bounds a fetched JWKS document.
	maxJWKSBytes = 1 << 20
	// maxFetchRetries bounds remote_jwks.retry_policy.num_retries.
	maxFetchRetries = 10
)

// Options are the process-level inputs of Compile. The zero value is usable.
type Options struct {
	// HTTPClient fetches remote JWKS. Nil means a client with
	// http.DefaultTransport. Each fetch is bounded by the provider's
	// http_uri.timeout, not by the client's Timeout.
	HTTPClient *http.Client

	// Now returns the current time for exp, nbf, iat and cache expiry.
	// Nil means time.Now. Tests inject a fake clock.
	Now func() time.Time

	// Logger receives JWKS fetch failures (Warn, once per failed fetch).
	// Nothing is logged per request. Nil discards.
	Logger *slog.Logger

	// AllowPlaintextJWKS permits http:// remote_jwks URIs to hosts other
	// than loopback addresses. Without it such a config is refused: a JWKS
	// read over plaintext can be replaced by anyone on the path, who then
	// mints tokens. Set it only when the mesh itself encrypts the fetch.
	AllowPlaintextJWKS bool
}

// Compile checks cfg and returns an Authenticator for it. It reads local
// JWKS (inline or from a file) at once and fails if one does not parse;
// remote JWKS are fetched on first use, or right away in the background
// when async_fetch is set. Any field whose meaning Compile does not
// implement is an error naming the field: a security setting is never
// ignored silently. cfg is not retained.
//
// Call Close when the Authenticator is no longer used, to stop background
// JWKS fetches.
func Compile(cfg *jwtauthnv3.JwtAuthentication, opts Options) (*Authenticator, error) {
	if cfg == nil {
		return nil, errors.New("jwt_authn config is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate jwt_authn config: %w", err)
	}
	if cfg.GetFilterStateRules() != nil {
		return nil, unsupported("filter_state_rules")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: http.DefaultTransport}
	}
	base, cancel := context.WithCancel(context.Background())
	a := &Authenticator{
		providers:  map[string]*provider{},
		reqMap:     map[string]*requirement{},
		bypassCORS: cfg.GetBypassCorsPreflight(),
		strip:      cfg.GetStripFailureResponse(),
		now:        opts.Now,
		cancel:     cancel,
	}
	ok := false
	defer func() {
		if !ok {
			cancel()
		}
	}()

	// Providers in name order, so that everything derived from them
	// (sanitised headers, the issuer lookup of allow_missing) is
	// deterministic.
	for _, name := range slices.Sorted(maps.Keys(cfg.GetProviders())) {
		p, err := compileProvider(base, name, cfg.GetProviders()[name], opts)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", name, err)
		}
		a.providers[name] = p
		a.ordered = append(a.ordered, p)
	}
	a.indexLocations()

	for _, name := range slices.Sorted(maps.Keys(cfg.GetRequirementMap())) {
		req, err := a.compileRequirement(cfg.GetRequirementMap()[name])
		if err != nil {
			return nil, fmt.Errorf("requirement_map %q: %w", name, err)
		}
		a.reqMap[name] = req
	}
	for i, r := range cfg.GetRules() {
		cr, err := a.compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		a.rules = append(a.rules, cr)
	}
	for _, p := range a.ordered {
		p.keys.start()
	}
	ok = true
	return a, nil
}

func unsupported(field string) error {
	return fmt.Errorf("%s is not supported", field)
}

func compileProvider(base context.Context, name string, pc *jwtauthnv3.JwtProvider, opts Options) (*provider, error) {
	switch {
	case pc.GetHeaderInMetadata() != "":
		return nil, unsupported("header_in_metadata")
	case pc.GetFailedStatusInMetadata() != "":
		return nil, unsupported("failed_status_in_metadata")
	}
	p := &provider{
		name:            name,
		issuer:          pc.GetIssuer(),
		audiences:       slices.Clone(pc.GetAudiences()),
		requireExp:      pc.GetRequireExpiration(),
		forward:         pc.GetForward(),
		padPayload:      pc.GetPadForwardPayloadHeader(),
		payloadKey:      pc.GetPayloadInMetadata(),
		spaceDelimited:  slices.Clone(pc.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims()),
		clearRouteCache: pc.GetClearRouteCache(),
		skew:            DefaultClockSkew,
	}
	if s := pc.GetClockSkewSeconds(); s > 0 {
		p.skew = time.Duration(s) * time.Second
	}
	if ml := pc.GetMaxLifetime(); ml != nil {
		p.maxLifetime = ml.AsDuration()
		if p.maxLifetime <= 0 {
			return nil, errors.New("max_lifetime must be positive")
		}
	}
	if sm := pc.GetSubjects(); sm != nil {
		m, err := match.CompileString(sm)
		if err != nil {
			return nil, fmt.Errorf("subjects: %w", err)
		}
		p.subjects = &m
	}
	if h := pc.GetForwardPayloadHeader(); h != "" {
		if err := checkHeaderName(h); err != nil {
			return nil, fmt.Errorf("forward_payload_header: %w", err)
		}
		p.payloadHeader = http.CanonicalHeaderKey(h)
	}
	for i, ch := range pc.GetClaimToHeaders() {
		c, err := compileClaimHeader(ch)
		if err != nil {
			return nil, fmt.Errorf("claim_to_headers[%d]: %w", i, err)
		}
		p.claimHeaders = append(p.claimHeaders, c)
	}
	locs, err := compileLocations(pc)
	if err != nil {
		return nil, err
	}
	p.locations = locs

	switch src := pc.GetJwksSourceSpecifier().(type) {
	case *jwtauthnv3.JwtProvider_LocalJwks:
		data, err := readDataSource(src.LocalJwks)
		if err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
		set, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
		p.keys = staticKeys{set: set}
	case *jwtauthnv3.JwtProvider_RemoteJwks:
		rk, err := compileRemote(base, src.RemoteJwks, opts)
		if err != nil {
			return nil, fmt.Errorf("remote_jwks: %w", err)
		}
		p.keys = rk
	default:
		return nil, errors.New("one of local_jwks and remote_jwks is required")
	}
	return p, nil
}

func compileLocations(pc *jwtauthnv3.JwtProvider) ([]*location, error) {
	var out []*location
	for i, h := range pc.GetFromHeaders() {
		if err := checkHeaderName(h.GetName()); err != nil {
			return nil, fmt.Errorf("from_headers[%d]: %w", i, err)
		}
		name := http.CanonicalHeaderKey(h.GetName())
		out = append(out, &location{
			kind:   locHeader,
			name:   name,
			prefix: h.GetValuePrefix(),
			// An auth-scheme is case-insensitive (RFC 9110 §11.1).
			foldPrefix: name == "Authorization" || name == "Proxy-Authorization",
		})
	}
	for i, q := range pc.GetFromParams() {
		if q == "" {
			return nil, fmt.Errorf("from_params[%d]: empty name", i)
		}
		out = append(out, &location{kind: locParam, name: q})
	}
	for i, c := range pc.GetFromCookies() {
		if c == "" {
			return nil, fmt.Errorf("from_cookies[%d]: empty name", i)
		}
		out = append(out, &location{kind: locCookie, name: c})
	}
	if len(out) == 0 {
		// The defaults of the API: "Authorization: Bearer <token>", then
		// the access_token query parameter (RFC 6750 §2.1, §2.3).
		out = []*location{
			{kind: locHeader, name: "Authorization", prefix: "Bearer ", foldPrefix: true},
			{kind: locParam, name: "access_token"},
		}
	}
	return out, nil
}

// indexLocations builds the union of all providers' token locations,
// which allow_missing and allow_missing_or_failed search, and the list of
// headers cleared on every request.
func (a *Authenticator) indexLocations() {
	byKey := map[string]*anyLocation{}
	seen := map[string]bool{}
	for _, p := range a.ordered {
		for _, l := range p.locations {
			k := l.key()
			al := byKey[k]
			if al == nil {
				al = &anyLocation{loc: l}
				byKey[k] = al
				a.anyLocations = append(a.anyLocations, al)
			}
			al.providers = append(al.providers, p)
		}
		// Headers the filter writes are removed from every request, so
		// that a client cannot supply them on a path that skips
		// verification, or when its token fails under
		// allow_missing_or_failed. (The API documents this for
		// claim_to_headers; the payload header gets the same treatment.)
		names := []string{p.payloadHeader}
		for _, c := range p.claimHeaders {
			names = append(names, c.header)
		}
		for _, n := range names {
			if n != "" && !seen[n] {
				seen[n] = true
				a.sanitize = append(a.sanitize, n)
			}
		}
	}
}

func checkHeaderName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	if strings.HasPrefix(name, ":") || !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("%q is not a valid header name", name)
	}
	return nil
}

func compileClaimHeader(ch *jwtauthnv3.JwtClaimToHeader) (claimHeader, error) {
	if err := checkHeaderName(ch.GetHeaderName()); err != nil {
		return claimHeader{}, err
	}
	c := claimHeader{header: http.CanonicalHeaderKey(ch.GetHeaderName())}
	switch {
	case ch.GetClaimName() != "" && len(ch.GetClaimPath()) > 0:
		return claimHeader{}, errors.New("claim_name and claim_path are both set")
	case ch.GetClaimName() != "":
		c.path = strings.Split(ch.GetClaimName(), ".")
	case len(ch.GetClaimPath()) > 0:
		for _, s := range ch.GetClaimPath() {
			c.path = append(c.path, s.GetKey())
		}
	default:
		return claimHeader{}, errors.New("one of claim_name and claim_path is required")
	}
	return c, nil
}

func readDataSource(ds *corev3.DataSource) ([]byte, error) {
	if ds.GetWatchedDirectory() != nil {
		return nil, unsupported("watched_directory")
	}
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.Filename, err)
		}
		return b, nil
	case *corev3.DataSource_EnvironmentVariable:
		v, ok := os.LookupEnv(s.EnvironmentVariable)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.EnvironmentVariable)
		}
		return []byte(v), nil
	default:
		return nil, errors.New("data source is empty")
	}
}

func compileRemote(base context.Context, rj *jwtauthnv3.RemoteJwks, opts Options) (*remoteKeys, error) {
	hu := rj.GetHttpUri()
	u, err := url.Parse(hu.GetUri())
	if err != nil {
		return nil, fmt.Errorf("http_uri.uri: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("http_uri.uri %q: scheme must be http or https", hu.GetUri())
	case u.Host == "":
		return nil, fmt.Errorf("http_uri.uri %q: no host", hu.GetUri())
	case u.Scheme == "http" && !opts.AllowPlaintextJWKS && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("http_uri.uri %q: plaintext JWKS fetches are refused (use https, or Options.AllowPlaintextJWKS)", hu.GetUri())
	}
	rk := &remoteKeys{
		uri:           u.String(),
		client:        opts.HTTPClient,
		timeout:       defaultFetchTimeout,
		cacheFor:      DefaultCacheDuration,
		failedRefetch: DefaultFailedRefetch,
		now:           opts.Now,
		log:           opts.Logger.With("jwksURI", u.Redacted()),
		base:          base,
	}
	if t := hu.GetTimeout(); t != nil && t.AsDuration() > 0 {
		rk.timeout = t.AsDuration()
	}
	if d := rj.GetCacheDuration(); d != nil {
		if rk.cacheFor = d.AsDuration(); rk.cacheFor <= 0 {
			return nil, errors.New("cache_duration must be positive")
		}
	}
	if af := rj.GetAsyncFetch(); af != nil {
		rk.prefetch = true
		if d := af.GetFailedRefetchDuration(); d != nil {
			if rk.failedRefetch = d.AsDuration(); rk.failedRefetch <= 0 {
				return nil, errors.New("async_fetch.failed_refetch_duration must be positive")
			}
		}
	}
	if rp := rj.GetRetryPolicy(); rp != nil {
		switch {
		case rp.GetRetryOn() != "":
			return nil, unsupported("retry_policy.retry_on")
		case rp.GetRetryPriority() != nil:
			return nil, unsupported("retry_policy.retry_priority")
		case len(rp.GetRetryHostPredicate()) > 0:
			return nil, unsupported("retry_policy.retry_host_predicate")
		case rp.GetHostSelectionRetryMaxAttempts() != 0:
			return nil, unsupported("retry_policy.host_selection_retry_max_attempts")
		}
		// The API's defaults: one retry, 1 s base interval, ten times
		// that at most.
		rk.retries = 1
		if n := rp.GetNumRetries(); n != nil {
			rk.retries = int(min(n.GetValue(), maxFetchRetries))
		}
		rk.backoffBase = time.Second
		if b := rp.GetRetryBackOff().GetBaseInterval(); b != nil {
			rk.backoffBase = b.AsDuration()
		}
		rk.backoffMax = 10 * rk.backoffBase
		if m := rp.GetRetryBackOff().GetMaxInterval(); m != nil {
			rk.backoffMax = m.AsDuration()
		}
		if rk.backoffBase <= 0 || rk.backoffMax < rk.backoffBase {
			return nil, errors.New("retry_policy.retry_back_off: need 0 < base_interval <= max_interval")
		}
	}
	return rk, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *Authenticator) compileRule(r *jwtauthnv3.RequirementRule) (rule, error) {
	m, err := match.CompileRoute(r.GetMatch())
	if err != nil {
		return rule{}, fmt.Errorf("match: %w", err)
	}
	out := rule{match: m}
	switch rt := r.GetRequirementType().(type) {
	case *jwtauthnv3.RequirementRule_Requires:
		if out.req, err = a.compileRequirement(rt.Requires); err != nil {
			return rule{}, fmt.Errorf("requires: %w", err)
		}
	case *jwtauthnv3.RequirementRule_RequirementName:
		req, ok := a.reqMap[rt.RequirementName]
		if !ok {
			return rule{}, fmt.Errorf("requirement_name %q is not in requirement_map", rt.RequirementName)
		}
		out.req = req
	case nil:
		// No requirement: requests matching this rule are not verified.
	default:
		return rule{}, fmt.Errorf("requirement type %T is not supported", rt)
	}
	return out, nil
}

func (a *Authenticator) compileRequirement(jr *jwtauthnv3.JwtRequirement) (*requirement, error) {
	switch rt := jr.GetRequiresType().(type) {
	case nil:
		// An empty requirement means "not required".
		return nil, nil
	case *jwtauthnv3.JwtRequirement_ProviderName:
		p, ok := a.providers[rt.ProviderName]
		if !ok {
			return nil, fmt.Errorf("provider_name %q is not a provider", rt.ProviderName)
		}
		return &requirement{kind: reqProvider, provider: p, audiences: p.audiences}, nil
	case *jwtauthnv3.JwtRequirement_ProviderAndAudiences:
		name := rt.ProviderAndAudiences.GetProviderName()
		p, ok := a.providers[name]
		if !ok {
			return nil, fmt.Errorf("provider_and_audiences: %q is not a provider", name)
		}
		auds := slices.Clone(rt.ProviderAndAudiences.GetAudiences())
		if len(auds) == 0 {
			// An empty override does not mean "any audience".
			auds = p.audiences
		}
		return &requirement{kind: reqProvider, provider: p, audiences: auds}, nil
	case *jwtauthnv3.JwtRequirement_RequiresAny:
		return a.compileList(reqAny, "requires_any", rt.RequiresAny.GetRequirements())
	case *jwtauthnv3.JwtRequirement_RequiresAll:
		return a.compileList(reqAll, "requires_all", rt.RequiresAll.GetRequirements())
	case *jwtauthnv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtauthnv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	case *jwtauthnv3.JwtRequirement_ExtractOnlyWithoutValidation:
		return nil, fmt.Errorf("%w: it forwards claims of tokens whose signature is not verified", unsupported("extract_only_without_validation"))
	default:
		return nil, fmt.Errorf("requirement %T is not supported", rt)
	}
}

func (a *Authenticator) compileList(kind reqKind, field string, list []*jwtauthnv3.JwtRequirement) (*requirement, error) {
	out := &requirement{kind: kind}
	for i, c := range list {
		cr, err := a.compileRequirement(c)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if cr == nil {
			// An empty requirement inside a list would make requires_any
			// always pass; Envoy's validation requires two or more
			// non-empty entries, so this is a config error, not a
			// wildcard.
			return nil, fmt.Errorf("%s[%d]: empty requirement", field, i)
		}
		out.children = append(out.children, cr)
	}
	return out, nil
}
