package hub

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// restConfig reaches the package's API server, started once in TestMain.
var restConfig *rest.Config

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	env, err := world.StartEnvtest()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		os.Exit(1)
	}
	restConfig = env.Config
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// writeCounter counts the writes a client makes.
type writeCounter struct{ n atomic.Int32 }

func (w *writeCounter) wrap(c client.WithWatch) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			w.n.Add(1)
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			w.n.Add(1)
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			w.n.Add(1)
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			w.n.Add(1)
			return c.Delete(ctx, o, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			w.n.Add(1)
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			w.n.Add(1)
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
	})
}

func directClient(t *testing.T) client.WithWatch {
	t.Helper()
	c, err := client.NewWithWatch(restConfig, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func create(ctx context.Context, t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberCondition(ctx context.Context, t *testing.T, c client.Client, name, typ string) metav1.Condition {
	t.Helper()
	var mc causewayv1alpha1.MemberCluster
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &mc); err != nil {
		t.Fatalf("get member %s: %v", name, err)
	}
	cond := meta.FindStatusCondition(mc.Status.Conditions, typ)
	if cond == nil {
		t.Fatalf("member %s has no %s condition: %+v", name, typ, mc.Status.Conditions)
	}
	return *cond
}

func wantCondition(ctx context.Context, t *testing.T, c client.Client, member, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	cond := memberCondition(ctx, t, c, member, typ)
	if cond.Status != status || (reason != "" && cond.Reason != reason) {
		t.Fatalf("member %s: %s = %s/%s (%s), want %s/%s", member, typ, cond.Status, cond.Reason, cond.Message, status, reason)
	}
	return cond
}

// joinMember creates a member, optionally its namespace, and a lease
// renewed at renew.
func joinMember(ctx context.Context, t *testing.T, c client.Client, name string, withNamespace, paused bool, renew time.Time) {
	t.Helper()
	create(ctx, t, c, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: causewayv1alpha1.MemberClusterSpec{Paused: paused}})
	if !withNamespace {
		return
	}
	ns := causewayv1alpha1.MemberNamespace(name)
	create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	create(ctx, t, c, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: causewayv1alpha1.AgentLeaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("agent"),
			LeaseDurationSeconds: ptr.To[int32](10),
			RenewTime:            &metav1.MicroTime{Time: renew},
		},
	})
}

