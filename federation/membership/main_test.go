package membership

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// testCluster is one test API server (etcd and kube-apiserver with the
// Causeway and MCS CRDs). envtest runs no controllers: a deleted namespace
// is never finalized.
type testCluster struct {
	name string
	env  *envtest.Environment
}

// config returns a copy of the cluster's admin connection settings.
func (c *testCluster) config() *rest.Config { return rest.CopyConfig(c.env.Config) }

// The three test clusters: a hub and two members.
var hubCluster, clusterA, clusterB *testCluster

// startTimeout bounds each API server's start. envtest's default, 20s, is
// too short on a loaded 2-core machine running several test packages.
const startTimeout = "2m"

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		// Fuzz targets need no API server, and every fuzzing worker
		// process would start three.
		os.Exit(m.Run())
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		_ = os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", startTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	start := time.Now()
	clusters, err := startClusters(ctx, "hub", "a", "b")
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start test clusters: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "test clusters hub, a, b (RBAC enforced) ready in %s\n", time.Since(start).Round(10*time.Millisecond))
	hubCluster, clusterA, clusterB = clusters[0], clusters[1], clusters[2]
	code := m.Run()
	if err := stopClusters(clusters); err != nil {
		fmt.Fprintf(os.Stderr, "stop test clusters: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// startClusters starts one API server per name, concurrently, and checks
// that each enforces RBAC; on error it stops what it started.
func startClusters(ctx context.Context, names ...string) ([]*testCluster, error) {
	clusters := make([]*testCluster, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			env, err := world.StartEnvtest()
			if err != nil {
				errs[i] = fmt.Errorf("cluster %s: %w", name, err)
				return
			}
			clusters[i] = &testCluster{name: name, env: env}
			if err := checkRBAC(ctx, env.Config); err != nil {
				errs[i] = fmt.Errorf("cluster %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, stopClusters(clusters))
	}
	return clusters, nil
}

func stopClusters(clusters []*testCluster) error {
	var errs []error
	for _, c := range clusters {
		if c != nil {
			if err := c.env.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stop cluster %s: %w", c.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkRBAC proves that the API server authorizes with RBAC (envtest's
// default, --authorization-mode=RBAC): a fresh ServiceAccount's token,
// bound to no role, must be refused a list of kube-system's Secrets.
func checkRBAC(ctx context.Context, admin *rest.Config) error {
	c, err := newClient(admin, "test")
	if err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "rbac-probe"}}
	if err := c.Create(ctx, sa); err != nil {
		return fmt.Errorf("create the RBAC probe ServiceAccount: %w", err)
	}
	defer func() { _ = c.Delete(context.WithoutCancel(ctx), sa) }()
	tr := &authenticationv1.TokenRequest{}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return fmt.Errorf("request a token for the RBAC probe: %w", err)
	}
	probeCfg := rest.AnonymousClientConfig(admin)
	probeCfg.BearerToken = tr.Status.Token
	probe, err := newClient(probeCfg, "test")
	if err != nil {
		return err
	}
	switch err := probe.List(ctx, &corev1.SecretList{}, client.InNamespace(metav1.NamespaceSystem)); {
	case err == nil:
		return errors.New("the API server does not enforce RBAC: a ServiceAccount bound to no role listed kube-system's Secrets")
	case !apierrors.IsForbidden(err):
		return fmt.Errorf("probe RBAC: listing kube-system's Secrets as a ServiceAccount bound to no role: want Forbidden, got: %w", err)
	}
	return nil
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// clientFor returns an admin client for a test cluster.
func clientFor(t *testing.T, c *testCluster) client.Client {
	t.Helper()
	cl, err := newClient(c.config(), c.name)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
