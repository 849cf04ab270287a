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
	"fmt"
	"maps"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// MemberCASecretName is the Secret in each member's hub namespace
// (causeway-member-<name>) that holds the member's intermediate CA:
// kubernetes.io/tls with tls.crt (the intermediate, then its chain up to but
// not including the root), tls.key (its PKCS #8 key) and ca.crt (the trust
// bundle).
const MemberCASecretName = "causeway-ca"

// Annotations on a member's CA Secret: the CA that issued the intermediate.
const (
	AnnotationIssuerSHA256 = "causeway.dev/issuer-sha256"
	AnnotationIssuerSerial = "causeway.dev/issuer-serial"
)

// ConditionIntermediateCA is the MemberCluster condition that says whether
// the member holds a current intermediate CA.
const ConditionIntermediateCA = "IntermediateCAIssued"

// Reasons of ConditionIntermediateCA.
const (
	// ReasonIssued: the member's Secret holds a valid intermediate.
	ReasonIssued = "Issued"
	// ReasonRootInvalid: the configured root cannot be used.
	ReasonRootInvalid = "RootInvalid"
	// ReasonRootUnavailable: the configured root does not exist yet.
	ReasonRootUnavailable = "RootUnavailable"
	// ReasonInvalidTrustDomain: the MeshConfig's trust domain is invalid.
	ReasonInvalidTrustDomain = "InvalidTrustDomain"
	// ReasonIssueFailed: an intermediate was made but does not verify
	// against the bundle (for example a path length constraint above the
	// root forbids it); nothing was written.
	ReasonIssueFailed = "IssueFailed"
)

// assessment is what a member's Secret holds, judged against the current
// authority.
type assessment struct {
	// replace says why the intermediate must be replaced now; empty to
	// keep it.
	replace string
	// cert is the intermediate, when it is kept.
	cert *x509.Certificate
	// current: cert was issued by the authority's CA (not a former one).
	current bool
}

