package proxybench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

const (
	// services is how many HTTP services the proxy is configured with.
	services = 100
	// bodySize is the backend's response body.
	bodySize = 1024
	// nodeID is the proxy's xDS node.
	nodeID = "node~proxybench"
	// loadHost is the service the load is sent to (services[0]).
	loadHost = "svc-000.bench.svc.cluster.local"

	// Latency runs: a fixed rate, as a service sees in production.
	latencyQPS      = "1000"
	latencyConns    = "4"
	latencyDuration = 10 * time.Second
	latencyWarmup   = 2 * time.Second
	// Throughput runs: as fast as one proxy core goes.
	throughputConns    = "16"
	throughputDuration = 5 * time.Second
	throughputWarmup   = time.Second

	// The goals the summary states; missing one is reported, not failed.
	goalAddedP99Ms = 0.5
	goalRSSMiB     = 30.0
	goalCPURatio   = 1.2

	// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
	// every Linux architecture Go supports.
	clockTicks = 100

	childEnv     = "PROXYBENCH_CHILD"
	childAddrEnv = "PROXYBENCH_ADDR"
)

// TestMain runs the backend when this binary is re-executed as one.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "backend" {
		os.Exit(serveBackend(os.Getenv(childAddrEnv)))
	}
	os.Exit(m.Run())
}

// serveBackend answers every request with the same 1 KiB body, over
// HTTP/1.1 and h2c, until SIGTERM. It does as little as a server can, so
// the direct path is a tight baseline.
func serveBackend(addr string) int {
	body := bytes.Repeat([]byte("x"), bodySize)
	length := []string{strconv.Itoa(bodySize)}
	contentType := []string{"application/octet-stream"}
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["Content-Length"] = length
			h["Content-Type"] = contentType
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "backend:", err)
		return 1
	}
	return 0
}

// tools are the programs a run needs.
type tools struct {
	proxy, fortio, nginx, taskset string
	nginxVersion                  string
}

func findTools(b *testing.B) tools {
	b.Helper()
	var t tools
	var err error
	if t.nginx, err = exec.LookPath("nginx"); err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			b.Skip("nginx is missing: apt-get install nginx")
		}
		t.nginx = "/usr/sbin/nginx"
	}
	if t.taskset, err = exec.LookPath("taskset"); err != nil {
		b.Fatal("taskset is missing: apt-get install util-linux")
	}
	dir, err := world.FindBinDir()
	if err != nil {
		b.Fatal(err)
	}
	t.proxy, t.fortio = filepath.Join(dir, "causeway-proxy"), filepath.Join(dir, "fortio")
	for _, p := range []string{t.proxy, t.fortio} {
		if _, err := os.Stat(p); err != nil {
			b.Fatalf("%s is missing: run make build test-bins", p)
		}
	}
	out, _ := exec.Command(t.nginx, "-v").CombinedOutput()
	t.nginxVersion = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version:"))
	return t
}

// BenchmarkProxy compares client → backend, client → causeway-proxy →
// backend and client → nginx → backend (see the package documentation).
// Each iteration is a whole measurement run: use -benchtime 1x.
func BenchmarkProxy(b *testing.B) {
	t := findTools(b)
	for range b.N {
		measure(b, t)
	}
}

// results are one run's figures.
type results struct {
	direct, proxy, nginx latency
	proxyCPU, nginxCPU   float64 // CPU seconds per 1,000 requests
	proxySys, nginxSys   float64 // of which in the kernel
	rssMiB, hwmMiB       float64
	directH1, proxyH1    float64 // requests/s
	nginxH1              float64
	directH2, proxyH2    float64
	cpus                 string    // how the throughput runs were pinned
	load                 [2]string // /proc/loadavg before and after
}

type latency struct{ p50, p99 float64 } // milliseconds

