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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// TestHubIssuesIntermediatesUnderCertManagerRoot is the hub's
// --root-ca-issuer path end to end: trust.Setup with NewSourceFunc (what
// causeway-hub wires) in a manager against the API server where
// cert-manager's own controllers run; a member gets an intermediate CA
// whose chain goes through the root cert-manager's CA issuer signed, and
// whose ca.crt holds the organisation's CA, so a workload SVID the member
// signs verifies against it.
func TestHubIssuesIntermediatesUnderCertManagerRoot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := trust.Options{
		TrustDomain: td.Name(),
		NewSource:   NewSourceFunc(cmmeta.IssuerReference{Kind: "Issuer", Name: orgIssuer}),
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: opts.CacheByObject()},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.Setup(mgr, opts); err != nil {
		t.Fatalf("trust.Setup with the cert-manager source: %v", err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	c, err := client.New(env.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	const member = "cm-member"
	for _, o := range []client.Object{
		&causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: member}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(member)}},
	} {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: member}})
	})

	var lastErr error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if lastErr = checkMemberCA(ctx, c, member); lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member's intermediate under the cert-manager root: %v", lastErr)
		}
	}
}

// checkMemberCA checks the member's CA Secret: its intermediate chains
// through a CA the organisation's CA signed, and ca.crt trusts the
// organisation's CA, against which a workload SVID verifies.
func checkMemberCA(ctx context.Context, c client.Client, member string) error {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.MemberNamespace(member), Name: trust.MemberCASecretName}, &s); err != nil {
		return err
	}
	ca, err := pki.LoadCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("load the member's CA: %w", err)
	}
	chain := ca.Chain()
	if len(chain) == 0 {
		return errors.New("the intermediate has no chain: not issued under the cert-manager root")
	}
	if err := chain[len(chain)-1].CheckSignatureFrom(orgCA.Certificate); err != nil {
		return fmt.Errorf("the intermediate's chain does not end at a CA the organisation's CA signed: %w", err)
	}
	bundle, err := pki.ParseBundle(td, s.Data[trust.KeyCA])
	if err != nil {
		return fmt.Errorf("ca.crt: %w", err)
	}
	if !bundle.Contains(orgCA.Certificate) {
		return errors.New("ca.crt does not hold the organisation's CA")
	}
	want := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	svid, err := ca.SignPublicKey(key.Public(), want, time.Hour)
	if err != nil {
		return fmt.Errorf("the member signs an SVID: %w", err)
	}
	id, err := pki.Verify(svid.Certificates, bundle)
	if err != nil {
		return fmt.Errorf("the SVID does not verify against ca.crt: %w", err)
	}
	if id != want {
		return fmt.Errorf("verified %s, want %s", id, want)
	}
	return nil
}
