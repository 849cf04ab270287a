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

package certmanager

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/pki"
	cmtest "github.com/causeway-mesh/causeway/test/certmanager"
)

// The tests in this file check the package's decisions without
// cert-manager: how a request's conditions read, when a root is due, what
// makes an issued CA unusable, and the configuration rules.

func TestRequestState(t *testing.T) {
	cond := func(typ cmapi.CertificateRequestConditionType, status cmmeta.ConditionStatus, reason, message string) cmapi.CertificateRequestCondition {
		return cmapi.CertificateRequestCondition{Type: typ, Status: status, Reason: reason, Message: message}
	}
	approved := cond(cmapi.CertificateRequestConditionApproved, cmmeta.ConditionTrue, "cert-manager.io", "approved")
	tests := map[string]struct {
		conditions []cmapi.CertificateRequestCondition
		cert       []byte
		want       phase
		wantMsg    string
	}{
		"new": {want: phasePending, wantMsg: "not approved yet; no Ready condition yet"},
		"approved, not picked up": {
			conditions: []cmapi.CertificateRequestCondition{approved},
			want:       phasePending, wantMsg: "no Ready condition yet",
		},
		"issuer missing": {
			conditions: []cmapi.CertificateRequestCondition{approved,
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonPending, `Referenced "Issuer" not found`)},
			want: phasePending, wantMsg: `Ready=False Pending: Referenced "Issuer" not found`,
		},
		"waiting for approval": {
			conditions: []cmapi.CertificateRequestCondition{
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonPending, "")},
			want: phasePending, wantMsg: "not approved yet; Ready=False Pending",
		},
		"denied": {
			conditions: []cmapi.CertificateRequestCondition{cond(cmapi.CertificateRequestConditionDenied, cmmeta.ConditionTrue, "Policy", "no CAs")},
			want:       phaseDenied, wantMsg: "Policy: no CAs",
		},
		"denied, as Ready says": {
			conditions: []cmapi.CertificateRequestCondition{
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonDenied, "The CertificateRequest was denied by an approval controller")},
			want: phaseDenied, wantMsg: "Denied: The CertificateRequest was denied",
		},
		"Denied=False is no denial": {
			conditions: []cmapi.CertificateRequestCondition{cond(cmapi.CertificateRequestConditionDenied, cmmeta.ConditionFalse, "", ""), approved},
			want:       phasePending, wantMsg: "no Ready condition yet",
		},
		"failed": {
			conditions: []cmapi.CertificateRequestCondition{approved,
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, cmapi.CertificateRequestReasonFailed, "Error signing certificate")},
			want: phaseFailed, wantMsg: "Failed: Error signing certificate",
		},
		"invalid": {
			conditions: []cmapi.CertificateRequestCondition{cond(cmapi.CertificateRequestConditionInvalidRequest, cmmeta.ConditionTrue, "BadCSR", "")},
			want:       phaseFailed, wantMsg: "invalid request: BadCSR",
		},
		"issued": {
			conditions: []cmapi.CertificateRequestCondition{approved,
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued, "Certificate fetched from issuer successfully")},
			cert: []byte("-----BEGIN CERTIFICATE-----"),
			want: phaseIssued, wantMsg: "Issued: Certificate fetched",
		},
		"Ready without a certificate": {
			conditions: []cmapi.CertificateRequestCondition{approved,
				cond(cmapi.CertificateRequestConditionReady, cmmeta.ConditionTrue, cmapi.CertificateRequestReasonIssued, "")},
			want: phaseFailed, wantMsg: "Ready without a certificate",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cr := &cmapi.CertificateRequest{Status: cmapi.CertificateRequestStatus{Conditions: tc.conditions, Certificate: tc.cert}}
			got := requestState(cr)
			if got.phase != tc.want || !strings.Contains(got.message, tc.wantMsg) {
				t.Errorf("requestState = %d %q, want %d containing %q", got.phase, got.message, tc.want, tc.wantMsg)
			}
			err := got.err("ns/req")
			switch tc.want {
			case phaseIssued:
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
			case phasePending:
				if !errors.Is(err, trust.ErrRootUnavailable) || !strings.Contains(err.Error(), "ns/req") {
					t.Errorf("err = %v, want ErrRootUnavailable naming the request", err)
				}
			default:
				if !errors.Is(err, trust.ErrRootInvalid) || !strings.Contains(err.Error(), "ns/req") || !strings.Contains(err.Error(), "delete it") {
					t.Errorf("err = %v, want ErrRootInvalid naming the request and the way out", err)
				}
			}
		})
	}
}

