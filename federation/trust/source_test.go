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
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

func TestGeneratedRootSource(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, causewayv1alpha1.SystemNamespace)
	clk := clocktesting.NewFakeClock(time.Now())
	key := func(name string) types.NamespacedName {
		return types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: name}
	}

	t.Run("a cache that has not seen the Secret yet: the existing root is used", func(t *testing.T) {
		existing, err := pki.NewRoot(tdLocal, pki.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		create(ctx, t, admin, tlsSecret(key("src-lag"), caSecretData(t, existing)))
		lagging := interceptor.NewClient(directClient(t), interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Secret); ok {
					return apierrors.NewNotFound(corev1.Resource("secrets"), k.Name)
				}
				return c.Get(ctx, k, obj, opts...)
			},
		})
		g := &GeneratedRoot{Client: lagging, APIReader: admin, Secret: key("src-lag"), Clock: clk}
		ca, anchors, err := g.Root(ctx, tdLocal)
		if err != nil {
			t.Fatalf("Root: %v", err)
		}
		if !ca.Certificate().Equal(existing.Certificate()) || len(anchors) != 1 || !anchors[0].Equal(existing.Certificate()) {
			t.Error("Root did not return the existing root")
		}
	})

	t.Run("a damaged root is replaced", func(t *testing.T) {
		existing, err := pki.NewRoot(tdLocal, pki.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data := caSecretData(t, existing)
		other, err := pki.NewRoot(tdLocal, pki.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data[KeyPrivateKey] = caSecretData(t, other)[KeyPrivateKey]
		create(ctx, t, admin, tlsSecret(key("src-damaged"), data))
		g := &GeneratedRoot{Client: directClient(t), Secret: key("src-damaged"), Clock: clk}
		ca, _, err := g.Root(ctx, tdLocal)
		if err != nil {
			t.Fatalf("Root: %v", err)
		}
		stored := getSecret(ctx, t, admin, key("src-damaged"))
		if ca.Certificate().Equal(existing.Certificate()) || !mustCerts(t, stored.Data[KeyCertificate])[0].Equal(ca.Certificate()) {
			t.Error("the damaged root was not replaced in its Secret")
		}
		if _, err := pki.LoadCA(stored.Data[KeyCertificate], stored.Data[KeyPrivateKey]); err != nil {
			t.Errorf("the stored replacement: %v", err)
		}
	})

	t.Run("a root from the future is neither used nor replaced", func(t *testing.T) {
		future, err := pki.NewRoot(tdLocal, pki.RootOptions{Clock: clocktesting.NewFakePassiveClock(time.Now().Add(time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		create(ctx, t, admin, tlsSecret(key("src-future"), caSecretData(t, future)))
		before := getSecret(ctx, t, admin, key("src-future")).ResourceVersion
		g := &GeneratedRoot{Client: directClient(t), Secret: key("src-future"), Clock: clk}
		if _, _, err := g.Root(ctx, tdLocal); !errors.Is(err, pki.ErrNotYetValid) {
			t.Errorf("Root = %v, want ErrNotYetValid", err)
		}
		if after := getSecret(ctx, t, admin, key("src-future")).ResourceVersion; after != before {
			t.Error("the Secret was written")
		}
	})

	t.Run("a rotation is done once per annotation value", func(t *testing.T) {
		w := &writeCounter{}
		g := &GeneratedRoot{Client: w.wrap(directClient(t)), Secret: key("src-rotate"), Clock: clk}
		first, _, err := g.Root(ctx, tdLocal)
		if err != nil {
			t.Fatal(err)
		}
		s := getSecret(ctx, t, admin, key("src-rotate"))
		s.Annotations = map[string]string{AnnotationRotate: "one"}
		if err := admin.Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		second, _, err := g.Root(ctx, tdLocal)
		if err != nil {
			t.Fatal(err)
		}
		third, _, err := g.Root(ctx, tdLocal)
		if err != nil {
			t.Fatal(err)
		}
		if first.Certificate().Equal(second.Certificate()) || !second.Certificate().Equal(third.Certificate()) {
			t.Error("want one new root for one annotation value")
		}
		if n := w.n.Load(); n != 2 {
			t.Errorf("%d writes, want 2 (create, rotate)", n)
		}
	})
}

func TestSecretRootAnchors(t *testing.T) {
	ctx := t.Context()
	admin := directClient(t)
	ensureNamespace(ctx, t, admin, "anchors")
	now := time.Now()
	corpRoot := makeCA(t, caShape{cn: "corp root", maxPathLen: -1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(20, 0, 0)}, nil)
	corpMid := makeCA(t, caShape{cn: "corp issuing", maxPathLen: -1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(10, 0, 0)}, corpRoot)
	meshCA := makeCA(t, caShape{cn: "mesh", td: &tdLocal, maxPathLen: 1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(5, 0, 0)}, corpMid)

	tests := map[string]struct {
		crt, ca   []byte
		wantChain int // certificates in the CA's chain
		wantErr   string
	}{
		"the chain in tls.crt, the root in ca.crt": {
			crt: append(meshCA.certPEM(), corpMid.certPEM()...), ca: corpRoot.certPEM(), wantChain: 2,
		},
		"everything in ca.crt": {
			crt: meshCA.certPEM(), ca: append(corpMid.certPEM(), corpRoot.certPEM()...), wantChain: 2,
		},
		"everything in tls.crt": {
			crt: append(append(meshCA.certPEM(), corpMid.certPEM()...), corpRoot.certPEM()...), wantChain: 2,
		},
		"no root": {
			crt: append(meshCA.certPEM(), corpMid.certPEM()...), wantErr: "neither tls.crt nor ca.crt holds the root",
		},
		"a wrong root": {
			crt: append(meshCA.certPEM(), corpMid.certPEM()...), ca: makeCA(t, caShape{cn: "corp root", maxPathLen: -1, notBefore: now.Add(-time.Hour), notAfter: now.AddDate(1, 0, 0)}, nil).certPEM(),
			wantErr: `was not issued by "CN=corp root"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k := types.NamespacedName{Namespace: "anchors", Name: strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ",", "")}
			data := map[string][]byte{KeyCertificate: tc.crt, KeyPrivateKey: meshCA.keyPEM(t)}
			if tc.ca != nil {
				data[KeyCA] = tc.ca
			}
			create(ctx, t, admin, tlsSecret(k, data))
			ca, anchors, err := (&SecretRoot{Reader: admin, Secret: k}).Root(ctx, tdLocal)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrRootInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Root = %v, want ErrRootInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Root: %v", err)
			}
			if len(anchors) != 1 || !anchors[0].Equal(corpRoot.cert) || len(ca.Chain()) != tc.wantChain {
				t.Errorf("%d anchors (the corporate root: %v), chain of %d; want the corporate root and a chain of %d",
					len(anchors), len(anchors) == 1 && anchors[0].Equal(corpRoot.cert), len(ca.Chain()), tc.wantChain)
			}
			if err := checkRoot(ca, anchors, tdLocal, time.Now()); err != nil {
				t.Errorf("checkRoot: %v", err)
			}
		})
	}
}
