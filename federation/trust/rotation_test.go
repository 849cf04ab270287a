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
	"bytes"
	"context"
	"crypto/x509"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// bundleRoots parses roots.pem (or a ca.crt).
func bundleRoots(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	if len(data) == 0 {
		return nil
	}
	return mustCerts(t, data)
}

func sameRoots(got []*x509.Certificate, want ...*x509.Certificate) bool {
	return sameCerts(got, want)
}

func issuerOf(t *testing.T, s *corev1.Secret, root *x509.Certificate) bool {
	t.Helper()
	return mustCerts(t, s.Data[KeyCertificate])[0].CheckSignatureFrom(root) == nil
}

// TestRootRotation rotates a generated root by annotation: the new root is
// trusted first, intermediates move to it after the propagation delay, and
// the old root is trusted until the overlap ends; SVIDs from both verify
// throughout.
func TestRootRotation(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	rootKey := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "rot-root"}
	const delay = 30 * time.Second // less than pki.ClockSkew, so the agent's LoadCA (real clock) accepts what the fake clock issued
	opts := hubOptions{
		source:  generatedSource(rootKey),
		bundle:  types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "rot-bundle"},
		members: []string{"rot-a", "rot-b"},
		delay:   delay,
		// Overlap zero: the floor, the workload certificate lifetime plus
		// clock skew, applies.
	}
	for _, m := range opts.members {
		addMember(ctx, t, admin, m)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	h := startHub(ctx, t, clk, opts)
	h.reconcileAll(t)
	oldRoot := mustCerts(t, getSecret(ctx, t, admin, rootKey).Data[KeyCertificate])[0]
	// A workload certificate that outlives the overlap, to see the old
	// root's trust end.
	oldSVID := signWorkload(t, memberCA(t, h.secret(t, "rot-a")), 72*time.Hour)

	var newRoot *x509.Certificate
	rotatedAt := clk.Now()
	step(t, "annotating the root Secret makes a new root, trusted beside the old one", func(t *testing.T) {
		rs := getSecret(ctx, t, admin, rootKey)
		metav1.SetMetaDataAnnotation(&rs.ObjectMeta, AnnotationRotate, "2026-12")
		if err := admin.Update(ctx, rs); err != nil {
			t.Fatal(err)
		}
		h.reconcileBundle(t)
		rs = getSecret(ctx, t, admin, rootKey)
		newRoot = mustCerts(t, rs.Data[KeyCertificate])[0]
		if newRoot.Equal(oldRoot) || rs.Annotations[AnnotationRotateHandled] != "2026-12" {
			t.Fatalf("root replaced: %v, %s=%q", !newRoot.Equal(oldRoot), AnnotationRotateHandled, rs.Annotations[AnnotationRotateHandled])
		}
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, newRoot, oldRoot) {
			t.Errorf("roots.pem holds %d roots, want the new one, then the old one", len(got))
		}
		for _, m := range opts.members {
			before := h.secret(t, m)
			res := h.reconcileMember(t, m)
			s := h.secret(t, m)
			if !bytes.Equal(s.Data[KeyCertificate], before.Data[KeyCertificate]) || !issuerOf(t, s, oldRoot) {
				t.Errorf("%s: the intermediate moved before the propagation delay", m)
			}
			if got := bundleRoots(t, s.Data[KeyCA]); !sameRoots(got, newRoot, oldRoot) {
				t.Errorf("%s: ca.crt holds %d roots, want both", m, len(got))
			}
			if res.RequeueAfter < delay-time.Second || res.RequeueAfter > delay+time.Second { // whole seconds
				t.Errorf("%s: RequeueAfter = %s, want the propagation delay %s", m, res.RequeueAfter, delay)
			}
			if cond := h.wantIssued(t, m); !strings.Contains(cond.Message, "former root") {
				t.Errorf("%s: condition message %q does not mention the pending move", m, cond.Message)
			}
		}
		if err := verifyAt(oldSVID, bundleOf(t, tdLocal, h.secret(t, "rot-b").Data[KeyCA]), clk.Now()); err != nil {
			t.Errorf("old SVID against the two-root bundle: %v", err)
		}
	})

	var newSVID *pki.SVID
	step(t, "after the propagation delay, intermediates move to the new root", func(t *testing.T) {
		clk.Step(delay)
		for _, m := range opts.members {
			h.reconcileMember(t, m)
			s := h.secret(t, m)
			if !issuerOf(t, s, newRoot) || s.Annotations[AnnotationIssuerSHA256] != Fingerprint(newRoot) {
				t.Errorf("%s: not re-issued under the new root (annotation %s)", m, s.Annotations[AnnotationIssuerSHA256])
			}
			if got := bundleRoots(t, s.Data[KeyCA]); !sameRoots(got, newRoot, oldRoot) {
				t.Errorf("%s: ca.crt holds %d roots, want both", m, len(got))
			}
		}
		newSVID = signWorkload(t, memberCA(t, h.secret(t, "rot-a")), 72*time.Hour)
		bundle := bundleOf(t, tdLocal, h.secret(t, "rot-b").Data[KeyCA])
		for name, svid := range map[string]*pki.SVID{"old": oldSVID, "new": newSVID} {
			if err := verifyAt(svid, bundle, clk.Now()); err != nil {
				t.Errorf("%s SVID: %v", name, err)
			}
		}
	})

	retireAt := rotatedAt.Truncate(time.Second).Add(delay + pki.DefaultWorkloadTTL + pki.ClockSkew)
	step(t, "the old root stays trusted until the overlap ends", func(t *testing.T) {
		clk.SetTime(retireAt.Add(-time.Second))
		res := h.reconcileBundle(t)
		if res.RequeueAfter < time.Second || res.RequeueAfter > 2*time.Second {
			t.Errorf("bundle RequeueAfter = %s, want the second until the old root retires", res.RequeueAfter)
		}
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, newRoot, oldRoot) {
			t.Errorf("roots.pem holds %d roots, want both", len(got))
		}
		bundle := bundleOf(t, tdLocal, h.bundlePEM(t))
		for name, svid := range map[string]*pki.SVID{"old": oldSVID, "new": newSVID} {
			if err := verifyAt(svid, bundle, clk.Now()); err != nil {
				t.Errorf("%s SVID a second before the overlap ends: %v", name, err)
			}
		}
	})

	step(t, "then it leaves the bundle, and its SVIDs fail", func(t *testing.T) {
		clk.SetTime(retireAt)
		h.reconcileAll(t)
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, newRoot) {
			t.Errorf("roots.pem holds %d roots, want the new one only", len(got))
		}
		for _, m := range opts.members {
			if got := bundleRoots(t, h.secret(t, m).Data[KeyCA]); !sameRoots(got, newRoot) {
				t.Errorf("%s: ca.crt holds %d roots, want the new one only", m, len(got))
			}
		}
		bundle := bundleOf(t, tdLocal, h.secret(t, "rot-b").Data[KeyCA])
		if err := verifyAt(oldSVID, bundle, clk.Now()); err == nil {
			t.Error("an SVID of the old root still verifies after the overlap")
		}
		if err := verifyAt(newSVID, bundle, clk.Now()); err != nil {
			t.Errorf("new SVID: %v", err)
		}
	})

	step(t, "a restart after the rotation writes nothing", func(t *testing.T) {
		h = startHub(ctx, t, clk, opts)
		h.reconcileAll(t)
		if n := h.writes.n.Load(); n != 0 {
			t.Errorf("%d writes after a restart, want none", n)
		}
	})
}

