package xds_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// Shared by every test of the package: one real kube-apiserver and etcd
// (envtest), a direct client, and one running xDS stack (informer cache,
// Controller and Server) serving on a loopback port, as the agent runs it.
var (
	restConfig *rest.Config
	sch        *runtime.Scheme
	k8s        client.Client
	stack      struct {
		server     *xds.Server
		controller *xds.Controller
		addr       string
		registry   *prometheus.Registry
	}
)

// clusterName is the local cluster's name in the shared stack.
const clusterName = "east"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	env, err := world.StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v (run `make test-bins` to build etcd and kube-apiserver)\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	restConfig = env.Config
	sch = scheme.New()
	if k8s, err = client.New(restConfig, client.Options{Scheme: sch}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := startStack(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the xDS stack: %v\n", err)
		return 1
	}
	code := m.Run()
	cancel()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: xDS stack: %v\n", err)
		code = 1
	}
	return code
}

// startStack starts an informer cache, the Server on 127.0.0.1 and the
// Controller; stop waits for them to end after ctx is cancelled.
func startStack(ctx context.Context) (stop func() error, err error) {
	c, err := cache.New(restConfig, cache.Options{Scheme: sch})
	if err != nil {
		return nil, err
	}
	cached, err := client.New(restConfig, client.Options{Scheme: sch, Cache: &client.CacheOptions{Reader: c}})
	if err != nil {
		return nil, err
	}
	stack.registry = prometheus.NewRegistry()
	log := testLogger()
	srv, err := xds.NewServer(xds.Options{Registerer: stack.registry, Logger: log})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	stack.server, stack.addr = srv, lis.Addr().String()
	stack.controller = &xds.Controller{Client: cached, Cache: c, Server: srv, ClusterName: clusterName, Logger: log}
	errs := make(chan error, 3)
	go func() { errs <- c.Start(ctx) }()
	go func() { errs <- srv.Serve(ctx, lis) }()
	go func() { errs <- stack.controller.Start(ctx) }()
	return func() error {
		var msgs []string
		for range 3 {
			if err := <-errs; err != nil {
				msgs = append(msgs, err.Error())
			}
		}
		if len(msgs) > 0 {
			return fmt.Errorf("%s", strings.Join(msgs, "; "))
		}
		return nil
	}, nil
}

func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace of the test's own.
func newNamespace(ctx context.Context, t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "xds-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// createService creates a ClusterIP Service with one TCP port.
func createService(ctx context.Context, t testing.TB, ns, name, portName string, port int32) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: port, Protocol: corev1.ProtocolTCP}}},
	}
	if err := k8s.Create(ctx, svc); err != nil {
		t.Fatalf("create Service %s/%s: %v", ns, name, err)
	}
	return svc
}

// createSlice creates an EndpointSlice of a Service with one ready
// endpoint at addr:port.
func createSlice(ctx context.Context, t testing.TB, ns, svc, portName, addr string, port int32) {
	t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, GenerateName: svc + "-", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if err := k8s.Create(ctx, es); err != nil {
		t.Fatalf("create EndpointSlice for %s/%s: %v", ns, svc, err)
	}
}

// eventually retries check until it returns nil or the deadline passes.
func eventually(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// netListenConfig listens on a free loopback port.
type netListenConfig struct{}

func (netListenConfig) listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// testLogger logs to stderr when XDS_TEST_LOG is set (at verbosity 3: every
// cache decision), and discards otherwise.
func testLogger() logr.Logger {
	if os.Getenv("XDS_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05.000"), prefix, args) }, funcr.Options{Verbosity: 3})
}