func measure(b *testing.B, t tools) {
	e := newEnv(b, t)
	defer e.close()
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	// Ctrl-C ends the run through its failure path, so the deferred close
	// still stops every process and removes the directory.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	backendAddr := e.startBackend(ctx)
	xdsSock := e.startXDS(backendAddr)
	// One thread each, as in the throughput runs: nginx runs one worker,
	// and causeway-proxy runs with --concurrency=1 (GOMAXPROCS=1).
	proxy := e.startProxy(ctx, xdsSock, "", []string{"GOMAXPROCS=1"})
	nginx := e.startNginx(ctx, backendAddr)
	var r results
	paths := []struct {
		name string
		url  string
		proc *proc    // nil for direct
		lat  *latency // where its latency goes
		cpu  *float64 // where its CPU per 1,000 requests goes
		sys  *float64 // and the kernel's share of it
	}{
		{"direct", "http://" + backendAddr + "/", nil, &r.direct, nil, nil},
		{"causeway-proxy", "http://" + proxy.addr + "/", proxy, &r.proxy, &r.proxyCPU, &r.proxySys},
		{"nginx", "http://" + nginx.addr + "/", nginx, &r.nginx, &r.nginxCPU, &r.nginxSys},
	}
	r.load[0] = loadavg()

	// Latency at a fixed rate, and the CPU it costs.
	for _, p := range paths {
		e.fortio(ctx, p.name+"-warmup", "", p.url, "-qps", latencyQPS, "-c", latencyConns, "-t", latencyWarmup.String())
	}
	for _, p := range paths {
		var user0, sys0 float64
		if p.proc != nil {
			user0, sys0 = e.cpu(p.proc)
		}
		res := e.fortio(ctx, p.name+"-latency", "", p.url, "-qps", latencyQPS, "-c", latencyConns, "-t", latencyDuration.String())
		*p.lat = latency{res.percentile(b, 50) * 1000, res.percentile(b, 99) * 1000}
		if p.proc != nil {
			user1, sys1 := e.cpu(p.proc)
			per1k := 1000 / float64(res.DurationHistogram.Count)
			*p.cpu = (user1 - user0 + sys1 - sys0) * per1k
			*p.sys = (sys1 - sys0) * per1k
		}
	}
	r.rssMiB, r.hwmMiB = e.memory(proxy)

	// Throughput of one proxy core. The proxy restarts with GOMAXPROCS=1
	// on the last CPU; the client and the backend move to the others.
	n := runtime.NumCPU()
	if n < 2 {
		b.Logf("one CPU: no throughput runs (they pin the proxy to a CPU of its own)")
	} else {
		proxyCPU, otherCPUs := strconv.Itoa(n-1), "0"
		if n > 2 {
			otherCPUs = fmt.Sprintf("0-%d", n-2)
		}
		r.cpus = fmt.Sprintf("proxy and nginx on CPU %s, client and backend on CPU %s", proxyCPU, otherCPUs)
		e.stop(proxy)
		pinned := e.startProxy(ctx, xdsSock, proxyCPU, []string{"GOMAXPROCS=1"})
		e.pin(e.backend, otherCPUs)
		e.pin(nginx, proxyCPU)
		rate := func(name, url string, h2 bool) float64 {
			args := []string{"-qps", "0", "-c", throughputConns}
			if h2 {
				args = append(args, "-h2")
			}
			e.fortio(ctx, name+"-warmup", otherCPUs, url, append(args, "-t", throughputWarmup.String())...)
			return e.fortio(ctx, name, otherCPUs, url, append(args, "-t", throughputDuration.String())...).ActualQPS
		}
		r.directH1 = rate("direct-h1", paths[0].url, false)
		r.proxyH1 = rate("proxy-h1", "http://"+pinned.addr+"/", false)
		r.nginxH1 = rate("nginx-h1", paths[2].url, false)
		r.directH2 = rate("direct-h2", paths[0].url, true)
		r.proxyH2 = rate("proxy-h2", "http://"+pinned.addr+"/", true)
	}
	r.load[1] = loadavg()
	r.report(b, t)
}

