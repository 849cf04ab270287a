package pki

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestSignCSR(t *testing.T) {
	p256 := newP256(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	// A CSR that asks for everything a workload should not get: other
	// SANs (including another workload's and another trust domain's
	// SPIFFE IDs), a subject, and CA=true with keyCertSign.
	greedy := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"root"}},
		DNSNames:       []string{"checkout.shop.svc", "*.example.org"},
		EmailAddresses: []string{"admin@example.org"},
		IPAddresses:    []net.IP{net.ParseIP("10.1.2.3")},
		URIs: []*url.URL{
			spiffeid.RequireFromPath(tdExample, "/ns/kube-system/sa/admin").URL(),
			spiffeid.RequireFromPath(tdOther, "/ns/shop/sa/checkout").URL(),
		},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}},
			{Id: oidKeyUsage, Critical: true, Value: []byte{0x03, 0x02, 0x01, 0x06}},
		},
	}
	tamper := func(der []byte) []byte {
		der = slices.Clone(der)
		der[len(der)-1] ^= 0x01 // last byte of the signature
		return der
	}

	tests := map[string]struct {
		csr          []byte
		key          crypto.Signer
		id           spiffeid.ID
		ttl          time.Duration
		wantTTL      time.Duration
		wantKeyUsage x509.KeyUsage
		wantErr      string
		wantIs       error
	}{
		"ECDSA P-256, default TTL": {
			csr: newCSR(t, p256, nil), key: p256, id: workloadID,
			wantTTL: DefaultWorkloadTTL, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"ECDSA P-384": {
			csr: newCSR(t, p384, nil), key: p384, id: workloadID, ttl: time.Hour,
			wantTTL: time.Hour, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"Ed25519": {
			csr: newCSR(t, ed, nil), key: ed, id: workloadID, ttl: time.Hour,
			wantTTL: time.Hour, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"RSA 2048 gets keyEncipherment": {
			csr: newCSR(t, rsa2048, nil), key: rsa2048, id: workloadID, ttl: time.Hour,
			wantTTL: time.Hour, wantKeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		},
		"extra SANs, subject and extensions are ignored": {
			csr: newCSR(t, p256, greedy), key: p256, id: workloadID,
			wantTTL: DefaultWorkloadTTL, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"gateway ID": {
			csr: newCSR(t, p256, nil), key: p256, id: gatewayID,
			wantTTL: DefaultWorkloadTTL, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"TTL cut to the intermediate's lifetime": {
			csr: newCSR(t, p256, nil), key: p256, id: workloadID, ttl: 1000 * time.Hour,
			// The intermediate was made 1h before signing with 48h.
			wantTTL: 47 * time.Hour, wantKeyUsage: x509.KeyUsageDigitalSignature,
		},
		"tampered signature": {
			csr: tamper(newCSR(t, p256, nil)), id: workloadID,
			wantErr: "check CSR signature",
		},
		"garbage": {
			csr: []byte("not a CSR"), id: workloadID,
			wantErr: "parse CSR",
		},
		"empty": {
			id:      workloadID,
			wantErr: "parse CSR",
		},
		"ID in another trust domain": {
			csr: newCSR(t, p256, nil), id: spiffeid.RequireFromPath(tdOther, "/ns/shop/sa/checkout"),
			wantErr: "not in trust domain example.org", wantIs: ErrTrustDomain,
		},
		"trust domain ID": {
			csr: newCSR(t, p256, nil), id: tdExample.ID(),
			wantErr: "has no path",
		},
		"zero ID": {
			csr:     newCSR(t, p256, nil),
			wantErr: "SPIFFE ID is empty",
		},
		"negative TTL": {
			csr: newCSR(t, p256, nil), id: workloadID, ttl: -time.Minute,
			wantErr: "negative TTL",
		},
		"RSA 1024": {
			csr: newCSR(t, rsa1024, nil), id: workloadID,
			wantErr: "RSA key of 1024 bits is too small",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := fakeClock(t0)
			root := newRoot(t, tdExample, RootOptions{Clock: clk})
			inter := newIntermediate(t, root, "east", 48*time.Hour)
			now := t0.Add(time.Hour)
			clk.SetTime(now)

			svid, err := inter.SignCSR(tc.csr, tc.id, tc.ttl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SignCSR error = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Fatalf("SignCSR error = %v, want errors.Is %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignCSR: %v", err)
			}
			leaf := svid.Leaf()
			checkLeafProfile(t, leaf, tc.id, tc.wantKeyUsage)
			if !publicKeyEqual(tc.key.Public(), leaf.PublicKey) {
				t.Error("leaf public key is not the CSR's")
			}
			if want := now.Add(-ClockSkew); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %s, want %s", leaf.NotBefore, want)
			}
			if want := now.Add(tc.wantTTL); !leaf.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %s, want %s", leaf.NotAfter, want)
			}
			if len(leaf.Subject.CommonName) != 0 || !slices.Equal(leaf.Subject.Organization, []string{Organization}) {
				t.Errorf("subject = %q, want O=%s only", leaf.Subject, Organization)
			}
			if svid.ID != tc.id {
				t.Errorf("SVID.ID = %s, want %s", svid.ID, tc.id)
			}
			if len(svid.Certificates) != 2 || !svid.Certificates[1].Equal(inter.Certificate()) {
				t.Fatalf("SVID has %d certificates, want [leaf, intermediate]", len(svid.Certificates))
			}
			id, err := Verify(svid.Certificates, mustBundle(t, tdExample, root.Certificate()), x509svid.WithTime(now))
			if err != nil || id != tc.id {
				t.Errorf("Verify = %s, %v; want %s", id, err, tc.id)
			}
		})
	}
}

// checkLeafProfile checks the X509-SVID rules for a leaf (spec sections
// 2, 3.1, 4.1, 4.3, 4.4).
func checkLeafProfile(t *testing.T, leaf *x509.Certificate, id spiffeid.ID, wantKeyUsage x509.KeyUsage) {
	t.Helper()
	if got, want := uriStrings(leaf.URIs), []string{id.String()}; !slices.Equal(got, want) {
		t.Errorf("URI SANs = %v, want %v", got, want)
	}
	if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
		t.Errorf("unexpected SANs: DNS %v, email %v, IP %v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Errorf("basic constraints: valid %v, CA %v; want true, false", leaf.BasicConstraintsValid, leaf.IsCA)
	}
	if leaf.KeyUsage != wantKeyUsage {
		t.Errorf("key usage = %b, want %b", leaf.KeyUsage, wantKeyUsage)
	}
	if !keyUsageCritical(leaf) {
		t.Error("key usage extension is not critical")
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(leaf.ExtKeyUsage, want) ||
		len(leaf.UnknownExtKeyUsage) != 0 {
		t.Errorf("extended key usage = %v %v, want %v", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage, want)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x: want positive and at most 128 bits", leaf.SerialNumber)
	}
	if len(leaf.UnhandledCriticalExtensions) != 0 {
		t.Errorf("unhandled critical extensions: %v", leaf.UnhandledCriticalExtensions)
	}
}

func TestSignPublicKey(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256 := newP256(t)
	tests := map[string]struct {
		pub     crypto.PublicKey
		wantErr string
	}{
		"ECDSA P-256":   {pub: p256.Public()},
		"ECDSA P-224":   {pub: p224.Public(), wantErr: "unsupported ECDSA curve P-224"},
		"X25519 (ECDH)": {pub: x25519.PublicKey(), wantErr: "unsupported public key type *ecdh.PublicKey"},
		"nil":           {wantErr: "no public key"},
	}
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	bundle := mustBundle(t, tdExample, root.Certificate())
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			svid, err := inter.SignPublicKey(tc.pub, gatewayID, 0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SignPublicKey error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignPublicKey: %v", err)
			}
			checkLeafProfile(t, svid.Leaf(), gatewayID, x509.KeyUsageDigitalSignature)
			if id, err := Verify(svid.Certificates, bundle); err != nil || id != gatewayID {
				t.Errorf("Verify = %s, %v; want %s", id, err, gatewayID)
			}
		})
	}
}

