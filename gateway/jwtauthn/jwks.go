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
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// allowedAlgorithms are the only "alg" values a token may carry. There is
// no "none" and no HMAC: a JWKS holds public keys, and accepting HS256
// would let anyone who has the public key bytes sign tokens (the
// key-confusion attack). go-jose refuses any other alg while parsing.
var allowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// key is one verification key of a JWKS.
type key struct {
	kid string
	alg string // the JWK's own "alg"; "" allows every alg that fits the key
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable, parsed JWKS.
type keySet struct {
	keys []key
}

// parseJWKS parses a JWKS document (RFC 7517 §5). Keys that cannot verify
// any allowed algorithm (symmetric keys, encryption keys, unknown types)
// are skipped; a set without a usable key is an error.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`parse JWKS: no "keys" array`)
	}
	set := &keySet{}
	for _, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		if jwk.Algorithm != "" && !isAllowedAlgorithm(jwk.Algorithm) {
			continue
		}
		if !jwk.Valid() {
			continue
		}
		// Public drops private parts; it returns an empty key for
		// symmetric ones.
		pub := jwk.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		if jwk.Algorithm != "" && !fits(jose.SignatureAlgorithm(jwk.Algorithm), pub.Key) {
			continue // e.g. "ES384" on a P-256 key: no token can use it
		}
		set.keys = append(set.keys, key{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub.Key})
	}
	if len(set.keys) == 0 {
		return nil, errors.New("parse JWKS: no usable signature verification key")
	}
	return set, nil
}

func isAllowedAlgorithm(alg string) bool {
	for _, a := range allowedAlgorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// candidates appends to dst the keys that may have signed a token with
// the given kid and alg. With a kid, only keys with that kid qualify;
// without one, every key that fits alg does. kidKnown reports whether any
// key has the kid (false tells the caller that a refresh may help).
func (s *keySet) candidates(kid string, alg jose.SignatureAlgorithm, dst []any) (out []any, kidKnown bool) {
	out = dst
	for i := range s.keys {
		k := &s.keys[i]
		if kid != "" {
			if k.kid != kid {
				continue
			}
			kidKnown = true
		}
		if k.alg != "" && k.alg != string(alg) {
			continue
		}
		if fits(alg, k.pub) {
			out = append(out, k.pub)
		}
	}
	return out, kidKnown
}

// fits reports whether pub is the kind of key alg needs, curve included,
// so that a token cannot pick how a key is used.
func fits(alg jose.SignatureAlgorithm, pub any) bool {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		_, ok := pub.(*rsa.PublicKey)
		return ok
	case jose.ES256:
		k, ok := pub.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case jose.ES384:
		k, ok := pub.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P384()
	case jose.ES512:
		k, ok := pub.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P521()
	case jose.EdDSA:
		_, ok := pub.(ed25519.PublicKey)
		return ok
	}
	return false
}

// keySource provides a provider's keys.
type keySource interface {
	// keys returns the key set to verify with, fetching it if needed.
	keys(ctx context.Context) (*keySet, error)
	// refresh is called when a token's kid is in no key of the current
	// set; it returns a newer set, or the current one when a refresh is
	// not allowed now.
	refresh(ctx context.Context) (*keySet, error)
	// start begins background work, if any.
	start()
}

// staticKeys is a local_jwks.
type staticKeys struct{ set *keySet }

func (s staticKeys) keys(context.Context) (*keySet, error)    { return s.set, nil }
func (s staticKeys) refresh(context.Context) (*keySet, error) { return s.set, nil }
func (s staticKeys) start()                                   {}

// remoteKeys is a remote_jwks with its cache.
//
// The set is used for cacheFor after a successful fetch. Then the next
// request fetches again (the others wait for that one fetch). A failed
// fetch keeps the last good set (stale-while-error) and is not retried
// before failedRefetch has passed; meanwhile requests are served from the
// last good set without waiting, or fail at once when there is none. A
// token whose kid is not in the set causes at most one fetch per
// KidRefreshInterval (key rotation).
type remoteKeys struct {
	uri           string
	client        *http.Client
	timeout       time.Duration
	cacheFor      time.Duration
	failedRefetch time.Duration
	prefetch      bool
	retries       int
	backoffBase   time.Duration
	backoffMax    time.Duration
	now           func() time.Time
	log           *slog.Logger
	base          context.Context // cancelled by Authenticator.Close

	// cur is the last good set; read without the lock on the hot path.
	cur atomic.Pointer[cachedKeys]
	// joined counts requests that waited for a fetch another request
	// started (tests use it to know that they share a fetch).
	joined atomic.Int64

	mu           sync.Mutex
	call         *fetchCall // the fetch in flight; nil if none
	failedAt     time.Time  // end of the last fetch if it failed; zero after a success
	lastErr      error      // its error
	kidRefreshAt time.Time  // start of the last fetch caused by an unknown kid
}

