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

package trust

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// Errors a RootSource wraps so that the hub can tell a configuration
// problem from a passing failure. Check them with errors.Is.
var (
	// ErrRootInvalid: the configured root cannot be used (unparsable,
	// expired, another trust domain, not a CA...). The hub reports it on
	// every MemberCluster, issues nothing, and tries again only when a
	// watched object changes.
	ErrRootInvalid = errors.New("root CA is invalid")
	// ErrRootUnavailable: the configured root does not exist yet (its
	// Secret is missing, a certificate request is pending). Reported like
	// ErrRootInvalid.
	ErrRootUnavailable = errors.New("root CA is not available")
)

// RootSource yields the CA that the hub signs member intermediates with,
// and the trust anchors its chain leads to.
//
// Root returns a CA of trustDomain that may issue one more level of CAs
// (path length not 0), valid now, with its clock set to the source's
// clock; anchors are the certificates that verify its chain: the CA
// certificate itself when it is self-signed, else the root above it (for
// example the CA of a cert-manager issuer). The hub checks all of this
// again (checkRoot) and reports a violation as ErrRootInvalid.
//
// Errors that wrap ErrRootInvalid or ErrRootUnavailable are reported on the
// MemberClusters and not retried until an object the bundle reconciler
// watches changes (see WatchingRootSource); any other error is retried
// with backoff.
//
// Root may write to the hub cluster (GeneratedRoot creates its Secret); it
// must write only when something is missing or due, so that a restart
// writes nothing. The hub calls it from one reconciler, one call at a
// time.
type RootSource interface {
	Root(ctx context.Context, trustDomain spiffeid.TrustDomain) (ca *pki.CA, anchors []*x509.Certificate, err error)
}

// WatchingRootSource is a RootSource whose root depends on hub objects
// other than its Secret: the bundle reconciler runs again on every event
// of these kinds (for example cert-manager CertificateRequests). The
// objects' kinds must be in the hub manager's scheme.
type WatchingRootSource interface {
	RootSource
	WatchedObjects() []client.Object
}

// Keys of a kubernetes.io/tls Secret holding a CA.
const (
	// KeyCertificate is the CA certificate, followed by its chain up to but
	// not including the root.
	KeyCertificate = corev1.TLSCertKey
	// KeyPrivateKey is the CA's private key.
	KeyPrivateKey = corev1.TLSPrivateKeyKey
	// KeyCA is, in a member's Secret, the trust bundle; in a user-supplied
	// root Secret, optional issuers of tls.crt up to the root.
	KeyCA = "ca.crt"
)

// Annotations on the generated root's Secret.
const (
	// AnnotationRotate, set by a person to any new value, makes the hub
	// replace the generated root (see the package documentation on
	// rotation).
	AnnotationRotate = "causeway.dev/rotate"
	// AnnotationRotateHandled is the value of AnnotationRotate the hub last
	// acted on.
	AnnotationRotateHandled = "causeway.dev/rotate-handled"
)

// SecretRoot is the root a user supplies in a kubernetes.io/tls Secret:
// tls.crt (the CA certificate, optionally followed by its issuers), tls.key
// and an optional ca.crt with more issuers up to the root. The CA
// certificate must carry the trust domain's SPIFFE ID as its only URI SAN.
// When it is not self-signed, its chain must end with a self-signed root in
// tls.crt or ca.crt, which becomes the trust anchor. The hub never writes
// the Secret.
type SecretRoot struct {
	// Reader reads the Secret (the manager's cached client).
	Reader client.Reader
	// Secret names the Secret.
	Secret types.NamespacedName
	// Clock is the time source of the returned CA; nil means the real one.
	Clock clock.PassiveClock
}

// Root loads the CA from the Secret.
func (s *SecretRoot) Root(ctx context.Context, td spiffeid.TrustDomain) (*pki.CA, []*x509.Certificate, error) {
	var sec corev1.Secret
	if err := s.Reader.Get(ctx, s.Secret, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("%w: Secret %s does not exist", ErrRootUnavailable, s.Secret)
		}
		return nil, nil, fmt.Errorf("get root CA Secret %s: %w", s.Secret, err)
	}
	for _, k := range []string{KeyCertificate, KeyPrivateKey} {
		if len(sec.Data[k]) == 0 {
			return nil, nil, fmt.Errorf("%w: Secret %s has no %s", ErrRootInvalid, s.Secret, k)
		}
	}
	ca, err := pki.LoadCA(sec.Data[KeyCertificate], sec.Data[KeyPrivateKey], sec.Data[KeyCA])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Secret %s: %w", ErrRootInvalid, s.Secret, err)
	}
	if ca.IsRoot() {
		return ca.WithClock(clockOr(s.Clock)), []*x509.Certificate{ca.Certificate()}, nil
	}
	// The chain ends below the root: find the root among the given
	// certificates (LoadCA drops self-signed ones from the chain).
	chain := ca.Chain()
	top := chain[len(chain)-1]
	var candidates []*x509.Certificate
	for _, k := range []string{KeyCertificate, KeyCA} {
		if len(sec.Data[k]) == 0 {
			continue
		}
		certs, err := parseCertsPEM(sec.Data[k])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: Secret %s: %s: %w", ErrRootInvalid, s.Secret, k, err)
		}
		candidates = append(candidates, certs...)
	}
	for _, c := range candidates {
		if isSelfSigned(c) && top.CheckSignatureFrom(c) == nil {
			return ca.WithClock(clockOr(s.Clock)), []*x509.Certificate{c}, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: Secret %s: CA %s is not self-signed, and neither tls.crt nor ca.crt holds the root that issued %s",
		ErrRootInvalid, s.Secret, describe(ca.Certificate()), describe(top))
}

