package multicluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// exportEverywhere deploys name in cluster, makes its namespace in every
// member, exports it and waits until every member imports it.
func exportEverywhere(t *testing.T, ctx context.Context, cluster, ns, name string, replicas int32) []string {
	t.Helper()
	return exportEverywhereWithin(t, ctx, 20*time.Second, cluster, ns, name, replicas)
}

// exportEverywhereWithin is exportEverywhere waiting up to within for
// each member's import.
func exportEverywhereWithin(t *testing.T, ctx context.Context, within time.Duration, cluster, ns, name string, replicas int32) []string {
	t.Helper()
	deployEcho(t, ctx, cluster, ns, name, replicas)
	for _, m := range members {
		ensureNamespace(t, ctx, m, ns)
	}
	ips := readyEndpointIPs(t, ctx, cluster, ns, name, int(replicas))
	export(t, ctx, cluster, ns, name)
	for _, m := range members {
		eventually(t, within, name+" imported in "+m, func(ctx context.Context) error {
			eps, err := importSlices(ctx, m, ns, name)
			if err != nil {
				return err
			}
			if !slices.Equal(eps[cluster], ips) {
				return fmt.Errorf("endpoints from %s: %v, want %v", cluster, eps[cluster], ips)
			}
			return nil
		})
	}
	return ips
}

