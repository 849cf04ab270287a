/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

	http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
package identity_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// startXDSOnSDS starts a stack whose SDS server also carries the agent's
// xDS services, as the agent runs them, with a translation that gives
// proxies listeners.
func startXDSOnSDS(t *testing.T, member string) (*stack, *xds.Server, int) {
	t.Helper()
	xs, err := xds.NewServer(xds.Options{Logger: testLogger().WithName("xds")})
	if err != nil {
		t.Fatal(err)
	}
	res := translate.Translate(&translate.Inputs{ClusterName: member})
	listeners := len(res.Proxy[resource.ListenerType])
	if listeners == 0 {
		t.Fatal("the translation gives proxies no listener: nothing to serve")
	}
	if err := xs.Update(res); err != nil {
		t.Fatal(err)
	}
	st := startStack(t, member, stackOptions{register: xs.Register})
	return st, xs, listeners
}

// The SDS port serves ADS too, under the same checks: a stream without a
// valid token is refused before any xDS handling (Unauthenticated, no
// response, no node registered); a valid token whose node claims another
// namespace, ServiceAccount or pod is closed with PermissionDenied, also
// when a later request on an accepted stream changes the node or when
// another identity's stream claims a node ID in use; a node
// that agrees with its token gets its listeners, over state of the world
// and delta.
func TestADSOnSDSPort(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	member := uniqueMember("ads")
	ca := newTestCA(t, member)
	st, xs, listeners := startXDSOnSDS(t, member)
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	conn := dial(t, st.addr, st.waitReady(t))
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)

	ns := newNamespace(ctx, t, "ads-")
	w := newWorkload(ctx, t, ns, "web")
	attackerNS := newNamespace(ctx, t, "attacker-")
	attacker := newWorkload(ctx, t, attackerNS, "web")
	// Claims w's identity without a pod, so that only the namespace check
	// stands between the attacker's token and w's configuration.
	victimNode := func() *corev3.Node { return node("victim", ns, "web", "") }

	refused := map[string]struct {
		tok  string
		node func() *corev3.Node
		want codes.Code
	}{
		"no token":        {node: w.node, want: codes.Unauthenticated},
		"garbage token":   {tok: "not-a-token", node: w.node, want: codes.Unauthenticated},
		"other namespace": {tok: attacker.token, node: victimNode, want: codes.PermissionDenied},
		"other SA":        {tok: w.token, node: func() *corev3.Node { return node("sa", ns, "admin", w.pod.Name) }, want: codes.PermissionDenied},
		"other pod":       {tok: w.token, node: func() *corev3.Node { return node("pod", ns, "web", "someone-else") }, want: codes.PermissionDenied},
		"no metadata":     {tok: w.token, node: func() *corev3.Node { return &corev3.Node{Id: "bare"} }, want: codes.PermissionDenied},
		"no node":         {tok: w.token, node: func() *corev3.Node { return nil }, want: codes.InvalidArgument},
	}
	for name, tc := range refused {
		t.Run("sotw/"+name, func(t *testing.T) {
			s, err := ads.StreamAggregatedResources(withToken(ctx, tc.tok))
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Send(&discoveryv3.DiscoveryRequest{Node: tc.node(), TypeUrl: resource.ListenerType})
			resp, err := s.Recv()
			if err == nil {
				t.Fatalf("got a response with %d resources, want %s", len(resp.GetResources()), tc.want)
			}
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
		t.Run("delta/"+name, func(t *testing.T) {
			s, err := ads.DeltaAggregatedResources(withToken(ctx, tc.tok))
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: tc.node(), TypeUrl: resource.ListenerType})
			resp, err := s.Recv()
			if err == nil {
				t.Fatalf("got a response with %d resources, want %s", len(resp.GetResources()), tc.want)
			}
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	if nodes := xs.Nodes(); len(nodes) != 0 {
		t.Fatalf("the xDS server registered refused nodes: %v", nodes)
	}

	t.Run("sotw/agreeing node", func(t *testing.T) {
		s := openADS(ctx, t, ads, w.token, w.node())
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("a node that agrees with its token is refused: %v", err)
		}
		if resp.GetTypeUrl() != resource.ListenerType || len(resp.GetResources()) != listeners {
			t.Fatalf("got %d resources of %s, want %d listeners", len(resp.GetResources()), resp.GetTypeUrl(), listeners)
		}
		if _, ok := xs.Nodes()[w.node().GetId()]; !ok {
			t.Fatalf("node %s not registered: %v", w.node().GetId(), xs.Nodes())
		}
		// Another identity may not take over the node ID, even with
		// metadata that agrees with its own token.
		hijack := openADS(ctx, t, ads, attacker.token, node(w.node().GetId(), attackerNS, "web", attacker.pod.Name))
		if resp, err := hijack.Recv(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("another identity's stream for the node ID: got %v (response %v), want PermissionDenied", err, resp)
		}
		// The ACK names the attacker's namespace: the stream is closed.
		_ = s.Send(&discoveryv3.DiscoveryRequest{
			Node: node(w.node().GetId(), attackerNS, "web", ""), TypeUrl: resource.ListenerType,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
		})
		if resp, err := s.Recv(); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a request changing the node's namespace: got %v (response %v), want PermissionDenied", err, resp)
		}
	})
	t.Run("delta/agreeing node", func(t *testing.T) {
		s, err := ads.DeltaAggregatedResources(withToken(ctx, w.token))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: w.node(), TypeUrl: resource.ListenerType}); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err != nil {
			t.Fatalf("a node that agrees with its token is refused: %v", err)
		}
		if len(resp.GetResources()) != listeners {
			t.Fatalf("got %d resources, want %d listeners", len(resp.GetResources()), listeners)
		}
	})
}

