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
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/pki"
	cmtest "github.com/causeway-mesh/causeway/test/certmanager"
)

var td = spiffeid.RequireTrustDomainFromString("mesh.example")

// TestRootIssuedByCertManagerCAIssuer is the main story: the hub asks
// cert-manager's CA issuer for its root; the root signs a member cluster's
// intermediate, which signs a workload SVID that verifies against the
// anchors the source returned — the organisation's CA. A restarted source
// reuses the root without writing anything.
func TestRootIssuedByCertManagerCAIssuer(t *testing.T) {
	ctx, logs := withCapturedLogs(testContext(t))
	secret := secretName(approvedNS, "main-root")
	src := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}})

	ca, anchors, err := src.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root: %v", err)
	}
	cert := ca.Certificate()
	if ca.IsRoot() {
		t.Error("the CA is self-signed; want it issued by the organisation's CA")
	}
	if err := cert.CheckSignatureFrom(orgCA.Certificate); err != nil {
		t.Errorf("the CA was not signed by the CA issuer's CA: %v", err)
	}
	if len(anchors) != 1 || !anchors[0].Equal(orgCA.Certificate) {
		t.Errorf("anchors = %v, want the organisation's CA", subjects(anchors))
	}
	if ca.TrustDomain() != td || len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://mesh.example" {
		t.Errorf("CA trust domain %s, URIs %v; want %s and only spiffe://mesh.example", ca.TrustDomain(), cert.URIs, td)
	}
	if !cert.IsCA || cert.MaxPathLenZero || cert.KeyUsage&x509.KeyUsageCertSign == 0 || cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		t.Errorf("CA: IsCA %t, path length zero %t, key usage %b; want a CA that may issue CAs, with cert sign and CRL sign",
			cert.IsCA, cert.MaxPathLenZero, cert.KeyUsage)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got < DefaultDuration-time.Minute || got > DefaultDuration+time.Minute {
		t.Errorf("CA lifetime %s, want the default %s", got, DefaultDuration)
	}
	if cert.Subject.CommonName != pki.DefaultRootCommonName {
		t.Errorf("CA common name %q, want %q", cert.Subject.CommonName, pki.DefaultRootCommonName)
	}

	// The CA does what a Causeway root does.
	verifySVIDThroughMember(t, ca, anchors)

	// What is stored, and the request that cert-manager handled.
	sec := getSecret(t, secret)
	crs := listRequests(t, secret)
	if len(crs) != 1 {
		t.Fatalf("%d CertificateRequests, want 1", len(crs))
	}
	cr := crs[0]
	if !cr.Spec.IsCA || cr.Spec.IssuerRef != (cmmeta.IssuerReference{Name: orgIssuer, Kind: cmapi.IssuerKind, Group: "cert-manager.io"}) {
		t.Errorf("request isCA %t, issuerRef %+v", cr.Spec.IsCA, cr.Spec.IssuerRef)
	}
	if !hasCondition(cr, cmapi.CertificateRequestConditionApproved, "cert-manager.io") {
		t.Errorf("request conditions %+v: want Approved by cert-manager's approver", cr.Status.Conditions)
	}
	if sec.Type != corev1.SecretTypeOpaque || !bytes.Equal(sec.Data[corev1.TLSCertKey], cr.Status.Certificate) ||
		!bytes.Equal(sec.Data[trust.KeyCA], cr.Status.CA) || len(sec.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Errorf("Secret type %s, keys %v: want an Opaque Secret with the request's certificate and CA, and the key", sec.Type, keys(sec.Data))
	}
	if _, ok := sec.Data[KeyPendingKey]; ok || sec.Annotations[AnnotationPendingRequest] != "" {
		t.Error("the Secret still records a pending request")
	}
	if sec.Annotations[AnnotationCertificateRequest] != cr.Name || sec.Annotations[AnnotationIssuer] != "Issuer.cert-manager.io/"+orgIssuer {
		t.Errorf("Secret annotations %v", sec.Annotations)
	}
	// The Secret is in the form the hub's supplied-root source reads.
	reader, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	supplied, suppliedAnchors, err := (&trust.SecretRoot{Reader: reader, Secret: secret}).Root(ctx, td)
	if err != nil || !supplied.Certificate().Equal(cert) || len(suppliedAnchors) != 1 || !suppliedAnchors[0].Equal(orgCA.Certificate) {
		t.Errorf("trust.SecretRoot on the Secret: %v", err)
	}

	// A restarted source reuses the root and writes nothing.
	again := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}})
	ca2, _, err := again.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root after restart: %v", err)
	}
	if !ca2.Certificate().Equal(cert) {
		t.Error("a restarted source issued a new root; want the stored one")
	}
	if got := getSecret(t, secret).ResourceVersion; got != sec.ResourceVersion {
		t.Errorf("the Secret was written again (resourceVersion %s → %s)", sec.ResourceVersion, got)
	}
	if n := len(listRequests(t, secret)); n != 1 {
		t.Errorf("%d CertificateRequests after the restart, want still 1", n)
	}
	assertKeyNotLogged(t, logs, sec.Data[corev1.TLSPrivateKeyKey])
}

