package world

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/causeway-mesh/causeway/charts"
)

// KeepLogsEnv names an environment variable: when it holds a directory,
// Stop copies the world's process logs into a subdirectory of it before
// removing the world (to read after a failed run).
const KeepLogsEnv = "CAUSEWAY_WORLD_LOGS"

// maxClusters bounds the world's size by its address plan: cluster i gets
// pods in 10.i.0.0/16 and services in 10.(100+i).0.0/16.
const maxClusters = 50

// infraPrefix holds every cluster's infrastructure addresses: cluster i
// has 10.255.i.0/24, its control plane 10.255.i.1 and its east-west
// gateway 10.255.i.2.
var infraPrefix = netip.MustParsePrefix("10.255.0.0/16")

// NeutralSource is the source address of any socket in the namespace that
// connects without binding a source address of its own: an address of lo
// and the preferred source of every local route. It belongs to no cluster
// (10.255.0.x is nobody's infrastructure range), so under Isolate such a
// socket reaches no pod. Without it, Linux would use the destination
// itself as the source, and an unbound socket would pass for a pod of the
// cluster it connects to.
var NeutralSource = netip.AddrFrom4([4]byte{10, 255, 0, 1})

// ClusterSpec names one cluster of the world and places it.
type ClusterSpec struct {
	Name   string
	Region string
	Zone   string
}

// Options configure a world. The zero value starts three clusters named
// c1, c2 and c3 with workloads.
type Options struct {
	// Clusters to start. Empty: three clusters c1..c3, regions r1..r3.
	Clusters []ClusterSpec
	// BinDir holds the binaries. Empty: FindBinDir.
	BinDir string
	// HostPortBase, if not 0, is the preferred host port of the first
	// cluster's API server forward; cluster i prefers base+i-1, and a taken
	// port moves on to the next free one. 0 picks free ports.
	HostPortBase int
	// NoWorkloads disables running processes for pods with Causeway's
	// test images.
	NoWorkloads bool
	// CRDs to install in every cluster. Nil: the MCS and Causeway CRDs.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// HandleSignals makes SIGINT and SIGTERM tear the world down before the
	// process exits with the signal (for a test's TestMain; a CLI with its
	// own signal handling leaves it off).
	HandleSignals bool
	// Logf reports what the world does and what goes wrong in it (a
	// process that exits on its own). Nil: standard error.
	Logf func(format string, args ...any)
}

// World is a set of simulated clusters inside one private network
// namespace, with host forwards to their API servers and a merged
// kubeconfig.
type World struct {
	// Dir holds everything the world writes; it is removed by Stop.
	Dir string
	// NS is the network namespace every process runs in.
	NS *Namespace
	// Clusters in the order given.
	Clusters []*Cluster
	// Kubeconfig is the merged kubeconfig: one context per cluster, named
	// after it.
	Kubeconfig string

	binDir    string
	logDir    string
	opts      Options
	workloads *workloads
	extra     []*Proc    // started with Run
	forwards  []*Forward // opened with Forward
	firewall  firewall   // rule sets of Isolate, BlockUDP and Partition

	mu       sync.Mutex
	errs     []error
	failed   chan struct{} // closed at the first unexpected exit
	started  bool          // Start has returned the world
	stopping bool
	stopOnce sync.Once
	stopSig  chan struct{}
}

