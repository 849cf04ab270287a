package multicluster_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// The gateway suite's roles in the shared world: A exports the services,
// B runs the clients, C exports one of them too (where B fails over to).
const (
	clusterA = "east"
	clusterB = "west"
	clusterC = "north"
)

// Explicit listeners of the client sidecars in B, on their pod IPs.
const (
	clientHTTPPort    = 15080 // explicit_http: every service by Host
	clientSoloTCPPort = 17070 // solo's ClusterSetIP, TCP port
	clientEchoTCPPort = 17071 // echo's ClusterSetIP, TCP port
)

// wanDelay is the one-way delay of the relay in front of B's gateway: the
// links A→B and C→B have 2×wanDelay of round-trip time, A→C none.
const wanDelay = 10 * time.Millisecond

// payload is how many bytes each protocol check moves through the link,
// far more than keepalives add meanwhile.
const payload = 100_000

// The tokens the world writes for proxies carry the agent's audience.
var _ = func() bool {
	if clusterset.TokenAudience != identity.DefaultAudience {
		panic("clusterset.TokenAudience is not the agent's audience")
	}
	return true
}()

// gatewaySuite is what TestGateways sets up: gateways in A, B and C (B's
// behind a WAN relay), the echo app with sidecars in A and C, the client
// sidecars in B, and the world's isolation.
type gatewaySuite struct {
	ns string
	gw map[string]*clusterset.Gateway
	// linkAddrB is what B publishes: the relay's address.
	linkAddrB netip.AddrPort
	// servers are the echo pods' sidecars in A and C.
	servers map[string]*clusterset.Sidecar
	// hiddenIP is a pod of A whose Service is not exported.
	hiddenIP string
	// client may call the services; intruder, in the same namespace of
	// B with another ServiceAccount, may not.
	client, intruder *clusterset.Sidecar
	// soloIP and echoIP are the ClusterSetIPs of solo (exported from A)
	// and echo (from A and C).
	soloIP, echoIP string
	td             spiffeid.TrustDomain
}

// TestGateways is the east-west gateway story on real clusters: each
// member runs causeway-proxy --mode=gateway; the hub plans one link per
// pair of clusters; the world is isolated, so a client in B reaches A's
// pods only through B's gateway, the link and A's gateway. Subtests:
// every protocol by clusterset.local name and by ClusterSetIP over the
// QUIC link, the destination authorising B's identity, refusals, and the
// faults (a gateway killed, UDP blocked, a partition, the failover
// drill, the hub down).
func TestGateways(t *testing.T) {
	ctx := testContext(t, 10*time.Minute)
	s := setUpGateways(t, ctx)
	t.Run("Protocols", s.testProtocols)
	t.Run("Identity", s.testIdentity)
	t.Run("Refusals", s.testRefusals)
	t.Run("GatewayKilled", s.testGatewayKilled)
	t.Run("UDPBlocked", s.testUDPBlocked)
	t.Run("Partition", s.testPartition)
	t.Run("Drill", s.testDrill)
	t.Run("HubDown", s.testHubDown)
}