// TestRootFromClusterIssuer: a ClusterIssuer, whose CA Secret lives in
// cert-manager's cluster resource namespace, issues the root as well.
func TestRootFromClusterIssuer(t *testing.T) {
	ctx := testContext(t)
	src := newSource(t, Config{
		Secret: secretName(approvedNS, "cluster-issuer-root"),
		Issuer: cmmeta.IssuerReference{Name: orgClusterIssuer, Kind: cmapi.ClusterIssuerKind},
	})
	ca, anchors, err := src.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root: %v", err)
	}
	if len(anchors) != 1 || !anchors[0].Equal(orgCA.Certificate) {
		t.Errorf("anchors = %v, want the organisation's CA", subjects(anchors))
	}
	verifySVIDThroughMember(t, ca, anchors)
}

// TestRenewalAtTwoThirds: the root is kept until two thirds of its
// lifetime, then issued anew; members' intermediates from the old root
// still verify against the same anchors, so renewal needs no bundle
// change.
func TestRenewalAtTwoThirds(t *testing.T) {
	ctx, logs := withCapturedLogs(testContext(t))
	secret := secretName(approvedNS, "renewed-root")
	// A little ahead of the real clock: cert-manager does not backdate,
	// and a CA from the future is refused as not yet valid.
	clk := clocktesting.NewFakePassiveClock(time.Now().Add(2 * time.Second))
	src := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}, Duration: 3 * time.Hour, Clock: clk})

	first, anchors, err := src.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root: %v", err)
	}
	oldMember, err := first.NewIntermediate("cluster-a", 0)
	if err != nil {
		t.Fatalf("NewIntermediate: %v", err)
	}
	firstRequest := getSecret(t, secret).Annotations[AnnotationCertificateRequest]
	nb := first.Certificate().NotBefore

	clk.SetTime(nb.Add(2*time.Hour - time.Minute))
	kept, _, err := src.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root before two thirds: %v", err)
	}
	if !kept.Certificate().Equal(first.Certificate()) {
		t.Fatal("the root was renewed before two thirds of its lifetime")
	}

	clk.SetTime(nb.Add(2*time.Hour + time.Minute))
	renewed, renewedAnchors, err := src.Root(ctx, td)
	if err != nil {
		t.Fatalf("Root after two thirds: %v", err)
	}
	if renewed.Certificate().Equal(first.Certificate()) {
		t.Fatal("the root was not renewed after two thirds of its lifetime")
	}
	if renewed.Certificate().PublicKey.(*ecdsa.PublicKey).Equal(first.Certificate().PublicKey) {
		t.Error("the renewed root reuses the old key")
	}
	if len(renewedAnchors) != 1 || !renewedAnchors[0].Equal(anchors[0]) {
		t.Errorf("anchors changed on renewal: %v", subjects(renewedAnchors))
	}
	sec := getSecret(t, secret)
	crs := listRequests(t, secret)
	if len(crs) != 1 || crs[0].Name == firstRequest || sec.Annotations[AnnotationCertificateRequest] != crs[0].Name {
		t.Errorf("requests %v, Secret names %q: want only the new request, recorded in the Secret", names(crs), sec.Annotations[AnnotationCertificateRequest])
	}

	// Old and new members both verify against the unchanged anchors.
	bundle, err := pki.NewBundle(td, renewedAnchors...)
	if err != nil {
		t.Fatal(err)
	}
	newMember, err := renewed.NewIntermediate("cluster-b", 0)
	if err != nil {
		t.Fatalf("NewIntermediate from the renewed root: %v", err)
	}
	for name, member := range map[string]*pki.CA{"old": oldMember, "new": newMember} {
		// The CAs sign at the fake clock's time, two hours ahead.
		svid := signWorkload(t, member, "ns/default/sa/web")
		if _, err := pki.Verify(svid.Certificates, bundle, x509svid.WithTime(clk.Now())); err != nil {
			t.Errorf("SVID from the %s root's member: %v", name, err)
		}
	}
	assertKeyNotLogged(t, logs, sec.Data[corev1.TLSPrivateKeyKey])
}

