package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"k8s.io/utils/clock"
)

// Validity defaults and the clock-skew allowance. See the package
// documentation for why these values.
const (
	// DefaultRootTTL is the validity of a root made by NewRoot.
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
	// DefaultIntermediateTTL is the validity of an intermediate made by
	// NewIntermediate.
	DefaultIntermediateTTL = 365 * 24 * time.Hour
	// DefaultWorkloadTTL is the validity of an SVID signed by SignCSR or
	// SignPublicKey.
	DefaultWorkloadTTL = 24 * time.Hour
	// ClockSkew is how far in the past every certificate's NotBefore is
	// set, so that a peer whose clock is a little behind ours already
	// accepts a certificate we have just issued.
	ClockSkew = time.Minute
)

// Organization is the subject organisation of every certificate this
// package issues.
const Organization = "Causeway"

// DefaultRootCommonName is the subject common name of a root when
// RootOptions.CommonName is empty.
const DefaultRootCommonName = "Causeway root CA"

// Sentinel errors, for callers that act on the kind of failure (for
// example, replace an expired CA rather than report a misconfiguration).
// Check them with errors.Is; the returned errors say which certificate
// and why.
var (
	// ErrNotCA: the certificate is not a signing certificate (basic
	// constraints CA=false, or no keyCertSign key usage).
	ErrNotCA = errors.New("certificate is not a CA")
	// ErrKeyMismatch: the private key is not the certificate's key.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrExpired: a certificate's NotAfter has passed.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid: a certificate's NotBefore is in the future.
	ErrNotYetValid = errors.New("certificate is not yet valid")
	// ErrPathLength: the CA's path length constraint forbids it to issue
	// another CA.
	ErrPathLength = errors.New("path length constraint forbids issuing a CA")
	// ErrTrustDomain: a SPIFFE ID or certificate belongs to another trust
	// domain, or a certificate names no trust domain.
	ErrTrustDomain = errors.New("trust domain mismatch")
)

// maxCommonNameLen is the upper bound of X.520 CommonName (RFC 5280,
// appendix A.1, ub-common-name).
const maxCommonNameLen = 64

// serialLimit bounds serial numbers to 128 random bits (RFC 5280 allows up
// to 20 octets; CA/Browser Forum practice asks for at least 64 random bits).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// CA is a signing certificate of the trust domain with its private key:
// the root held by the hub, or a member cluster's intermediate held by its
// agent. A CA is immutable and safe for concurrent use.
type CA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
	// chain is what follows a leaf signed by this CA in an SVID: cert and
	// its issuers up to, not including, the root. Empty for a root.
	chain []*x509.Certificate
	// notAfter is the earliest NotAfter in cert and chain: nothing this
	// CA signs may outlive it.
	notAfter time.Time
	clock    clock.PassiveClock
}

// RootOptions configures NewRoot. The zero value is valid.
type RootOptions struct {
	// CommonName is the root's subject common name; DefaultRootCommonName
	// when empty.
	CommonName string
	// TTL is the root's validity; DefaultRootTTL when zero.
	TTL time.Duration
	// Clock is the time source for the root and everything signed by it
	// or its intermediates; the real clock when nil.
	Clock clock.PassiveClock
}

// NewRoot makes a self-signed root CA for trustDomain with a new ECDSA
// P-256 key. The root is an X509-SVID signing certificate: basic
// constraints CA=true with path length 1 (root → cluster intermediate →
// leaf), key usage keyCertSign and cRLSign only, and the trust domain's
// SPIFFE ID (spiffe://<trust domain>, no path) as its only URI SAN.
func NewRoot(trustDomain spiffeid.TrustDomain, opts RootOptions) (*CA, error) {
	if trustDomain.IsZero() {
		return nil, errors.New("new root: trust domain is empty")
	}
	cn := opts.CommonName
	if cn == "" {
		cn = DefaultRootCommonName
	}
	if len(cn) > maxCommonNameLen {
		return nil, fmt.Errorf("new root: common name %q is longer than %d bytes", cn, maxCommonNameLen)
	}
	ttl := opts.TTL
	switch {
	case ttl == 0:
		ttl = DefaultRootTTL
	case ttl < 0:
		return nil, fmt.Errorf("new root: negative TTL %s", ttl)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new root: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	now := clk.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{Organization}, CommonName: cn},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(ttl),
		URIs:                  []*url.URL{trustDomain.ID().URL()},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new root: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new root: parse created certificate: %w", err)
	}
	return &CA{td: trustDomain, cert: cert, key: key, notAfter: cert.NotAfter, clock: clk}, nil
}

