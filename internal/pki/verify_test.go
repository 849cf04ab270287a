package pki

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestVerify(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	bundle := mustBundle(t, tdExample, root.Certificate())

	otherRoot := newRoot(t, tdOther, RootOptions{})
	otherInter := newIntermediate(t, otherRoot, "east", 0)
	otherLeaf := signSVID(t, otherInter, spiffeid.RequireFromPath(tdOther, "/ns/shop/sa/checkout"), 0)

	// A root of the same trust domain that the bundle does not hold.
	rogueRoot := newRoot(t, tdExample, RootOptions{CommonName: "rogue"})
	rogueLeaf := signSVID(t, rogueRoot, workloadID, 0)

	// A leaf signed 48 hours ago for 1 hour, by a hierarchy made then.
	past := time.Now().Add(-48 * time.Hour)
	pastRoot := newRoot(t, tdExample, RootOptions{Clock: fakeClock(past)})
	expired := signSVID(t, newIntermediate(t, pastRoot, "east", 0), workloadID, time.Hour)
	pastBundle := mustBundle(t, tdExample, pastRoot.Certificate())

	// Leaves built by hand with crypto/x509, signed by the intermediate.
	leafKey := newP256(t)
	byHand := func(edit func(*x509.Certificate)) []*x509.Certificate {
		tmpl := handMadeLeaf()
		edit(tmpl)
		return []*x509.Certificate{handMade(t, tmpl, inter.Certificate(), leafKey.Public(), inter.key), inter.Certificate()}
	}
	id := workloadID.String()

	// The intermediate (path length 0) issues a CA, which issues a leaf.
	subCAKey := newP256(t)
	subCA := handMade(t, handMadeCA("sub CA", &tdExample), inter.Certificate(), subCAKey.Public(), inter.key)
	subLeaf := handMade(t, func() *x509.Certificate {
		tmpl := handMadeLeaf()
		tmpl.URIs = []*url.URL{workloadID.URL()}
		return tmpl
	}(), subCA, leafKey.Public(), subCAKey)

	tests := map[string]struct {
		chain   []*x509.Certificate
		bundle  *Bundle
		opts    []x509svid.VerifyOption
		wantID  spiffeid.ID
		wantErr string
	}{
		"leaf from the root": {
			chain:  signSVID(t, root, workloadID, 0).Certificates,
			bundle: bundle, wantID: workloadID,
		},
		"leaf from an intermediate": {
			chain:  signSVID(t, inter, workloadID, 0).Certificates,
			bundle: bundle, wantID: workloadID,
		},
		"gateway leaf": {
			chain:  signSVID(t, inter, gatewayID, 0).Certificates,
			bundle: bundle, wantID: gatewayID,
		},
		"hand-made leaf with the ID in its URI SAN (control)": {
			chain:  byHand(func(c *x509.Certificate) { c.URIs = []*url.URL{workloadID.URL()} }),
			bundle: bundle, wantID: workloadID,
		},
		"expired leaf, verified when it was valid (control)": {
			chain: expired.Certificates, bundle: pastBundle,
			opts:   []x509svid.VerifyOption{x509svid.WithTime(past.Add(30 * time.Minute))},
			wantID: workloadID,
		},
		"expired leaf": {
			chain: expired.Certificates, bundle: pastBundle,
			wantErr: "certificate has expired",
		},
		"leaf without its intermediate": {
			chain:   signSVID(t, inter, workloadID, 0).Certificates[:1],
			bundle:  bundle,
			wantErr: "unknown authority",
		},
		"leaf of another trust domain": {
			chain: otherLeaf.Certificates, bundle: bundle,
			wantErr: "no X.509 bundle for trust domain other.org",
		},
		"leaf of our trust domain from a root not in the bundle": {
			chain: rogueLeaf.Certificates, bundle: bundle,
			wantErr: "unknown authority",
		},
		"SPIFFE ID only in a DNS SAN": {
			chain:   byHand(func(c *x509.Certificate) { c.DNSNames = []string{id} }),
			bundle:  bundle,
			wantErr: "certificate contains no URI SAN",
		},
		"SPIFFE ID only in an email SAN": {
			chain:   byHand(func(c *x509.Certificate) { c.EmailAddresses = []string{id} }),
			bundle:  bundle,
			wantErr: "certificate contains no URI SAN",
		},
		"two URI SANs": {
			chain: byHand(func(c *x509.Certificate) {
				c.URIs = []*url.URL{workloadID.URL(), gatewayID.URL()}
			}),
			bundle:  bundle,
			wantErr: "more than one URI SAN",
		},
		"leaf that is a CA": {
			chain: byHand(func(c *x509.Certificate) {
				c.URIs = []*url.URL{workloadID.URL()}
				c.IsCA = true
				c.KeyUsage |= x509.KeyUsageCertSign
			}),
			bundle:  bundle,
			wantErr: "leaf certificate with CA flag set to true",
		},
		"leaf with keyCertSign": {
			chain: byHand(func(c *x509.Certificate) {
				c.URIs = []*url.URL{workloadID.URL()}
				c.KeyUsage |= x509.KeyUsageCertSign
			}),
			bundle:  bundle,
			wantErr: "leaf certificate with KeyCertSign key usage",
		},
		"intermediate issued a CA (path length 0)": {
			chain:   []*x509.Certificate{subLeaf, subCA, inter.Certificate()},
			bundle:  bundle,
			wantErr: "too many intermediates for path length constraint",
		},
		"empty chain": {
			bundle:  bundle,
			wantErr: "empty certificates chain",
		},
		"nil bundle": {
			chain:   signSVID(t, inter, workloadID, 0).Certificates,
			wantErr: "bundle is nil",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Verify(tc.chain, tc.bundle, tc.opts...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Verify = %s, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if !got.IsZero() {
					t.Errorf("Verify returned ID %s with its error", got)
				}
				return
			}
			if err != nil || got != tc.wantID {
				t.Fatalf("Verify = %s, %v; want %s", got, err, tc.wantID)
			}
		})
	}
}

