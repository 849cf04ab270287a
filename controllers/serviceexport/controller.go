package serviceexport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Reconciler publishes this cluster's ServiceExports to the hub.
type Reconciler struct {
	// Member is the member cluster's client (cached reads).
	Member client.Client
	// Hub is the hub client, cached for the member's hub namespace.
	Hub client.Client
	// ClusterName is this member's name in the cluster set.
	ClusterName string
	// Clock tells the time; nil is the real clock.
	Clock clock.PassiveClock
	// HBONEPods, if not nil, returns the pods ("namespace/name") whose
	// sidecars accept HBONE now (the xDS server's HBONEPods). Their
	// endpoints, and those of pods labelled causeway.dev/tunnel=hbone, are
	// published with Tunnel=HBONE. Call HBONEPodsChanged when it changes.
	HBONEPods func() map[string]bool

	// hbone is the watcher's last copy of HBONEPods (nil until it runs):
	// reconciles read it rather than build the map each time.
	hbone atomic.Pointer[map[string]bool]
	// changed wakes the watcher; made once by signal.
	changedOnce sync.Once
	changed     chan struct{}
}

// Reconcile handles the ServiceExport req (namespace/name of the service).
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	var se mcsv1beta1.ServiceExport
	if err := r.Member.Get(ctx, req.NamespacedName, &se); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.withdraw(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, fmt.Errorf("get ServiceExport %s: %w", req.NamespacedName, err)
	}
	if se.DeletionTimestamp != nil {
		return ctrl.Result{}, r.withdraw(ctx, req.NamespacedName)
	}
	svc, err := r.service(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	valid, reason, msg := Validate(svc)
	next := se.DeepCopy()
	setCondition(next, mcsv1beta1.ServiceExportConditionValid, valid, reason, msg)
	if !valid {
		// An invalid export is withdrawn; its status says why. Nothing to
		// retry until the Service changes, which re-enqueues it.
		setCondition(next, mcsv1beta1.ServiceExportConditionReady, false, mcsv1beta1.ServiceExportReasonFailed, "the export is not valid: "+msg)
		meta.RemoveStatusCondition(&next.Status.Conditions, string(mcsv1beta1.ServiceExportConditionConflict))
		return ctrl.Result{}, errors.Join(r.withdraw(ctx, req.NamespacedName), r.patchStatus(ctx, &se, next))
	}
	slices, err := r.endpointSlices(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	hbone, err := r.hboneCapable(ctx, slices)
	if err != nil {
		return ctrl.Result{}, err
	}
	rec, err := r.publish(ctx, BuildRecord(r.ClusterName, &se, svc, slices, hbone))
	if err != nil {
		setCondition(next, mcsv1beta1.ServiceExportConditionReady, false, mcsv1beta1.ServiceExportReasonPending, "cannot publish to the hub yet: "+err.Error())
		return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, &se, next))
	}
	switch {
	case setHubVerdict(next, rec):
	case meta.IsStatusConditionTrue(se.Status.Conditions, string(mcsv1beta1.ServiceExportConditionReady)):
		// Exported before; the hub is merging an update. Ready stays.
		meta.SetStatusCondition(&next.Status.Conditions, *meta.FindStatusCondition(se.Status.Conditions, string(mcsv1beta1.ServiceExportConditionReady)))
	default:
		// The hub usually answers within a fraction of a second: give it
		// pendingDelay before saying Pending, which saves a status write
		// per export.
		if age := r.clock().Since(rec.CreationTimestamp.Time); age < pendingDelay {
			return ctrl.Result{RequeueAfter: pendingDelay - age}, nil
		}
		setCondition(next, mcsv1beta1.ServiceExportConditionReady, false, mcsv1beta1.ServiceExportReasonPending, "published to the hub; waiting for the hub to merge it")
	}
	return ctrl.Result{}, r.patchStatus(ctx, &se, next)
}

// pendingDelay is how long a new export waits for the hub's verdict before
// its Ready condition says Pending.
const pendingDelay = 2 * time.Second

func (r *Reconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func (r *Reconciler) service(ctx context.Context, key types.NamespacedName) (*corev1.Service, error) {
	var svc corev1.Service
	if err := r.Member.Get(ctx, key, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get Service %s: %w", key, err)
	}
	return &svc, nil
}

func (r *Reconciler) endpointSlices(ctx context.Context, key types.NamespacedName) ([]discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.Member.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexSliceService: key.Name}); err != nil {
		return nil, fmt.Errorf("list EndpointSlices of %s: %w", key, err)
	}
	return list.Items, nil
}

