package xds

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/xds/translate"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Debounce defaults: a burst of changes (a rollout updating many
// EndpointSlices) becomes one translation 50 ms after it goes quiet, and
// a steady stream of changes still gets one every 500 ms.
const (
	DefaultDebounce = 50 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
	// statusRetry is how soon a failed status write is retried.
	statusRetry = time.Second
)

// Controller turns the member cluster's state into xDS snapshots and route
// and policy status. It is a controller-runtime Runnable: it watches
// through the manager's informer cache, debounces events, and on each
// round gathers every input from the cache, translates, updates the
// Server's snapshots and writes the status that changed. It is
// level-triggered: every round recomputes everything.
type Controller struct {
	// Client reads from the manager's cache and writes status.
	Client client.Client
	// Cache is the manager's informer cache.
	Cache cache.Cache
	// Server gets every translation.
	Server *Server
	// ClusterName, Region and Zone describe the local cluster.
	ClusterName, Region, Zone string
	// Debounce and MaxDelay default to DefaultDebounce and DefaultMaxDelay.
	Debounce, MaxDelay time.Duration
	// Clock stamps status conditions; the real clock when nil.
	Clock clock.Clock
	// Logger; from the context when zero.
	Logger logr.Logger
	// LinkPlan, when set, is where the member's link plan comes from (the
	// hub); gateways get one cluster per peer of it. Nil: no links.
	LinkPlan *LinkPlanSource

	// planSynced reports whether the link plan's informer has synced;
	// nil without LinkPlan. planLogged is the last unusable plan logged
	// (its resourceVersion and error), so each is logged once.
	planSynced func() bool
	planLogged string

	// served records which optional kinds (Gateway API, TrafficPolicy) the
	// API server serves; absent ones are read as empty.
	served map[schema.GroupKind]bool
	// syncMu serialises rounds, so an older result never overwrites a
	// newer one.
	syncMu sync.Mutex
}

// LinkPlanSource is where the Controller reads the member's link plan:
// the ConfigMap linkplan.ConfigMapName (key linkplan.ConfigMapKey) in the
// member's hub namespace, through the hub cluster's informer cache.
type LinkPlanSource struct {
	// Cache is the hub cluster's informer cache. It should hold only that
	// ConfigMap (namespace and field selector): the agent may read no
	// other.
	Cache cache.Cache
	// Namespace is the member's hub namespace.
	Namespace string
}

// watched are the kinds the controller reads, with whether each may be
// absent from the API server (CRDs not installed).
var watched = []struct {
	obj      client.Object
	optional bool
}{
	{&corev1.Service{}, false},
	{&discoveryv1.EndpointSlice{}, false},
	{&mcsv1beta1.ServiceImport{}, true},
	{&gatewayv1.HTTPRoute{}, true},
	{&gatewayv1.GRPCRoute{}, true},
	{&causewayv1alpha1.TrafficPolicy{}, true},
	{&causewayv1alpha1.AuthorizationPolicy{}, true},
	{&causewayv1alpha1.RequestAuthentication{}, true},
	{&causewayv1alpha1.MeshConfig{}, true},
	{&corev1.Pod{}, false},
}

// NeedLeaderElection is false: every agent replica serves xDS. Status
// writes are idempotent and conditional, so replicas agree.
func (c *Controller) NeedLeaderElection() bool { return false }

