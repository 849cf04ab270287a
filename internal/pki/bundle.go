package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Bundle is the set of X.509 authorities (normally roots) that the trust
// domain's SVIDs are verified against. During a root rotation it holds the
// old and the new root, so that leaves issued under either verify. A
// Bundle is safe for concurrent use; it implements x509bundle.Source, so
// go-spiffe's x509svid, spiffetls and tlsconfig accept it directly.
type Bundle struct {
	// mu serialises changes, so that Remove's check and removal are one
	// step; reads rely on b's own lock.
	mu sync.Mutex
	// b is never handed out: callers get clones, so every authority in it
	// went through Add's checks.
	b *x509bundle.Bundle
}

var _ x509bundle.Source = (*Bundle)(nil)

// NewBundle returns a bundle of trustDomain holding roots. Each root is
// checked as by Add.
func NewBundle(trustDomain spiffeid.TrustDomain, roots ...*x509.Certificate) (*Bundle, error) {
	if trustDomain.IsZero() {
		return nil, errors.New("new bundle: trust domain is empty")
	}
	b := &Bundle{b: x509bundle.New(trustDomain)}
	for _, r := range roots {
		if err := b.Add(r); err != nil {
			return nil, fmt.Errorf("new bundle: %w", err)
		}
	}
	return b, nil
}

// ParseBundle decodes a bundle of trustDomain from PEM "CERTIFICATE"
// blocks (the output of MarshalPEM, or a ca.crt file). Empty data gives an
// empty bundle.
func ParseBundle(trustDomain spiffeid.TrustDomain, data []byte) (*Bundle, error) {
	b, err := NewBundle(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("parse bundle: %w", err)
	}
	if len(data) == 0 {
		return b, nil
	}
	certs, err := parseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("parse bundle of %s: %w", trustDomain, err)
	}
	for _, c := range certs {
		if err := b.Add(c); err != nil {
			return nil, fmt.Errorf("parse bundle: %w", err)
		}
	}
	return b, nil
}

// FromX509Bundle converts a go-spiffe bundle, checking each authority as
// Add does.
func FromX509Bundle(xb *x509bundle.Bundle) (*Bundle, error) {
	return NewBundle(xb.TrustDomain(), xb.X509Authorities()...)
}

// TrustDomain is the bundle's trust domain.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain { return b.b.TrustDomain() }

// Add adds an authority to the bundle; adding one already there does
// nothing. The authority must be a signing certificate (CA=true,
// keyCertSign). Its SPIFFE ID, when it has one, must be the bundle's
// trust domain; an authority without a URI SAN (a supplied corporate
// root, say) is accepted. Expiry is not checked here: verification
// checks it, and a bundle may announce a root before it is valid.
func (b *Bundle) Add(root *x509.Certificate) error {
	if root == nil {
		return errors.New("add authority: certificate is nil")
	}
	if err := checkSigningCert(root); err != nil {
		return fmt.Errorf("add authority to bundle of %s: %w", b.TrustDomain(), err)
	}
	if len(root.URIs) > 0 {
		td, err := signingCertTrustDomain(root)
		if err != nil {
			return fmt.Errorf("add authority to bundle of %s: %w", b.TrustDomain(), err)
		}
		if td != b.TrustDomain() {
			return fmt.Errorf("add authority to bundle of %s: %w: %s belongs to %s",
				b.TrustDomain(), ErrTrustDomain, describe(root), td)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.AddX509Authority(root)
	return nil
}

// Remove removes an authority from the bundle and reports whether it was
// there. Remove the old root only once no leaf issued under it is still in
// use: from then on, such leaves fail verification.
func (b *Bundle) Remove(root *x509.Certificate) bool {
	if root == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.b.HasX509Authority(root) {
		return false
	}
	b.b.RemoveX509Authority(root)
	return true
}

// Contains reports whether root is in the bundle.
func (b *Bundle) Contains(root *x509.Certificate) bool {
	return root != nil && b.b.HasX509Authority(root)
}

// Authorities returns the bundle's authorities in the order they were
// added. The certificates must not be modified.
func (b *Bundle) Authorities() []*x509.Certificate { return b.b.X509Authorities() }

// Len is the number of authorities.
func (b *Bundle) Len() int { return len(b.b.X509Authorities()) }

// Roots returns a new pool of the bundle's authorities, for a
// tls.Config's RootCAs or ClientCAs. It does not follow later changes to
// the bundle. Prefer Verify, which also checks the SPIFFE ID rules.
func (b *Bundle) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range b.b.X509Authorities() {
		pool.AddCert(c)
	}
	return pool
}

// MarshalPEM encodes the authorities as PEM "CERTIFICATE" blocks, in the
// order they were added.
func (b *Bundle) MarshalPEM() []byte {
	return encodeCertificatesPEM(b.b.X509Authorities()...)
}

// X509Bundle returns a go-spiffe bundle with the same trust domain and
// authorities. It is a copy: changes to either do not reach the other.
func (b *Bundle) X509Bundle() *x509bundle.Bundle { return b.b.Clone() }

// GetX509BundleForTrustDomain implements x509bundle.Source: it returns a
// copy of the bundle as X509Bundle does, or an error for any other trust
// domain.
func (b *Bundle) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if trustDomain != b.TrustDomain() {
		return nil, fmt.Errorf("%w: no X.509 bundle for trust domain %s (bundle is for %s)",
			ErrTrustDomain, trustDomain, b.TrustDomain())
	}
	return b.b.Clone(), nil
}
