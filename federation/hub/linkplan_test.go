/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package hub

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// reconcileCounter wraps a reconciler and counts its reconciles by name.
type reconcileCounter struct {
	inner reconcile.Reconciler
	mu    sync.Mutex
	n     map[string]int
}

func (c *reconcileCounter) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := c.inner.Reconcile(ctx, req)
	c.mu.Lock()
	c.n[req.Name]++
	c.mu.Unlock()
	return res, err
}

func (c *reconcileCounter) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// linkPlanHub runs the link plan reconciler in a manager of its own, with
// the hub's cache settings, until stop; its writes are counted.
type linkPlanHub struct {
	writes     writeCounter
	reconciles *reconcileCounter
	stop       func()
}

func startLinkPlanHub(t *testing.T) *linkPlanHub {
	t.Helper()
	h := &linkPlanHub{}
	byObject := trust.Options{}.CacheByObject() // the bundle's ConfigMap too, as Run has it
	LinkPlanCache(byObject)
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                  cache.Options{ByObject: byObject},
		NewClient: func(cfg *rest.Config, opts client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(cfg, opts)
			if err != nil {
				return nil, err
			}
			return h.writes.wrap(c), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &LinkPlanReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}
	h.reconciles = &reconcileCounter{inner: r, n: map[string]int{}}
	if err := r.setup(mgr, h.reconciles); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// lpMember is a MemberCluster with a gateway when addrs is not empty.
func lpMember(name string, transport causewayv1alpha1.GatewayTransport, addrs ...string) *causewayv1alpha1.MemberCluster {
	mc := &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(addrs) > 0 {
		mc.Spec.Gateway = &causewayv1alpha1.MemberClusterGateway{Transport: transport}
		for _, a := range addrs {
			mc.Spec.Gateway.Addresses = append(mc.Spec.Gateway.Addresses, causewayv1alpha1.GatewayAddress(a))
		}
	}
	return mc
}

// planOf reads a member's plan ConfigMap: its plan, restricted to peers
// whose names start with "lp-" (other tests' members share the API
// server), and its resourceVersion; ok is false when it does not exist.
func planOf(ctx context.Context, t *testing.T, c client.Client, member string) (plan linkplan.Plan, rv string, ok bool) {
	t.Helper()
	var cm corev1.ConfigMap
	err := c.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(member), Name: linkplan.ConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		return linkplan.Plan{}, "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := linkplan.Parse([]byte(cm.Data[linkplan.ConfigMapKey]))
	if err != nil {
		t.Fatalf("plan of %s: %v", member, err)
	}
	var mine []linkplan.Peer
	for _, peer := range p.Peers {
		if strings.HasPrefix(peer.Cluster, "lp-") {
			mine = append(mine, peer)
		} else if peer.Role != linkplan.RoleAccept {
			// Other tests' members have no gateway: they dial, never accept.
			t.Errorf("plan of %s: %+v, a member without a gateway, is not dialling in", member, peer)
		}
	}
	p.Peers = mine
	return p, cm.ResourceVersion, true
}

// wantPlans waits until each member's plan (lp- peers only) is as given.
func wantPlans(ctx context.Context, t *testing.T, c client.Client, want map[string][]linkplan.Peer) {
	t.Helper()
	eventually(t, "link plans", func() error {
		for member, peers := range want {
			got, _, ok := planOf(ctx, t, c, member)
			if !ok {
				return fmt.Errorf("no plan for %s", member)
			}
			if got.Cluster != member || !reflect.DeepEqual(got.Peers, peers) {
				return fmt.Errorf("plan of %s = %+v, want %+v", member, got.Peers, peers)
			}
		}
		return nil
	})
}

func lpDial(cluster string, transport causewayv1alpha1.GatewayTransport, addrs ...string) linkplan.Peer {
	return linkplan.Peer{Cluster: cluster, Role: linkplan.RoleDial, Addresses: addrs, Transport: transport}
}

func lpAccept(cluster string, transport causewayv1alpha1.GatewayTransport) linkplan.Peer {
	return linkplan.Peer{Cluster: cluster, Role: linkplan.RoleAccept, Transport: transport}
}

// TestLinkPlans is the hub writing link plans, against a real API server:
// three members with and without gateways get the plans the rules give; a
// member whose namespace appears later gets its plan then; a changed
// address rewrites only the plans it is in; a restarted hub writes
// nothing; a paused member's plan stays as it was until it is unpaused; a
// plan deleted or damaged by hand is put back; a member that leaves
// leaves the others' plans.
func TestLinkPlans(t *testing.T) {
	ctx := t.Context()
	c := directClient(t)
	const quic, tcp = causewayv1alpha1.GatewayTransportQUIC, causewayv1alpha1.GatewayTransportTCP
	for _, mc := range []*causewayv1alpha1.MemberCluster{
		lpMember("lp-a", "", "10.0.1.1"),
		lpMember("lp-b", tcp, "gw.lp-b.example:443", "10.0.2.1"),
		lpMember("lp-c", ""),
		lpMember("lp-d", ""),
	} {
		create(ctx, t, c, mc)
		t.Cleanup(func() { _ = c.Delete(context.Background(), mc) })
	}
	for _, m := range []string{"lp-a", "lp-b", "lp-c"} {
		create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace(m)}})
	}
	hub := startLinkPlanHub(t)
	parent := t // a hub started in a step runs past the step
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("three members with and without gateways get their plans", func(t *testing.T) {
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			// a and b have gateways: a, first by name, dials b.
			"lp-a": {lpDial("lp-b", tcp, "gw.lp-b.example:443", "10.0.2.1:15443"), lpAccept("lp-c", quic), lpAccept("lp-d", quic)},
			"lp-b": {lpAccept("lp-a", tcp), lpAccept("lp-c", tcp), lpAccept("lp-d", tcp)},
			// c has none: it dials both; c and d have no link.
			"lp-c": {lpDial("lp-a", quic, "10.0.1.1:15443"), lpDial("lp-b", tcp, "gw.lp-b.example:443", "10.0.2.1:15443")},
		})
		if _, _, ok := planOf(ctx, t, c, "lp-d"); ok {
			t.Error("lp-d has a plan without a namespace")
		}
	})

	step("a member whose namespace appears gets its plan", func(t *testing.T) {
		create(ctx, t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.MemberNamespace("lp-d")}})
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			"lp-d": {lpDial("lp-a", quic, "10.0.1.1:15443"), lpDial("lp-b", tcp, "gw.lp-b.example:443", "10.0.2.1:15443")},
		})
	})

	rvs := func() map[string]string {
		out := map[string]string{}
		for _, m := range []string{"lp-a", "lp-b", "lp-c", "lp-d"} {
			_, rv, _ := planOf(ctx, t, c, m)
			out[m] = rv
		}
		return out
	}

	step("a changed address rewrites only the plans that dial it", func(t *testing.T) {
		before := rvs()
		reconciledB := hub.reconciles.count("lp-b")
		var b causewayv1alpha1.MemberCluster
		if err := c.Get(ctx, types.NamespacedName{Name: "lp-b"}, &b); err != nil {
			t.Fatal(err)
		}
		b.Spec.Gateway.Addresses = []causewayv1alpha1.GatewayAddress{"10.0.2.2"}
		if err := c.Update(ctx, &b); err != nil {
			t.Fatal(err)
		}
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			"lp-a": {lpDial("lp-b", tcp, "10.0.2.2:15443"), lpAccept("lp-c", quic), lpAccept("lp-d", quic)},
			"lp-c": {lpDial("lp-a", quic, "10.0.1.1:15443"), lpDial("lp-b", tcp, "10.0.2.2:15443")},
			"lp-d": {lpDial("lp-a", quic, "10.0.1.1:15443"), lpDial("lp-b", tcp, "10.0.2.2:15443")},
		})
		// lp-b's own plan lists only who dials it: reconciled, not written.
		eventually(t, "lp-b reconciled after the change", func() error {
			if hub.reconciles.count("lp-b") <= reconciledB {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		after := rvs()
		for m, changed := range map[string]bool{"lp-a": true, "lp-b": false, "lp-c": true, "lp-d": true} {
			if (after[m] != before[m]) != changed {
				t.Errorf("plan of %s: resourceVersion %s → %s, want changed=%v", m, before[m], after[m], changed)
			}
		}
	})

	step("a restarted hub writes nothing", func(t *testing.T) {
		before := rvs()
		hub.stop()
		hub = startLinkPlanHub(parent)
		var all causewayv1alpha1.MemberClusterList
		if err := c.List(ctx, &all); err != nil {
			t.Fatal(err)
		}
		eventually(t, "every member reconciled", func() error {
			for _, mc := range all.Items {
				if hub.reconciles.count(mc.Name) == 0 {
					return fmt.Errorf("%s not reconciled yet", mc.Name)
				}
			}
			return nil
		})
		if n := hub.writes.n.Load(); n != 0 {
			t.Errorf("the restarted hub wrote %d times", n)
		}
		if after := rvs(); !reflect.DeepEqual(after, before) {
			t.Errorf("resourceVersions %v → %v", before, after)
		}
	})

	step("a paused member's plan stays as it was until it is unpaused", func(t *testing.T) {
		setPaused := func(paused bool) {
			t.Helper()
			var mc causewayv1alpha1.MemberCluster
			if err := c.Get(ctx, types.NamespacedName{Name: "lp-c"}, &mc); err != nil {
				t.Fatal(err)
			}
			mc.Spec.Paused = paused
			if err := c.Update(ctx, &mc); err != nil {
				t.Fatal(err)
			}
		}
		setPaused(true)
		_, frozen, _ := planOf(ctx, t, c, "lp-c")
		reconciledC := hub.reconciles.count("lp-c")
		var a causewayv1alpha1.MemberCluster
		if err := c.Get(ctx, types.NamespacedName{Name: "lp-a"}, &a); err != nil {
			t.Fatal(err)
		}
		a.Spec.Gateway.Addresses = []causewayv1alpha1.GatewayAddress{"10.0.1.2:9443"}
		if err := c.Update(ctx, &a); err != nil {
			t.Fatal(err)
		}
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			"lp-d": {lpDial("lp-a", quic, "10.0.1.2:9443"), lpDial("lp-b", tcp, "10.0.2.2:15443")},
		})
		eventually(t, "lp-c reconciled after the change", func() error {
			if hub.reconciles.count("lp-c") <= reconciledC {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if _, rv, _ := planOf(ctx, t, c, "lp-c"); rv != frozen {
			t.Errorf("the paused member's plan was rewritten (%s → %s)", frozen, rv)
		}
		setPaused(false)
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			"lp-c": {lpDial("lp-a", quic, "10.0.1.2:9443"), lpDial("lp-b", tcp, "10.0.2.2:15443")},
		})
	})

	step("a plan deleted or damaged by hand is put back", func(t *testing.T) {
		want, _, _ := planOf(ctx, t, c, "lp-a")
		key := client.ObjectKey{Namespace: causewayv1alpha1.MemberNamespace("lp-a"), Name: linkplan.ConfigMapName}
		if err := c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}); err != nil {
			t.Fatal(err)
		}
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{"lp-a": want.Peers})
		var cm corev1.ConfigMap
		if err := c.Get(ctx, key, &cm); err != nil {
			t.Fatal(err)
		}
		cm.Data[linkplan.ConfigMapKey] = "{broken"
		if err := c.Update(ctx, &cm); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the damaged plan is repaired", func() error {
			if err := c.Get(ctx, key, &cm); err != nil {
				return err
			}
			if _, err := linkplan.Parse([]byte(cm.Data[linkplan.ConfigMapKey])); err != nil {
				return err
			}
			return nil
		})
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{"lp-a": want.Peers})
	})

	step("a member that leaves leaves the others' plans", func(t *testing.T) {
		if err := c.Delete(ctx, &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "lp-b"}}); err != nil {
			t.Fatal(err)
		}
		wantPlans(ctx, t, c, map[string][]linkplan.Peer{
			"lp-a": {lpAccept("lp-c", quic), lpAccept("lp-d", quic)},
			"lp-c": {lpDial("lp-a", quic, "10.0.1.2:9443")},
			"lp-d": {lpDial("lp-a", quic, "10.0.1.2:9443")},
		})
	})
}

func TestLinkPlanCache(t *testing.T) {
	byObject := trust.Options{}.CacheByObject()
	LinkPlanCache(byObject)
	found := 0
	for obj, by := range byObject {
		if _, ok := obj.(*corev1.ConfigMap); !ok {
			continue
		}
		found++
		if _, ok := by.Namespaces[causewayv1alpha1.SystemNamespace]; !ok {
			t.Error("the trust bundle's namespace was dropped")
		}
		all, ok := by.Namespaces[cache.AllNamespaces]
		if !ok || all.FieldSelector == nil || all.FieldSelector.String() != "metadata.name="+linkplan.ConfigMapName {
			t.Errorf("other namespaces: %+v, want only %s", all, linkplan.ConfigMapName)
		}
	}
	if found != 1 {
		t.Errorf("%d ConfigMap entries, want 1", found)
	}
	empty := map[client.Object]cache.ByObject{}
	LinkPlanCache(empty)
	if len(empty) != 1 {
		t.Errorf("LinkPlanCache on an empty map: %v", empty)
	}
}
