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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// restConfig reaches the package's API server, started once in TestMain.
var restConfig *rest.Config

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// Fuzz targets need no API server, and every fuzzing worker
		// process would start its own.
		os.Exit(m.Run())
	}
	env, err := world.StartEnvtest()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		os.Exit(1)
	}
	restConfig = env.Config
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

var tdLocal = spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)

// writeCounter counts the writes a client makes.
type writeCounter struct{ n atomic.Int32 }

func (w *writeCounter) wrap(c client.WithWatch) client.WithWatch {
	count := func() { w.n.Add(1) }
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, o, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			count()
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			count()
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
	})
}

func directClient(t testing.TB) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(restConfig, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func create(ctx context.Context, t testing.TB, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// addMember creates a MemberCluster and its hub namespace, as a join does,
// and deletes the MemberCluster when the test ends (envtest never finishes
// deleting a namespace).
func addMember(ctx context.Context, t testing.TB, c client.Client, name string) {
	t.Helper()
	create(ctx, t, c, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}})
	create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(name)}})
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
}

func ensureNamespace(ctx context.Context, t testing.TB, c client.Client, ns string) {
	t.Helper()
	create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
}

func memberSecretKey(member string) types.NamespacedName {
	return types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(member), Name: MemberCASecretName}
}

func getSecret(ctx context.Context, t testing.TB, c client.Client, key types.NamespacedName) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(ctx, key, &s); err != nil {
		t.Fatalf("get Secret %s: %v", key, err)
	}
	return &s
}

func getConfigMap(ctx context.Context, t testing.TB, c client.Client, key types.NamespacedName) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(ctx, key, &cm); err != nil {
		t.Fatalf("get ConfigMap %s: %v", key, err)
	}
	return &cm
}

// condition returns the member's ConditionIntermediateCA (zero if none).
func condition(ctx context.Context, t testing.TB, c client.Client, member string) metav1.Condition {
	t.Helper()
	var mc causewayv1alpha1.MemberCluster
	if err := c.Get(ctx, types.NamespacedName{Name: member}, &mc); err != nil {
		t.Fatalf("get member %s: %v", member, err)
	}
	if cond := meta.FindStatusCondition(mc.Status.Conditions, ConditionIntermediateCA); cond != nil {
		return *cond
	}
	return metav1.Condition{}
}

func mustCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCertsPEM(data)
	if err != nil {
		t.Fatalf("parse certificates: %v", err)
	}
	return certs
}

// memberCA loads a member's intermediate from its Secret, as its agent
// would.
func memberCA(t testing.TB, s *corev1.Secret) *pki.CA {
	t.Helper()
	ca, err := pki.LoadCA(s.Data[KeyCertificate], s.Data[KeyPrivateKey])
	if err != nil {
		t.Fatalf("load the member's CA from Secret %s/%s: %v", s.Namespace, s.Name, err)
	}
	return ca
}

// bundleOf parses PEM roots as a bundle of td.
func bundleOf(t testing.TB, td spiffeid.TrustDomain, data []byte) *pki.Bundle {
	t.Helper()
	b, err := pki.ParseBundle(td, data)
	if err != nil {
		t.Fatalf("parse bundle: %v", err)
	}
	return b
}

// signWorkload signs an SVID for a workload of ca's trust domain.
func signWorkload(t testing.TB, ca *pki.CA, ttl time.Duration) *pki.SVID {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := ca.SignPublicKey(key.Public(), spiffeid.RequireFromPath(ca.TrustDomain(), "/ns/shop/sa/web"), ttl)
	if err != nil {
		t.Fatalf("sign SVID: %v", err)
	}
	return svid
}

// verifyAt verifies svid against bundle at instant at.
func verifyAt(svid *pki.SVID, bundle *pki.Bundle, at time.Time) error {
	_, err := pki.Verify(svid.Certificates, bundle, x509svid.WithTime(at))
	return err
}

// tlsSecret is a kubernetes.io/tls Secret.
func tlsSecret(key types.NamespacedName, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}
}

func caSecretData(t testing.TB, ca *pki.CA, extra ...[]byte) map[string][]byte {
	t.Helper()
	key, err := ca.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	crt := ca.CertificatePEM()
	if !ca.IsRoot() {
		crt = ca.ChainPEM()
	}
	data := map[string][]byte{KeyCertificate: crt, KeyPrivateKey: key}
	if len(extra) > 0 {
		data[KeyCA] = extra[0]
	}
	return data
}

// testCA is a CA certificate made by hand, for shapes pki does not make:
// a corporate root without a SPIFFE ID, a CA of path length 0.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type caShape struct {
	cn         string
	td         *spiffeid.TrustDomain // SPIFFE ID; nil for none
	maxPathLen int                   // -1 for no limit
	notBefore  time.Time
	notAfter   time.Time
}

func makeCA(t testing.TB, shape caShape, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: shape.cn},
		NotBefore:             shape.notBefore,
		NotAfter:              shape.notAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            shape.maxPathLen,
		MaxPathLenZero:        shape.maxPathLen == 0,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if shape.td != nil {
		tmpl.URIs = []*url.URL{shape.td.ID().URL()}
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func (c *testCA) certPEM() []byte { return encodeCertsPEM(c.cert) }

func (c *testCA) keyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
