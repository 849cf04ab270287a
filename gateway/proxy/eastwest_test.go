package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/gateway/link"
	"github.com/causeway-mesh/causeway/gateway/xdsclient"
	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// gatewayNode is an east-west gateway running in the test process.
type gatewayNode struct {
	*meshNode
	ew   *eastWest
	stop func()
}

// startGateway starts cluster's gateway with its identity from the SDS
// agent (node name gw-<cluster>), as causeway-proxy --mode=gateway does.
func startGateway(t testing.TB, agent *sdsAgent, bundleFile, cluster string, tunnelPort uint16) *gatewayNode {
	t.Helper()
	name := "gw-" + cluster
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok-gateway\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Mode: xdsconv.ModeGateway, NodeID: name, Namespace: xdsconv.GatewayNamespace, Cluster: cluster,
		SDSAddr: agent.addr, TokenFile: tokenFile, TrustBundleFile: bundleFile, ServiceAccount: xdsconv.GatewayServiceAccount,
	}
	secrets, sds, _, err := newSDSClient(opts, discardLogger(), xdsclient.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore()
	store.UseSecrets(secrets)
	store.addHook(sds.Resubscribe)
	p := New(Config{Store: store, Identity: secrets, Cluster: cluster, TunnelPort: tunnelPort, Logger: discardLogger(), DrainTimeout: 2 * time.Second})
	ew := newEastWest(p, cluster, secrets, netip.Addr{}, LinkOptions{
		Addr: "127.0.0.1:0", KeepAlive: 200 * time.Millisecond, IdleTimeout: time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}, prometheus.NewRegistry(), discardLogger())
	gw := &gatewayNode{meshNode: &meshNode{name: name, proxy: p, store: store, secrets: secrets, sds: sds}, ew: ew}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	go func() { done <- sds.Run(ctx) }()
	go func() { done <- p.Run(ctx) }()
	go func() { done <- ew.run(ctx, "127.0.0.1:0", nil) }()
	var once sync.Once
	gw.stop = func() {
		once.Do(func() {
			cancel()
			for range 3 {
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
	t.Cleanup(gw.stop)
	waitUntil(t, name+" listens for links", func() bool { return gw.hboneAddr() != "" })
	return gw
}

func (g *gatewayNode) hboneAddr() string {
	a, _ := g.ew.hboneAddr.Load().(string)
	return a
}

func (g *gatewayNode) linkAddr(t testing.TB, transport string) string {
	t.Helper()
	if transport == "TCP" {
		return g.ew.ln.TCPAddr().String()
	}
	return g.ew.ln.UDPAddr().String()
}

func (g *gatewayNode) link(peer string) linkapi.Link {
	for _, l := range g.ew.links().Links {
		if l.Peer == peer {
			return l
		}
	}
	return linkapi.Link{}
}

// linkCluster is a plan entry as the agent sends it.
func linkCluster(peer, role, transport string, addrs ...string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 xdsconv.LinkClusterPrefix + peer,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{xdsconv.MetadataNamespace: {Fields: map[string]*structpb.Value{
			xdsconv.MetadataLinkRole:      structpb.NewStringValue(role),
			xdsconv.MetadataLinkTransport: structpb.NewStringValue(transport),
			xdsconv.MetadataPeerCluster:   structpb.NewStringValue(peer),
		}}}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: xdsconv.LinkClusterPrefix + peer},
	}
	for i, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		c.LoadAssignment.Endpoints = append(c.LoadAssignment.Endpoints, &endpointv3.LocalityLbEndpoints{
			Priority: uint32(i),
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: sockAddr(ap.Addr().String(), uint32(ap.Port())),
			}}}},
		})
	}
	return c
}

// clustersetCLA is endpoints of a cluster-set service in cluster, their
// pods serving HBONE.
func clustersetCLA(t testing.TB, name, cluster string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	c := hboneCLA(t, name, addrs...)
	for _, le := range c.Endpoints {
		for _, e := range le.LbEndpoints {
			e.Metadata.FilterMetadata[xdsconv.MetadataNamespace].Fields[xdsconv.MetadataCluster] = structpb.NewStringValue(cluster)
		}
	}
	return c
}

