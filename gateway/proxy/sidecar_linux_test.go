package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// The sidecar test runs the proxy and a workload as child processes (this
// test binary, re-executed) in a network namespace the test creates, with
// the real iptables capture rules. The xDS server runs in the test
// process on a unix socket, which crosses network namespaces.
const (
	childEnv     = "CAUSEWAY_PROXY_TEST_CHILD"
	childArgsEnv = "CAUSEWAY_PROXY_TEST_ARGS"
	proxyGID     = 1337
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "proxy":
		var o Options
		if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &o); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, stop := signalContext()
		defer stop()
		if err := Serve(ctx, o); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "echo":
		var cfg echo.Config
		if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signalContext()
		defer stop()
		if err := echo.Run(ctx, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testNS is a network namespace made with `ip netns add` for one test.
type testNS struct {
	name   string
	handle netns.NsHandle
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		if _, err := os.Stat("/usr/sbin/iptables"); err != nil {
			t.Fatal("iptables is missing: install the Debian package iptables (.ci/run does)")
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := &testNS{name: "cw-proxy-" + hex.EncodeToString(b[:])}
	run(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	h, err := netns.GetFromName(ns.name)
	if err != nil {
		t.Fatal(err)
	}
	ns.handle = h
	t.Cleanup(func() { _ = h.Close() })
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
	run(t, "ip", "netns", "exec", ns.name, "ip", "addr", "add", "10.250.0.2/32", "dev", "lo")
	// A default route, as a pod has, so service VIPs are routable and
	// reach the OUTPUT chain; nothing behind it answers.
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "set", "eth0", "up")
	run(t, "ip", "netns", "exec", ns.name, "ip", "link", "set", "eth0-peer", "up")
	run(t, "ip", "netns", "exec", ns.name, "ip", "route", "add", "default", "dev", "eth0")
	return ns
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// dial opens a TCP connection from inside the namespace: the socket is
// made on a thread that has entered it, which then goes back.
func (ns *testNS) dial(ctx context.Context, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.handle); err != nil {
			ch <- result{nil, err}
			return
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err := netns.Set(orig); err != nil {
			// This thread is stuck in the namespace: let it die with the
			// goroutine instead of returning it to the scheduler.
			ch <- result{c, err}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// start runs this test binary as a child in the namespace.
func (ns *testNS) start(t *testing.T, role string, args any, gid uint32) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childArgsEnv+"="+string(js))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: gid, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return cmd
}

// xdsServer is a go-control-plane ADS server on a unix socket.
type xdsServer struct {
	cache cachev3.SnapshotCache
	sock  string
}

func startXDS(t *testing.T) *xdsServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "cw-xds-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "xds.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(context.Background(), cache, nil))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return &xdsServer{cache: cache, sock: sock}
}

func (x *xdsServer) set(t *testing.T, node, version string, res map[string][]types.Resource) {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("inconsistent test snapshot: %v", err)
	}
	if err := x.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

// TestSidecarCaptureRedirectsOutboundTraffic is the sidecar story: a
// workload in its own network namespace dials a service VIP that nothing
// listens on; the iptables rules the proxy installed redirect the
// connection to the proxy, which reads the original destination, routes
// it (HTTP by the VIP's listener, TCP likewise) and connects to the
// endpoint. The proxy's own connections are not captured (its group).
func TestSidecarCaptureRedirectsOutboundTraffic(t *testing.T) {
	ns := newTestNS(t)
	x := startXDS(t)
	ns.start(t, "echo", echo.Config{
		Identity:  echo.Identity{Pod: "server", Namespace: "default", Cluster: "test"},
		Listeners: []echo.Listener{{Addr: "10.250.0.2:8080", Protocol: echo.ProtocolHTTP}, {Addr: "10.250.0.2:9000", Protocol: echo.ProtocolTCP}},
	}, 0)

	httpCluster := xdsconv.ClusterName(80, "", "web.default.svc.cluster.local")
	tcpCluster := xdsconv.ClusterName(9000, "", "db.default.svc.cluster.local")
	routeName := xdsconv.RouteName("web.default.svc.cluster.local", 80)
	web := hcmListener(t, xdsconv.ListenerName("10.96.0.10", 80), routeName, true)
	web.Address = sockAddr("10.96.0.10", 80)
	db := tcpListener(t, xdsconv.ListenerName("10.96.0.11", 9000), tcpCluster, 9000)
	db.Address = sockAddr("10.96.0.11", 9000)
	virtual := &listenerv3.Listener{
		Name:           xdsconv.VirtualOutboundListener,
		Address:        sockAddr("0.0.0.0", xdsconv.VirtualOutboundPort),
		UseOriginalDst: wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpv3.TcpProxy{
				StatPrefix: "passthrough", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: xdsconv.PassthroughCluster},
			})},
		}}}},
	}
	passthrough := &clusterv3.Cluster{
		Name: xdsconv.PassthroughCluster, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED,
	}
	node := "sidecar~10.250.0.3~client.default"
	x.set(t, node, "1", map[string][]types.Resource{
		ldsType: {virtual, web, db},
		rdsType: {&routev3.RouteConfiguration{Name: routeName, VirtualHosts: []*routev3.VirtualHost{{
			Name: "web", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo(httpCluster)}},
		}}}},
		cdsType: {edsCluster(t, httpCluster, false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(t, tcpCluster, false, clusterv3.Cluster_ROUND_ROBIN), passthrough},
		edsType: {cla(t, httpCluster, "10.250.0.2:8080"), cla(t, tcpCluster, "10.250.0.2:9000")},
	})
	ns.start(t, "proxy", Options{
		Mode: xdsconv.ModeSidecar, XDSAddr: "unix://" + x.sock, NodeID: node,
		Capture: true, CaptureGID: proxyGID, AdminAddr: "127.0.0.1:15000", DrainTimeout: time.Second,
	}, proxyGID)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return ns.dial(ctx, addr) },
		DisableKeepAlives: true,
	}}
	waitFor(ctx, t, "proxy ready", func() error {
		resp, err := client.Get("http://127.0.0.1:15000/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	// HTTP to the VIP: captured, routed, forwarded.
	var r echoReply
	waitFor(ctx, t, "HTTP through the capture", func() error {
		resp, err := client.Get("http://10.96.0.10/hello")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(&r)
	})
	if r.pod() != "server" || r.Path != "/hello" {
		t.Fatalf("reply %+v", r)
	}
	// TCP to the other VIP.
	c, err := ns.dial(ctx, "10.96.0.11:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "server") {
		t.Fatalf("tcp greeting %q: %v", line, err)
	}
	fmt.Fprint(c, "over the capture\n")
	if line, err := br.ReadString('\n'); err != nil || line != "over the capture\n" {
		t.Fatalf("tcp echo %q: %v", line, err)
	}
	// A destination the mesh does not know passes through to where it
	// was going (the ORIGINAL_DST cluster).
	resp, err := client.Get("http://10.250.0.2:8080/direct")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pass-through: %d", resp.StatusCode)
	}
	// The admin endpoint shows what was applied.
	resp, err = client.Get("http://127.0.0.1:15000/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Versions map[string]string `json:"versions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dump)
	resp.Body.Close()
	if err != nil || dump.Versions[ldsType] != "1" || dump.Versions[edsType] != "1" {
		t.Fatalf("config dump versions %v: %v", dump.Versions, err)
	}

	// A route configuration the proxy cannot apply (an invalid RE2
	// regex) is NACKed with the reason, and the last good configuration
	// keeps serving.
	bad := map[string][]types.Resource{
		ldsType: {virtual, web, db},
		rdsType: {&routev3.RouteConfiguration{Name: routeName, VirtualHosts: []*routev3.VirtualHost{{
			Name: "web", Domains: []string{"*"}, Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/(unclosed"}}},
				Action: routeTo(httpCluster),
			}},
		}}}},
		cdsType: {edsCluster(t, httpCluster, false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(t, tcpCluster, false, clusterv3.Cluster_ROUND_ROBIN), passthrough},
		edsType: {cla(t, httpCluster, "10.250.0.2:8080"), cla(t, tcpCluster, "10.250.0.2:9000")},
	}
	x.set(t, node, "2", bad)
	waitFor(ctx, t, "the NACK in the config dump", func() error {
		resp, err := client.Get("http://127.0.0.1:15000/config_dump")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var d struct {
			Client struct {
				Types map[string]struct {
					Version, RejectedVersion, RejectError string
				} `json:"types"`
			} `json:"xdsClient"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			return err
		}
		rds := d.Client.Types[rdsType]
		if rds.RejectedVersion != "2" || !strings.Contains(rds.RejectError, "regex") || rds.Version != "1" {
			return fmt.Errorf("RDS status %+v", rds)
		}
		return nil
	})
	resp, err = client.Get("http://10.96.0.10/still")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after a NACK: %d", resp.StatusCode)
	}

	resp, err = client.Get("http://127.0.0.1:15000/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`causeway_proxy_tcp_connections_total{cluster="` + tcpCluster + `",result="ok"}`,
		`causeway_proxy_xds_updates_total{result="nack",type="RDS"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

func waitFor(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	var last error
	for {
		if last = f(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, errors.Join(last, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
