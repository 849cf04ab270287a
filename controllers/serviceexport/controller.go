package serviceexport

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
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
	rec, err := r.publish(ctx, BuildRecord(r.ClusterName, &se, svc, slices))
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

// indexSliceService indexes EndpointSlices by the Service they belong to
// (their kubernetes.io/service-name label), so gathering a Service's
// endpoints does not scan every slice of the namespace.
const indexSliceService = "causeway.dev/service-slices"

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
		WatchesRawSource(source.Kind(hub.GetCache(), &causewayv1alpha1.ExportRecord{}, byRecord)).
		Complete(r)
}
