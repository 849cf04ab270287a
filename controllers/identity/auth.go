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

package identity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Token authentication defaults.
const (
	// DefaultAudience is the audience a proxy's token must be issued for
	// (a projected ServiceAccount token with audience "causeway").
	DefaultAudience = "causeway"
	// authorizationHeader carries "Bearer <token>" on every SDS stream.
	authorizationHeader = "authorization"
	// maxTokenBytes bounds what is sent to the API server; ServiceAccount
	// tokens are around 1 KiB.
	maxTokenBytes = 16 << 10
	// reviewCacheSize bounds the cache of review results.
	reviewCacheSize = 4096
	// reviewTTL is how long an accepted token is trusted without asking
	// the API server again (cut to the token's own expiry); it bounds how
	// late a revocation (a deleted pod or ServiceAccount) is noticed for
	// new streams.
	reviewTTL = 30 * time.Second
	// rejectTTL is how long a refused token stays refused without asking
	// again: it shields the API server from a client retrying a bad
	// token in a loop.
	rejectTTL = 5 * time.Second
)

// TokenReview extra keys of a pod-bound ServiceAccount token.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// serviceAccountUserPrefix starts the user name of a ServiceAccount token.
const serviceAccountUserPrefix = "system:serviceaccount:"

// Caller is who a token belongs to: a ServiceAccount and, for a pod-bound
// token, the pod.
type Caller struct {
	Namespace, ServiceAccount string
	// UID is the ServiceAccount's UID.
	UID types.UID
	// PodName and PodUID are set for a pod-bound token.
	PodName string
	PodUID  types.UID
}

// String names the caller in logs (never the token).
func (c *Caller) String() string {
	s := c.Namespace + "/" + c.ServiceAccount
	if c.PodName != "" {
		s += " (pod " + c.PodName + ")"
	}
	return s
}

// Authenticator checks bearer tokens with the API server's TokenReview
// API (the token must be for Audience) and caches the outcome briefly,
// keyed by the token's SHA-256 so tokens are never kept or logged.
type Authenticator struct {
	// Client creates TokenReviews in the member cluster.
	Client client.Client
	// Reader reads pods (normally the API reader: one Get per review that
	// is not cached, instead of a cache of every pod).
	Reader client.Reader
	// Audience the tokens must carry; DefaultAudience when empty.
	Audience string
	// Clock for the cache; the real clock when nil.
	Clock clock.PassiveClock

	once  sync.Once
	cache *cache.LRUExpireCache
}

// reviewed is a cached review outcome: a caller or a status error.
type reviewed struct {
	caller *Caller
	err    error
}

func (a *Authenticator) audience() string {
	if a.Audience == "" {
		return DefaultAudience
	}
	return a.Audience
}

func (a *Authenticator) clock() clock.PassiveClock {
	if a.Clock == nil {
		return clock.RealClock{}
	}
	return a.Clock
}

func (a *Authenticator) init() {
	a.cache = cache.NewLRUExpireCacheWithClock(reviewCacheSize, a.clock())
}

// AuthenticateContext authenticates the bearer token in ctx's incoming
// gRPC metadata. Errors are gRPC status errors: Unauthenticated for a
// missing, malformed or refused token, PermissionDenied for a valid
// token that is not a ServiceAccount's, Unavailable when the API server
// cannot be asked.
func (a *Authenticator) AuthenticateContext(ctx context.Context) (*Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(authorizationHeader)
	if len(values) != 1 {
		return nil, status.Error(codes.Unauthenticated, "no bearer token: send one \"authorization: Bearer <ServiceAccount token>\" metadata entry")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, status.Error(codes.Unauthenticated, "authorization metadata is not \"Bearer <token>\"")
	}
	return a.Authenticate(ctx, strings.TrimSpace(token))
}

// Authenticate reviews token (see AuthenticateContext).
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*Caller, error) {
	if len(token) > maxTokenBytes {
		return nil, status.Errorf(codes.Unauthenticated, "bearer token is longer than %d bytes", maxTokenBytes)
	}
	a.once.Do(a.init)
	sum := sha256.Sum256([]byte(token))
	if v, ok := a.cache.Get(sum); ok {
		r := v.(reviewed)
		return r.caller, r.err
	}
	caller, err := a.review(ctx, token)
	if status.Code(err) == codes.Unavailable {
		return nil, err // the API server's trouble, not the token's
	}
	ttl := rejectTTL
	if err == nil {
		ttl = reviewTTL
		if exp, ok := tokenExpiry(token); ok {
			ttl = min(ttl, exp.Sub(a.clock().Now()))
		}
	}
	if ttl > 0 {
		a.cache.Add(sum, reviewed{caller: caller, err: err}, ttl)
	}
	return caller, err
}

