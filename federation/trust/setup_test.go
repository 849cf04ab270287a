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
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/membership"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// startManager runs Setup(o) in a manager over the test API server until
// the test ends.
func startManager(t *testing.T, o Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: o.CacheByObject()},
		// Tests may start several managers in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, o); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// agentClient is a client with the hub credentials a join stored in the
// member.
func agentClient(ctx context.Context, t *testing.T, member client.Client) client.Client {
	t.Helper()
	s := getSecret(ctx, t, member, types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret})
	cfg, err := clientcmd.RESTConfigFromKubeConfig(s.Data[causewayv1alpha1.HubCredentialsKey])
	if err != nil {
		t.Fatalf("the member's hub kubeconfig: %v", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validCA checks that a member's CA Secret holds an intermediate its agent
// can sign with, whose SVIDs verify against its ca.crt, and that ca.crt is
// the published bundle.
func validCA(ctx context.Context, c client.Client, member string) error {
	var s corev1.Secret
	if err := c.Get(ctx, memberSecretKey(member), &s); err != nil {
		return err
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: BundleConfigMapName}, &cm); err != nil {
		return err
	}
	if !bytes.Equal(s.Data[KeyCA], []byte(cm.Data[BundleKey])) {
		return errors.New("ca.crt is not the published bundle")
	}
	roots, err := parseCertsPEM(s.Data[KeyCA])
	if err != nil {
		return fmt.Errorf("ca.crt: %w", err)
	}
	ca, err := pki.LoadCA(s.Data[KeyCertificate], s.Data[KeyPrivateKey])
	if err != nil {
		return err
	}
	chain := ca.Chain()
	if _, err := chain[0].Verify(verifyOptions(roots, chain[1:], time.Now())); err != nil {
		return err
	}
	if cn := chain[0].Subject.CommonName; cn != member || !chain[0].MaxPathLenZero {
		return fmt.Errorf("intermediate %q, path length 0: %v", cn, chain[0].MaxPathLenZero)
	}
	var mc causewayv1alpha1.MemberCluster
	if err := c.Get(ctx, types.NamespacedName{Name: member}, &mc); err != nil {
		return err
	}
	for _, cond := range mc.Status.Conditions {
		if cond.Type == ConditionIntermediateCA && cond.Status == metav1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("member %s: no %s=True condition", member, ConditionIntermediateCA)
}

// TestSetupWithJoin runs the reconcilers in a manager as the hub does, and
// joins a member with `causeway join`'s code: the member's agent reads its
// own intermediate with its join credentials, and nothing of another
// member or of the hub; damage is healed through the watches; a rotation
// reaches the member.
func TestSetupWithJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin := directClient(t)
	startManager(t, Options{})

	// The hub is also the member: one API server.
	if err := membership.Join(ctx, membership.JoinOptions{Name: "east", Hub: restConfig, Member: restConfig, HubServer: restConfig.Host}); err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(func() { _ = membership.Unjoin(context.Background(), restConfig, restConfig, "east") })
	addMember(ctx, t, admin, "west")
	for _, m := range []string{"east", "west"} {
		eventually(t, "member "+m+" holds a valid intermediate", func() error { return validCA(ctx, admin, m) })
	}

	step(t, "the agent reads its own CA Secret and nothing else", func(t *testing.T) {
		agent := agentClient(ctx, t, admin)
		var own corev1.Secret
		if err := agent.Get(ctx, memberSecretKey("east"), &own); err != nil {
			t.Fatalf("the agent reads its CA Secret: %v", err)
		}
		svid := signWorkload(t, memberCA(t, &own), 0)
		if err := verifyAt(svid, bundleOf(t, tdLocal, own.Data[KeyCA]), time.Now()); err != nil {
			t.Errorf("an SVID the agent signs does not verify against its ca.crt: %v", err)
		}
		for what, err := range map[string]error{
			"read west's CA Secret":    agent.Get(ctx, memberSecretKey("west"), &corev1.Secret{}),
			"read the root CA Secret":  agent.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: RootSecretName}, &corev1.Secret{}),
			"list the hub's Secrets":   agent.List(ctx, &corev1.SecretList{}, client.InNamespace(causewayv1alpha1.SystemNamespace)),
			"write its own CA Secret":  agent.Update(ctx, own.DeepCopy()),
			"delete its own CA Secret": agent.Delete(ctx, own.DeepCopy()),
		} {
			if !apierrors.IsForbidden(err) {
				t.Errorf("the agent tries to %s: got %v, want Forbidden", what, err)
			}
		}
	})

	step(t, "a deleted or damaged CA Secret is healed", func(t *testing.T) {
		old := getSecret(ctx, t, admin, memberSecretKey("east"))
		if err := admin.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		eventually(t, "east's CA Secret is back", func() error {
			if err := validCA(ctx, admin, "east"); err != nil {
				return err
			}
			if s := getSecret(ctx, t, admin, memberSecretKey("east")); s.UID == old.UID {
				return errors.New("still the old Secret")
			}
			return nil
		})
		s := getSecret(ctx, t, admin, memberSecretKey("east"))
		s.Data[KeyCA] = []byte("tampered")
		if err := admin.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		eventually(t, "east's ca.crt is restored", func() error { return validCA(ctx, admin, "east") })
	})

	step(t, "a rotation reaches the members", func(t *testing.T) {
		key := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: RootSecretName}
		rs := getSecret(ctx, t, admin, key)
		oldRoot := mustCerts(t, rs.Data[KeyCertificate])[0]
		metav1.SetMetaDataAnnotation(&rs.ObjectMeta, AnnotationRotate, "now")
		if err := admin.Update(ctx, rs); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"east", "west"} {
			eventually(t, m+" trusts both roots and holds an intermediate of the new one", func() error {
				if err := validCA(ctx, admin, m); err != nil {
					return err
				}
				s := getSecret(ctx, t, admin, memberSecretKey(m))
				roots := mustCerts(t, s.Data[KeyCA])
				newRoot := mustCerts(t, getSecret(ctx, t, admin, key).Data[KeyCertificate])[0]
				switch {
				case len(roots) != 2 || !roots[0].Equal(newRoot) || !roots[1].Equal(oldRoot):
					return fmt.Errorf("ca.crt holds %d roots", len(roots))
				case !strings.EqualFold(s.Annotations[AnnotationIssuerSHA256], Fingerprint(newRoot)):
					return errors.New("the intermediate is not from the new root yet")
				}
				return nil
			})
		}
	})
}

