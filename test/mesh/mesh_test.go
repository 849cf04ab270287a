package mesh_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/gateway/proxy"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// Loopback addresses of the test's pods. Each proxy binds only its own
// (the HBONE port is the real 15008), so they do not meet other tests'.
const (
	webIP  = "127.0.71.1"
	apiIP  = "127.0.71.2"
	evilIP = "127.0.71.3"
)

// TestHBONEWithAgentIdentities is the mesh story end to end: a member's
// agent loads its CA from the hub's Secret and serves SVIDs over SDS to
// proxies that prove their ServiceAccount with a pod-bound token; the
// proxies get the agent's translation over ADS (the api pod's inbound
// listener with its AuthorizationPolicies; endpoints of pods with a
// sidecar marked for HBONE); web's requests to the api Service reach api's
// workload through an HBONE tunnel, where api's policies decide by web's
// SPIFFE ID. Then the agent rotates: a new intermediate (every SVID
// renewed) and a new root (two roots trusted during the overlap, then the
// old one gone), while traffic keeps flowing on the connections made
// before and on new ones.
func TestHBONEWithAgentIdentities(t *testing.T) {
	a := startAgent(t, "east")
	root, inter := newCA(t, "east")
	a.writeCA(t, inter, root)
	bundleFile := filepath.Join(t.TempDir(), "roots.pem")
	a.syncBundle(t, bundleFile, 1)

	web := newWorkload(t, "front", "web", map[string]string{"app": "web"})
	api := newWorkload(t, "shop", "api", map[string]string{"app": "api"})
	evil := newWorkload(t, "other", "evil", map[string]string{"app": "evil"})

	backend, err := echo.Listen(echo.Config{
		Identity: echo.Identity{Pod: "api", Namespace: "shop", Cluster: "east"},
		// In its pod's address, where the sidecar sends inbound traffic
		// (the inbound clusters are ORIGINAL_DST).
		Listeners: []echo.Listener{{Addr: net.JoinHostPort(apiIP, "0"), Protocol: echo.ProtocolHTTP}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	backendDone := make(chan struct{})
	go func() { _ = backend.Serve(ctx); close(backendDone) }()
	t.Cleanup(func() { cancel(); <-backendDone })
	port := int32(backend.Addrs()[0].(*net.TCPAddr).Port)

	// The agent's translation: Service shop/api (targetPort = the echo's
	// port) with one endpoint, api's pod, which has a sidecar; a DENY on
	// /admin and an ALLOW for web's SPIFFE ID.
	in := &translate.Inputs{
		ClusterName: "east",
		Services: []*corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.7.1", Selector: map[string]string{"app": "api"}, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP},
			}},
		}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "api-1", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: []string{apiIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: api.pod.Name},
			}},
		}},
		// No HBONEPods yet: the agent learns that api's sidecar takes
		// tunnels when it connects (below).
		AuthorizationPolicies: []*causewayv1alpha1.AuthorizationPolicy{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-admin"}, Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionDeny,
				Rules:  []causewayv1alpha1.AuthorizationRule{{To: &causewayv1alpha1.AuthorizationDestination{Paths: []string{"/admin", "/admin/*"}}}},
			}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "allow-web"}, Spec: causewayv1alpha1.AuthorizationPolicySpec{
				Action: causewayv1alpha1.AuthorizationActionAllow,
				Rules:  []causewayv1alpha1.AuthorizationRule{{From: &causewayv1alpha1.AuthorizationSource{Principals: []causewayv1alpha1.SPIFFEIDPattern{causewayv1alpha1.SPIFFEIDPattern(web.id().String())}}}},
			}},
		},
	}
	res := translate.Translate(in)
	for name, st := range res.AuthorizationPolicies {
		if len(st.Conditions) == 0 || st.Conditions[0].Status != metav1.ConditionTrue {
			t.Fatalf("policy %s not accepted: %+v", name, st.Conditions)
		}
	}
	// The agent's xDS server, on its SDS port: every proxy's ADS stream
	// is authenticated by its token and its node checked against it; the
	// api sidecar gets its pod's inbound configuration (the others are
	// clients only).
	a.xds.SetPodSource(func(ns, name string) *corev1.Pod {
		if ns == api.ns && name == api.pod.Name {
			return api.pod
		}
		return nil
	})
	if err := a.xds.Update(res); err != nil {
		t.Fatal(err)
	}

	options := func(w workload, ip string) proxy.Options {
		return proxy.Options{
			Mode: xdsconv.ModeSidecar, NodeID: w.pod.Name, Cluster: "east",
			Namespace: w.ns, Pod: w.pod.Name, ServiceAccount: w.sa,
			SDSAddr: a.addr, TokenFile: w.tokenFile, TrustBundleFile: bundleFile,
			HBONEAddr: net.JoinHostPort(ip, strconv.Itoa(xdsconv.HBONEPort)), InboundAddr: net.JoinHostPort(ip, "15006"),
			OutboundAddr: net.JoinHostPort(ip, "15001"), PodIPs: []string{ip}, AdminAddr: net.JoinHostPort(ip, "15000"),
			Bindings: []proxy.Binding{{Addr: net.JoinHostPort(ip, "15080"), Listener: xdsconv.ExplicitHTTPListener}},
		}
	}
	apiAdmin := startProxy(t, options(api, apiIP))
	webAdmin := startProxy(t, options(web, webIP))
	startProxy(t, options(evil, evilIP))

	// The sidecars said, on their authenticated streams, that they take
	// HBONE: the agent marks their pods' endpoints, with no label on the
	// pods, so web reaches api through a tunnel (mTLS by default).
	deadline := time.Now().Add(10 * time.Second)
	for !a.xds.HBONEPods()["shop/"+api.pod.Name] {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not learn that api's sidecar takes HBONE: %v", a.xds.HBONEPods())
		}
		time.Sleep(10 * time.Millisecond)
	}
	in.HBONEPods = a.xds.HBONEPods()
	if err := a.xds.Update(translate.Translate(in)); err != nil {
		t.Fatal(err)
	}
	// Until web has taken the endpoints with the tunnel mark, it would
	// reach api in plaintext (this test has no iptables capture to send
	// that into api's sidecar, which would refuse it).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		acked, current := a.xds.Acked(web.pod.Name)
		if v := current[resource.EndpointType]; v != "" && acked[resource.EndpointType] == v {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web did not take the tunnelled endpoints: acked %v, current %v", acked, current)
		}
	}

	// Requests go to each client's explicit listener, routed by Host to
	// the Service like captured traffic to its VIP would be.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var reused atomic.Int32
	send := func(from, path string) (int, string, error) {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused.Add(1)
			}
		}})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(from, "15080")+path, nil)
		if err != nil {
			return 0, "", err
		}
		req.Host = xdsconv.ServiceHost("api", "shop")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	expect := func(from, path string, want int) {
		t.Helper()
		code, body, err := send(from, path)
		if err != nil || code != want {
			t.Fatalf("GET %s from %s: %d %q %v, want %d", path, from, code, body, err, want)
		}
		if want == 200 {
			var r struct {
				Path    string      `json:"path"`
				Headers http.Header `json:"headers"`
			}
			if err := json.Unmarshal([]byte(body), &r); err != nil || r.Path != path {
				t.Fatalf("GET %s: the workload answered %q", path, body)
			}
		}
	}

	expect(webIP, "/hello", 200)
	expect(webIP, "/admin", 403)
	expect(webIP, "//admin/x", 403)
	// evil has an SVID of the trust domain too; the ALLOW names web.
	expect(evilIP, "/hello", 403)
	if got := metric(t, apiAdmin, `causeway_proxy_hbone_tunnels_total{direction="inbound",result="ok"}`); got < 2 {
		t.Fatalf("api accepted %v tunnels, want those of web and evil", got)
	}

	// Traffic runs on while the agent rotates.
	var failures, sent atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			code, _, err := send(webIP, "/flow")
			sent.Add(1)
			if err != nil || code != 200 {
				failures.Add(1)
			}
		}
	})
	stopTraffic := func() {
		close(stop)
		wg.Wait()
	}

	// A new intermediate of the same root: the agent renews every SVID.
	before := map[string]string{api.pod.Name: svidSerial(t, apiAdmin), web.pod.Name: svidSerial(t, webAdmin)}
	_, inter2 := newCAFrom(t, root, "east")
	a.writeCA(t, inter2, root)
	for name, admin := range map[string]string{api.pod.Name: apiAdmin, web.pod.Name: webAdmin} {
		eventually(t, name+" gets a renewed SVID", func() error {
			if s := svidSerial(t, admin); s == before[name] || s == "" {
				return fmt.Errorf("serial %s", s)
			}
			return nil
		})
	}
	expect(webIP, "/after-renewal", 200)

	// A new root: trusted beside the old one first, with a new
	// intermediate from it; then the old root goes.
	root2, inter3 := newCA(t, "east")
	before = map[string]string{api.pod.Name: svidSerial(t, apiAdmin), web.pod.Name: svidSerial(t, webAdmin)}
	a.writeCA(t, inter3, root, root2)
	a.syncBundle(t, bundleFile, 2)
	for name, admin := range map[string]string{api.pod.Name: apiAdmin, web.pod.Name: webAdmin} {
		eventually(t, name+" gets an SVID of the new root", func() error {
			if s := svidSerial(t, admin); s == before[name] || s == "" {
				return fmt.Errorf("serial %s", s)
			}
			return nil
		})
	}
	expect(webIP, "/overlap", 200)
	a.writeCA(t, inter3, root2)
	a.syncBundle(t, bundleFile, 1)
	// The proxies drop the old root when the agent pushes the bundle.
	for name, admin := range map[string]string{api.pod.Name: apiAdmin, web.pod.Name: webAdmin} {
		eventually(t, name+" trusts only the new root", func() error {
			if n := rootCount(t, admin); n != 1 {
				return fmt.Errorf("%d roots", n)
			}
			return nil
		})
	}
	expect(webIP, "/new-root-only", 200)
	stopTraffic()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during the rotations", n, sent.Load())
	}
	if reused.Load() == 0 {
		t.Fatal("no client connection was reused across the rotations")
	}
	t.Logf("%d requests during the rotations, none failed", sent.Load())
}

// metric reads one series from a proxy's /metrics.
func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		line := sc.Text()
		if len(line) > len(series) && line[:len(series)] == series {
			if _, err := fmt.Sscan(line[len(series):], &v); err == nil {
				return v
			}
		}
	}
	return 0
}