// hboneCapable gathers which pods behind slices accept HBONE tunnels: those
// labelled xdsconv.LabelTunnel=TunnelHBONE (read through an index of the
// cache, in each namespace the slices' pods are in) and those in HBONEPods.
func (r *Reconciler) hboneCapable(ctx context.Context, slices []discoveryv1.EndpointSlice) (func(namespace, pod string) bool, error) {
	labelled := map[string]bool{}
	listed := map[string]bool{}
	for i := range slices {
		for j := range slices[i].Endpoints {
			ns, _, ok := targetPod(&slices[i], &slices[i].Endpoints[j])
			if !ok || listed[ns] {
				continue
			}
			listed[ns] = true
			var list corev1.PodList
			if err := r.Member.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexPodTunnel: xdsconv.TunnelHBONE}, client.UnsafeDisableDeepCopy); err != nil {
				return nil, fmt.Errorf("list pods that accept HBONE in %s: %w", ns, err)
			}
			for k := range list.Items {
				labelled[ns+"/"+list.Items[k].Name] = true
			}
		}
	}
	announced := r.hboneSnapshot()
	return func(namespace, pod string) bool {
		key := namespace + "/" + pod
		return labelled[key] || announced[key]
	}, nil
}

// hboneSnapshot is the watcher's copy of HBONEPods, or a fresh one before
// the watcher runs.
func (r *Reconciler) hboneSnapshot() map[string]bool {
	if p := r.hbone.Load(); p != nil {
		return *p
	}
	if r.HBONEPods == nil {
		return nil
	}
	return r.HBONEPods()
}

// HBONEPodsChanged tells the reconciler that HBONEPods may have changed:
// the exports of the pods that joined or left it are reconciled. It never
// blocks and calls nothing, so it may run under the caller's lock (as
// xds.Server's OnHBONEPodsChanged callbacks do).
func (r *Reconciler) HBONEPodsChanged() {
	select {
	case r.signal() <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (r *Reconciler) signal() chan struct{} {
	r.changedOnce.Do(func() { r.changed = make(chan struct{}, 1) })
	return r.changed
}

// watchHBONEPods keeps r.hbone up to date and enqueues the services of the
// pods that joined or left HBONEPods, until ctx is done.
func (r *Reconciler) watchHBONEPods(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if r.HBONEPods == nil {
		return
	}
	last := r.HBONEPods()
	r.hbone.Store(&last)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.signal():
		}
		cur := r.HBONEPods()
		r.hbone.Store(&cur)
		for pod := range last {
			if !cur[pod] {
				r.enqueuePod(ctx, q, pod)
			}
		}
		for pod := range cur {
			if !last[pod] {
				r.enqueuePod(ctx, q, pod)
			}
		}
		last = cur
	}
}

// enqueuePod adds the services whose slices list pod ("namespace/name").
func (r *Reconciler) enqueuePod(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], pod string) {
	for _, req := range r.servicesOfPod(ctx, pod) {
		q.Add(req)
	}
}

// servicesOfPod finds the services whose EndpointSlices list pod
// ("namespace/name"), through the cache's index.
func (r *Reconciler) servicesOfPod(ctx context.Context, pod string) []reconcile.Request {
	var list discoveryv1.EndpointSliceList
	if err := r.Member.List(ctx, &list, client.MatchingFields{indexSlicePods: pod}, client.UnsafeDisableDeepCopy); err != nil {
		// Only while the cache is stopping or not yet synced; the
		// reconciles after the sync read the pods afresh.
		ctrl.LoggerFrom(ctx).Error(err, "list EndpointSlices of a pod", "pod", pod)
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if name := list.Items[i].Labels[discoveryv1.LabelServiceName]; name != "" {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: name}})
		}
	}
	return out
}

func (r *Reconciler) recordKey(key types.NamespacedName) types.NamespacedName {
	return types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(r.ClusterName), Name: causewayv1alpha1.ServiceKeyName(key.Namespace, key.Name)}
}

// publish creates or updates the hub record, writing only on a difference,
// and returns the record as the hub has it.
func (r *Reconciler) publish(ctx context.Context, spec causewayv1alpha1.ExportRecordSpec) (*causewayv1alpha1.ExportRecord, error) {
	key := r.recordKey(types.NamespacedName{Namespace: spec.Service.Namespace, Name: spec.Service.Name})
	var rec causewayv1alpha1.ExportRecord
	err := r.Hub.Get(ctx, key, &rec)
	switch {
	case apierrors.IsNotFound(err):
		rec = causewayv1alpha1.ExportRecord{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{causewayv1alpha1.LabelCluster: r.ClusterName}},
			Spec:       spec,
		}
		if err := r.Hub.Create(ctx, &rec); err != nil {
			return nil, fmt.Errorf("create export record %s on the hub: %w", key, err)
		}
	case err != nil:
		return nil, fmt.Errorf("get export record %s from the hub: %w", key, err)
	case !equality.Semantic.DeepEqual(rec.Spec, spec):
		rec.Spec = spec
		if err := r.Hub.Update(ctx, &rec); err != nil {
			return nil, fmt.Errorf("update export record %s on the hub: %w", key, err)
		}
	}
	return &rec, nil
}

