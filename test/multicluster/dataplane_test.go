package multicluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// Ports of this file's proxy on the west cluster's infrastructure address.
const (
	dataplaneProxyPort = 15080
	dataplaneAdminPort = 15000
)

// TestDataPlaneThroughTheAgent is the data-plane story on real clusters:
// west's agent serves xDS; a causeway-proxy in west (explicit listener)
// and a proxyless gRPC client both learn the services from it. A service
// exported from west and east is reached by its clusterset.local name and
// stays in west (locality priority) until west's endpoints go, then moves
// to east; an HTTPRoute splits a service's traffic 80/20.
func TestDataPlaneThroughTheAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns := uniqueNS(t)
	for _, c := range []string{"west", "east"} {
		deployEcho(t, ctx, c, ns, "echo", 2)
		export(t, ctx, c, ns, "echo")
	}
	for _, name := range []string{"front", "front-v1", "front-v2"} {
		deployEcho(t, ctx, "west", ns, name, 1)
	}
	eventually(t, 90*time.Second, "west imports echo from west and east", func(ctx context.Context) error {
		slices, err := importSlices(ctx, "west", ns, "echo")
		if err != nil {
			return err
		}
		if len(slices["west"]) != 2 || len(slices["east"]) != 2 {
			return fmt.Errorf("imported endpoints %v", slices)
		}
		return nil
	})

	west := w.Cluster("west")
	proxyAddr := west.InfraAddr(dataplaneProxyPort)
	adminAddr := west.InfraAddr(dataplaneAdminPort)
	proc, err := w.Run("proxy-west", "causeway-proxy", "--mode=node", "--cluster=west", "--node-id=node~west~dataplane-test",
		"--xds-addr="+west.InfraAddr(clusterset.XDSPort), "--listen="+proxyAddr+"=explicit_http", "--admin-addr="+adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()
	hc := w.HTTPClient(5 * time.Second)
	eventually(t, 30*time.Second, "the proxy is ready", func(ctx context.Context) error {
		resp, err := hc.Get("http://" + adminAddr + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("ready: %d", resp.StatusCode)
		}
		return nil
	})
	through := func(host, path string) (echo.HTTPReport, error) {
		req, err := http.NewRequest(http.MethodGet, "http://"+proxyAddr+path, nil)
		if err != nil {
			return echo.HTTPReport{}, err
		}
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			return echo.HTTPReport{}, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return echo.HTTPReport{}, fmt.Errorf("%s%s: %d %s", host, path, resp.StatusCode, body)
		}
		var r echo.HTTPReport
		return r, json.Unmarshal(body, &r)
	}
	local := fmt.Sprintf("echo.%s.svc.cluster.local:8080", ns)
	global := fmt.Sprintf("echo.%s.svc.clusterset.local:8080", ns)
	eventually(t, 30*time.Second, "the local service through the proxy", func(context.Context) error {
		r, err := through(local, "/hello")
		if err == nil && (r.Cluster != "west" || r.Path != "/hello") {
			err = fmt.Errorf("served by %s/%s path %s", r.Cluster, r.Pod, r.Path)
		}
		return err
	})
	eventually(t, 30*time.Second, "the cluster-set service through the proxy", func(context.Context) error {
		_, err := through(global, "/")
		return err
	})
	for i := range 40 {
		r, err := through(global, "/")
		if err != nil {
			t.Fatal(err)
		}
		if r.Cluster != "west" {
			t.Fatalf("request %d to %s left the local cluster for %s while west has endpoints", i, global, r.Cluster)
		}
	}

	// A proxyless gRPC client, configured by the same agent.
	fwd, err := w.Forward(0, west.InfraAddr(clusterset.XDSPort))
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	grpcClient := proxylessWorldClient(t, fwd.Addr, fmt.Sprintf("xds:///echo.%s.svc.clusterset.local:%d", ns, 9090))
	eventually(t, 30*time.Second, "a proxyless gRPC call", func(ctx context.Context) error {
		resp, err := grpcClient.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
		if err == nil && resp.GetServerId()[:5] != "west/" {
			err = fmt.Errorf("served by %s", resp.GetServerId())
		}
		return err
	})

	// An HTTPRoute on front splits its traffic 80/20.
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "front-split"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: new(gwv1.Group("")), Kind: new(gwv1.Kind("Service")), Name: "front"}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{
				{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "front-v1", Port: new(gwv1.PortNumber(8080))}, Weight: new(int32(80))}},
				{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "front-v2", Port: new(gwv1.PortNumber(8080))}, Weight: new(int32(20))}},
			}}},
		},
	}
	if err := clients["west"].Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	front := fmt.Sprintf("front.%s.svc.cluster.local:8080", ns)
	eventually(t, 30*time.Second, "the split is in force", func(context.Context) error {
		r, err := through(front, "/")
		if err == nil && r.Pod[:len("front-v")] != "front-v" {
			err = fmt.Errorf("served by %s", r.Pod)
		}
		return err
	})
	counts := map[string]int{}
	const n = 400
	for range n {
		r, err := through(front, "/")
		if err != nil {
			t.Fatal(err)
		}
		counts[r.Pod[:len("front-v1")]]++
	}
	if share := float64(counts["front-v1"]) / n; share < 0.72 || share > 0.88 {
		t.Fatalf("80/20 split gave %v", counts)
	}
	eventually(t, 30*time.Second, "the route reports Accepted", func(ctx context.Context) error {
		var got gwv1.HTTPRoute
		if err := clients["west"].Get(ctx, client.ObjectKeyFromObject(route), &got); err != nil {
			return err
		}
		for _, p := range got.Status.Parents {
			for _, c := range p.Conditions {
				if c.Type == string(gwv1.RouteConditionAccepted) && c.Status == metav1.ConditionTrue {
					return nil
				}
			}
		}
		return fmt.Errorf("status %+v", got.Status.Parents)
	})

	// West's echo goes away: the cluster-set name moves to east, for the
	// proxy and for the proxyless client.
	var dep appsv1.Deployment
	if err := clients["west"].Get(ctx, client.ObjectKeyFromObject(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "echo"}}), &dep); err != nil {
		t.Fatal(err)
	}
	dep.Spec.Replicas = new(int32(0))
	if err := clients["west"].Update(ctx, &dep); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 60*time.Second, "the cluster-set service is served by east", func(context.Context) error {
		for range 5 {
			r, err := through(global, "/")
			if err != nil {
				return err
			}
			if r.Cluster != "east" {
				return fmt.Errorf("served by %s", r.Cluster)
			}
		}
		return nil
	})
	t.Logf("west's endpoints removed: the proxy sent every request to east after %s", time.Since(start).Round(10*time.Millisecond))
	eventually(t, 30*time.Second, "proxyless gRPC is served by east", func(ctx context.Context) error {
		resp, err := grpcClient.UnaryCall(ctx, &testgrpc.SimpleRequest{FillServerId: true})
		if err == nil && resp.GetServerId()[:5] != "east/" {
			err = fmt.Errorf("served by %s", resp.GetServerId())
		}
		return err
	})

	// The agent goes away: the proxy keeps its last configuration and
	// serves; when the agent is back, the proxy reconnects.
	cs.Agent("west").Stop()
	defer func() {
		if exited, _ := cs.Agent("west").Exited(); exited {
			_ = cs.StartAgent("west")
		}
	}()
	xdsConnected := func() (bool, error) {
		resp, err := hc.Get("http://" + adminAddr + "/config_dump")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var dump struct {
			Client struct {
				Connected bool `json:"connected"`
			} `json:"xdsClient"`
		}
		err = json.NewDecoder(resp.Body).Decode(&dump)
		return dump.Client.Connected, err
	}
	eventually(t, 30*time.Second, "the proxy sees the agent gone", func(context.Context) error {
		if up, err := xdsConnected(); err != nil || up {
			return fmt.Errorf("connected %v: %w", up, err)
		}
		return nil
	})
	for range 20 {
		if r, err := through(global, "/"); err != nil || r.Cluster != "east" {
			t.Fatalf("without the agent: %v (served by %s)", err, r.Cluster)
		}
	}
	if err := cs.StartAgent("west"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the proxy reconnects to the agent", func(context.Context) error {
		if up, err := xdsConnected(); err != nil || !up {
			return fmt.Errorf("connected %v: %w", up, err)
		}
		return nil
	})
	if r, err := through(global, "/"); err != nil || r.Cluster != "east" {
		t.Fatalf("after the agent came back: %v (served by %s)", err, r.Cluster)
	}
}

// proxylessWorldClient is a gRPC client whose xDS bootstrap points at an
// agent (through a host forward) and whose connections to endpoints are
// made inside the world's network namespace.
func proxylessWorldClient(t *testing.T, xdsAddr, target string) testgrpc.TestServiceClient {
	t.Helper()
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": "proxyless~" + t.Name()},
	})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return w.DialContext(ctx, "tcp", addr) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}
