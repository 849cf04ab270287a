package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cluster is a real HTTP server on 127.0.0.1 that answers with its
// cluster's name, and can be stopped and started again on its address.
type cluster struct {
	name string
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func startCluster(t *testing.T, name string) *cluster {
	t.Helper()
	c := &cluster{name: name, addr: "127.0.0.1:0"}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.stop() })
	return c
}

func (c *cluster) start() error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addr = ln.Addr().String()
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, c.name)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return nil
}

func (c *cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.Close()
	c.srv = nil
	return err
}

// failoverClient is the data plane under drill: per connection, round
// robin over the clusters, and a cluster that fails a request is skipped
// for a second (passive health, no retries).
type failoverClient struct {
	clusters []*cluster
	clients  []*http.Client
	next     []int
	mu       sync.Mutex
	downTill map[string]time.Time
}

func newFailoverClient(conns int, cs ...*cluster) *failoverClient {
	f := &failoverClient{clusters: cs, next: make([]int, conns), downTill: map[string]time.Time{}}
	for range conns {
		f.clients = append(f.clients, &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}})
	}
	return f
}

func (f *failoverClient) probe(ctx context.Context, conn int) (string, error) {
	f.mu.Lock()
	var target *cluster
	for range f.clusters {
		c := f.clusters[f.next[conn]%len(f.clusters)]
		f.next[conn]++
		if time.Now().After(f.downTill[c.name]) {
			target = c
			break
		}
	}
	f.mu.Unlock()
	if target == nil {
		return "", errors.New("no healthy cluster")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target.addr+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := f.clients[conn].Do(req)
	if err == nil {
		defer func() { _ = resp.Body.Close() }()
		var b []byte
		if b, err = io.ReadAll(resp.Body); err == nil {
			return string(b), nil
		}
	}
	f.mu.Lock()
	f.downTill[target.name] = time.Now().Add(time.Second)
	f.mu.Unlock()
	return "", errors.New("request failed")
}

func quick(cluster string) Options {
	return Options{Cluster: cluster, Rate: 100, Connections: 4, Timeout: time.Second, Warmup: 300 * time.Millisecond, WarmupMax: 5 * time.Second, Settle: 8, FailoverMax: 5 * time.Second, Hold: 300 * time.Millisecond, FailbackMax: 5 * time.Second}
}

// TestRunMeasuresFailoverAndFailback drills a real client over real
// servers: east stops, traffic moves to north, east comes back.
func TestRunMeasuresFailoverAndFailback(t *testing.T) {
	east, north := startCluster(t, "east"), startCluster(t, "north")
	client := newFailoverClient(4, east, north)
	var steps []string
	o := quick("east")
	o.Progress = func(s string) { steps = append(steps, s) }
	var injected, restored atomic.Bool
	s, err := Run(t.Context(), client.probe, Fault{
		Name:    "server stopped",
		Inject:  func(context.Context) error { injected.Store(true); return east.stop() },
		Restore: func(context.Context) error { restored.Store(true); return east.start() },
	}, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !injected.Load() || !restored.Load() {
		t.Fatalf("injected %v, restored %v", injected.Load(), restored.Load())
	}
	if got := strings.Join(steps, ","); got != "warm-up,fault,restore" {
		t.Errorf("steps = %s", got)
	}
	if s.FailoverSeconds == nil || s.FailbackSeconds == nil {
		t.Fatalf("failover %v, failback %v: want both measured", s.FailoverSeconds, s.FailbackSeconds)
	}
	if s.Served[PhaseBefore]["east"] == 0 || s.Served[PhaseAfter]["east"] == 0 {
		t.Errorf("east served %d before and %d after, want both > 0", s.Served[PhaseBefore]["east"], s.Served[PhaseAfter]["east"])
	}
	// A stopped server closes its idle keep-alive connections: at most
	// the one request each connection has in flight to east fails.
	if s.MaxFailedPerConnection > 1 {
		t.Errorf("at most %d failed on one connection, want ≤ 1 (failures %v)", s.MaxFailedPerConnection, s.Failures)
	}
	if s.Failed > 0 && s.ErrorWindowSeconds <= 0 {
		t.Errorf("%d failed but the error window is %v", s.Failed, s.ErrorWindowSeconds)
	}
	// The pacing holds the rate: 100 req/s for at least warm-up + hold
	// + hold.
	if s.Requests < 50 {
		t.Errorf("%d requests, want ≥ 50 at 100 req/s", s.Requests)
	}
	var buf strings.Builder
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("drill:\n%s", buf.String())
}

// TestRunErrors: a drill that cannot be carried out says why, and always
// restores a fault it injected.
func TestRunErrors(t *testing.T) {
	east, north := startCluster(t, "east"), startCluster(t, "north")
	t.Run("the failing cluster never serves", func(t *testing.T) {
		client := newFailoverClient(4, north)
		o := quick("east")
		o.WarmupMax = 500 * time.Millisecond
		_, err := Run(t.Context(), client.probe, Fault{Name: "x", Inject: failIfCalled(t), Restore: failIfCalled(t)}, o)
		if err == nil || !strings.Contains(err.Error(), "warm-up") || !strings.Contains(err.Error(), "served by north") {
			t.Fatalf("err = %v, want a warm-up error describing the requests", err)
		}
	})
	t.Run("no failover: restored anyway", func(t *testing.T) {
		client := newFailoverClient(4, east)
		o := quick("east")
		o.FailoverMax = 500 * time.Millisecond
		var restored atomic.Bool
		s, err := Run(t.Context(), client.probe, Fault{
			Name:    "the only cluster stopped",
			Inject:  func(context.Context) error { return east.stop() },
			Restore: func(context.Context) error { restored.Store(true); return east.start() },
		}, o)
		if err == nil || !strings.Contains(err.Error(), "no failover") {
			t.Fatalf("err = %v, want no failover", err)
		}
		if !restored.Load() {
			t.Error("the fault was not restored")
		}
		if s == nil || s.Failed == 0 || s.FailoverSeconds != nil {
			t.Errorf("summary = %+v, want failures and no failover", s)
		}
	})
	t.Run("inject fails: restored anyway", func(t *testing.T) {
		client := newFailoverClient(4, east, north)
		var restored atomic.Bool
		_, err := Run(t.Context(), client.probe, Fault{
			Name:    "broken",
			Inject:  func(context.Context) error { return errors.New("permission denied") },
			Restore: func(context.Context) error { restored.Store(true); return nil },
		}, quick("east"))
		if err == nil || !strings.Contains(err.Error(), "permission denied") || !restored.Load() {
			t.Fatalf("err = %v, restored %v", err, restored.Load())
		}
	})
	t.Run("manual failback is not waited for", func(t *testing.T) {
		client := newFailoverClient(4, east, north)
		o := quick("east")
		o.NoFailback = true
		s, err := Run(t.Context(), client.probe, Fault{
			Name:    "stopped for good",
			Inject:  func(context.Context) error { return east.stop() },
			Restore: func(context.Context) error { return nil },
		}, o)
		if err != nil {
			t.Fatal(err)
		}
		if s.FailbackSeconds != nil {
			t.Errorf("failback = %v, want none", *s.FailbackSeconds)
		}
		if err := east.start(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []Options{{}, {Cluster: "east", Rate: -1}, {Cluster: "east", Rate: 10000, Connections: 1}} {
			if _, err := Run(t.Context(), nil, Fault{}, o); err == nil {
				t.Errorf("Run(%+v) = nil error", o)
			}
		}
	})
}

func failIfCalled(t *testing.T) func(context.Context) error {
	return func(context.Context) error {
		t.Error("the fault was touched")
		return fmt.Errorf("unexpected")
	}
}