// TestDeniedRequest: a policy denies the request. Root fails at once with
// an error naming the request and the denial, and keeps failing the same
// way, without new requests, until someone deletes the denied request;
// then it asks again.
func TestDeniedRequest(t *testing.T) {
	ctx := testContext(t)
	secret := secretName(policyNS, "denied-root")
	src := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}, WaitTimeout: 30 * time.Second})

	done := decideOnce(ctx, t, secret, cmapi.CertificateRequestConditionDenied, "DeniedByTestPolicy", "roots must come from the security team")
	start := time.Now()
	_, _, err := src.Root(ctx, td)
	took := time.Since(start)
	<-done
	if !errors.Is(err, trust.ErrRootInvalid) || !strings.Contains(err.Error(), "denied") ||
		!strings.Contains(err.Error(), "DeniedByTestPolicy: roots must come from the security team") {
		t.Fatalf("Root = %v; want ErrRootInvalid naming the denial and its reason", err)
	}
	if took > 20*time.Second {
		t.Errorf("Root took %s: it should return on the denial, not at the end of its wait", took)
	}
	crs := listRequests(t, secret)
	if len(crs) != 1 || !strings.Contains(err.Error(), policyNS+"/"+crs[0].Name) {
		t.Fatalf("requests %v; want one, named in %q", names(crs), err)
	}

	// The denial stands: no new request, same error.
	if _, _, err := src.Root(ctx, td); !errors.Is(err, trust.ErrRootInvalid) || !strings.Contains(err.Error(), "DeniedByTestPolicy") {
		t.Errorf("second Root = %v; want the same denial", err)
	}
	if n := len(listRequests(t, secret)); n != 1 {
		t.Errorf("%d requests after the second call, want 1", n)
	}

	// Deleting the denied request asks again; this time it is approved.
	if err := cm.CertmanagerV1().CertificateRequests(policyNS).Delete(ctx, crs[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	done = decideOnce(ctx, t, secret, cmapi.CertificateRequestConditionApproved, "ApprovedByTestPolicy", "fine")
	ca, anchors, err := src.Root(ctx, td)
	<-done
	if err != nil {
		t.Fatalf("Root after deleting the denied request: %v", err)
	}
	verifySVIDThroughMember(t, ca, anchors)
}

// TestIssuerNotFound: the configured issuer does not exist. Root returns
// within its wait, with an error that says so, and does not crash or
// spin.
func TestIssuerNotFound(t *testing.T) {
	ctx := testContext(t)
	secret := secretName(approvedNS, "orphan-root")
	src := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: "no-such-issuer"}, WaitTimeout: time.Second})

	start := time.Now()
	_, _, err := src.Root(ctx, td)
	took := time.Since(start)
	if !errors.Is(err, trust.ErrRootUnavailable) || !strings.Contains(err.Error(), `Referenced "Issuer" not found`) {
		t.Fatalf("Root = %v; want ErrRootUnavailable saying the issuer was not found", err)
	}
	if took < time.Second || took > 8*time.Second {
		t.Errorf("Root took %s; want about its 1s wait", took)
	}
	// Calling again resumes the same request.
	_, _, err = src.Root(ctx, td)
	if !errors.Is(err, trust.ErrRootUnavailable) {
		t.Errorf("second Root = %v", err)
	}
	if n := len(listRequests(t, secret)); n != 1 {
		t.Errorf("%d requests, want the one request resumed", n)
	}

	// The caller's context bounds the wait too.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, _, err := src.Root(short, td); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Root with a 500ms context = %v; want the context's deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Root with a 500ms context took %s", took)
	}
}