// NewIntermediate makes an intermediate CA named name (its subject common
// name, normally the member cluster's name) signed by ca, with a new ECDSA
// P-256 key and path length 0: it signs leaves only. ttl is
// DefaultIntermediateTTL when zero and is cut to ca's remaining lifetime.
// The intermediate keeps ca's clock, and its chain is itself followed by
// ca's chain.
func (ca *CA) NewIntermediate(name string, ttl time.Duration) (*CA, error) {
	switch {
	case name == "":
		return nil, errors.New("new intermediate: name is empty")
	case len(name) > maxCommonNameLen:
		return nil, fmt.Errorf("new intermediate: name %q is longer than %d bytes", name, maxCommonNameLen)
	case ca.cert.MaxPathLenZero:
		// A parsed certificate has MaxPathLenZero exactly when its path
		// length constraint is 0; a created one when it was asked for.
		return nil, fmt.Errorf("new intermediate %q: %w: CA %s has path length 0", name, ErrPathLength, describe(ca.cert))
	case ttl == 0:
		ttl = DefaultIntermediateTTL
	case ttl < 0:
		return nil, fmt.Errorf("new intermediate %q: negative TTL %s", name, ttl)
	}
	notBefore, notAfter, err := ca.validity(ttl)
	if err != nil {
		return nil, fmt.Errorf("new intermediate %q: %w", name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new intermediate %q: generate key: %w", name, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new intermediate %q: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{Organization}, CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{ca.td.ID().URL()},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("new intermediate %q: create certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new intermediate %q: parse created certificate: %w", name, err)
	}
	chain := make([]*x509.Certificate, 0, 1+len(ca.chain))
	chain = append(chain, cert)
	chain = append(chain, ca.chain...)
	return &CA{
		td:       ca.td,
		cert:     cert,
		key:      key,
		chain:    chain,
		notAfter: earliestNotAfter(chain),
		clock:    ca.clock,
	}, nil
}

// LoadCA loads a root or intermediate CA from PEM: certPEM holds the CA
// certificate, optionally followed by its issuers; keyPEM its private key
// (PKCS #8 "PRIVATE KEY", SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA PRIVATE
// KEY", unencrypted); each chainPEM more issuers, nearest first (empty
// ones are skipped). A leading copy of the CA certificate in the chain (as
// in ChainPEM's output) and self-signed roots are dropped: roots belong in
// the Bundle, and a root's own chain is ignored.
//
// The CA certificate must be a signing certificate (CA=true and
// keyCertSign), match the key, be valid now, and carry a SPIFFE ID
// without a path as its only URI SAN, which gives the trust domain. Each
// chain certificate must have signed the one before it and be valid now.
// Errors say which check failed; the sentinel errors of this package
// identify the kind.
func LoadCA(certPEM, keyPEM []byte, chainPEM ...[]byte) (*CA, error) {
	certs, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate PEM: %w", err)
	}
	cert := certs[0]
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA private key PEM: %w", err)
	}
	if err := checkSigningCert(cert); err != nil {
		return nil, err
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: key is not the key of CA %s", ErrKeyMismatch, describe(cert))
	}
	clk := clock.RealClock{}
	now := clk.Now()
	if err := checkValidAt(cert, now); err != nil {
		return nil, err
	}
	td, err := signingCertTrustDomain(cert)
	if err != nil {
		return nil, err
	}

	parents := certs[1:]
	for i, p := range chainPEM {
		if len(bytes.TrimSpace(p)) == 0 {
			// A root's ChainPEM, or an empty ca chain key of a Secret.
			continue
		}
		cs, err := parseCertificatesPEM(p)
		if err != nil {
			return nil, fmt.Errorf("parse CA chain PEM %d: %w", i, err)
		}
		parents = append(parents, cs...)
	}
	if len(parents) > 0 && parents[0].Equal(cert) {
		parents = parents[1:]
	}
	if isSelfSigned(cert) {
		// A root: anything given as its chain is ignored, as the Bundle
		// carries roots and leaves carry no root.
		return &CA{td: td, cert: cert, key: key, notAfter: cert.NotAfter, clock: clk}, nil
	}
	if len(parents) == 0 && bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		// Named as its own issuer, yet its signature does not verify
		// with its own key: most likely a damaged root (FuzzLoadCA found
		// one whose URI SAN was altered), which must not be mistaken for
		// an intermediate with no chain.
		return nil, fmt.Errorf("CA %s names itself as issuer but its self-signature does not verify; the certificate is damaged or its issuer is missing from the chain",
			describe(cert))
	}
	chain := []*x509.Certificate{cert}
	for _, p := range parents {
		child := chain[len(chain)-1]
		if err := child.CheckSignatureFrom(p); err != nil {
			return nil, fmt.Errorf("CA chain: %s was not issued by %s: %w", describe(child), describe(p), err)
		}
		if isSelfSigned(p) {
			break
		}
		if err := checkValidAt(p, now); err != nil {
			return nil, fmt.Errorf("CA chain: %w", err)
		}
		chain = append(chain, p)
	}
	return &CA{td: td, cert: cert, key: key, chain: chain, notAfter: earliestNotAfter(chain), clock: clk}, nil
}

