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
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Workload certificate lifetimes: the flag's default and the bounds of
// both the flag and MeshConfig's workloadCertTTL (the CRD enforces the
// same bounds).
const (
	DefaultWorkloadCertTTL = pki.DefaultWorkloadTTL
	MinWorkloadCertTTL     = 10 * time.Minute
	MaxWorkloadCertTTL     = 90 * 24 * time.Hour
)

// CheckTTL reports whether ttl is an acceptable workload certificate
// lifetime.
func CheckTTL(ttl time.Duration) error {
	if ttl < MinWorkloadCertTTL || ttl > MaxWorkloadCertTTL {
		return fmt.Errorf("workload certificate TTL %s is outside %s to %s", ttl, MinWorkloadCertTTL, MaxWorkloadCertTTL)
	}
	return nil
}

// Issued is an SVID with its private key, as served over SDS.
type Issued struct {
	SVID *pki.SVID
	// Key is the SVID's private key; KeyPEM is it as PKCS #8 PEM.
	Key    *ecdsa.PrivateKey
	KeyPEM []byte
	// CA is the state that signed it.
	CA *CAState
}

// Issuer makes keys and signs SVIDs with the Authority's current CA. The
// agent generates keys itself (ECDSA P-256) rather than signing CSRs:
// SDS delivers the private key with the certificate, so a proxy needs
// no key of its own, and the agent never trusts workload-made requests.
type Issuer struct {
	// Authority supplies the CA.
	Authority *Authority
	// Clock is the time source for signing; the real clock when nil.
	Clock clock.PassiveClock
	// DefaultTTL is the lifetime of workload certificates when the
	// MeshConfig sets none; DefaultWorkloadCertTTL when zero.
	DefaultTTL time.Duration

	// meshTTL is the MeshConfig's workloadCertTTL, 0 when unset; kept by
	// the controller SetupWithManager adds, so that signing never waits
	// on the API server.
	meshTTL atomic.Int64
}

// TTL is the lifetime of the next workload certificate: the MeshConfig's
// workloadCertTTL when it is set and sane, DefaultTTL otherwise.
func (is *Issuer) TTL() time.Duration {
	if ttl := time.Duration(is.meshTTL.Load()); ttl != 0 {
		return ttl
	}
	if is.DefaultTTL == 0 {
		return DefaultWorkloadCertTTL
	}
	return is.DefaultTTL
}

// SetupWithManager follows the cluster's MeshConfig for TTL.
func (is *Issuer) SetupWithManager(mgr ctrl.Manager) error {
	r := &meshConfigReconciler{client: mgr.GetClient(), issuer: is}
	return ctrl.NewControllerManagedBy(mgr).
		Named("identity-meshconfig").
		For(&causewayv1alpha1.MeshConfig{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == causewayv1alpha1.MeshConfigName
		}))).
		Complete(r)
}

// meshConfigReconciler copies the MeshConfig's workloadCertTTL into the
// Issuer.
type meshConfigReconciler struct {
	client client.Reader
	issuer *Issuer
}

func (r *meshConfigReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var mc causewayv1alpha1.MeshConfig
	err := r.client.Get(ctx, req.NamespacedName, &mc)
	switch {
	case apierrors.IsNotFound(err):
		r.issuer.meshTTL.Store(0)
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("get MeshConfig %s: %w", req.Name, err)
	}
	var ttl time.Duration
	if mc.Spec.WorkloadCertTTL != nil {
		ttl = mc.Spec.WorkloadCertTTL.Duration
		if err := CheckTTL(ttl); err != nil {
			// The CRD refuses such values; an older CRD may not.
			ctrl.LoggerFrom(ctx).Error(err, "ignoring the MeshConfig's workloadCertTTL", "defaultTTL", r.issuer.TTL())
			ttl = 0
		}
	}
	if old := time.Duration(r.issuer.meshTTL.Swap(int64(ttl))); old != ttl && ttl != 0 {
		ctrl.LoggerFrom(ctx).Info("workload certificate lifetime set by the MeshConfig", "ttl", ttl)
	}
	return reconcile.Result{}, nil
}

// Issue makes a P-256 key and signs an SVID for id valid for ttl with the
// current CA.
func (is *Issuer) Issue(id spiffeid.ID, ttl time.Duration) (*Issued, error) {
	state, err := is.Authority.Current()
	if err != nil {
		return nil, err
	}
	return issueWith(state, is.clock(), id, ttl)
}

func (is *Issuer) clock() clock.PassiveClock {
	if is.Clock == nil {
		return clock.RealClock{}
	}
	return is.Clock
}

func issueWith(state *CAState, clk clock.PassiveClock, id spiffeid.ID, ttl time.Duration) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue SVID for %s: generate key: %w", id, err)
	}
	svid, err := state.CA.WithClock(clk).SignPublicKey(key.Public(), id, ttl)
	if err != nil {
		return nil, fmt.Errorf("issue SVID: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue SVID for %s: marshal key: %w", id, err)
	}
	return &Issued{SVID: svid, Key: key, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), CA: state}, nil
}
