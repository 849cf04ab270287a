package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// backend is a real echo workload on loopback.
type backend struct {
	pod  string
	addr string
}

func startEcho(t testing.TB, pod, proto string) backend {
	t.Helper()
	s, err := echo.Listen(echo.Config{
		Identity:      echo.Identity{Pod: pod, Namespace: "default", Cluster: "test"},
		Listeners:     []echo.Listener{{Addr: "127.0.0.1:0", Protocol: proto}},
		ShutdownGrace: time.Second,
		Logger:        discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return backend{pod: pod, addr: s.Addrs()[0].String()}
}

// harness is a proxy with two explicit bindings: "http" (an HTTP
// connection manager using route configuration "routes") and "tcp".
type harness struct {
	store    *Store
	proxy    *Proxy
	httpAddr string
	tcpAddr  string
	cancel   context.CancelFunc
	done     chan error
}

func startProxy(t *testing.T) *harness {
	t.Helper()
	store := NewStore()
	p := New(Config{
		Store:    store,
		Bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "http"}, {Addr: "127.0.0.1:0", Listener: "tcp"}},
		Logger:   discardLogger(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{store: store, proxy: p, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		addrs := p.Addrs()
		if addrs["http"] != "" && addrs["tcp"] != "" {
			h.httpAddr, h.tcpAddr = addrs["http"], addrs["tcp"]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("proxy did not bind its listeners")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("proxy drain: %v", err)
		}
	})
	return h
}

// configure installs a listener "http" with the given virtual hosts, a
// TCP listener "tcp" to cluster "tcp", and clusters with endpoints.
func (h *harness) configure(t *testing.T, version string, vhosts []*routev3.VirtualHost, clusters map[string][]string, http2Clusters map[string]bool, tcpCluster string) {
	t.Helper()
	var cmsgs, emsgs []proto.Message
	for name, addrs := range clusters {
		cmsgs = append(cmsgs, edsCluster(t, name, http2Clusters[name], clusterv3.Cluster_ROUND_ROBIN))
		emsgs = append(emsgs, cla(t, name, addrs...))
	}
	apply(t, h.store, cdsType, version, cmsgs...)
	apply(t, h.store, edsType, version, emsgs...)
	apply(t, h.store, rdsType, version, &routev3.RouteConfiguration{Name: "routes", VirtualHosts: vhosts})
	ls := []proto.Message{hcmListener(t, "http", "routes", true)}
	if tcpCluster != "" {
		ls = append(ls, tcpListener(t, "tcp", tcpCluster, 9000))
	}
	apply(t, h.store, ldsType, version, ls...)
}

type echoReply struct {
	Identity struct {
		Pod string `json:"pod"`
	} `json:"identity"`
	Pod     string      `json:"pod"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"`
}

func (r echoReply) pod() string {
	if r.Pod != "" {
		return r.Pod
	}
	return r.Identity.Pod
}

func get(t *testing.T, c *http.Client, url, host string, hdr map[string]string) (int, echoReply, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r echoReply
	_ = json.Unmarshal(body, &r)
	return resp.StatusCode, r, resp.Header
}

func TestHTTPRoutingSplitsAndHeaders(t *testing.T) {
	a, b := startEcho(t, "a", echo.ProtocolHTTP), startEcho(t, "b", echo.ProtocolHTTP)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{
		Name:    "echo",
		Domains: []string{"echo.default.svc.cluster.local", "echo.default.svc.cluster.local:80", "echo"},
		Routes: []*routev3.Route{
			{
				Match:                prefixMatch("/only-b"),
				Action:               routeTo("b"),
				RequestHeadersToAdd:  headerOpts("x-route", "only-b"),
				ResponseHeadersToAdd: headerOpts("x-served-by", "proxy"),
			},
			{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
					Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "yes"},
					}},
				}}},
				Action: routeTo("a"),
			},
			{
				Match: prefixMatch("/"),
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(80)}, {Name: "b", Weight: wrapperspb.UInt32(20)}},
				}}}},
			},
		},
	}}
	h.configure(t, "1", vhosts, map[string][]string{"a": {a.addr}, "b": {b.addr}}, nil, "")
	c := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + h.httpAddr

	code, r, hdr := get(t, c, url+"/only-b/x", "echo.default.svc.cluster.local", nil)
	if code != 200 || r.pod() != "b" || hdr.Get("X-Served-By") != "proxy" || r.Headers.Get("X-Route") != "only-b" {
		t.Fatalf("/only-b: code %d pod %q response headers %v request headers %v", code, r.pod(), hdr, r.Headers)
	}
	if code, r, _ := get(t, c, url+"/", "echo", map[string]string{"x-canary": "yes"}); code != 200 || r.pod() != "a" {
		t.Fatalf("header match: code %d pod %q", code, r.pod())
	}
	if code, _, _ := get(t, c, url+"/", "unknown.example", nil); code != http.StatusNotFound {
		t.Fatalf("unknown host: code %d, want 404", code)
	}
	counts := map[string]int{}
	const n = 1000
	for range n {
		code, r, _ := get(t, c, url+"/split", "echo.default.svc.cluster.local:80", nil)
		if code != 200 {
			t.Fatalf("split: code %d", code)
		}
		counts[r.pod()]++
	}
	if got := float64(counts["a"]) / n; got < 0.74 || got > 0.86 {
		t.Fatalf("80/20 split gave %v", counts)
	}
}