// TestGeneratedRootReplaced: a generated root two thirds through its life,
// or of a trust domain the mesh no longer has, is replaced.
func TestGeneratedRootReplaced(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	rootKey := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "old-root"}
	opts := hubOptions{
		source:  generatedSource(rootKey),
		bundle:  types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "old-bundle"},
		members: []string{"old-a"},
	}
	addMember(ctx, t, admin, "old-a")
	// Seven years into a ten-year life: past two thirds.
	aged, err := pki.NewRoot(tdLocal, pki.RootOptions{Clock: clocktesting.NewFakePassiveClock(time.Now().AddDate(-7, 0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	create(ctx, t, admin, tlsSecret(rootKey, caSecretData(t, aged)))
	// A year ago the root was not due yet: it was published.
	now := time.Now()
	clk := clocktesting.NewFakeClock(now.AddDate(-1, 0, 0))
	h := startHub(ctx, t, clk, opts)
	h.reconcileAll(t)
	if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, aged.Certificate()) {
		t.Fatalf("roots.pem holds %d roots, want the aged root", len(got))
	}

	step(t, "an aged root is renewed, the old one retiring", func(t *testing.T) {
		clk.SetTime(now)
		h.reconcileAll(t)
		cur := mustCerts(t, getSecret(ctx, t, admin, rootKey).Data[KeyCertificate])[0]
		if cur.Equal(aged.Certificate()) {
			t.Fatal("the aged root was kept")
		}
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, cur, aged.Certificate()) {
			t.Errorf("roots.pem holds %d roots, want the new one, then the aged one", len(got))
		}
		// A new member has nothing to wait for.
		if !issuerOf(t, h.secret(t, "old-a"), cur) {
			t.Error("the new member's intermediate is not from the new root")
		}
	})

	step(t, "a MeshConfig with another trust domain gets a root of its own", func(t *testing.T) {
		mc := &causewayv1alpha1.MeshConfig{
			ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MeshConfigName},
			Spec:       causewayv1alpha1.MeshConfigSpec{TrustDomain: "mesh.example.com", WorkloadCertTTL: &metav1.Duration{Duration: 48 * time.Hour}},
		}
		create(ctx, t, admin, mc)
		t.Cleanup(func() { _ = admin.Delete(context.Background(), mc) })
		h.reconcileAll(t)
		td := spiffeid.RequireTrustDomainFromString("mesh.example.com")
		ca, err := pki.LoadCA(getSecret(ctx, t, admin, rootKey).Data[KeyCertificate], getSecret(ctx, t, admin, rootKey).Data[KeyPrivateKey])
		if err != nil || ca.TrustDomain() != td {
			t.Fatalf("root after the trust domain change: %v, %v", ca, err)
		}
		// Roots of causeway.local cannot stay in a bundle of
		// mesh.example.com.
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, ca.Certificate()) {
			t.Errorf("roots.pem holds %d roots, want the new trust domain's only", len(got))
		}
		s := h.secret(t, "old-a")
		svid := signWorkload(t, memberCA(t, s), 0)
		if svid.ID.TrustDomain() != td {
			t.Errorf("workload ID %s, want one of %s", svid.ID, td)
		}
		if err := verifyAt(svid, bundleOf(t, td, s.Data[KeyCA]), clk.Now()); err != nil {
			t.Errorf("SVID of the new trust domain: %v", err)
		}
	})
}

