package xdsclient

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

var (
	configV1 = testConfig{
		listeners: map[string]string{"http": "r1"},
		clusters:  []string{"c1"},
	}
	configV2 = testConfig{
		listeners: map[string]string{"http": "r1", "api": "r2"},
		clusters:  []string{"c1", "c2"},
	}
)

func TestTypeURLsMatchGoControlPlane(t *testing.T) {
	for got, want := range map[string]string{
		ListenerType: resourcev3.ListenerType,
		ClusterType:  resourcev3.ClusterType,
		RouteType:    resourcev3.RouteType,
		EndpointType: resourcev3.EndpointType,
	} {
		if got != want {
			t.Errorf("type URL %q, want %q", got, want)
		}
	}
}

func TestInitialSync(t *testing.T) {
	for name, ordered := range map[string]bool{"unordered server": false, "ordered ADS server": true} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, "127.0.0.1:0", ordered)
			srv.setSnapshot(t, configV1.snapshot(t, "v1"))
			applier := newTestApplier()
			var connects, accepts atomic.Int32
			c := startClient(t, srv.addr, applier, func(cfg *Config) {
				cfg.Hooks.OnConnect = func() { connects.Add(1) }
				cfg.Hooks.OnAccept = func(string, string) { accepts.Add(1) }
			})

			waitFor(t, "ACKs of v1 for all four types", func() bool {
				return srv.acked(ListenerType, "v1") && srv.acked(ClusterType, "v1") &&
					srv.acked(RouteType, "v1") && srv.acked(EndpointType, "v1")
			})

			// The wildcard types are requested first, without names or
			// versions, and the first request carries the node.
			for _, typeURL := range []string{ListenerType, ClusterType} {
				first := srv.requestsOf(typeURL)[0].req
				if len(first.GetResourceNames()) != 0 || first.GetVersionInfo() != "" || first.GetResponseNonce() != "" {
					t.Errorf("first %s request = %v, want a wildcard request without version or nonce", typeURL, first)
				}
			}
			if id := srv.firstRequest().GetNode().GetId(); id != testNodeID {
				t.Errorf("node id %q on the first request, want %q", id, testNodeID)
			}

			// RDS and EDS are requested by the names the applier reports,
			// before anything of theirs was accepted.
			for typeURL, want := range map[string][]string{RouteType: {"r1"}, EndpointType: {"c1"}} {
				first := srv.requestsOf(typeURL)[0].req
				if !slices.Equal(first.GetResourceNames(), want) || first.GetVersionInfo() != "" {
					t.Errorf("first %s request = %v, want names %v and no version", typeURL, first, want)
				}
			}

			// What was applied, and what Status reports.
			for typeURL, want := range map[string][]string{
				ListenerType: {"http"}, ClusterType: {"c1"}, RouteType: {"r1"}, EndpointType: {"c1"},
			} {
				if got := applier.resources(typeURL); !slices.Equal(got, want) {
					t.Errorf("applied %s = %v, want %v", typeURL, got, want)
				}
			}
			st := c.Status()
			if !st.Connected || st.LastConnected.IsZero() {
				t.Errorf("Status connected=%v lastConnected=%v, want connected", st.Connected, st.LastConnected)
			}
			for _, typeURL := range []string{ListenerType, ClusterType, RouteType, EndpointType} {
				ts := st.Types[typeURL]
				nonces := srv.responseNonces(typeURL, "v1")
				if ts.Version != "v1" || !slices.Contains(nonces, ts.Nonce) || ts.RejectError != "" || ts.LastAccepted.IsZero() {
					t.Errorf("Status %s = %+v, want version v1, a nonce in %v, no error", typeURL, ts, nonces)
				}
			}
			if got := st.Types[RouteType].Names; !slices.Equal(got, []string{"r1"}) {
				t.Errorf("Status RDS names = %v, want [r1]", got)
			}
			if got := connects.Load(); got != 1 {
				t.Errorf("OnConnect called %d times, want 1", got)
			}
			// OnAccept runs just after the ACK is sent.
			waitFor(t, "OnAccept for the four types", func() bool { return accepts.Load() >= 4 })
		})
	}
}