// issueCA signs a CA certificate for td under parent (self-signed when
// parent is nil) valid from notBefore to notAfter, and returns its
// certificate and key PEM.
func issueCA(t *testing.T, parent *cmtest.CA, td spiffeid.TrustDomain, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{pki.Organization}, CommonName: "test root"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		URIs:                  []*url.URL{td.ID().URL()},
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	issuerCert, signer := tmpl, any(key)
	if parent != nil {
		issuerCert = parent.Certificate
		block, _ := pem.Decode(parent.KeyPEM)
		if signer, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func TestLoadRoot(t *testing.T) {
	now := time.Now()
	clk := clocktesting.NewFakePassiveClock(now)
	org, err := cmtest.NewCA("Org CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := cmtest.NewCA("Other CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := issueCA(t, org, td, now.Add(-time.Minute), now.Add(time.Hour))
	_, otherKeyPEM := issueCA(t, org, td, now.Add(-time.Minute), now.Add(time.Hour))
	otherTDCert, otherTDKey := issueCA(t, org, spiffeid.RequireTrustDomainFromString("other.example"), now.Add(-time.Minute), now.Add(time.Hour))
	selfCert, selfKey := issueCA(t, nil, td, now.Add(-time.Minute), now.Add(time.Hour))

	tests := map[string]struct {
		cert, key, ca []byte
		clockAt       time.Time
		wantErr       string
		wantIs        error
	}{
		"issued by the org CA":            {cert: certPEM, key: keyPEM, ca: org.CertificatePEM},
		"self-signed (SelfSigned issuer)": {cert: selfCert, key: selfKey, ca: selfCert},
		"another trust domain": {
			cert: otherTDCert, key: otherTDKey, ca: org.CertificatePEM, wantIs: pki.ErrTrustDomain,
		},
		"another key":  {cert: certPEM, key: otherKeyPEM, ca: org.CertificatePEM, wantIs: pki.ErrKeyMismatch},
		"no status.ca": {cert: certPEM, key: keyPEM, wantErr: "no trust anchor"},
		"status.ca of another CA": {
			cert: certPEM, key: keyPEM, ca: other.CertificatePEM, wantErr: "does not chain",
		},
		"status.ca is no certificate": {cert: certPEM, key: keyPEM, ca: keyPEM, wantErr: "trust anchors"},
		"clock behind cert-manager's": {
			cert: certPEM, key: keyPEM, ca: org.CertificatePEM, clockAt: now.Add(-2 * time.Minute), wantIs: pki.ErrNotYetValid,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clk.SetTime(now)
			if !tc.clockAt.IsZero() {
				clk.SetTime(tc.clockAt)
			}
			r, err := loadRoot(tc.cert, tc.key, tc.ca, td, clk)
			switch {
			case tc.wantIs != nil:
				if !errors.Is(err, tc.wantIs) {
					t.Fatalf("loadRoot = %v, want %v", err, tc.wantIs)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("loadRoot = %v, want an error containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("loadRoot: %v", err)
			default:
				if len(r.anchors) != 1 || r.ca.TrustDomain() != td {
					t.Errorf("anchors %d, trust domain %s", len(r.anchors), r.ca.TrustDomain())
				}
			}
		})
	}
}

func TestRenewalDue(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	org, err := cmtest.NewCA("Org CA", 10*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	load := func(certPEM, keyPEM, caPEM []byte) *root {
		t.Helper()
		r, err := loadRoot(certPEM, keyPEM, caPEM, td, clocktesting.NewFakePassiveClock(now))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Three hours from now-1h: due at now+1h.
	cert, key := issueCA(t, org, td, now.Add(-time.Hour), now.Add(2*time.Hour))
	normal := load(cert, key, org.CertificatePEM)
	// Cut to the org CA's end: renewing cannot lengthen it.
	cert, key = issueCA(t, org, td, now.Add(-time.Hour), org.Certificate.NotAfter)
	capped := load(cert, key, org.CertificatePEM)
	cert, key = issueCA(t, nil, td, now.Add(-time.Hour), now.Add(2*time.Hour))
	self := load(cert, key, cert)

	tests := map[string]struct {
		r    *root
		at   time.Time
		want bool
	}{
		"before two thirds":             {normal, now.Add(time.Hour - time.Second), false},
		"at two thirds":                 {normal, now.Add(time.Hour), true},
		"after two thirds":              {normal, now.Add(90 * time.Minute), true},
		"capped by its issuer's life":   {capped, org.Certificate.NotAfter.Add(-time.Minute), false},
		"self-signed after two thirds":  {self, now.Add(90 * time.Minute), true},
		"self-signed before two thirds": {self, now, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, _ := renewalDue(tc.r, tc.at); got != tc.want {
				t.Errorf("renewalDue at %s = %t, want %t (renewal time %s)", tc.at, got, tc.want, renewalTime(tc.r))
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"defaults":                  {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "org"}}},
		"ClusterIssuer":             {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "org", Kind: "ClusterIssuer"}}},
		"external issuer, own kind": {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}}},
		"no issuer":                 {cfg: Config{}, wantErr: "issuer's name is required"},
		"unknown kind":              {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "org", Kind: "Certificate"}}, wantErr: `kind "Certificate"`},
		"short duration":            {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "org"}, Duration: time.Minute}, wantErr: "shorter than 1h"},
		"negative wait":             {cfg: Config{Issuer: cmmeta.IssuerReference{Name: "org"}, WaitTimeout: -time.Second}, wantErr: "negative wait"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.CertManager, cfg.Kube = cm, kube
			s, err := New(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if s.cfg.Secret.Namespace != "causeway-system" || s.cfg.Secret.Name != DefaultSecretName ||
				s.cfg.Duration != DefaultDuration || s.cfg.WaitTimeout != DefaultWaitTimeout || s.cfg.Issuer.Kind == "" || s.cfg.Issuer.Group == "" {
				t.Errorf("defaults not applied: %+v", s.cfg)
			}
		})
	}
	if _, err := New(Config{Issuer: cmmeta.IssuerReference{Name: "org"}}); err == nil {
		t.Error("New without clients succeeded")
	}
}