// crossCluster is two clusters: "a" runs api (shop/api, pod 127.0.0.1,
// an HTTP and a TCP echo behind its sidecar) exported to the cluster set;
// "b" runs web (front/web), which reaches api by its clusterset.local
// clusters through b's and a's gateways.
type crossCluster struct {
	*mesh
	gwA, gwB *gatewayNode
	httpSvc  string
	tcpSvc   string
}

// startCrossCluster plans the link between the gateways: bDials makes b's
// gateway dial a's, else a's dials b's; transport is QUIC or TCP.
func startCrossCluster(t *testing.T, in inbound, transport string, bDials bool) *crossCluster {
	t.Helper()
	m := &mesh{ca: newMeshCA(t, meshTD)}
	m.agent = startSDSAgent(t, m.ca, map[string]string{
		"tok-web": "front/web", "tok-api": "shop/api", "tok-gateway": xdsconv.GatewayNamespace + "/" + xdsconv.GatewayServiceAccount,
	})
	m.bundleFile = filepath.Join(t.TempDir(), "roots.pem")
	roots := writeBundle(t, m.bundleFile, m.ca.root)
	m.httpBE, m.tcpBE = startEcho(t, "api", echo.ProtocolHTTP), startEcho(t, "api", echo.ProtocolTCP)
	m.httpPort, m.tcpPort = netip.MustParseAddrPort(m.httpBE.addr).Port(), netip.MustParseAddrPort(m.tcpBE.addr).Port()
	for node, id := range map[string]spiffeid.ID{
		"api": apiID, "web": webID,
		"gw-a": spiffeid.RequireFromSegments(meshTD, "cluster", "a", "gateway"),
		"gw-b": spiffeid.RequireFromSegments(meshTD, "cluster", "b", "gateway"),
	} {
		chain, key, _ := m.ca.svid(t, id)
		m.agent.serve(t, node, chain, key, roots)
	}
	m.api = startNode(t, m.agent, m.bundleFile, "api", nodeOptions{ns: "shop", sa: "api", sidecar: true, cluster: "a", podAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	tunnelPort := m.api.hbonePort(t)
	m.web = startNode(t, m.agent, m.bundleFile, "web", nodeOptions{
		ns: "front", sa: "web", cluster: "b", tunnelPort: tunnelPort,
		bindings: []Binding{{Addr: "127.0.0.1:0", Listener: "out_http"}, {Addr: "127.0.0.1:0", Listener: "out_tcp"}},
	})
	c := &crossCluster{mesh: m,
		gwA:     startGateway(t, m.agent, m.bundleFile, "a", tunnelPort),
		gwB:     startGateway(t, m.agent, m.bundleFile, "b", tunnelPort),
		httpSvc: xdsconv.ClusterName(int32(m.httpPort), "", xdsconv.ClusterSetHost("api", "shop")),
		tcpSvc:  xdsconv.ClusterName(int32(m.tcpPort), "", xdsconv.ClusterSetHost("api", "shop")),
	}
	m.api.waitIdentity(t)
	m.web.waitIdentity(t)
	in.httpPort, in.tcpPort = m.httpPort, m.tcpPort
	c.configureAPI(t, "1", in)

	// Both gateways know the cluster-set service's endpoints (in a).
	services := []proto.Message{
		edsCluster(t, c.httpSvc, false, clusterv3.Cluster_ROUND_ROBIN), edsCluster(t, c.tcpSvc, false, clusterv3.Cluster_ROUND_ROBIN),
	}
	endpoints := []proto.Message{clustersetCLA(t, c.httpSvc, "a", m.httpBE.addr), clustersetCLA(t, c.tcpSvc, "a", m.tcpBE.addr)}
	planA, planB := linkCluster("b", xdsconv.LinkRoleAccept, transport), linkCluster("a", xdsconv.LinkRoleDial, transport, c.gwA.linkAddr(t, transport))
	if !bDials {
		planA, planB = linkCluster("b", xdsconv.LinkRoleDial, transport, c.gwB.linkAddr(t, transport)), linkCluster("a", xdsconv.LinkRoleAccept, transport)
	}
	apply(t, c.gwA.store, cdsType, "1", append(services, planA)...)
	apply(t, c.gwA.store, edsType, "1", endpoints...)
	apply(t, c.gwB.store, cdsType, "1", append(services, planB)...)
	apply(t, c.gwB.store, edsType, "1", endpoints...)

	// web: the cluster-set service and its cluster's gateway Service.
	apply(t, m.web.store, cdsType, "1", append(services, edsCluster(t, gatewayCluster, false, clusterv3.Cluster_ROUND_ROBIN))...)
	apply(t, m.web.store, edsType, "1", append(endpoints, cla(t, gatewayCluster, c.gwB.hboneAddr()))...)
	apply(t, m.web.store, rdsType, "1", &routev3.RouteConfiguration{Name: "out", VirtualHosts: []*routev3.VirtualHost{{
		Name: "api", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo(c.httpSvc)}},
	}}})
	apply(t, m.web.store, ldsType, "1", hcmListener(t, "out_http", "out", false), tcpListener(t, "out_tcp", c.tcpSvc, 9))

	waitUntil(t, "the link is up", func() bool {
		return c.gwB.link("a").State == linkapi.StateUp && c.gwA.link("b").State == linkapi.StateUp
	})
	return c
}

