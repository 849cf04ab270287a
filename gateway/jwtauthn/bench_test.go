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
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchAuthenticate measures one request with one valid token signed by k,
// from a local JWKS: extraction, parsing, signature and claim checks. k
// is a pointer because keys are generated on first use.
func benchAuthenticate(b *testing.B, k *signingKey) {
	keys(b)
	p := localProvider(jwksJSON(b, ecKey, rsaKey, edKey))
	p.PayloadInMetadata = "jwt_payload"
	a := compile(b, oneProvider(p), Options{})
	r := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	r.Header.Set("Authorization", "Bearer "+sign(b, *k, claims()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthenticateES256(b *testing.B) { benchAuthenticate(b, &ecKey) }

func BenchmarkAuthenticateRS256(b *testing.B) { benchAuthenticate(b, &rsaKey) }

func BenchmarkAuthenticateEdDSA(b *testing.B) { benchAuthenticate(b, &edKey) }

// BenchmarkRejectMalformed is the cost of turning away garbage.
func BenchmarkRejectMalformed(b *testing.B) {
	keys(b)
	a := compile(b, oneProvider(localProvider(jwksJSON(b, ecKey))), Options{})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err == nil {
			b.Fatal("accepted")
		}
	}
}
