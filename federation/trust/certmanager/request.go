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
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	ctrl "sigs.k8s.io/controller-runtime"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// pemPrivateKey is the PEM type of a PKCS #8 private key.
const pemPrivateKey = "PRIVATE KEY"

// issue gets a new root from cert-manager: it resumes the request recorded
// in sec, or makes a new key and request, then waits for cert-manager and
// stores what it issued. why says why a new root is needed.
func (s *Source) issue(ctx context.Context, sec *corev1.Secret, td spiffeid.TrustDomain, why string) (*root, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("secret", s.cfg.Secret.String(), "issuer", s.issuerKey)
	keyPEM, cr, err := s.pendingRequest(ctx, sec)
	if err != nil {
		return nil, err
	}
	if cr == nil {
		var key crypto.Signer
		key, keyPEM, err = newKey()
		if err != nil {
			return nil, err
		}
		csrPEM, err := newCSR(key, td, s.cfg.CommonName)
		if err != nil {
			return nil, err
		}
		name := requestName(s.cfg.Secret.Name, key.Public())
		// The key is stored before the request exists, so that no
		// request is ever made for a key that a restart would lose.
		if sec, err = s.writeSecret(ctx, sec, pendingData(sec, keyPEM), pendingAnnotations(sec, name)); err != nil {
			return nil, err
		}
		s.deleteOtherRequests(ctx, name)
		if cr, err = s.createRequest(ctx, name, csrPEM); err != nil {
			return nil, err
		}
		log.Info("asked cert-manager for a new root CA", "reason", why, "certificateRequest", name, "trustDomain", td.String())
	}

	cr, err = s.wait(ctx, cr)
	if err != nil {
		return nil, err
	}
	ref := s.cfg.Secret.Namespace + "/" + cr.Name
	r, err := loadRoot(cr.Status.Certificate, keyPEM, cr.Status.CA, td, s.cfg.Clock)
	if errors.Is(err, pki.ErrNotYetValid) {
		// Clock skew with cert-manager: the request stays pending in the
		// Secret, and a retry soon stores it.
		return nil, fmt.Errorf("CertificateRequest %s is issued, but: %w", ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: cert-manager issued CertificateRequest %s, but the CA is unusable (delete the request to ask again): %w",
			trust.ErrRootInvalid, ref, err)
	}
	data := map[string][]byte{
		corev1.TLSCertKey:       cr.Status.Certificate,
		corev1.TLSPrivateKeyKey: keyPEM,
		trust.KeyCA:             cr.Status.CA,
	}
	annotations := map[string]string{AnnotationCertificateRequest: cr.Name, AnnotationIssuer: s.issuerKey}
	if _, err := s.writeSecret(ctx, sec, data, annotations); err != nil {
		return nil, err
	}
	log.Info("cert-manager issued a new root CA", "certificateRequest", cr.Name, "subject", r.ca.Certificate().Subject.String(),
		"serial", r.ca.Certificate().SerialNumber.Text(16), "notAfter", r.ca.NotAfter(), "renewAt", renewalTime(r))
	return r, nil
}

// pendingRequest returns the request recorded in sec as in flight, with
// its key; a nil request when there is none to resume (none recorded, or
// deleted, or no longer matching the key or the configured issuer).
func (s *Source) pendingRequest(ctx context.Context, sec *corev1.Secret) ([]byte, *cmapi.CertificateRequest, error) {
	if sec == nil || sec.Annotations[AnnotationPendingRequest] == "" || len(sec.Data[KeyPendingKey]) == 0 {
		return nil, nil, nil
	}
	name := sec.Annotations[AnnotationPendingRequest]
	keyPEM := sec.Data[KeyPendingKey]
	cr, err := s.cfg.CertManager.CertmanagerV1().CertificateRequests(s.cfg.Secret.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get CertificateRequest %s/%s: %w", s.cfg.Secret.Namespace, name, err)
	case issuerKey(cr.Spec.IssuerRef) != s.issuerKey || !requestMatchesKey(cr, keyPEM):
		return nil, nil, nil
	}
	return keyPEM, cr, nil
}