// configureAPI gives api's sidecar its inbound configuration and its
// cluster's gateway Service, as the agent does.
func (c *crossCluster) configureAPI(t testing.TB, version string, in inbound) {
	t.Helper()
	in.httpPort, in.tcpPort = c.httpPort, c.tcpPort
	ls, cs := in.resources(t)
	apply(t, c.api.store, cdsType, version, append(cs, edsCluster(t, gatewayCluster, false, clusterv3.Cluster_ROUND_ROBIN))...)
	apply(t, c.api.store, edsType, version, cla(t, gatewayCluster, c.gwA.hboneAddr()))
	apply(t, c.api.store, ldsType, version, ls...)
}

func TestGatewayCarriesTunnelsAcrossClusters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transport string
		bDials    bool
	}{
		{"QUIC, the client's gateway dials", "QUIC", true},
		{"QUIC, the server's gateway dials (streams against the link's direction)", "QUIC", false},
		{"TCP+TLS, the client's gateway dials", "TCP", true},
		{"TCP+TLS, the server's gateway dials", "TCP", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCrossCluster(t, inbound{
				httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)},
				tcpRBAC:  []*rbacv3.RBAC{allowPrincipal(webID)},
			}, tc.transport, tc.bDials)
			client := &http.Client{Timeout: 10 * time.Second}
			outHTTP := "http://" + c.web.bindingAddr(t, "out_http")
			sentBefore := c.gwB.link("a").BytesSent + c.gwB.link("a").BytesReceived

			code, r, _ := get(t, client, outHTTP+"/across", "api.shop.svc.clusterset.local", nil)
			if code != 200 || r.Path != "/across" || r.pod() != "api" {
				t.Fatalf("through the gateways: %d %+v", code, r)
			}
			// The request crossed on the link, over the planned transport.
			l := c.gwB.link("a")
			if want := map[string]string{"QUIC": linkapi.TransportQUIC, "TCP": linkapi.TransportTCP}[tc.transport]; l.Transport != want {
				t.Errorf("link transport %q, want %q", l.Transport, want)
			}
			if l.BytesSent+l.BytesReceived <= sentBefore {
				t.Errorf("no bytes crossed the link: %+v", l)
			}
			if n := testutil.ToFloat64(c.web.proxy.metrics.tunnels.WithLabelValues("gateway", "ok")); n < 1 {
				t.Errorf("web opened %v tunnels to its gateway", n)
			}
			if n := testutil.ToFloat64(c.gwA.ew.metrics.streams.WithLabelValues("inbound", "b", "ok")); n < 1 {
				t.Errorf("a's gateway carried %v streams from b", n)
			}

			// TCP, with the greeting naming the pod.
			conn, err := net.Dial("tcp", c.web.bindingAddr(t, "out_tcp"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 256)
			n, err := conn.Read(buf)
			if err != nil || n == 0 {
				t.Fatalf("TCP greeting through the gateways: %q %v", buf[:n], err)
			}

			// The destination's sidecar saw web's identity: allowing only
			// another workload now refuses web.
			c.configureAPI(t, "2", inbound{httpRBAC: []*rbacv3.RBAC{allowPrincipal(evilID)}})
			if code, _, _ := get(t, client, outHTTP+"/denied", "api.shop.svc.clusterset.local", nil); code != 403 {
				t.Errorf("with only %s allowed, web got %d, want 403", evilID, code)
			}

			// ... and its cluster, b, as the source cluster of a tunnel
			// that came through a's gateway (which api's sidecar knows as
			// its cluster's gateway).
			for i, tc := range []struct {
				allow string
				want  int
			}{{"b", 200}, {"a", 403}} {
				c.configureAPI(t, fmt.Sprint("cluster-", i), inbound{httpRBAC: []*rbacv3.RBAC{allowCluster(tc.allow)}})
				if code, _, _ := get(t, client, outHTTP+"/cluster", "api.shop.svc.clusterset.local", nil); code != tc.want {
					t.Errorf("with only cluster %s allowed, web (in b) got %d, want %d", tc.allow, code, tc.want)
				}
			}
		})
	}
}