// assess judges the Secret data of member name's CA at now. It is a pure
// function of its arguments.
func assess(name string, data map[string][]byte, a *authority, now time.Time) assessment {
	if data == nil {
		return assessment{replace: "the Secret does not exist"}
	}
	certs, err := parseCertsPEM(data[KeyCertificate])
	if err != nil {
		return assessment{replace: "tls.crt: " + err.Error()}
	}
	key, err := parsePKCS8KeyPEM(data[KeyPrivateKey])
	if err != nil {
		return assessment{replace: "tls.key: " + err.Error()}
	}
	c := certs[0]
	id, idErr := x509svid.IDFromCert(c)
	switch {
	case !publicKeyEqual(key.Public(), c):
		return assessment{replace: "tls.key is not the key of tls.crt"}
	case !c.BasicConstraintsValid || !c.IsCA || !c.MaxPathLenZero || c.KeyUsage&x509.KeyUsageCertSign == 0:
		return assessment{replace: fmt.Sprintf("%s is not an intermediate CA of path length 0", describe(c))}
	case c.Subject.CommonName != name:
		return assessment{replace: fmt.Sprintf("%s is not named after member %q", describe(c), name)}
	case idErr != nil || id != a.td.ID():
		return assessment{replace: fmt.Sprintf("%s does not carry the trust domain's ID %s", describe(c), a.td.ID())}
	case !now.Before(c.NotAfter):
		return assessment{replace: fmt.Sprintf("%s expired at %s", describe(c), utc(c.NotAfter))}
	case !now.Before(renewalTime(c)):
		return assessment{replace: fmt.Sprintf("%s was due for renewal at %s", describe(c), utc(renewalTime(c)))}
	}
	chains, err := c.Verify(verifyOptions(a.roots, certs[1:], now))
	if err != nil {
		return assessment{replace: fmt.Sprintf("%s does not verify against the trust bundle: %v", describe(c), err)}
	}
	// Issued by the current CA: a verified chain runs through it (which
	// spares a second signature check), and tls.crt carries its chain.
	current := false
	if caCert := a.ca.Certificate(); bytes.Equal(c.RawIssuer, caCert.RawSubject) && sameCerts(certs[1:], a.ca.Chain()) {
		for _, chain := range chains {
			current = current || (len(chain) > 1 && chain[1].Equal(caCert))
		}
	}
	return assessment{cert: c, current: current}
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// IntermediateReconciler keeps each member's intermediate CA, in Secret
// causeway-member-<name>/causeway-ca on the hub, issued by the authority's
// CA, unexpired and with the current trust bundle, and reports it in the
// MemberCluster's ConditionIntermediateCA. Its key is the member's name.
type IntermediateReconciler struct {
	Client client.Client
	// Authority is the bundle reconciler's decision; until it has one,
	// members are left alone.
	Authority *Authority
	// TTL is the intermediates' lifetime (cut to the CA's).
	TTL time.Duration
	// Clock is the time source; nil means the real one.
	Clock clock.PassiveClock
}

// Reconcile handles member req.Name.
func (r *IntermediateReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	var mc causewayv1alpha1.MemberCluster
	if err := r.Client.Get(ctx, req.NamespacedName, &mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mc.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	a := r.Authority.load()
	if a == nil {
		return ctrl.Result{}, nil // the bundle reconciler wakes every member once it decides
	}
	if a.reason != "" {
		return ctrl.Result{}, r.setCondition(ctx, &mc, metav1.ConditionFalse, a.reason, a.message)
	}
	ns := causewayv1alpha1.MemberNamespace(mc.Name)
	var namespace corev1.Namespace
	if err := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &namespace); err != nil || namespace.DeletionTimestamp != nil {
		// The join has not made it yet, or an unjoin is taking it away
		// (with the Secret): nothing to keep. Its creation wakes us.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	cur, err := r.secret(ctx, types.NamespacedName{Namespace: ns, Name: MemberCASecretName})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("member %s: %w", mc.Name, err)
	}

	now := clockOr(r.Clock).Now()
	want, held, err := r.desired(ctx, mc.Name, cur, a, now)
	if err != nil {
		return ctrl.Result{}, r.setCondition(ctx, &mc, metav1.ConditionFalse, ReasonIssueFailed, err.Error())
	}
	if err := r.writeSecret(ctx, cur, want); err != nil {
		return ctrl.Result{}, fmt.Errorf("member %s: %w", mc.Name, err)
	}
	if err := r.setCondition(ctx, &mc, metav1.ConditionTrue, ReasonIssued, issuedMessage(held, a)); err != nil {
		return ctrl.Result{}, err
	}
	if held.current {
		return requeueAt(now, renewalTime(held.cert)), nil
	}
	return requeueAt(now, renewalTime(held.cert), a.reissueAt), nil
}

// secret returns the member's CA Secret, nil if there is none.
func (r *IntermediateReconciler) secret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Client.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get CA Secret %s: %w", key, err)
	}
	return &s, nil
}

// desired decides the member's CA Secret: cur kept as it is, with ca.crt
// and the hub's metadata up to date, or with a new intermediate when assess
// (or a finished propagation delay) calls for one. It returns the Secret and
// the intermediate it holds; an error means no usable intermediate could be
// issued.
func (r *IntermediateReconciler) desired(ctx context.Context, member string, cur *corev1.Secret, a *authority, now time.Time) (*corev1.Secret, assessment, error) {
	var data map[string][]byte
	if cur != nil {
		data = cur.Data
	}
	held := assess(member, data, a, now)
	if held.replace == "" && !held.current && !now.Before(a.reissueAt) {
		held.replace = "it was issued by a former root CA"
	}
	want := desiredSecret(types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(member), Name: MemberCASecretName}, member, cur, a)
	if held.replace == "" {
		if held.current {
			setIssuer(want, a)
		}
		return want, held, nil
	}
	inter, err := r.issue(member, a, now)
	if err != nil {
		return nil, held, err
	}
	keyPEM, err := inter.PrivateKeyPEM()
	if err != nil {
		return nil, held, fmt.Errorf("issue intermediate CA for member %s: %w", member, err)
	}
	want.Data[KeyCertificate], want.Data[KeyPrivateKey] = inter.ChainPEM(), keyPEM
	setIssuer(want, a)
	ctrl.LoggerFrom(ctx).Info("issuing an intermediate CA", "cluster", member, "reason", held.replace,
		"serial", inter.Certificate().SerialNumber.Text(16), "notAfter", inter.Certificate().NotAfter)
	return want, assessment{cert: inter.Certificate(), current: true}, nil
}

