package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"
)

var (
	tdExample  = spiffeid.RequireTrustDomainFromString("example.org")
	tdOther    = spiffeid.RequireTrustDomainFromString("other.org")
	workloadID = spiffeid.RequireFromPath(tdExample, "/ns/shop/sa/checkout")
	gatewayID  = spiffeid.RequireFromPath(tdExample, "/cluster/east/gateway")
	// t0 is the fake clocks' start: a fixed instant keeps validity
	// arithmetic exact.
	t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRoot(t testing.TB, td spiffeid.TrustDomain, opts RootOptions) *CA {
	t.Helper()
	ca, err := NewRoot(td, opts)
	if err != nil {
		t.Fatalf("NewRoot(%s): %v", td, err)
	}
	return ca
}

func newIntermediate(t testing.TB, parent *CA, name string, ttl time.Duration) *CA {
	t.Helper()
	ca, err := parent.NewIntermediate(name, ttl)
	if err != nil {
		t.Fatalf("NewIntermediate(%q): %v", name, err)
	}
	return ca
}

func fakeClock(at time.Time) *clocktesting.FakePassiveClock {
	return clocktesting.NewFakePassiveClock(at)
}

func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return der
}

func signSVID(t testing.TB, ca *CA, id spiffeid.ID, ttl time.Duration) *SVID {
	t.Helper()
	svid, err := ca.SignPublicKey(newP256(t).Public(), id, ttl)
	if err != nil {
		t.Fatalf("SignPublicKey(%s): %v", id, err)
	}
	return svid
}

// handMade creates a certificate with crypto/x509 directly, bypassing
// this package's rules, to build what a misbehaving or foreign issuer
// could. parent nil means self-signed with key.
func handMade(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatalf("create hand-made certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// handMadeCA is a CA template in td (nil td: no URI SAN).
func handMadeCA(cn string, td *spiffeid.TrustDomain) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            -1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if td != nil {
		tmpl.URIs = []*url.URL{td.ID().URL()}
	}
	return tmpl
}

// handMadeLeaf is a leaf template; SANs are left to the caller.
func handMadeLeaf() *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: "hand-made leaf"},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

func mustBundle(t testing.TB, td spiffeid.TrustDomain, roots ...*x509.Certificate) *Bundle {
	t.Helper()
	b, err := NewBundle(td, roots...)
	if err != nil {
		t.Fatalf("NewBundle: %v", err)
	}
	return b
}

func keyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encodePEM(pemPrivateKey, der)
}

func caKeyPEM(t testing.TB, ca *CA) []byte {
	t.Helper()
	p, err := ca.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func uriStrings(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

func keyUsageCritical(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidKeyUsage) {
			return e.Critical
		}
	}
	return false
}