func TestMemberClusterReconcile(t *testing.T) {
	ctx := t.Context()
	c := directClient(t)
	var writes writeCounter
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	const grace = 5 * time.Second
	r := &MemberClusterReconciler{Client: writes.wrap(c), GracePeriod: grace, Clock: clk}
	reconcileMember := func(name string) reconcile.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
		if err != nil {
			t.Fatalf("Reconcile(%s): %v", name, err)
		}
		return res
	}

	t.Run("a member with a fresh lease is healthy and ready", func(t *testing.T) {
		joinMember(ctx, t, c, "east", true, false, start)
		res := reconcileMember("east")
		if want := 10*time.Second + grace; res.RequeueAfter < want || res.RequeueAfter > want+time.Second {
			t.Errorf("RequeueAfter = %s, want about %s", res.RequeueAfter, want)
		}
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterJoined, metav1.ConditionTrue, "NamespaceFound")
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterHealthy, metav1.ConditionTrue, "LeaseRenewed")
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterReady, metav1.ConditionTrue, "Healthy")
	})

	t.Run("a second reconcile with nothing changed writes nothing", func(t *testing.T) {
		var before causewayv1alpha1.MemberCluster
		if err := c.Get(ctx, types.NamespacedName{Name: "east"}, &before); err != nil {
			t.Fatal(err)
		}
		n := writes.n.Load()
		clk.Step(time.Second)
		reconcileMember("east")
		var after causewayv1alpha1.MemberCluster
		if err := c.Get(ctx, types.NamespacedName{Name: "east"}, &after); err != nil {
			t.Fatal(err)
		}
		if got := writes.n.Load() - n; got != 0 || after.ResourceVersion != before.ResourceVersion {
			t.Errorf("%d writes, resourceVersion %s → %s; want none", got, before.ResourceVersion, after.ResourceVersion)
		}
	})

	t.Run("past expiry plus grace the member is unhealthy", func(t *testing.T) {
		clk.SetTime(start.Add(10*time.Second + grace))
		res := reconcileMember("east")
		if res.RequeueAfter != 0 {
			t.Errorf("RequeueAfter = %s, want no requeue", res.RequeueAfter)
		}
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterHealthy, metav1.ConditionFalse, causewayv1alpha1.ReasonLeaseExpired)
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterReady, metav1.ConditionFalse, causewayv1alpha1.ReasonLeaseExpired)
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterJoined, metav1.ConditionTrue, "NamespaceFound")
	})

	t.Run("a renewed lease makes it healthy again", func(t *testing.T) {
		clk.Step(time.Minute)
		var l coordinationv1.Lease
		key := types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace("east"), Name: causewayv1alpha1.AgentLeaseName}
		if err := c.Get(ctx, key, &l); err != nil {
			t.Fatal(err)
		}
		l.Spec.RenewTime = &metav1.MicroTime{Time: clk.Now()}
		if err := c.Update(ctx, &l); err != nil {
			t.Fatal(err)
		}
		res := reconcileMember("east")
		if want := 10*time.Second + grace; res.RequeueAfter < want || res.RequeueAfter > want+time.Second {
			t.Errorf("RequeueAfter = %s, want about %s", res.RequeueAfter, want)
		}
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterHealthy, metav1.ConditionTrue, "LeaseRenewed")
		wantCondition(ctx, t, c, "east", causewayv1alpha1.MemberClusterReady, metav1.ConditionTrue, "Healthy")
	})

	t.Run("a member without its namespace has not joined", func(t *testing.T) {
		joinMember(ctx, t, c, "lost", false, false, clk.Now())
		if res := reconcileMember("lost"); res.RequeueAfter != 0 {
			t.Errorf("RequeueAfter = %s, want no requeue", res.RequeueAfter)
		}
		joined := wantCondition(ctx, t, c, "lost", causewayv1alpha1.MemberClusterJoined, metav1.ConditionFalse, "NamespaceMissing")
		if joined.Message == "" {
			t.Error("Joined=False without a message")
		}
		wantCondition(ctx, t, c, "lost", causewayv1alpha1.MemberClusterHealthy, metav1.ConditionFalse, "NoLease")
		wantCondition(ctx, t, c, "lost", causewayv1alpha1.MemberClusterReady, metav1.ConditionFalse, "NamespaceMissing")
	})

	t.Run("a paused member is healthy but not ready", func(t *testing.T) {
		joinMember(ctx, t, c, "resting", true, true, clk.Now())
		reconcileMember("resting")
		wantCondition(ctx, t, c, "resting", causewayv1alpha1.MemberClusterJoined, metav1.ConditionTrue, "NamespaceFound")
		wantCondition(ctx, t, c, "resting", causewayv1alpha1.MemberClusterHealthy, metav1.ConditionTrue, "LeaseRenewed")
		wantCondition(ctx, t, c, "resting", causewayv1alpha1.MemberClusterReady, metav1.ConditionFalse, causewayv1alpha1.ReasonPaused)
	})

	t.Run("a member that does not exist is ignored", func(t *testing.T) {
		n := writes.n.Load()
		if res := reconcileMember("nobody"); res != (reconcile.Result{}) {
			t.Errorf("Reconcile = %+v, want an empty result", res)
		}
		if writes.n.Load() != n {
			t.Error("Reconcile of a missing member wrote")
		}
	})
}