func TestSnapshotUpdateResubscribes(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", false)
	srv.setSnapshot(t, configV1.snapshot(t, "v1"))
	applier := newTestApplier()
	c := startClient(t, srv.addr, applier, nil)
	waitFor(t, "v1 applied and ACKed", func() bool {
		return applier.allAt("v1") && srv.acked(RouteType, "v1") && srv.acked(EndpointType, "v1")
	})
	rdsNonce, edsNonce := c.Status().Types[RouteType].Nonce, c.Status().Types[EndpointType].Nonce

	// v2 adds a listener using a new route configuration and a new EDS
	// cluster: the client subscribes to the new names with the last
	// accepted version and nonce of RDS and EDS.
	srv.setSnapshot(t, configV2.snapshot(t, "v2"))
	waitFor(t, "v2 applied", func() bool { return applier.allAt("v2") })
	for typeURL, want := range map[string]struct {
		names []string
		nonce string
	}{
		RouteType:    {[]string{"r1", "r2"}, rdsNonce},
		EndpointType: {[]string{"c1", "c2"}, edsNonce},
	} {
		req, ok := srv.findRequest(typeURL, func(r *discoveryv3.DiscoveryRequest) bool {
			return slices.Equal(r.GetResourceNames(), want.names)
		})
		if !ok {
			t.Fatalf("no %s request for %v", typeURL, want.names)
		}
		if req.GetVersionInfo() != "v1" || req.GetResponseNonce() != want.nonce || req.GetErrorDetail() != nil {
			t.Errorf("%s subscription update = %v, want version v1 and nonce %q", typeURL, req, want.nonce)
		}
	}
	if got := applier.resources(RouteType); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("applied routes = %v, want [r1 r2]", got)
	}

	// v3 goes back to v1's content: the names shrink again.
	srv.setSnapshot(t, configV1.snapshot(t, "v3"))
	waitFor(t, "v3 applied and the RDS and EDS subscriptions shrunk", func() bool {
		st := c.Status()
		return applier.allAt("v3") && srv.acked(RouteType, "v3") &&
			slices.Equal(st.Types[RouteType].Names, []string{"r1"}) &&
			slices.Equal(st.Types[EndpointType].Names, []string{"c1"})
	})
	if got := applier.resources(ListenerType); !slices.Equal(got, []string{"http"}) {
		t.Errorf("applied listeners = %v, want [http]", got)
	}
}

