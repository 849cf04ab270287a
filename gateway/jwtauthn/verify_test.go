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
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestVerify covers signature and claim checks with a local JWKS: every
// case is one request with one Authorization header.
func TestVerify(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, rsaKey, ecKey, edKey, ec384Key)

	rsaPub, err := x509.MarshalPKIXPublicKey(rsaKey.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	// hmacWith signs HS256 with secret: the key-confusion attack when the
	// secret is the provider's public key.
	hmacWith := func(secret []byte, kid string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return serialize(t, s, mustJSON(t, claims()))
	}
	valid := sign(t, ecKey, claims())
	parts := strings.Split(valid, ".")

	tests := map[string]struct {
		token   string
		wantErr error // nil: accepted
	}{
		"RS256":                     {token: sign(t, rsaKey, claims())},
		"ES256":                     {token: valid},
		"ES384":                     {token: sign(t, ec384Key, claims())},
		"EdDSA":                     {token: sign(t, edKey, claims())},
		"PS256 with the RSA key":    {token: sign(t, signingKey{kid: rsaKey.kid, key: rsaKey.key, alg: jose.PS256}, claims())},
		"no kid: every key tried":   {token: sign(t, noKid(ecKey), claims())},
		"aud list with one allowed": {token: sign(t, ecKey, with(claims(), "aud", []string{"other", testAudience}))},
		"expired within skew":       {token: sign(t, ecKey, with(claims(), "exp", testNow.Add(-30*time.Second).Unix()))},
		"nbf within skew":           {token: sign(t, ecKey, with(claims(), "nbf", testNow.Add(30*time.Second).Unix()))},
		"no exp, nbf, iat":          {token: sign(t, ecKey, with(claims(), "exp", nil, "nbf", nil, "iat", nil))},

		"wrong issuer":      {token: sign(t, ecKey, with(claims(), "iss", "https://evil.example")), wantErr: ErrUnknownIssuer},
		"no issuer":         {token: sign(t, ecKey, with(claims(), "iss", nil)), wantErr: ErrUnknownIssuer},
		"wrong audience":    {token: sign(t, ecKey, with(claims(), "aud", "other")), wantErr: ErrAudience},
		"no audience":       {token: sign(t, ecKey, with(claims(), "aud", nil)), wantErr: ErrAudience},
		"expired":           {token: sign(t, ecKey, with(claims(), "exp", testNow.Add(-61*time.Second).Unix())), wantErr: ErrExpired},
		"nbf in the future": {token: sign(t, ecKey, with(claims(), "nbf", testNow.Add(2*time.Minute).Unix())), wantErr: ErrNotYetValid},
		"iat in the future": {token: sign(t, ecKey, with(claims(), "iat", testNow.Add(2*time.Minute).Unix())), wantErr: ErrIssuedInFuture},
		"exp is a string":   {token: sign(t, ecKey, with(claims(), "exp", "tomorrow")), wantErr: ErrMalformed},
		"ISS is not iss":    {token: sign(t, ecKey, with(claims(), "iss", nil, "ISS", testIssuer)), wantErr: ErrUnknownIssuer},
		"EXP is not exp": {
			token:   sign(t, ecKey, with(claims(), "exp", testNow.Add(-time.Hour).Unix(), "EXP", testNow.Add(time.Hour).Unix())),
			wantErr: ErrExpired,
		},
		"duplicate exp": {
			token:   signRaw(t, ecKey, []byte(`{"iss":"`+testIssuer+`","aud":"`+testAudience+`","exp":1,"exp":4102444800}`)),
			wantErr: ErrMalformed,
		},
		"key not in the JWKS": {token: sign(t, noKid(otherEC), claims()), wantErr: ErrSignature},
		"unknown kid":         {token: sign(t, otherEC, claims()), wantErr: ErrUnknownKey},
		"known kid, other key": {
			token:   sign(t, signingKey{kid: ecKey.kid, key: otherEC.key, alg: jose.ES256}, claims()),
			wantErr: ErrSignature,
		},
		"ES256 header on the P-384 key": {
			token:   sign(t, signingKey{kid: ec384Key.kid, key: otherEC.key, alg: jose.ES256}, claims()),
			wantErr: ErrUnknownKey,
		},
		"RS256 header on the EC key's kid": {
			token:   sign(t, signingKey{kid: ecKey.kid, key: rsaKey.key, alg: jose.RS256}, claims()),
			wantErr: ErrUnknownKey,
		},
		"attacker key in a jwk header": {
			token: sign(t, noKid(otherEC), claims(), func(o *jose.SignerOptions) { o.EmbedJWK = true }),
			// go-jose embeds the key only without a kid.
			wantErr: ErrSignature,
		},
		"alg none": {
			token:   unsignedToken(map[string]any{"alg": "none", "typ": "JWT"}, claims(), ""),
			wantErr: ErrMalformed,
		},
		"alg none with kid": {
			token:   unsignedToken(map[string]any{"alg": "none", "kid": ecKey.kid}, claims(), ""),
			wantErr: ErrMalformed,
		},
		"alg None": {
			token:   unsignedToken(map[string]any{"alg": "None"}, claims(), ""),
			wantErr: ErrMalformed,
		},
		"HS256 with the RSA public key PEM":  {token: hmacWith(rsaPubPEM, rsaKey.kid), wantErr: ErrMalformed},
		"HS256 with the RSA public key DER":  {token: hmacWith(rsaPub, ""), wantErr: ErrMalformed},
		"signature stripped":                 {token: parts[0] + "." + parts[1] + ".", wantErr: ErrSignature},
		"signature of another token":         {token: parts[0] + "." + strings.Split(sign(t, ecKey, with(claims(), "sub", "mallory")), ".")[1] + "." + parts[2], wantErr: ErrSignature},
		"two parts":                          {token: parts[0] + "." + parts[1], wantErr: ErrMalformed},
		"four parts":                         {token: valid + ".x", wantErr: ErrMalformed},
		"not base64":                         {token: "a!b.c.d", wantErr: ErrMalformed},
		"garbage":                            {token: "hello", wantErr: ErrMalformed},
		"payload is an array":                {token: signRaw(t, ecKey, []byte(`[1,2]`)), wantErr: ErrMalformed},
		"payload is null":                    {token: signRaw(t, ecKey, []byte(`null`)), wantErr: ErrUnknownIssuer},
		"payload is not JSON":                {token: signRaw(t, ecKey, []byte(`iss=me`)), wantErr: ErrMalformed},
		"JSON serialisation, not compact":    {token: `{"payload":"e30","signatures":[]}`, wantErr: ErrMalformed},
		"critical header go-jose cannot see": {token: signCrit(t), wantErr: ErrSignature},
	}
	a := compile(t, oneProvider(localProvider(jwks)), Options{})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := a.Authenticate(bearer("/x", tc.token))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if len(res.Tokens) != 1 || res.Tokens[0].Provider != "p" || res.Tokens[0].Claims["sub"] == nil {
					t.Fatalf("Tokens = %+v, want one verified token of p", res.Tokens)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Authenticate error = %v, want %v", err, tc.wantErr)
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Missing || ae.StatusCode() != http.StatusUnauthorized {
				t.Fatalf("error %#v is not a 401 for an invalid token", err)
			}
			if len(res.Tokens) != 0 || res.Metadata != nil || res.SetHeaders != nil {
				t.Fatalf("a rejected request has results: %+v", res)
			}
		})
	}
}

