package world

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Causeway's test images. A pod container with one of these images gets a
// real process, started by the world inside the namespace, that serves on
// the pod's IP. Other images are simulated by kwok alone and have no process.
const (
	// ImageEcho runs causeway-echo: HTTP/1.1, h2c and WebSocket, gRPC or
	// raw TCP echo on each container port. The port's name (or
	// appProtocol) picks the protocol: "grpc…" → gRPC, "tcp…" → TCP,
	// anything else → HTTP. No ports: HTTP on 8080.
	ImageEcho = "causeway.dev/echo"
	// ImageLoad runs fortio with the container's args, after Kubernetes'
	// $(VAR) expansion with the container's env and POD_IP, POD_NAME,
	// POD_NAMESPACE, CLUSTER_NAME, NODE_NAME.
	ImageLoad = "causeway.dev/load"
)

// defaultEchoPort is the echo server's port when a container declares none.
const defaultEchoPort = 8080

// imageName strips a tag or digest: "causeway.dev/echo:v1" → "causeway.dev/echo".
func imageName(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// processSpec is what to run for one container of one pod.
type processSpec struct {
	bin  string
	args []string
	env  []string
}

// containerProcess decides the process for a container, or ok=false for an
// image the world does not run.
func containerProcess(binDir, cluster string, pod *corev1.Pod, ctr *corev1.Container) (processSpec, bool) {
	vars := map[string]string{
		"POD_NAME":      pod.Name,
		"POD_NAMESPACE": pod.Namespace,
		"POD_IP":        pod.Status.PodIP,
		"NODE_NAME":     pod.Spec.NodeName,
		"CLUSTER_NAME":  cluster,
	}
	env := make([]string, 0, len(vars)+len(ctr.Env))
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			vars[e.Name] = expandVars(e.Value, vars)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	args := make([]string, 0, len(ctr.Command)+len(ctr.Args))
	for _, a := range append(append([]string{}, ctr.Command...), ctr.Args...) {
		args = append(args, expandVars(a, vars))
	}
	switch imageName(ctr.Image) {
	case ImageEcho:
		var listen []string
		for _, p := range ctr.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(p.ContainerPort)))
			listen = append(listen, "--listen="+addr+"="+echoProtocol(p))
		}
		if len(listen) == 0 {
			listen = []string{"--listen=" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(defaultEchoPort)) + "=http"}
		}
		return processSpec{bin: filepath.Join(binDir, binEcho), args: append(listen, args...), env: env}, true
	case ImageLoad:
		return processSpec{bin: filepath.Join(binDir, binFortio), args: args, env: env}, true
	}
	return processSpec{}, false
}

func echoProtocol(p corev1.ContainerPort) string {
	name := strings.ToLower(p.Name)
	switch {
	case strings.HasPrefix(name, "grpc"):
		return "grpc"
	case strings.HasPrefix(name, "tcp"):
		return "tcp"
	}
	return "http"
}

// expandVars does Kubernetes' $(VAR) expansion: known variables are
// replaced, $$ escapes, and unknown references stay as written.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// workloads is the world's stand-in for the kubelet's container runtime:
// it watches pods in every cluster and keeps one process per container of a
// known image running while the pod is Running with an IP.
type workloads struct {
	w      *World
	cancel context.CancelFunc
	queue  workqueue.TypedRateLimitingInterface[podKey]
	wg     sync.WaitGroup
	stores map[string]cache.Store

	mu      sync.Mutex
	running map[podKey]*podProcs
}

type podKey struct{ cluster, namespace, name string }

type podProcs struct {
	uid, ip string
	procs   []*Proc
}

func startWorkloads(w *World) (*workloads, error) {
	ctx, cancel := context.WithCancel(context.Background())
	wl := &workloads{
		w:       w,
		cancel:  cancel,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[podKey]()),
		stores:  map[string]cache.Store{},
		running: map[podKey]*podProcs{},
	}
	var synced []cache.InformerSynced
	for _, c := range w.Clusters {
		factory := informers.NewSharedInformerFactory(c.Client, 0)
		inf := factory.Core().V1().Pods().Informer()
		enqueue := func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				wl.queue.Add(podKey{c.Name, pod.Namespace, pod.Name})
			}
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, obj any) { enqueue(obj) },
			DeleteFunc: enqueue,
		}); err != nil {
			cancel()
			return nil, fmt.Errorf("cluster %s: watch pods: %w", c.Name, err)
		}
		wl.stores[c.Name] = inf.GetStore()
		synced = append(synced, inf.HasSynced)
		factory.Start(ctx.Done())
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		cancel()
		return nil, fmt.Errorf("pod informers did not sync")
	}
	for range 2 {
		wl.wg.Add(1)
		go func() {
			defer wl.wg.Done()
			for wl.next() {
			}
		}()
	}
	return wl, nil
}

func (wl *workloads) next() bool {
	key, shutdown := wl.queue.Get()
	if shutdown {
		return false
	}
	defer wl.queue.Done(key)
	if err := wl.sync(key); err != nil {
		utilruntime.HandleError(err)
		wl.queue.AddRateLimited(key)
		return true
	}
	wl.queue.Forget(key)
	return true
}

// sync makes the processes of one pod match the pod: level-triggered, so a
// missed event heals on the next one.
func (wl *workloads) sync(key podKey) error {
	var pod *corev1.Pod
	if obj, ok, err := wl.stores[key.cluster].GetByKey(key.namespace + "/" + key.name); err != nil {
		return fmt.Errorf("get pod %s/%s in cluster %s: %w", key.namespace, key.name, key.cluster, err)
	} else if ok {
		pod = obj.(*corev1.Pod)
	}
	want := pod != nil && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""

	wl.mu.Lock()
	cur := wl.running[key]
	wl.mu.Unlock()
	if cur != nil && (!want || cur.uid != string(pod.UID) || cur.ip != pod.Status.PodIP) {
		for _, p := range cur.procs {
			p.Stop()
		}
		wl.mu.Lock()
		delete(wl.running, key)
		wl.mu.Unlock()
		cur = nil
	}
	if !want || cur != nil {
		return nil
	}
	next := &podProcs{uid: string(pod.UID), ip: pod.Status.PodIP}
	for i := range pod.Spec.Containers {
		ctr := &pod.Spec.Containers[i]
		spec, ok := containerProcess(wl.w.binDir, key.cluster, pod, ctr)
		if !ok {
			continue
		}
		name := fmt.Sprintf("%s/pod/%s/%s/%s", key.cluster, pod.Namespace, pod.Name, ctr.Name)
		p, err := startProc(wl.w.NS, name, wl.w.logDir, spec.bin, spec.args, spec.env, nil)
		if err != nil {
			for _, started := range next.procs {
				started.Stop()
			}
			return fmt.Errorf("cluster %s: %w", key.cluster, err)
		}
		next.procs = append(next.procs, p)
	}
	if len(next.procs) > 0 {
		wl.mu.Lock()
		wl.running[key] = next
		wl.mu.Unlock()
	}
	return nil
}

func (wl *workloads) procs() []*Proc {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	var out []*Proc
	for _, pp := range wl.running {
		out = append(out, pp.procs...)
	}
	return out
}

// stop ends the watch and every workload process.
func (wl *workloads) stop() {
	wl.cancel()
	wl.queue.ShutDown()
	wl.wg.Wait()
	var wg sync.WaitGroup
	for _, p := range wl.procs() {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
}