// TestUserRoot uses a root the user keeps in a Secret: the hub uses it and
// never writes it; a bad one is reported and issues nothing.
func TestUserRoot(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	ensureNamespace(ctx, t, admin, "security")
	rootKey := types.NamespacedName{Namespace: "security", Name: "corp-root"}
	opts := hubOptions{
		source: func(c client.Client, clk *clocktesting.FakeClock) RootSource {
			return &SecretRoot{Reader: c, Secret: rootKey, Clock: clk}
		},
		bundle:  types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "usr-bundle"},
		members: []string{"usr-a"},
	}
	addMember(ctx, t, admin, "usr-a")
	clk := clocktesting.NewFakeClock(time.Now())
	h := startHub(ctx, t, clk, opts)

	step(t, "without its Secret, nothing is issued", func(t *testing.T) {
		h.reconcileAll(t)
		if cond := condition(ctx, t, admin, "usr-a"); cond.Status != metav1.ConditionFalse || cond.Reason != ReasonRootUnavailable ||
			!strings.Contains(cond.Message, "Secret security/corp-root does not exist") {
			t.Errorf("condition %s/%s: %s", cond.Status, cond.Reason, cond.Message)
		}
		if err := admin.Get(ctx, memberSecretKey("usr-a"), &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("member Secret: %v, want none", err)
		}
	})

	userRoot, err := pki.NewRoot(tdLocal, pki.RootOptions{CommonName: "Example Corp mesh root"})
	if err != nil {
		t.Fatal(err)
	}
	step(t, "the user's root issues the intermediates; its Secret is never written", func(t *testing.T) {
		create(ctx, t, admin, tlsSecret(rootKey, caSecretData(t, userRoot)))
		rootSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: rootKey.Namespace, Name: rootKey.Name}}
		before := h.resourceVersions(t, rootSecret)
		h.reconcileAll(t)
		s := h.secret(t, "usr-a")
		if !issuerOf(t, s, userRoot.Certificate()) || !bytes.Equal(s.Data[KeyCA], userRoot.CertificatePEM()) {
			t.Error("the member's intermediate is not from the user's root, or ca.crt is not it")
		}
		h.wantIssued(t, "usr-a")
		if after := h.resourceVersions(t, rootSecret); !maps.Equal(before, after) {
			t.Errorf("the root Secret was written: %v → %v", before, after)
		}
	})
	good := h.resourceVersions(t, h.objects(types.NamespacedName{})...)
	goodSVID := signWorkload(t, memberCA(t, h.secret(t, "usr-a")), 0)

	past := clocktesting.NewFakePassiveClock(time.Now().AddDate(-2, 0, 0))
	expired, err := pki.NewRoot(tdLocal, pki.RootOptions{TTL: 365 * 24 * time.Hour, Clock: past})
	if err != nil {
		t.Fatal(err)
	}
	otherTD, err := pki.NewRoot(spiffeid.RequireTrustDomainFromString("other.org"), pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	anotherRoot, err := pki.NewRoot(tdLocal, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pathZero := makeCA(t, caShape{cn: "path zero", td: &tdLocal, maxPathLen: 0, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0)}, nil)
	corpRoot := makeCA(t, caShape{cn: "corp root", maxPathLen: -1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(20, 0, 0)}, nil)
	corpCA := makeCA(t, caShape{cn: "corp causeway", td: &tdLocal, maxPathLen: 1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(5, 0, 0)}, corpRoot)
	leaf := signWorkload(t, userRoot, 0)
	leafKey := caSecretData(t, anotherRoot)[KeyPrivateKey] // any key: the leaf check comes first

	invalid := map[string]struct {
		data map[string][]byte
		want string
	}{
		"garbage":              {map[string][]byte{KeyCertificate: []byte("garbage"), KeyPrivateKey: []byte("garbage")}, "parse CA certificate PEM"},
		"no key":               {map[string][]byte{KeyCertificate: userRoot.CertificatePEM(), KeyPrivateKey: {}}, "has no tls.key"},
		"expired":              {caSecretData(t, expired), "certificate has expired"},
		"another trust domain": {caSecretData(t, otherTD), "trust domain other.org, the mesh's is causeway.local"},
		"another CA's key": {
			map[string][]byte{KeyCertificate: userRoot.CertificatePEM(), KeyPrivateKey: caSecretData(t, anotherRoot)[KeyPrivateKey]},
			"private key does not match",
		},
		"path length 0":         {map[string][]byte{KeyCertificate: pathZero.certPEM(), KeyPrivateKey: pathZero.keyPEM(t)}, "path length 0"},
		"a leaf":                {map[string][]byte{KeyCertificate: leaf.ChainPEM(), KeyPrivateKey: leafKey}, "not a CA"},
		"a CA without its root": {map[string][]byte{KeyCertificate: corpCA.certPEM(), KeyPrivateKey: corpCA.keyPEM(t)}, "neither tls.crt nor ca.crt holds the root"},
	}
	for name, tc := range invalid {
		step(t, "an invalid root is reported and issues nothing: "+name, func(t *testing.T) {
			rs := getSecret(ctx, t, admin, rootKey)
			rs.Data = tc.data
			if err := admin.Update(ctx, rs); err != nil {
				t.Fatal(err)
			}
			h.reconcileAll(t)
			cond := condition(ctx, t, admin, "usr-a")
			if cond.Status != metav1.ConditionFalse || cond.Reason != ReasonRootInvalid || !strings.Contains(cond.Message, tc.want) {
				t.Errorf("condition %s/%s %q, want False/%s containing %q", cond.Status, cond.Reason, cond.Message, ReasonRootInvalid, tc.want)
			}
			now := h.resourceVersions(t, h.objects(types.NamespacedName{})...)
			for k, v := range good {
				if strings.HasPrefix(k, "MemberCluster") {
					continue // the condition changed
				}
				if now[k] != v {
					t.Errorf("%s was written", k)
				}
			}
		})
	}

	parent := t
	step(t, "a new member gets nothing from an invalid root", func(t *testing.T) {
		addMember(ctx, parent, admin, "usr-new")
		h.members = append(h.members, "usr-new")
		h.reconcileMember(t, "usr-new")
		if err := admin.Get(ctx, memberSecretKey("usr-new"), &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("member Secret: %v, want none", err)
		}
		if cond := condition(ctx, t, admin, "usr-new"); cond.Reason != ReasonRootInvalid {
			t.Errorf("condition reason %q, want %s", cond.Reason, ReasonRootInvalid)
		}
	})

	step(t, "a CA under a corporate root: the corporate root is the anchor, the chain travels", func(t *testing.T) {
		rs := getSecret(ctx, t, admin, rootKey)
		rs.Data = map[string][]byte{KeyCertificate: corpCA.certPEM(), KeyPrivateKey: corpCA.keyPEM(t), KeyCA: corpRoot.certPEM()}
		if err := admin.Update(ctx, rs); err != nil {
			t.Fatal(err)
		}
		h.reconcileAll(t) // propagation delay 0: intermediates move at once
		if got := bundleRoots(t, h.bundlePEM(t)); !sameRoots(got, corpRoot.cert, userRoot.Certificate()) {
			t.Errorf("roots.pem holds %d roots, want the corporate root, then the former user root", len(got))
		}
		for _, m := range h.members {
			s := h.secret(t, m)
			certs := mustCerts(t, s.Data[KeyCertificate])
			if len(certs) != 2 || !certs[1].Equal(corpCA.cert) || certs[0].CheckSignatureFrom(corpCA.cert) != nil {
				t.Errorf("%s: tls.crt holds %d certificates, want the intermediate and the corporate causeway CA", m, len(certs))
			}
			svid := signWorkload(t, memberCA(t, s), 0)
			if len(svid.Certificates) != 3 {
				t.Errorf("%s: SVID chain of %d certificates, want leaf, intermediate, causeway CA", m, len(svid.Certificates))
			}
			bundle := bundleOf(t, tdLocal, s.Data[KeyCA])
			if err := verifyAt(svid, bundle, clk.Now()); err != nil {
				t.Errorf("%s: SVID under the corporate root: %v", m, err)
			}
			if err := verifyAt(goodSVID, bundle, clk.Now()); err != nil {
				t.Errorf("%s: an SVID of the former root during the overlap: %v", m, err)
			}
			h.wantIssued(t, m)
		}
	})
}