func TestSerialsDiffer(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	pub := newP256(t).Public()
	seen := map[string]bool{}
	for range 50 {
		svid, err := root.SignPublicKey(pub, workloadID, 0)
		if err != nil {
			t.Fatal(err)
		}
		s := svid.Leaf().SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

func TestSVIDEncodings(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	svid := signSVID(t, inter, workloadID, 0)
	bundle := mustBundle(t, tdExample, root.Certificate())

	id, _, err := x509svid.ParseAndVerify(svid.ChainDER(), bundle)
	if err != nil || id != workloadID {
		t.Errorf("ParseAndVerify(ChainDER) = %s, %v; want %s", id, err, workloadID)
	}
	certs, err := parseCertificatesPEM(svid.ChainPEM())
	if err != nil {
		t.Fatalf("parse ChainPEM: %v", err)
	}
	if len(certs) != 2 || !certs[0].Equal(svid.Leaf()) || !certs[1].Equal(inter.Certificate()) {
		t.Errorf("ChainPEM holds %d certificates, want [leaf, intermediate]", len(certs))
	}
	if _, err := Verify(certs, bundle); err != nil {
		t.Errorf("Verify(ChainPEM): %v", err)
	}
}

// TestSignWhileCAIsNotYetValid covers an agent whose clock is behind the
// hub's: a leaf starts when its CA does, and a TTL too short to reach
// that point is an error, never a certificate that ends before it starts.
func TestSignWhileCAIsNotYetValid(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{Clock: fakeClock(t0)})
	behind := root.WithClock(fakeClock(t0.Add(-2 * time.Hour)))

	svid, err := behind.SignPublicKey(newP256(t).Public(), workloadID, 24*time.Hour)
	if err != nil {
		t.Fatalf("SignPublicKey: %v", err)
	}
	if nb := svid.Leaf().NotBefore; !nb.Equal(root.Certificate().NotBefore) {
		t.Errorf("NotBefore = %s, want the CA's %s", nb, root.Certificate().NotBefore)
	}
	if _, err := behind.SignPublicKey(newP256(t).Public(), workloadID, time.Hour); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("SignPublicKey with a TTL ending before the CA starts: %v, want ErrNotYetValid", err)
	}
}