// createRequest creates the CertificateRequest for csrPEM. One that
// already exists under name (a restart between storing the key and
// creating the request, which carries the same key) is taken as it is.
func (s *Source) createRequest(ctx context.Context, name string, csrPEM []byte) (*cmapi.CertificateRequest, error) {
	cr := &cmapi.CertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.cfg.Secret.Namespace,
			Name:      name,
			Labels:    map[string]string{LabelSecret: s.cfg.Secret.Name},
		},
		Spec: cmapi.CertificateRequestSpec{
			Request:   csrPEM,
			IsCA:      true,
			Usages:    []cmapi.KeyUsage{cmapi.UsageCertSign, cmapi.UsageCRLSign, cmapi.UsageDigitalSignature},
			Duration:  &metav1.Duration{Duration: s.cfg.Duration},
			IssuerRef: s.cfg.Issuer,
		},
	}
	crs := s.cfg.CertManager.CertmanagerV1().CertificateRequests(s.cfg.Secret.Namespace)
	created, err := crs.Create(ctx, cr, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = crs.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("create CertificateRequest %s/%s: %w", s.cfg.Secret.Namespace, name, err)
	}
	return created, nil
}

// deleteOtherRequests deletes the source's requests other than keep:
// issued ones are superseded and failed ones have been reported. Failing
// to delete one is logged, not returned: it costs only clutter.
func (s *Source) deleteOtherRequests(ctx context.Context, keep string) {
	log := ctrl.LoggerFrom(ctx)
	crs := s.cfg.CertManager.CertmanagerV1().CertificateRequests(s.cfg.Secret.Namespace)
	list, err := crs.List(ctx, metav1.ListOptions{LabelSelector: labels.Set{LabelSecret: s.cfg.Secret.Name}.String()})
	if err != nil {
		log.Error(err, "list earlier CertificateRequests of the root CA", "namespace", s.cfg.Secret.Namespace)
		return
	}
	for _, cr := range list.Items {
		if cr.Name == keep {
			continue
		}
		if err := crs.Delete(ctx, cr.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			log.Error(err, "delete an earlier CertificateRequest of the root CA", "certificateRequest", cr.Namespace+"/"+cr.Name)
		}
	}
}

// wait watches cr until cert-manager issues it or gives up on it, for at
// most Config.WaitTimeout. It returns the issued request, or an error that
// wraps trust.ErrRootInvalid (denied, failed, deleted) or
// trust.ErrRootUnavailable (still pending) and says why.
func (s *Source) wait(ctx context.Context, cr *cmapi.CertificateRequest) (*cmapi.CertificateRequest, error) {
	ref := cr.Namespace + "/" + cr.Name
	if st := requestState(cr); st.phase != phasePending {
		return cr, st.err(ref)
	}
	waitCtx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	crs := s.cfg.CertManager.CertmanagerV1().CertificateRequests(cr.Namespace)
	byName := fields.OneTermEqualSelector("metadata.name", cr.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = byName
			return crs.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = byName
			return crs.Watch(ctx, opts)
		},
	}
	last := cr
	deleted := false
	_, err := watchtools.UntilWithSync(waitCtx, lw, &cmapi.CertificateRequest{}, nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			deleted = true
			return true, nil
		case watch.Added, watch.Modified:
			if got, ok := ev.Object.(*cmapi.CertificateRequest); ok {
				last = got
				return requestState(got).phase != phasePending, nil
			}
		}
		return false, nil
	})
	switch {
	case deleted:
		return nil, fmt.Errorf("%w: CertificateRequest %s was deleted while waiting for it", trust.ErrRootUnavailable, ref)
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("wait for CertificateRequest %s: %w", ref, ctx.Err())
	case err != nil && waitCtx.Err() != nil:
		return nil, fmt.Errorf("%w: CertificateRequest %s is not issued after %s: %s",
			trust.ErrRootUnavailable, ref, s.cfg.WaitTimeout, requestState(last).message)
	case err != nil:
		return nil, fmt.Errorf("watch CertificateRequest %s: %w", ref, err)
	}
	return last, requestState(last).err(ref)
}

// phase is where a CertificateRequest stands.
type phase int

const (
	phasePending phase = iota
	phaseIssued
	phaseDenied
	phaseFailed
)

// state is what a CertificateRequest's status says: its phase and, in
// words, why.
type state struct {
	phase   phase
	message string
}

// err is the error the state means for the request named ref: nil once
// issued.
func (st state) err(ref string) error {
	switch st.phase {
	case phaseIssued:
		return nil
	case phaseDenied:
		return fmt.Errorf("%w: CertificateRequest %s was denied: %s; delete it to ask again", trust.ErrRootInvalid, ref, st.message)
	case phaseFailed:
		return fmt.Errorf("%w: CertificateRequest %s failed: %s; delete it to ask again", trust.ErrRootInvalid, ref, st.message)
	}
	return fmt.Errorf("%w: CertificateRequest %s is pending: %s", trust.ErrRootUnavailable, ref, st.message)
}

