package multicluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/hbone"
	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// linkDownLimit is how soon a gateway must notice that its peer is gone
// (the links' idle timeout), plus what polling its /links adds to the
// measurement.
const (
	linkIdleTimeout = 3 * time.Second
	pollInterval    = 50 * time.Millisecond
	linkDownLimit   = linkIdleTimeout + 4*pollInterval
)

// gatewayID is the SPIFFE ID of cluster's gateway.
func (s *gatewaySuite) gatewayID(t *testing.T, cluster string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromSegments(s.td, "cluster", cluster, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// linkProbe runs the link-probe helper inside the namespace: a link to
// gw's QUIC address presenting sv, then a stream to each authority.
func (s *gatewaySuite) linkProbe(t *testing.T, ctx context.Context, sv svid, gw *clusterset.Gateway, authorities ...string) linkProbeResult {
	t.Helper()
	args := []string{
		"--cert=" + sv.certFile, "--key=" + sv.keyFile, "--bundle=" + sv.bundleFile,
		"--udp=" + gw.LinkAddr(), "--expect=" + s.gatewayID(t, gw.Cluster).String(), "--wait=6s",
	}
	for _, a := range authorities {
		args = append(args, "--authority="+a)
	}
	exe, args, err := helperArgs(helperLinkProbe, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.NS.Exec(ctx, nil, exe, args...)
	if err != nil {
		t.Fatalf("link probe: %v", err)
	}
	res, err := parseLinkProbe(out)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// testRefusals: a gateway is never an open proxy. A peer with B's gateway
// identity (its certificate signed with B's real intermediate) links to
// A's gateway, and every stream it asks for that is not an endpoint of a
// service A exports is refused and counted; a workload's SVID or another
// trust domain's cannot open a link at all. On B's side, a workload's
// tunnel to a destination that is no cluster-set endpoint is refused too.
func (s *gatewaySuite) testRefusals(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	a := w.Cluster(clusterA)
	caB, bundlePEM := memberCA(t, ctx, clusterB)
	gwA := s.gw[clusterA]

	refusedIn := `causeway_gateway_refused_total{direction="inbound",reason="not_exported"}`
	before, err := gatewayMetric(ctx, gwA, refusedIn)
	if err != nil {
		t.Fatal(err)
	}
	exported := netip.AddrPortFrom(s.servers[clusterA].PodIP, clusterset.HBONEPort).String()
	want := map[string]string{
		world.HostPort(s.hiddenIP, world.EchoHTTPPort): "refused", // a Service A does not export
		a.InfraAddr(6443): "refused", // A's API server
		world.HostPort(s.servers[clusterC].PodIP.String(), world.EchoHTTPPort): "refused", // an endpoint in C, not A
		exported: "ok", // the exported endpoint's HBONE port
	}
	var authorities []string
	for k := range want {
		authorities = append(authorities, k)
	}
	res := s.linkProbe(t, ctx, newSVID(t, caB, bundlePEM, s.gatewayID(t, clusterB)), gwA, authorities...)
	if !res.Up {
		t.Fatalf("a peer with B's gateway identity could not link to A: %s", res.LastError)
	}
	for authority, verdict := range want {
		if got := res.Streams[authority]; !strings.HasPrefix(got, verdict) {
			t.Errorf("stream to %s through A's gateway: %q, want %s", authority, got, verdict)
		}
	}
	after, err := gatewayMetric(ctx, gwA, refusedIn)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 3 {
		t.Errorf("%s grew by %v, want at least 3", refusedIn, after-before)
	}

	// A workload's SVID, valid in the trust domain, is no gateway's.
	workload, err := spiffeid.FromSegments(s.td, "ns", s.ns, "sa", "intruder")
	if err != nil {
		t.Fatal(err)
	}
	if res := s.linkProbe(t, ctx, newSVID(t, caB, bundlePEM, workload), gwA, exported); res.Up {
		t.Errorf("a workload SVID (%s) opened a link to A's gateway", workload)
	} else {
		t.Logf("workload SVID refused: %s", res.LastError)
	}
	// Another trust domain's gateway identity.
	otherTD := spiffeid.RequireTrustDomainFromString("elsewhere.example")
	root, err := pki.NewRoot(otherTD, pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.NewIntermediate(clusterB, 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign := spiffeid.RequireFromSegments(otherTD, "cluster", clusterB, "gateway")
	if res := s.linkProbe(t, ctx, newSVID(t, inter, bundlePEM, foreign), gwA, exported); res.Up {
		t.Errorf("a gateway of another trust domain (%s) opened a link to A's gateway", foreign)
	} else {
		t.Logf("other trust domain refused: %s", res.LastError)
	}

	// B's gateway takes tunnels from B's workloads only to endpoints of
	// cluster-set services in other clusters.
	bundle, err := pki.ParseBundle(s.td, bundlePEM)
	if err != nil {
		t.Fatal(err)
	}
	sv := newSVID(t, caB, bundlePEM, workload)
	gwIDB := s.gatewayID(t, clusterB)
	hb := &hbone.Client{
		Bundle:      bundle,
		Certificate: func() (*tls.Certificate, error) { return &sv.cert, nil },
		ExpectPeer: func(id spiffeid.ID) error {
			if id != gwIDB {
				return fmt.Errorf("peer %s is not B's gateway", id)
			}
			return nil
		},
		DialContext: dialB,
	}
	defer func() { _ = hb.Close() }()
	refusedOut := `causeway_gateway_refused_total{direction="outbound",reason="unknown_destination"}`
	before, err = gatewayMetric(ctx, s.gw[clusterB], refusedOut)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{world.HostPort(s.hiddenIP, world.EchoHTTPPort), a.InfraAddr(6443)} {
		conn, err := hb.Dial(ctx, s.gw[clusterB].HBONEAddr(), netip.MustParseAddrPort(dst))
		if err == nil {
			_ = conn.Close()
			t.Errorf("B's gateway opened a tunnel to %s, which no cluster-set service has", dst)
			continue
		}
		if se, ok := errors.AsType[*hbone.StatusError](err); !ok || se.Code/100 != 4 {
			t.Errorf("tunnel to %s through B's gateway: %v, want a 4xx refusal", dst, err)
		}
	}
	after, err = gatewayMetric(ctx, s.gw[clusterB], refusedOut)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 2 {
		t.Errorf("%s grew by %v, want at least 2", refusedOut, after-before)
	}
	conn, err := hb.Dial(ctx, s.gw[clusterB].HBONEAddr(), netip.MustParseAddrPort(exported))
	if err != nil {
		t.Errorf("a tunnel to A's exported endpoint %s through B's gateway: %v", exported, err)
	} else {
		_ = conn.Close()
	}
}

// waitLink polls gw's link to peer every pollInterval until ok holds, and
// returns when it first did.
func waitLink(ctx context.Context, gw *clusterset.Gateway, peer string, limit time.Duration, ok func(linkapi.Link) bool) (time.Time, linkapi.Link, error) {
	deadline := time.Now().Add(limit)
	var last linkapi.Link
	var lastErr error
	for time.Now().Before(deadline) {
		l, err := peerLink(ctx, gw, peer)
		if err == nil && ok(l) {
			return time.Now(), l, nil
		}
		last, lastErr = l, err
		select {
		case <-ctx.Done():
			return time.Time{}, last, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
	if lastErr != nil {
		return time.Time{}, last, fmt.Errorf("gateway %s's link to %s: not as wanted after %s: %w", gw.Cluster, peer, limit, lastErr)
	}
	return time.Time{}, last, fmt.Errorf("gateway %s's link to %s: not as wanted after %s (last %+v)", gw.Cluster, peer, limit, last)
}

func isUp(l linkapi.Link) bool   { return l.State == linkapi.StateUp }
func isDown(l linkapi.Link) bool { return l.State != linkapi.StateUp }

// testGatewayKilled: A's gateway dies (SIGKILL: no goodbye); B notices
// within the idle timeout, and the link comes back when A's gateway
// returns, with traffic through it.
func (s *gatewaySuite) testGatewayKilled(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s.waitHealthy(t)
	gwA, gwB := s.gw[clusterA], s.gw[clusterB]
	gwA.Kill()
	killed := time.Now()
	t.Cleanup(func() {
		if exited, _ := gwA.Proc().Exited(); exited {
			ctx, cancel := cleanupContext()
			defer cancel()
			_ = gwA.Start(ctx)
		}
	})
	seen, _, err := waitLink(ctx, gwB, clusterA, 10*time.Second, isDown)
	if err != nil {
		t.Fatal(err)
	}
	detect := seen.Sub(killed)
	t.Logf("A's gateway killed: B saw its link down after %s", detect.Round(time.Millisecond))
	fmt.Printf("gateway killed: link down detected after %s\n", detect.Round(time.Millisecond))
	if detect > linkDownLimit {
		t.Errorf("B took %s to see the link to A's dead gateway down, want at most %s (idle timeout %s)", detect, linkDownLimit, linkIdleTimeout)
	}

	if err := gwA.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	up, l, err := waitLink(ctx, gwB, clusterA, 20*time.Second, isUp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("A's gateway restarted: the link was up again after %s, over %s", up.Sub(restarted).Round(time.Millisecond), l.Transport)
	eventually(t, 20*time.Second, "the client reaches A again", func(ctx context.Context) error {
		_, err := s.get(ctx, s.client, s.soloName(world.EchoHTTPPort), "/after-restart", false)
		return err
	})
}

// testUDPBlocked: UDP between A's gateway and the address B publishes is
// dropped (a firewall that lets only TCP through). The link falls back to
// HTTP/2 over TCP+TLS and traffic continues over it; when UDP passes
// again the link returns to QUIC.
func (s *gatewaySuite) testUDPBlocked(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s.waitHealthy(t)
	gwA, gwB := s.gw[clusterA], s.gw[clusterB]
	undo, err := w.BlockUDP(gwA.IP, s.linkAddrB.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = undo() })
	blocked := time.Now()

	// Requests keep coming; the first that succeeds over the TCP link
	// ends the interruption.
	var failed int
	var firstOK time.Time
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := s.get(rctx, s.client, s.soloName(world.EchoHTTPPort), "/udp-blocked", false)
		cancel()
		if err != nil {
			failed++
			continue
		}
		if l, err := peerLink(ctx, gwB, clusterA); err == nil && l.State == linkapi.StateUp && l.Transport == linkapi.TransportTCP {
			firstOK = time.Now()
			break
		}
	}
	if firstOK.IsZero() {
		l, err := peerLink(ctx, gwB, clusterA)
		hint := ""
		if err == nil && l.Transport == linkapi.TransportQUIC {
			hint = "; the link stayed on QUIC, so its datagrams did not come from A's gateway address: link dials must bind the --link-addr IP"
		}
		t.Fatalf("with UDP blocked, no request succeeded over a TCP link within 45 s (B's link to A: %+v, %v)%s", l, err, hint)
	}
	t.Logf("UDP blocked: traffic flowed again over TCP+TLS after %s (%d requests failed meanwhile)", firstOK.Sub(blocked).Round(time.Millisecond), failed)
	fmt.Printf("UDP blocked: traffic over TCP+TLS after %s\n", firstOK.Sub(blocked).Round(time.Millisecond))
	// Traffic continues over the TCP link, every request.
	before, _ := linkBytes(t, ctx, gwB, clusterA)
	for i := range 20 {
		if _, err := s.get(ctx, s.client, s.soloName(world.EchoHTTPPort), fmt.Sprintf("/over-tcp?size=%d", payload/10), false); err != nil {
			t.Fatalf("request %d over the TCP link: %v", i, err)
		}
	}
	after, l := linkBytes(t, ctx, gwB, clusterA)
	if l.Transport != linkapi.TransportTCP || after-before < 20*payload/10 {
		t.Errorf("over the fallback: %d bytes crossed B's link to A on %q, want %d on tcp", after-before, l.Transport, 20*payload/10)
	}

	if err := undo(); err != nil {
		t.Fatal(err)
	}
	unblocked := time.Now()
	back, _, err := waitLink(ctx, gwB, clusterA, 30*time.Second, func(l linkapi.Link) bool {
		return l.State == linkapi.StateUp && l.Transport == linkapi.TransportQUIC
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("UDP passes again: the link was back on QUIC after %s (QUIC retried every 5 s)", back.Sub(unblocked).Round(time.Millisecond))
	if _, err := s.get(ctx, s.client, s.soloName(world.EchoHTTPPort), "/back-on-quic", false); err != nil {
		t.Fatal(err)
	}
}

// testPartition: A's gateway falls off the network. B's requests to echo,
// exported from A and C, move to C's endpoints; the failover time — from
// the partition until every request is served by C — is measured and
// printed. When the partition heals the link to A comes back.
func (s *gatewaySuite) testPartition(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s.waitHealthy(t)
	host := s.echoName(world.EchoHTTPPort)
	served := map[string]int{}
	eventually(t, 30*time.Second, "B's requests to echo reach A and C", func(ctx context.Context) error {
		r, err := s.get(ctx, s.client, host, "/spread", false)
		if err != nil {
			return err
		}
		served[r.Cluster]++
		if served[clusterA] == 0 || served[clusterC] == 0 {
			return fmt.Errorf("served so far: %v", served)
		}
		return nil
	})

	undo, err := w.Partition(s.gw[clusterA].IP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = undo() })
	partitioned := time.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		// Reported, not waited for: failover is measured from the
		// partition whatever B's gateway notices.
		seen, _, err := waitLink(ctx, s.gw[clusterB], clusterA, 10*time.Second, isDown)
		if err != nil {
			t.Errorf("B's link to A's partitioned gateway did not go down (link dials must come from the gateway's address): %v", err)
			return
		}
		t.Logf("A partitioned: B saw its link down after %s", seen.Sub(partitioned).Round(time.Millisecond))
	})
	// Failover is done when a run of consecutive requests is all served
	// by C; it took from the partition to the first of them.
	const run = 10
	var streak int
	var streakStart time.Time
	failed := 0
	outcomes := map[string]int{} // what the requests got, for a failure
	for deadline := time.Now().Add(60 * time.Second); streak < run && time.Now().Before(deadline); {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := s.get(rctx, s.client, host, "/partition", false)
		cancel()
		switch {
		case err == nil && r.Cluster == clusterC:
			if streak == 0 {
				streakStart = sent
			}
			streak++
			outcomes["served by "+clusterC]++
		default:
			streak = 0
			if err != nil {
				failed++
				msg := err.Error()
				if se, ok := errors.AsType[*statusError](err); ok {
					msg = fmt.Sprintf("status %d", se.code)
				} else if errors.Is(err, context.DeadlineExceeded) {
					msg = "timeout (2 s)"
				}
				outcomes[msg]++
			} else {
				outcomes["served by "+r.Cluster]++
			}
			time.Sleep(pollInterval)
		}
	}
	if streak < run {
		t.Fatalf("60 s after A's gateway was partitioned, B's requests were not all served by C; outcomes: %v", outcomes)
	}
	failover := streakStart.Sub(partitioned)
	t.Logf("A partitioned: B's requests all went to C after %s (%d requests failed meanwhile)", failover.Round(time.Millisecond), failed)
	fmt.Printf("gateway partition failover: %s (%d failed requests)\n", failover.Round(time.Millisecond), failed)

	if err := undo(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	up, _, err := waitLink(ctx, s.gw[clusterB], clusterA, 30*time.Second, isUp)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("partition healed: the link to A was up again after %s", up.Sub(healed).Round(time.Millisecond))
	served = map[string]int{}
	eventually(t, 30*time.Second, "B's requests reach A again", func(ctx context.Context) error {
		r, err := s.get(ctx, s.client, host, "/healed", false)
		if err != nil {
			return err
		}
		if r.Cluster != clusterA {
			return fmt.Errorf("served by %s", r.Cluster)
		}
		return nil
	})
}

// testHubDown: the hub goes away entirely (causeway-hub and the hub
// cluster's API server); the members' agents keep what they have, the
// links stay up, and cross-cluster traffic is not affected, for longer
// than a lease and its grace period. Then the hub comes back.
func (s *gatewaySuite) testHubDown(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	s.waitHealthy(t)
	hub := w.Cluster(cs.Opts.Hub)
	cs.Hub().Kill()
	if err := hub.StopComponent("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if exited, _ := hub.Proc("kube-apiserver").Exited(); exited {
			if err := hub.StartComponent(ctx, "kube-apiserver"); err != nil {
				t.Errorf("restart the hub's API server: %v", err)
			}
		}
		if exited, _ := cs.Hub().Exited(); exited {
			if err := cs.StartHub(); err != nil {
				t.Errorf("restart the hub: %v", err)
			}
		}
	})
	down := time.Now()
	var n int
	for time.Since(down) < leaseDuration+gracePeriod+2*time.Second {
		for _, host := range []string{s.soloName(world.EchoHTTPPort), s.echoName(world.EchoHTTPPort)} {
			if _, err := s.get(ctx, s.client, host, "/hub-down", false); err != nil {
				t.Fatalf("%s after the hub went down: request to %s: %v", time.Since(down).Round(time.Millisecond), host, err)
			}
			n++
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, peer := range []string{clusterA, clusterC} {
		if l, err := peerLink(ctx, s.gw[clusterB], peer); err != nil || l.State != linkapi.StateUp {
			t.Errorf("with the hub down, B's link to %s: %+v (%v)", peer, l, err)
		}
	}
	t.Logf("hub down for %s: %d cross-cluster requests, none failed", time.Since(down).Round(time.Millisecond), n)

	if err := hub.StartComponent(ctx, "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	if err := cs.StartHub(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for _, m := range members {
		waitSettled(t, m)
	}
	if _, err := s.get(ctx, s.client, s.soloName(world.EchoHTTPPort), "/hub-back", false); err != nil {
		t.Fatal(err)
	}
	// The agents' watches of the hub reconnect with client-go's
	// backoff (up to 30 s, jittered), so a change made right after the
	// hub's return can take that long to reach every member. Wait for a
	// new export to reach them all, so the recovery is measured and the
	// next test starts with a working cluster set.
	exportEverywhereWithin(t, ctx, time.Minute, clusterA, uniqueNS(t), "hub-back", 1)
	t.Logf("hub back: a new export reached every member %s after the hub restarted", time.Since(back).Round(10*time.Millisecond))
}
