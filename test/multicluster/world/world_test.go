package world_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// w is the world shared by this package's tests: three clusters.
var w *world.World

func TestMain(m *testing.M) {
	if os.Getenv("CAUSEWAY_WORLD_CHILD") != "" {
		// A child of TestTeardownWhenTheProcessDies: it makes its own world.
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	start := time.Now()
	var err error
	w, err = world.Start(ctx, world.Options{HandleSignals: true})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start test world: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "test world: %d clusters ready in %s\n", len(w.Clusters), time.Since(start).Round(10*time.Millisecond))
	code := m.Run()
	if err := w.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop test world: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

type echoReply struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Cluster   string `json:"cluster"`
	IP        string `json:"ip"`
}

// TestWorkloadsServeRealTraffic: a Deployment and Service of the echo image
// in each cluster; the real EndpointSlice controller lists the pods, and an
// HTTP request to each endpoint IP reaches that pod's process.
func TestWorkloadsServeRealTraffic(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	var wg sync.WaitGroup
	for _, c := range w.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := c.CreateEchoApp(ctx, "shop", "checkout", 2); err != nil {
				t.Error(err)
				return
			}
			eps, err := c.WaitReadyEndpoints(ctx, "shop", "checkout", 2, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			t.Logf("cluster %s: 2 ready endpoints after %s", c.Name, time.Since(start).Round(time.Millisecond))
			hc := w.HTTPClient(5 * time.Second)
			for _, ep := range eps {
				if !c.PodCIDR.Contains(mustAddr(t, ep.IP)) {
					t.Errorf("cluster %s: endpoint %s is outside the node's pod CIDR %s", c.Name, ep.IP, c.PodCIDR)
				}
				addr := world.HostPort(ep.IP, world.EchoHTTPPort)
				if err := w.WaitListening(ctx, addr, 30*time.Second); err != nil {
					t.Errorf("cluster %s: pod %s never listened on %s: %v", c.Name, ep.Pod, addr, err)
					continue
				}
				resp, err := hc.Get("http://" + addr + "/hello")
				if err != nil {
					t.Errorf("cluster %s: GET %s: %v", c.Name, addr, err)
					continue
				}
				var got echoReply
				err = json.NewDecoder(resp.Body).Decode(&got)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("cluster %s: GET %s: status %d, decode: %v", c.Name, addr, resp.StatusCode, err)
					continue
				}
				want := echoReply{Pod: ep.Pod, Namespace: "shop", Cluster: c.Name, IP: ep.IP}
				if got != want {
					t.Errorf("cluster %s: GET %s answered %+v, want %+v", c.Name, addr, got, want)
				}
			}
		}()
	}
	wg.Wait()
}

// TestClustersAreIsolated: an object created in one cluster is invisible in
// the others.
func TestClustersAreIsolated(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	c1, others := w.Clusters[0], w.Clusters[1:]
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-in-" + c1.Name, Namespace: "default"}}
	if _, err := c1.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Client.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("cluster %s: the ConfigMap it just created: %v", c1.Name, err)
	}
	for _, c := range others {
		_, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("cluster %s: ConfigMap made in %s: got err=%v, want NotFound", c.Name, c1.Name, err)
		}
	}
}

// TestMergedKubeconfig: kubectl on the host addresses every cluster by
// context through the merged kubeconfig, and each context reaches its own
// cluster.
func TestMergedKubeconfig(t *testing.T) {
	kubectl := binPath(t, "kubectl")
	for _, c := range w.Clusters {
		out, err := exec.CommandContext(testContext(t, 30*time.Second), kubectl, "--kubeconfig", w.Kubeconfig, "--context", c.Name,
			"get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl --context %s get nodes: %v\n%s", c.Name, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != c.NodeName {
			t.Errorf("kubectl --context %s get nodes = %q, want %q", c.Name, got, c.NodeName)
		}
	}
}

// TestCRDsRejectInvalidObjects: each Causeway CRD refuses an invalid object
// with a message that says what is wrong.
func TestCRDsRejectInvalidObjects(t *testing.T) {
	kubectl := binPath(t, "kubectl")
	c := w.Clusters[0]
	for _, tc := range invalidObjects {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(testContext(t, 30*time.Second), kubectl, "--kubeconfig", w.Kubeconfig, "--context", c.Name, "apply", "-f", "-")
			cmd.Stdin = strings.NewReader(tc.manifest)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("kubectl apply accepted an invalid %s:\n%s", tc.name, out)
			}
			if !strings.Contains(string(out), tc.wantMessage) {
				t.Errorf("kubectl apply of invalid %s said:\n%s\nwant it to contain %q", tc.name, out, tc.wantMessage)
			}
		})
	}
}

// TestProcessDeathIsReported starts a world of its own, kills one of its
// control-plane processes, and checks that the world names it with its last
// log lines; then that Stop leaves no process and no directory behind.
func TestProcessDeathIsReported(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	w2, err := world.Start(ctx, world.Options{Clusters: []world.ClusterSpec{{Name: "solo"}}, NoWorkloads: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = w2.Stop()
		}
	})
	sched := w2.Cluster("solo").Proc("kube-scheduler")
	if err := syscall.Kill(sched.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w2.Failed():
	case <-ctx.Done():
		t.Fatal("the world did not notice that kube-scheduler died")
	}
	var perr *world.ProcessError
	if err := w2.Err(); !errors.As(err, &perr) || perr.Name != "solo/kube-scheduler" || perr.Tail == "" {
		t.Fatalf("world error = %v, want a ProcessError naming solo/kube-scheduler with its log tail", err)
	}

	pids := map[int]string{}
	for _, p := range w2.Procs() {
		pids[p.PID()] = p.Name
	}
	if len(pids) < 4 {
		t.Fatalf("world reports %d processes, want at least etcd, apiserver, controller-manager and kwok", len(pids))
	}
	dir := w2.Dir
	if err := w2.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	for pid, name := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %s (pid %d) still exists after Stop: kill(0) = %v", name, pid, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("world directory %s still exists after Stop (stat: %v)", dir, err)
	}
}

// TestFailedStartCleansUp: a control-plane binary that dies at once makes
// Start fail with its name and its output, and leaves nothing running.
func TestFailedStartCleansUp(t *testing.T) {
	real, err := world.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"} {
		if err := os.Symlink(filepath.Join(real, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'etcd: cannot open the data directory: disk on fire' >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "etcd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = world.Start(testContext(t, time.Minute), world.Options{Clusters: []world.ClusterSpec{{Name: "broken"}}, BinDir: dir, NoWorkloads: true, Logf: t.Logf})
	if err == nil {
		t.Fatal("Start succeeded with an etcd that exits at once")
	}
	for _, want := range []string{"broken/etcd", "disk on fire", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error does not mention %q:\n%v", want, err)
		}
	}
	if leftovers := processesMentioning(t, dir); len(leftovers) > 0 {
		t.Errorf("processes left running after a failed Start: %v", leftovers)
	}
}

// TestMissingBinaryNamesMakeTarget: without the test binaries, Start says
// which make target builds them.
func TestMissingBinaryNamesMakeTarget(t *testing.T) {
	_, err := world.Start(t.Context(), world.Options{BinDir: t.TempDir()})
	if !errors.Is(err, world.ErrMissingBinary) || !strings.Contains(err.Error(), "make test-bins") || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Start without binaries = %v, want ErrMissingBinary naming `make test-bins` and `make build`", err)
	}
}

func binPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := world.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not built: run `make test-bins` (%v)", p, err)
	}
	return p
}

// processesMentioning lists processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("endpoint address %q: %v", s, err)
	}
	return a
}
