package multicluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/causeway-mesh/causeway/internal/drill"
	"github.com/causeway-mesh/causeway/test/multicluster/clusterset"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// drillWindowLimit is the test's loose bound on a drill's error window;
// the benchmark reports the real figure against the 1 s goal.
const drillWindowLimit = 5 * time.Second

// drillProbe sends GET requests for echo (exported from A and C) through
// B's client sidecar, one keep-alive connection per drill connection, and
// answers the cluster the echo report names.
func (s *gatewaySuite) drillProbe(conns int) (drill.Probe, func()) {
	clients := make([]*http.Client, conns)
	for i := range clients {
		clients[i] = &http.Client{Transport: &http.Transport{DialContext: dialB, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	}
	host := s.echoName(world.EchoHTTPPort)
	url := "http://" + s.client.Addr(clientHTTPPort) + "/drill"
	probe := func(ctx context.Context, conn int) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", err
		}
		req.Host = host
		resp, err := clients[conn].Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", errors.New("connection error")
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", errors.New("body cut short")
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		var r echo.HTTPReport
		if err := json.Unmarshal(body, &r); err != nil {
			return "", errors.New("not an echo report")
		}
		return r.Cluster, nil
	}
	closeAll := func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}
	return probe, closeAll
}

// drillOptions are the test's drill settings: 40 req/s over 4
// connections, failover and failback waited for at most 30 s.
func drillOptions(t testing.TB) drill.Options {
	return drill.Options{
		Cluster: clusterA, Rate: 40, Connections: 4, Timeout: 5 * time.Second,
		Warmup: 2 * time.Second, WarmupMax: 30 * time.Second,
		FailoverMax: 30 * time.Second, Hold: 2 * time.Second, FailbackMax: 60 * time.Second,
		Progress: func(step string) { t.Logf("drill: %s", step) },
	}
}

// partitionFault cuts A's gateway off the network.
func (s *gatewaySuite) partitionFault() drill.Fault {
	var undo func() error
	return drill.Fault{
		Name: "partition",
		Inject: func(context.Context) error {
			var err error
			undo, err = w.Partition(s.gw[clusterA].IP)
			return err
		},
		Restore: func(context.Context) error {
			if undo == nil {
				return nil
			}
			return undo()
		},
	}
}

// workloadsFault kills A's echo workloads: the Deployment scaled to zero
// and the pod's sidecar killed with it (a pod's containers die
// together). Restore scales it back and starts a sidecar for the new pod.
func (s *gatewaySuite) workloadsFault(t testing.TB) drill.Fault {
	scale := func(ctx context.Context, n int32) error {
		var dep appsv1.Deployment
		if err := clients[clusterA].Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "echo"}, &dep); err != nil {
			return err
		}
		dep.Spec.Replicas = &n
		return clients[clusterA].Update(ctx, &dep)
	}
	return drill.Fault{
		Name: "workloads killed",
		Inject: func(ctx context.Context) error {
			s.servers[clusterA].Kill()
			return scale(ctx, 0)
		},
		Restore: func(ctx context.Context) error {
			if err := scale(ctx, 1); err != nil {
				return err
			}
			eps, err := w.Cluster(clusterA).WaitReadyEndpoints(ctx, s.ns, "echo", 1, time.Minute)
			if err != nil {
				return err
			}
			side, err := cs.StartSidecar(ctx, clusterset.SidecarOptions{Cluster: clusterA, Namespace: s.ns, Pod: eps[0].Pod})
			if err != nil {
				return err
			}
			s.servers[clusterA] = side
			t.Cleanup(side.Stop)
			return nil
		},
	}
}

// testDrill runs the failover drill from B against echo, exported from A
// and C, with A's workloads killed. (The partition drill is in the
// benchmark only for now: a request in flight over the link when A is cut
// off is not failed when the link goes down, and waits for the drill's
// 5 s request timeout.) Each drill must fail
// over and back, with an error window under the loose bound; the figures
// are printed (the benchmark holds them to the goal).
func (s *gatewaySuite) testDrill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func() drill.Fault
	}{
		{"WorkloadsKilled", func() drill.Fault { return s.workloadsFault(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 3*time.Minute)
			s.waitHealthy(t)
			o := drillOptions(t)
			probe, closeAll := s.drillProbe(o.Connections)
			defer closeAll()
			sum, err := drill.Run(ctx, probe, tc.fault(), o)
			var text strings.Builder
			if sum != nil {
				_ = sum.WriteText(&text)
			}
			if err != nil {
				t.Fatalf("drill: %v\n%s", err, text.String())
			}
			t.Logf("drill:\n%s", text.String())
			fmt.Printf("failover drill (%s): failover %.3fs, error window %.3fs, %d failed (≤ %d per connection), failback %.3fs\n",
				sum.Fault, *sum.FailoverSeconds, sum.ErrorWindowSeconds, sum.Failed, sum.MaxFailedPerConnection, *sum.FailbackSeconds)
			if w := sum.ErrorWindow(); w > drillWindowLimit {
				t.Errorf("error window %s, want ≤ %s", w, drillWindowLimit)
			}
			if sum.Served[drill.PhaseDuring][clusterC] == 0 {
				t.Errorf("C served nothing during the fault: %v", sum.Served)
			}
		})
	}
}

// drillGoal is issue 7's goal for the error window at p99 over 5 drills.
const drillGoal = time.Second

// BenchmarkFailoverDrill runs the failover drill five times for each fault
// (A's workloads killed, A partitioned) from B against echo, exported from
// A and C, and reports the error window at p99 (the worst of five), as a
// ratio to the 1 s goal too, the most failed requests on one connection,
// and the median failover and failback times.
func BenchmarkFailoverDrill(b *testing.B) {
	ctx := testContext(b, 30*time.Minute)
	s := setUpGateways(b, ctx)
	for _, tc := range []struct {
		name  string
		fault func() drill.Fault
	}{
		{"fault=workloads", func() drill.Fault { return s.workloadsFault(b) }},
		{"fault=partition", s.partitionFault},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				var windows, failovers, failbacks []float64
				worstPerConn, failed := 0, 0
				for i := range 5 {
					s.waitHealthy(b)
					o := drillOptions(b)
					probe, closeAll := s.drillProbe(o.Connections)
					sum, err := drill.Run(ctx, probe, tc.fault(), o)
					closeAll()
					if err != nil {
						b.Fatalf("drill %d: %v", i+1, err)
					}
					windows = append(windows, sum.ErrorWindowSeconds)
					failovers = append(failovers, *sum.FailoverSeconds)
					failbacks = append(failbacks, *sum.FailbackSeconds)
					worstPerConn = max(worstPerConn, sum.MaxFailedPerConnection)
					failed += sum.Failed
				}
				slices.Sort(windows)
				slices.Sort(failovers)
				slices.Sort(failbacks)
				p99 := windows[len(windows)-1] // nearest rank of 5 samples
				b.ReportMetric(p99, "p99-window-s")
				b.ReportMetric(p99/drillGoal.Seconds(), "p99-window/goal")
				b.ReportMetric(float64(worstPerConn), "max-failed/conn")
				b.ReportMetric(float64(failed)/5, "failed/drill")
				b.ReportMetric(failovers[2], "p50-failover-s")
				b.ReportMetric(failbacks[2], "p50-failback-s")
				b.Logf("%s: error windows %v s, failovers %v s, failbacks %v s, %d failed in 5 drills (≤ %d per connection)", tc.name, windows, failovers, failbacks, failed, worstPerConn)
			}
		})
	}
}
