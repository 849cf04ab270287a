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
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// remote compiles provider "p" with a remote JWKS at srv and returns the
// authenticator and the provider's cache.
func remote(t *testing.T, srv *jwksServer, clk *clock, mods ...func(*jwtauthnv3.RemoteJwks)) (*Authenticator, *remoteKeys) {
	t.Helper()
	a := compile(t, oneProvider(remoteProvider(srv.URL+"/jwks", mods...)), Options{Now: clk.Now, HTTPClient: srv.Client()})
	return a, a.providers["p"].keys.(*remoteKeys)
}

func cacheFor(d time.Duration) func(*jwtauthnv3.RemoteJwks) {
	return func(rj *jwtauthnv3.RemoteJwks) { rj.CacheDuration = durationpb.New(d) }
}

// idle reports whether no fetch is in flight.
func (k *remoteKeys) idle() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.call == nil
}

func mustAuthenticate(t *testing.T, a *Authenticator, token string) {
	t.Helper()
	if _, err := a.Authenticate(bearer("/", token)); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
}

func mustReject(t *testing.T, a *Authenticator, token string, want error) {
	t.Helper()
	_, err := a.Authenticate(bearer("/", token))
	if !errors.Is(err, want) {
		t.Fatalf("Authenticate error = %v, want %v", err, want)
	}
}

func TestRemoteJWKSCache(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	clk := newClock()
	a, _ := remote(t, srv, clk, cacheFor(5*time.Minute))
	tok := sign(t, ecKey, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))

	mustAuthenticate(t, a, tok)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches within cache_duration = %d, want 1", got)
	}
	clk.Advance(5*time.Minute + time.Second)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after cache_duration = %d, want 2", got)
	}
}

func TestRemoteJWKSDefaultCacheDuration(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	clk := newClock()
	a, _ := remote(t, srv, clk)
	tok := sign(t, ecKey, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))
	mustAuthenticate(t, a, tok)
	clk.Advance(DefaultCacheDuration - time.Second)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches within 10 minutes = %d, want 1", got)
	}
	clk.Advance(2 * time.Second)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after 10 minutes = %d, want 2", got)
	}
}

func TestRemoteJWKSKeyRotation(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	clk := newClock()
	a, _ := remote(t, srv, clk)
	old := sign(t, ecKey, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))
	fresh := sign(t, rotated, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))

	mustAuthenticate(t, a, old)
	srv.set(jwksJSON(t, rotated))
	// The new kid is unknown: one refresh, and it verifies.
	mustAuthenticate(t, a, fresh)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", got)
	}
	// The old key is gone from the set; its kid is now unknown, and the
	// refresh budget of this minute is spent.
	mustReject(t, a, old, ErrUnknownKey)
	mustReject(t, a, sign(t, otherEC, claims()), ErrUnknownKey)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches for unknown kids within a minute = %d, want 2 (rate limited)", got)
	}
	clk.Advance(KidRefreshInterval + time.Second)
	mustReject(t, a, sign(t, otherEC, with(claims(), "exp", testNow.Add(24*time.Hour).Unix())), ErrUnknownKey)
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("fetches for an unknown kid after a minute = %d, want 3", got)
	}
	mustAuthenticate(t, a, fresh)
}

func TestRemoteJWKSServerDown(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	clk := newClock()
	a, rk := remote(t, srv, clk, cacheFor(time.Minute))
	tok := sign(t, ecKey, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))
	mustAuthenticate(t, a, tok)

	// The server fails after the cache expired: the last good keys stay.
	srv.status.Store(http.StatusServiceUnavailable)
	clk.Advance(2 * time.Minute)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2", got)
	}
	// Within failed_refetch_duration nothing is fetched.
	for range 10 {
		mustAuthenticate(t, a, tok)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("fetches right after a failure = %d, want 2", got)
	}
	// Later, a fetch is retried in the background while the request is
	// served from the last good set.
	clk.Advance(DefaultFailedRefetch + time.Millisecond)
	mustAuthenticate(t, a, tok)
	waitFor(t, "the background fetch", func() bool { return srv.hits.Load() == 3 && rk.idle() })

	// The server is gone altogether (connection refused): still served.
	srv.Close()
	clk.Advance(DefaultFailedRefetch + time.Millisecond)
	mustAuthenticate(t, a, tok)
	waitFor(t, "the background fetch", rk.idle)
	mustAuthenticate(t, a, tok)
	// Unknown kids still cannot verify.
	mustReject(t, a, sign(t, rotated, claims()), ErrUnknownKey)
}

func TestRemoteJWKSRecovers(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	srv.status.Store(http.StatusInternalServerError)
	clk := newClock()
	a, rk := remote(t, srv, clk)
	tok := sign(t, ecKey, with(claims(), "exp", testNow.Add(24*time.Hour).Unix()))

	mustReject(t, a, tok, ErrJWKSUnavailable)
	mustReject(t, a, tok, ErrJWKSUnavailable)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches without keys right after a failure = %d, want 1", got)
	}
	srv.status.Store(0)
	clk.Advance(DefaultFailedRefetch + time.Millisecond)
	mustAuthenticate(t, a, tok)
	if got := srv.hits.Load(); got != 2 || !rk.idle() {
		t.Fatalf("fetches = %d, want 2", got)
	}
}