func TestServiceReconcile(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := scheme.New()
	direct := directClient(t)

	informers, err := cache.New(restConfig, cache.Options{Scheme: s})
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	if err := informers.IndexField(ctx, &causewayv1alpha1.ExportRecord{}, indexServiceKey, func(o client.Object) []string {
		return []string{serviceKeyOf(o.(*causewayv1alpha1.ExportRecord))}
	}); err != nil {
		t.Fatalf("index: %v", err)
	}
	cached, err := client.NewWithWatch(restConfig, client.Options{Scheme: s, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- informers.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	// Informers start on first use: touch every kind the reconciler reads.
	// Until Start has run, reads fail with "the cache is not started".
	for _, l := range []client.ObjectList{&causewayv1alpha1.ExportRecordList{}, &causewayv1alpha1.MemberClusterList{}, &causewayv1alpha1.GlobalServiceList{}} {
		eventually(t, fmt.Sprintf("list %T from the cache", l), func() error { return cached.List(ctx, l) })
	}
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}

	var writes writeCounter
	r := &ServiceReconciler{Client: writes.wrap(cached)}
	svc := types.NamespacedName{Namespace: "shop", Name: "cart"}
	gsKey := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ServiceKeyName("shop", "cart")}

	create(ctx, t, direct, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}})
	// Two healthy members, as the member reconciler leaves them.
	for _, m := range []string{"svc-a", "svc-b"} {
		create(ctx, t, direct, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: m}})
		create(ctx, t, direct, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(m)}})
		var mc causewayv1alpha1.MemberCluster
		if err := direct.Get(ctx, types.NamespacedName{Name: m}, &mc); err != nil {
			t.Fatal(err)
		}
		meta.SetStatusCondition(&mc.Status.Conditions, metav1.Condition{Type: causewayv1alpha1.MemberClusterHealthy, Status: metav1.ConditionTrue, Reason: "LeaseRenewed"})
		if err := direct.Status().Update(ctx, &mc); err != nil {
			t.Fatal(err)
		}
	}
	older := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	record := func(cluster string, created metav1.Time, ports ...causewayv1alpha1.ServicePort) *causewayv1alpha1.ExportRecord {
		return &causewayv1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: "shop.cart"},
			Spec: causewayv1alpha1.ExportRecordSpec{
				Cluster: cluster, Service: causewayv1alpha1.ServiceRef{Namespace: "shop", Name: "cart"},
				ExportCreationTimestamp: created,
				ServiceProperties:       causewayv1alpha1.ServiceProperties{Type: causewayv1alpha1.ServiceTypeClusterSetIP, Ports: ports},
				EndpointSlices:          []causewayv1alpha1.ExportedEndpointSlice{{AddressType: "IPv4", Endpoints: []causewayv1alpha1.ExportedEndpoint{{Addresses: []string{"10.0.0.1"}}}}},
			},
		}
	}
	http := causewayv1alpha1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}
	grpc := causewayv1alpha1.ServicePort{Name: "grpc", Protocol: corev1.ProtocolTCP, Port: 9090}
	recA := record("svc-a", older, http)
	recB := record("svc-b", metav1.NewTime(older.Add(time.Hour)), http, grpc)
	create(ctx, t, direct, recA)
	create(ctx, t, direct, recB)

	// synced waits until the cache holds what the API server holds.
	synced := func(t *testing.T) {
		t.Helper()
		eventually(t, "cache catches up", func() error {
			for _, l := range []client.ObjectList{&causewayv1alpha1.ExportRecordList{}, &causewayv1alpha1.MemberClusterList{}, &causewayv1alpha1.GlobalServiceList{}} {
				want, got := l.DeepCopyObject().(client.ObjectList), l.DeepCopyObject().(client.ObjectList)
				if err := direct.List(ctx, want); err != nil {
					return err
				}
				if err := cached.List(ctx, got); err != nil {
					return err
				}
				versions := func(l client.ObjectList) map[string]string {
					out := map[string]string{}
					_ = meta.EachListItem(l, func(o runtime.Object) error {
						m, _ := meta.Accessor(o)
						out[m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
						return nil
					})
					return out
				}
				if w, g := versions(want), versions(got); fmt.Sprint(w) != fmt.Sprint(g) {
					return fmt.Errorf("%T: cache %v, server %v", l, g, w)
				}
			}
			return nil
		})
	}
	reconcileService := func(t *testing.T) {
		t.Helper()
		synced(t)
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: svc}); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		synced(t)
	}
	conflict := func(t *testing.T, cluster string) metav1.Condition {
		t.Helper()
		var rec causewayv1alpha1.ExportRecord
		if err := direct.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(cluster), Name: "shop.cart"}, &rec); err != nil {
			t.Fatal(err)
		}
		c := meta.FindStatusCondition(rec.Status.Conditions, causewayv1alpha1.ExportRecordConflict)
		if c == nil {
			t.Fatalf("record of %s has no Conflict condition", cluster)
		}
		return *c
	}
	globalService := func(t *testing.T) *causewayv1alpha1.GlobalService {
		t.Helper()
		var gs causewayv1alpha1.GlobalService
		if err := direct.Get(ctx, gsKey, &gs); err != nil {
			t.Fatalf("get GlobalService: %v", err)
		}
		return &gs
	}
	portNames := func(ps []causewayv1alpha1.ServicePort) string {
		out := ""
		for _, p := range ps {
			out += fmt.Sprintf("%s/%d ", p.Name, p.Port)
		}
		return out
	}

	t.Run("conflicting ports: the union is exported and both records are told", func(t *testing.T) {
		reconcileService(t)
		gs := globalService(t)
		if got, want := portNames(gs.Spec.Ports), "http/80 grpc/9090 "; got != want {
			t.Errorf("ports = %q, want %q", got, want)
		}
		if len(gs.Spec.Clusters) != 2 || gs.Spec.Clusters[0].Name != "svc-a" || gs.Spec.Clusters[1].Name != "svc-b" {
			t.Errorf("clusters = %+v, want svc-a and svc-b", gs.Spec.Clusters)
		}
		for _, m := range []string{"svc-a", "svc-b"} {
			if c := conflict(t, m); c.Status != metav1.ConditionTrue || c.Reason != "PortConflict" || c.Message == "" {
				t.Errorf("%s: Conflict = %s/%s %q, want True/PortConflict", m, c.Status, c.Reason, c.Message)
			}
		}
	})

	t.Run("a second reconcile with nothing changed writes nothing", func(t *testing.T) {
		rv := globalService(t).ResourceVersion
		n := writes.n.Load()
		reconcileService(t)
		if got := writes.n.Load() - n; got != 0 {
			t.Errorf("%d writes, want none", got)
		}
		if got := globalService(t).ResourceVersion; got != rv {
			t.Errorf("GlobalService resourceVersion %s → %s", rv, got)
		}
	})

	t.Run("deleting one record updates the GlobalService and clears the conflict", func(t *testing.T) {
		if err := direct.Delete(ctx, recB); err != nil {
			t.Fatal(err)
		}
		reconcileService(t)
		gs := globalService(t)
		if got, want := portNames(gs.Spec.Ports), "http/80 "; got != want {
			t.Errorf("ports = %q, want %q", got, want)
		}
		if len(gs.Spec.Clusters) != 1 || gs.Spec.Clusters[0].Name != "svc-a" {
			t.Errorf("clusters = %+v, want svc-a", gs.Spec.Clusters)
		}
		if c := conflict(t, "svc-a"); c.Status != metav1.ConditionFalse || c.Reason != "NoConflicts" {
			t.Errorf("svc-a: Conflict = %s/%s, want False/NoConflicts", c.Status, c.Reason)
		}
	})

	t.Run("deleting every record deletes the GlobalService", func(t *testing.T) {
		if err := direct.Delete(ctx, recA); err != nil {
			t.Fatal(err)
		}
		reconcileService(t)
		var gs causewayv1alpha1.GlobalService
		if err := direct.Get(ctx, gsKey, &gs); !apierrors.IsNotFound(err) {
			t.Errorf("get GlobalService after the last record went: %v, want NotFound", err)
		}
		n := writes.n.Load()
		reconcileService(t)
		if got := writes.n.Load() - n; got != 0 {
			t.Errorf("reconcile without records and GlobalService: %d writes, want none", got)
		}
	})
}