// WithClock returns a copy of ca that reads the time from c. Intermediates
// made by the copy inherit c.
func (ca *CA) WithClock(c clock.PassiveClock) *CA {
	cp := *ca
	cp.clock = c
	return &cp
}

// TrustDomain is the trust domain whose SVIDs ca signs.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Certificate is ca's own certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// IsRoot reports whether ca is self-signed.
func (ca *CA) IsRoot() bool { return len(ca.chain) == 0 }

// Chain is what follows a leaf signed by ca in an X509-SVID: ca's
// certificate and its issuers, up to but not including the root. It is
// empty for a root. The certificates must not be modified.
func (ca *CA) Chain() []*x509.Certificate {
	return append([]*x509.Certificate(nil), ca.chain...)
}

// NotAfter is the end of ca's usable lifetime: the earliest NotAfter of
// its certificate and chain. Nothing ca signs outlives it.
func (ca *CA) NotAfter() time.Time { return ca.notAfter }

// CertificatePEM is ca's certificate as one PEM "CERTIFICATE" block.
func (ca *CA) CertificatePEM() []byte { return encodeCertificatesPEM(ca.cert) }

// ChainPEM is Chain as PEM "CERTIFICATE" blocks; empty for a root.
// LoadCA(ca.CertificatePEM(), key, ca.ChainPEM()) loads ca again.
func (ca *CA) ChainPEM() []byte { return encodeCertificatesPEM(ca.chain...) }

// PrivateKeyPEM is ca's private key as an unencrypted PKCS #8 "PRIVATE
// KEY" PEM block. It is a secret: store it only where the CA's holder
// alone can read it.
func (ca *CA) PrivateKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA private key: %w", err)
	}
	return encodePEM(pemPrivateKey, der), nil
}

// validity returns the NotBefore and NotAfter of a certificate issued by
// ca now for ttl: NotBefore ClockSkew in the past but not before ca's own,
// NotAfter cut to ca's lifetime. It fails when ca has expired.
func (ca *CA) validity(ttl time.Duration) (notBefore, notAfter time.Time, err error) {
	now := ca.clock.Now()
	if !now.Before(ca.notAfter) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: CA %s is usable until %s (now %s)",
			ErrExpired, describe(ca.cert), ca.notAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	notBefore = now.Add(-ClockSkew)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	notAfter = now.Add(ttl)
	if notAfter.After(ca.notAfter) {
		notAfter = ca.notAfter
	}
	if !notAfter.After(notBefore) {
		// The CA is not valid yet and the TTL is too short to reach
		// into its validity.
		return time.Time{}, time.Time{}, fmt.Errorf("%w: CA %s is valid from %s; a certificate for %s from now (%s) would end before it starts",
			ErrNotYetValid, describe(ca.cert), ca.cert.NotBefore.UTC().Format(time.RFC3339), ttl, now.UTC().Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// checkSigningCert checks that cert is an X509-SVID signing certificate.
func checkSigningCert(cert *x509.Certificate) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return fmt.Errorf("%w: %s has no basic constraints CA=true", ErrNotCA, describe(cert))
	case cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: %s lacks the keyCertSign key usage", ErrNotCA, describe(cert))
	}
	return nil
}

// signingCertTrustDomain returns the trust domain named by the SPIFFE ID
// of a signing certificate, which must have no path (X509-SVID spec,
// section 3.2).
func signingCertTrustDomain(cert *x509.Certificate) (spiffeid.TrustDomain, error) {
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("%w: CA %s has no SPIFFE ID (a single URI SAN spiffe://<trust domain>) to name its trust domain: %w",
			ErrTrustDomain, describe(cert), err)
	}
	if id.Path() != "" {
		return spiffeid.TrustDomain{}, fmt.Errorf("%w: CA %s has SPIFFE ID %s with a path; a signing certificate's ID must be spiffe://<trust domain>",
			ErrTrustDomain, describe(cert), id)
	}
	return id.TrustDomain(), nil
}

func checkValidAt(cert *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%w: %s is valid from %s (now %s)", ErrNotYetValid, describe(cert),
			cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.After(cert.NotAfter):
		return fmt.Errorf("%w: %s expired at %s (now %s)", ErrExpired, describe(cert),
			cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func isSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) &&
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}

func earliestNotAfter(certs []*x509.Certificate) time.Time {
	t := certs[0].NotAfter
	for _, c := range certs[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// describe names a certificate in error messages.
func describe(cert *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %x)", cert.Subject.String(), cert.SerialNumber)
}

func newSerial() (*big.Int, error) {
	for {
		s, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		// RFC 5280 section 4.1.2.2: serial numbers are positive.
		if s.Sign() > 0 {
			return s, nil
		}
	}
}