func TestGatewayRefusesWhatIsNotExported(t *testing.T) {
	c := startCrossCluster(t, inbound{httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}}, "QUIC", true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("a peer gateway asks for an address that backs no exported service", func(t *testing.T) {
		for _, target := range []string{"127.0.0.1:22", "127.0.0.1:" + c.agent.addr[len("127.0.0.1:"):], "10.0.0.1:80"} {
			conn, err := c.gwB.ew.open(ctx, "a", target, false)
			var refused *link.RefusedError
			if !errors.As(err, &refused) {
				if conn != nil {
					_ = conn.Close()
				}
				t.Fatalf("stream to %s: %v, want refused", target, err)
			}
		}
		if n := testutil.ToFloat64(c.gwA.ew.metrics.refused.WithLabelValues("inbound", refusedNotExported)); n != 3 {
			t.Errorf("a's gateway counted %v refusals, want 3", n)
		}
	})

	t.Run("a workload asks its gateway for something that is not in another cluster", func(t *testing.T) {
		_, _, webCert := c.ca.svid(t, webID)
		hc := c.tunnelClient(t, webCert)
		for _, dst := range []string{"127.0.0.1:22", c.web.bindingAddr(t, "out_http")} {
			ap, err := netip.ParseAddrPort(dst)
			if err != nil {
				continue
			}
			_, err = hc.Dial(ctx, c.gwB.hboneAddr(), ap)
			if err == nil {
				t.Fatalf("b's gateway opened a tunnel to %s", dst)
			}
		}
		if n := testutil.ToFloat64(c.gwB.ew.metrics.refused.WithLabelValues("outbound", refusedUnknownDst)); n < 1 {
			t.Errorf("b's gateway counted %v refusals", n)
		}
	})

	t.Run("a workload identity cannot open a link", func(t *testing.T) {
		_, _, webCert := c.ca.svid(t, webID)
		d, err := link.NewDialer(link.DialerConfig{
			Name: "a", UDPAddr: c.gwA.linkAddr(t, "QUIC"), TCPAddr: c.gwA.ew.ln.TCPAddr().String(),
			Certificate: func() (*tls.Certificate, error) { return webCert, nil }, Bundle: c.gwA.ew.bundle,
			HandshakeTimeout: time.Second, MaxBackoff: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
		defer ocancel()
		if conn, err := d.Open(octx, c.httpBE.addr); err == nil {
			_ = conn.Close()
			t.Fatal("a workload SVID opened a stream on a link")
		}
	})
}

func TestStreamsFailFastWhileTheLinkIsDown(t *testing.T) {
	c := startCrossCluster(t, inbound{httpRBAC: []*rbacv3.RBAC{allowPrincipal(webID)}}, "QUIC", true)
	client := &http.Client{Timeout: 10 * time.Second}
	outHTTP := "http://" + c.web.bindingAddr(t, "out_http")
	if code, _, _ := get(t, client, outHTTP+"/before", "api.shop.svc.clusterset.local", nil); code != 200 {
		t.Fatalf("before: %d", code)
	}
	c.gwA.stop()
	waitUntil(t, "b's gateway sees the link down", func() bool { return c.gwB.link("a").State != linkapi.StateUp })
	if l := c.gwB.link("a"); l.LastError == "" {
		t.Errorf("a link that went down reports no error: %+v", l)
	}
	// The gateway answers at once instead of waiting for the link, so the
	// sidecar can move to another cluster's endpoints. (A connection
	// pooled before the link went down fails its request first: 502.)
	var codes []int
	for range 3 {
		code, _, _ := get(t, client, outHTTP+"/during", "api.shop.svc.clusterset.local", nil)
		if codes = append(codes, code); code == 503 {
			break
		}
	}
	if codes[len(codes)-1] != 503 {
		t.Errorf("while the link is down: %v, want 503 by the second request", codes)
	}
	if n := testutil.ToFloat64(c.gwB.ew.metrics.streams.WithLabelValues("outbound", "a", refusedNoLink)); n < 1 {
		t.Errorf("b's gateway counted %v streams without a link", n)
	}
}

func TestLinkPlanIsValidated(t *testing.T) {
	s := NewStore()
	for name, c := range map[string]*clusterv3.Cluster{
		"unknown role":      linkCluster("a", "both", "QUIC", "127.0.0.1:15443"),
		"unknown transport": linkCluster("a", xdsconv.LinkRoleDial, "SCTP", "127.0.0.1:15443"),
		"dial, no address":  linkCluster("a", xdsconv.LinkRoleDial, "QUIC"),
		"peer name mismatch": func() *clusterv3.Cluster {
			c := linkCluster("a", xdsconv.LinkRoleDial, "QUIC", "127.0.0.1:1")
			c.Name += "x"
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := applyErr(t, s, cdsType, name, c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("host names and priorities", func(t *testing.T) {
		c := linkCluster("a", xdsconv.LinkRoleDial, "TCP", "127.0.0.1:2", "127.0.0.1:1")
		c.LoadAssignment.Endpoints[0].Priority, c.LoadAssignment.Endpoints[1].Priority = 1, 0
		c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address = sockAddr("gw.example.com", 15443)
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		apply(t, s, cdsType, "ok", c)
		lp := s.model().links["a"]
		if lp == nil || !lp.dial || lp.quic || len(lp.addrs) != 2 || lp.addrs[0] != "127.0.0.1:1" || lp.addrs[1] != "gw.example.com:15443" {
			t.Fatalf("plan %+v", lp)
		}
	})
}

func TestGatewayAddresses(t *testing.T) {
	for _, tc := range []struct {
		o             Options
		source, admin string
		wantErr       bool
	}{
		{o: Options{Mode: xdsconv.ModeSidecar, AdminAddr: "127.0.0.1:15000"}, admin: "127.0.0.1:15000"},
		{o: Options{Mode: xdsconv.ModeSidecar, PodIPs: []string{"", "10.1.0.7,10.1.0.8"}}, source: "10.1.0.7"},
		{o: Options{Mode: xdsconv.ModeSidecar, PodIPs: []string{"not-an-ip"}}, wantErr: true},
		{o: Options{Mode: xdsconv.ModeGateway, HBONEAddr: "10.255.1.2:15008", AdminAddr: ":15000"}, source: "10.255.1.2", admin: "10.255.1.2:15000"},
		{o: Options{Mode: xdsconv.ModeGateway, HBONEAddr: ":15008", AdminAddr: "0.0.0.0:15000"}, admin: "0.0.0.0:15000"},
		{o: Options{Mode: xdsconv.ModeGateway, PodIPs: []string{"10.1.0.9"}, HBONEAddr: "10.255.1.2:15008", AdminAddr: "0.0.0.0:15000"}, source: "10.1.0.9", admin: "10.1.0.9:15000"},
	} {
		src, err := sourceAddr(tc.o)
		if (err != nil) != tc.wantErr {
			t.Errorf("%+v: error %v", tc.o, err)
			continue
		}
		if got := src.String(); tc.source != "" && got != tc.source || tc.source == "" && src.IsValid() {
			t.Errorf("%+v: source %s, want %q", tc.o, got, tc.source)
		}
		if tc.admin != "" {
			if got := reachableAdmin(tc.o); got != tc.admin {
				t.Errorf("%+v: admin %s, want %s", tc.o, got, tc.admin)
			}
		}
	}
}
