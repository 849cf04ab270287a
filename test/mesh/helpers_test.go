package mesh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/gateway/proxy"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// td is the mesh's trust domain.
var td = spiffeid.RequireTrustDomainFromString("mesh.example")

// agent is the identity half of a member's agent, on the real clock:
// the CA reconciler (the hub is the same API server), the Issuer, the
// TokenReview authenticator and the SDS server on a loopback port, which
// also serves the agent's xDS server (controllers/xds) to the
// authenticated proxies, as the agent does. Tests give the xDS server its
// translation (Update) and pods (SetPodSource) themselves.
type agent struct {
	member, bundleNS, addr string
	xds                    *xds.Server
}

func startAgent(t *testing.T, member string) *agent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{member: member, bundleNS: newNamespace(ctx, t, "bundle-")}
	ensureNamespace(ctx, t, causewayv1alpha1.MemberNamespace(member))
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 sch,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{a.bundleNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.TrustBundleConfigMap),
			},
		}},
	})
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	hub, err := cluster.New(restConfig, func(o *cluster.Options) {
		o.Scheme = sch
		o.Cache.ByObject = map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{causewayv1alpha1.MemberNamespace(member): {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.CASecretName),
			},
		}
	})
	if err != nil {
		t.Fatalf("create hub cluster: %v", err)
	}
	if err := mgr.Add(hub); err != nil {
		t.Fatal(err)
	}
	authority := identity.NewAuthority()
	if err := (&identity.CAReconciler{Hub: hub.GetClient(), Member: mgr.GetClient(), ClusterName: member, BundleNamespace: a.bundleNS, Authority: authority}).SetupWithManager(mgr, hub); err != nil {
		t.Fatalf("set up CA reconciler: %v", err)
	}
	issuer := &identity.Issuer{Authority: authority}
	if err := issuer.SetupWithManager(mgr); err != nil {
		t.Fatalf("set up MeshConfig controller: %v", err)
	}
	if a.xds, err = xds.NewServer(xds.Options{}); err != nil {
		t.Fatal(err)
	}
	sds, err := identity.NewSDSServer(identity.SDSOptions{
		Authority: authority, Issuer: issuer, ClusterName: member,
		Authenticator: &identity.Authenticator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()},
		Register:      a.xds.Register,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = lis.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- mgr.Start(ctx) }()
	go func() { errs <- sds.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("agent: %v", err)
			}
		}
	})
	return a
}

// writeCA writes the member's CA Secret as the hub does: the
// intermediate and its chain, its key, and the trust bundle.
func (a *agent) writeCA(t *testing.T, inter *pki.CA, roots ...*pki.CA) {
	t.Helper()
	key, err := inter.PrivateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, r := range roots {
		bundle = append(bundle, r.CertificatePEM()...)
	}
	data := map[string][]byte{corev1.TLSCertKey: inter.ChainPEM(), corev1.TLSPrivateKeyKey: key, identity.CASecretBundleKey: bundle}
	ctx := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(a.member), Name: identity.CASecretName}}
	err = k8s.Get(ctx, client.ObjectKeyFromObject(sec), sec)
	switch {
	case apierrors.IsNotFound(err):
		sec.Type, sec.Data = corev1.SecretTypeTLS, data
		err = k8s.Create(ctx, sec)
	case err == nil:
		sec.Data = data
		err = k8s.Update(ctx, sec)
	}
	if err != nil {
		t.Fatalf("write the CA Secret: %v", err)
	}
}

// syncBundle waits until the agent publishes a trust bundle of n roots
// and writes it to path, as the kubelet updates the mounted ConfigMap.
func (a *agent) syncBundle(t *testing.T, path string, n int) {
	t.Helper()
	eventually(t, "the agent publishes a bundle of "+fmt.Sprint(n)+" roots", func() error {
		var cm corev1.ConfigMap
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: a.bundleNS, Name: identity.TrustBundleConfigMap}, &cm); err != nil {
			return err
		}
		b, err := pki.ParseBundle(td, []byte(cm.Data[identity.TrustBundleKey]))
		if err != nil {
			return err
		}
		if b.Len() != n {
			return fmt.Errorf("%d roots", b.Len())
		}
		return os.WriteFile(path, []byte(cm.Data[identity.TrustBundleKey]), 0o644)
	})
}

func newCA(t *testing.T, member string) (root, inter *pki.CA) {
	t.Helper()
	root, err := pki.NewRoot(td, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err = root.NewIntermediate(member, 0)
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

// newCAFrom makes a new intermediate of root.
func newCAFrom(t *testing.T, root *pki.CA, member string) (*pki.CA, *pki.CA) {
	t.Helper()
	inter, err := root.NewIntermediate(member, 0)
	if err != nil {
		t.Fatal(err)
	}
	return root, inter
}

// workload is a ServiceAccount, a pod running as it and the pod-bound
// token (audience "causeway") in a file, as the kubelet projects it.
type workload struct {
	ns, sa    string
	pod       *corev1.Pod
	tokenFile string
}

func newWorkload(t *testing.T, ns, sa string, labels map[string]string) workload {
	t.Helper()
	ctx := context.Background()
	ensureNamespace(ctx, t, ns)
	if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: sa + "-", Labels: labels},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "causeway.dev/echo"}}},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{identity.DefaultAudience}, ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	out, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token of %s/%s: %v", ns, sa, err)
	}
	w := workload{ns: ns, sa: sa, pod: pod, tokenFile: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(w.tokenFile, []byte(out.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w workload) id() spiffeid.ID { return spiffeid.RequireFromSegments(td, "ns", w.ns, "sa", w.sa) }

func newNamespace(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func ensureNamespace(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// startProxy runs causeway-proxy (proxy.Serve) until the test ends and
// returns its admin address once it is ready.
func startProxy(t *testing.T, o proxy.Options) string {
	t.Helper()
	admin := make(chan string, 1)
	o.Ready = func(a string) { admin <- a }
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proxy.Serve(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy %s: %v", o.NodeID, err)
		}
	})
	var addr string
	select {
	case addr = <-admin:
	case err := <-done:
		t.Fatalf("proxy %s: %v", o.NodeID, err)
	}
	eventually(t, o.NodeID+" ready", func() error {
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return addr
}

// secrets returns the secrets a proxy's config dump shows, by name.
func secrets(t *testing.T, admin string) map[string]proxy.SecretStatus {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Client struct {
			Secrets []proxy.SecretStatus `json:"secrets"`
		} `json:"xdsClient"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("config dump: %v", err)
	}
	out := map[string]proxy.SecretStatus{}
	for _, s := range d.Client.Secrets {
		out[s.Name] = s
	}
	return out
}

// svidSerial is the serial of the SVID a proxy's config dump shows.
func svidSerial(t *testing.T, admin string) string {
	t.Helper()
	return secrets(t, admin)[proxy.SecretDefault].Serial
}

// rootCount is how many roots the proxy's trust bundle holds.
func rootCount(t *testing.T, admin string) int {
	t.Helper()
	return secrets(t, admin)[proxy.SecretRootCA].Roots
}

// eventually retries f for up to 30 s.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
