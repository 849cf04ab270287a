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

package serviceexport_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/serviceexport"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// announcer stands in for the xDS server's record of sidecars that
// announced HBONE: it calls its listener with its lock held, as the server
// does, so a listener that called back into it would deadlock the test.
type announcer struct {
	mu       sync.Mutex
	pods     map[string]bool
	listener func()
}

func (a *announcer) HBONEPods() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.pods)
}

func (a *announcer) set(pod string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if on {
		a.pods[pod] = true
	} else {
		delete(a.pods, pod)
	}
	a.listener()
}

// runs numbers the test's runs (go test -count): each has its own member
// and namespace in the shared API server.
var runs atomic.Int32

// TestHBONEEndpointsArePublished: the export controller, run by a manager
// as the agent runs it, marks the endpoints of pods that accept HBONE in
// the record, and follows a pod's label and its sidecar's announcement as
// they change.
func TestHBONEEndpointsArePublished(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := scheme.New()
	direct, err := client.New(restConfig, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	clusterName := fmt.Sprintf("east%d", runs.Add(1))
	ns := "shop-" + clusterName
	memberNS := causewayv1alpha1.MemberNamespace(clusterName)
	for _, n := range []string{ns, memberNS} {
		if err := direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 s,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := cluster.New(restConfig, func(o *cluster.Options) {
		o.Scheme = s
		o.Cache.ByObject = map[client.Object]cache.ByObject{
			&causewayv1alpha1.ExportRecord{}: {Namespaces: map[string]cache.Config{memberNS: {}}},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(hub); err != nil {
		t.Fatal(err)
	}
	sidecars := &announcer{pods: map[string]bool{}}
	// A clock an hour ahead: the reconciler never waits for the hub's
	// verdict (RequeueAfter), so only the watches can bring the changes
	// below to it.
	r := &serviceexport.Reconciler{
		Member: mgr.GetClient(), Hub: hub.GetClient(), ClusterName: clusterName, HBONEPods: sidecars.HBONEPods,
		Clock: clocktesting.NewFakePassiveClock(time.Now().Add(time.Hour)),
	}
	sidecars.listener = r.HBONEPodsChanged
	if err := r.SetupWithManager(mgr, hub); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	// web-1 is labelled for HBONE, web-2 and web-3 are not; web-4 is
	// labelled but behind another service.
	pod := func(name string, hbone bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}},
		}
		if hbone {
			p.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
		}
		return p
	}
	for _, p := range []*corev1.Pod{pod("web-1", true), pod("web-2", false), pod("web-3", false), pod("web-4", true)} {
		if err := direct.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []string{"web", "other"} {
		if err := direct.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	slice := func(svc string, pods ...string) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		for i, p := range pods {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.1.0.%d", i+1)},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p},
			})
		}
		return es
	}
	for _, es := range []*discoveryv1.EndpointSlice{slice("web", "web-1", "web-2", "web-3"), slice("other", "web-4")} {
		if err := direct.Create(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []string{"web", "other"} {
		if err := direct.Create(ctx, &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc}}); err != nil {
			t.Fatal(err)
		}
	}

	recordKey := types.NamespacedName{Namespace: memberNS, Name: causewayv1alpha1.ServiceKeyName(ns, "web")}
	otherKey := types.NamespacedName{Namespace: memberNS, Name: causewayv1alpha1.ServiceKeyName(ns, "other")}
	// tunnels are the record's HBONE pods, as the hub's API server has it.
	tunnelsOf := func(key types.NamespacedName) (string, *causewayv1alpha1.ExportRecord, error) {
		var rec causewayv1alpha1.ExportRecord
		if err := direct.Get(ctx, key, &rec); err != nil {
			return "", nil, err
		}
		out := ""
		for _, s := range rec.Spec.EndpointSlices {
			for _, e := range s.Endpoints {
				if e.Tunnel != "" {
					out += e.TargetPod + "=" + string(e.Tunnel) + " "
				}
			}
		}
		return out, &rec, nil
	}
	tunnels := func() (string, *causewayv1alpha1.ExportRecord, error) { return tunnelsOf(recordKey) }
	expect := func(t *testing.T, want string) {
		t.Helper()
		eventually(t, "record's HBONE endpoints", func() error {
			got, _, err := tunnels()
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("HBONE endpoints %q, want %q", got, want)
			}
			return nil
		})
	}
	relabel := func(t *testing.T, name string, mutate func(map[string]string)) {
		t.Helper()
		var p corev1.Pod
		if err := direct.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		mutate(p.Labels)
		if err := direct.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a labelled pod's endpoint is published as HBONE", func(t *testing.T) {
		expect(t, "web-1=HBONE ")
		eventually(t, "other's record", func() error {
			got, _, err := tunnelsOf(otherKey)
			if err == nil && got != "web-4=HBONE " {
				err = fmt.Errorf("HBONE endpoints %q, want web-4", got)
			}
			return err
		})
	})
	t.Run("labelling a pod marks its endpoint", func(t *testing.T) {
		relabel(t, "web-2", func(l map[string]string) { l[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE })
		expect(t, "web-1=HBONE web-2=HBONE ")
	})
	t.Run("a sidecar announcing HBONE marks its pod's endpoint", func(t *testing.T) {
		sidecars.set(ns+"/web-3", true)
		expect(t, "web-1=HBONE web-2=HBONE web-3=HBONE ")
	})
	t.Run("the sidecar going unmarks it", func(t *testing.T) {
		sidecars.set(ns+"/web-3", false)
		expect(t, "web-1=HBONE web-2=HBONE ")
	})
	t.Run("removing or changing the label unmarks", func(t *testing.T) {
		relabel(t, "web-1", func(l map[string]string) { delete(l, xdsconv.LabelTunnel) })
		relabel(t, "web-2", func(l map[string]string) { l[xdsconv.LabelTunnel] = "something-else" })
		expect(t, "")
	})
	t.Run("a label and an announcement together, then one of them goes", func(t *testing.T) {
		relabel(t, "web-1", func(l map[string]string) { l[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE })
		sidecars.set(ns+"/web-1", true)
		expect(t, "web-1=HBONE ")
		sidecars.set(ns+"/web-1", false)
		// Still labelled. Announce another pod to know the change has
		// been handled.
		sidecars.set(ns+"/web-3", true)
		expect(t, "web-1=HBONE web-3=HBONE ")
	})
	t.Run("reconciling again with nothing changed writes nothing", func(t *testing.T) {
		_, before, err := tunnels()
		if err != nil {
			t.Fatal(err)
		}
		// The manager's cache has what the API server has once the
		// reconciler's own view agrees; a direct Reconcile then must not
		// write.
		eventually(t, "cache catches up", func() error {
			var cached causewayv1alpha1.ExportRecord
			if err := hub.GetClient().Get(ctx, recordKey, &cached); err != nil {
				return err
			}
			if cached.ResourceVersion != before.ResourceVersion {
				return fmt.Errorf("cache has resourceVersion %s, server %s", cached.ResourceVersion, before.ResourceVersion)
			}
			return nil
		})
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "web"}}); err != nil {
			t.Fatal(err)
		}
		r.HBONEPodsChanged()
		_, after, err := tunnels()
		if err != nil {
			t.Fatal(err)
		}
		if after.ResourceVersion != before.ResourceVersion || after.Generation != before.Generation {
			t.Errorf("record rewritten: resourceVersion %s → %s", before.ResourceVersion, after.ResourceVersion)
		}
	})
	t.Run("web's pods changing never rewrote the other service's record", func(t *testing.T) {
		_, rec, err := tunnelsOf(otherKey)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Generation != 1 {
			t.Errorf("other's record has generation %d, want 1", rec.Generation)
		}
	})
}
