package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
	"sigs.k8s.io/yaml"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/membership"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// testCluster is one test API server (etcd and kube-apiserver with the
// Causeway and MCS CRDs).
type testCluster struct {
	name string
	env  *envtest.Environment
}

// The CLI tests' clusters (contexts hub, a and b of testKubeconfig) start on
// first use, so tests that need none (the demo's, bad input) do not wait for
// them.
var (
	clustersOnce   sync.Once
	testClusters   []*testCluster
	testKubeconfig string
	clustersErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	var errs []error
	for _, c := range testClusters {
		if c != nil {
			errs = append(errs, c.env.Stop())
		}
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "stop test clusters: %v\n", err)
		code = 1
	}
	if testKubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(testKubeconfig))
	}
	os.Exit(code)
}

// startClusters returns the path of a kubeconfig with admin contexts hub,
// a and b, each a real API server, and the clusters by name.
func startClusters(t *testing.T) (string, map[string]*testCluster) {
	t.Helper()
	clustersOnce.Do(func() {
		// envtest's default start timeout, 20s, is too short on a loaded
		// 2-core machine running several test packages.
		if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
			_ = os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "2m")
		}
		names := []string{"hub", "a", "b"}
		testClusters = make([]*testCluster, len(names))
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				env, err := world.StartEnvtest()
				if err != nil {
					errs[i] = fmt.Errorf("cluster %s: %w", name, err)
					return
				}
				testClusters[i] = &testCluster{name: name, env: env}
			})
		}
		wg.Wait()
		if clustersErr = errors.Join(errs...); clustersErr != nil {
			return
		}
		testKubeconfig, clustersErr = writeKubeconfig(testClusters)
	})
	if clustersErr != nil {
		t.Fatalf("start the test clusters: %v", clustersErr)
	}
	byName := map[string]*testCluster{}
	for _, c := range testClusters {
		byName[c.name] = c
	}
	return testKubeconfig, byName
}

