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

package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// Names shared with the hub, which writes the CA Secret, and with proxies,
// which mount the trust bundle.
const (
	// CASecretName is the Secret, in the member's namespace on the hub
	// (causeway-member-<member>), that holds the member's intermediate CA.
	// It is of type kubernetes.io/tls: tls.crt is the intermediate's
	// certificate followed by its chain without the root, tls.key its
	// PKCS #8 key, ca.crt the trust bundle (every trusted root; two while
	// a root rotates).
	CASecretName = "causeway-ca"
	// CASecretBundleKey is the key of the trust bundle in CASecretName.
	CASecretBundleKey = "ca.crt"

	// TrustBundleConfigMap is the ConfigMap, in the member's
	// causeway-system namespace, where the agent publishes the trust
	// bundle for proxies to mount as their bootstrap trust (to verify the
	// agent's SDS endpoint before they have an SVID).
	TrustBundleConfigMap = "causeway-trust-bundle"
	// TrustBundleKey is the key of the PEM roots in TrustBundleConfigMap.
	TrustBundleKey = "roots.pem"
)

// ErrNotReady means the member's CA has not been loaded yet.
var ErrNotReady = errors.New("identity service not ready")

// CAState is one loaded CA Secret: the intermediate that signs the
// member's SVIDs and the bundle peers verify them against. It is
// immutable.
type CAState struct {
	// CA is the member's intermediate.
	CA *pki.CA
	// Bundle is the trust bundle, and BundlePEM its roots as PEM.
	Bundle    *pki.Bundle
	BundlePEM []byte
}

// TrustDomain is the trust domain of the state's CA and bundle.
func (s *CAState) TrustDomain() spiffeid.TrustDomain { return s.CA.TrustDomain() }

// sameIntermediate reports whether s and o sign with the same certificate.
func (s *CAState) sameIntermediate(o *CAState) bool {
	return o != nil && s.CA.Certificate().Equal(o.CA.Certificate()) && bytes.Equal(s.CA.ChainPEM(), o.CA.ChainPEM())
}

// LoadCASecret loads a member's CA Secret (see CASecretName). The Secret
// is read from the hub and is not trusted to be well formed: every key
// must be present, the intermediate must be a valid CA of the trust
// domain whose key matches, the bundle must be non-empty and of the same
// trust domain, and an SVID signed by the intermediate must verify
// against the bundle (so a Secret whose intermediate chains to no
// trusted root is refused before any proxy gets a certificate peers
// would reject).
func LoadCASecret(sec *corev1.Secret) (*CAState, error) {
	where := fmt.Sprintf("Secret %s/%s", sec.Namespace, sec.Name)
	for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, CASecretBundleKey} {
		if len(bytes.TrimSpace(sec.Data[k])) == 0 {
			return nil, fmt.Errorf("%s: key %q is missing or empty", where, k)
		}
	}
	ca, err := pki.LoadCA(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("%s: load the intermediate CA from %s and %s: %w", where, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
	}
	if ca.IsRoot() {
		return nil, fmt.Errorf("%s: %s holds a self-signed root; the agent signs with its cluster's intermediate, and roots belong in %s only", where, corev1.TLSCertKey, CASecretBundleKey)
	}
	bundle, err := pki.ParseBundle(ca.TrustDomain(), sec.Data[CASecretBundleKey])
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", where, CASecretBundleKey, err)
	}
	if bundle.Len() == 0 {
		return nil, fmt.Errorf("%s: %s holds no root", where, CASecretBundleKey)
	}
	if err := probe(ca, bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &CAState{CA: ca, Bundle: bundle, BundlePEM: bundle.MarshalPEM()}, nil
}

// probeID is the SPIFFE ID path of the throwaway SVID that LoadCASecret
// verifies; it is never served.
const probeID = "/causeway/ca-probe"

// probe signs a throwaway SVID with ca and verifies it against bundle, as
// a peer would.
func probe(ca *pki.CA, bundle *pki.Bundle) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate probe key: %w", err)
	}
	id, err := spiffeid.FromPath(ca.TrustDomain(), probeID)
	if err != nil {
		return fmt.Errorf("probe ID: %w", err)
	}
	svid, err := ca.SignPublicKey(key.Public(), id, 0)
	if err != nil {
		return fmt.Errorf("sign with the intermediate CA: %w", err)
	}
	if _, err := pki.Verify(svid.Certificates, bundle); err != nil {
		return fmt.Errorf("an SVID signed by the intermediate CA does not verify against the trust bundle (does %s hold the root that issued it?): %w", CASecretBundleKey, err)
	}
	return nil
}

// Authority holds the member's current CA: the last Secret that loaded,
// and the error of the last one that did not. It is safe for concurrent
// use. Watchers learn of a new CA through Changed.
type Authority struct {
	mu      sync.Mutex
	state   *CAState
	err     error
	changed chan struct{}
}

// NewAuthority returns an Authority with no CA: not ready until Set.
func NewAuthority() *Authority {
	return &Authority{changed: make(chan struct{}), err: fmt.Errorf("%w: the member's CA Secret has not been read yet", ErrNotReady)}
}

// Current returns the current CA, or ErrNotReady (wrapped, with the
// reason) when none has loaded yet.
func (a *Authority) Current() (*CAState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		return nil, a.err
	}
	return a.state, nil
}

// Ready is nil once a CA has loaded: a readiness check.
func (a *Authority) Ready() error {
	_, err := a.Current()
	return err
}

// Err is the problem with the CA Secret as last read (missing, or
// refused while an older CA stays in use); nil when it loaded.
func (a *Authority) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Changed returns a channel that is closed at the next change of the
// current CA.
func (a *Authority) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// set makes s the current CA and reports whether it differs from the
// previous one (a new intermediate or a new bundle).
func (a *Authority) set(s *CAState) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = nil
	if old := a.state; old != nil && s.sameIntermediate(old) && bytes.Equal(s.BundlePEM, old.BundlePEM) {
		return false
	}
	a.state = s
	close(a.changed)
	a.changed = make(chan struct{})
	return true
}

// fail records why the Secret cannot be used; the current CA, if any,
// stays.
func (a *Authority) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		err = fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	a.err = err
}