// signCrit signs a token whose protected header has a "crit" parameter
// naming an extension the verifier does not implement (RFC 7515 §4.1.11):
// it must be refused.
func signCrit(t *testing.T) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey.key, KeyID: ecKey.kid}},
		(&jose.SignerOptions{}).WithHeader("crit", []string{"exp-ext"}).WithHeader("exp-ext", true))
	if err != nil {
		t.Fatal(err)
	}
	return serialize(t, s, mustJSON(t, claims()))
}

func TestProviderClaimRules(t *testing.T) {
	keys(t)
	jwks := jwksJSON(t, ecKey)
	tests := map[string]struct {
		mod     func(*jwtauthnv3.JwtProvider)
		claims  map[string]any
		raw     []byte // signed instead of claims when set
		wantErr error
	}{
		"no issuer configured accepts any iss": {
			mod:    func(p *jwtauthnv3.JwtProvider) { p.Issuer = "" },
			claims: with(claims(), "iss", "https://anyone.example"),
		},
		"no audiences configured accepts any aud": {
			mod:    func(p *jwtauthnv3.JwtProvider) { p.Audiences = nil },
			claims: with(claims(), "aud", "whatever"),
		},
		"require_expiration without exp": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.RequireExpiration = true },
			claims:  with(claims(), "exp", nil),
			wantErr: ErrExpirationRequired,
		},
		"max_lifetime respected": {
			mod:    func(p *jwtauthnv3.JwtProvider) { p.MaxLifetime = durationpb.New(2 * time.Hour) },
			claims: claims(),
		},
		"max_lifetime exceeded": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.MaxLifetime = durationpb.New(30 * time.Minute) },
			claims:  claims(),
			wantErr: ErrLifetime,
		},
		"max_lifetime without exp": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.MaxLifetime = durationpb.New(30 * time.Minute) },
			claims:  with(claims(), "exp", nil),
			wantErr: ErrExpirationRequired,
		},
		"subjects prefix matches": {
			mod: func(p *jwtauthnv3.JwtProvider) {
				p.Subjects = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://td/"}}
			},
			claims: with(claims(), "sub", "spiffe://td/ns/a"),
		},
		"subjects prefix does not match": {
			mod: func(p *jwtauthnv3.JwtProvider) {
				p.Subjects = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://td/"}}
			},
			claims:  with(claims(), "sub", "spiffe://other/ns/a"),
			wantErr: ErrSubject,
		},
		"null payload without issuer check": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.Issuer, p.Audiences = "", nil },
			raw:     []byte(`null`),
			wantErr: ErrMalformed,
		},
		"clock_skew_seconds widens the leeway": {
			mod:    func(p *jwtauthnv3.JwtProvider) { p.ClockSkewSeconds = 300 },
			claims: with(claims(), "exp", testNow.Add(-4*time.Minute).Unix()),
		},
		"clock_skew_seconds narrows the leeway": {
			mod:     func(p *jwtauthnv3.JwtProvider) { p.ClockSkewSeconds = 5 },
			claims:  with(claims(), "exp", testNow.Add(-10*time.Second).Unix()),
			wantErr: ErrExpired,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := compile(t, oneProvider(localProvider(jwks, tc.mod)), Options{})
			tok := sign(t, ecKey, tc.claims)
			if tc.raw != nil {
				tok = signRaw(t, ecKey, tc.raw)
			}
			_, err := a.Authenticate(bearer("/", tok))
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Authenticate error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestChallengeAndBody(t *testing.T) {
	keys(t)
	cfg := oneProvider(localProvider(jwksJSON(t, ecKey)))
	for _, strip := range []bool{false, true} {
		cfg.StripFailureResponse = strip
		a := compile(t, cfg, Options{})
		tests := map[string]struct {
			req           *http.Request
			wantChallenge string
			wantBody      string
		}{
			"missing": {
				req:           bearer("/orders?access_token=&q=1", ""),
				wantChallenge: `Bearer realm="http://example.com/orders"`,
				wantBody:      ErrMissing.Error(),
			},
			"other scheme is missing": {
				req: func() *http.Request {
					r := bearer("/orders", "")
					r.Header.Set("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
					return r
				}(),
				wantChallenge: `Bearer realm="http://example.com/orders"`,
				wantBody:      ErrMissing.Error(),
			},
			"expired": {
				req:           bearer("/orders?secret=1", sign(t, ecKey, with(claims(), "exp", testNow.Add(-time.Hour).Unix()))),
				wantChallenge: `Bearer realm="http://example.com/orders", error="invalid_token"`,
				wantBody:      ErrExpired.Error(),
			},
			"quotes in the host are dropped": {
				req: func() *http.Request {
					r := bearer("/a", "x")
					r.Host = `ex"ample\.com`
					return r
				}(),
				wantChallenge: `Bearer realm="http://example.com/a", error="invalid_token"`,
				wantBody:      ErrMalformed.Error(),
			},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				_, err := a.Authenticate(tc.req)
				var ae *Error
				if !errors.As(err, &ae) {
					t.Fatalf("Authenticate error = %v, want *Error", err)
				}
				w := httptest.NewRecorder()
				ae.WriteResponse(w)
				if w.Code != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401", w.Code)
				}
				if got := w.Header().Get("WWW-Authenticate"); got != tc.wantChallenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wantChallenge)
				}
				wantBody := tc.wantBody
				if strip {
					wantBody = ""
				}
				if got := w.Body.String(); got != wantBody {
					t.Errorf("body = %q, want %q", got, wantBody)
				}
			})
		}
	}
}
