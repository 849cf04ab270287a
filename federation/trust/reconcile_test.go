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
	"errors"
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// hub runs the two reconcilers by direct calls, as the manager would, with
// a fake clock and a write counter. Each test names its own root Secret and
// bundle ConfigMap, so tests do not share state.
type hub struct {
	ctx     context.Context
	admin   client.Client
	writes  *writeCounter
	clk     *clocktesting.FakeClock
	bundle  *BundleReconciler
	inter   *IntermediateReconciler
	members []string
}

type hubOptions struct {
	source   func(c client.Client, clk *clocktesting.FakeClock) RootSource
	bundle   types.NamespacedName
	delay    time.Duration
	overlap  time.Duration
	interTTL time.Duration
	members  []string
}

func generatedSource(key types.NamespacedName) func(client.Client, *clocktesting.FakeClock) RootSource {
	return func(c client.Client, clk *clocktesting.FakeClock) RootSource {
		return &GeneratedRoot{Client: c, Secret: key, Clock: clk}
	}
}

// startHub makes a hub over the test API server; a second call with the
// same options and clock is a restarted hub.
func startHub(ctx context.Context, t *testing.T, clk *clocktesting.FakeClock, o hubOptions) *hub {
	t.Helper()
	admin := directClient(t)
	w := &writeCounter{}
	c := w.wrap(directClient(t))
	auth := NewAuthority()
	td := tdLocal
	h := &hub{
		ctx: ctx, admin: admin, writes: w, clk: clk, members: o.members,
		bundle: &BundleReconciler{
			Client: c, Source: o.source(c, clk), Authority: auth, TrustDomain: td, Bundle: o.bundle,
			Overlap: o.overlap, PropagationDelay: o.delay, Clock: clk,
		},
		inter: &IntermediateReconciler{Client: c, Authority: auth, TTL: o.interTTL, Clock: clk},
	}
	if h.inter.TTL == 0 {
		h.inter.TTL = DefaultIntermediateTTL
	}
	return h
}

// reconcileBundle runs the bundle reconciler once.
func (h *hub) reconcileBundle(t *testing.T) reconcile.Result {
	t.Helper()
	res, err := h.bundle.Reconcile(h.ctx, reconcile.Request{NamespacedName: h.bundle.Bundle})
	if err != nil {
		t.Fatalf("bundle Reconcile: %v", err)
	}
	return res
}

// reconcileMember runs the intermediate reconciler once for member.
func (h *hub) reconcileMember(t *testing.T, member string) reconcile.Result {
	t.Helper()
	res, err := h.inter.Reconcile(h.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: member}})
	if err != nil {
		t.Fatalf("Reconcile member %s: %v", member, err)
	}
	return res
}

// reconcileAll runs the bundle reconciler, then every member's.
func (h *hub) reconcileAll(t *testing.T) {
	t.Helper()
	h.reconcileBundle(t)
	for _, m := range h.members {
		h.reconcileMember(t, m)
	}
}

// resourceVersions of the objects.
func (h *hub) resourceVersions(t *testing.T, objs ...client.Object) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objs {
		fresh := o.DeepCopyObject().(client.Object)
		if err := h.admin.Get(h.ctx, client.ObjectKeyFromObject(o), fresh); err != nil {
			t.Fatalf("get %T %s: %v", o, client.ObjectKeyFromObject(o), err)
		}
		out[typeName(o)+" "+client.ObjectKeyFromObject(o).String()] = fresh.GetResourceVersion()
	}
	return out
}

func typeName(o client.Object) string {
	switch o.(type) {
	case *corev1.Secret:
		return "Secret"
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *causewayv1alpha1.MemberCluster:
		return "MemberCluster"
	}
	return "object"
}

// memberObjects are the objects the hub keeps for member.
func memberObjects(member string) []client.Object {
	k := memberSecretKey(member)
	return []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}},
		&causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: member}},
	}
}

// objects are every object the hub keeps for these members.
func (h *hub) objects(rootSecret types.NamespacedName) []client.Object {
	objs := []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: h.bundle.Bundle.Namespace, Name: h.bundle.Bundle.Name}}}
	if rootSecret.Name != "" {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: rootSecret.Namespace, Name: rootSecret.Name}})
	}
	for _, m := range h.members {
		objs = append(objs, memberObjects(m)...)
	}
	return objs
}

func (h *hub) bundlePEM(t *testing.T) []byte {
	t.Helper()
	return []byte(getConfigMap(h.ctx, t, h.admin, h.bundle.Bundle).Data[BundleKey])
}

func (h *hub) secret(t *testing.T, member string) *corev1.Secret {
	t.Helper()
	return getSecret(h.ctx, t, h.admin, memberSecretKey(member))
}

func (h *hub) wantIssued(t *testing.T, member string) metav1.Condition {
	t.Helper()
	cond := condition(h.ctx, t, h.admin, member)
	if cond.Status != metav1.ConditionTrue || cond.Reason != ReasonIssued {
		t.Fatalf("member %s: %s = %s/%s (%s), want True/%s", member, ConditionIntermediateCA, cond.Status, cond.Reason, cond.Message, ReasonIssued)
	}
	return cond
}