func TestCurrentDecidesReissue(t *testing.T) {
	now := time.Now()
	clk := clocktesting.NewFakePassiveClock(now)
	src := newSource(t, Config{Issuer: cmmeta.IssuerReference{Name: orgIssuer}, Clock: clk})
	org, err := cmtest.NewCA("Org CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := issueCA(t, org, td, now.Add(-time.Minute), now.Add(3*time.Hour))
	secret := func(issuer string, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationIssuer: issuer}}, Data: data}
	}
	good := map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key, trust.KeyCA: org.CertificatePEM}
	ours := "Issuer.cert-manager.io/" + orgIssuer

	tests := map[string]struct {
		sec       *corev1.Secret
		td        spiffeid.TrustDomain
		wantUse   bool
		wantWhy   string
		wantErrIs error
	}{
		"no Secret":          {sec: nil, td: td, wantWhy: "no root yet"},
		"pending only":       {sec: secret("", map[string][]byte{KeyPendingKey: key}), td: td, wantWhy: "no root yet"},
		"good":               {sec: secret(ours, good), td: td, wantUse: true},
		"issuer changed":     {sec: secret("ClusterIssuer.cert-manager.io/old", good), td: td, wantUse: true, wantWhy: "configured issuer"},
		"trust domain moved": {sec: secret(ours, good), td: spiffeid.RequireTrustDomainFromString("new.example"), wantWhy: "unusable"},
		"damaged": {
			sec: secret(ours, map[string][]byte{corev1.TLSCertKey: []byte("junk"), corev1.TLSPrivateKeyKey: key, trust.KeyCA: org.CertificatePEM}),
			td:  td, wantWhy: "unusable",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, why, err := src.current(tc.sec, tc.td)
			if err != nil {
				t.Fatalf("current: %v", err)
			}
			if (r != nil) != tc.wantUse || !strings.Contains(why, tc.wantWhy) || (tc.wantWhy == "") != (why == "") {
				t.Errorf("current = usable %t, why %q; want usable %t, why containing %q", r != nil, why, tc.wantUse, tc.wantWhy)
			}
		})
	}

	// Due at two thirds: still usable while renewed.
	clk.SetTime(now.Add(2*time.Hour + time.Minute))
	if r, why, err := src.current(secret(ours, good), td); err != nil || r == nil || !strings.Contains(why, "due for renewal") {
		t.Errorf("current at two thirds = %v, %q, %v; want the usable root and a renewal reason", r != nil, why, err)
	}
	// A clock behind the issuer's: neither use nor replace.
	clk.SetTime(now.Add(-time.Hour))
	if _, _, err := src.current(secret(ours, good), td); !errors.Is(err, pki.ErrNotYetValid) {
		t.Errorf("current with a slow clock = %v, want ErrNotYetValid", err)
	}
}