func headerOpts(kv ...string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: kv[i], Value: kv[i+1]}})
	}
	return out
}

func TestHTTP2AndGRPCThroughOneListener(t *testing.T) {
	web := startEcho(t, "web", echo.ProtocolHTTP)
	g := startEcho(t, "grpc", echo.ProtocolGRPC)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{
		{Name: "web", Domains: []string{"web"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("web")}}},
		// A retry policy on a streaming route must not make the proxy read
		// the request body ahead (the bidi stream below would stall).
		{Name: "grpc", Domains: []string{"grpc", "grpc:9090"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "grpc"},
			RetryPolicy:      &routev3.RetryPolicy{RetryOn: "unavailable,reset", NumRetries: wrapperspb.UInt32(2)},
		}}}}},
	}
	h.configure(t, "1", vhosts, map[string][]string{"web": {web.addr}, "grpc": {g.addr}}, map[string]bool{"grpc": true}, "")

	// h2c prior knowledge from the client; HTTP/1.1 to the endpoint.
	var h2cOnly http.Protocols
	h2cOnly.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &h2cOnly}}
	code, r, _ := get(t, h2c, "http://"+h.httpAddr+"/h2", "web", nil)
	if code != 200 || r.pod() != "web" {
		t.Fatalf("h2c: code %d pod %q", code, r.pod())
	}

	conn, err := grpc.NewClient(h.httpAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc:9090"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true, ResponseSize: 10})
	if err != nil {
		t.Fatalf("unary call: %v", err)
	}
	if resp.GetServerId() == "" {
		t.Fatalf("unary call: no server id in %v", resp)
	}
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(10 + i)}}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("bidi recv %d: %v", i, err)
		}
		if len(got.GetPayload().GetBody()) != 10+i {
			t.Fatalf("bidi %d: payload %d bytes", i, len(got.GetPayload().GetBody()))
		}
	}
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi end: %v", err)
	}
}

func TestWebSocketAndTCP(t *testing.T) {
	web := startEcho(t, "web", echo.ProtocolHTTP)
	tcp := startEcho(t, "tcp", echo.ProtocolTCP)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{Name: "web", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("web")}}}}
	h.configure(t, "1", vhosts, map[string][]string{"web": {web.addr}, "tcp": {tcp.addr}}, nil, "tcp")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, "ws://"+h.httpAddr+"/ws", nil)
	if res != nil && res.Body != nil {
		// Only set (to the buffered error body) when the handshake failed.
		res.Body.Close()
	}
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	defer func() { _ = ws.CloseNow() }()
	ws.SetReadLimit(1 << 20)
	for _, msg := range []string{"hello", strings.Repeat("x", 70000)} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("websocket echo: got %d bytes, want %d", len(got), len(msg))
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")

	c, err := net.DialTimeout("tcp", h.tcpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || !strings.Contains(greeting, "tcp") {
		t.Fatalf("tcp greeting %q: %v", greeting, err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("tcp echo %q: %v", line, err)
	}
	// Half-close: the endpoint sees EOF and closes; we see EOF.
	_ = c.(*net.TCPConn).CloseWrite()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after half-close: %v, want EOF", err)
	}
}

func TestRetriesTimeoutsAndUpgradeRefused(t *testing.T) {
	good := startEcho(t, "good", echo.ProtocolHTTP)
	h := startProxy(t)
	// A listener that accepts and closes at once: a reset before headers.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	go func() {
		for {
			c, err := dead.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	retry := &routev3.RetryPolicy{RetryOn: "reset,connect-failure,5xx", NumRetries: wrapperspb.UInt32(3), RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: prefixMatch("/retry"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "mixed"}, RetryPolicy: retry, Timeout: durationpb.New(5 * time.Second),
		}}},
		{Match: prefixMatch("/noretry"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "mixed"}, RetryPolicy: &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(0)},
		}}},
		{Match: prefixMatch("/default"), Action: routeTo("mixed")},
		{Match: prefixMatch("/slow"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "good"}, Timeout: durationpb.New(200 * time.Millisecond),
		}}},
		{Match: prefixMatch("/"), Action: routeTo("good")},
	}}}
	h.configure(t, "1", vhosts, map[string][]string{"good": {good.addr}, "mixed": {good.addr, dead.Addr().String()}}, nil, "")
	c := &http.Client{Timeout: 5 * time.Second}
	url := "http://" + h.httpAddr

	for i := range 20 {
		if code, r, _ := get(t, c, url+"/retry", "x", nil); code != 200 || r.pod() != "good" {
			t.Fatalf("retry %d: code %d pod %q", i, code, r.pod())
		}
	}
	// A route without a retry policy gets the default, as Istio's
	// sidecars do: a request that never reached an endpoint is tried on
	// another.
	for i := range 20 {
		if code, r, _ := get(t, c, url+"/default", "x", nil); code != 200 || r.pod() != "good" {
			t.Fatalf("default retry %d: code %d pod %q", i, code, r.pod())
		}
	}
	failed := 0
	for range 20 {
		if code, _, _ := get(t, c, url+"/noretry", "x", nil); code != 200 {
			if code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
				t.Fatalf("reset without retries: code %d, want 503 or 502", code)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("without retries no request failed: the dead endpoint was never picked")
	}
	start := time.Now()
	if code, _, _ := get(t, c, url+"/slow?delay=2s", "x", nil); code != http.StatusGatewayTimeout {
		t.Fatalf("timeout: code %d, want 504", code)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("timeout took %s", el)
	}

	// An endpoint that answers an Upgrade with 200 gets no tunnel: the
	// client sees an ordinary response and the connection stays HTTP.
	conn, err := net.Dial("tcp", h.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered with %d by a non-upgrading endpoint", resp.StatusCode)
	}
	fmt.Fprintf(conn, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the connection is no longer HTTP after a refused upgrade: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after refused upgrade: %d", resp.StatusCode)
	}
}

