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
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/causeway-mesh/causeway/internal/pki"
)

func newTestRoot(t testing.TB, td spiffeid.TrustDomain, at time.Time, ttl time.Duration) *pki.CA {
	t.Helper()
	ca, err := pki.NewRoot(td, pki.RootOptions{TTL: ttl, Clock: clocktesting.NewFakePassiveClock(at)})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// rootsString renders a bundle for comparison: name@since[-retireAt].
func rootsString(roots []scheduledRoot, names map[*x509.Certificate]string) string {
	var parts []string
	for _, r := range roots {
		s := names[r.cert] + "@" + r.since.UTC().Format("15:04:05")
		if !r.retireAt.IsZero() {
			s += "-" + r.retireAt.UTC().Format("Jan2.15:04:05")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestPlanBundle(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(10*time.Hour + 500*time.Millisecond) // fractions are cut
	const ra = 25 * time.Hour
	a := newTestRoot(t, tdLocal, base, 365*24*time.Hour).Certificate()
	b := newTestRoot(t, tdLocal, base, 365*24*time.Hour).Certificate()
	short := newTestRoot(t, tdLocal, base, 9*time.Hour).Certificate() // expired at now
	other := newTestRoot(t, spiffeid.RequireTrustDomainFromString("other.org"), base, 365*24*time.Hour).Certificate()
	notCA := signWorkload(t, mustIntermediate(t, newTestRoot(t, tdLocal, base, 365*24*time.Hour), "east"), time.Hour).Leaf()
	names := map[*x509.Certificate]string{a: "A", b: "B", short: "S", other: "O", notCA: "N"}
	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }

	tests := map[string]struct {
		prev     []scheduledRoot
		current  []*x509.Certificate
		want     string
		wantWake time.Time
	}{
		"first start": {
			current: []*x509.Certificate{a}, want: "A@10:00:00", wantWake: a.NotAfter,
		},
		"unchanged": {
			prev: []scheduledRoot{{cert: a, since: at(1)}}, current: []*x509.Certificate{a}, want: "A@01:00:00", wantWake: a.NotAfter,
		},
		"a new root joins first, the old one retires": {
			prev: []scheduledRoot{{cert: a, since: at(1)}}, current: []*x509.Certificate{b},
			want: "B@10:00:00 A@01:00:00-Jan2.11:00:00", wantWake: at(10 + 25),
		},
		"a retiring root keeps its date": {
			prev:    []scheduledRoot{{cert: b, since: at(2)}, {cert: a, since: at(1), retireAt: at(11)}},
			current: []*x509.Certificate{b}, want: "B@02:00:00 A@01:00:00-Jan1.11:00:00", wantWake: at(11),
		},
		"a retired root leaves": {
			prev:    []scheduledRoot{{cert: b, since: at(2)}, {cert: a, since: at(1), retireAt: at(10)}},
			current: []*x509.Certificate{b}, want: "B@02:00:00", wantWake: b.NotAfter,
		},
		"an expired former root leaves at once": {
			prev:    []scheduledRoot{{cert: b, since: at(2)}, {cert: short, since: at(1)}},
			current: []*x509.Certificate{b}, want: "B@02:00:00", wantWake: b.NotAfter,
		},
		"a former root of another trust domain leaves at once": {
			prev:    []scheduledRoot{{cert: other, since: at(1)}},
			current: []*x509.Certificate{a}, want: "A@10:00:00", wantWake: a.NotAfter,
		},
		"a certificate that is no CA leaves": {
			prev:    []scheduledRoot{{cert: notCA, since: at(1)}, {cert: a, since: at(1)}},
			current: []*x509.Certificate{a}, want: "A@01:00:00", wantWake: a.NotAfter,
		},
		"rotating back keeps the first date": {
			prev:    []scheduledRoot{{cert: b, since: at(2)}, {cert: a, since: at(1), retireAt: at(30)}},
			current: []*x509.Certificate{a}, want: "A@01:00:00 B@02:00:00-Jan2.11:00:00", wantWake: at(35),
		},
		"unscheduled roots: a current one is new, a former one retires": {
			prev:    []scheduledRoot{{cert: a}, {cert: b}},
			current: []*x509.Certificate{b}, want: "B@10:00:00 A@10:00:00-Jan2.11:00:00", wantWake: at(35),
		},
		"duplicates are merged": {
			prev:    []scheduledRoot{{cert: a, since: at(1)}, {cert: a, since: at(3)}},
			current: []*x509.Certificate{a, a}, want: "A@01:00:00", wantWake: a.NotAfter,
		},
		"two current anchors": {
			prev: []scheduledRoot{{cert: a, since: at(1)}}, current: []*x509.Certificate{b, a},
			want: "B@10:00:00 A@01:00:00", wantWake: a.NotAfter,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			next, wake := planBundle(tc.prev, tc.current, tdLocal, now, ra)
			if got := rootsString(next, names); got != tc.want {
				t.Errorf("bundle = %s, want %s", got, tc.want)
			}
			if !wake.Equal(tc.wantWake) {
				t.Errorf("wake = %s, want %s", wake, tc.wantWake)
			}
			// Deciding again on the result changes nothing.
			again, _ := planBundle(next, tc.current, tdLocal, now.Add(time.Second), ra)
			if got, want := rootsString(again, names), rootsString(next, names); got != want {
				t.Errorf("second plan = %s, want %s", got, want)
			}
		})
	}
}

func mustIntermediate(t testing.TB, ca *pki.CA, name string) *pki.CA {
	t.Helper()
	inter, err := ca.NewIntermediate(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return inter
}

func TestBundleRoundTrip(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newTestRoot(t, tdLocal, base, 365*24*time.Hour).Certificate()
	b := newTestRoot(t, tdLocal, base, 365*24*time.Hour).Certificate()
	names := map[*x509.Certificate]string{a: "A", b: "B"}
	roots := []scheduledRoot{{cert: b, since: base.Add(2 * time.Hour)}, {cert: a, since: base, retireAt: base.Add(30 * time.Hour)}}
	pemData, schedule := bundleData(roots)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationRoots: schedule}}, Data: map[string]string{BundleKey: pemData}}

	got, err := parseBundle(cm)
	if err != nil {
		t.Fatalf("parseBundle: %v", err)
	}
	// Parsed certificates are new values: name them by fingerprint.
	byFP := map[string]string{Fingerprint(a): "A", Fingerprint(b): "B"}
	for _, r := range got {
		names[r.cert] = byFP[Fingerprint(r.cert)]
	}
	if g, w := rootsString(got, names), rootsString(roots, names); g != w {
		t.Errorf("round trip = %s, want %s", g, w)
	}

	t.Run("damage is reported and what can be read is kept", func(t *testing.T) {
		damaged := map[string]struct {
			data, schedule string
			noSchedule     bool
			wantRoots      int
			wantScheduled  bool // the roots keep their times
			wantErr        string
		}{
			"bad schedule JSON": {data: pemData, schedule: "{", wantRoots: 2, wantErr: "annotation causeway.dev/roots"},
			"no schedule":       {data: pemData, noSchedule: true, wantRoots: 2, wantErr: "is missing"},
			"a foreign PEM block": {
				data: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + pemData, schedule: schedule,
				wantRoots: 2, wantScheduled: true, wantErr: `PEM block 0 is "PRIVATE KEY"`,
			},
			"a damaged certificate": {
				data: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + pemData, schedule: schedule,
				wantRoots: 2, wantScheduled: true, wantErr: "PEM block 0:",
			},
			"empty": {schedule: schedule},
		}
		for name, tc := range damaged {
			t.Run(name, func(t *testing.T) {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationRoots: tc.schedule}}, Data: map[string]string{BundleKey: tc.data}}
				if tc.noSchedule {
					cm.Annotations = nil
				}
				got, err := parseBundle(cm)
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Errorf("parseBundle error = %v, want one containing %q", err, tc.wantErr)
				}
				if len(got) != tc.wantRoots {
					t.Fatalf("parseBundle kept %d roots, want %d", len(got), tc.wantRoots)
				}
				for _, r := range got {
					if scheduled := !r.since.IsZero(); scheduled != tc.wantScheduled {
						t.Errorf("root %s: scheduled = %v, want %v", byFP[Fingerprint(r.cert)], scheduled, tc.wantScheduled)
					}
				}
			})
		}
	})
}