func step(t *testing.T, name string, f func(t *testing.T)) {
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// TestGeneratedRoot is the life of a hub with a generated root: first
// start, restart, damaged and deleted Secrets, renewal.
func TestGeneratedRoot(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	rootKey := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "gen-root"}
	opts := hubOptions{
		source:  generatedSource(rootKey),
		bundle:  types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: "gen-bundle"},
		members: []string{"gen-a", "gen-b"},
	}
	for _, m := range opts.members {
		addMember(ctx, t, admin, m)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	h := startHub(ctx, t, clk, opts)

	var root *pki.CA
	step(t, "first start makes the root, the bundle and an intermediate per member", func(t *testing.T) {
		h.reconcileAll(t)
		rs := getSecret(ctx, t, admin, rootKey)
		if rs.Type != corev1.SecretTypeTLS {
			t.Errorf("root Secret type %s, want %s", rs.Type, corev1.SecretTypeTLS)
		}
		var err error
		if root, err = pki.LoadCA(rs.Data[KeyCertificate], rs.Data[KeyPrivateKey]); err != nil {
			t.Fatalf("load the generated root: %v", err)
		}
		if !root.IsRoot() || root.TrustDomain() != tdLocal {
			t.Errorf("generated CA: root %v, trust domain %s; want a root of %s", root.IsRoot(), root.TrustDomain(), tdLocal)
		}
		if life := root.NotAfter().Sub(clk.Now()); life < pki.DefaultRootTTL-time.Minute || life > pki.DefaultRootTTL {
			t.Errorf("root lifetime %s, want %s", life, pki.DefaultRootTTL)
		}
		if got := h.bundlePEM(t); !bytes.Equal(got, root.CertificatePEM()) {
			t.Errorf("roots.pem = %s, want the root only", got)
		}
		for _, m := range opts.members {
			s := h.secret(t, m)
			if s.Type != corev1.SecretTypeTLS || s.Labels[causewayv1alpha1.LabelCluster] != m {
				t.Errorf("%s: type %s, labels %v", m, s.Type, s.Labels)
			}
			certs := mustCerts(t, s.Data[KeyCertificate])
			inter := certs[0]
			if len(certs) != 1 || inter.Subject.CommonName != m || !inter.IsCA || !inter.MaxPathLenZero || inter.CheckSignatureFrom(root.Certificate()) != nil {
				t.Errorf("%s: tls.crt holds %d certificates; the first: CN %q, CA %v, path length 0 %v; want only the member's intermediate, issued by the root",
					m, len(certs), inter.Subject.CommonName, inter.IsCA, inter.MaxPathLenZero)
			}
			if want := clk.Now().Add(DefaultIntermediateTTL).Truncate(time.Second); !inter.NotAfter.Equal(want) {
				t.Errorf("%s: intermediate valid until %s, want %s", m, inter.NotAfter, want)
			}
			if !bytes.Equal(s.Data[KeyCA], root.CertificatePEM()) {
				t.Errorf("%s: ca.crt is not the bundle", m)
			}
			if s.Annotations[AnnotationIssuerSHA256] != Fingerprint(root.Certificate()) || s.Annotations[AnnotationIssuerSerial] != root.Certificate().SerialNumber.Text(16) {
				t.Errorf("%s: issuer annotations %v", m, s.Annotations)
			}
			// The agent's view: load the CA, sign a workload, verify it
			// against ca.crt with go-spiffe.
			ca := memberCA(t, s)
			svid := signWorkload(t, ca, 0)
			if err := verifyAt(svid, bundleOf(t, tdLocal, s.Data[KeyCA]), clk.Now()); err != nil {
				t.Errorf("%s: a workload SVID does not verify against ca.crt: %v", m, err)
			}
			if _, err := ca.NewIntermediate("evil", 0); !errors.Is(err, pki.ErrPathLength) {
				t.Errorf("%s: the intermediate made a CA: %v", m, err)
			}
			h.wantIssued(t, m)
		}
		// One member's SVID verifies against another's bundle: one trust
		// domain across the cluster set.
		svid := signWorkload(t, memberCA(t, h.secret(t, "gen-a")), 0)
		if err := verifyAt(svid, bundleOf(t, tdLocal, h.secret(t, "gen-b").Data[KeyCA]), clk.Now()); err != nil {
			t.Errorf("gen-a's SVID against gen-b's bundle: %v", err)
		}
	})

	step(t, "a restarted hub reuses everything and writes nothing", func(t *testing.T) {
		before := h.resourceVersions(t, h.objects(rootKey)...)
		clk.Step(time.Hour)
		h = startHub(ctx, t, clk, opts)
		h.reconcileAll(t)
		if n := h.writes.n.Load(); n != 0 {
			t.Errorf("%d writes after a restart, want none", n)
		}
		if after := h.resourceVersions(t, h.objects(rootKey)...); !maps.Equal(before, after) {
			t.Errorf("resourceVersions changed:\nbefore %v\nafter  %v", before, after)
		}
	})

	heal := func(t *testing.T, member string, damage func(s *corev1.Secret) client.Object, wantNew bool) {
		t.Helper()
		other := "gen-b"
		otherBefore := h.resourceVersions(t, memberObjects(other)...)
		old := h.secret(t, member)
		obj := damage(old.DeepCopy())
		if obj != nil {
			if err := admin.Update(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
		h.reconcileMember(t, member)
		s := h.secret(t, member)
		if got := !bytes.Equal(s.Data[KeyCertificate], old.Data[KeyCertificate]); got != wantNew {
			t.Errorf("new intermediate: %v, want %v", got, wantNew)
		}
		if a := assess(member, s.Data, h.inter.Authority.load(), clk.Now()); a.replace != "" || !a.current {
			t.Errorf("after healing: %+v", a)
		}
		if !bytes.Equal(s.Data[KeyCA], h.bundlePEM(t)) || s.Type != corev1.SecretTypeTLS {
			t.Errorf("after healing: type %s, ca.crt equal to the bundle %v", s.Type, bytes.Equal(s.Data[KeyCA], h.bundlePEM(t)))
		}
		if got := h.resourceVersions(t, memberObjects(other)...); !maps.Equal(got, otherBefore) {
			t.Errorf("%s's objects changed too", other)
		}
		h.wantIssued(t, member)
	}
	step(t, "a damaged ca.crt is restored without a new intermediate", func(t *testing.T) {
		heal(t, "gen-a", func(s *corev1.Secret) client.Object { s.Data[KeyCA] = []byte("tampered"); return s }, false)
	})
	step(t, "a foreign key makes a new intermediate", func(t *testing.T) {
		other := makeCA(t, caShape{cn: "x", notBefore: time.Now(), notAfter: time.Now().Add(time.Hour)}, nil)
		heal(t, "gen-a", func(s *corev1.Secret) client.Object { s.Data[KeyPrivateKey] = other.keyPEM(t); return s }, true)
	})
	step(t, "a garbled certificate makes a new intermediate", func(t *testing.T) {
		heal(t, "gen-a", func(s *corev1.Secret) client.Object { s.Data[KeyCertificate] = []byte("garbage"); return s }, true)
	})
	step(t, "removed issuer annotations come back", func(t *testing.T) {
		heal(t, "gen-a", func(s *corev1.Secret) client.Object { delete(s.Annotations, AnnotationIssuerSHA256); return s }, false)
		if s := h.secret(t, "gen-a"); s.Annotations[AnnotationIssuerSHA256] == "" {
			t.Error("annotation not restored")
		}
	})
	step(t, "a deleted Secret is issued again", func(t *testing.T) {
		heal(t, "gen-a", func(s *corev1.Secret) client.Object {
			if err := admin.Delete(ctx, s); err != nil {
				t.Fatal(err)
			}
			return nil
		}, true)
	})
	step(t, "a Secret of another type is replaced, keeping its valid intermediate", func(t *testing.T) {
		heal(t, "gen-a", func(s *corev1.Secret) client.Object {
			if err := admin.Delete(ctx, s); err != nil {
				t.Fatal(err)
			}
			s.ObjectMeta = metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}
			s.Type = corev1.SecretTypeOpaque
			if err := admin.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			return nil
		}, false)
	})

	step(t, "an intermediate is renewed two thirds through its lifetime", func(t *testing.T) {
		old := mustCerts(t, h.secret(t, "gen-b").Data[KeyCertificate])[0]
		due := renewalTime(old)
		clk.SetTime(due.Add(-time.Minute))
		res := h.reconcileMember(t, "gen-b")
		if !bytes.Equal(mustCerts(t, h.secret(t, "gen-b").Data[KeyCertificate])[0].Raw, old.Raw) {
			t.Fatal("renewed early")
		}
		if res.RequeueAfter < time.Minute || res.RequeueAfter > time.Minute+time.Second {
			t.Errorf("RequeueAfter = %s, want the minute until renewal", res.RequeueAfter)
		}
		clk.SetTime(due)
		h.reconcileBundle(t)
		h.reconcileMember(t, "gen-b")
		renewed := mustCerts(t, h.secret(t, "gen-b").Data[KeyCertificate])[0]
		if renewed.Equal(old) || !renewed.NotBefore.Equal(due.Add(-pki.ClockSkew).Truncate(time.Second)) {
			t.Errorf("renewed intermediate: NotBefore %s, want %s", renewed.NotBefore, due.Add(-pki.ClockSkew))
		}
		if _, err := renewed.Verify(verifyOptions([]*x509.Certificate{root.Certificate()}, nil, clk.Now())); err != nil {
			t.Errorf("the renewed intermediate does not verify: %v", err)
		}
		h.wantIssued(t, "gen-b")
	})
}