// loadavg is the machine's load averages, printed with the figures: other
// work on the machine during a run skews them.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// report states the figures, the goals and whether each was met, with
// b.Logf and on standard output (which make bench shows), and as metrics.
func (r *results) report(b *testing.B, t tools) {
	addedP50, addedP99 := r.proxy.p50-r.direct.p50, r.proxy.p99-r.direct.p99
	nAddedP50, nAddedP99 := r.nginx.p50-r.direct.p50, r.nginx.p99-r.direct.p99
	cpuRatio := r.proxyCPU / r.nginxCPU
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	ratio := func(a, base float64) string {
		if base == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", a/base)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "causeway-proxy vs %s: 1 KiB responses, %d services configured, HTTP/1.1 unless noted\n", t.nginxVersion, services)
	fmt.Fprintf(&buf, "latency and CPU: fortio -qps %s -c %s -t %s; throughput: fortio -qps 0 -c %s -t %s, %s\n",
		latencyQPS, latencyConns, latencyDuration, throughputConns, throughputDuration, r.cpus)
	fmt.Fprintf(&buf, "machine: %d CPUs, load average %s at the start, %s at the end\n\n", runtime.NumCPU(), r.load[0], r.load[1])
	w := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "measure\tdirect\tcauseway-proxy\tnginx\tgoal\tresult")
	fmt.Fprintf(w, "p50 latency (ms)\t%.3f\t%.3f\t%.3f\t\t\n", r.direct.p50, r.proxy.p50, r.nginx.p50)
	fmt.Fprintf(w, "p99 latency (ms)\t%.3f\t%.3f\t%.3f\t\t\n", r.direct.p99, r.proxy.p99, r.nginx.p99)
	fmt.Fprintf(w, "added p50 (ms)\t-\t%.3f\t%.3f\t\t\n", addedP50, nAddedP50)
	fmt.Fprintf(w, "added p99 (ms)\t-\t%.3f\t%.3f\t≤ %.1f ms and ≤ nginx\t%s\n", addedP99, nAddedP99, goalAddedP99Ms,
		verdict(addedP99 <= goalAddedP99Ms && addedP99 <= nAddedP99))
	fmt.Fprintf(w, "CPU s per 1,000 requests\t-\t%.4f (%.2f× nginx)\t%.4f\t≤ %.1f× nginx\t%s\n", r.proxyCPU, cpuRatio, r.nginxCPU, goalCPURatio,
		verdict(cpuRatio <= goalCPURatio))
	fmt.Fprintf(w, "  of which system\t-\t%.4f\t%.4f\t\t\n", r.proxySys, r.nginxSys)
	fmt.Fprintf(w, "RSS after load (MiB)\t-\tVmRSS %.1f, VmHWM %.1f\t-\tVmHWM ≤ %.0f MiB\t%s\n", r.rssMiB, r.hwmMiB, goalRSSMiB,
		verdict(r.hwmMiB <= goalRSSMiB))
	if r.cpus != "" {
		fmt.Fprintf(w, "max req/s, one core, HTTP/1.1\t%.0f\t%.0f (%s direct)\t%.0f (%s direct)\t\t\n", r.directH1, r.proxyH1, ratio(r.proxyH1, r.directH1), r.nginxH1, ratio(r.nginxH1, r.directH1))
		fmt.Fprintf(w, "max req/s, one core, h2c\t%.0f\t%.0f (%s direct)\t-\t\t\n", r.directH2, r.proxyH2, ratio(r.proxyH2, r.directH2))
	}
	_ = w.Flush()
	b.Logf("\n%s", buf.String())
	fmt.Fprintf(os.Stdout, "\n%s\n", buf.String())

	for _, m := range []struct {
		v    float64
		unit string
	}{
		{r.direct.p50, "direct-p50-ms"}, {r.direct.p99, "direct-p99-ms"},
		{addedP50, "proxy-added-p50-ms"}, {addedP99, "proxy-added-p99-ms"},
		{nAddedP50, "nginx-added-p50-ms"}, {nAddedP99, "nginx-added-p99-ms"},
		{r.proxyCPU, "proxy-cpu-s/1k-req"}, {r.nginxCPU, "nginx-cpu-s/1k-req"}, {cpuRatio, "cpu-proxy/nginx"},
		{r.proxySys, "proxy-sys-s/1k-req"}, {r.nginxSys, "nginx-sys-s/1k-req"},
		{r.rssMiB, "proxy-rss-MiB"}, {r.hwmMiB, "proxy-hwm-MiB"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
	if r.cpus != "" {
		b.ReportMetric(r.directH1, "direct-h1-req/s")
		b.ReportMetric(r.proxyH1, "proxy-h1-req/s")
		b.ReportMetric(r.proxyH1/r.directH1, "proxy/direct-h1")
		b.ReportMetric(r.nginxH1, "nginx-h1-req/s")
		b.ReportMetric(r.directH2, "direct-h2-req/s")
		b.ReportMetric(r.proxyH2, "proxy-h2-req/s")
		b.ReportMetric(r.proxyH2/r.directH2, "proxy/direct-h2")
	}
}

// env is one run's processes and files; close ends every process it
// started and removes the directory.
type env struct {
	b       *testing.B
	t       tools
	dir     string
	procs   []*proc
	cleanup []func()
	backend *proc
}

// proc is a child process.
type proc struct {
	name string
	addr string // where it serves HTTP
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// ownerFile, in a run's directory, holds the benchmark's PID.
const ownerFile = "owner.pid"

func newEnv(b *testing.B, t tools) *env {
	removeStaleDirs()
	dir, err := os.MkdirTemp("", "proxybench-")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		b.Fatal(err)
	}
	return &env{b: b, t: t, dir: dir}
}

// removeStaleDirs removes the directories of runs whose benchmark process
// is gone: a SIGKILLed run cannot remove its own (its children die with
// it, by Pdeathsig).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "proxybench-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not a run's directory, or one being created
		}
		pid, err := strconv.Atoi(string(b))
		if err == nil && pid > 0 && !alive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// alive reports whether a process exists and is not a zombie (a killed
// benchmark whose parent has not reaped it yet).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func (e *env) close() {
	for _, p := range slices.Backward(e.procs) {
		e.stop(p)
	}
	for _, f := range slices.Backward(e.cleanup) {
		f()
	}
	_ = os.RemoveAll(e.dir)
}

