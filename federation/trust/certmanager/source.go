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
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Defaults of Config.
const (
	// DefaultSecretName names the Secret (in causewayv1alpha1's
	// SystemNamespace) that keeps the root when Config.Secret is empty.
	DefaultSecretName = "causeway-root-ca"
	// DefaultDuration is the validity asked for a new root: one year,
	// renewed after eight months.
	DefaultDuration = 365 * 24 * time.Hour
	// MinDuration is the shortest Config.Duration accepted, as cert-manager's
	// webhook accepts no shorter certificate.
	MinDuration = time.Hour
	// DefaultWaitTimeout bounds how long one Root call waits for cert-manager
	// to issue: a CA issuer signs in well under a second; slower issuers
	// finish while the hub waits for the request's next event.
	DefaultWaitTimeout = 15 * time.Second
)

// Keys and metadata of the Secret that keeps the root. The Secret holds
// tls.crt, tls.key and ca.crt, the keys trust.SecretRoot reads, so it can
// also be handed to the hub as a supplied root.
const (
	// KeyPendingKey holds, while a CertificateRequest is in flight, the
	// private key whose CSR it carries, so that a restart resumes the
	// request instead of abandoning it.
	KeyPendingKey = "pending.key"
	// LabelSecret, valued with the Secret's name, marks the Secret and the
	// CertificateRequests this package manages. The Source refuses a
	// Secret without it rather than overwrite someone else's.
	LabelSecret = "causeway.dev/cert-manager-root"
	// AnnotationCertificateRequest names the CertificateRequest that issued
	// tls.crt.
	AnnotationCertificateRequest = "causeway.dev/certificate-request"
	// AnnotationPendingRequest names the CertificateRequest in flight, whose
	// key is KeyPendingKey.
	AnnotationPendingRequest = "causeway.dev/pending-certificate-request"
	// AnnotationIssuer names the issuer that issued tls.crt, as
	// "<kind>.<group>/<name>": when Config.Issuer names another, the root is
	// issued anew.
	AnnotationIssuer = "causeway.dev/issuer"
)

// Config configures a Source.
type Config struct {
	// CertManager is a cert-manager clientset for the hub cluster, which
	// runs cert-manager.
	CertManager cmclient.Interface
	// Kube reads and writes the Secret.
	Kube kubernetes.Interface
	// Secret names the Secret that keeps the root and the namespace of the
	// CertificateRequests; causeway-system/causeway-root-ca when empty, and
	// the namespace causeway-system when only the name is set.
	Secret types.NamespacedName
	// Issuer is the cert-manager issuer to ask. Name is required; Kind is
	// Issuer (in Secret's namespace) when empty, or ClusterIssuer; Group is
	// cert-manager.io when empty, or an external issuer's group (whose
	// kinds are its own).
	Issuer cmmeta.IssuerReference
	// Duration is the validity asked for; DefaultDuration when zero, at
	// least MinDuration. The issuer may grant less (a CA issuer cuts it to
	// its CA's lifetime); renewal follows what was granted.
	Duration time.Duration
	// CommonName is the root's subject common name;
	// pki.DefaultRootCommonName when empty.
	CommonName string
	// WaitTimeout bounds each Root call's wait for cert-manager;
	// DefaultWaitTimeout when zero. The caller's context may end it sooner.
	WaitTimeout time.Duration
	// Clock decides when the root is due for renewal and is the returned
	// CA's clock; the real clock when nil. Certificate validity itself is
	// checked against the real time (pki.LoadCA).
	Clock clock.PassiveClock
}

// Source is a trust.RootSource whose CA is issued by cert-manager. Make it
// with New or NewForConfig. A Source keeps no state of its own between
// calls: everything lives in the Secret and the CertificateRequests, so
// any number of restarts reuse the same root.
type Source struct {
	cfg Config
	// issuerKey is cfg.Issuer as AnnotationIssuer records it.
	issuerKey string
}

var _ trust.WatchingRootSource = (*Source)(nil)