func TestRequestNameAndKeyMatch(t *testing.T) {
	k1, pem1, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, pem2, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := requestName("root", k1.Public()), requestName("root", k1.Public()); a != b || !strings.HasPrefix(a, "root-") {
		t.Errorf("requestName not stable: %q, %q", a, b)
	}
	if requestName("root", k1.Public()) == requestName("root", k2.Public()) {
		t.Error("two keys got one request name")
	}
	csr, err := newCSR(k1, td, "cn")
	if err != nil {
		t.Fatal(err)
	}
	cr := &cmapi.CertificateRequest{Spec: cmapi.CertificateRequestSpec{Request: csr}}
	if !requestMatchesKey(cr, pem1) {
		t.Error("the CSR does not match its own key")
	}
	if requestMatchesKey(cr, pem2) || requestMatchesKey(cr, []byte("junk")) {
		t.Error("the CSR matches another key")
	}
}

// TestWriteSecretOnlyOnDifference: writing what is stored is no write, and
// a write keeps annotations this package does not own.
func TestWriteSecretOnlyOnDifference(t *testing.T) {
	ctx := testContext(t)
	name := secretName(approvedNS, "write-test")
	src := newSource(t, Config{Secret: name, Issuer: cmmeta.IssuerReference{Name: orgIssuer}})
	data := map[string][]byte{corev1.TLSCertKey: []byte("a"), corev1.TLSPrivateKeyKey: []byte("b")}
	sec, err := src.writeSecret(ctx, nil, data, map[string]string{AnnotationIssuer: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// Someone annotates it.
	sec.Annotations["example.com/owner"] = "platform"
	if sec, err = kube.CoreV1().Secrets(name.Namespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	same, err := src.writeSecret(ctx, sec, map[string][]byte{corev1.TLSCertKey: []byte("a"), corev1.TLSPrivateKeyKey: []byte("b")}, map[string]string{AnnotationIssuer: "x"})
	if err != nil || same.ResourceVersion != sec.ResourceVersion {
		t.Errorf("writing the same content wrote (%v)", err)
	}
	changed, err := src.writeSecret(ctx, sec, map[string][]byte{corev1.TLSCertKey: []byte("c"), corev1.TLSPrivateKeyKey: []byte("b")}, map[string]string{AnnotationIssuer: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if changed.ResourceVersion == sec.ResourceVersion || changed.Annotations["example.com/owner"] != "platform" ||
		changed.Annotations[AnnotationIssuer] != "y" || string(changed.Data[corev1.TLSCertKey]) != "c" {
		t.Errorf("after a change: resourceVersion %s (was %s), annotations %v", changed.ResourceVersion, sec.ResourceVersion, changed.Annotations)
	}
	// An update from a stale copy fails instead of overwriting.
	if _, err := src.writeSecret(ctx, sec, data, nil); err == nil {
		t.Error("a write from a stale copy succeeded")
	}
}