// FuzzParseBundle feeds damaged ConfigMaps to parseBundle and planBundle:
// neither may panic, and what planBundle decides from whatever was read
// must survive its own round trip unchanged.
func FuzzParseBundle(f *testing.F) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newTestRoot(f, tdLocal, base, 365*24*time.Hour)
	b := newTestRoot(f, tdLocal, base, 365*24*time.Hour)
	pemData, schedule := bundleData([]scheduledRoot{{cert: b.Certificate(), since: base}, {cert: a.Certificate(), since: base, retireAt: base.Add(time.Hour)}})
	f.Add(pemData, schedule)
	f.Add(pemData, "[]")
	f.Add(pemData, `[{"sha256":"00","since":"2030-01-01T00:00:00Z"}]`)
	f.Add("", "")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "null")
	now := base.Add(30 * time.Minute)
	f.Fuzz(func(t *testing.T, data, schedule string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationRoots: schedule}}, Data: map[string]string{BundleKey: data}}
		prev, _ := parseBundle(cm)
		next, _ := planBundle(prev, []*x509.Certificate{b.Certificate()}, tdLocal, now, 2*time.Hour)
		if len(next) == 0 || !next[0].cert.Equal(b.Certificate()) {
			t.Fatalf("the current root is not first in the bundle: %d roots", len(next))
		}
		d1, s1 := bundleData(next)
		cm2 := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationRoots: s1}}, Data: map[string]string{BundleKey: d1}}
		reread, err := parseBundle(cm2)
		if err != nil {
			t.Fatalf("parseBundle of its own output: %v", err)
		}
		again, _ := planBundle(reread, []*x509.Certificate{b.Certificate()}, tdLocal, now, 2*time.Hour)
		if d2, s2 := bundleData(again); d2 != d1 || s2 != s1 {
			t.Fatalf("a second decision changed the bundle:\n%s\n%s", s1, s2)
		}
	})
}
