package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// FuzzLoadCA feeds LoadCA arbitrary certificate, key and chain bytes. It
// must never panic, and whatever it accepts must be a usable CA.
func FuzzLoadCA(f *testing.F) {
	root := newRoot(f, tdExample, RootOptions{})
	inter := newIntermediate(f, root, "east", 0)
	rootKey, interKey := caKeyPEM(f, root), caKeyPEM(f, inter)
	f.Add(root.CertificatePEM(), rootKey, []byte(nil))
	f.Add(inter.CertificatePEM(), interKey, inter.ChainPEM())
	f.Add(inter.CertificatePEM(), interKey, root.CertificatePEM())
	f.Add(inter.CertificatePEM(), rootKey, []byte(nil))
	f.Add(rootKey, root.CertificatePEM(), []byte("garbage"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM, chainPEM []byte) {
		ca, err := LoadCA(certPEM, keyPEM, chainPEM)
		if err != nil {
			return
		}
		c := ca.Certificate()
		if !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Fatalf("accepted a certificate that is not a signing certificate: %s", describe(c))
		}
		if !publicKeyEqual(ca.key.Public(), c.PublicKey) {
			t.Fatal("accepted a key that does not match the certificate")
		}
		if ca.TrustDomain().IsZero() {
			t.Fatal("accepted a CA without a trust domain")
		}
		if chain := ca.Chain(); !ca.IsRoot() && !chain[0].Equal(c) {
			t.Fatal("chain does not start with the CA certificate")
		}
		id := spiffeid.RequireFromPath(ca.TrustDomain(), "/ns/shop/sa/checkout")
		if _, err := ca.SignPublicKey(newP256(t).Public(), id, 0); err != nil {
			t.Fatalf("loaded CA cannot sign: %v", err)
		}
	})
}

// FuzzParseBundle feeds ParseBundle arbitrary bytes. It must never panic,
// and what it accepts must survive a MarshalPEM round trip.
func FuzzParseBundle(f *testing.F) {
	root1 := newRoot(f, tdExample, RootOptions{})
	root2 := newRoot(f, tdExample, RootOptions{})
	f.Add(root1.CertificatePEM())
	f.Add(append(root1.CertificatePEM(), root2.CertificatePEM()...))
	f.Add(append([]byte("text before\n"), root1.CertificatePEM()...))
	f.Add(caKeyPEM(f, root1))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(tdExample, data)
		if err != nil {
			return
		}
		again, err := ParseBundle(tdExample, b.MarshalPEM())
		if err != nil {
			t.Fatalf("ParseBundle(MarshalPEM()): %v", err)
		}
		if !slices.EqualFunc(b.Authorities(), again.Authorities(), (*x509.Certificate).Equal) {
			t.Fatal("MarshalPEM round trip changed the bundle")
		}
	})
}

// FuzzSignCSR feeds SignCSR arbitrary bytes, as a workload could. It must
// never panic, and whatever it signs must carry exactly the requested ID
// and no CA powers.
func FuzzSignCSR(f *testing.F) {
	root := newRoot(f, tdExample, RootOptions{})
	inter := newIntermediate(f, root, "east", 0)
	bundle := mustBundle(f, tdExample, root.Certificate())
	f.Add(newCSR(f, newP256(f), nil))
	f.Add(newCSR(f, newP256(f), &x509.CertificateRequest{
		DNSNames: []string{"a.example.org"},
		URIs:     []*url.URL{gatewayID.URL()},
	}))
	tampered := newCSR(f, newP256(f), nil)
	tampered[len(tampered)-1] ^= 1
	f.Add(tampered)
	f.Add([]byte("not a CSR"))
	f.Fuzz(func(t *testing.T, csr []byte) {
		svid, err := inter.SignCSR(csr, workloadID, 0)
		if err != nil {
			return
		}
		leaf := svid.Leaf()
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != workloadID.String() || leaf.IsCA ||
			len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
			t.Fatalf("signed a leaf with URIs %v, DNS %v, CA %v", leaf.URIs, leaf.DNSNames, leaf.IsCA)
		}
		if _, err := Verify(svid.Certificates, bundle); err != nil {
			t.Fatalf("signed leaf does not verify: %v", err)
		}
	})
}
