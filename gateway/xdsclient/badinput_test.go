package xdsclient

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// scriptedADS is an ADS server that sends what the test tells it to, for
// input go-control-plane never produces. It serves one stream at a time.
type scriptedADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	requests  chan *discoveryv3.DiscoveryRequest
	responses chan *discoveryv3.DiscoveryResponse
}

func (s *scriptedADS) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	go func() {
		for {
			req, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case s.requests <- req:
			case <-st.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case resp := <-s.responses:
			if err := st.Send(resp); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

func startScriptedServer(t *testing.T) (*scriptedADS, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &scriptedADS{
		requests:  make(chan *discoveryv3.DiscoveryRequest, 64),
		responses: make(chan *discoveryv3.DiscoveryResponse),
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return s, lis.Addr().String()
}

func (s *scriptedADS) nextRequest(t *testing.T) *discoveryv3.DiscoveryRequest {
	t.Helper()
	select {
	case req := <-s.requests:
		return req
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a request from the client")
		return nil
	}
}

func (s *scriptedADS) send(t *testing.T, resp *discoveryv3.DiscoveryResponse) {
	t.Helper()
	select {
	case s.responses <- resp:
	case <-time.After(waitTimeout):
		t.Fatal("timed out sending a response to the client")
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatalf("anypb.New: %v", err)
	}
	return a
}

// TestBadInputIsNACKed feeds the client responses that a broken or
// hostile server could send, one step after the other on one stream, and
// checks the request each one draws. Steps depend on the ones before
// (the last accepted version, for one).
func TestBadInputIsNACKed(t *testing.T) {
	srv, addr := startScriptedServer(t)
	applier := newTestApplier()
	startClient(t, addr, applier, func(cfg *Config) {
		cfg.InitialBackoff = 20 * time.Millisecond
		cfg.MaxBackoff = 40 * time.Millisecond
	})

	// The stream opens with the wildcard requests, clusters first.
	for _, want := range []string{ClusterType, ListenerType} {
		if got := srv.nextRequest(t); got.GetTypeUrl() != want || got.GetErrorDetail() != nil {
			t.Fatalf("initial request = %v, want a %s request", got, want)
		}
	}

	const secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	goodListener := mustAny(t, &listenerv3.Listener{Name: "http"})
	badListener := mustAny(t, &listenerv3.Listener{Name: "bad"})
	steps := []struct {
		name  string
		send  []*discoveryv3.DiscoveryResponse
		apply bool // whether the Applier sees the last response
		// want describes the next request.
		wantType    string
		wantVersion string
		wantNonce   string
		wantNames   []string
		wantError   string // substring of error_detail; "" for an ACK
	}{
		{
			name:     "unknown type URL",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: secretType, VersionInfo: "s1", Nonce: "n1", Resources: []*anypb.Any{mustAny(t, &tlsv3.Secret{Name: "s"})}}},
			wantType: secretType, wantNonce: "n1", wantError: "unsupported resource type",
		},
		{
			name:     "resource of another type",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: ListenerType, VersionInfo: "1", Nonce: "n2", Resources: []*anypb.Any{mustAny(t, &clusterv3.Cluster{Name: "c"})}}},
			wantType: ListenerType, wantNonce: "n2", wantError: "has type",
		},
		{
			name:     "malformed Any",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: ListenerType, VersionInfo: "1", Nonce: "n3", Resources: []*anypb.Any{{TypeUrl: ListenerType, Value: []byte{0xff, 0xff, 0xff}}}}},
			apply:    true,
			wantType: ListenerType, wantNonce: "n3", wantError: "decode",
		},
		{
			name:     "good listeners",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: ListenerType, VersionInfo: "1", Nonce: "n4", Resources: []*anypb.Any{goodListener}}},
			apply:    true,
			wantType: ListenerType, wantVersion: "1", wantNonce: "n4",
		},
		{
			name:     "rejected listeners NACK with the last accepted version",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: ListenerType, VersionInfo: "2", Nonce: "n5", Resources: []*anypb.Any{goodListener, badListener}}},
			apply:    true,
			wantType: ListenerType, wantVersion: "1", wantNonce: "n5", wantError: `listener "bad"`,
		},
		{
			name:     "identical rejection resent is NACKed again, paced",
			send:     []*discoveryv3.DiscoveryResponse{{TypeUrl: ListenerType, VersionInfo: "2", Nonce: "n6", Resources: []*anypb.Any{goodListener, badListener}}},
			apply:    true,
			wantType: ListenerType, wantVersion: "1", wantNonce: "n6", wantError: `listener "bad"`,
		},
		{
			name: "response without a type URL is ignored",
			send: []*discoveryv3.DiscoveryResponse{
				{VersionInfo: "x", Nonce: "n7"},
				{TypeUrl: ClusterType, VersionInfo: "c1", Nonce: "n8"},
			},
			apply:    true,
			wantType: ClusterType, wantVersion: "c1", wantNonce: "n8",
		},
		{
			name: "unrequested RDS response is ignored",
			send: []*discoveryv3.DiscoveryResponse{
				{TypeUrl: RouteType, VersionInfo: "r1", Nonce: "n9", Resources: []*anypb.Any{mustAny(t, &routev3.RouteConfiguration{Name: "r"})}},
				{TypeUrl: ClusterType, VersionInfo: "c2", Nonce: "n10"},
			},
			apply:    true,
			wantType: ClusterType, wantVersion: "c2", wantNonce: "n10",
		},
	}
	for _, step := range steps {
		calls := applier.callCount()
		for _, resp := range step.send {
			srv.send(t, resp)
		}
		got := srv.nextRequest(t)
		if got.GetTypeUrl() != step.wantType || got.GetVersionInfo() != step.wantVersion ||
			got.GetResponseNonce() != step.wantNonce || !slices.Equal(got.GetResourceNames(), step.wantNames) {
			t.Errorf("%s: request = %v, want type %s, version %q, nonce %q, names %v",
				step.name, got, step.wantType, step.wantVersion, step.wantNonce, step.wantNames)
		}
		detail := got.GetErrorDetail()
		switch {
		case step.wantError == "" && detail != nil:
			t.Errorf("%s: got a NACK (%v), want an ACK", step.name, detail)
		case step.wantError != "" && (detail.GetCode() != int32(codes.InvalidArgument) || !strings.Contains(detail.GetMessage(), step.wantError)):
			t.Errorf("%s: error_detail = %v, want INVALID_ARGUMENT containing %q", step.name, detail, step.wantError)
		}
		if applied := applier.callCount() > calls; applied != step.apply {
			t.Errorf("%s: Applier called = %v, want %v", step.name, applied, step.apply)
		}
	}
	if got := applier.resources(ListenerType); !slices.Equal(got, []string{"http"}) {
		t.Errorf("applied listeners = %v, want [http] from the last good response", got)
	}
	if calls := applier.callsOf(RouteType); len(calls) != 0 {
		t.Errorf("RDS applied %d times without a subscription", len(calls))
	}
}