// TestMemberLossWithdrawsEndpoints: when a member's agent stops, its
// endpoints are withdrawn everywhere within lease + grace + 5 s; when it
// comes back they return.
func TestMemberLossWithdrawsEndpoints(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := uniqueNS(t)
	ips := exportEverywhere(t, ctx, "east", ns, "inventory", 2)

	cs.Agent("east").Kill()
	killed := time.Now()
	t.Cleanup(func() {
		if cs.Agent("east").PID() != 0 {
			if exited, _ := cs.Agent("east").Exited(); exited {
				_ = cs.StartAgent("east")
			}
		}
	})
	limit := leaseDuration + gracePeriod + 5*time.Second
	for _, m := range []string{"west", "north"} {
		eventually(t, limit-time.Since(killed), "east's endpoints withdrawn in "+m, func(ctx context.Context) error {
			eps, err := importSlices(ctx, m, ns, "inventory")
			if err != nil {
				return err
			}
			if len(eps["east"]) != 0 {
				return fmt.Errorf("still has east's endpoints %v", eps["east"])
			}
			return nil
		})
	}
	t.Logf("east's endpoints withdrawn %s after its agent died (lease %s, grace %s)", time.Since(killed).Round(10*time.Millisecond), leaseDuration, gracePeriod)
	var mc causewayv1alpha1.MemberCluster
	if err := clients["hub"].Get(ctx, client.ObjectKey{Name: "east"}, &mc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(mc.Status.Conditions, causewayv1alpha1.MemberClusterHealthy); c == nil || c.Status != metav1.ConditionFalse || c.Reason != causewayv1alpha1.ReasonLeaseExpired {
		t.Errorf("MemberCluster east Healthy condition = %+v, want False/LeaseExpired", c)
	}

	if err := cs.StartAgent("east"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"west", "north"} {
		eventually(t, 20*time.Second, "east's endpoints back in "+m, func(ctx context.Context) error {
			eps, err := importSlices(ctx, m, ns, "inventory")
			if err != nil {
				return err
			}
			if !slices.Equal(eps["east"], ips) {
				return fmt.Errorf("east's endpoints %v, want %v", eps["east"], ips)
			}
			return nil
		})
	}
}

// snapshot maps "kind cluster ns/name" to resourceVersion for everything
// the agents and the hub write, except leases (heartbeats).
func snapshot(t testing.TB, ctx context.Context) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(kind, cluster string, list client.ObjectList, opts ...client.ListOption) {
		if err := clients[cluster].List(ctx, list, opts...); err != nil {
			t.Fatalf("cluster %s: list %s: %v", cluster, kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			o := it.(client.Object)
			out[kind+" "+cluster+" "+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	for _, m := range members {
		add("ServiceImport", m, &mcsv1beta1.ServiceImportList{})
		add("ServiceExport", m, &mcsv1beta1.ServiceExportList{})
		add("EndpointSlice", m, &discoveryv1.EndpointSliceList{}, client.MatchingLabels{discoveryv1.LabelManagedBy: causewayv1alpha1.ManagedByAgent})
	}
	add("ExportRecord", "hub", &causewayv1alpha1.ExportRecordList{})
	add("GlobalService", "hub", &causewayv1alpha1.GlobalServiceList{})
	return out
}

func diffSnapshots(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if after[k] != v {
			d = append(d, fmt.Sprintf("%s: %s → %q", k, v, after[k]))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "new "+k)
		}
	}
	slices.Sort(d)
	return d
}

// metric scrapes one agent's metrics and sums the samples whose line
// starts with prefix.
func metric(ctx context.Context, member, prefix string) (float64, error) {
	return metricAt(ctx, cs.MetricsURL(member), prefix)
}

// metricAt scrapes a metrics endpoint inside the world and sums the samples
// whose line starts with prefix.
func metricAt(ctx context.Context, url, prefix string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := w.HTTPClient(5 * time.Second).Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// waitSettled waits until the member's agent has reconciled every import
// and export it has, and its queues are empty.
func waitSettled(t testing.TB, member string) {
	t.Helper()
	var nImports, nExports int
	{
		var gs causewayv1alpha1.GlobalServiceList
		if err := clients["hub"].List(t.Context(), &gs); err != nil {
			t.Fatal(err)
		}
		nImports = len(gs.Items)
		var se mcsv1beta1.ServiceExportList
		if err := clients[member].List(t.Context(), &se); err != nil {
			t.Fatal(err)
		}
		nExports = len(se.Items)
	}
	eventually(t, 30*time.Second, "agent of "+member+" settled", func(ctx context.Context) error {
		imp, err := metric(ctx, member, `controller_runtime_reconcile_total{controller="serviceimport",result="success"}`)
		if err != nil {
			return err
		}
		exp, err := metric(ctx, member, `controller_runtime_reconcile_total{controller="serviceexport",result="success"}`)
		if err != nil {
			return err
		}
		depth, err := metric(ctx, member, `workqueue_depth{`)
		if err != nil {
			return err
		}
		if int(imp) < nImports || int(exp) < nExports || depth != 0 {
			return fmt.Errorf("reconciled %v imports of %d, %v exports of %d, queue depth %v", imp, nImports, exp, nExports, depth)
		}
		return nil
	})
}

// TestAgentRestartWritesNothing: an agent restarted with nothing changed
// writes nothing: every object it and the hub manage keeps its
// resourceVersion, and its write counter stays at zero.
func TestAgentRestartWritesNothing(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := uniqueNS(t)
	exportEverywhere(t, ctx, "west", ns, "ledger", 2)
	waitExportCondition(t, "west", ns, "ledger", string(mcsv1beta1.ServiceExportConditionReady), metav1.ConditionTrue, "")
	waitSettled(t, "west")
	before := snapshot(t, ctx)

	cs.Agent("west").Stop()
	if err := cs.StartAgent("west"); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, "west")
	time.Sleep(time.Second) // let any stray write land before we look
	if d := diffSnapshots(before, snapshot(t, ctx)); len(d) > 0 {
		t.Errorf("the restarted agent changed %d objects:\n%s", len(d), strings.Join(d, "\n"))
	}
	writes, err := metric(ctx, "west", "causeway_agent_writes_total{")
	if err != nil {
		t.Fatal(err)
	}
	if writes != 0 {
		t.Errorf("causeway_agent_writes_total = %v after a restart with nothing changed, want 0", writes)
	}
	t.Logf("restart of west's agent: %d objects checked, 0 writes", len(before))
}

// TestHubRestartLosesNothing: while the hub is down members keep their
// imports; an export made meanwhile is imported once it is back; nothing is
// duplicated or rewritten.
func TestHubRestartLosesNothing(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	ns := uniqueNS(t)
	exportEverywhere(t, ctx, "north", ns, "search", 2)
	for _, m := range members {
		waitSettled(t, m)
	}
	before := snapshot(t, ctx)

	cs.Hub().Kill()
	// While the hub is down: a new export is published, nothing is lost.
	deployEcho(t, ctx, "east", ns, "reviews", 1)
	export(t, ctx, "east", ns, "reviews")
	waitExportCondition(t, "east", ns, "reviews", string(mcsv1beta1.ServiceExportConditionReady), metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonPending))
	time.Sleep(leaseDuration + gracePeriod) // long enough for a lease to expire, were anyone watching
	for _, m := range members {
		if _, err := getImport(ctx, m, ns, "search"); err != nil {
			t.Fatalf("with the hub down, %s lost its import: %v", m, err)
		}
	}

	start := time.Now()
	if err := cs.StartHub(); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		eventually(t, 30*time.Second, "the export made while the hub was down, imported in "+m, func(ctx context.Context) error {
			_, err := getImport(ctx, m, ns, "reviews")
			return err
		})
	}
	t.Logf("hub restart: the pending export imported everywhere %s after the hub started", time.Since(start).Round(10*time.Millisecond))
	for _, m := range members {
		waitSettled(t, m)
	}
	after := snapshot(t, ctx)
	var unexpected []string
	for _, d := range diffSnapshots(before, after) {
		// The new export's own objects, and the east ServiceExport it
		// belongs to, are expected; so is the east MemberCluster count.
		if strings.Contains(d, "/reviews") || strings.Contains(d, "."+"reviews") {
			continue
		}
		unexpected = append(unexpected, d)
	}
	if len(unexpected) > 0 {
		t.Errorf("the hub restart rewrote %d objects that did not change:\n%s", len(unexpected), strings.Join(unexpected, "\n"))
	}
	for _, m := range members {
		eps, err := importSlices(ctx, m, ns, "search")
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 1 || len(eps["north"]) != 2 {
			t.Errorf("%s: endpoints of search after the hub restart %v, want north's 2 once", m, eps)
		}
	}
}

