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

package hboneimport_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	"github.com/causeway-mesh/causeway/controllers/serviceimport"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/federation/hub"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// runs numbers the test's runs (go test -count): each has its own member
// and namespace in the shared API server.
var runs atomic.Int32

// announcer stands in for the xDS server's HBONEPods: it calls its
// listener with its lock held, as the server does.
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

// startManager starts mgr until the test ends.
func startManager(t *testing.T, ctx context.Context, mgr ctrl.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func newManager(t *testing.T) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

// TestHBONEEndpointsAcrossTheClusterSet: a pod of the exporting member
// that accepts HBONE (by label, or by its sidecar's announcement) ends up
// in the importing member's EDS marked causeway.dev/tunnel=hbone, through
// the record, the GlobalService and a labelled EndpointSlice; the slices
// change only where their endpoints do.
func TestHBONEEndpointsAcrossTheClusterSet(t *testing.T) {
	ctx := t.Context()
	member := fmt.Sprintf("west%d", runs.Add(1))
	ns := "shop-" + member
	s := scheme.New()
	direct, err := client.New(restConfig, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ns, causewayv1alpha1.SystemNamespace, causewayv1alpha1.MemberNamespace(member)} {
		if err := direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	// The member, healthy, as the hub's member reconciler leaves it.
	mc := &causewayv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: member}}
	if err := direct.Create(ctx, mc); err != nil {
		t.Fatal(err)
	}
	meta.SetStatusCondition(&mc.Status.Conditions, metav1.Condition{Type: causewayv1alpha1.MemberClusterHealthy, Status: metav1.ConditionTrue, Reason: "LeaseRenewed"})
	if err := direct.Status().Update(ctx, mc); err != nil {
		t.Fatal(err)
	}

	// The hub: the GlobalService reconciler.
	hubMgr := newManager(t)
	if err := (&hub.ServiceReconciler{Client: hubMgr.GetClient()}).SetupWithManager(hubMgr); err != nil {
		t.Fatal(err)
	}
	startManager(t, ctx, hubMgr)

	// The member's agent: export and import controllers, with the hub's
	// cache limited as the agent limits it.
	mgr := newManager(t)
	hubCluster, err := cluster.New(restConfig, func(o *cluster.Options) {
		o.Scheme = s
		o.Cache.ByObject = map[client.Object]cache.ByObject{
			&causewayv1alpha1.ExportRecord{}:  {Namespaces: map[string]cache.Config{causewayv1alpha1.MemberNamespace(member): {}}},
			&causewayv1alpha1.GlobalService{}: {Namespaces: map[string]cache.Config{causewayv1alpha1.SystemNamespace: {}}},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(hubCluster); err != nil {
		t.Fatal(err)
	}
	sidecars := &announcer{pods: map[string]bool{}}
	exports := &serviceexport.Reconciler{Member: mgr.GetClient(), Hub: hubCluster.GetClient(), ClusterName: member, HBONEPods: sidecars.HBONEPods}
	sidecars.listener = exports.HBONEPodsChanged
	if err := exports.SetupWithManager(mgr, hubCluster); err != nil {
		t.Fatal(err)
	}
	ips, err := serviceimport.NewAllocator(netip.MustParsePrefix("240.240.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	var sliceWrites atomic.Int32
	imports := &serviceimport.Reconciler{
		Member: mgr.GetClient(), Reader: mgr.GetAPIReader(), Hub: hubCluster.GetClient(), IPs: ips,
		Writes: func(kind, _ string) {
			if kind == "EndpointSlice" {
				sliceWrites.Add(1)
			}
		},
	}
	if err := imports.SetupWithManager(mgr, hubCluster); err != nil {
		t.Fatal(err)
	}
	startManager(t, ctx, mgr)

	// The exported service: web-1 plain, web-2 labelled for HBONE, web-3
	// plain until its sidecar announces HBONE.
	createPod := func(name string, hbone bool) {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web"}}},
		}
		if hbone {
			p.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
		}
		if err := direct.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	createPod("web-1", false)
	createPod("web-2", true)
	createPod("web-3", false)
	if err := direct.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}); err != nil {
		t.Fatal(err)
	}
	endpoint := func(i int) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.2.0.%d", i)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("web-%d", i)},
		}
	}
	local := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{endpoint(1), endpoint(2), endpoint(3)},
	}
	if err := direct.Create(ctx, local); err != nil {
		t.Fatal(err)
	}
	if err := direct.Create(ctx, &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}); err != nil {
		t.Fatal(err)
	}

	// importSlices describes the imported slices: "name[=tunnel label]:
	// addresses" sorted, with their resourceVersions.
	importSlices := func() (string, map[string]string, []*discoveryv1.EndpointSlice, error) {
		var list discoveryv1.EndpointSliceList
		if err := direct.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{mcsv1beta1.LabelServiceName: "web"}); err != nil {
			return "", nil, nil, err
		}
		var out []string
		versions := map[string]string{}
		var items []*discoveryv1.EndpointSlice
		for i := range list.Items {
			es := &list.Items[i]
			var addrs []string
			for _, e := range es.Endpoints {
				addrs = append(addrs, e.Addresses[0])
			}
			slices.Sort(addrs)
			name := es.Name
			if l := es.Labels[xdsconv.LabelTunnel]; l != "" {
				name += "=" + l
			}
			out = append(out, name+":"+strings.Join(addrs, ","))
			versions[es.Name] = es.ResourceVersion
			items = append(items, es)
		}
		slices.Sort(out)
		return strings.Join(out, " "), versions, items, nil
	}
	// eds translates what the member has, as its agent would, and lists
	// the import's endpoints ("+hbone" when marked).
	eds := func() (string, error) {
		_, _, eps, err := importSlices()
		if err != nil {
			return "", err
		}
		var sis mcsv1beta1.ServiceImportList
		if err := direct.List(ctx, &sis, client.InNamespace(ns)); err != nil {
			return "", err
		}
		in := &translate.Inputs{ClusterName: "east", EndpointSlices: eps}
		for i := range sis.Items {
			in.ServiceImports = append(in.ServiceImports, &sis.Items[i])
		}
		res := translate.Translate(in)
		name := xdsconv.ClusterName(80, "", xdsconv.ClusterSetHost("web", ns))
		for _, r := range res.Proxy[resource.EndpointType] {
			if cachev3.GetResourceName(r) != name {
				continue
			}
			var out []string
			for _, l := range r.(*endpointv3.ClusterLoadAssignment).Endpoints {
				for _, e := range l.LbEndpoints {
					a := e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
					if e.GetMetadata().GetFilterMetadata()[xdsconv.MetadataNamespace].GetFields()[xdsconv.MetadataTunnel].GetStringValue() == xdsconv.TunnelHBONE {
						a += "+hbone"
					}
					out = append(out, a)
				}
			}
			slices.Sort(out)
			return strings.Join(out, " "), nil
		}
		return "", fmt.Errorf("no ClusterLoadAssignment %s", name)
	}
	// expect waits for the import's slices (named after member "west")
	// and checks EDS.
	expect := func(t *testing.T, wantSlices, wantEDS string) map[string]string {
		t.Helper()
		wantSlices = strings.ReplaceAll(wantSlices, ".west.", "."+member+".")
		var versions map[string]string
		eventually(t, "imported slices", func() error {
			got, v, _, err := importSlices()
			if err != nil {
				return err
			}
			if got != wantSlices {
				return fmt.Errorf("slices %q, want %q", got, wantSlices)
			}
			versions = v
			return nil
		})
		got, err := eds()
		if err != nil {
			t.Fatal(err)
		}
		if got != wantEDS {
			t.Errorf("EDS %q, want %q", got, wantEDS)
		}
		return versions
	}
	relabel := func(t *testing.T, name string, hbone bool) {
		t.Helper()
		var p corev1.Pod
		if err := direct.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		if hbone {
			p.Labels[xdsconv.LabelTunnel] = xdsconv.TunnelHBONE
		} else {
			delete(p.Labels, xdsconv.LabelTunnel)
		}
		if err := direct.Update(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a labelled pod arrives in its own slice, marked in EDS", func(t *testing.T) {
		expect(t, "web.west.0.hbone=hbone:10.2.0.2 web.west.0:10.2.0.1,10.2.0.3", "10.2.0.1 10.2.0.2+hbone 10.2.0.3")
		var gs causewayv1alpha1.GlobalService
		if err := direct.Get(ctx, types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ServiceKeyName(ns, "web")}, &gs); err != nil {
			t.Fatal(err)
		}
		for _, e := range gs.Spec.Clusters[0].EndpointSlices[0].Endpoints {
			if want := e.TargetPod == "web-2"; (e.Tunnel == causewayv1alpha1.EndpointTunnelHBONE) != want {
				t.Errorf("GlobalService endpoint of %s has tunnel %q", e.TargetPod, e.Tunnel)
			}
		}
	})
	t.Run("a sidecar announcing HBONE moves its pod", func(t *testing.T) {
		sidecars.set(ns+"/web-3", true)
		expect(t, "web.west.0.hbone=hbone:10.2.0.2,10.2.0.3 web.west.0:10.2.0.1", "10.2.0.1 10.2.0.2+hbone 10.2.0.3+hbone")
	})
	t.Run("a new HBONE pod changes only the HBONE slice", func(t *testing.T) {
		_, before, _, err := importSlices()
		if err != nil {
			t.Fatal(err)
		}
		createPod("web-4", true)
		var cur discoveryv1.EndpointSlice
		if err := direct.Get(ctx, client.ObjectKeyFromObject(local), &cur); err != nil {
			t.Fatal(err)
		}
		cur.Endpoints = append(cur.Endpoints, endpoint(4))
		if err := direct.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		after := expect(t, "web.west.0.hbone=hbone:10.2.0.2,10.2.0.3,10.2.0.4 web.west.0:10.2.0.1", "10.2.0.1 10.2.0.2+hbone 10.2.0.3+hbone 10.2.0.4+hbone")
		plain := "web." + member + ".0"
		if after[plain] != before[plain] {
			t.Errorf("the plain slice was rewritten: resourceVersion %s → %s", before[plain], after[plain])
		}
	})
	t.Run("reconciling the import again writes nothing", func(t *testing.T) {
		// Once the agent's cache has what the API server has.
		eventually(t, "cache catches up", func() error {
			_, server, _, err := importSlices()
			if err != nil {
				return err
			}
			var list discoveryv1.EndpointSliceList
			if err := mgr.GetClient().List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{mcsv1beta1.LabelServiceName: "web"}); err != nil {
				return err
			}
			cached := map[string]string{}
			for _, es := range list.Items {
				cached[es.Name] = es.ResourceVersion
			}
			if !maps.Equal(cached, server) {
				return fmt.Errorf("cache %v, server %v", cached, server)
			}
			return nil
		})
		n := sliceWrites.Load()
		if _, err := imports.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "web"}}); err != nil {
			t.Fatal(err)
		}
		if got := sliceWrites.Load() - n; got != 0 {
			t.Errorf("%d EndpointSlice writes, want none", got)
		}
	})
	t.Run("when no pod takes HBONE any more, the HBONE slice goes", func(t *testing.T) {
		sidecars.set(ns+"/web-3", false)
		relabel(t, "web-2", false)
		relabel(t, "web-4", false)
		expect(t, "web.west.0:10.2.0.1,10.2.0.2,10.2.0.3,10.2.0.4", "10.2.0.1 10.2.0.2 10.2.0.3 10.2.0.4")
	})
}