// TestPathLengthIsWhatFails proves the sub-CA case above fails for its
// path length, not for anything else: the same chain verifies when the
// sub-CA is trusted directly.
func TestPathLengthIsWhatFails(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	subKey := newP256(t)
	subCA := handMade(t, handMadeCA("sub CA", &tdExample), inter.Certificate(), subKey.Public(), inter.key)
	leafTmpl := handMadeLeaf()
	leafTmpl.URIs = []*url.URL{workloadID.URL()}
	leaf := handMade(t, leafTmpl, subCA, newP256(t).Public(), subKey)

	_, err := Verify([]*x509.Certificate{leaf, subCA, inter.Certificate()}, mustBundle(t, tdExample, root.Certificate()))
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.TooManyIntermediates {
		t.Fatalf("Verify error = %v, want x509.CertificateInvalidError TooManyIntermediates", err)
	}
	if _, err := Verify([]*x509.Certificate{leaf}, mustBundle(t, tdExample, subCA)); err != nil {
		t.Fatalf("Verify against the sub-CA itself: %v", err)
	}
}

func TestRotationOverlap(t *testing.T) {
	oldRoot := newRoot(t, tdExample, RootOptions{CommonName: "root 1"})
	newRootCA := newRoot(t, tdExample, RootOptions{CommonName: "root 2"})
	oldLeaf := signSVID(t, newIntermediate(t, oldRoot, "east", 0), workloadID, 0)
	newLeaf := signSVID(t, newIntermediate(t, newRootCA, "east", 0), gatewayID, 0)

	bundle := mustBundle(t, tdExample, oldRoot.Certificate())
	type want struct{ old, new bool }
	check := func(step string, b *Bundle, w want) {
		t.Helper()
		for _, c := range []struct {
			name string
			svid *SVID
			ok   bool
		}{{"old-root leaf", oldLeaf, w.old}, {"new-root leaf", newLeaf, w.new}} {
			id, err := Verify(c.svid.Certificates, b)
			switch {
			case c.ok && (err != nil || id != c.svid.ID):
				t.Errorf("%s: %s: Verify = %s, %v; want %s", step, c.name, id, err, c.svid.ID)
			case !c.ok && err == nil:
				t.Errorf("%s: %s verified, want an error", step, c.name)
			}
		}
	}

	check("before rotation", bundle, want{old: true, new: false})
	if err := bundle.Add(newRootCA.Certificate()); err != nil {
		t.Fatalf("Add new root: %v", err)
	}
	check("overlap", bundle, want{old: true, new: true})

	// The overlap bundle as the agents receive it.
	received, err := ParseBundle(tdExample, bundle.MarshalPEM())
	if err != nil {
		t.Fatalf("ParseBundle: %v", err)
	}
	check("overlap, distributed as PEM", received, want{old: true, new: true})

	if !bundle.Remove(oldRoot.Certificate()) {
		t.Fatal("Remove(old root) = false, want true")
	}
	check("after removing the old root", bundle, want{old: false, new: true})
	if bundle.Remove(oldRoot.Certificate()) {
		t.Error("second Remove(old root) = true, want false")
	}
	// The copy made earlier is independent of the bundle.
	check("distributed copy after removal", received, want{old: true, new: true})
}

