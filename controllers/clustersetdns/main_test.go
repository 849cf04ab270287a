package clustersetdns_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/clustersetdns"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// Shared by every test of the package: one real kube-apiserver and etcd
// (envtest, started by TestMain) with the MCS CRDs, a direct client of it,
// and the scheme both know.
var (
	cfg    *rest.Config
	scheme *runtime.Scheme
	k8s    client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// sharedAPIServerEnv names the environment variable through which a test
// process hands its envtest API server to the fuzz workers that `go test
// -fuzz` starts (they inherit its environment). A worker that started an
// API server of its own would be killed by the fuzz engine before it could
// stop it (the engine allows a worker one second to exit), orphaning etcd,
// which keeps the engine's output pipe open and hangs it.
const sharedAPIServerEnv = "CAUSEWAY_CLUSTERSETDNS_TEST_APISERVER"

// sharedAPIServer is the JSON in sharedAPIServerEnv.
type sharedAPIServer struct {
	Host          string
	CA, Cert, Key []byte
}

func runTests(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	if shared := os.Getenv(sharedAPIServerEnv); shared != "" {
		var s sharedAPIServer
		if err := json.Unmarshal([]byte(shared), &s); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: decode %s: %v\n", sharedAPIServerEnv, err)
			return 1
		}
		cfg = &rest.Config{Host: s.Host, TLSClientConfig: rest.TLSClientConfig{CAData: s.CA, CertData: s.Cert, KeyData: s.Key}}
	} else {
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
		cfg = env.Config
		shared, err := json.Marshal(sharedAPIServer{Host: cfg.Host, CA: cfg.CAData, Cert: cfg.CertData, Key: cfg.KeyData})
		if err == nil {
			err = os.Setenv(sharedAPIServerEnv, string(shared))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: share the API server with fuzz workers: %v\n", err)
			return 1
		}
	}
	var err error
	scheme = runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), mcsv1beta1.Install(scheme)); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build scheme: %v\n", err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	return m.Run()
}

func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace of the test's own, so tests can run in
// parallel without seeing each other's imports.
func newNamespace(ctx context.Context, t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dns-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// port is a ServiceImport port.
func port(name string, proto corev1.Protocol, number int32) mcsv1beta1.ServicePort {
	return mcsv1beta1.ServicePort{Name: name, Protocol: proto, Port: number}
}

func createImport(ctx context.Context, t testing.TB, ns, name string, typ mcsv1beta1.ServiceImportType, ips []string, ports ...mcsv1beta1.ServicePort) *mcsv1beta1.ServiceImport {
	t.Helper()
	si := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       mcsv1beta1.ServiceImportSpec{Type: typ, IPs: ips, Ports: ports},
	}
	if err := k8s.Create(ctx, si); err != nil {
		t.Fatalf("create ServiceImport %s/%s: %v", ns, name, err)
	}
	return si
}

// ep is an endpoint of a slice: ready is nil, true or false.
type ep struct {
	addr     string
	hostname string
	ready    *bool
}

// createSlice creates an EndpointSlice of the import svc from cluster, as
// the agent does. ports map port names to numbers (TCP).
func createSlice(ctx context.Context, t testing.TB, ns, svc, cluster string, family discoveryv1.AddressType, ports map[string]int32, eps ...ep) {
	t.Helper()
	createSliceLabelled(ctx, t, ns, svc, family, map[string]string{
		mcsv1beta1.LabelServiceName:   svc,
		mcsv1beta1.LabelSourceCluster: cluster,
		discoveryv1.LabelManagedBy:    v1alpha1.ManagedByAgent,
	}, ports, eps...)
}

func createSliceLabelled(ctx context.Context, t testing.TB, ns, svc string, family discoveryv1.AddressType, labels map[string]string, ports map[string]int32, eps ...ep) {
	t.Helper()
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, GenerateName: svc + "-", Labels: labels},
		AddressType: family,
	}
	for name, number := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(number), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			ep.Hostname = ptr.To(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatalf("create EndpointSlice for %s/%s: %v", ns, svc, err)
	}
}

// startServer serves the zone from reader on a free loopback port.
func startServer(t testing.TB, srv *clustersetdns.Server) *clustersetdns.Running {
	t.Helper()
	r, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shut down: %v", err)
		}
	})
	return r
}

// startCache starts an informer cache of the envtest API server, as the
// agent's manager would, and waits for it to sync.
func startCache(t testing.TB) cache.Cache {
	t.Helper()
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("create cache: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache stopped: %v", err)
		}
	})
	// Create both informers now rather than on the first query.
	sctx := testContext(t, 30*time.Second)
	for _, obj := range []client.Object{&mcsv1beta1.ServiceImport{}, &discoveryv1.EndpointSlice{}} {
		if _, err := c.GetInformer(sctx, obj); err != nil {
			t.Fatalf("start informer for %T: %v", obj, err)
		}
	}
	if !c.WaitForCacheSync(sctx) {
		t.Fatal("cache did not sync")
	}
	return c
}

// goResolver is Go's own DNS client (not the system's) sending every query
// to addr, over UDP or, after a truncated answer, TCP.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// digResult is what dig printed, taken apart.
type digResult struct {
	status string
	flags  []string
	// Sections hold records as whitespace-separated fields:
	// name, TTL, class, type, data....
	answer, authority, additional [][]string
	raw                           string
}

func (d digResult) hasFlag(f string) bool { return slices.Contains(d.flags, f) }

// rdata returns the data fields of the section's records of type typ,
// joined by spaces, sorted.
func rdata(rrs [][]string, typ string) []string {
	var out []string
	for _, rr := range rrs {
		if len(rr) >= 5 && rr[3] == typ {
			out = append(out, strings.Join(rr[4:], " "))
		}
	}
	slices.Sort(out)
	return out
}

var (
	digHeader = regexp.MustCompile(`status: ([A-Z]+),`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
)

// dig queries addr with BIND's dig (the real resolver tool the MCS
// conformance suite also uses) and parses its answer. args are dig's, for
// example "+tcp", "SRV", "name.". A missing dig fails the test: a DNS
// server tested only by its own library's client is barely tested.
func dig(t testing.TB, addr string, args ...string) digResult {
	t.Helper()
	bin, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig not found (%v): install it with `apt-get install -y bind9-dnsutils`", err)
	}
	ap := netip.MustParseAddrPort(addr)
	argv := append([]string{"@" + ap.Addr().String(), "-p", fmt.Sprint(ap.Port()), "+norecurse", "+time=2", "+tries=1", "+nocookie"}, args...)
	ctx := testContext(t, 20*time.Second)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	res := digResult{raw: string(out)}
	if m := digHeader.FindStringSubmatch(res.raw); m != nil {
		res.status = m[1]
	} else {
		t.Fatalf("dig %s printed no status:\n%s", strings.Join(argv, " "), out)
	}
	if m := digFlags.FindStringSubmatch(res.raw); m != nil {
		res.flags = strings.Fields(m[1])
	}
	var section *[][]string
	for line := range strings.Lines(res.raw) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			section = &res.answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION:"):
			section = &res.authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION:"):
			section = &res.additional
		case line == "" || strings.HasPrefix(line, ";"):
			section = nil
		case section != nil:
			*section = append(*section, strings.Fields(line))
		}
	}
	return res
}

// exchange sends a hand-made message, for what no resolver tool sends.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange over %s: %v", network, err)
	}
	return resp
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
