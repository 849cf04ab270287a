package jwtauthn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestAttackTokens: the tokens an attacker would try are refused, each
// with the reason a 401 names: alg none, a kid the JWKS does not have, a
// key outside the JWKS under a kid it has, expired (beyond the 60 s clock
// skew Envoy allows), for another audience.
func TestAttackTokens(t *testing.T) {
	keys(t)
	a := compile(t, oneProvider(localProvider(jwksJSON(t, ecKey))), Options{})
	for name, tc := range map[string]struct {
		token string
		want  error
	}{
		"alg none":          {unsignedToken(map[string]any{"alg": "none", "kid": ecKey.kid}, claims(), ""), nil},
		"unknown kid":       {sign(t, otherEC, claims()), ErrUnknownKey},
		"forged under kid":  {sign(t, signingKey{kid: ecKey.kid, key: otherEC.key, alg: jose.ES256}, claims()), ErrSignature},
		"expired":           {sign(t, ecKey, with(claims(), "exp", testNow.Add(-10*time.Minute).Unix())), ErrExpired},
		"other audience":    {sign(t, ecKey, with(claims(), "aud", "someone-else")), ErrAudience},
		"HS256 with no key": {unsignedToken(map[string]any{"alg": "HS256", "kid": ecKey.kid}, claims(), "c2ln"), nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			res, err := a.Authenticate(r)
			var ae *Error
			if !errors.As(err, &ae) || ae.Missing {
				t.Fatalf("accepted or not refused as invalid: result %+v, err %v", res, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("refused for %v, want %v", err, tc.want)
			}
			w := httptest.NewRecorder()
			ae.WriteResponse(w)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("response %d, want 401", w.Code)
			}
		})
	}
}