func TestShouldRotate(t *testing.T) {
	cert := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(24 * time.Hour)}
	if got, want := RotationTime(cert), t0.Add(12*time.Hour); !got.Equal(want) {
		t.Fatalf("RotationTime = %s, want %s", got, want)
	}
	tests := map[string]struct {
		now  time.Time
		want bool
	}{
		"just issued":           {now: t0, want: false},
		"before NotBefore":      {now: t0.Add(-time.Hour), want: false},
		"just before half-life": {now: t0.Add(12*time.Hour - time.Second), want: false},
		"at half-life":          {now: t0.Add(12 * time.Hour), want: true},
		"three quarters":        {now: t0.Add(18 * time.Hour), want: true},
		"expired":               {now: t0.Add(30 * time.Hour), want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ShouldRotate(cert, tc.now); got != tc.want {
				t.Errorf("ShouldRotate at %s = %v, want %v", tc.now, got, tc.want)
			}
		})
	}
}

func TestShouldRotateIssued(t *testing.T) {
	clk := fakeClock(t0)
	root := newRoot(t, tdExample, RootOptions{Clock: clk})
	leaf := signSVID(t, root, workloadID, 0).Leaf()
	// NotBefore is ClockSkew in the past, so half-life comes ClockSkew/2
	// before 12 hours.
	want := t0.Add(12*time.Hour - ClockSkew/2)
	if got := RotationTime(leaf); !got.Equal(want) {
		t.Errorf("RotationTime = %s, want %s", got, want)
	}
	if ShouldRotate(leaf, want.Add(-time.Second)) || !ShouldRotate(leaf, want) {
		t.Error("ShouldRotate does not switch at RotationTime")
	}
	if ShouldRotate(root.Certificate(), t0.Add(4*365*24*time.Hour)) || !ShouldRotate(root.Certificate(), t0.Add(5*365*24*time.Hour)) {
		t.Error("root does not rotate at about 5 years")
	}
}

// TestConcurrentUse signs with one CA and verifies against one bundle from
// many goroutines while another goroutine rotates the bundle, for the race
// detector.
func TestConcurrentUse(t *testing.T) {
	root := newRoot(t, tdExample, RootOptions{})
	inter := newIntermediate(t, root, "east", 0)
	spare := newRoot(t, tdExample, RootOptions{}).Certificate()
	bundle := mustBundle(t, tdExample, root.Certificate())
	csr := newCSR(t, newP256(t), nil)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				svid, err := inter.SignCSR(csr, workloadID, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := Verify(svid.Certificates, bundle); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := bundle.Add(spare); err != nil {
				t.Error(err)
				return
			}
			_ = bundle.MarshalPEM()
			bundle.Remove(spare)
		}
	})
	wg.Wait()
	if bundle.Len() != 1 || !bundle.Contains(root.Certificate()) {
		t.Errorf("bundle ends with %d authorities, want only the root", bundle.Len())
	}
}