// cleanupContext is for cleanups, which run after the test's context is
// done.
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func setUpGateways(t testing.TB, ctx context.Context) *gatewaySuite {
	t.Helper()
	start := time.Now()
	s := &gatewaySuite{ns: uniqueNS(t), gw: map[string]*clusterset.Gateway{}, servers: map[string]*clusterset.Sidecar{}}
	a, b, c := w.Cluster(clusterA), w.Cluster(clusterB), w.Cluster(clusterC)
	t.Cleanup(func() {
		if t.Failed() {
			s.logTails(t)
		}
	})

	// Isolation first: no process of the suite ever saw a flat network.
	undo, err := w.Isolate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := undo(); err != nil {
			t.Error(err)
		}
	})

	// The WAN: B publishes a relay's address, in B's infrastructure
	// range, that adds wanDelay each way before B's gateway.
	s.linkAddrB = netip.AddrPortFrom(infraAddr(b, 3), clusterset.LinkPort)
	target := netip.AddrPortFrom(b.GatewayIP, clusterset.LinkPort).String()
	exe, args, err := helperArgs(helperDelayRelay, "--addr="+s.linkAddrB.String(), "--udp-target="+target, "--tcp-target="+target, "--delay="+wanDelay.String())
	if err != nil {
		t.Fatal(err)
	}
	relay, err := w.Run(clusterB+"/wan-relay", exe, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(relay.Stop)
	if err := w.WaitListening(ctx, s.linkAddrB.String(), 30*time.Second); err != nil {
		t.Fatalf("the WAN relay never listened: %v\n%s", err, relay.Tail(20))
	}

	for _, name := range []string{clusterA, clusterB, clusterC} {
		o := clusterset.GatewayOptions{Args: []string{"--link-quic-retry=5s"}}
		if name == clusterB {
			o.Addresses = []string{s.linkAddrB.String()}
		}
		g, err := cs.SetUpGateway(ctx, name, o)
		if err != nil {
			t.Fatal(err)
		}
		s.gw[name] = g
		t.Cleanup(func() {
			ctx, cancel := cleanupContext()
			defer cancel()
			if err := cs.TearDownGateway(ctx, name); err != nil {
				t.Error(err)
			}
		})
	}
	for _, name := range []string{clusterA, clusterB, clusterC} {
		if err := s.gw[name].Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The echo app, as ServiceAccount echo, in A and C; in A also solo
	// (the same pods, exported only from A) and hidden (not exported).
	for _, cl := range []*world.Cluster{a, c} {
		ensureNamespace(t, ctx, cl.Name, s.ns)
		createServiceAccount(t, ctx, cl.Name, s.ns, "echo")
		dep, svc := world.EchoApp(s.ns, "echo", 1)
		dep.Spec.Template.Spec.ServiceAccountName = "echo"
		create(t, ctx, cl.Name, dep, svc)
		// Only B's client may call: the destination sidecar decides by
		// the SPIFFE ID of the real source. Two paths check the cluster
		// it sees the source in: /from-b/ is denied to sources in A or
		// C, /not-from-b/ to sources in B. (The deny rules name the HTTP
		// port: with Istio's semantics a DENY rule's HTTP-only fields do
		// not narrow it on a TCP port, where it would deny everything.)
		create(t, ctx, cl.Name, &causewayv1alpha1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "allow-client"},
			Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionAllow,
				Rules: []causewayv1alpha1.AuthorizationRule{{From: &causewayv1alpha1.AuthorizationSource{
					Principals: []causewayv1alpha1.SPIFFEIDPattern{causewayv1alpha1.SPIFFEIDPattern("*/ns/" + s.ns + "/sa/client")},
				}}},
			},
		}, &causewayv1alpha1.AuthorizationPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "deny-by-cluster"},
			Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionDeny,
				Rules: []causewayv1alpha1.AuthorizationRule{
					{
						From: &causewayv1alpha1.AuthorizationSource{Clusters: []causewayv1alpha1.ClusterName{clusterA, clusterC}},
						To:   &causewayv1alpha1.AuthorizationDestination{Ports: []causewayv1alpha1.PortNumber{world.EchoHTTPPort}, Paths: []string{"/from-b/*"}},
					},
					{
						From: &causewayv1alpha1.AuthorizationSource{Clusters: []causewayv1alpha1.ClusterName{clusterB}},
						To:   &causewayv1alpha1.AuthorizationDestination{Ports: []causewayv1alpha1.PortNumber{world.EchoHTTPPort}, Paths: []string{"/not-from-b/*"}},
					},
				},
			},
		})
		export(t, ctx, cl.Name, s.ns, "echo")
	}
	_, solo := world.EchoApp(s.ns, "solo", 1)
	solo.Spec.Selector = map[string]string{"app": "echo"}
	create(t, ctx, clusterA, solo)
	export(t, ctx, clusterA, s.ns, "solo")
	hiddenDep, hiddenSvc := world.EchoApp(s.ns, "hidden", 1)
	create(t, ctx, clusterA, hiddenDep, hiddenSvc)

	// The client and the intruder: pods in B (no process of their own;
	// the tests speak through their sidecars' explicit listeners).
	ensureNamespace(t, ctx, clusterB, s.ns)
	for _, sa := range []string{"client", "intruder"} {
		createServiceAccount(t, ctx, clusterB, s.ns, sa)
		create(t, ctx, clusterB, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: sa, Labels: map[string]string{"app": sa}},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "causeway.dev/client"}}},
		})
	}

	for _, cl := range []string{clusterA, clusterC} {
		eps, err := w.Cluster(cl).WaitReadyEndpoints(ctx, s.ns, "echo", 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		side, err := cs.StartSidecar(ctx, clusterset.SidecarOptions{Cluster: cl, Namespace: s.ns, Pod: eps[0].Pod})
		if err != nil {
			t.Fatal(err)
		}
		s.servers[cl] = side
		t.Cleanup(side.Stop)
	}
	hidden, err := a.WaitReadyEndpoints(ctx, s.ns, "hidden", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.hiddenIP = hidden[0].IP

	eventually(t, 90*time.Second, "B imports solo from A and echo from A and C", func(ctx context.Context) error {
		solo, err := importSlices(ctx, clusterB, s.ns, "solo")
		if err != nil {
			return err
		}
		echo, err := importSlices(ctx, clusterB, s.ns, "echo")
		if err != nil {
			return err
		}
		if len(solo) != 1 || len(solo[clusterA]) != 1 || len(echo[clusterA]) != 1 || len(echo[clusterC]) != 1 {
			return fmt.Errorf("solo %v, echo %v", solo, echo)
		}
		for name, ip := range map[string]*string{"solo": &s.soloIP, "echo": &s.echoIP} {
			si, err := getImport(ctx, clusterB, s.ns, name)
			if err != nil {
				return err
			}
			if len(si.Spec.IPs) == 0 {
				return fmt.Errorf("%s has no ClusterSetIP yet", name)
			}
			*ip = si.Spec.IPs[0]
		}
		return nil
	})

	for _, sa := range []string{"client", "intruder"} {
		side, err := cs.StartSidecar(ctx, clusterset.SidecarOptions{
			Cluster: clusterB, Namespace: s.ns, Pod: sa,
			Listeners: map[int]string{
				clientHTTPPort:    xdsconv.ExplicitHTTPListener,
				clientSoloTCPPort: xdsconv.ListenerName(s.soloIP, world.EchoTCPPort),
				clientEchoTCPPort: xdsconv.ListenerName(s.echoIP, world.EchoTCPPort),
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(side.Stop)
		if sa == "client" {
			s.client = side
		} else {
			s.intruder = side
		}
	}
	ca, _ := memberCA(t, ctx, clusterB)
	s.td = ca.TrustDomain()
	// Runs before the proxies stop (cleanups run last in, first out).
	t.Cleanup(func() {
		if t.Failed() {
			s.logMetrics(t)
		}
	})

	s.waitLinksUp(t, 60*time.Second)
	eventually(t, 60*time.Second, "the client reaches solo in A", func(ctx context.Context) error {
		_, err := s.get(ctx, s.client, s.soloName(world.EchoHTTPPort), "/warm-up", false)
		return err
	})
	t.Logf("gateway suite set up in %s: namespace %s, solo %s, echo %s", time.Since(start).Round(10*time.Millisecond), s.ns, s.soloIP, s.echoIP)
	return s
}

// logTails logs the end of every proxy's log, for a failed run.
func (s *gatewaySuite) logTails(t testing.TB) {
	var procs []*world.Proc
	for _, name := range []string{clusterA, clusterB, clusterC} {
		if g := s.gw[name]; g != nil && g.Proc() != nil {
			procs = append(procs, g.Proc())
		}
	}
	for _, side := range []*clusterset.Sidecar{s.servers[clusterA], s.servers[clusterC], s.client, s.intruder} {
		if side != nil && side.Proc() != nil {
			procs = append(procs, side.Proc())
		}
	}
	for _, p := range procs {
		t.Logf("last lines of %s (%s):\n%s", p.Name, p.LogPath, p.Tail(25))
	}
}

// logMetrics logs the tunnel and link series of the proxies, for a failed
// run.
func (s *gatewaySuite) logMetrics(t testing.TB) {
	ctx, cancel := cleanupContext()
	defer cancel()
	dump := func(name string, hc *http.Client, admin string, prefixes ...string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
		if err != nil {
			return
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Logf("metrics of %s: %v", name, err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		var lines []string
		for line := range strings.Lines(string(b)) {
			for _, p := range prefixes {
				if strings.HasPrefix(line, p) {
					lines = append(lines, strings.TrimSpace(line))
				}
			}
		}
		t.Logf("metrics of %s:\n%s", name, strings.Join(lines, "\n"))
	}
	for _, name := range []string{clusterA, clusterB, clusterC} {
		if g := s.gw[name]; g != nil {
			dump(name+" gateway", w.Cluster(name).HTTPClient(5*time.Second), g.AdminAddr(), "causeway_gateway_", "causeway_link")
		}
	}
	for _, side := range []*clusterset.Sidecar{s.servers[clusterA], s.servers[clusterC], s.client, s.intruder} {
		if side != nil {
			dump(side.Cluster+"/"+side.Pod, w.Cluster(side.Cluster).HTTPClient(5*time.Second), side.AdminAddr(),
				"causeway_proxy_hbone_tunnels_total", "causeway_proxy_requests_denied_total", "causeway_proxy_local_replies_total")
		}
	}
}

// infraAddr is 10.255.<cluster>.<host>, in the cluster's infrastructure
// range.
func infraAddr(c *world.Cluster, host byte) netip.Addr {
	b := c.InfraPrefix.Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1], b[2], host})
}

func createServiceAccount(t testing.TB, ctx context.Context, cluster, ns, name string) {
	t.Helper()
	create(t, ctx, cluster, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
}

// create creates objects in cluster; one that exists is fine.
func create(t testing.TB, ctx context.Context, cluster string, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := clients[cluster].Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("cluster %s: create %T %s/%s: %v", cluster, o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

func (s *gatewaySuite) soloName(port int) string {
	return xdsconv.ClusterSetHost("solo", s.ns) + ":" + strconv.Itoa(port)
}

func (s *gatewaySuite) echoName(port int) string {
	return xdsconv.ClusterSetHost("echo", s.ns) + ":" + strconv.Itoa(port)
}

// dialB connects from B's infrastructure address: under isolation, what
// may reach B's pods (the client sidecars' listeners).
func dialB(ctx context.Context, network, addr string) (net.Conn, error) {
	return w.Cluster(clusterB).DialContext(ctx, network, addr)
}

// get sends GET path to host through a client sidecar's explicit
// listener, over HTTP/1.1 or (h2) HTTP/2 with prior knowledge, and
// decodes the echo's report.
func (s *gatewaySuite) get(ctx context.Context, via *clusterset.Sidecar, host, path string, h2 bool) (echo.HTTPReport, error) {
	r, _, err := s.getProto(ctx, via, host, path, h2)
	return r, err
}

// getProto is get, and says which HTTP major version the client sidecar
// answered with.
func (s *gatewaySuite) getProto(ctx context.Context, via *clusterset.Sidecar, host, path string, h2 bool) (echo.HTTPReport, int, error) {
	tr := &http.Transport{DialContext: dialB, DisableKeepAlives: true}
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+via.Addr(clientHTTPPort)+path, nil)
	if err != nil {
		return echo.HTTPReport{}, 0, err
	}
	req.Host = host
	resp, err := hc.Do(req)
	if err != nil {
		return echo.HTTPReport{}, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return echo.HTTPReport{}, resp.ProtoMajor, fmt.Errorf("%s%s: read the body: %w", host, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return echo.HTTPReport{}, resp.ProtoMajor, &statusError{code: resp.StatusCode, msg: fmt.Sprintf("%s%s: %s %.200s", host, path, resp.Status, body)}
	}
	var r echo.HTTPReport
	if err := json.Unmarshal(body, &r); err != nil {
		return r, resp.ProtoMajor, fmt.Errorf("%s%s: decode %.200q: %w", host, path, body, err)
	}
	return r, resp.ProtoMajor, nil
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// links reads a gateway's GET /links.
func links(ctx context.Context, g *clusterset.Gateway) (*linkapi.GatewayLinks, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.AdminAddr()+linkapi.LinksPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := w.Cluster(g.Cluster).HTTPClient(2 * time.Second).Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s%s: %s %s", g.AdminAddr(), linkapi.LinksPath, resp.Status, b)
	}
	return linkapi.DecodeGatewayLinks(b)
}

// peerLink is g's link to peer.
func peerLink(ctx context.Context, g *clusterset.Gateway, peer string) (linkapi.Link, error) {
	ls, err := links(ctx, g)
	if err != nil {
		return linkapi.Link{}, err
	}
	for _, l := range ls.Links {
		if l.Peer == peer {
			return l, nil
		}
	}
	return linkapi.Link{}, fmt.Errorf("gateway %s has no link to %s: %+v", g.Cluster, peer, ls.Links)
}

// waitLinksUp waits until every pair of the three clusters has its link up
// over QUIC, as both ends see it.
func (s *gatewaySuite) waitLinksUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "every link up over QUIC", func(ctx context.Context) error {
		for _, from := range []string{clusterA, clusterB, clusterC} {
			for _, to := range []string{clusterA, clusterB, clusterC} {
				if from == to {
					continue
				}
				l, err := peerLink(ctx, s.gw[from], to)
				if err != nil {
					return err
				}
				if l.State != linkapi.StateUp || l.Transport != linkapi.TransportQUIC {
					return fmt.Errorf("%s→%s: %s over %q (last error %q)", from, to, l.State, l.Transport, l.LastError)
				}
			}
		}
		return nil
	})
}

// waitHealthy waits until every link is up over QUIC and the client's
// requests to solo (A) and echo (A and C) succeed: a fault test starts
// from a working cluster set, whatever the one before it left.
func (s *gatewaySuite) waitHealthy(t testing.TB) {
	t.Helper()
	s.waitLinksUp(t, 30*time.Second)
	eventually(t, 30*time.Second, "the client's requests to solo and echo succeed", func(ctx context.Context) error {
		for _, host := range []string{s.soloName(world.EchoHTTPPort), s.echoName(world.EchoHTTPPort)} {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := s.get(rctx, s.client, host, "/healthy", false)
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// linkBytes is the bytes both ways on g's link to peer.
func linkBytes(t *testing.T, ctx context.Context, g *clusterset.Gateway, peer string) (uint64, linkapi.Link) {
	t.Helper()
	l, err := peerLink(ctx, g, peer)
	if err != nil {
		t.Fatal(err)
	}
	return l.BytesSent + l.BytesReceived, l
}

// crossed runs f and checks that at least n bytes crossed the QUIC link
// between A and B, as both gateways count them, and that A's sidecar
// served the exchange: its series (an inbound cluster's requests or TCP
// bytes) grew by at least atLeast.
func (s *gatewaySuite) crossed(t *testing.T, ctx context.Context, what string, n uint64, series string, atLeast float64, f func() error) {
	t.Helper()
	server := s.servers[clusterA]
	beforeB, _ := linkBytes(t, ctx, s.gw[clusterB], clusterA)
	beforeA, _ := linkBytes(t, ctx, s.gw[clusterA], clusterB)
	beforeS, err := sidecarMetric(ctx, server, series)
	if err != nil {
		t.Fatal(err)
	}
	if err := f(); err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	afterB, lb := linkBytes(t, ctx, s.gw[clusterB], clusterA)
	afterA, la := linkBytes(t, ctx, s.gw[clusterA], clusterB)
	if afterB-beforeB < n || afterA-beforeA < n {
		t.Errorf("%s: %d bytes crossed B's link to A and %d A's link to B, want at least %d", what, afterB-beforeB, afterA-beforeA, n)
	}
	if lb.Transport != linkapi.TransportQUIC || la.Transport != linkapi.TransportQUIC {
		t.Errorf("%s: the link is on %q (B) and %q (A), want QUIC", what, lb.Transport, la.Transport)
	}
	// A proxy counts a connection's bytes as they pass or when it ends:
	// give it a moment.
	var grew float64
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(pollInterval) {
		afterS, err := sidecarMetric(ctx, server, series)
		if err != nil {
			t.Fatal(err)
		}
		if grew = afterS - beforeS; grew >= atLeast || time.Now().After(deadline) {
			break
		}
	}
	if grew < atLeast {
		t.Errorf("%s: %s of A's sidecar grew by %v, want at least %v: the exchange did not go through the destination's sidecar", what, series, grew, atLeast)
	}
}

// Series of A's sidecar that show it served an exchange.
func inboundRequests(port int) string {
	return `causeway_proxy_requests_total{cluster="` + xdsconv.InboundClusterName(int32(port)) + `"`
}

func inboundTCPBytes(port int) string {
	return `causeway_proxy_tcp_bytes_total{cluster="` + xdsconv.InboundClusterName(int32(port)) + `"`
}

// testProtocols: the client in B calls solo, exported from A, by its
// clusterset.local name and by its ClusterSetIP, over HTTP/1.1, HTTP/2,
// gRPC, WebSocket and TCP. Every exchange is served by A's echo through
// A's sidecar (the echo sees the connection come from its own pod IP, not
// from a gateway or from B) and moves its bytes over the QUIC link.
func (s *gatewaySuite) testProtocols(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	pod, podIP := s.servers[clusterA].Pod, s.servers[clusterA].PodIP.String()
	// The world is isolated: from B's pods, A's echo is out of reach but
	// through the gateways.
	for _, src := range []netip.Addr{s.client.PodIP, w.Cluster(clusterB).GatewayIP, world.NeutralSource} {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := w.NS.DialFrom(dctx, "tcp", src, world.HostPort(podIP, world.EchoHTTPPort))
		cancel()
		if err == nil {
			_ = c.Close()
			t.Fatalf("%s reached A's echo at %s directly: the world is not isolated", src, podIP)
		}
	}
	checkReport := func(r echo.HTTPReport) error {
		if r.Cluster != clusterA || r.Pod != pod {
			return fmt.Errorf("served by %s/%s, want %s/%s", r.Cluster, r.Pod, clusterA, pod)
		}
		if host, _, _ := net.SplitHostPort(r.RemoteAddr); host != podIP {
			return fmt.Errorf("the echo saw the request come from %s, want its sidecar at %s", r.RemoteAddr, podIP)
		}
		return nil
	}
	for _, target := range []struct{ name, host string }{
		{"by name", xdsconv.ClusterSetHost("solo", s.ns)},
		{"by ClusterSetIP", s.soloIP},
	} {
		httpHost := target.host + ":" + strconv.Itoa(world.EchoHTTPPort)
		s.crossed(t, ctx, "HTTP/1.1 "+target.name, payload, inboundRequests(world.EchoHTTPPort), 1, func() error {
			r, proto, err := s.getProto(ctx, s.client, httpHost, "/http1?size="+strconv.Itoa(payload), false)
			if err != nil {
				return err
			}
			if proto != 1 {
				return fmt.Errorf("answered over HTTP/%d", proto)
			}
			return checkReport(r)
		})
		s.crossed(t, ctx, "HTTP/2 "+target.name, payload, inboundRequests(world.EchoHTTPPort), 1, func() error {
			r, proto, err := s.getProto(ctx, s.client, httpHost, "/http2?size="+strconv.Itoa(payload), true)
			if err != nil {
				return err
			}
			if proto != 2 {
				return fmt.Errorf("answered over HTTP/%d", proto)
			}
			return checkReport(r)
		})
		s.crossed(t, ctx, "gRPC "+target.name, payload, inboundRequests(world.EchoGRPCPort), 1, func() error {
			return s.grpcCall(ctx, target.host+":"+strconv.Itoa(world.EchoGRPCPort), clusterA+"/"+pod)
		})
		s.crossed(t, ctx, "WebSocket "+target.name, 2*payload, inboundRequests(world.EchoHTTPPort), 1, func() error {
			return s.webSocket(ctx, httpHost, clusterA)
		})
	}
	// TCP has no Host: the client resolves the name with B's agent (as
	// its resolver would) and connects to the ClusterSetIP, which is the
	// listener bound at clientSoloTCPPort.
	addrs, err := resolver(clusterB).LookupHost(ctx, xdsconv.ClusterSetHost("solo", s.ns))
	if err != nil || len(addrs) != 1 || addrs[0] != s.soloIP {
		t.Fatalf("B resolves solo to %v (%v), want its ClusterSetIP %s", addrs, err, s.soloIP)
	}
	for _, name := range []string{"TCP by name", "TCP by ClusterSetIP"} {
		s.crossed(t, ctx, name, 2*payload, inboundTCPBytes(world.EchoTCPPort), 2*payload, func() error {
			greeting, err := s.tcpEcho(ctx, s.client, clientSoloTCPPort, payload)
			if err != nil {
				return err
			}
			if want := "causeway-echo " + clusterA + "/" + pod; greeting != want {
				return fmt.Errorf("greeting %q, want %q", greeting, want)
			}
			return nil
		})
	}
	l, err := peerLink(ctx, s.gw[clusterB], clusterA)
	if err != nil {
		t.Fatal(err)
	}
	lac, err := peerLink(ctx, s.gw[clusterA], clusterC)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("link A–B (through the WAN relay): RTT %s, %d bytes sent and %d received by B; link A–C (direct): RTT %s",
		l.RTT(), l.BytesSent, l.BytesReceived, lac.RTT())
	if l.RTT() < 2*wanDelay*9/10 {
		t.Errorf("the link A–B has an RTT of %s through a relay adding %s each way", l.RTT(), wanDelay)
	}
}

// grpcCall makes a unary call with a payload through the client's explicit
// listener with authority and checks who served it.
func (s *gatewaySuite) grpcCall(ctx context.Context, authority, wantServer string) error {
	conn, err := grpc.NewClient("passthrough:///"+s.client.Addr(clientHTTPPort),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(authority),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return dialB(ctx, "tcp", addr) }),
	)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: payload, FillServerId: true})
	if err != nil {
		return err
	}
	if resp.GetServerId() != wantServer || len(resp.GetPayload().GetBody()) != payload {
		return fmt.Errorf("served by %q with %d bytes, want %q with %d", resp.GetServerId(), len(resp.GetPayload().GetBody()), wantServer, payload)
	}
	return nil
}

// webSocket opens a WebSocket to host through the client and echoes one
// payload-sized message.
func (s *gatewaySuite) webSocket(ctx context.Context, host, wantCluster string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: dialB}}
	c, resp, err := websocket.Dial(ctx, "ws://"+s.client.Addr(clientHTTPPort)+echo.WebSocketPath, &websocket.DialOptions{HTTPClient: hc, Host: host}) //nolint:bodyclose // The handshake response has no body to close.
	if err != nil {
		return err
	}
	defer func() { _ = c.CloseNow() }()
	if got := resp.Header.Get(echo.HeaderCluster); got != wantCluster {
		return fmt.Errorf("the WebSocket was accepted by cluster %q, want %q", got, wantCluster)
	}
	c.SetReadLimit(2 * payload)
	msg := bytes.Repeat([]byte("w"), payload)
	if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		return err
	}
	typ, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageBinary || !bytes.Equal(got, msg) {
		return fmt.Errorf("echoed %d bytes of type %v, want the %d sent", len(got), typ, len(msg))
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

// tcpEcho connects to a client sidecar's TCP listener, reads the echo's
// greeting, and sends n bytes that must come back.
func (s *gatewaySuite) tcpEcho(ctx context.Context, via *clusterset.Sidecar, port, n int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := dialB(ctx, "tcp", via.Addr(port))
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	greeting, err := readLine(c)
	if err != nil {
		return "", fmt.Errorf("read the greeting: %w", err)
	}
	msg := bytes.Repeat([]byte("t"), n)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return greeting, fmt.Errorf("read the echo: %w", err)
	}
	if err := <-errc; err != nil {
		return greeting, err
	}
	if !bytes.Equal(got, msg) {
		return greeting, errors.New("the echo differs from what was sent")
	}
	return greeting, nil
}

// readLine reads up to a newline, a byte at a time.
func readLine(c net.Conn) (string, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			return b.String(), err
		}
		if one[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(one[0])
	}
}

// testIdentity: the destination sidecar in A authorises the real source:
// B's client (its SPIFFE ID) is let in; the intruder, a workload of the
// same namespace in B with another ServiceAccount, is refused over HTTP
// and TCP, though it reaches A through the same gateways. And A's sidecar
// knows the source runs in B: a rule denying sources in A or C does not
// catch the client, one denying sources in B does.
func (s *gatewaySuite) testIdentity(t *testing.T) {
	ctx := testContext(t, time.Minute)
	server := s.servers[clusterA]
	tunnels := `causeway_proxy_hbone_tunnels_total{direction="inbound",result="ok"}`
	denied := `causeway_proxy_requests_denied_total{filter="rbac"}`
	before, err := sidecarMetric(ctx, server, tunnels)
	if err != nil {
		t.Fatal(err)
	}
	deniedBefore, err := sidecarMetric(ctx, server, denied)
	if err != nil {
		t.Fatal(err)
	}
	host := s.soloName(world.EchoHTTPPort)
	expect := func(via *clusterset.Sidecar, path string, want int) {
		t.Helper()
		_, err := s.get(ctx, via, host, path, false)
		code := http.StatusOK
		if se, ok := errors.AsType[*statusError](err); ok {
			code = se.code
		} else if err != nil {
			t.Errorf("GET %s from %s: %v", path, via.Pod, err)
			return
		}
		if code != want {
			t.Errorf("GET %s from %s: %d (%v), want %d", path, via.Pod, code, err, want)
		}
	}
	expect(s.client, "/as-client", http.StatusOK)
	expect(s.intruder, "/as-intruder", http.StatusForbidden)
	if d, err := sidecarMetric(ctx, server, denied); err != nil || d-deniedBefore < 1 {
		t.Errorf("A's sidecar counted %v requests denied by RBAC (%v), want the intruder's", d-deniedBefore, err)
	}
	if _, err := s.tcpEcho(ctx, s.client, clientSoloTCPPort, 10); err != nil {
		t.Errorf("the client over TCP: %v", err)
	}
	if greeting, err := s.tcpEcho(ctx, s.intruder, clientSoloTCPPort, 10); err == nil || greeting != "" {
		t.Errorf("the intruder over TCP got greeting %q (%v); want the connection closed before the workload", greeting, err)
	}
	after, err := sidecarMetric(ctx, server, tunnels)
	if err != nil {
		t.Fatal(err)
	}
	// Both clients' inner HBONE sessions ended at A's sidecar.
	if after-before < 2 {
		t.Errorf("A's sidecar accepted %v HBONE tunnels during the test, want at least 2 (client and intruder)", after-before)
	}
	// The source's cluster, as A's sidecar sees it: B.
	expect(s.client, "/from-b/x", http.StatusOK)
	expect(s.client, "/not-from-b/x", http.StatusForbidden)
}

// sidecarMetric reads a series from a sidecar's metrics, from its own
// cluster (under isolation only it reaches the pod).
func sidecarMetric(ctx context.Context, side *clusterset.Sidecar, prefix string) (float64, error) {
	return scrape(ctx, w.Cluster(side.Cluster).HTTPClient(5*time.Second), "http://"+side.AdminAddr()+"/metrics", prefix)
}

func gatewayMetric(ctx context.Context, g *clusterset.Gateway, prefix string) (float64, error) {
	return scrape(ctx, w.Cluster(g.Cluster).HTTPClient(5*time.Second), "http://"+g.AdminAddr()+"/metrics", prefix)
}

// scrape sums the samples whose line starts with prefix.
func scrape(ctx context.Context, hc *http.Client, url, prefix string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// memberCA loads a member's intermediate CA and the trust bundle from the
// hub (as an attacker who stole them would hold them).
func memberCA(t testing.TB, ctx context.Context, member string) (*pki.CA, []byte) {
	t.Helper()
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: causewayv1alpha1.MemberNamespace(member), Name: identity.CASecretName}
	if err := clients["hub"].Get(ctx, key, &sec); err != nil {
		t.Fatalf("hub: get %s: %v", key, err)
	}
	ca, err := pki.LoadCA(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatalf("load %s's CA: %v", member, err)
	}
	return ca, sec.Data[identity.CASecretBundleKey]
}

// svid signs an SVID for id with ca and writes its chain, key and the
// bundle to files, for the link probe.
type svid struct {
	cert                          tls.Certificate
	certFile, keyFile, bundleFile string
}

func newSVID(t testing.TB, ca *pki.CA, bundle []byte, id spiffeid.ID) svid {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ca.SignPublicKey(key.Public(), id, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := svid{
		cert:     tls.Certificate{Certificate: sv.ChainDER(), PrivateKey: key, Leaf: sv.Leaf()},
		certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), bundleFile: filepath.Join(dir, "roots.pem"),
	}
	for path, data := range map[string][]byte{
		out.certFile:   sv.ChainPEM(),
		out.keyFile:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		out.bundleFile: bundle,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