// requestState reads cr's conditions as cert-manager's CertificateRequest
// controllers write them: Denied=True or InvalidRequest=True end it, and
// so does Ready=True (issued) or Ready=False with reason Failed or Denied.
// Ready=True without a certificate is a failure: nothing can come of it.
func requestState(cr *cmapi.CertificateRequest) state {
	var approved, ready *cmapi.CertificateRequestCondition
	for i := range cr.Status.Conditions {
		c := &cr.Status.Conditions[i]
		switch {
		case c.Type == cmapi.CertificateRequestConditionDenied && c.Status == cmmeta.ConditionTrue:
			return state{phaseDenied, describeCondition(c)}
		case c.Type == cmapi.CertificateRequestConditionInvalidRequest && c.Status == cmmeta.ConditionTrue:
			return state{phaseFailed, "invalid request: " + describeCondition(c)}
		case c.Type == cmapi.CertificateRequestConditionApproved:
			approved = c
		case c.Type == cmapi.CertificateRequestConditionReady:
			ready = c
		}
	}
	if ready != nil {
		switch {
		case ready.Status == cmmeta.ConditionTrue && len(cr.Status.Certificate) == 0:
			return state{phaseFailed, "Ready without a certificate: " + describeCondition(ready)}
		case ready.Status == cmmeta.ConditionTrue:
			return state{phaseIssued, describeCondition(ready)}
		case ready.Reason == cmapi.CertificateRequestReasonDenied:
			return state{phaseDenied, describeCondition(ready)}
		case ready.Reason == cmapi.CertificateRequestReasonFailed:
			return state{phaseFailed, describeCondition(ready)}
		}
	}
	var parts []string
	if approved == nil || approved.Status != cmmeta.ConditionTrue {
		parts = append(parts, "not approved yet")
	}
	if ready != nil {
		parts = append(parts, "Ready="+string(ready.Status)+" "+describeCondition(ready))
	} else {
		parts = append(parts, "no Ready condition yet")
	}
	return state{phasePending, strings.Join(parts, "; ")}
}

// describeCondition is a condition's reason and message.
func describeCondition(c *cmapi.CertificateRequestCondition) string {
	switch {
	case c.Message == "":
		return c.Reason
	case c.Reason == "":
		return c.Message
	}
	return c.Reason + ": " + c.Message
}

// newKey makes an ECDSA P-256 key and its PKCS #8 PEM encoding.
func newKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate root CA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal root CA key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// newCSR makes the PEM CSR of the root: subject O=Causeway, CN=cn, and the
// trust domain's SPIFFE ID as its only SAN, which cert-manager copies into
// the certificate. CA=true and the key usages come from the
// CertificateRequest's spec.
func newCSR(key crypto.Signer, td spiffeid.TrustDomain, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{pki.Organization}, CommonName: cn},
		URIs:    []*url.URL{td.ID().URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create root CA certificate signing request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// requestName names the request for a key: the Secret's name and a short
// hash of the public key, so that a restart between storing the key and
// creating the request makes the same name.
func requestName(secretName string, pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// An ECDSA P-256 key from newKey always marshals.
		der = nil
	}
	sum := sha256.Sum256(der)
	return secretName + "-" + hex.EncodeToString(sum[:5])
}

// requestMatchesKey reports whether cr's CSR is for the key in keyPEM.
func requestMatchesKey(cr *cmapi.CertificateRequest, keyPEM []byte) bool {
	keyBlock, _ := pem.Decode(keyPEM)
	csrBlock, _ := pem.Decode(cr.Spec.Request)
	if keyBlock == nil || csrBlock == nil || keyBlock.Type != pemPrivateKey {
		return false
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return false
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	csr, err := x509.ParseCertificateRequest(csrBlock.Bytes)
	if err != nil {
		return false
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(csr.PublicKey)
}

// pendingData is the Secret data while a request for keyPEM is in flight:
// the current root, if any, stays usable.
func pendingData(sec *corev1.Secret, keyPEM []byte) map[string][]byte {
	data := map[string][]byte{}
	if sec != nil {
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, trust.KeyCA} {
			if v, ok := sec.Data[k]; ok {
				data[k] = v
			}
		}
	}
	data[KeyPendingKey] = keyPEM
	return data
}

// pendingAnnotations are the Secret's managed annotations while request
// name is in flight: those of the current root stay.
func pendingAnnotations(sec *corev1.Secret, name string) map[string]string {
	a := map[string]string{AnnotationPendingRequest: name}
	if sec != nil {
		for _, k := range []string{AnnotationCertificateRequest, AnnotationIssuer} {
			if v := sec.Annotations[k]; v != "" {
				a[k] = v
			}
		}
	}
	return a
}