// TestRestartResumesPendingRequest: the hub restarts while its request
// waits for approval. The new source resumes the same request with the
// stored key rather than making another.
func TestRestartResumesPendingRequest(t *testing.T) {
	ctx := testContext(t)
	secret := secretName(policyNS, "resumed-root")
	cfg := Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}, WaitTimeout: time.Second}
	if _, _, err := newSource(t, cfg).Root(ctx, td); !errors.Is(err, trust.ErrRootUnavailable) || !strings.Contains(err.Error(), "not approved yet") {
		t.Fatalf("Root = %v; want ErrRootUnavailable, not approved yet", err)
	}
	sec := getSecret(t, secret)
	pendingKey := sec.Data[KeyPendingKey]
	pending := sec.Annotations[AnnotationPendingRequest]
	if len(pendingKey) == 0 || pending == "" {
		t.Fatalf("the Secret does not record the pending request: annotations %v, keys %v", sec.Annotations, keys(sec.Data))
	}

	cfg.WaitTimeout = 30 * time.Second
	done := decideOnce(ctx, t, secret, cmapi.CertificateRequestConditionApproved, "ApprovedByTestPolicy", "fine")
	ca, _, err := newSource(t, cfg).Root(ctx, td)
	<-done
	if err != nil {
		t.Fatalf("Root after restart: %v", err)
	}
	crs := listRequests(t, secret)
	if len(crs) != 1 || crs[0].Name != pending {
		t.Errorf("requests %v; want only the resumed %s", names(crs), pending)
	}
	sec = getSecret(t, secret)
	if !bytes.Equal(sec.Data[corev1.TLSPrivateKeyKey], pendingKey) {
		t.Error("the root's key is not the key stored with the pending request")
	}
	if key, err := ca.PrivateKeyPEM(); err != nil || !bytes.Equal(key, pendingKey) {
		t.Errorf("the returned CA's key is not the pending key (%v)", err)
	}
}

// TestForeignSecretLeftAlone: a Secret of the configured name that this
// package does not manage is refused, not overwritten.
func TestForeignSecretLeftAlone(t *testing.T) {
	ctx := testContext(t)
	secret := secretName(approvedNS, "someone-elses")
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secret.Namespace, Name: secret.Name},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	created, err := kube.CoreV1().Secrets(secret.Namespace).Create(ctx, foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}})
	if _, _, err := src.Root(ctx, td); !errors.Is(err, trust.ErrRootInvalid) || !strings.Contains(err.Error(), "not managed") {
		t.Fatalf("Root = %v; want ErrRootInvalid, not managed", err)
	}
	if got := getSecret(t, secret); got.ResourceVersion != created.ResourceVersion {
		t.Error("the foreign Secret was modified")
	}
	if n := len(listRequests(t, secret)); n != 0 {
		t.Errorf("%d requests made for a foreign Secret", n)
	}
}

// TestIssuerChangeReissues: pointing the source at another issuer issues
// a new root from it.
func TestIssuerChangeReissues(t *testing.T) {
	ctx := testContext(t)
	secret := secretName(approvedNS, "moved-root")
	first, _, err := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgIssuer}}).Root(ctx, td)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := newSource(t, Config{Secret: secret, Issuer: cmmeta.IssuerReference{Name: orgClusterIssuer, Kind: cmapi.ClusterIssuerKind}}).Root(ctx, td)
	if err != nil {
		t.Fatal(err)
	}
	if second.Certificate().Equal(first.Certificate()) {
		t.Error("the root was kept although the issuer changed")
	}
	if got := getSecret(t, secret).Annotations[AnnotationIssuer]; got != "ClusterIssuer.cert-manager.io/"+orgClusterIssuer {
		t.Errorf("Secret records issuer %q", got)
	}
}

// verifySVIDThroughMember issues a member intermediate from ca and a
// workload SVID from it, and checks that the SVID verifies against anchors
// and not against an unrelated CA.
func verifySVIDThroughMember(t *testing.T, ca *pki.CA, anchors []*x509.Certificate) {
	t.Helper()
	member, err := ca.NewIntermediate("cluster-a", 0)
	if err != nil {
		t.Fatalf("NewIntermediate: %v", err)
	}
	if !member.NotAfter().After(time.Now()) || member.NotAfter().After(ca.NotAfter()) {
		t.Errorf("member intermediate ends %s; the root %s", member.NotAfter(), ca.NotAfter())
	}
	svid := signWorkload(t, member, "ns/default/sa/web")
	bundle, err := pki.NewBundle(td, anchors...)
	if err != nil {
		t.Fatalf("NewBundle of the anchors: %v", err)
	}
	id, err := pki.Verify(svid.Certificates, bundle)
	if err != nil {
		t.Fatalf("Verify the SVID against the anchors: %v", err)
	}
	if want := spiffeid.RequireFromPath(td, "/ns/default/sa/web"); id != want {
		t.Errorf("verified ID %s, want %s", id, want)
	}
	other, err := cmtest.NewCA("Unrelated CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherBundle, err := pki.NewBundle(td, other.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Verify(svid.Certificates, otherBundle); err == nil {
		t.Error("the SVID verified against an unrelated CA")
	}
}

func signWorkload(t *testing.T, ca *pki.CA, path string) *pki.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.SignPublicKey(key.Public(), spiffeid.RequireFromPath(td, "/"+path), 0)
	if err != nil {
		t.Fatalf("SignPublicKey: %v", err)
	}
	return svid
}