func TestBadConfigIsRejectedAndOldConfigServes(t *testing.T) {
	a := startEcho(t, "a", echo.ProtocolHTTP)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("a")}}}}
	h.configure(t, "1", vhosts, map[string][]string{"a": {a.addr}}, nil, "")
	c := &http.Client{Timeout: 5 * time.Second}

	bad := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(unclosed"}}},
		Action: routeTo("a"),
	}}}}
	err := applyErr(t, h.store, rdsType, "2", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: bad})
	if err == nil || !strings.Contains(err.Error(), "regex") {
		t.Fatalf("a bad regex was accepted or misreported: %v", err)
	}
	dup := []*routev3.VirtualHost{
		{Name: "x", Domains: []string{"same"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("a")}}},
		{Name: "y", Domains: []string{"same"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("a")}}},
	}
	if err := applyErr(t, h.store, rdsType, "3", &routev3.RouteConfiguration{Name: "routes", VirtualHosts: dup}); err == nil {
		t.Fatal("duplicate domains were accepted")
	}
	maglev := edsCluster(t, "broken", false, clusterv3.Cluster_MAGLEV)
	maglev.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(4)}}
	if err := applyErr(t, h.store, cdsType, "2", maglev); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a Maglev table size that is not prime was accepted or misreported: %v", err)
	}
	if v := h.store.Versions()[rdsType]; v != "1" {
		t.Fatalf("route version after rejections is %q, want 1", v)
	}
	if code, r, _ := get(t, c, "http://"+h.httpAddr+"/", "x", nil); code != 200 || r.pod() != "a" {
		t.Fatalf("old config stopped serving: code %d pod %q", code, r.pod())
	}
}

func TestUpdateDoesNotDropInFlightRequests(t *testing.T) {
	a, b := startEcho(t, "a", echo.ProtocolHTTP), startEcho(t, "b", echo.ProtocolHTTP)
	h := startProxy(t)
	vh := func(cluster string) []*routev3.VirtualHost {
		return []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo(cluster)}}}}
	}
	h.configure(t, "1", vh("a"), map[string][]string{"a": {a.addr}, "b": {b.addr}}, nil, "")
	c := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for range 10 {
		wg.Go(func() {
			code, r, _ := get(t, c, "http://"+h.httpAddr+"/?delay=500ms", "x", nil)
			results <- fmt.Sprintf("%d/%s", code, r.pod())
		})
	}
	time.Sleep(100 * time.Millisecond) // let the requests reach the endpoint
	h.configure(t, "2", vh("b"), map[string][]string{"b": {b.addr}}, nil, "")
	wg.Wait()
	close(results)
	for r := range results {
		if r != "200/a" {
			t.Fatalf("in-flight request got %s during an update that removed its cluster, want 200/a", r)
		}
	}
	if code, r, _ := get(t, c, "http://"+h.httpAddr+"/", "x", nil); code != 200 || r.pod() != "b" {
		t.Fatalf("after update: code %d pod %q", code, r.pod())
	}
}

func TestDrainFinishesInFlightRequests(t *testing.T) {
	a := startEcho(t, "a", echo.ProtocolHTTP)
	store := NewStore()
	p := New(Config{Store: store, Bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "http"}}, Logger: discardLogger(), DrainTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == ""; time.Sleep(5 * time.Millisecond) {
		addr = p.Addrs()["http"]
		if time.Now().After(deadline) {
			t.Fatal("no bind")
		}
	}
	h := &harness{store: store}
	vhosts := []*routev3.VirtualHost{{Name: "x", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("a")}}}}
	h.configure(t, "1", vhosts, map[string][]string{"a": {a.addr}}, nil, "")
	if !p.Ready() {
		t.Fatal("not ready after LDS and CDS were applied")
	}
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/?delay=700ms")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if code := <-got; code != 200 {
		t.Fatalf("in-flight request during drain: %d", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if p.Ready() {
		t.Fatal("ready after drain")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after drain")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