// Start watches and translates until ctx is done.
func (c *Controller) Start(ctx context.Context) error {
	if c.Debounce <= 0 {
		c.Debounce = DefaultDebounce
	}
	if c.MaxDelay < c.Debounce {
		c.MaxDelay = max(DefaultMaxDelay, c.Debounce)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	log := c.Logger
	if log.GetSink() == nil {
		log = logr.FromContextOrDiscard(ctx)
	}
	log = log.WithName("xds")
	ctx = logr.NewContext(ctx, log)

	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	served := map[schema.GroupKind]bool{}
	for _, w := range watched {
		gvk, err := c.Client.GroupVersionKindFor(w.obj)
		if err != nil {
			return fmt.Errorf("kind of %T: %w", w.obj, err)
		}
		if _, err := c.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			if w.optional && meta.IsNoMatchError(err) {
				log.Info("kind not served by the API server; read as empty", "kind", gvk.Kind, "group", gvk.Group)
				continue
			}
			return fmt.Errorf("find %s: %w", gvk.Kind, err)
		}
		inf, err := c.Cache.GetInformer(ctx, w.obj)
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // stopped while starting: not a failure
			}
			return fmt.Errorf("watch %s: %w", gvk.Kind, err)
		}
		var h toolscache.ResourceEventHandler = handler
		if _, ok := w.obj.(*corev1.Pod); ok {
			h = podHandler(poke)
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return fmt.Errorf("watch %s: %w", gvk.Kind, err)
		}
		served[gvk.GroupKind()] = true
	}
	var planSynced func() bool
	if c.LinkPlan != nil {
		var err error
		if planSynced, err = c.watchLinkPlan(ctx, poke); err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // stopped while starting: not a failure
			}
			return err
		}
	}
	c.syncMu.Lock()
	c.served = served
	c.planSynced = planSynced
	c.syncMu.Unlock()
	// A sidecar that takes HBONE connecting or going changes how others
	// reach its pod.
	c.Server.OnHBONEPodsChanged(poke)
	c.Server.SetPodSource(func(namespace, name string) *corev1.Pod {
		var pod corev1.Pod
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
			return nil // not found (yet), or the cache is stopping
		}
		return &pod
	})
	if !c.Cache.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopped while starting: not a failure
		}
		return errors.New("the informer cache did not sync")
	}
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		}
		if !c.debounce(ctx, trigger) {
			return nil
		}
		if err := c.Sync(ctx); err != nil {
			log.Error(err, "xDS round incomplete; retrying")
			go func() {
				select {
				case <-ctx.Done():
				case <-c.Clock.After(statusRetry):
					poke()
				}
			}()
		}
	}
}

// podHandler pokes on the pod changes that can change a sidecar's inbound
// configuration: pods coming and going, and changes to their labels or
// container ports. Status updates (readiness, IPs) are left to the
// EndpointSlices they cause.
func podHandler(poke func()) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if !ok1 || !ok2 || !maps.Equal(o.Labels, n.Labels) || !samePorts(o, n) {
				poke()
			}
		},
		DeleteFunc: func(any) { poke() },
	}
}

// samePorts reports whether two pods have the same container ports.
func samePorts(a, b *corev1.Pod) bool {
	same := func(x, y corev1.Container) bool { return slices.Equal(x.Ports, y.Ports) }
	return slices.EqualFunc(a.Spec.Containers, b.Spec.Containers, same) && slices.EqualFunc(a.Spec.InitContainers, b.Spec.InitContainers, same)
}

// debounce waits until no event came for Debounce, or MaxDelay passed
// since the first; it reports false when ctx is done.
func (c *Controller) debounce(ctx context.Context, trigger <-chan struct{}) bool {
	deadline := c.Clock.NewTimer(c.MaxDelay)
	defer deadline.Stop()
	for {
		quiet := c.Clock.NewTimer(c.Debounce)
		select {
		case <-ctx.Done():
			quiet.Stop()
			return false
		case <-trigger:
			quiet.Stop()
		case <-quiet.C():
			return true
		case <-deadline.C():
			quiet.Stop()
			return true
		}
	}
}

