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
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	testIssuer   = "https://issuer.example"
	testAudience = "api.example"
)

// testNow is the fake clock's start; tokens are built around it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// signingKey is a private key with its kid.
type signingKey struct {
	kid string
	key crypto.Signer
	alg jose.SignatureAlgorithm
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Use: "sig"}
}

// Keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce sync.Once
	rsaKey   signingKey // RS256, in the JWKS
	ecKey    signingKey // ES256, in the JWKS
	edKey    signingKey // EdDSA, in the JWKS
	ec384Key signingKey // ES384, in the JWKS
	otherEC  signingKey // ES256, never in a JWKS
	rotated  signingKey // ES256, served after rotation
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		r, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = signingKey{kid: "rsa-1", key: r, alg: jose.RS256}
		ecKey = signingKey{kid: "ec-1", key: mustEC(elliptic.P256()), alg: jose.ES256}
		ec384Key = signingKey{kid: "ec384-1", key: mustEC(elliptic.P384()), alg: jose.ES384}
		otherEC = signingKey{kid: "other-1", key: mustEC(elliptic.P256()), alg: jose.ES256}
		rotated = signingKey{kid: "ec-2", key: mustEC(elliptic.P256()), alg: jose.ES256}
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		edKey = signingKey{kid: "ed-1", key: ed, alg: jose.EdDSA}
	})
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func jwksJSON(t testing.TB, ks ...signingKey) string {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range ks {
		set.Keys = append(set.Keys, k.public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// claims returns valid claims for testIssuer and testAudience at testNow.
func claims() map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "alice",
		"iat": testNow.Add(-time.Minute).Unix(),
		"nbf": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// sign signs c with k (alg from k), setting kid unless noKid.
func sign(t testing.TB, k signingKey, c map[string]any, opts ...func(*jose.SignerOptions)) string {
	t.Helper()
	so := (&jose.SignerOptions{}).WithType("JWT")
	for _, o := range opts {
		o(so)
	}
	var key any = jose.JSONWebKey{Key: k.key, KeyID: k.kid}
	if k.kid == "" {
		key = k.key
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: key}, so)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs an arbitrary payload with k.
func signRaw(t testing.TB, k signingKey, payload []byte) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serialize(t, s, payload)
}

func serialize(t testing.TB, s jose.Signer, payload []byte) string {
	t.Helper()
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noKid(k signingKey) signingKey {
	k.kid = ""
	return k
}

// unsignedToken builds "header.payload.signature" by hand: go-jose will
// not produce the attacks the tests need.
func unsignedToken(header, payload map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "." + sig
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Config builders.

func localProvider(jwks string, mods ...func(*jwtauthnv3.JwtProvider)) *jwtauthnv3.JwtProvider {
	p := &jwtauthnv3.JwtProvider{
		Issuer:    testIssuer,
		Audiences: []string{testAudience},
		JwksSourceSpecifier: &jwtauthnv3.JwtProvider_LocalJwks{
			LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: jwks}},
		},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func remoteProvider(uri string, mods ...func(*jwtauthnv3.RemoteJwks)) *jwtauthnv3.JwtProvider {
	rj := &jwtauthnv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              uri,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "jwks"},
			Timeout:          durationpb.New(2 * time.Second),
		},
	}
	for _, m := range mods {
		m(rj)
	}
	return &jwtauthnv3.JwtProvider{
		Issuer:              testIssuer,
		Audiences:           []string{testAudience},
		JwksSourceSpecifier: &jwtauthnv3.JwtProvider_RemoteJwks{RemoteJwks: rj},
	}
}

func requireProvider(name string) *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_ProviderName{ProviderName: name}}
}

func requireAny(reqs ...*jwtauthnv3.JwtRequirement) *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_RequiresAny{
		RequiresAny: &jwtauthnv3.JwtRequirementOrList{Requirements: reqs},
	}}
}

func requireAll(reqs ...*jwtauthnv3.JwtRequirement) *jwtauthnv3.JwtRequirement {
	return &jwtauthnv3.JwtRequirement{RequiresType: &jwtauthnv3.JwtRequirement_RequiresAll{
		RequiresAll: &jwtauthnv3.JwtRequirementAndList{Requirements: reqs},
	}}
}

func prefixRule(prefix string, req *jwtauthnv3.JwtRequirement) *jwtauthnv3.RequirementRule {
	r := &jwtauthnv3.RequirementRule{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}}}
	if req != nil {
		r.RequirementType = &jwtauthnv3.RequirementRule_Requires{Requires: req}
	}
	return r
}

// oneProvider is the usual config: provider "p" required on every path.
func oneProvider(p *jwtauthnv3.JwtProvider) *jwtauthnv3.JwtAuthentication {
	return &jwtauthnv3.JwtAuthentication{
		Providers: map[string]*jwtauthnv3.JwtProvider{"p": p},
		Rules:     []*jwtauthnv3.RequirementRule{prefixRule("/", requireProvider("p"))},
	}
}

func compile(t testing.TB, cfg *jwtauthnv3.JwtAuthentication, opts Options) *Authenticator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newClock().Now
	}
	a, err := Compile(cfg, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func bearer(target, token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// jwksServer serves a JWKS that tests can swap, break and block, on a
// 127.0.0.1 listener.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[string]
	status  atomic.Int32 // 0: 200
	hits    atomic.Int64
	blockMu sync.Mutex
	block   chan struct{} // when non-nil, requests wait for it to close
	arrived chan struct{} // receives once per request that reached the handler
}

func newJWKSServer(t testing.TB, body string) *jwksServer {
	t.Helper()
	s := &jwksServer{arrived: make(chan struct{}, 100)}
	s.body.Store(&body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		s.blockMu.Lock()
		b := s.block
		s.blockMu.Unlock()
		if b != nil {
			select {
			case <-b:
			case <-r.Context().Done():
				return
			}
		}
		if st := s.status.Load(); st != 0 {
			http.Error(w, "down", int(st))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(*s.body.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body string) { s.body.Store(&body) }

func (s *jwksServer) setBlock(ch chan struct{}) {
	s.blockMu.Lock()
	s.block = ch
	s.blockMu.Unlock()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