// Start creates the namespace and starts every cluster concurrently. It
// returns when all are ready, or tears down what it started and returns the
// first error.
func Start(ctx context.Context, opts Options) (_ *World, err error) {
	if len(opts.Clusters) == 0 {
		opts.Clusters = []ClusterSpec{{Name: "c1", Region: "r1"}, {Name: "c2", Region: "r2"}, {Name: "c3", Region: "r3"}}
	}
	if err := validateSpecs(opts.Clusters); err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	need := []string{binEtcd, binAPIServer, binKCM, binScheduler, binKwok, fileKwokStage}
	if !opts.NoWorkloads {
		need = append(need, binEcho, binFortio)
	}
	if err := requireBinaries(binDir, need...); err != nil {
		return nil, err
	}
	if opts.CRDs == nil {
		if opts.CRDs, err = charts.All(); err != nil {
			return nil, fmt.Errorf("load CRDs: %w", err)
		}
	}
	if !isRoot() {
		return nil, ErrNeedsRoot
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("causeway-world-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create world directory: %w", err)
	}
	w := &World{Dir: dir, binDir: binDir, logDir: filepath.Join(dir, "logs"), opts: opts, stopSig: make(chan struct{}), failed: make(chan struct{})}
	defer func() {
		if err != nil {
			if serr := w.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}
	}()
	if err := os.MkdirAll(w.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	local := []netip.Prefix{infraPrefix}
	for i, spec := range opts.Clusters {
		idx := i + 1
		c := &Cluster{
			Name: spec.Name, Region: spec.Region, Zone: spec.Zone, Index: idx,
			PodCIDR:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(idx), 0, 0}), 16),
			ServiceCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + idx), 0, 0}), 16),
			InfraIP:     netip.AddrFrom4([4]byte{10, 255, byte(idx), 1}),
			GatewayIP:   netip.AddrFrom4([4]byte{10, 255, byte(idx), 2}),
			InfraPrefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 255, byte(idx), 0}), 24),
			NodeName:    spec.Name + "-node-1",
			Dir:         filepath.Join(dir, spec.Name),
			world:       w,
			procs:       map[string]*Proc{},
		}
		w.Clusters = append(w.Clusters, c)
		local = append(local, c.PodCIDR)
	}
	if w.NS, err = newNamespace(local, NeutralSource); err != nil {
		return nil, err
	}
	w.firewall.ns = w.NS
	if opts.HandleSignals {
		w.handleSignals()
	}

	errs := make([]error, len(w.Clusters))
	var wg sync.WaitGroup
	for i, c := range w.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.boot(ctx, opts.CRDs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := w.writeMergedKubeconfig(); err != nil {
		return nil, err
	}
	if !opts.NoWorkloads {
		if w.workloads, err = startWorkloads(w); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	w.started = true
	w.mu.Unlock()
	return w, nil
}

func validateSpecs(specs []ClusterSpec) error {
	if len(specs) > maxClusters {
		return fmt.Errorf("at most %d clusters, got %d", maxClusters, len(specs))
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if errs := validation.IsDNS1123Label(s.Name); len(errs) > 0 {
			return fmt.Errorf("cluster name %q: %s", s.Name, strings.Join(errs, "; "))
		}
		if seen[s.Name] {
			return fmt.Errorf("cluster name %q given twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// hostPort is the preferred host port of cluster idx's API server forward.
func (w *World) hostPort(idx int) int {
	if w.opts.HostPortBase == 0 {
		return 0
	}
	return w.opts.HostPortBase + idx - 1
}

func (w *World) writeMergedKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	for _, c := range w.Clusters {
		addToKubeconfig(cfg, c.Name, "https://"+c.Forward.Addr, c.pki)
	}
	cfg.CurrentContext = w.Clusters[0].Name
	w.Kubeconfig = filepath.Join(w.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, w.Kubeconfig); err != nil {
		return fmt.Errorf("write merged kubeconfig: %w", err)
	}
	return nil
}

// Cluster returns the named cluster, or nil.
func (w *World) Cluster(name string) *Cluster {
	for _, c := range w.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// HTTPClient returns a client whose connections are made inside the
// namespace, to reach pod IPs.
func (w *World) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: w.NS.DialContext, DisableKeepAlives: true}}
}

// DialContext connects to an address inside the namespace.
func (w *World) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return w.NS.DialContext(ctx, network, address)
}

// Run starts a process of the caller's (a hub, an agent) inside the
// namespace, with its output in the world's log directory. bin is a path,
// or a name in the world's binary directory. If it exits without Stop or
// Kill it is reported like a control-plane process; Stop ends it first.
func (w *World) Run(name, bin string, args ...string) (*Proc, error) {
	if !filepath.IsAbs(bin) {
		if err := requireBinaries(w.binDir, bin); err != nil {
			return nil, err
		}
		bin = filepath.Join(w.binDir, bin)
	}
	p, err := startProc(w.NS, name, w.logDir, bin, args, nil, w.unexpectedExit)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.extra = append(w.extra, p)
	w.mu.Unlock()
	return p, nil
}

// Forward opens a TCP forward from the host's 127.0.0.1:port (0: any free
// port; a taken port moves on to the next free one) to target inside the
// namespace. Stop closes it.
func (w *World) Forward(port int, target string) (*Forward, error) {
	f, err := newForward(w.NS, port, target)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.forwards = append(w.forwards, f)
	w.mu.Unlock()
	return f, nil
}

// BinDir is the directory the world takes its binaries from.
func (w *World) BinDir() string { return w.binDir }

// Procs returns every process the world runs now: control planes,
// workloads and processes started with Run.
func (w *World) Procs() []*Proc {
	w.mu.Lock()
	out := append([]*Proc(nil), w.extra...)
	w.mu.Unlock()
	for _, c := range w.Clusters {
		out = append(out, c.procList()...)
	}
	if w.workloads != nil {
		out = append(out, w.workloads.procs()...)
	}
	return out
}

// Err returns the errors of processes that exited on their own so far.
func (w *World) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.errs...)
}

