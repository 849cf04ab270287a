package pki

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestNewBundle(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{}).Certificate()
	key := newP256(t)
	noURI := handMade(t, handMadeCA("corporate root", nil), nil, key.Public(), key)
	withPathTmpl := handMadeCA("root with a path", nil)
	withPathTmpl.URIs = []*url.URL{workloadID.URL()}
	withPath := handMade(t, withPathTmpl, nil, key.Public(), key)
	leaf := signSVID(t, newRoot(t, tdExample, RootOptions{}), workloadID, 0).Leaf()
	otherRoot := newRoot(t, tdOther, RootOptions{}).Certificate()

	tests := map[string]struct {
		td      spiffeid.TrustDomain
		roots   []*x509.Certificate
		wantLen int
		wantErr string
		wantIs  error
	}{
		"empty":                         {td: tdExample},
		"one root":                      {td: tdExample, roots: []*x509.Certificate{root}, wantLen: 1},
		"duplicate root":                {td: tdExample, roots: []*x509.Certificate{root, root}, wantLen: 1},
		"root without a SPIFFE ID":      {td: tdExample, roots: []*x509.Certificate{noURI}, wantLen: 1},
		"two roots":                     {td: tdExample, roots: []*x509.Certificate{root, noURI}, wantLen: 2},
		"empty trust domain":            {roots: []*x509.Certificate{root}, wantErr: "trust domain is empty"},
		"root of another trust domain":  {td: tdExample, roots: []*x509.Certificate{otherRoot}, wantErr: "belongs to other.org", wantIs: ErrTrustDomain},
		"leaf":                          {td: tdExample, roots: []*x509.Certificate{leaf}, wantErr: "no basic constraints CA=true", wantIs: ErrNotCA},
		"CA whose SPIFFE ID has a path": {td: tdExample, roots: []*x509.Certificate{withPath}, wantErr: "with a path", wantIs: ErrTrustDomain},
		"nil certificate":               {td: tdExample, roots: []*x509.Certificate{nil}, wantErr: "certificate is nil"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := NewBundle(tc.td, tc.roots...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewBundle error = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Fatalf("NewBundle error = %v, want errors.Is %v", err, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBundle: %v", err)
			}
			if b.Len() != tc.wantLen || len(b.Authorities()) != tc.wantLen {
				t.Errorf("Len = %d, Authorities = %d; want %d", b.Len(), len(b.Authorities()), tc.wantLen)
			}
			for _, r := range tc.roots {
				if !b.Contains(r) {
					t.Errorf("bundle lacks %s", describe(r))
				}
			}
			if b.TrustDomain() != tc.td {
				t.Errorf("TrustDomain = %s, want %s", b.TrustDomain(), tc.td)
			}
		})
	}
}

func TestBundleConversions(t *testing.T) {
	root1 := newRoot(t, tdExample, RootOptions{})
	root2 := newRoot(t, tdExample, RootOptions{})
	b := mustBundle(t, tdExample, root1.Certificate(), root2.Certificate())

	t.Run("Roots", func(t *testing.T) {
		inter := newIntermediate(t, root2, "east", 0)
		svid := signSVID(t, inter, workloadID, 0)
		intermediates := x509.NewCertPool()
		intermediates.AddCert(inter.Certificate())
		if _, err := svid.Leaf().Verify(x509.VerifyOptions{
			Roots: b.Roots(), Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			t.Errorf("crypto/x509 verification with Roots(): %v", err)
		}
		empty := mustBundle(t, tdExample)
		if _, err := svid.Leaf().Verify(x509.VerifyOptions{Roots: empty.Roots(), Intermediates: intermediates}); err == nil {
			t.Error("verification with an empty bundle's Roots() succeeded")
		}
	})

	t.Run("X509Bundle", func(t *testing.T) {
		xb := b.X509Bundle()
		if !xb.Equal(x509bundle.FromX509Authorities(tdExample, []*x509.Certificate{root1.Certificate(), root2.Certificate()})) {
			t.Fatal("X509Bundle differs from the bundle")
		}
		xb.RemoveX509Authority(root1.Certificate())
		if !b.Contains(root1.Certificate()) {
			t.Error("changing the go-spiffe copy changed the bundle")
		}
		back, err := FromX509Bundle(b.X509Bundle())
		if err != nil {
			t.Fatalf("FromX509Bundle: %v", err)
		}
		if !back.X509Bundle().Equal(b.X509Bundle()) {
			t.Error("FromX509Bundle(X509Bundle()) differs")
		}
		if _, err := FromX509Bundle(x509bundle.FromX509Authorities(tdOther, []*x509.Certificate{root1.Certificate()})); !errors.Is(err, ErrTrustDomain) {
			t.Errorf("FromX509Bundle with a root of another trust domain: %v, want ErrTrustDomain", err)
		}
	})

	t.Run("Source", func(t *testing.T) {
		xb, err := b.GetX509BundleForTrustDomain(tdExample)
		if err != nil || !xb.Equal(b.X509Bundle()) {
			t.Errorf("GetX509BundleForTrustDomain(own) = %v, %v", xb, err)
		}
		if _, err := b.GetX509BundleForTrustDomain(tdOther); !errors.Is(err, ErrTrustDomain) {
			t.Errorf("GetX509BundleForTrustDomain(other) error = %v, want ErrTrustDomain", err)
		}
	})

	t.Run("PEM round trip", func(t *testing.T) {
		got, err := ParseBundle(tdExample, b.MarshalPEM())
		if err != nil {
			t.Fatalf("ParseBundle: %v", err)
		}
		if !got.X509Bundle().Equal(b.X509Bundle()) {
			t.Error("ParseBundle(MarshalPEM()) differs")
		}
	})
}

func TestParseBundle(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	leafPEM := signSVID(t, root, workloadID, 0).ChainPEM()
	tests := map[string]struct {
		td      spiffeid.TrustDomain
		data    []byte
		wantLen int
		wantErr string
	}{
		"empty":              {td: tdExample},
		"one root":           {td: tdExample, data: root.CertificatePEM(), wantLen: 1},
		"explanatory text":   {td: tdExample, data: append([]byte("# Causeway roots\n"), root.CertificatePEM()...), wantLen: 1},
		"garbage":            {td: tdExample, data: []byte("garbage"), wantErr: `no PEM "CERTIFICATE" block found`},
		"private key":        {td: tdExample, data: caKeyPEM(t, root), wantErr: `PEM block 0 is "PRIVATE KEY"`},
		"leaf":               {td: tdExample, data: leafPEM, wantErr: "is not a CA"},
		"wrong trust domain": {td: tdOther, data: root.CertificatePEM(), wantErr: "belongs to example.org"},
		"no trust domain":    {data: root.CertificatePEM(), wantErr: "trust domain is empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := ParseBundle(tc.td, tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseBundle error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBundle: %v", err)
			}
			if b.Len() != tc.wantLen {
				t.Errorf("Len = %d, want %d", b.Len(), tc.wantLen)
			}
		})
	}
}