// writeKubeconfig writes a kubeconfig with an admin context per cluster,
// named after it, to a new temporary directory and returns its path.
func writeKubeconfig(clusters []*testCluster) (string, error) {
	cfg := clientcmdapi.NewConfig()
	for _, c := range clusters {
		rc := c.env.Config
		cl := clientcmdapi.NewCluster()
		cl.Server, cl.CertificateAuthorityData = rc.Host, rc.CAData
		user := clientcmdapi.NewAuthInfo()
		user.ClientCertificateData, user.ClientKeyData = rc.CertData, rc.KeyData
		kctx := clientcmdapi.NewContext()
		kctx.Cluster, kctx.AuthInfo = c.name, c.name
		cfg.Clusters[c.name], cfg.AuthInfos[c.name], cfg.Contexts[c.name] = cl, user, kctx
	}
	dir, err := os.MkdirTemp("", "causeway-cli-test-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// runCLI runs the causeway command in-process with args and returns what it
// printed on stdout and its error.
func runCLI(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

var testScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(causewayv1alpha1.AddToScheme(s))
	utilruntime.Must(mcsv1beta1.Install(s))
	return s
}()

func adminClient(t *testing.T, c *testCluster) client.Client {
	t.Helper()
	cl, err := client.New(c.env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func mustCreate(ctx context.Context, t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
}

// TestJoinStatusUnjoin joins two clusters with the CLI, reads the cluster
// set back in every output format, and unjoins.
func TestJoinStatusUnjoin(t *testing.T) {
	kubeconfig, clusters := startClusters(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		return runCLI(ctx, append(args, "--kubeconfig", kubeconfig)...)
	}

	out, err := run("join", "a", "--hub-context", "hub", "--context", "a", "--region", "eu-west-1", "--zone", "eu-west-1a")
	if err != nil || !strings.Contains(out, `Cluster "a" joined`) {
		t.Fatalf("join a: %v\n%s", err, out)
	}
	if out, err := run("join", "a", "--hub-context", "hub", "--context", "a", "--region", "eu-west-1", "--zone", "eu-west-1a"); err != nil {
		t.Fatalf("join a again: %v\n%s", err, out)
	}
	if out, err := run("join", "b", "--hub-context", "hub", "--context", "b", "--region", "us-east-1",
		"--hub-server", clusters["hub"].env.Config.Host, "--clusterset", "test-set"); err != nil {
		t.Fatalf("join b: %v\n%s", err, out)
	}
	_, err = run("join", "b2", "--hub-context", "hub", "--context", "b")
	if err == nil || !strings.Contains(err.Error(), `this cluster is already joined as "b"`) {
		t.Errorf("join b as b2: got %v, want already joined", err)
	}

	// What the hub and an agent would add: a's export of shop/cart, the
	// merged service, and b's lease saying it has namespace shop.
	hub := adminClient(t, clusters["hub"])
	renew := metav1.NewMicroTime(time.Now().Add(-5 * time.Second))
	mustCreate(ctx, t, hub,
		&causewayv1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Namespace: "causeway-member-a", Name: "shop.cart"},
			Spec: causewayv1alpha1.ExportRecordSpec{
				Cluster: "a", Service: causewayv1alpha1.ServiceRef{Namespace: "shop", Name: "cart"},
				ExportCreationTimestamp: metav1.Now(),
				ServiceProperties:       causewayv1alpha1.ServiceProperties{Type: causewayv1alpha1.ServiceTypeClusterSetIP},
			},
		},
		&causewayv1alpha1.GlobalService{
			ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.SystemNamespace, Name: "shop.cart"},
			Spec: causewayv1alpha1.GlobalServiceSpec{
				Service:           causewayv1alpha1.ServiceRef{Namespace: "shop", Name: "cart"},
				ServiceProperties: causewayv1alpha1.ServiceProperties{Type: causewayv1alpha1.ServiceTypeClusterSetIP},
				Clusters:          []causewayv1alpha1.GlobalServiceCluster{{Name: "a"}},
			},
		},
		&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "causeway-member-b", Name: causewayv1alpha1.AgentLeaseName,
				Annotations: map[string]string{causewayv1alpha1.AnnotationNamespaces: "default,shop"}},
			Spec: coordinationv1.LeaseSpec{RenewTime: &renew},
		},
	)

	check := func(format string, st *membership.Status) {
		t.Helper()
		if len(st.Clusters) != 2 || st.Clusters[0].Name != "a" || st.Clusters[1].Name != "b" {
			t.Fatalf("-o %s clusters: %+v", format, st.Clusters)
		}
		a, b := st.Clusters[0], st.Clusters[1]
		if a.Region != "eu-west-1" || a.Zone != "eu-west-1a" || a.Exports != 1 || a.Imports != 0 || a.LeaseAge != nil || a.Joined != "Unknown" {
			t.Errorf("-o %s cluster a: %+v", format, a)
		}
		if b.Region != "us-east-1" || b.Exports != 0 || b.Imports != 1 || b.LeaseAge == nil || b.LeaseAge.Duration < 5*time.Second {
			t.Errorf("-o %s cluster b: %+v", format, b)
		}
		if len(st.Services) != 1 {
			t.Fatalf("-o %s services: %+v", format, st.Services)
		}
		s := st.Services[0]
		if s.Namespace != "shop" || s.Name != "cart" || s.Type != "ClusterSetIP" || len(s.ExportedFrom) != 1 || s.ExportedFrom[0].Name != "a" ||
			strings.Join(s.ImportedInto, ",") != "b" {
			t.Errorf("-o %s service: %+v", format, s)
		}
	}
	out, err = run("status", "--hub-context", "hub", "-o", "json")
	if err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	var st membership.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	check("json", &st)

	out, err = run("status", "--hub-context", "hub", "-o", "yaml")
	if err != nil {
		t.Fatalf("status -o yaml: %v", err)
	}
	st = membership.Status{}
	if err := yaml.UnmarshalStrict([]byte(out), &st); err != nil {
		t.Fatalf("status -o yaml is not the Status in YAML: %v\n%s", err, out)
	}
	check("yaml", &st)

	out, err = run("status", "--hub-context", "hub")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, re := range []string{
		`(?m)^CLUSTERS$`,
		`(?m)^NAME +REGION +JOINED +HEALTHY +LEASE-AGE +EXPORTS +IMPORTS$`,
		`(?m)^a +eu-west-1 +Unknown +Unknown +<none> +1 +0$`,
		`(?m)^b +us-east-1 +Unknown +Unknown +\d+s +0 +1$`,
		`(?m)^SERVICES$`,
		`(?m)^NAMESPACE/NAME +TYPE +EXPORTED-FROM +IMPORTED-INTO +CONFLICTS$`,
		`(?m)^shop/cart +ClusterSetIP +a +b +<none>$`,
	} {
		requireMatch(t, out, re)
	}

	if out, err := run("unjoin", "a", "--hub-context", "hub", "--context", "a"); err != nil || !strings.Contains(out, `Cluster "a" left`) {
		t.Fatalf("unjoin a: %v\n%s", err, out)
	}
	if out, err := run("unjoin", "a", "--hub-context", "hub", "--context", "a"); err != nil {
		t.Errorf("unjoin a again: %v\n%s", err, out)
	}
	out, err = run("status", "--hub-context", "hub", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	st = membership.Status{}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Clusters) != 1 || st.Clusters[0].Name != "b" {
		t.Errorf("status after unjoin a: %v %+v", err, st.Clusters)
	}
	if _, err := run("unjoin", "nope", "--hub-context", "hub"); err == nil || err.Error() != `no member cluster "nope"` {
		t.Errorf("unjoin nope: got %v", err)
	}
	if out, err := run("unjoin", "nope", "--hub-context", "hub", "--ignore-not-found"); err != nil || !strings.Contains(out, "not a member") {
		t.Errorf("unjoin nope --ignore-not-found: %v\n%s", err, out)
	}
	if out, err := run("unjoin", "b", "--hub-context", "hub", "--context", "b"); err != nil {
		t.Errorf("unjoin b: %v\n%s", err, out)
	}
}

