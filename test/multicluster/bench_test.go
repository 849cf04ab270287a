package multicluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// benchServices is how many services each run exports. The exports are
// paced at a given rate: a cluster set sees exports arrive over time, and a
// burst of 1,000 at once measures queueing, not latency. Two rates: 20/s, a
// busy deploy day, and 100/s, a stress that saturates this 2-core machine
// (four API servers and etcds, the hub and three agents share it).
const benchServices = 1000

var benchRates = []int{20, 100}

// arrivals records when each object first appeared, by key.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (a *arrivals) mark(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[key]; !ok {
		a.seen[key] = time.Now()
	}
}

func (a *arrivals) get(key string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.seen[key]
	return t, ok
}

// watchArrivals records in a the first sight of every ServiceImport and
// MCS EndpointSlice in namespace ns of cluster, keyed "<cluster> si|eps
// <name>", through informers (watches, as a controller would see them).
func watchArrivals(ctx context.Context, b *testing.B, cluster, ns string, a *arrivals) {
	c, err := crcache.New(w.Cluster(cluster).Config, crcache.Options{Scheme: scheme.New(), DefaultNamespaces: map[string]crcache.Config{ns: {}}})
	if err != nil {
		b.Fatal(err)
	}
	mark := func(kind string) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
			obj := o.(client.Object)
			name := obj.GetName()
			if kind == "eps" {
				name = obj.GetLabels()[mcsv1beta1.LabelServiceName]
			}
			if name != "" {
				a.mark(cluster + " " + kind + " " + name)
			}
		}}
	}
	for kind, obj := range map[string]client.Object{"si": &mcsv1beta1.ServiceImport{}, "eps": &discoveryv1.EndpointSlice{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inf.AddEventHandler(mark(kind)); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("bench informers did not sync")
	}
}

// watchHub records when each service's ExportRecord and GlobalService
// first appear on the hub ("hub rec|gs <name>").
func watchHub(ctx context.Context, b *testing.B, a *arrivals) {
	c, err := crcache.New(w.Cluster("hub").Config, crcache.Options{Scheme: scheme.New(), DefaultNamespaces: map[string]crcache.Config{
		causewayv1alpha1.MemberNamespace("east"): {}, causewayv1alpha1.SystemNamespace: {}}})
	if err != nil {
		b.Fatal(err)
	}
	for kind, obj := range map[string]client.Object{"rec": &causewayv1alpha1.ExportRecord{}, "gs": &causewayv1alpha1.GlobalService{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
			name := o.(client.Object).GetName()
			if _, svc, ok := strings.Cut(name, "."); ok {
				a.mark("hub " + kind + " " + svc)
			}
		}}); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("hub informers did not sync")
	}
}

// stages logs the median time from export creation to each stage, for the
// first and the last 100 exports: where the time goes.
func stages(b *testing.B, a *arrivals, created []time.Time) {
	for _, stage := range []string{"hub rec ", "hub gs ", "west si ", "west eps "} {
		med := func(from, to int) time.Duration {
			var d []time.Duration
			for i := from; i < to; i++ {
				if t, ok := a.get(stage + fmt.Sprintf("svc-%04d", i)); ok {
					d = append(d, t.Sub(created[i]))
				}
			}
			if len(d) == 0 {
				return -1
			}
			slices.Sort(d)
			return d[len(d)/2]
		}
		b.Logf("stage %-9s median: first 100 %s, last 100 %s", strings.TrimSpace(stage), med(0, 100), med(len(created)-100, len(created)))
	}
	// The slowest exports, stage by stage.
	type slow struct {
		i     int
		total time.Duration
	}
	var all []slow
	for i := range created {
		var last time.Time
		for _, stage := range []string{"west si ", "west eps ", "north si ", "north eps "} {
			if t, ok := a.get(stage + fmt.Sprintf("svc-%04d", i)); ok && t.After(last) {
				last = t
			}
		}
		all = append(all, slow{i, last.Sub(created[i])})
	}
	slices.SortFunc(all, func(x, y slow) int { return int(y.total - x.total) })
	for _, sl := range all[:min(5, len(all))] {
		var parts []string
		for _, stage := range []string{"hub rec ", "hub gs ", "west si ", "west eps ", "north si ", "north eps "} {
			t, _ := a.get(stage + fmt.Sprintf("svc-%04d", sl.i))
			parts = append(parts, fmt.Sprintf("%s%s", stage, t.Sub(created[sl.i]).Round(time.Millisecond)))
		}
		b.Logf("slow export svc-%04d (created %s): %s", sl.i, created[sl.i].Format("15:04:05.000"), strings.Join(parts, ", "))
	}
}

// BenchmarkExportToImport: 1,000 services with 2 endpoints each exported
// from east; the time from each ServiceExport's creation to its
// ServiceImport and EndpointSlices existing in both other members, against
// the baseline of one API write seen through a watch in the same run; peak
// RSS and CPU of the hub and agents; then a full resync after a hub
// restart (duration and objects written).
func BenchmarkExportToImport(b *testing.B) {
	for _, rate := range benchRates {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			for range b.N {
				benchOnce(b, rate)
			}
		})
	}
}