// start runs argv as a child in its own process group, with its output
// in the run's directory. Pdeathsig kills it if the benchmark dies.
func (e *env) start(name, addr string, extraEnv []string, argv ...string) *proc {
	e.b.Helper()
	p := &proc{name: name, addr: addr, log: filepath.Join(e.dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		e.b.Fatal(err)
	}
	defer out.Close()
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		e.b.Fatalf("start %s: %v", name, err)
	}
	e.procs = append(e.procs, p)
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p
}

// stop ends a process group: SIGTERM, then SIGKILL after 5 s.
func (e *env) stop(p *proc) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// logTail is the end of a process's output, for failure messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitOK polls url with Host loadHost until it answers 200.
func (e *env) waitOK(ctx context.Context, p *proc, url string) {
	e.b.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			e.b.Fatal(err)
		}
		req.Host = loadHost
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-p.done:
			e.b.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.b.Fatalf("%s did not answer %s: %v\n%s", p.name, url, last, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func (e *env) freeAddr() string {
	e.b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (e *env) startBackend(ctx context.Context) string {
	exe, err := os.Executable()
	if err != nil {
		e.b.Fatal(err)
	}
	addr := e.freeAddr()
	e.backend = e.start("backend", addr, []string{childEnv + "=backend", childAddrEnv + "=" + addr}, exe, "-test.run=^$", "-test.bench=^$")
	e.waitOK(ctx, e.backend, "http://"+addr+"/")
	return addr
}

// startProxy runs bin/causeway-proxy, pinned to cpu when it is not
// empty, and waits until it forwards to the backend.
func (e *env) startProxy(ctx context.Context, xdsSock, cpu string, extraEnv []string) *proc {
	addr, admin := e.freeAddr(), e.freeAddr()
	argv := []string{e.t.proxy, "--mode", xdsconv.ModeNode, "--xds-addr", "unix://" + xdsSock, "--node-id", nodeID,
		"--listen", addr + "=" + xdsconv.ExplicitHTTPListener, "--admin-addr", admin, "--log-level", "warn"}
	name := "causeway-proxy"
	if cpu != "" {
		argv = append([]string{e.t.taskset, "-c", cpu}, argv...)
		name += "-pinned"
	}
	p := e.start(name, addr, extraEnv, argv...)
	e.waitOK(ctx, p, "http://"+addr+"/")
	return p
}

// startNginx runs nginx as one process with a generated configuration.
func (e *env) startNginx(ctx context.Context, backend string) *proc {
	dir := filepath.Join(e.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		e.b.Fatal(err)
	}
	addr := e.freeAddr()
	// keepalive_requests are raised on both sides: nginx's default (1,000)
	// would reconnect every thousand requests where causeway-proxy never
	// does, putting handshakes into nginx's tail.
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/client_body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    keepalive_requests 1000000;
    upstream backend {
        server %[2]s;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }
    }
}
`, dir, backend, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		e.b.Fatal(err)
	}
	p := e.start("nginx", addr, nil, e.t.nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	e.waitOK(ctx, p, "http://"+addr+"/")
	return p
}

// pin moves every thread of a running process to cpus.
func (e *env) pin(p *proc, cpus string) {
	e.b.Helper()
	if out, err := exec.Command(e.t.taskset, "-a", "-p", "-c", cpus, strconv.Itoa(p.cmd.Process.Pid)).CombinedOutput(); err != nil {
		e.b.Fatalf("pin %s to CPU %s: %v\n%s", p.name, cpus, err, out)
	}
}

// fortioResult is the part of fortio's JSON result a run reads.
type fortioResult struct {
	ActualQPS         float64
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct{ Percentile, Value float64 }
	}
}

func (r fortioResult) percentile(b *testing.B, p float64) float64 {
	for _, x := range r.DurationHistogram.Percentiles {
		if x.Percentile == p {
			return x.Value
		}
	}
	b.Fatalf("fortio reported no p%v", p)
	return 0
}

// fortio runs one load against url (Host loadHost), pinned to cpus when
// that is not empty, and fails the run unless every request got a 200.
func (e *env) fortio(ctx context.Context, label, cpus, url string, args ...string) fortioResult {
	e.b.Helper()
	out := filepath.Join(e.dir, label+".json")
	argv := append([]string{e.t.fortio, "load", "-quiet", "-r", "0.00001", "-p", "50,99", "-H", "Host: " + loadHost, "-json", out}, args...)
	argv = append(argv, url)
	if cpus != "" {
		argv = append([]string{e.t.taskset, "-c", cpus}, argv...)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if log, err := cmd.CombinedOutput(); err != nil {
		e.b.Fatalf("fortio %s: %v\n%s", label, err, log)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		e.b.Fatal(err)
	}
	var r fortioResult
	if err := json.Unmarshal(data, &r); err != nil {
		e.b.Fatalf("fortio %s: JSON result: %v", label, err)
	}
	if n := r.DurationHistogram.Count; n == 0 || r.RetCodes["200"] != n {
		e.b.Fatalf("fortio %s: %d requests, codes %v: every one must be 200", label, n, r.RetCodes)
	}
	return r
}

// cpu returns the user and system CPU seconds of a process and of every
// process below it.
func (e *env) cpu(p *proc) (user, sys float64) {
	e.b.Helper()
	user, sys, err := treeCPU(p.cmd.Process.Pid)
	if err != nil {
		e.b.Fatalf("CPU time of %s: %v", p.name, err)
	}
	return user, sys
}

// procTimes are one process's parent and CPU times in clock ticks.
type procTimes struct {
	ppid      int
	user, sys uint64
}

func treeCPU(root int) (user, sys float64, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	procs := map[int]procTimes{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		pt, err := readStat(pid)
		if err != nil {
			if pid == root {
				return 0, 0, err
			}
			continue // exited meanwhile
		}
		procs[pid] = pt
	}
	if _, ok := procs[root]; !ok {
		return 0, 0, fmt.Errorf("process %d is gone", root)
	}
	var u, s uint64
	for pid, pt := range procs {
		for q := pid; q > 1; q = procs[q].ppid {
			if q == root {
				u, s = u+pt.user, s+pt.sys
				break
			}
		}
	}
	return float64(u) / clockTicks, float64(s) / clockTicks, nil
}

// readStat reads a process's parent and CPU times (proc(5): fields 4, 14
// and 15; the command name in field 2 may hold spaces and parentheses, so
// fields are counted from its closing one).
func readStat(pid int) (procTimes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procTimes{}, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseUint(f[11], 10, 64)
	stime, err3 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procTimes{ppid: ppid, user: utime, sys: stime}, nil
}

// memory returns a process's VmRSS and VmHWM in MiB.
func (e *env) memory(p *proc) (rss, hwm float64) {
	e.b.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		e.b.Fatalf("memory of %s: %v", p.name, err)
	}
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			e.b.Fatalf("%s of %s: %q: %v", key, p.name, val, err)
		}
		if key == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	if rss == 0 || hwm == 0 {
		e.b.Fatalf("no VmRSS or VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	}
	return rss, hwm
}

// startXDS serves the mesh's snapshot over ADS on a unix socket in the
// run's directory.
func (e *env) startXDS(backend string) string {
	e.b.Helper()
	sock := filepath.Join(e.dir, "xds.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		e.b.Fatal(err)
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, cache, nil))
	go func() { _ = srv.Serve(ln) }()
	e.cleanup = append(e.cleanup, func() { srv.Stop(); cancel() })

	snap, err := cachev3.NewSnapshot("1", meshResources(backend))
	if err != nil {
		e.b.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		e.b.Fatalf("inconsistent snapshot: %v", err)
	}
	if err := cache.SetSnapshot(ctx, nodeID, snap); err != nil {
		e.b.Fatal(err)
	}
	return sock
}

// meshResources is what the agent's translation gives a proxy for
// services HTTP services on port 80: per service a cluster with its
// endpoints, a listener on the service address and its route
// configuration, and a virtual host in the explicit route configuration;
// then the virtual outbound and explicit listeners and the pass-through
// and black-hole clusters. Service 0's endpoint is the backend; the
// others' endpoints and every service address are loopback addresses that
// nothing listens on and no request reaches.
func meshResources(backend string) map[resourcev3.Type][]types.Resource {
	var listeners, routes, clusters, endpoints []types.Resource
	explicit := &routev3.RouteConfiguration{Name: xdsconv.ExplicitHTTPListener}
	for i := range services {
		name := fmt.Sprintf("svc-%03d", i)
		host := xdsconv.ServiceHost(name, "bench")
		vip := fmt.Sprintf("127.96.%d.%d", i/250, i%250+1)
		cluster := xdsconv.ClusterName(80, "", host)
		routeName := xdsconv.RouteName(host, 80)
		eps := []string{backend}
		if i > 0 {
			eps = []string{fmt.Sprintf("127.0.1.%d:8080", i), fmt.Sprintf("127.0.2.%d:8080", i)}
		}
		clusters = append(clusters, &clusterv3.Cluster{
			Name:                 cluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
			ConnectTimeout:       durationpb.New(time.Second),
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		})
		endpoints = append(endpoints, loadAssignment(cluster, eps))
		short := name + ".bench"
		domains := func(names ...string) []string {
			var out []string
			for _, n := range names {
				out = append(out, n, n+":80")
			}
			return out
		}
		route := []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				Timeout:          durationpb.New(0),
			}},
		}}
		routes = append(routes, &routev3.RouteConfiguration{Name: routeName, VirtualHosts: []*routev3.VirtualHost{{
			Name: routeName, Domains: domains(host, short, short+".svc", name, vip), Routes: route,
		}}})
		explicit.VirtualHosts = append(explicit.VirtualHosts, &routev3.VirtualHost{
			Name: routeName, Domains: domains(host, short, short+".svc", vip), Routes: route,
		})
		listeners = append(listeners, &listenerv3.Listener{
			Name:             xdsconv.ListenerName(vip, 80),
			Address:          socketAddress(vip, 80),
			BindToPort:       wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm("outbound_"+xdsconv.ListenerName(vip, 80), routeName)}}},
		})
	}
	routes = append(routes, explicit)
	listeners = append(listeners,
		&listenerv3.Listener{
			Name:             xdsconv.VirtualOutboundListener,
			Address:          socketAddress("0.0.0.0", xdsconv.VirtualOutboundPort),
			UseOriginalDst:   wrapperspb.Bool(true),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			DefaultFilterChain: &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
				Name: wellknown.TCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpv3.TcpProxy{
					StatPrefix: xdsconv.PassthroughCluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: xdsconv.PassthroughCluster},
				})},
			}}},
		},
		&listenerv3.Listener{
			Name:             xdsconv.ExplicitHTTPListener,
			Address:          socketAddress("127.0.0.1", 15080),
			BindToPort:       wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm(xdsconv.ExplicitHTTPListener, xdsconv.ExplicitHTTPListener)}}},
		})
	clusters = append(clusters,
		&clusterv3.Cluster{
			Name:                 xdsconv.PassthroughCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			ConnectTimeout:       durationpb.New(time.Second),
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		},
		&clusterv3.Cluster{
			Name:                 xdsconv.BlackHoleCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(time.Second),
		})
	return map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: listeners,
		resourcev3.RouteType:    routes,
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: endpoints,
	}
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func loadAssignment(cluster string, addrs []string) *endpointv3.ClusterLoadAssignment {
	le := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{}}
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		le.LbEndpoints = append(le.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: socketAddress(host, uint32(p)),
		}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{le}}
}

// hcm is an HTTP connection manager taking its routes by RDS over ADS,
// WebSocket upgrades allowed, as the translation renders HTTP ports.
func hcm(statPrefix, routeName string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&hcmv3.HttpConnectionManager{
		StatPrefix:     statPrefix,
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: routeName}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	})}}
}

// mustAny packs a message; only a message that is not a valid proto
// fails, a programming error.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("pack %T: %v", m, err))
	}
	return a
}