// TestExportUnexport exports a Service with the CLI and plays the agent's
// part by setting the Valid condition by hand.
func TestExportUnexport(t *testing.T) {
	kubeconfig, clusters := startClusters(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	run := func(args ...string) (string, error) {
		return runCLI(ctx, append(args, "--kubeconfig", kubeconfig, "--context", "a", "-n", "web")...)
	}
	a := adminClient(t, clusters["a"])
	mustCreate(ctx, t, a,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "front"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		},
	)
	key := client.ObjectKey{Namespace: "web", Name: "front"}

	if out, err := run("export", "front", "--wait", "0"); err != nil || !strings.Contains(out, "ServiceExport web/front created") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	var se mcsv1beta1.ServiceExport
	if err := a.Get(ctx, key, &se); err != nil {
		t.Fatalf("the ServiceExport: %v", err)
	}
	rv := se.ResourceVersion
	if out, err := run("export", "front", "--wait", "0"); err != nil || !strings.Contains(out, "already exists") {
		t.Errorf("export again: %v\n%s", err, out)
	}

	start := time.Now()
	_, err := run("export", "front", "--wait", "1s")
	if err == nil || !strings.Contains(err.Error(), "ServiceExport web/front has no Valid condition after 1s: is the causeway agent running in this cluster?") {
		t.Errorf("export --wait 1s without an agent: got %v", err)
	}
	if waited := time.Since(start); waited < time.Second || waited > 10*time.Second {
		t.Errorf("export --wait 1s returned after %s", waited)
	}
	if err := a.Get(ctx, key, &se); err != nil || se.ResourceVersion != rv {
		t.Errorf("repeated exports changed the ServiceExport: %v, resourceVersion %s → %s", err, rv, se.ResourceVersion)
	}

	setValid := func(status metav1.ConditionStatus, reason, msg string) {
		t.Helper()
		if err := a.Get(ctx, key, &se); err != nil {
			t.Fatal(err)
		}
		se.Status.Conditions = []metav1.Condition{mcsv1beta1.NewServiceExportCondition(mcsv1beta1.ServiceExportConditionValid, status, mcsv1beta1.ServiceExportConditionReason(reason), msg)}
		if err := a.Status().Update(ctx, &se); err != nil {
			t.Fatal(err)
		}
	}
	setValid(metav1.ConditionFalse, "InvalidServiceType", "ExternalName services cannot be exported")
	out, err := run("export", "front", "--wait", "5s")
	if err == nil || !strings.Contains(err.Error(), "ExternalName services cannot be exported") || !strings.Contains(out, "Valid=False (InvalidServiceType)") {
		t.Errorf("export of an invalid ServiceExport: got %v\n%s", err, out)
	}
	setValid(metav1.ConditionTrue, "Valid", "service is valid for export")
	if out, err := run("export", "front"); err != nil || !strings.Contains(out, "Valid=True (Valid): service is valid for export") {
		t.Errorf("export of a valid ServiceExport: %v\n%s", err, out)
	}

	if out, err := run("unexport", "front"); err != nil || !strings.Contains(out, "ServiceExport web/front deleted") {
		t.Errorf("unexport: %v\n%s", err, out)
	}
	if err := a.Get(ctx, key, &se); client.IgnoreNotFound(err) != nil || err == nil {
		t.Errorf("the ServiceExport after unexport: %v", err)
	}
	if out, err := run("unexport", "front"); err != nil || !strings.Contains(out, "Service web/front was not exported") {
		t.Errorf("unexport again: %v\n%s", err, out)
	}
}