func (a *Authenticator) review(ctx context.Context, token string) (*Caller, error) {
	aud := a.audience()
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{aud}}}
	if err := a.Client.Create(ctx, tr); err != nil {
		return nil, status.Errorf(codes.Unavailable, "review the token with the API server: %v", err)
	}
	st := tr.Status
	if !st.Authenticated {
		// The API server's reason (expired, wrong audience, unknown
		// signer, deleted pod) names no secret.
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return nil, status.Errorf(codes.Unauthenticated, "token refused by the API server: %s", reason)
	}
	if !slices.Contains(st.Audiences, aud) {
		return nil, status.Errorf(codes.Unauthenticated, "token is not for audience %q", aud)
	}
	ns, sa, err := parseServiceAccountUser(st.User.Username)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "%v", err)
	}
	c := &Caller{Namespace: ns, ServiceAccount: sa, UID: types.UID(st.User.UID)}
	if pod := one(st.User.Extra[extraPodName]); pod != "" {
		c.PodName, c.PodUID = pod, types.UID(one(st.User.Extra[extraPodUID]))
		if err := a.checkPod(ctx, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkPod checks that the pod a token is bound to exists (the same pod:
// its UID, when the token names one).
func (a *Authenticator) checkPod(ctx context.Context, c *Caller) error {
	var pod corev1.Pod
	err := a.Reader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.PodName}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		return status.Errorf(codes.Unauthenticated, "token is bound to pod %s/%s, which does not exist", c.Namespace, c.PodName)
	case err != nil:
		return status.Errorf(codes.Unavailable, "read the token's pod %s/%s: %v", c.Namespace, c.PodName, err)
	case c.PodUID != "" && pod.UID != c.PodUID:
		return status.Errorf(codes.Unauthenticated, "token is bound to an earlier pod named %s/%s", c.Namespace, c.PodName)
	case pod.DeletionTimestamp != nil:
		return status.Errorf(codes.Unauthenticated, "token is bound to pod %s/%s, which is being deleted", c.Namespace, c.PodName)
	}
	return nil
}

// Revalidate checks that what c's token vouched for still holds: the
// ServiceAccount (same UID) and, for a pod-bound token, the pod. The SDS
// server calls it before renewing an SVID on a long-lived stream, whose
// token may have expired since the stream opened.
func (a *Authenticator) Revalidate(ctx context.Context, c *Caller) error {
	var sa corev1.ServiceAccount
	err := a.Reader.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: c.ServiceAccount}, &sa)
	switch {
	case apierrors.IsNotFound(err):
		return status.Errorf(codes.Unauthenticated, "ServiceAccount %s/%s no longer exists", c.Namespace, c.ServiceAccount)
	case err != nil:
		return status.Errorf(codes.Unavailable, "read ServiceAccount %s/%s: %v", c.Namespace, c.ServiceAccount, err)
	case c.UID != "" && sa.UID != c.UID:
		return status.Errorf(codes.Unauthenticated, "ServiceAccount %s/%s was re-created", c.Namespace, c.ServiceAccount)
	}
	if c.PodName != "" {
		return a.checkPod(ctx, c)
	}
	return nil
}

// parseServiceAccountUser splits "system:serviceaccount:<ns>:<name>".
func parseServiceAccountUser(user string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(user, serviceAccountUserPrefix)
	if !ok {
		return "", "", fmt.Errorf("user %q is not a ServiceAccount; only ServiceAccount tokens get workload certificates", user)
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok {
		return "", "", fmt.Errorf("user %q is not %s<namespace>:<name>", user, serviceAccountUserPrefix)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", "", fmt.Errorf("user %q: bad namespace: %s", user, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", "", fmt.Errorf("user %q: bad ServiceAccount name: %s", user, strings.Join(errs, "; "))
	}
	return namespace, name, nil
}

// one is the single value of an extra, or "" when there is not exactly
// one.
func one(v authnv1.ExtraValue) string {
	if len(v) != 1 {
		return ""
	}
	return v[0]
}

// tokenAlgorithms are the signature algorithms API servers sign
// ServiceAccount tokens with.
var tokenAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// tokenExpiry reads the exp claim of a JWT that the API server has
// already authenticated, to cache the review no longer than the token
// lives. The signature is not checked here: the API server did that.
func tokenExpiry(token string) (time.Time, bool) {
	tok, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return time.Time{}, false
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil || claims.Expiry == nil {
		return time.Time{}, false
	}
	return claims.Expiry.Time(), true
}