func TestRemoteJWKSSharedFetch(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	release := make(chan struct{})
	srv.setBlock(release)
	clk := newClock()
	a, rk := remote(t, srv, clk)
	tok := sign(t, ecKey, claims())

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := a.Authenticate(bearer("/", tok))
			errs <- err
		}()
	}
	// Every request but the first joins the first one's fetch.
	waitFor(t, "requests to join the fetch", func() bool { return rk.joined.Load() == n-1 })
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Authenticate: %v", err)
		}
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestRemoteJWKSRequestCancelled(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	release := make(chan struct{})
	srv.setBlock(release)
	t.Cleanup(func() { close(release) })
	a, _ := remote(t, srv, newClock())

	ctx, cancel := context.WithCancel(context.Background())
	r := bearer("/", sign(t, ecKey, claims())).WithContext(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(r)
		done <- err
	}()
	<-srv.arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrJWKSUnavailable) {
		t.Fatalf("Authenticate error = %v, want the cancellation", err)
	}
}

func TestRemoteJWKSTimeout(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	release := make(chan struct{})
	srv.setBlock(release)
	t.Cleanup(func() { close(release) })
	a, _ := remote(t, srv, newClock(), func(rj *jwtauthnv3.RemoteJwks) {
		rj.HttpUri.Timeout = durationpb.New(50 * time.Millisecond)
	})
	mustReject(t, a, sign(t, ecKey, claims()), ErrJWKSUnavailable)
}

func TestRemoteJWKSRetryPolicy(t *testing.T) {
	keys(t)
	var hits atomic.Int64
	body := jwksJSON(t, ecKey)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "flaky", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	cfg := oneProvider(remoteProvider(srv.URL, func(rj *jwtauthnv3.RemoteJwks) {
		rj.RetryPolicy = &corev3.RetryPolicy{
			NumRetries:   wrapperspb.UInt32(2),
			RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(time.Millisecond)},
		}
	}))
	a := compile(t, cfg, Options{HTTPClient: srv.Client()})
	mustAuthenticate(t, a, sign(t, ecKey, claims()))
	if got := hits.Load(); got != 2 {
		t.Fatalf("fetch attempts = %d, want 2", got)
	}
}

func TestRemoteJWKSAsyncFetch(t *testing.T) {
	keys(t)
	srv := newJWKSServer(t, jwksJSON(t, ecKey))
	a, rk := remote(t, srv, newClock(), func(rj *jwtauthnv3.RemoteJwks) {
		rj.AsyncFetch = &jwtauthnv3.JwksAsyncFetch{}
	})
	waitFor(t, "the prefetch", func() bool { return srv.hits.Load() == 1 && rk.idle() })
	mustAuthenticate(t, a, sign(t, ecKey, claims()))
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1 (the prefetch)", got)
	}
}

func TestRemoteJWKSBadDocuments(t *testing.T) {
	keys(t)
	hmacOnly := `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}`
	tests := map[string]string{
		"not JSON":              "<html>",
		"no keys":               `{}`,
		"only a symmetric key":  hmacOnly,
		"only encryption keys":  strings.Replace(jwksJSON(t, ecKey), `"use":"sig"`, `"use":"enc"`, 1),
		"too large":             `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSBytes) + `"}`,
		"key for another alg":   strings.Replace(jwksJSON(t, ecKey), `"kid"`, `"alg":"ES384","kid"`, 1),
		"unparseable key only":  `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		"private key is public": "",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			if body == "" {
				// A JWKS that (wrongly) publishes the private key still
				// verifies with its public part.
				priv := jose.JSONWebKey{Key: ecKey.key, KeyID: ecKey.kid}
				b, err := priv.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				srv := newJWKSServer(t, `{"keys":[`+string(b)+`]}`)
				a, _ := remote(t, srv, newClock())
				mustAuthenticate(t, a, sign(t, ecKey, claims()))
				return
			}
			srv := newJWKSServer(t, body)
			a, _ := remote(t, srv, newClock())
			mustReject(t, a, sign(t, ecKey, claims()), ErrJWKSUnavailable)
		})
	}
}

func TestPlaintextJWKS(t *testing.T) {
	tests := map[string]struct {
		uri       string
		allow     bool
		wantError bool
	}{
		"https":               {uri: "https://idp.example/jwks"},
		"loopback http":       {uri: "http://127.0.0.1:8080/jwks"},
		"localhost http":      {uri: "http://localhost:8080/jwks"},
		"IPv6 loopback http":  {uri: "http://[::1]:8080/jwks"},
		"remote http":         {uri: "http://idp.example/jwks", wantError: true},
		"remote http allowed": {uri: "http://idp.example/jwks", allow: true},
		"ftp":                 {uri: "ftp://idp.example/jwks", allow: true, wantError: true},
		"relative":            {uri: "/jwks", allow: true, wantError: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := Compile(oneProvider(remoteProvider(tc.uri)), Options{AllowPlaintextJWKS: tc.allow})
			if a != nil {
				a.Close()
			}
			if (err != nil) != tc.wantError {
				t.Fatalf("Compile error = %v, want error: %v", err, tc.wantError)
			}
		})
	}
}
