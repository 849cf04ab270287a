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
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/emptypb"
)

// FuzzAuthorization sends arbitrary Authorization values. Nothing may
// panic, a required provider must reject every one of them, and
// allow_missing_or_failed must pass them all without a verified token.
// The seeds hold no valid signature (a mutation of one could still be
// valid, for example by flipping unused base64 bits), only near misses:
// tokens signed by a key outside the JWKS under a kid inside it, alg none,
// HS256 with the public key, truncations.
func FuzzAuthorization(f *testing.F) {
	keys(f)
	jwks := jwksJSON(f, ecKey, rsaKey, edKey)
	required := compile(f, oneProvider(localProvider(jwks)), Options{})
	optional := oneProvider(localProvider(jwks))
	optional.Rules[0].RequirementType = &jwtauthnv3.RequirementRule_Requires{Requires: &jwtauthnv3.JwtRequirement{
		RequiresType: &jwtauthnv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}},
	}}
	lenient := compile(f, optional, Options{})

	forged := sign(f, signingKey{kid: ecKey.kid, key: otherEC.key, alg: jose.ES256}, claims())
	forgedRSA := sign(f, signingKey{kid: edKey.kid, key: otherEC.key, alg: jose.ES256}, claims())
	for _, s := range []string{
		"", "Bearer", "Bearer ", "bearer x", "Basic Zm9vOmJhcg==", "Bearer a.b.c", "Bearer ..", "Bearer a..c",
		"Bearer " + forged,
		"Bearer " + forgedRSA,
		"Bearer " + forged[:len(forged)/2],
		"Bearer " + forged + "." + forged,
		"Bearer " + strings.ReplaceAll(forged, ".", ".."),
		"Bearer " + unsignedToken(map[string]any{"alg": "none", "kid": ecKey.kid}, claims(), ""),
		"Bearer " + unsignedToken(map[string]any{"alg": "HS256", "kid": rsaKey.kid}, claims(), "c2ln"),
		"Bearer " + unsignedToken(map[string]any{"alg": "ES256", "kid": ecKey.kid, "crit": []string{"b64"}, "b64": false}, claims(), ""),
		"Bearer " + unsignedToken(map[string]any{"alg": "EdDSA", "jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}, claims(), "AAAA"),
		"Bearer eyJhbGciOiJFUzI1NiJ9.e30.",
		"Bearer " + strings.Repeat("A", 70000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{v}
		res, err := required.Authenticate(r)
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("Authorization %q: error = %v, want a rejection", v, err)
		}
		if len(res.Tokens) != 0 || res.Metadata != nil || res.SetHeaders != nil {
			t.Fatalf("Authorization %q: rejected request has results %+v", v, res)
		}
		res, err = lenient.Authenticate(r)
		if err != nil {
			t.Fatalf("allow_missing_or_failed: Authorization %q: %v", v, err)
		}
		if len(res.Tokens) != 0 || res.Metadata != nil {
			t.Fatalf("allow_missing_or_failed: Authorization %q verified: %+v", v, res)
		}
	})
}

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser: it must not
// panic, and every key it keeps must be a public key that fits an allowed
// algorithm.
func FuzzParseJWKS(f *testing.F) {
	keys(f)
	f.Add([]byte(jwksJSON(f, ecKey, rsaKey, edKey, ec384Key)))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"RS256"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range set.keys {
			ok := false
			for _, alg := range allowedAlgorithms {
				if fits(alg, k.pub) && (k.alg == "" || k.alg == string(alg)) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("kept key %+v fits no allowed algorithm", k)
			}
		}
	})
}