// GeneratedRoot is a root the hub makes itself on first start and keeps in
// a kubernetes.io/tls Secret (tls.crt, tls.key), so that a restart reuses
// it. It replaces the root, keeping the Secret, when the root is unusable
// (damaged, expired, of another trust domain), due for renewal (two thirds
// of its lifetime passed), or when a person sets AnnotationRotate to a new
// value.
type GeneratedRoot struct {
	// Client reads (from the cache) and writes the Secret.
	Client client.Client
	// APIReader reads the Secret past the cache after a create conflict;
	// nil means Client.
	APIReader client.Reader
	// Secret names the Secret.
	Secret types.NamespacedName
	// TTL is the lifetime of a new root; pki.DefaultRootTTL when zero.
	TTL time.Duration
	// Clock is the time source; nil means the real one.
	Clock clock.PassiveClock
}

// Root returns the generated root, making or replacing it first when
// needed.
func (g *GeneratedRoot) Root(ctx context.Context, td spiffeid.TrustDomain) (*pki.CA, []*x509.Certificate, error) {
	var sec corev1.Secret
	err := g.Client.Get(ctx, g.Secret, &sec)
	if apierrors.IsNotFound(err) {
		ca, created, cerr := g.create(ctx, td)
		if cerr != nil || created {
			return ca, anchorsOf(ca), cerr
		}
		// Someone made it meanwhile (or the cache lags): read it past
		// the cache.
		reader := g.APIReader
		if reader == nil {
			reader = g.Client
		}
		err = reader.Get(ctx, g.Secret, &sec)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get generated root CA Secret %s: %w", g.Secret, err)
	}
	ca, why, err := g.check(&sec, td)
	if err != nil {
		return nil, nil, err
	}
	if why == "" {
		return ca, anchorsOf(ca), nil
	}
	ca, err = g.replace(ctx, &sec, td, why)
	return ca, anchorsOf(ca), err
}

// check loads the Secret's root and says why it must be replaced, if it
// must; an error means neither use nor replace it yet.
func (g *GeneratedRoot) check(sec *corev1.Secret, td spiffeid.TrustDomain) (*pki.CA, string, error) {
	if r := sec.Annotations[AnnotationRotate]; r != "" && r != sec.Annotations[AnnotationRotateHandled] {
		return nil, fmt.Sprintf("annotation %s=%q asks for a new root", AnnotationRotate, r), nil
	}
	ca, err := pki.LoadCA(sec.Data[KeyCertificate], sec.Data[KeyPrivateKey])
	if errors.Is(err, pki.ErrNotYetValid) {
		// Most likely this host's clock is behind the one that made the
		// root: wait for it rather than replace a good root.
		return nil, "", fmt.Errorf("generated root CA in Secret %s: %w", g.Secret, err)
	}
	var why string
	switch {
	case err != nil:
		// Damaged or expired: the hub owns this root, so it makes another.
		why = "the stored root is unusable: " + err.Error()
	case !ca.IsRoot():
		why = "the stored CA is not self-signed"
	case ca.TrustDomain() != td:
		why = fmt.Sprintf("the stored root is for trust domain %s, the mesh's is now %s", ca.TrustDomain(), td)
	case !clockOr(g.Clock).Now().Before(renewalTime(ca.Certificate())):
		why = fmt.Sprintf("the root was due for renewal at %s (two thirds of its lifetime)", utc(renewalTime(ca.Certificate())))
	default:
		return ca.WithClock(clockOr(g.Clock)), "", nil
	}
	return nil, why, nil
}

