package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestLoadCA(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	rootKey := caKeyPEM(t, root)
	inter := newIntermediate(t, root, "east", 0)
	interKey := caKeyPEM(t, inter)
	otherInter := newIntermediate(t, newRoot(t, tdExample, RootOptions{}), "west", 0)

	// An RSA root with a PKCS #1 key, as older tooling makes them.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaRoot := handMade(t, handMadeCA("rsa root", &tdExample), nil, rsaKey.Public(), rsaKey)

	leaf := signSVID(t, root, workloadID, 0)
	leafKey := newP256(t)
	leafCert := handMade(t, func() *x509.Certificate {
		tmpl := handMadeLeaf()
		tmpl.URIs = []*url.URL{workloadID.URL()}
		return tmpl
	}(), root.Certificate(), leafKey.Public(), root.key)

	past := time.Now().Add(-48 * time.Hour)
	expired := newRoot(t, tdExample, RootOptions{TTL: time.Hour, Clock: fakeClock(past)})
	future := newRoot(t, tdExample, RootOptions{Clock: fakeClock(time.Now().Add(48 * time.Hour))})

	k := newP256(t)
	noURI := handMade(t, handMadeCA("no SPIFFE ID", nil), nil, k.Public(), k)
	noCertSignTmpl := handMadeCA("no keyCertSign", &tdExample)
	noCertSignTmpl.KeyUsage = x509.KeyUsageCRLSign
	noCertSign := handMade(t, noCertSignTmpl, nil, k.Public(), k)

	// The root with one bit of its signature flipped: the key still
	// matches, the certificate is no longer its own issuer's.
	tamperedDER := slices.Clone(root.Certificate().Raw)
	tamperedDER[len(tamperedDER)-1] ^= 1
	tamperedRoot, err := x509.ParseCertificate(tamperedDER)
	if err != nil {
		t.Fatal(err)
	}

	garbageBlock := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	tests := map[string]struct {
		cert, key []byte
		chain     [][]byte
		wantRoot  bool
		wantTD    spiffeid.TrustDomain
		wantChain int
		wantErr   string
		wantIs    error
	}{
		"root": {
			cert: root.CertificatePEM(), key: rootKey,
			wantRoot: true, wantTD: tdExample,
		},
		"root with a SEC 1 key after EC PARAMETERS": {
			cert: root.CertificatePEM(), key: sec1PEM(t, root),
			wantRoot: true, wantTD: tdExample,
		},
		"RSA root with a PKCS #1 key": {
			cert:     encodeCertificatesPEM(rsaRoot),
			key:      pem.EncodeToMemory(&pem.Block{Type: pemRSAPrivateKey, Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}),
			wantRoot: true, wantTD: tdExample,
		},
		"root with an empty chain": {
			cert: root.CertificatePEM(), key: rootKey, chain: [][]byte{nil, []byte("\n")},
			wantRoot: true, wantTD: tdExample,
		},
		"root given a chain ignores it": {
			cert: root.CertificatePEM(), key: rootKey, chain: [][]byte{inter.CertificatePEM()},
			wantRoot: true, wantTD: tdExample,
		},
		"intermediate with ChainPEM (itself first)": {
			cert: inter.CertificatePEM(), key: interKey, chain: [][]byte{inter.ChainPEM()},
			wantTD: tdExample, wantChain: 1,
		},
		"intermediate without a chain": {
			cert: inter.CertificatePEM(), key: interKey,
			wantTD: tdExample, wantChain: 1,
		},
		"intermediate followed by its root in certPEM": {
			cert: append(inter.CertificatePEM(), root.CertificatePEM()...), key: interKey,
			wantTD: tdExample, wantChain: 1,
		},
		"intermediate with its root as chain": {
			cert: inter.CertificatePEM(), key: interKey, chain: [][]byte{root.CertificatePEM()},
			wantTD: tdExample, wantChain: 1,
		},
		"not a CA": {
			cert: encodeCertificatesPEM(leafCert), key: keyPEM(t, leafKey),
			wantErr: "has no basic constraints CA=true", wantIs: ErrNotCA,
		},
		"SVID as CA": {
			cert: leaf.ChainPEM(), key: keyPEM(t, leafKey),
			wantErr: "is not a CA", wantIs: ErrNotCA,
		},
		"CA without keyCertSign": {
			cert: encodeCertificatesPEM(noCertSign), key: keyPEM(t, k),
			wantErr: "lacks the keyCertSign key usage", wantIs: ErrNotCA,
		},
		"mismatched key": {
			cert: root.CertificatePEM(), key: interKey,
			wantErr: "key is not the key of CA", wantIs: ErrKeyMismatch,
		},
		"expired": {
			cert: expired.CertificatePEM(), key: caKeyPEM(t, expired),
			wantErr: "expired at", wantIs: ErrExpired,
		},
		"not yet valid": {
			cert: future.CertificatePEM(), key: caKeyPEM(t, future),
			wantErr: "is valid from", wantIs: ErrNotYetValid,
		},
		"no SPIFFE ID": {
			cert: encodeCertificatesPEM(noURI), key: keyPEM(t, k),
			wantErr: "has no SPIFFE ID", wantIs: ErrTrustDomain,
		},
		"garbage certificate": {
			cert: []byte("-----BEGIN NOTHING"), key: rootKey,
			wantErr: `parse CA certificate PEM: no PEM "CERTIFICATE" block found`,
		},
		"empty certificate": {
			key:     rootKey,
			wantErr: `parse CA certificate PEM: no PEM "CERTIFICATE" block found`,
		},
		"garbage inside a CERTIFICATE block": {
			cert: garbageBlock, key: rootKey,
			wantErr: "parse CA certificate PEM: PEM block 0: x509: malformed certificate",
		},
		"key given as certificate": {
			cert: rootKey, key: rootKey,
			wantErr: `parse CA certificate PEM: PEM block 0 is "PRIVATE KEY", want "CERTIFICATE"`,
		},
		"garbage key": {
			cert: root.CertificatePEM(), key: []byte("garbage"),
			wantErr: "parse CA private key PEM: no PEM private key block found",
		},
		"certificate given as key": {
			cert: root.CertificatePEM(), key: root.CertificatePEM(),
			wantErr: `parse CA private key PEM: PEM block is "CERTIFICATE", want a private key`,
		},
		"garbage inside a PRIVATE KEY block": {
			cert: root.CertificatePEM(), key: pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: []byte("garbage")}),
			wantErr: "parse CA private key PEM: PRIVATE KEY: ",
		},
		"encrypted key": {
			cert: root.CertificatePEM(), key: encrypted,
			wantErr: "encrypted private keys are not supported",
		},
		"root with a damaged signature": {
			cert: encodeCertificatesPEM(tamperedRoot), key: rootKey,
			wantErr: "names itself as issuer but its self-signature does not verify",
		},
		"chain from another root": {
			cert: inter.CertificatePEM(), key: interKey, chain: [][]byte{otherInter.CertificatePEM()},
			wantErr: "was not issued by",
		},
		"garbage chain": {
			cert: inter.CertificatePEM(), key: interKey, chain: [][]byte{[]byte("garbage")},
			wantErr: `parse CA chain PEM 0: no PEM "CERTIFICATE" block found`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ca, err := LoadCA(tc.cert, tc.key, tc.chain...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadCA error = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Fatalf("LoadCA error = %v, want errors.Is %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if ca.IsRoot() != tc.wantRoot || ca.TrustDomain() != tc.wantTD || len(ca.Chain()) != tc.wantChain {
				t.Fatalf("loaded CA: root %v, trust domain %s, chain %d; want %v, %s, %d",
					ca.IsRoot(), ca.TrustDomain(), len(ca.Chain()), tc.wantRoot, tc.wantTD, tc.wantChain)
			}
			// The loaded CA works: its leaves verify against the root.
			svid := signSVID(t, ca, workloadID, 0)
			trustAnchor := ca.Certificate()
			if !ca.IsRoot() {
				trustAnchor = root.Certificate()
			}
			if _, err := Verify(svid.Certificates, mustBundle(t, tdExample, trustAnchor)); err != nil {
				t.Errorf("Verify a leaf of the loaded CA: %v", err)
			}
		})
	}
}