// decideOnce waits in the background for the source's first request under
// secret that has no decision yet, and sets condition (Approved or Denied)
// on it, as a policy approver does. The returned channel closes when it
// has, or failed (reported with t.Error).
func decideOnce(ctx context.Context, t *testing.T, secret types.NamespacedName, condition cmapi.CertificateRequestConditionType, reason, message string) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			list, err := cm.CertmanagerV1().CertificateRequests(secret.Namespace).List(ctx, metav1.ListOptions{
				LabelSelector: labels.Set{LabelSecret: secret.Name}.String(),
			})
			if err != nil {
				return false, nil //nolint:nilerr // polled again
			}
			for i := range list.Items {
				cr := &list.Items[i]
				if hasDecision(cr) {
					continue
				}
				cr.Status.Conditions = append(cr.Status.Conditions, cmapi.CertificateRequestCondition{
					Type: condition, Status: cmmeta.ConditionTrue, Reason: reason, Message: message,
					LastTransitionTime: ptrTo(metav1.Now()),
				})
				_, err := cm.CertmanagerV1().CertificateRequests(cr.Namespace).UpdateStatus(ctx, cr, metav1.UpdateOptions{})
				return err == nil, nil
			}
			return false, nil
		})
		if err != nil {
			t.Errorf("set %s on the request of %s: %v", condition, secret, err)
		}
	}()
	return done
}

func hasDecision(cr *cmapi.CertificateRequest) bool {
	for _, c := range cr.Status.Conditions {
		if c.Type == cmapi.CertificateRequestConditionApproved || c.Type == cmapi.CertificateRequestConditionDenied {
			return true
		}
	}
	return false
}

func hasCondition(cr cmapi.CertificateRequest, typ cmapi.CertificateRequestConditionType, reason string) bool {
	for _, c := range cr.Status.Conditions {
		if c.Type == typ && c.Status == cmmeta.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

// secretNames counts the Secret names handed out, so that every test run,
// also under -count, starts from nothing.
var secretNames atomic.Int64

// secretName names a Secret for one test run: base and a number.
func secretName(namespace, base string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: fmt.Sprintf("%s-%d", base, secretNames.Add(1))}
}

func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	cfg.CertManager, cfg.Kube = cm, kube
	src, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src
}

func getSecret(t *testing.T, name types.NamespacedName) *corev1.Secret {
	t.Helper()
	sec, err := kube.CoreV1().Secrets(name.Namespace).Get(t.Context(), name.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Secret %s: %v", name, err)
	}
	return sec
}

// listRequests lists the source's CertificateRequests for secret.
func listRequests(t *testing.T, secret types.NamespacedName) []cmapi.CertificateRequest {
	t.Helper()
	list, err := cm.CertmanagerV1().CertificateRequests(secret.Namespace).List(t.Context(), metav1.ListOptions{
		LabelSelector: labels.Set{LabelSecret: secret.Name}.String(),
	})
	if err != nil {
		t.Fatalf("list CertificateRequests: %v", err)
	}
	// Requests being deleted are gone for the source's purposes.
	var out []cmapi.CertificateRequest
	for _, cr := range list.Items {
		if cr.DeletionTimestamp == nil {
			out = append(out, cr)
		}
	}
	return out
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// withCapturedLogs returns ctx carrying a logger that records everything
// up to verbosity 7 into the returned buffer. From verbosity 8 on,
// client-go's REST client logs request and response bodies, which for a
// Secret include its data: that is client-go's debugging, for any Secret,
// and no hub runs at that verbosity.
func withCapturedLogs(ctx context.Context) (context.Context, *syncBuffer) {
	b := &syncBuffer{}
	logger := funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.buf.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 7})
	return logr.NewContext(ctx, logger), b
}

// assertKeyNotLogged checks that nothing logged holds the key, in PEM or
// in base64.
func assertKeyNotLogged(t *testing.T, logs *syncBuffer, keyPEM []byte) {
	t.Helper()
	out := logs.String()
	if out == "" {
		t.Error("nothing was logged: the log capture does not work")
	}
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, base64.StdEncoding.EncodeToString(keyPEM)) ||
		bytes.Contains([]byte(out), bytes.TrimSpace(keyPEM)) {
		t.Errorf("the root's private key appears in the logs:\n%s", out)
	}
}

func subjects(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = c.Subject.String()
	}
	return out
}

func names(crs []cmapi.CertificateRequest) []string {
	out := make([]string, len(crs))
	for i, cr := range crs {
		out[i] = cr.Name
	}
	return out
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