func TestOptions(t *testing.T) {
	tests := map[string]struct {
		o       Options
		wantErr string
	}{
		"defaults":                {},
		"a trust domain":          {o: Options{TrustDomain: "mesh.example.com"}},
		"an invalid trust domain": {o: Options{TrustDomain: "Mesh Example"}, wantErr: `invalid trust domain "Mesh Example"`},
		"a trust domain with a scheme": {
			o: Options{TrustDomain: "spiffe://mesh.example.com/x"}, wantErr: "invalid trust domain",
		},
		"a long intermediate":  {o: Options{IntermediateTTL: 400 * 24 * time.Hour}, wantErr: "intermediate CA lifetime 9600h0m0s is not between 1h and 8760h0m0s"},
		"a short intermediate": {o: Options{IntermediateTTL: time.Minute}, wantErr: "is not between 1h"},
		"a short root":         {o: Options{RootTTL: time.Minute}, wantErr: "root CA lifetime 1m0s is shorter than 1h"},
		"a negative overlap":   {o: Options{Overlap: -time.Second}, wantErr: "negative root rotation overlap"},
		"a negative delay":     {o: Options{PropagationDelay: -time.Second}, wantErr: "negative"},
		"two root sources": {
			o:       Options{RootSecret: types.NamespacedName{Namespace: "a", Name: "b"}, NewSource: func(ctrl.Manager) (RootSource, error) { return nil, nil }},
			wantErr: "choose one",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseSecretRef(t *testing.T) {
	tests := map[string]struct {
		want    types.NamespacedName
		wantErr string
	}{
		"security/corp-root": {want: types.NamespacedName{Namespace: "security", Name: "corp-root"}},
		"a/b.c":              {want: types.NamespacedName{Namespace: "a", Name: "b.c"}},
		"corp-root":          {wantErr: "want <namespace>/<name>"},
		"/corp-root":         {wantErr: "namespace"},
		"security/":          {wantErr: "name"},
		"Sec/x":              {wantErr: "namespace"},
		"a/b/c":              {wantErr: "name"},
	}
	for in, tc := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := ParseSecretRef(in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseSecretRef(%q) = %v, %v; want an error containing %q", in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseSecretRef(%q) = %v, %v; want %v", in, got, err, tc.want)
			}
		})
	}
}

// TestSetupWithUserRoot runs the manager with a root Secret in a namespace
// of its own, which the cache watches by name: replacing the Secret rotates
// the root.
func TestSetupWithUserRoot(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, "vault")
	key := types.NamespacedName{Namespace: "vault", Name: "mesh-root"}
	first, err := pki.NewRoot(tdLocal, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create(ctx, t, admin, tlsSecret(key, caSecretData(t, first)))
	startManager(t, Options{RootSecret: key})
	addMember(ctx, t, admin, "north")
	// issuedBy: north's intermediate is from root, the first of ca.crt,
	// which also holds trusted. (The package's earlier tests left
	// generated roots retiring in the default bundle.)
	issuedBy := func(root *pki.CA, trusted ...*pki.CA) func() error {
		return func() error {
			if err := validCA(ctx, admin, "north"); err != nil {
				return err
			}
			s := getSecret(ctx, t, admin, memberSecretKey("north"))
			roots := mustCerts(t, s.Data[KeyCA])
			if !roots[0].Equal(root.Certificate()) {
				return errors.New("the expected root is not the first of ca.crt")
			}
			for _, r := range trusted {
				if !slices.ContainsFunc(roots, r.Certificate().Equal) {
					return errors.New("ca.crt lacks a root it should still trust")
				}
			}
			if s.Annotations[AnnotationIssuerSHA256] != Fingerprint(root.Certificate()) {
				return errors.New("not issued by the expected root")
			}
			return nil
		}
	}
	eventually(t, "north's intermediate from the user's root", issuedBy(first))

	second, err := pki.NewRoot(tdLocal, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := getSecret(ctx, t, admin, key)
	s.Data = caSecretData(t, second)
	if err := admin.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "north's intermediate from the replaced root, trusting both", issuedBy(second, first))
}