// TestInvalidMeshConfigTrustDomain: the MeshConfig CRD only admits valid
// trust domains, so the test plays an API server without that validation
// (an older CRD) by rewriting what Get returns.
func TestInvalidMeshConfigTrustDomain(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	addMember(ctx, t, admin, "itd-a")
	c := interceptor.NewClient(directClient(t), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if mc, ok := obj.(*causewayv1alpha1.MeshConfig); ok {
				mc.Name, mc.Spec.TrustDomain = key.Name, "Not A Domain"
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	clk := clocktesting.NewFakeClock(time.Now())
	auth := NewAuthority()
	bundle := &BundleReconciler{
		Client: c, Authority: auth, TrustDomain: tdLocal, Clock: clk,
		Source: &GeneratedRoot{Client: c, Secret: types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "itd-root"}, Clock: clk},
		Bundle: types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "itd-bundle"},
	}
	inter := &IntermediateReconciler{Client: c, Authority: auth, TTL: DefaultIntermediateTTL, Clock: clk}
	if _, err := bundle.Reconcile(ctx, reconcile.Request{}); err != nil {
		t.Fatalf("bundle Reconcile: %v", err)
	}
	if _, err := inter.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "itd-a"}}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	cond := condition(ctx, t, admin, "itd-a")
	if cond.Status != metav1.ConditionFalse || cond.Reason != ReasonInvalidTrustDomain || !strings.Contains(cond.Message, `invalid trust domain "Not A Domain"`) {
		t.Errorf("condition %s/%s %q", cond.Status, cond.Reason, cond.Message)
	}
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace("itd-a"), Name: MemberCASecretName}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: "itd-root"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: "itd-bundle"}},
	} {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s: %v, want nothing made", obj, obj.GetName(), err)
		}
	}
}