// issuedMessage is ConditionIntermediateCA's message for a held
// intermediate.
func issuedMessage(held assessment, a *authority) string {
	serial := held.cert.SerialNumber.Text(16)
	if !held.current {
		return fmt.Sprintf("intermediate CA %s issued by a former root CA, valid until %s; re-issued under %s from %s",
			serial, utc(held.cert.NotAfter), describe(a.ca.Certificate()), utc(a.reissueAt))
	}
	return fmt.Sprintf("intermediate CA %s issued by %s, valid until %s", serial, describe(a.ca.Certificate()), utc(held.cert.NotAfter))
}

// issue makes an intermediate for member name and checks it against the
// bundle before anything is written.
func (r *IntermediateReconciler) issue(name string, a *authority, now time.Time) (*pki.CA, error) {
	inter, err := a.ca.NewIntermediate(name, r.TTL)
	if err != nil {
		return nil, fmt.Errorf("issue intermediate CA for member %s: %w", name, err)
	}
	chain := inter.Chain()
	if _, err := chain[0].Verify(verifyOptions(a.roots, chain[1:], now)); err != nil {
		return nil, fmt.Errorf("intermediate CA issued for member %s does not verify against the trust bundle: %w", name, err)
	}
	return inter, nil
}

// desiredSecret is cur (or a new Secret) with the hub's labels, the type
// and ca.crt set, and the intermediate kept as it is.
func desiredSecret(key types.NamespacedName, member string, cur *corev1.Secret, a *authority) *corev1.Secret {
	want := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if cur != nil {
		want = cur.DeepCopy()
	}
	want.Type = corev1.SecretTypeTLS
	want.Labels = maps.Clone(want.Labels)
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	want.Labels[causewayv1alpha1.LabelCluster] = member
	old := want.Data
	want.Data = map[string][]byte{KeyCertificate: old[KeyCertificate], KeyPrivateKey: old[KeyPrivateKey], KeyCA: a.bundlePEM}
	return want
}

func setIssuer(s *corev1.Secret, a *authority) {
	s.Annotations = maps.Clone(s.Annotations)
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationIssuerSHA256] = Fingerprint(a.ca.Certificate())
	s.Annotations[AnnotationIssuerSerial] = a.ca.Certificate().SerialNumber.Text(16)
}

// writeSecret makes the Secret cur (nil if missing) into want, writing only
// on a difference. A Secret of another type is replaced, as the type is
// immutable.
func (r *IntermediateReconciler) writeSecret(ctx context.Context, cur, want *corev1.Secret) error {
	if cur != nil && cur.Type != want.Type {
		if err := r.Client.Delete(ctx, cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete CA Secret %s/%s of type %s: %w", cur.Namespace, cur.Name, cur.Type, err)
		}
		cur = nil
	}
	if cur == nil {
		want.ResourceVersion, want.UID = "", ""
		if err := r.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("create CA Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		return nil
	}
	if equality.Semantic.DeepEqual(cur.Data, want.Data) && equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(cur.Annotations, want.Annotations) {
		return nil
	}
	if err := r.Client.Update(ctx, want); err != nil {
		return fmt.Errorf("update CA Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// setCondition sets ConditionIntermediateCA on mc, patching only on a
// change. The patch is optimistic: the MemberCluster reconciler writes the
// same status.
func (r *IntermediateReconciler) setCondition(ctx context.Context, mc *causewayv1alpha1.MemberCluster, status metav1.ConditionStatus, reason, msg string) error {
	next := mc.DeepCopy()
	meta.SetStatusCondition(&next.Status.Conditions, metav1.Condition{
		Type: ConditionIntermediateCA, Status: status, Reason: reason, Message: msg, ObservedGeneration: mc.Generation,
	})
	if equality.Semantic.DeepEqual(mc.Status, next.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, next, client.MergeFromWithOptions(mc, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("set condition %s of member cluster %s: %w", ConditionIntermediateCA, mc.Name, err)
	}
	return nil
}
