package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestNewRoot(t *testing.T) {
	tests := map[string]struct {
		td      spiffeid.TrustDomain
		opts    RootOptions
		wantCN  string
		wantTTL time.Duration
		wantErr string
	}{
		"defaults": {
			td:      tdExample,
			wantCN:  DefaultRootCommonName,
			wantTTL: DefaultRootTTL,
		},
		"custom name and TTL": {
			td:      tdOther,
			opts:    RootOptions{CommonName: "Acme mesh root", TTL: 48 * time.Hour},
			wantCN:  "Acme mesh root",
			wantTTL: 48 * time.Hour,
		},
		"empty trust domain": {
			wantErr: "trust domain is empty",
		},
		"negative TTL": {
			td:      tdExample,
			opts:    RootOptions{TTL: -time.Hour},
			wantErr: "negative TTL",
		},
		"common name too long": {
			td:      tdExample,
			opts:    RootOptions{CommonName: strings.Repeat("x", 65)},
			wantErr: "longer than 64 bytes",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.opts.Clock = fakeClock(t0)
			ca, err := NewRoot(tc.td, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewRoot error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRoot: %v", err)
			}
			c := ca.Certificate()
			checkSigningCertProfile(t, c, tc.td)
			if c.MaxPathLen != 1 {
				t.Errorf("MaxPathLen = %d, want 1", c.MaxPathLen)
			}
			if c.Subject.CommonName != tc.wantCN || !slices.Equal(c.Subject.Organization, []string{Organization}) {
				t.Errorf("subject = %q, want CN=%s,O=%s", c.Subject, tc.wantCN, Organization)
			}
			if !c.NotBefore.Equal(t0.Add(-ClockSkew)) || !c.NotAfter.Equal(t0.Add(tc.wantTTL)) {
				t.Errorf("validity = %s – %s, want %s – %s", c.NotBefore, c.NotAfter, t0.Add(-ClockSkew), t0.Add(tc.wantTTL))
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("root is not self-signed: %v", err)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
			}
			if !ca.IsRoot() || len(ca.Chain()) != 0 || len(ca.ChainPEM()) != 0 {
				t.Errorf("root: IsRoot %v, chain %d certificates, want true and 0", ca.IsRoot(), len(ca.Chain()))
			}
			if ca.TrustDomain() != tc.td || !ca.NotAfter().Equal(c.NotAfter) {
				t.Errorf("TrustDomain, NotAfter = %s, %s; want %s, %s", ca.TrustDomain(), ca.NotAfter(), tc.td, c.NotAfter)
			}
		})
	}
}

// checkSigningCertProfile checks the X509-SVID rules for a signing
// certificate (spec sections 3.2, 4.1, 4.3).
func checkSigningCertProfile(t *testing.T, c *x509.Certificate, td spiffeid.TrustDomain) {
	t.Helper()
	if !c.BasicConstraintsValid || !c.IsCA {
		t.Errorf("basic constraints: valid %v, CA %v; want both true", c.BasicConstraintsValid, c.IsCA)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage = %b, want exactly keyCertSign|cRLSign", c.KeyUsage)
	}
	if !keyUsageCritical(c) {
		t.Error("key usage extension is not critical")
	}
	if len(c.ExtKeyUsage) != 0 {
		t.Errorf("extended key usage = %v, want none", c.ExtKeyUsage)
	}
	if got, want := uriStrings(c.URIs), []string{td.IDString()}; !slices.Equal(got, want) {
		t.Errorf("URI SANs = %v, want %v", got, want)
	}
	if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) != 0 {
		t.Errorf("unexpected SANs: DNS %v, email %v, IP %v", c.DNSNames, c.EmailAddresses, c.IPAddresses)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x: want positive and at most 128 bits", c.SerialNumber)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("no subject key identifier")
	}
}