type cachedKeys struct {
	set     *keySet
	expires time.Time
}

// fetchCall is one fetch that any number of requests wait for. set and err
// are written before done is closed.
type fetchCall struct {
	done chan struct{}
	set  *keySet
	err  error
}

func (k *remoteKeys) keys(ctx context.Context) (*keySet, error) {
	if c := k.cur.Load(); c != nil && k.now().Before(c.expires) {
		return c.set, nil
	}
	return k.await(ctx, false)
}

func (k *remoteKeys) refresh(ctx context.Context) (*keySet, error) {
	return k.await(ctx, true)
}

func (k *remoteKeys) start() {
	if !k.prefetch {
		return
	}
	k.mu.Lock()
	if k.call == nil {
		k.startLocked()
	}
	k.mu.Unlock()
}

// await starts or joins a fetch and returns its result, or the last good
// set when the fetch fails or may not happen now.
func (k *remoteKeys) await(ctx context.Context, unknownKid bool) (*keySet, error) {
	k.mu.Lock()
	now := k.now()
	c := k.cur.Load()
	// After a failure, keep serving the last good set while fetching
	// again in the background, rather than make every request wait for
	// a server that is probably still down.
	stale := c != nil && !unknownKid && !k.failedAt.IsZero()
	call := k.call
	switch {
	case call != nil:
		if !stale {
			k.joined.Add(1)
		}
	case !unknownKid && c != nil && now.Before(c.expires):
		// Another request fetched while this one waited for the lock.
		k.mu.Unlock()
		return c.set, nil
	case !k.failedAt.IsZero() && now.Sub(k.failedAt) < k.failedRefetch,
		unknownKid && !k.kidRefreshAt.IsZero() && now.Sub(k.kidRefreshAt) < KidRefreshInterval:
		set, err := k.lastLocked(c)
		k.mu.Unlock()
		return set, err
	default:
		if unknownKid {
			k.kidRefreshAt = now
		}
		call = k.startLocked()
	}
	k.mu.Unlock()
	if stale {
		return c.set, nil
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for JWKS: %w", ctx.Err())
	}
	if call.err != nil {
		if c := k.cur.Load(); c != nil {
			return c.set, nil
		}
		return nil, call.err
	}
	return call.set, nil
}

// lastLocked returns the last good set, or the last fetch error without
// one; k.mu must be held.
func (k *remoteKeys) lastLocked(c *cachedKeys) (*keySet, error) {
	if c != nil {
		return c.set, nil
	}
	if k.lastErr != nil {
		return nil, k.lastErr
	}
	return nil, errors.New("no JWKS fetched yet")
}

// startLocked starts a fetch; k.mu must be held.
func (k *remoteKeys) startLocked() *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	k.call = call
	go k.run(call)
	return call
}

func (k *remoteKeys) run(call *fetchCall) {
	set, err := k.download()
	k.mu.Lock()
	if err == nil {
		k.cur.Store(&cachedKeys{set: set, expires: k.now().Add(k.cacheFor)})
		k.failedAt, k.lastErr = time.Time{}, nil
	} else {
		k.failedAt, k.lastErr = k.now(), err
	}
	haveKeys := k.cur.Load() != nil
	k.call = nil
	call.set, call.err = set, err
	close(call.done)
	k.mu.Unlock()
	if err != nil && k.base.Err() == nil {
		// Logged here, once per fetch, because no caller logs: requests
		// only see a 401 when there is no good set left.
		k.log.Warn("fetch JWKS", "error", err, "servingLastGoodKeys", haveKeys)
	}
}

// download fetches and parses the JWKS, retrying per retry_policy.
func (k *remoteKeys) download() (*keySet, error) {
	set, err := k.downloadOnce()
	for i := 0; err != nil && i < k.retries; i++ {
		bound := min(k.backoffBase<<i, k.backoffMax)
		if bound <= 0 { // shifted out of range
			bound = k.backoffMax
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(bound))) + 1)
		select {
		case <-k.base.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		set, err = k.downloadOnce()
	}
	return set, err
}

func (k *remoteKeys) downloadOnce() (*keySet, error) {
	ctx, cancel := context.WithTimeout(k.base, k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.uri, nil)
	if err != nil {
		return nil, fmt.Errorf("build JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get JWKS: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("read JWKS: larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}