// Sync runs one round: gather, translate, set snapshots, write status.
// Start calls it after each debounced burst of events; it may also be
// called directly (tests do), after Start has found which kinds exist.
func (c *Controller) Sync(ctx context.Context) error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if c.served == nil {
		return errors.New("the xDS controller has not started")
	}
	start := time.Now()
	in, err := c.gather(ctx)
	if err != nil {
		return err
	}
	res := translate.Translate(in)
	setErr := c.Server.Update(res)
	took := time.Since(start)
	c.Server.metrics.build.Observe(took.Seconds())
	logr.FromContextOrDiscard(ctx).V(1).Info("xDS round", "services", len(in.Services), "imports", len(in.ServiceImports),
		"httpRoutes", len(in.HTTPRoutes), "grpcRoutes", len(in.GRPCRoutes), "policies", len(in.TrafficPolicies),
		"authorizationPolicies", len(in.AuthorizationPolicies), "requestAuthentications", len(in.RequestAuthentications), "took", took)
	return errors.Join(setErr, c.writeStatus(ctx, in, res))
}

// gather lists every input from the cache.
func (c *Controller) gather(ctx context.Context) (*translate.Inputs, error) {
	in := &translate.Inputs{ClusterName: c.ClusterName, Region: c.Region, Zone: c.Zone}
	var (
		services  corev1.ServiceList
		slices    discoveryv1.EndpointSliceList
		imports   mcsv1beta1.ServiceImportList
		httpRoute gatewayv1.HTTPRouteList
		grpcRoute gatewayv1.GRPCRouteList
		policies  causewayv1alpha1.TrafficPolicyList
		authz     causewayv1alpha1.AuthorizationPolicyList
		authn     causewayv1alpha1.RequestAuthenticationList
	)
	for _, l := range []struct {
		list client.ObjectList
		gk   schema.GroupKind
	}{
		{&services, schema.GroupKind{Kind: "Service"}},
		{&slices, schema.GroupKind{Group: discoveryv1.GroupName, Kind: "EndpointSlice"}},
		{&imports, schema.GroupKind{Group: mcsv1beta1.GroupName, Kind: "ServiceImport"}},
		{&httpRoute, schema.GroupKind{Group: gatewayv1.GroupName, Kind: "HTTPRoute"}},
		{&grpcRoute, schema.GroupKind{Group: gatewayv1.GroupName, Kind: "GRPCRoute"}},
		{&policies, schema.GroupKind{Group: causewayv1alpha1.GroupVersion.Group, Kind: "TrafficPolicy"}},
		{&authz, schema.GroupKind{Group: causewayv1alpha1.GroupVersion.Group, Kind: "AuthorizationPolicy"}},
		{&authn, schema.GroupKind{Group: causewayv1alpha1.GroupVersion.Group, Kind: "RequestAuthentication"}},
	} {
		if !c.served[l.gk] {
			continue
		}
		// Translate and the status writer never modify what they read, so
		// the cache's objects are used as they are.
		if err := c.Client.List(ctx, l.list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("list %s: %w", l.gk.Kind, err)
		}
	}
	for i := range services.Items {
		in.Services = append(in.Services, &services.Items[i])
	}
	for i := range slices.Items {
		in.EndpointSlices = append(in.EndpointSlices, &slices.Items[i])
	}
	for i := range imports.Items {
		in.ServiceImports = append(in.ServiceImports, &imports.Items[i])
	}
	for i := range httpRoute.Items {
		in.HTTPRoutes = append(in.HTTPRoutes, &httpRoute.Items[i])
	}
	for i := range grpcRoute.Items {
		in.GRPCRoutes = append(in.GRPCRoutes, &grpcRoute.Items[i])
	}
	for i := range policies.Items {
		in.TrafficPolicies = append(in.TrafficPolicies, &policies.Items[i])
	}
	for i := range authz.Items {
		in.AuthorizationPolicies = append(in.AuthorizationPolicies, &authz.Items[i])
	}
	for i := range authn.Items {
		in.RequestAuthentications = append(in.RequestAuthentications, &authn.Items[i])
	}
	if c.served[schema.GroupKind{Group: causewayv1alpha1.GroupVersion.Group, Kind: "MeshConfig"}] {
		var mc causewayv1alpha1.MeshConfig
		err := c.Client.Get(ctx, client.ObjectKey{Name: causewayv1alpha1.MeshConfigName}, &mc)
		switch {
		case err == nil:
			if mc.Spec.MTLS != nil {
				in.MTLSMode = string(mc.Spec.MTLS.Mode)
			}
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get MeshConfig: %w", err)
		}
	}
	if c.served[schema.GroupKind{Kind: "Pod"}] {
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.HasLabels{xdsconv.LabelTunnel}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("list pods: %w", err)
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.Labels[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE {
				if in.HBONEPods == nil {
					in.HBONEPods = map[string]bool{}
				}
				in.HBONEPods[p.Namespace+"/"+p.Name] = true
			}
		}
	}
	for pod := range c.Server.HBONEPods() {
		if in.HBONEPods == nil {
			in.HBONEPods = map[string]bool{}
		}
		in.HBONEPods[pod] = true
	}
	in.LinkPlan = c.linkPlan(ctx)
	return in, nil
}

