package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// minRSABits is the smallest RSA key SignCSR accepts (NIST SP 800-131A).
const minRSABits = 2048

// SVID is an X509-SVID as issued by a CA: the leaf certificate followed by
// the intermediates that issued it, up to but not including the root. The
// private key stays with whoever made the CSR or key.
type SVID struct {
	// ID is the SPIFFE ID in the leaf's only URI SAN.
	ID spiffeid.ID
	// Certificates is the leaf, then its issuers; never empty. The
	// certificates must not be modified.
	Certificates []*x509.Certificate
}

// Leaf is the SVID's own certificate.
func (s *SVID) Leaf() *x509.Certificate { return s.Certificates[0] }

// ChainDER is Certificates in DER, leaf first: the form of a TLS
// certificate chain (tls.Certificate.Certificate) and of x509svid's
// ParseAndVerify.
func (s *SVID) ChainDER() [][]byte {
	der := make([][]byte, len(s.Certificates))
	for i, c := range s.Certificates {
		der[i] = c.Raw
	}
	return der
}

// ChainPEM is Certificates as PEM "CERTIFICATE" blocks, leaf first: the
// form of a tls.crt file or an SDS certificate chain.
func (s *SVID) ChainPEM() []byte { return encodeCertificatesPEM(s.Certificates...) }

// SignCSR signs a PKCS #10 certificate signing request as an X509-SVID for
// id, valid for ttl (DefaultWorkloadTTL when zero, cut to ca's lifetime).
// The request's signature must verify, which proves its sender holds the
// key. Everything else it asks for (subject, SANs, extensions) is ignored:
// the certificate carries exactly one URI SAN, id, as the X509-SVID
// specification requires, and only what SignPublicKey sets. csrDER comes
// from workloads, so it is treated as hostile input.
func (ca *CA) SignCSR(csrDER []byte, id spiffeid.ID, ttl time.Duration) (*SVID, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("sign CSR for %s: parse CSR: %w", id, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign CSR for %s: check CSR signature: %w", id, err)
	}
	return ca.SignPublicKey(csr.PublicKey, id, ttl)
}

// SignPublicKey issues an X509-SVID for id and pub, valid for ttl
// (DefaultWorkloadTTL when zero, cut to ca's lifetime), for keys whose
// possession needs no proof (the agent's own, such as its east-west
// gateway's). id must be in ca's trust domain and have a path (the
// trust domain's own ID names its CAs, not a workload). pub must be an
// ECDSA P-256, P-384 or P-521, Ed25519, or RSA key of at least 2048 bits.
//
// The leaf has basic constraints CA=false; key usage digitalSignature,
// plus keyEncipherment for RSA keys (TLS 1.2 RSA key exchange); extended
// key usage serverAuth and clientAuth; a random 128-bit serial number;
// NotBefore ClockSkew in the past (not before ca's own).
func (ca *CA) SignPublicKey(pub crypto.PublicKey, id spiffeid.ID, ttl time.Duration) (*SVID, error) {
	if err := ca.checkWorkloadID(id); err != nil {
		return nil, fmt.Errorf("sign SVID: %w", err)
	}
	keyUsage, err := leafKeyUsage(pub)
	if err != nil {
		return nil, fmt.Errorf("sign SVID for %s: %w", id, err)
	}
	switch {
	case ttl == 0:
		ttl = DefaultWorkloadTTL
	case ttl < 0:
		return nil, fmt.Errorf("sign SVID for %s: negative TTL %s", id, ttl)
	}
	notBefore, notAfter, err := ca.validity(ttl)
	if err != nil {
		return nil, fmt.Errorf("sign SVID for %s: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("sign SVID for %s: %w", id, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{Organization}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{id.URL()},
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign SVID for %s: create certificate: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign SVID for %s: parse created certificate: %w", id, err)
	}
	certs := make([]*x509.Certificate, 0, 1+len(ca.chain))
	certs = append(certs, leaf)
	certs = append(certs, ca.chain...)
	return &SVID{ID: id, Certificates: certs}, nil
}

// checkWorkloadID checks that id may name a leaf signed by ca (X509-SVID
// spec, section 3.1: a leaf's SPIFFE ID has a non-root path).
func (ca *CA) checkWorkloadID(id spiffeid.ID) error {
	switch {
	case id.IsZero():
		return errors.New("SPIFFE ID is empty")
	case !id.MemberOf(ca.td):
		return fmt.Errorf("%w: SPIFFE ID %s is not in trust domain %s", ErrTrustDomain, id, ca.td)
	case id.Path() == "":
		return fmt.Errorf("SPIFFE ID %s has no path; a leaf SVID's ID must name a workload", id)
	}
	return nil
}

// leafKeyUsage returns the key usage of a leaf for pub, or why pub is not
// acceptable.
func leafKeyUsage(pub crypto.PublicKey) (x509.KeyUsage, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return x509.KeyUsageDigitalSignature, nil
		}
		return 0, fmt.Errorf("unsupported ECDSA curve %s", k.Params().Name)
	case ed25519.PublicKey:
		return x509.KeyUsageDigitalSignature, nil
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return 0, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", bits, minRSABits)
		}
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, nil
	case nil:
		return 0, errors.New("no public key")
	}
	return 0, fmt.Errorf("unsupported public key type %T", pub)
}