func openADS(ctx context.Context, t *testing.T, ads discoveryv3.AggregatedDiscoveryServiceClient, token string, n *corev3.Node) grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse] {
	t.Helper()
	s, err := ads.StreamAggregatedResources(withToken(ctx, token))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	return s
}

// One xDS server on both ports, as the agent runs it: the plaintext
// port's and the SDS port's go-control-plane servers number their streams
// from 1 each, and the streams stay apart. A plaintext stream and an
// authenticated one, both stream 1 of their server, each keep their own
// node: the plaintext node's ACK is its own, and the authenticated
// stream's node was checked.
func TestADSOnBothPorts(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	member := uniqueMember("ports")
	ca := newTestCA(t, member)
	st, xs, _ := startXDSOnSDS(t, member)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { served <- xs.Serve(sctx, lis) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("plaintext xDS: %v", err)
		}
	})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	secure := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, st.addr, st.waitReady(t)))
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	plain := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	w := newWorkload(ctx, t, newNamespace(ctx, t, "ports-"), "web")

	p := openADS(ctx, t, plain, "", &corev3.Node{Id: "plain"})
	presp, err := p.Recv()
	if err != nil {
		t.Fatalf("plaintext stream: %v", err)
	}
	s := openADS(ctx, t, secure, w.token, w.node())
	if _, err := s.Recv(); err != nil {
		t.Fatalf("authenticated stream: %v", err)
	}
	if err := p.Send(&discoveryv3.DiscoveryRequest{
		Node: &corev3.Node{Id: "plain"}, TypeUrl: resource.ListenerType, VersionInfo: presp.GetVersionInfo(), ResponseNonce: presp.GetNonce(),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if acked, _ := xs.Acked("plain"); acked[resource.ListenerType] != presp.GetVersionInfo() {
			return fmt.Errorf("node plain acked %v, want listeners %s", acked, presp.GetVersionInfo())
		}
		return nil
	})
	if acked, _ := xs.Acked(w.node().GetId()); acked[resource.ListenerType] != "" {
		t.Fatalf("the plaintext stream's ACK went to the authenticated node: %v", acked)
	}
}

// sidecarNode is w's node as a sidecar that says it takes HBONE.
func sidecarNode(id string, w workload) *corev3.Node {
	n := node(id, w.ns, w.sa, w.pod.Name)
	n.Metadata.Fields[xdsconv.NodeMetaMode] = structpb.NewStringValue(xdsconv.ModeSidecar)
	n.Metadata.Fields[xdsconv.NodeMetaHBONE] = structpb.NewStringValue("true")
	return n
}

// A sidecar's claim that its pod takes HBONE counts only from a stream
// authenticated as that pod's ServiceAccount, and only while the stream
// is open: the same claim over the plaintext port sends nobody into
// tunnels.
func TestHBONEPodsFromAuthenticatedSidecars(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	member := uniqueMember("hbone")
	ca := newTestCA(t, member)
	st, xs, _ := startXDSOnSDS(t, member)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- xs.Serve(sctx, lis) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("plaintext xDS: %v", err)
		}
	})
	changed := make(chan struct{}, 8)
	xs.OnHBONEPodsChanged(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	writeCASecret(ctx, t, member, caSecretData(t, ca.inter, ca.root))
	secure := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, st.addr, st.waitReady(t)))
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	plain := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ns := newNamespace(ctx, t, "hbone-")
	api, other := newWorkload(ctx, t, ns, "api"), newWorkload(ctx, t, ns, "other")

	// Plaintext: registered, but not trusted to say so.
	p := openADS(ctx, t, plain, "", sidecarNode("plain-claim", other))
	if _, err := p.Recv(); err != nil {
		t.Fatalf("plaintext stream: %v", err)
	}
	if pods := xs.HBONEPods(); len(pods) != 0 {
		t.Fatalf("a plaintext claim counted: %v", pods)
	}

	sctx2, closeStream := context.WithCancel(ctx)
	s := openADS(sctx2, t, secure, api.token, sidecarNode("api-sidecar", api))
	if _, err := s.Recv(); err != nil {
		t.Fatalf("authenticated sidecar: %v", err)
	}
	want := api.ns + "/" + api.pod.Name
	if pods := xs.HBONEPods(); len(pods) != 1 || !pods[want] {
		t.Fatalf("HBONE pods %v, want only %s", pods, want)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notice when the sidecar connected")
	}
	closeStream()
	eventually(t, 10*time.Second, func() error {
		if pods := xs.HBONEPods(); len(pods) != 0 {
			return fmt.Errorf("HBONE pods %v after the stream closed", pods)
		}
		return nil
	})
}
