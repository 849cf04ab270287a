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

package certmanager

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/utils/clock"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// loadRoot loads the CA cert-manager issued: certPEM is the CA
// certificate followed by its chain up to, not including, the root
// (status.certificate), keyPEM its key, caPEM the trust anchors
// (status.ca). The CA must be of td and chain to an anchor at clk's now;
// validity is checked by pki.LoadCA at the real time.
func loadRoot(certPEM, keyPEM, caPEM []byte, td spiffeid.TrustDomain, clk clock.PassiveClock) (*root, error) {
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if ca.TrustDomain() != td {
		return nil, fmt.Errorf("%w: the CA is for trust domain %s, the mesh's is %s", pki.ErrTrustDomain, ca.TrustDomain(), td)
	}
	if len(caPEM) == 0 {
		return nil, errors.New("no CA certificate came with the CA (the issuer set no status.ca), so there is no trust anchor to publish")
	}
	now := clk.Now()
	if nb := ca.Certificate().NotBefore; now.Before(nb) {
		// cert-manager does not backdate: a clock a little behind the
		// issuer's sees a fresh certificate as not yet valid.
		return nil, fmt.Errorf("%w: the CA is valid from %s (now %s)", pki.ErrNotYetValid,
			nb.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	bundle, err := pki.ParseBundle(td, caPEM)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	anchors := bundle.Authorities()
	opts := x509.VerifyOptions{
		Roots:         bundle.Roots(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// CA certificates carry no extended key usage.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	// A self-signed CA (from cert-manager's SelfSigned issuer) has an
	// empty chain and is its own anchor.
	if chain := ca.Chain(); len(chain) > 1 {
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := ca.Certificate().Verify(opts); err != nil {
		return nil, fmt.Errorf("the CA does not chain to its CA certificates (status.ca): %w", err)
	}
	return &root{ca: ca.WithClock(clk), anchors: anchors}, nil
}

// renewalTime is when r is due for renewal: two thirds into its usable
// lifetime (its certificate's NotBefore to the earliest NotAfter in its
// chain). The last third leaves time to retry while it still works.
func renewalTime(r *root) time.Time {
	nb := r.ca.Certificate().NotBefore
	return nb.Add(r.ca.NotAfter().Sub(nb) / 3 * 2)
}

// renewalDue reports whether r should be renewed at now, and from when.
// It is not due, whatever the time, while renewing cannot lengthen its
// life: when its certificate already ends with the certificate that issued
// it (a CA issuer cuts what it signs to its own CA's lifetime), a new one
// would end at the same time, and asking again on every call would only
// pile up CertificateRequests. The issuer's own CA must be renewed first.
func renewalDue(r *root, now time.Time) (bool, time.Time) {
	at := renewalTime(r)
	if now.Before(at) {
		return false, at
	}
	if issuer := issuerOf(r); issuer != nil && !r.ca.NotAfter().Before(issuer.NotAfter) {
		return false, at
	}
	return true, at
}

// issuerOf returns the certificate that issued r's CA certificate: the
// next in its chain, else the anchor that signed it; nil if none did or
// the CA is self-signed.
func issuerOf(r *root) *x509.Certificate {
	if r.ca.IsRoot() {
		return nil
	}
	cert := r.ca.Certificate()
	if chain := r.ca.Chain(); len(chain) > 1 {
		return chain[1]
	}
	for _, a := range r.anchors {
		if cert.CheckSignatureFrom(a) == nil {
			return a
		}
	}
	return nil
}