// TestHandEditedImportIsHealed: a ServiceImport edited by hand is put back.
func TestHandEditedImportIsHealed(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	exportEverywhere(t, ctx, "east", ns, "profile", 1)
	si, err := getImport(ctx, "north", ns, "profile")
	if err != nil {
		t.Fatal(err)
	}
	orig := importPorts(si)
	si.Spec.Ports = []mcsv1beta1.ServicePort{{Name: "bogus", Port: 1, Protocol: "TCP"}}
	si.Spec.IPs = []string{"1.2.3.4"}
	if err := clients["north"].Update(ctx, si); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "hand edit undone in north", func(ctx context.Context) error {
		si, err := getImport(ctx, "north", ns, "profile")
		if err != nil {
			return err
		}
		if got := importPorts(si); !slices.Equal(got, orig) || slices.Contains(si.Spec.IPs, "1.2.3.4") {
			return fmt.Errorf("ports %v ips %v", got, si.Spec.IPs)
		}
		return nil
	})
	// A deleted import slice comes back too.
	var list discoveryv1.EndpointSliceList
	if err := clients["north"].List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{mcsv1beta1.LabelServiceName: "profile"}); err != nil || len(list.Items) == 0 {
		t.Fatalf("list import slices: %v (%d)", err, len(list.Items))
	}
	if err := clients["north"].Delete(ctx, &list.Items[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "deleted import slice recreated", func(ctx context.Context) error {
		eps, err := importSlices(ctx, "north", ns, "profile")
		if err != nil {
			return err
		}
		if len(eps["east"]) != 1 {
			return fmt.Errorf("endpoints %v", eps)
		}
		return nil
	})
}