func TestNACKKeepsPreviousConfig(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", false)
	srv.setSnapshot(t, configV1.snapshot(t, "v1"))
	applier := newTestApplier()
	var rejects atomic.Int32
	const initialBackoff = 100 * time.Millisecond
	c := startClient(t, srv.addr, applier, func(cfg *Config) {
		cfg.InitialBackoff = initialBackoff
		cfg.MaxBackoff = 200 * time.Millisecond
		cfg.Hooks.OnReject = func(typeURL, version string, err error) {
			if typeURL == ListenerType && version == "v2" && errors.Is(err, errBadListener) {
				rejects.Add(1)
			}
		}
	})
	waitFor(t, "v1 applied", func() bool { return applier.allAt("v1") && srv.acked(ListenerType, "v1") })

	bad := testConfig{listeners: map[string]string{"http": "r1", "bad": "r1"}, clusters: []string{"c1"}}
	srv.setSnapshot(t, bad.snapshot(t, "v2"))
	isNACK := func(r *discoveryv3.DiscoveryRequest) bool { return r.GetErrorDetail() != nil }
	waitFor(t, "the NACK of LDS v2", func() bool {
		_, ok := srv.findRequest(ListenerType, isNACK)
		return ok
	})

	nack, _ := srv.findRequest(ListenerType, isNACK)
	if got := nack.GetErrorDetail().GetCode(); got != int32(codes.InvalidArgument) {
		t.Errorf("error_detail code %d, want INVALID_ARGUMENT", got)
	}
	if msg := nack.GetErrorDetail().GetMessage(); !strings.Contains(msg, `listener "bad"`) {
		t.Errorf("error_detail message %q, want the applier's error", msg)
	}
	if nack.GetVersionInfo() != "v1" {
		t.Errorf("NACK version_info %q, want the last accepted v1", nack.GetVersionInfo())
	}
	if nonces := srv.responseNonces(ListenerType, "v2"); len(nonces) == 0 || nack.GetResponseNonce() != nonces[0] {
		t.Errorf("NACK response_nonce %q, want the nonce of the first LDS v2 response (%v)", nack.GetResponseNonce(), nonces)
	}

	// The rest of v2 is fine and accepted; the listeners stay at v1.
	waitFor(t, "CDS, EDS and RDS v2 applied", func() bool {
		return applier.version(ClusterType) == "v2" && applier.version(EndpointType) == "v2" && applier.version(RouteType) == "v2"
	})
	if got := applier.version(ListenerType); got != "v1" {
		t.Errorf("applied LDS version %q, want v1", got)
	}
	if got := applier.resources(ListenerType); !slices.Equal(got, []string{"http"}) {
		t.Errorf("applied listeners %v, want [http]", got)
	}
	st := c.Status().Types[ListenerType]
	if st.Version != "v1" || st.RejectedVersion != "v2" || !strings.Contains(st.RejectError, `listener "bad"`) || st.LastRejected.IsZero() {
		t.Errorf("Status LDS = %+v, want version v1 and the rejection of v2", st)
	}

	// go-control-plane resends the rejected version at once; the client
	// paces its identical NACKs.
	waitFor(t, "a second NACK of LDS v2", func() bool {
		n := 0
		for _, r := range srv.requestsOf(ListenerType) {
			if isNACK(r.req) {
				n++
			}
		}
		return n >= 2
	})
	var nackTimes []time.Time
	for _, r := range srv.requestsOf(ListenerType) {
		if isNACK(r.req) {
			nackTimes = append(nackTimes, r.at)
		}
	}
	if gap := nackTimes[1].Sub(nackTimes[0]); gap < initialBackoff/2 {
		t.Errorf("second NACK %v after the first, want at least %v", gap, initialBackoff/2)
	}
	if rejects.Load() < 2 {
		t.Errorf("OnReject called %d times for LDS v2, want at least 2", rejects.Load())
	}

	// A fixed snapshot is accepted and clears the rejection.
	srv.setSnapshot(t, configV2.snapshot(t, "v3"))
	waitFor(t, "v3 applied", func() bool { return applier.allAt("v3") })
	if got := applier.resources(ListenerType); !slices.Equal(got, []string{"api", "http"}) {
		t.Errorf("applied listeners %v, want [api http]", got)
	}
	if st := c.Status().Types[ListenerType]; st.Version != "v3" || st.RejectError != "" || st.RejectedVersion != "" {
		t.Errorf("Status LDS = %+v, want version v3 without rejection", st)
	}
}