// TestJoinGatewayFlags joins the hub as a member of its own cluster set
// (clusters a and b belong to the other tests) with --gateway-address and
// --gateway-transport: they set the MemberCluster's spec.gateway, a
// re-join with others changes it and one without removes it, and invalid
// values are refused before anything is written, with errors naming the
// flags.
func TestJoinGatewayFlags(t *testing.T) {
	kubeconfig, clusters := startClusters(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	hub := adminClient(t, clusters["hub"])
	join := func(args ...string) (string, error) {
		return runCLI(ctx, append([]string{"join", "hubself", "--hub-context", "hub", "--context", "hub", "--kubeconfig", kubeconfig}, args...)...)
	}
	gateway := func() *causewayv1alpha1.MemberClusterGateway {
		t.Helper()
		var mc causewayv1alpha1.MemberCluster
		if err := hub.Get(ctx, client.ObjectKey{Name: "hubself"}, &mc); err != nil {
			t.Fatal(err)
		}
		return mc.Spec.Gateway
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gateway-address", "GW.example:443"}, `--gateway-address/--gateway-transport: invalid gateway address "GW.example:443"`},
		{[]string{"--gateway-address", "gw.example"}, `invalid gateway address "gw.example"`},
		{[]string{"--gateway-address", "[10.0.0.1]:15443"}, "not a valid IPv6 address"},
		{[]string{"--gateway-address", "10.0.0.1", "--gateway-transport", "udp"}, `invalid gateway transport "udp": must be QUIC or TCP`},
		{[]string{"--gateway-transport", "TCP"}, "a gateway transport needs at least one gateway address"},
	} {
		if _, err := join(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("join %v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if err := hub.Get(ctx, client.ObjectKey{Name: "hubself"}, &causewayv1alpha1.MemberCluster{}); !apierrors.IsNotFound(err) {
		t.Fatalf("refused joins created the MemberCluster: %v", err)
	}

	if out, err := join("--gateway-address", "10.255.1.2", "--gateway-address", "gw.hub.example:443", "--gateway-transport", "TCP"); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runCLI(context.Background(), "unjoin", "hubself", "--hub-context", "hub", "--context", "hub", "--kubeconfig", kubeconfig); err != nil {
			t.Errorf("unjoin: %v\n%s", err, out)
		}
	})
	want := &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"10.255.1.2", "gw.hub.example:443"}, Transport: causewayv1alpha1.GatewayTransportTCP}
	if got := gateway(); !reflect.DeepEqual(got, want) {
		t.Errorf("spec.gateway = %+v, want %+v", got, want)
	}

	if out, err := join("--gateway-address", "[2001:db8::2]:15443"); err != nil {
		t.Fatalf("re-join: %v\n%s", err, out)
	}
	want = &causewayv1alpha1.MemberClusterGateway{Addresses: []causewayv1alpha1.GatewayAddress{"[2001:db8::2]:15443"}, Transport: causewayv1alpha1.GatewayTransportQUIC}
	if got := gateway(); !reflect.DeepEqual(got, want) {
		t.Errorf("after a re-join, spec.gateway = %+v, want %+v", got, want)
	}

	if _, err := join("--gateway-address", "bad"); err == nil {
		t.Error("a re-join with a bad address succeeded")
	}
	if got := gateway(); !reflect.DeepEqual(got, want) {
		t.Errorf("a refused re-join changed spec.gateway to %+v", got)
	}

	if out, err := join(); err != nil {
		t.Fatalf("re-join without a gateway: %v\n%s", err, out)
	}
	if got := gateway(); got != nil {
		t.Errorf("a join without --gateway-address left spec.gateway %+v", got)
	}
}