// asMember returns a hub client with the credentials `causeway join` gave
// member's agent.
func asMember(t *testing.T, ctx context.Context, member string) client.Client {
	t.Helper()
	sec, err := kube(member).CoreV1().Secrets(causewayv1alpha1.SystemNamespace).Get(ctx, causewayv1alpha1.HubCredentialsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(sec.Data[causewayv1alpha1.HubCredentialsKey])
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dial = w.DialContext // the kubeconfig names the hub's address inside the world
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMemberCredentialsAreScoped: a member's hub credentials may write its
// own records, and nothing of another member's or of the hub's.
func TestMemberCredentialsAreScoped(t *testing.T) {
	ctx := testContext(t, time.Minute)
	asEast := asMember(t, ctx, "east")
	rec := func(ns string) *causewayv1alpha1.ExportRecord {
		return &causewayv1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged.svc"},
			Spec: causewayv1alpha1.ExportRecordSpec{Cluster: "west", Service: causewayv1alpha1.ServiceRef{Namespace: "forged", Name: "svc"},
				ExportCreationTimestamp: metav1.Now(),
				ServiceProperties:       causewayv1alpha1.ServiceProperties{Type: causewayv1alpha1.ServiceTypeClusterSetIP}},
		}
	}
	if err := asEast.Create(ctx, rec(causewayv1alpha1.MemberNamespace("west"))); !apierrors.IsForbidden(err) {
		t.Errorf("east writing a record into west's namespace: err = %v, want Forbidden", err)
	}
	if err := asEast.Create(ctx, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}); !apierrors.IsForbidden(err) {
		t.Errorf("east creating a MemberCluster: err = %v, want Forbidden", err)
	}
	// A record east forges in its own namespace claiming to be west is
	// ignored by the hub: records are trusted only for their namespace.
	forged := rec(causewayv1alpha1.MemberNamespace("east"))
	if err := asEast.Create(ctx, forged); err != nil {
		t.Fatalf("east writing into its own namespace: %v", err)
	}
	t.Cleanup(func() { _ = clients["hub"].Delete(context.Background(), forged) })
	time.Sleep(2 * time.Second)
	var gs causewayv1alpha1.GlobalService
	err := clients["hub"].Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: "forged.svc"}, &gs)
	if !apierrors.IsNotFound(err) {
		t.Errorf("a forged record produced a GlobalService (err=%v): %+v", err, gs.Spec)
	}
}

// TestBadMemberCluster: a MemberCluster that passes validation but has no
// joined cluster behind it gets clear False conditions, and the hub keeps
// running; an invalid one is refused with a message.
func TestBadMemberCluster(t *testing.T) {
	ctx := testContext(t, time.Minute)
	bad := &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "bad.name"}}
	if err := clients["hub"].Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "must be a DNS-1123 label") {
		t.Errorf("MemberCluster bad.name: err = %v, want a DNS-1123 label message", err)
	}
	ghost := &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "ghost"}}
	if err := clients["hub"].Create(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clients["hub"].Delete(context.Background(), ghost) })
	eventually(t, 10*time.Second, "ghost MemberCluster conditions", func(ctx context.Context) error {
		var mc causewayv1alpha1.MemberCluster
		if err := clients["hub"].Get(ctx, client.ObjectKey{Name: "ghost"}, &mc); err != nil {
			return err
		}
		joined := meta.FindStatusCondition(mc.Status.Conditions, causewayv1alpha1.MemberClusterJoined)
		ready := meta.FindStatusCondition(mc.Status.Conditions, causewayv1alpha1.MemberClusterReady)
		if joined == nil || joined.Status != metav1.ConditionFalse || ready == nil || ready.Status != metav1.ConditionFalse || ready.Message == "" {
			return fmt.Errorf("conditions %+v", mc.Status.Conditions)
		}
		return nil
	})
	if exited, err := cs.Hub().Exited(); exited {
		t.Fatalf("the hub died: %v", err)
	}
}
