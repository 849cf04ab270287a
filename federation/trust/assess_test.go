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

package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/causeway-mesh/causeway/internal/pki"
)

func TestAssess(t *testing.T) {
	// In the past: pki.LoadCA checks the corporate chain against the real
	// clock.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(24 * time.Hour)
	clk := clocktesting.NewFakePassiveClock(now)
	rootA := newTestRoot(t, tdLocal, base, 10*365*24*time.Hour).WithClock(clk)
	rootB := newTestRoot(t, tdLocal, base, 10*365*24*time.Hour).WithClock(clk)
	rootOther := newTestRoot(t, spiffeid.RequireTrustDomainFromString("other.org"), base, 10*365*24*time.Hour).WithClock(clk)
	const ttl = 30 * 24 * time.Hour

	// authority of CA ca trusting roots.
	authorityOf := func(ca *pki.CA, roots ...*pki.CA) *authority {
		var sched []scheduledRoot
		var anchors []*x509.Certificate
		for _, r := range roots {
			sched = append(sched, scheduledRoot{cert: r.Certificate(), since: base})
			anchors = append(anchors, r.Certificate())
		}
		return newAuthority(ca.TrustDomain(), ca, sched, anchors[:1], time.Hour)
	}
	issued := func(ca *pki.CA, name string) map[string][]byte {
		inter, err := ca.NewIntermediate(name, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return caSecretData(t, inter)
	}
	with := func(data map[string][]byte, key string, value []byte) map[string][]byte {
		out := map[string][]byte{}
		for k, v := range data {
			out[k] = v
		}
		out[key] = value
		return out
	}
	good := issued(rootA, "east")
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKeyDER, err := x509.MarshalPKCS8PrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1DER, err := x509.MarshalECPrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	// A member of a corporate chain: causeway CA under a corporate root.
	corpRoot := makeCA(t, caShape{cn: "corp root", maxPathLen: 2, notBefore: base, notAfter: base.Add(20 * 365 * 24 * time.Hour)}, nil)
	corpCA := makeCA(t, caShape{cn: "causeway", td: &tdLocal, maxPathLen: 1, notBefore: base, notAfter: base.Add(15 * 365 * 24 * time.Hour)}, corpRoot)
	corp, err := pki.LoadCA(corpCA.certPEM(), corpCA.keyPEM(t), corpRoot.certPEM())
	if err != nil {
		t.Fatal(err)
	}
	corp = corp.WithClock(clk)
	corpAuthority := newAuthority(tdLocal, corp, []scheduledRoot{{cert: corpRoot.cert, since: base}}, []*x509.Certificate{corpRoot.cert}, 0)
	corpIssued := issued(corp, "east")
	corpInter := mustCerts(t, corpIssued[KeyCertificate])

	tests := map[string]struct {
		data        map[string][]byte
		a           *authority
		at          time.Time
		wantReplace string // substring; empty to keep
		wantCurrent bool
	}{
		"missing":         {data: nil, a: authorityOf(rootA, rootA), wantReplace: "does not exist"},
		"good":            {data: good, a: authorityOf(rootA, rootA), wantCurrent: true},
		"garbage tls.crt": {data: with(good, KeyCertificate, []byte("garbage")), a: authorityOf(rootA, rootA), wantReplace: "tls.crt: no PEM"},
		"no tls.key":      {data: with(good, KeyPrivateKey, nil), a: authorityOf(rootA, rootA), wantReplace: "tls.key: no PEM block"},
		"SEC 1 key": {
			data: with(good, KeyPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})), a: authorityOf(rootA, rootA),
			wantReplace: "want PRIVATE KEY",
		},
		"another key": {
			data: with(good, KeyPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherKeyDER})), a: authorityOf(rootA, rootA),
			wantReplace: "not the key of tls.crt",
		},
		"a root instead":   {data: caSecretData(t, rootA), a: authorityOf(rootA, rootA), wantReplace: "not an intermediate CA of path length 0"},
		"another member's": {data: issued(rootA, "west"), a: authorityOf(rootA, rootA), wantReplace: `not named after member "east"`},
		"another trust domain": {
			data: issued(rootOther, "east"), a: authorityOf(rootA, rootA), wantReplace: "does not carry the trust domain's ID spiffe://causeway.local",
		},
		"expired":         {data: good, a: authorityOf(rootA, rootA), at: now.Add(ttl), wantReplace: "expired at"},
		"due for renewal": {data: good, a: authorityOf(rootA, rootA), at: now.Add(ttl * 2 / 3), wantReplace: "due for renewal"},
		"just before renewal": {
			data: good, a: authorityOf(rootA, rootA), at: now.Add(ttl*2/3 - 2*time.Minute), wantCurrent: true,
		},
		"not yet valid":     {data: good, a: authorityOf(rootA, rootA), at: now.Add(-time.Hour), wantReplace: "does not verify against the trust bundle"},
		"an untrusted root": {data: good, a: authorityOf(rootB, rootB), wantReplace: "does not verify against the trust bundle"},
		"a former root still trusted": {
			data: good, a: authorityOf(rootB, rootB, rootA), wantCurrent: false,
		},
		"under a corporate root": {data: corpIssued, a: corpAuthority, wantCurrent: true},
		"corporate chain cut short": {
			data: with(corpIssued, KeyCertificate, encodeCertsPEM(corpInter[0])), a: corpAuthority, wantReplace: "does not verify against the trust bundle",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() {
				at = now
			}
			got := assess("east", tc.data, tc.a, at)
			if tc.wantReplace == "" {
				if got.replace != "" {
					t.Fatalf("replace = %q, want to keep it", got.replace)
				}
				if got.current != tc.wantCurrent || got.cert == nil {
					t.Errorf("current = %v (cert %v), want %v", got.current, got.cert != nil, tc.wantCurrent)
				}
				return
			}
			if !strings.Contains(got.replace, tc.wantReplace) {
				t.Errorf("replace = %q, want it to contain %q", got.replace, tc.wantReplace)
			}
		})
	}
}

// FuzzAssess feeds damaged member Secrets to assess: it must not panic,
// and whatever it keeps must be the member's intermediate verifying
// against the bundle.
func FuzzAssess(f *testing.F) {
	now := time.Now()
	clk := clocktesting.NewFakePassiveClock(now)
	root := newTestRoot(f, tdLocal, now, 0).WithClock(clk)
	a := newAuthority(tdLocal, root, []scheduledRoot{{cert: root.Certificate(), since: now}}, []*x509.Certificate{root.Certificate()}, 0)
	good := caSecretData(f, mustIntermediate(f, root, "east"))
	f.Add(good[KeyCertificate], good[KeyPrivateKey])
	f.Add(root.CertificatePEM(), good[KeyPrivateKey])
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, crt, key []byte) {
		got := assess("east", map[string][]byte{KeyCertificate: crt, KeyPrivateKey: key}, a, now)
		if got.replace != "" {
			return
		}
		if got.cert == nil || got.cert.Subject.CommonName != "east" {
			t.Fatalf("kept %+v", got)
		}
		if _, err := got.cert.Verify(verifyOptions(a.roots, mustCerts(t, crt)[1:], now)); err != nil {
			t.Fatalf("kept an intermediate that does not verify: %v", err)
		}
	})
}