// New checks cfg, fills in its defaults and returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.CertManager == nil || cfg.Kube == nil {
		return nil, errors.New("cert-manager root source: the cert-manager and Kubernetes clients are required")
	}
	if cfg.Secret.Namespace == "" {
		cfg.Secret.Namespace = causewayv1alpha1.SystemNamespace
	}
	if cfg.Secret.Name == "" {
		cfg.Secret.Name = DefaultSecretName
	}
	if cfg.Issuer.Group == "" {
		cfg.Issuer.Group = cmapi.SchemeGroupVersion.Group
	}
	if cfg.Issuer.Kind == "" {
		cfg.Issuer.Kind = cmapi.IssuerKind
	}
	switch {
	case cfg.Issuer.Name == "":
		return nil, errors.New("cert-manager root source: the issuer's name is required")
	case cfg.Issuer.Group == cmapi.SchemeGroupVersion.Group && cfg.Issuer.Kind != cmapi.IssuerKind && cfg.Issuer.Kind != cmapi.ClusterIssuerKind:
		return nil, fmt.Errorf("cert-manager root source: issuer kind %q is neither %s nor %s", cfg.Issuer.Kind, cmapi.IssuerKind, cmapi.ClusterIssuerKind)
	}
	switch {
	case cfg.Duration == 0:
		cfg.Duration = DefaultDuration
	case cfg.Duration < MinDuration:
		return nil, fmt.Errorf("cert-manager root source: duration %s is shorter than %s", cfg.Duration, MinDuration)
	}
	switch {
	case cfg.WaitTimeout == 0:
		cfg.WaitTimeout = DefaultWaitTimeout
	case cfg.WaitTimeout < 0:
		return nil, fmt.Errorf("cert-manager root source: negative wait timeout %s", cfg.WaitTimeout)
	}
	if cfg.CommonName == "" {
		cfg.CommonName = pki.DefaultRootCommonName
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Source{cfg: cfg, issuerKey: issuerKey(cfg.Issuer)}, nil
}

// NewForConfig is New with clients made from restCfg.
func NewForConfig(restCfg *rest.Config, cfg Config) (*Source, error) {
	cm, err := cmclient.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("cert-manager root source: create cert-manager client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("cert-manager root source: create Kubernetes client: %w", err)
	}
	cfg.CertManager, cfg.Kube = cm, kube
	return New(cfg)
}

// WatchedObjects implements trust.WatchingRootSource: the hub calls Root
// again when a CertificateRequest changes, which is how a request that
// outlived one Root call's wait completes.
func (s *Source) WatchedObjects() []client.Object {
	return []client.Object{&cmapi.CertificateRequest{}}
}

// root is a CA with the trust anchors that verify it.
type root struct {
	ca      *pki.CA
	anchors []*x509.Certificate
}

// Root implements trust.RootSource. It returns the root kept in the Secret
// while it is usable, of trustDomain, issued by the configured issuer and
// not due for renewal (two thirds of its lifetime). Otherwise it asks
// cert-manager for a new one — or resumes the request already in flight —
// and waits up to Config.WaitTimeout for it:
//
//   - issued: the new CA is stored in the Secret and returned; its anchors
//     are the CertificateRequest's status.ca.
//   - denied, failed, or issued but unusable: an error wrapping
//     trust.ErrRootInvalid that names the request and cert-manager's reason.
//     The request stays, and so does the error, until someone deletes the
//     request; the next call then makes a new one.
//   - still pending: an error wrapping trust.ErrRootUnavailable with the
//     request's progress (not approved yet, the issuer not found...).
//
// While a renewal is not finished the old root is returned as long as it
// is still valid, and the failure is logged.
func (s *Source) Root(ctx context.Context, trustDomain spiffeid.TrustDomain) (*pki.CA, []*x509.Certificate, error) {
	if trustDomain.IsZero() {
		return nil, nil, fmt.Errorf("%w: trust domain is empty", trust.ErrRootInvalid)
	}
	sec, err := s.getSecret(ctx)
	if err != nil {
		return nil, nil, err
	}
	current, why, err := s.current(sec, trustDomain)
	if err != nil {
		return nil, nil, err
	}
	if why == "" {
		return current.ca, current.anchors, nil
	}
	issued, err := s.issue(ctx, sec, trustDomain, why)
	if err == nil {
		return issued.ca, issued.anchors, nil
	}
	if current != nil && s.cfg.Clock.Now().Before(current.ca.NotAfter()) {
		ctrl.LoggerFrom(ctx).Error(err, "renewing the root CA through cert-manager has not finished; the current root stays in use",
			"secret", s.cfg.Secret.String(), "reason", why, "notAfter", current.ca.NotAfter())
		return current.ca, current.anchors, nil
	}
	return nil, nil, err
}