// newRoot makes a root and the Secret data holding it.
func (g *GeneratedRoot) newRoot(td spiffeid.TrustDomain) (*pki.CA, map[string][]byte, error) {
	ca, err := pki.NewRoot(td, pki.RootOptions{TTL: g.TTL, Clock: clockOr(g.Clock)})
	if err != nil {
		return nil, nil, fmt.Errorf("generate root CA: %w", err)
	}
	key, err := ca.PrivateKeyPEM()
	if err != nil {
		return nil, nil, fmt.Errorf("generate root CA: %w", err)
	}
	return ca, map[string][]byte{KeyCertificate: ca.CertificatePEM(), KeyPrivateKey: key}, nil
}

// create makes the Secret; created is false when it already exists.
func (g *GeneratedRoot) create(ctx context.Context, td spiffeid.TrustDomain) (ca *pki.CA, created bool, err error) {
	ca, data, err := g.newRoot(td)
	if err != nil {
		return nil, false, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: g.Secret.Namespace, Name: g.Secret.Name},
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}
	switch err := g.Client.Create(ctx, sec); {
	case apierrors.IsAlreadyExists(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("create generated root CA Secret %s: %w", g.Secret, err)
	}
	ctrl.LoggerFrom(ctx).Info("generated a new root CA", "secret", g.Secret.String(), "trustDomain", td.String(),
		"sha256", Fingerprint(ca.Certificate()), "notAfter", ca.NotAfter())
	return ca, true, nil
}

// replace stores a new root in the existing Secret. The update carries the
// Secret's resourceVersion, so a concurrent change fails it rather than
// being overwritten.
func (g *GeneratedRoot) replace(ctx context.Context, sec *corev1.Secret, td spiffeid.TrustDomain, why string) (*pki.CA, error) {
	ca, data, err := g.newRoot(td)
	if err != nil {
		return nil, err
	}
	next := sec.DeepCopy()
	next.Data = data
	if r := next.Annotations[AnnotationRotate]; r != "" {
		next.Annotations = maps.Clone(next.Annotations)
		next.Annotations[AnnotationRotateHandled] = r
	}
	if err := g.Client.Update(ctx, next); err != nil {
		return nil, fmt.Errorf("replace generated root CA in Secret %s: %w", g.Secret, err)
	}
	ctrl.LoggerFrom(ctx).Info("replaced the generated root CA", "secret", g.Secret.String(), "reason", why,
		"trustDomain", td.String(), "sha256", Fingerprint(ca.Certificate()), "notAfter", ca.NotAfter())
	return ca, nil
}

func anchorsOf(ca *pki.CA) []*x509.Certificate {
	if ca == nil {
		return nil
	}
	return []*x509.Certificate{ca.Certificate()}
}

// checkRoot checks what a RootSource returned against its contract at now;
// a violation wraps ErrRootInvalid.
func checkRoot(ca *pki.CA, anchors []*x509.Certificate, td spiffeid.TrustDomain, now time.Time) error {
	if ca == nil || len(anchors) == 0 {
		return fmt.Errorf("%w: the root source returned no CA or no trust anchor", ErrRootInvalid)
	}
	cert := ca.Certificate()
	switch {
	case ca.TrustDomain() != td:
		return fmt.Errorf("%w: %w: CA %s is for trust domain %s, the mesh's is %s", ErrRootInvalid, pki.ErrTrustDomain, describe(cert), ca.TrustDomain(), td)
	case cert.MaxPathLenZero:
		return fmt.Errorf("%w: %w: CA %s has path length 0, so it cannot issue the members' intermediate CAs", ErrRootInvalid, pki.ErrPathLength, describe(cert))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%w: %w: CA %s is valid from %s (now %s)", ErrRootInvalid, pki.ErrNotYetValid, describe(cert), utc(cert.NotBefore), utc(now))
	case !now.Before(ca.NotAfter()):
		return fmt.Errorf("%w: %w: CA %s is usable until %s (now %s)", ErrRootInvalid, pki.ErrExpired, describe(cert), utc(ca.NotAfter()), utc(now))
	}
	if _, err := pki.NewBundle(td, anchors...); err != nil {
		return fmt.Errorf("%w: trust anchors: %w", ErrRootInvalid, err)
	}
	if _, err := cert.Verify(verifyOptions(anchors, ca.Chain(), now)); err != nil {
		return fmt.Errorf("%w: CA %s does not verify against its trust anchors at %s: %w", ErrRootInvalid, describe(cert), utc(now), err)
	}
	return nil
}

// verifyOptions verifies a CA certificate at now, through intermediates,
// against roots.
func verifyOptions(roots, intermediates []*x509.Certificate, now time.Time) x509.VerifyOptions {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// CAs carry no extended key usage.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range roots {
		opts.Roots.AddCert(c)
	}
	for _, c := range intermediates {
		opts.Intermediates.AddCert(c)
	}
	return opts
}

func clockOr(c clock.PassiveClock) clock.PassiveClock {
	if c == nil {
		return clock.RealClock{}
	}
	return c
}