// withdraw deletes the hub record of key, if any.
func (r *Reconciler) withdraw(ctx context.Context, key types.NamespacedName) error {
	rk := r.recordKey(key)
	var rec causewayv1alpha1.ExportRecord
	if err := r.Hub.Get(ctx, rk, &rec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get export record %s from the hub: %w", rk, err)
	}
	if err := r.Hub.Delete(ctx, &rec, client.Preconditions{UID: &rec.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete export record %s from the hub: %w", rk, err)
	}
	return nil
}

// setHubVerdict sets Ready and Conflict from the hub's verdict on the
// record's current generation, and reports whether there is one.
func setHubVerdict(se *mcsv1beta1.ServiceExport, rec *causewayv1alpha1.ExportRecord) bool {
	conflict := meta.FindStatusCondition(rec.Status.Conditions, causewayv1alpha1.ExportRecordConflict)
	if rec.Status.ObservedGeneration != rec.Generation || conflict == nil || conflict.ObservedGeneration != rec.Generation {
		return false
	}
	setCondition(se, mcsv1beta1.ServiceExportConditionReady, true, mcsv1beta1.ServiceExportReasonExported, "exported to the cluster set")
	meta.SetStatusCondition(&se.Status.Conditions, metav1.Condition{
		Type: string(mcsv1beta1.ServiceExportConditionConflict), Status: conflict.Status,
		Reason: conflict.Reason, Message: conflict.Message, ObservedGeneration: se.Generation,
	})
	return true
}

func setCondition(se *mcsv1beta1.ServiceExport, t mcsv1beta1.ServiceExportConditionType, ok bool, reason mcsv1beta1.ServiceExportConditionReason, msg string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&se.Status.Conditions, metav1.Condition{
		Type: string(t), Status: status, Reason: string(reason), Message: msg, ObservedGeneration: se.Generation,
	})
}

// patchStatus writes next's status if it differs from cur's.
func (r *Reconciler) patchStatus(ctx context.Context, cur, next *mcsv1beta1.ServiceExport) error {
	if equality.Semantic.DeepEqual(cur.Status, next.Status) {
		return nil
	}
	if err := r.Member.Status().Patch(ctx, next, client.MergeFrom(cur)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patch status of ServiceExport %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	return nil
}

// Cache indexes.
const (
	// indexSliceService indexes EndpointSlices by the Service they belong
	// to (their kubernetes.io/service-name label), so gathering a
	// Service's endpoints does not scan every slice of the namespace.
	indexSliceService = "causeway.dev/service-slices"
	// indexSlicePods indexes a Service's EndpointSlices by the pods
	// ("namespace/name") of their endpoints: a pod's HBONE change
	// reconciles only its services.
	indexSlicePods = "causeway.dev/slice-pods"
	// indexPodTunnel indexes pods by their xdsconv.LabelTunnel label, so
	// finding the labelled pods of a namespace does not scan them all.
	indexPodTunnel = "causeway.dev/pod-tunnel"
)

// SetupWithManager registers the reconciler; hub is the hub cluster, whose
// cache holds the member's records.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, hub cluster.Cluster) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, indexSliceService, func(o client.Object) []string {
		if name := o.GetLabels()[discoveryv1.LabelServiceName]; name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index EndpointSlices by service: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, indexSlicePods, slicePods); err != nil {
		return fmt.Errorf("index EndpointSlices by pod: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Pod{}, indexPodTunnel, func(o client.Object) []string {
		if v := o.GetLabels()[xdsconv.LabelTunnel]; v != "" {
			return []string{v}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index pods by tunnel: %w", err)
	}
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
	})
	bySliceService := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[discoveryv1.LabelServiceName]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	})
	// A pod labelled for HBONE (or no longer) changes its services'
	// records; the pod's other changes do not.
	byPod := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.servicesOfPod(ctx, o.GetNamespace()+"/"+o.GetName())
	})
	tunnelLabel := predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			return e.Object.GetLabels()[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			return e.Object.GetLabels()[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			return (e.ObjectOld.GetLabels()[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE) != (e.ObjectNew.GetLabels()[xdsconv.LabelTunnel] == xdsconv.TunnelHBONE)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	byRecord := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, rec *causewayv1alpha1.ExportRecord) []reconcile.Request {
		if rec.Namespace != causewayv1alpha1.MemberNamespace(r.ClusterName) {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rec.Spec.Service.Namespace, Name: rec.Spec.Service.Name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("serviceexport").
		// Its own status writes change no generation: no reconcile for them.
		For(&mcsv1beta1.ServiceExport{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Service{}, byName).
		Watches(&discoveryv1.EndpointSlice{}, bySliceService).
		Watches(&corev1.Pod{}, byPod, builder.WithPredicates(tunnelLabel)).
		WatchesRawSource(source.Kind(hub.GetCache(), &causewayv1alpha1.ExportRecord{}, byRecord)).
		WatchesRawSource(source.Func(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			go r.watchHBONEPods(ctx, q)
			return nil
		})).
		Complete(r)
}

// slicePods returns the pods ("namespace/name") of a Service's
// EndpointSlice's endpoints.
func slicePods(o client.Object) []string {
	s, ok := o.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil
	}
	var out []string
	for i := range s.Endpoints {
		if ns, pod, ok := targetPod(s, &s.Endpoints[i]); ok {
			out = append(out, ns+"/"+pod)
		}
	}
	return out
}