func benchOnce(b *testing.B, benchRate int) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1000000)
	for _, m := range members {
		if err := w.Cluster(m).EnsureNamespace(ctx, ns); err != nil {
			b.Fatal(err)
		}
	}
	baseline := watchBaseline(ctx, b, ns)

	// Services without selectors and hand-made EndpointSlices: the agent
	// reads them exactly as it reads the EndpointSlice controller's.
	east := kube("east")
	for i := range benchServices {
		name := fmt.Sprintf("svc-%04d", i)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if _, err := east.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		eps := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{
				discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench.causeway.dev"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)), Protocol: new(corev1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
				{Addresses: []string{fmt.Sprintf("10.2.%d.%d", 4+i/250, i%250+1)}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}},
			},
		}
		if _, err := east.DiscoveryV1().EndpointSlices(ns).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}

	a := &arrivals{seen: map[string]time.Time{}}
	for _, m := range []string{"west", "north"} {
		watchArrivals(ctx, b, m, ns, a)
	}
	watchHub(ctx, b, a)
	cpu0 := procCPU(b)
	created := make([]time.Time, benchServices)
	tick := time.NewTicker(time.Second / time.Duration(benchRate))
	b.ResetTimer()
	for i := range benchServices {
		<-tick.C
		se := &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%04d", i)}}
		created[i] = time.Now()
		if err := clients["east"].Create(ctx, se); err != nil {
			b.Fatal(err)
		}
	}
	tick.Stop()
	var lat []time.Duration
	missing := ""
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true, func(context.Context) (bool, error) {
		lat = lat[:0]
		for i := range benchServices {
			name := fmt.Sprintf("svc-%04d", i)
			var done time.Time
			for _, k := range []string{"west si ", "west eps ", "north si ", "north eps "} {
				t, ok := a.get(k + name)
				if !ok {
					missing = fmt.Sprintf("%s%s (and %d after it)", k, name, benchServices-i-1)
					return false, nil
				}
				if t.After(done) {
					done = t
				}
			}
			lat = append(lat, done.Sub(created[i]))
		}
		return true, nil
	})
	b.StopTimer()
	if err != nil {
		b.Fatalf("not every export was imported in west and north: %v; first missing: %s", err, missing)
	}
	stages(b, a, created)
	for _, c := range []string{"serviceexport", "serviceimport"} {
		n, _ := metric(ctx, "east", `controller_runtime_reconcile_total{controller="`+c+`"`)
		e, _ := metric(ctx, "east", `controller_runtime_reconcile_errors_total{controller="`+c+`"`)
		b.Logf("east agent %s: %v reconciles, %v errors", c, n, e)
	}
	early, late := slices.Clone(lat[:100]), slices.Clone(lat[len(lat)-100:])
	slices.Sort(early)
	slices.Sort(late)
	b.Logf("median latency of the first 100 exports %s, of the last 100 %s", early[50], late[50])
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	cpu1 := procCPU(b)
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
	b.ReportMetric(float64(p99)/float64(baseline), "p99/baseline")
	for name, secs := range cpu1 {
		b.ReportMetric(secs-cpu0[name], name+"-cpu-s")
	}
	for name, mib := range peakRSS(b) {
		b.ReportMetric(mib, name+"-peak-MiB")
	}
	b.Logf("%d exports at %d/s: p50 %s p99 %s (baseline: one API write seen by a watch, %s)", benchServices, benchRate, p50, p99, baseline)

	// A full resync: restart the hub, wait until it has reconciled every
	// service, and count what it rewrote.
	for _, m := range members {
		waitSettled(b, m)
	}
	before := snapshot(b, ctx)
	cs.Hub().Stop()
	start := time.Now()
	if err := cs.StartHub(); err != nil {
		b.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := hubMetric(ctx, `controller_runtime_reconcile_total{controller="globalservice",result="success"}`)
		if err != nil {
			return false, nil //nolint:nilerr // the hub is still starting: poll on
		}
		depth, err := hubMetric(ctx, `workqueue_depth{controller="globalservice"`)
		return err == nil && n >= benchServices && depth == 0, nil
	}); err != nil {
		b.Fatalf("the restarted hub did not finish its resync: %v", err)
	}
	resync := time.Since(start)
	written := len(diffSnapshots(before, snapshot(b, ctx)))
	b.ReportMetric(resync.Seconds(), "resync-s")
	b.ReportMetric(float64(written), "resync-writes")
	b.Logf("hub restart: resync of %d services in %s, %d objects written", benchServices, resync.Round(10*time.Millisecond), written)

	// Clean up: the namespace's exports and imports go with it.
	for _, m := range members {
		_ = kube(m).CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	}
}

// watchBaseline measures one write in east seen through a watch in east:
// the floor under any export-to-import latency.
func watchBaseline(ctx context.Context, b *testing.B, ns string) time.Duration {
	c := kube("east")
	var samples []time.Duration
	for i := range 20 {
		name := fmt.Sprintf("baseline-%d", i)
		wch, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		<-wch.ResultChan()
		samples = append(samples, time.Since(start))
		wch.Stop()
	}
	slices.Sort(samples)
	return samples[len(samples)/2]
}

func hubMetric(ctx context.Context, prefix string) (float64, error) {
	return metricAt(ctx, cs.HubMetricsURL(), prefix)
}

// benchProcs are the processes whose CPU and memory the benchmark reports.
func benchProcs() map[string]*world.Proc {
	out := map[string]*world.Proc{"hub": cs.Hub()}
	for _, m := range members {
		out["agent-"+m] = cs.Agent(m)
	}
	return out
}

// procCPU returns user+system CPU seconds of each process.
func procCPU(b *testing.B) map[string]float64 {
	out := map[string]float64{}
	for name, p := range benchProcs() {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.PID()), "stat"))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command (which may hold spaces) start after ')'.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		out[name] = (utime + stime) / 100 // USER_HZ
	}
	return out
}

// peakRSS returns each process's peak resident set (VmHWM) in MiB.
func peakRSS(b *testing.B) map[string]float64 {
	out := map[string]float64{}
	for name, p := range benchProcs() {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.PID()), "status"))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				out[name] = kb / 1024
			}
		}
	}
	return out
}