func TestNewIntermediate(t *testing.T) {
	tests := map[string]struct {
		rootTTL time.Duration
		// elapsed moves the clock between making the root and the
		// intermediate.
		elapsed time.Duration
		// fromIntermediate asks an intermediate, not the root.
		fromIntermediate bool
		name             string
		ttl              time.Duration
		wantNotAfter     func(root *CA) time.Time
		wantErr          string
		wantIs           error
	}{
		"default TTL": {
			name:         "east",
			wantNotAfter: func(*CA) time.Time { return t0.Add(DefaultIntermediateTTL) },
		},
		"explicit TTL": {
			name:         "east",
			ttl:          30 * 24 * time.Hour,
			elapsed:      time.Hour,
			wantNotAfter: func(*CA) time.Time { return t0.Add(time.Hour + 30*24*time.Hour) },
		},
		"clamped to the root's remaining lifetime": {
			rootTTL:      90 * 24 * time.Hour,
			elapsed:      60 * 24 * time.Hour,
			name:         "west",
			wantNotAfter: func(root *CA) time.Time { return root.Certificate().NotAfter },
		},
		"an intermediate cannot make another": {
			fromIntermediate: true,
			name:             "nested",
			wantErr:          "path length 0",
			wantIs:           ErrPathLength,
		},
		"empty name": {
			wantErr: "name is empty",
		},
		"name too long": {
			name:    strings.Repeat("n", 65),
			wantErr: "longer than 64 bytes",
		},
		"negative TTL": {
			name:    "east",
			ttl:     -time.Second,
			wantErr: "negative TTL",
		},
		"expired root": {
			rootTTL: time.Hour,
			elapsed: 2 * time.Hour,
			name:    "east",
			wantErr: "is usable until",
			wantIs:  ErrExpired,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk := fakeClock(t0)
			root := newRoot(t, tdExample, RootOptions{TTL: tc.rootTTL, Clock: clk})
			parent := root
			if tc.fromIntermediate {
				parent = newIntermediate(t, root, "east", 0)
			}
			clk.SetTime(t0.Add(tc.elapsed))
			ca, err := parent.NewIntermediate(tc.name, tc.ttl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewIntermediate error = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Fatalf("NewIntermediate error = %v, want errors.Is %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewIntermediate: %v", err)
			}
			c := ca.Certificate()
			checkSigningCertProfile(t, c, tdExample)
			if c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("path length = %d (zero %v), want 0", c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.Subject.CommonName != tc.name {
				t.Errorf("common name = %q, want %q", c.Subject.CommonName, tc.name)
			}
			if want := tc.wantNotAfter(root); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %s, want %s", c.NotAfter, want)
			}
			if want := t0.Add(tc.elapsed - ClockSkew); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %s, want %s", c.NotBefore, want)
			}
			if err := c.CheckSignatureFrom(root.Certificate()); err != nil {
				t.Errorf("not signed by the root: %v", err)
			}
			if !bytes.Equal(c.AuthorityKeyId, root.Certificate().SubjectKeyId) {
				t.Error("authority key ID is not the root's subject key ID")
			}
			if ca.IsRoot() || len(ca.Chain()) != 1 || !ca.Chain()[0].Equal(c) {
				t.Errorf("chain = %d certificates, want just the intermediate", len(ca.Chain()))
			}
			if ca.TrustDomain() != tdExample {
				t.Errorf("trust domain = %s, want %s", ca.TrustDomain(), tdExample)
			}
		})
	}
}

// TestIntermediateChainKeepsParents covers a deeper hierarchy than Causeway
// makes itself: a supplied root with an issuing CA under it, loaded with
// LoadCA, then a cluster intermediate. The cluster's chain must hold both
// CAs below the root, and its leaves must verify against the root alone.
func TestIntermediateChainKeepsParents(t *testing.T) {
	rootKey := newP256(t)
	root := handMade(t, handMadeCA("supplied root", &tdExample), nil, rootKey.Public(), rootKey)
	issuingKey := newP256(t)
	issuingTmpl := handMadeCA("issuing CA", &tdExample)
	issuingTmpl.MaxPathLen = 1
	issuing := handMade(t, issuingTmpl, root, issuingKey.Public(), rootKey)

	issuingCA, err := LoadCA(encodeCertificatesPEM(issuing), keyPEM(t, issuingKey), encodeCertificatesPEM(root))
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if got := issuingCA.Chain(); len(got) != 1 || !got[0].Equal(issuing) {
		t.Fatalf("issuing CA chain = %d certificates, want only itself (the root is dropped)", len(got))
	}
	cluster := newIntermediate(t, issuingCA, "east", time.Hour)
	chain := cluster.Chain()
	if len(chain) != 2 || !chain[0].Equal(cluster.Certificate()) || !chain[1].Equal(issuing) {
		t.Fatalf("cluster chain = %d certificates, want [cluster, issuing CA]", len(chain))
	}
	if want := earliestNotAfter([]*x509.Certificate{issuing, root}); cluster.NotAfter().After(want) {
		t.Errorf("cluster CA usable until %s, after its issuer's %s", cluster.NotAfter(), want)
	}
	svid := signSVID(t, cluster, workloadID, 0)
	if len(svid.Certificates) != 3 {
		t.Fatalf("SVID has %d certificates, want leaf + 2 intermediates", len(svid.Certificates))
	}
	id, err := Verify(svid.Certificates, mustBundle(t, tdExample, root))
	if err != nil || id != workloadID {
		t.Fatalf("Verify = %s, %v; want %s", id, err, workloadID)
	}
}

func TestWithClock(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	later := time.Now().Add(3 * time.Hour)
	shifted := root.WithClock(fakeClock(later))
	svid := signSVID(t, shifted, workloadID, time.Hour)
	if want := later.Add(-ClockSkew); !svid.Leaf().NotBefore.Equal(want.Truncate(time.Second)) {
		t.Errorf("NotBefore = %s, want %s", svid.Leaf().NotBefore, want)
	}
	inter := newIntermediate(t, shifted, "east", 0)
	if inter.clock != shifted.clock {
		t.Error("intermediate does not inherit its parent's clock")
	}
	if root.clock == shifted.clock {
		t.Error("WithClock changed the original CA")
	}
	// The original keeps the real clock: verifying its leaf now works.
	if _, err := Verify(signSVID(t, root, workloadID, 0).Certificates, mustBundle(t, tdExample, root.Certificate()),
		x509svid.WithTime(time.Now())); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