// getSecret returns the Secret, nil when it does not exist, or an error
// when it exists but this package does not manage it.
func (s *Source) getSecret(ctx context.Context) (*corev1.Secret, error) {
	sec, err := s.cfg.Kube.CoreV1().Secrets(s.cfg.Secret.Namespace).Get(ctx, s.cfg.Secret.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get root CA Secret %s: %w", s.cfg.Secret, err)
	case sec.Labels[LabelSecret] != s.cfg.Secret.Name:
		return nil, fmt.Errorf("%w: Secret %s exists but is not managed by the cert-manager root source (no label %s=%s); it is left alone: delete it or choose another Secret",
			trust.ErrRootInvalid, s.cfg.Secret, LabelSecret, s.cfg.Secret.Name)
	}
	return sec, nil
}

// current loads the root kept in sec and says why a new one must be
// issued, if one must. A non-nil root with a reason is still usable while
// its replacement is being issued. An error means: neither use nor replace
// the root now.
func (s *Source) current(sec *corev1.Secret, td spiffeid.TrustDomain) (*root, string, error) {
	if sec == nil || len(sec.Data[corev1.TLSCertKey]) == 0 {
		return nil, "there is no root yet", nil
	}
	r, err := loadRoot(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey], sec.Data[trust.KeyCA], td, s.cfg.Clock)
	switch {
	case errors.Is(err, pki.ErrNotYetValid):
		// cert-manager does not backdate certificates: this host's clock
		// is most likely a little behind cert-manager's. Retry soon
		// rather than replace a good root.
		return nil, "", fmt.Errorf("root CA in Secret %s: %w", s.cfg.Secret, err)
	case err != nil:
		return nil, "the stored root is unusable: " + err.Error(), nil //nolint:nilerr // a reason to issue anew, not a failure
	}
	if got := sec.Annotations[AnnotationIssuer]; got != s.issuerKey {
		return r, fmt.Sprintf("the stored root was issued by %q, the configured issuer is %q", got, s.issuerKey), nil
	}
	if due, at := renewalDue(r, s.cfg.Clock.Now()); due {
		return r, fmt.Sprintf("the root was due for renewal at %s (two thirds of its lifetime)", at.UTC().Format(time.RFC3339)), nil
	}
	return r, "", nil
}

// issuerKey is ref as AnnotationIssuer records it.
func issuerKey(ref cmmeta.IssuerReference) string {
	return ref.Kind + "." + ref.Group + "/" + ref.Name
}

// NewSourceFunc is a trust.Options.NewSource for the hub: a Source that
// asks issuer (an Issuer in causeway-system, or a ClusterIssuer) through
// the manager's connection, with cert-manager's types added to the
// manager's scheme so that the trust reconcilers can watch its
// CertificateRequests.
func NewSourceFunc(issuer cmmeta.IssuerReference) func(ctrl.Manager) (trust.RootSource, error) {
	return func(mgr ctrl.Manager) (trust.RootSource, error) {
		if err := cmapi.AddToScheme(mgr.GetScheme()); err != nil {
			return nil, fmt.Errorf("cert-manager root source: register cert-manager's types: %w", err)
		}
		return NewForConfig(mgr.GetConfig(), Config{Issuer: issuer})
	}
}