// Failed is closed when a control-plane process first exits on its own;
// Err then says which and why.
func (w *World) Failed() <-chan struct{} { return w.failed }

// unexpectedExit records and reports a control-plane process that died.
func (w *World) unexpectedExit(p *Proc, err error) {
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return
	}
	perr := processExited(p, err)
	w.errs = append(w.errs, perr)
	if len(w.errs) == 1 {
		close(w.failed)
	}
	started := w.started
	w.mu.Unlock()
	// While Start runs, its readiness waits return this error; afterwards
	// nobody would, so it is reported here.
	if started {
		w.opts.Logf("test world: %v", perr)
	}
}

// Stop tears the world down: workloads, then each cluster's control plane,
// then the namespace and the directory. It is safe to call more than once
// and from several goroutines; every call returns after teardown is
// complete.
func (w *World) Stop() error {
	var err error
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.stopping = true
		w.mu.Unlock()
		w.mu.Lock()
		extra, forwards := w.extra, w.forwards
		w.mu.Unlock()
		for _, f := range forwards {
			_ = f.Close()
		}
		var wg sync.WaitGroup
		for _, p := range extra {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop() }()
		}
		wg.Wait()
		if w.workloads != nil {
			w.workloads.stop()
		}
		for _, c := range w.Clusters {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop() }()
		}
		wg.Wait()
		if w.NS != nil {
			// The rules would go with the namespace; removing them first
			// keeps Stop's account exact (and reports rules that would not
			// go).
			err = w.firewall.removeAll()
			err = errors.Join(err, w.NS.Close())
		}
		if keep := os.Getenv(KeepLogsEnv); keep != "" {
			dst := filepath.Join(keep, filepath.Base(w.Dir))
			if cerr := os.CopyFS(dst, os.DirFS(w.logDir)); cerr != nil {
				err = errors.Join(err, fmt.Errorf("keep the logs in %s: %w", dst, cerr))
			} else {
				w.opts.Logf("test world: logs kept in %s", dst)
			}
		}
		if rerr := os.RemoveAll(w.Dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove world directory: %w", rerr))
		}
		close(w.stopSig)
	})
	<-w.stopSig
	return err
}

// handleSignals tears the world down on SIGINT or SIGTERM, then lets the
// signal end the process as it would have.
func (w *World) handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			w.opts.Logf("test world: %v: tearing down", sig)
			_ = w.Stop()
			signal.Reset(sig)
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(os.Getpid(), s)
			}
		case <-w.stopSig:
			signal.Stop(ch)
		}
	}()
}

// removeStaleDirs removes world directories left by processes that were
// killed before they could clean up (SIGKILL leaves no chance).
func removeStaleDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "causeway-world-*-*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), "causeway-world-")
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(m)
		}
	}
}