func TestServerRestart(t *testing.T) {
	srv := startServer(t, "127.0.0.1:0", false)
	srv.setSnapshot(t, configV1.snapshot(t, "v1"))
	applier := newTestApplier()
	var disconnects atomic.Int32
	c := startClient(t, srv.addr, applier, func(cfg *Config) {
		cfg.Hooks.OnDisconnect = func(error) { disconnects.Add(1) }
	})
	waitFor(t, "v1 applied and ACKed", func() bool {
		return applier.allAt("v1") && srv.acked(RouteType, "v1") && srv.acked(EndpointType, "v1") &&
			srv.acked(ListenerType, "v1") && srv.acked(ClusterType, "v1")
	})

	srv.shutdown()
	waitFor(t, "Status to show the client disconnected", func() bool {
		st := c.Status()
		return !st.Connected && !st.LastDisconnected.IsZero()
	})
	st := c.Status()
	if st.LastStreamError == "" {
		t.Errorf("Status.LastStreamError empty after the server went away")
	}
	for typeURL, ts := range st.Types {
		if ts.Version != "v1" {
			t.Errorf("Status %s version %q after disconnect, want v1 kept", typeURL, ts.Version)
		}
	}
	// OnDisconnect runs just after Status changes.
	waitFor(t, "OnDisconnect", func() bool { return disconnects.Load() == 1 })
	calls := applier.callCount()
	if !applier.allAt("v1") || !slices.Equal(applier.resources(ListenerType), []string{"http"}) {
		t.Errorf("applied state changed after disconnect")
	}

	// A new server on the same address, with newer config.
	srv2 := startServer(t, srv.addr, false)
	srv2.setSnapshot(t, configV2.snapshot(t, "v2"))
	waitFor(t, "v2 applied after reconnection", func() bool { return applier.allAt("v2") })
	if applier.callCount() <= calls {
		t.Errorf("no Apply after reconnection")
	}
	if !c.Status().Connected {
		t.Errorf("Status not connected after reconnection")
	}

	// The client resumed from the versions it had accepted.
	for typeURL, names := range map[string][]string{ListenerType: nil, ClusterType: nil, RouteType: {"r1"}, EndpointType: {"c1"}} {
		reqs := srv2.requestsOf(typeURL)
		if len(reqs) == 0 {
			t.Fatalf("no %s request on the new server", typeURL)
		}
		first := reqs[0].req
		if first.GetVersionInfo() != "v1" || !slices.Equal(first.GetResourceNames(), names) || first.GetResponseNonce() != "" {
			t.Errorf("first %s request after reconnection = %v, want version v1, names %v, no nonce", typeURL, first, names)
		}
	}
	if got := applier.resources(EndpointType); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("applied endpoints = %v, want [c1 c2]", got)
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	creds := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	valid := Config{
		ServerAddress: "127.0.0.1:1",
		DialOptions:   creds,
		Node:          &corev3.Node{Id: testNodeID},
		Applier:       newTestApplier(),
	}
	tests := map[string]struct {
		mutate  func(*Config)
		wantErr string
	}{
		"no server address":     {func(c *Config) { c.ServerAddress = "" }, "ServerAddress is empty"},
		"no node":               {func(c *Config) { c.Node = nil }, "Node.Id is empty"},
		"no node id":            {func(c *Config) { c.Node = &corev3.Node{} }, "Node.Id is empty"},
		"no applier":            {func(c *Config) { c.Applier = nil }, "Applier is nil"},
		"no transport security": {func(c *Config) { c.DialOptions = nil }, "create gRPC client"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := valid
			tc.mutate(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := New(cfg).Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Run() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRunOnceAtATimeAndStopsWhileDisconnected(t *testing.T) {
	// Nothing listens on the address: Run keeps retrying until cancelled.
	lis := startServer(t, "127.0.0.1:0", false)
	addr := lis.addr
	lis.shutdown()

	c := New(Config{
		ServerAddress:  addr,
		DialOptions:    []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		Node:           &corev3.Node{Id: testNodeID},
		Applier:        newTestApplier(),
		InitialBackoff: time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "Run to start", c.running.Load)

	if err := c.Run(ctx); !errors.Is(err, errAlreadyRunning) {
		t.Errorf("second Run() = %v, want errAlreadyRunning", err)
	}
	waitFor(t, "Status to report the failed connection attempts", func() bool {
		return strings.Contains(c.Status().LastStreamError, "open ADS stream")
	})
	if st := c.Status(); st.Connected || !st.LastConnected.IsZero() {
		t.Errorf("Status = %+v with no server, want never connected", st)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}