// sec1PEM is ca's key as OpenSSL's ecparam -genkey writes it: an EC
// PARAMETERS block, then a SEC 1 EC PRIVATE KEY block.
func sec1PEM(t *testing.T, ca *CA) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(ca.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	params := pem.EncodeToMemory(&pem.Block{Type: pemECParameters, Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	return append(params, encodePEM(pemECPrivateKey, der)...)
}

// TestLoadCARoundTrip checks that what a CA writes, LoadCA reads back.
func TestLoadCARoundTrip(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	for name, ca := range map[string]*CA{"root": root, "intermediate": inter} {
		t.Run(name, func(t *testing.T) {
			loaded, err := LoadCA(ca.CertificatePEM(), caKeyPEM(t, ca), ca.ChainPEM())
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if !loaded.Certificate().Equal(ca.Certificate()) || !publicKeyEqual(loaded.key.Public(), ca.key.Public()) {
				t.Error("loaded CA differs in certificate or key")
			}
			if len(loaded.Chain()) != len(ca.Chain()) || !loaded.NotAfter().Equal(ca.NotAfter()) {
				t.Errorf("loaded chain %d, NotAfter %s; want %d, %s", len(loaded.Chain()), loaded.NotAfter(), len(ca.Chain()), ca.NotAfter())
			}
		})
	}
}
