package pki

import (
	"crypto/x509"
	"errors"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Verify verifies an X509-SVID chain (leaf first, then intermediates)
// against bundle and returns the leaf's SPIFFE ID. It is go-spiffe's
// x509svid.Verify: RFC 5280 path validation by crypto/x509 (signatures,
// validity, path length) plus the X509-SVID leaf rules (exactly one URI
// SAN holding a SPIFFE ID, CA=false, no keyCertSign or cRLSign). The
// leaf's trust domain must be bundle's. opts are go-spiffe's; pass
// x509svid.WithTime to verify at another time than now.
func Verify(chain []*x509.Certificate, bundle *Bundle, opts ...x509svid.VerifyOption) (spiffeid.ID, error) {
	if bundle == nil {
		return spiffeid.ID{}, errors.New("verify X509-SVID: bundle is nil")
	}
	id, _, err := x509svid.Verify(chain, bundle, opts...)
	if err != nil {
		// go-spiffe's errors already say "x509svid: ..." and what failed.
		return spiffeid.ID{}, err
	}
	return id, nil
}

// RotationTime is when cert should be replaced: at half its lifetime, as
// SPIFFE agents (SPIRE) do. The other half leaves room for retries while
// the old certificate still works.
func RotationTime(cert *x509.Certificate) time.Time {
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
}

// ShouldRotate reports whether cert, an SVID or a CA, has reached its
// RotationTime at now. A reconciler that gets false can requeue after
// RotationTime(cert).Sub(now).
func ShouldRotate(cert *x509.Certificate, now time.Time) bool {
	return !now.Before(RotationTime(cert))
}