// watchLinkPlan watches the link plan's ConfigMap without waiting for the
// hub: the member's own configuration must not wait on it (the hub may be
// down, or the agent's RBAC from an older join may not cover ConfigMaps).
// It pokes on every change of the plan and once the informer has synced.
func (c *Controller) watchLinkPlan(ctx context.Context, poke func()) (synced func() bool, err error) {
	inf, err := c.LinkPlan.Cache.GetInformer(ctx, &corev1.ConfigMap{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("watch the link plan: %w", err)
	}
	isPlan := func(obj any) bool {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		cm, ok := obj.(*corev1.ConfigMap)
		return !ok || (cm.Namespace == c.LinkPlan.Namespace && cm.Name == linkplan.ConfigMapName)
	}
	reg, err := inf.AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: isPlan,
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { poke() },
			UpdateFunc: func(any, any) { poke() },
			DeleteFunc: func(any) { poke() },
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch the link plan: %w", err)
	}
	go func() {
		// A round that ran before the sync read no plan: run another.
		if toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
			poke()
		}
	}()
	return reg.HasSynced, nil
}

// linkPlan reads the member's link plan; nil when there is none (yet), or
// when it is unusable, which is logged once per version of the ConfigMap:
// a bad plan costs the gateway its links, never the rest of the
// configuration.
func (c *Controller) linkPlan(ctx context.Context) *linkplan.Plan {
	if c.LinkPlan == nil || c.planSynced == nil || !c.planSynced() {
		return nil
	}
	var cm corev1.ConfigMap
	key := client.ObjectKey{Namespace: c.LinkPlan.Namespace, Name: linkplan.ConfigMapName}
	if err := c.LinkPlan.Cache.Get(ctx, key, &cm); err != nil {
		if !apierrors.IsNotFound(err) {
			c.logPlanOnce(ctx, "", fmt.Errorf("read ConfigMap %s on the hub: %w", key, err))
		}
		return nil
	}
	data, ok := cm.Data[linkplan.ConfigMapKey]
	if !ok {
		c.logPlanOnce(ctx, cm.ResourceVersion, fmt.Errorf("ConfigMap %s on the hub has no key %s", key, linkplan.ConfigMapKey))
		return nil
	}
	plan, err := linkplan.Parse([]byte(data))
	if err == nil && plan.Cluster != c.ClusterName {
		err = fmt.Errorf("the plan is for cluster %q, not %q", plan.Cluster, c.ClusterName)
	}
	if err != nil {
		c.logPlanOnce(ctx, cm.ResourceVersion, fmt.Errorf("ConfigMap %s on the hub: %w", key, err))
		return nil
	}
	c.planLogged = ""
	return &plan
}

// logPlanOnce logs why the link plan is not used, once per version and
// reason. Callers hold syncMu.
func (c *Controller) logPlanOnce(ctx context.Context, version string, err error) {
	if k := version + "\x00" + err.Error(); k != c.planLogged {
		c.planLogged = k
		logr.FromContextOrDiscard(ctx).Error(err, "link plan unusable; the gateway gets no links until the hub writes a valid one", "cluster", c.ClusterName)
	}
}
