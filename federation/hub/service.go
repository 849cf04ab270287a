package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/aggregate"
)

// indexServiceKey indexes ExportRecords by "<namespace>/<name>" of the
// service they export.
const indexServiceKey = "causeway.dev/service-key"

func serviceKeyOf(rec *causewayv1alpha1.ExportRecord) string {
	return rec.Spec.Service.Namespace + "/" + rec.Spec.Service.Name
}

// ServiceReconciler merges the exports of one service into its
// GlobalService.
type ServiceReconciler struct {
	Client client.Client
}

// Reconcile handles the service req.Namespace/req.Name.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	records, err := r.records(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	members, err := listMembers(ctx, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	trusted := trustedRecords(records, members)
	specs := make([]causewayv1alpha1.ExportRecordSpec, len(trusted))
	for i, rec := range trusted {
		specs[i] = rec.Spec
	}
	merged, verdicts, ok := aggregate.Merge(specs, members)
	return ctrl.Result{}, errors.Join(
		r.applyGlobalService(ctx, req.NamespacedName, merged, ok),
		r.applyVerdicts(ctx, trusted, verdicts),
	)
}

func (r *ServiceReconciler) records(ctx context.Context, key types.NamespacedName) ([]causewayv1alpha1.ExportRecord, error) {
	var list causewayv1alpha1.ExportRecordList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexServiceKey: key.String()}); err != nil {
		return nil, fmt.Errorf("list export records of %s: %w", key, err)
	}
	return list.Items, nil
}

// trustedRecords keeps the records that live in their own member's
// namespace, of a member that exists, and are not being deleted.
func trustedRecords(records []causewayv1alpha1.ExportRecord, members map[string]aggregate.Member) []causewayv1alpha1.ExportRecord {
	out := make([]causewayv1alpha1.ExportRecord, 0, len(records))
	for _, rec := range records {
		if rec.DeletionTimestamp != nil || rec.Namespace != causewayv1alpha1.MemberNamespace(rec.Spec.Cluster) {
			continue
		}
		if _, ok := members[rec.Spec.Cluster]; !ok {
			continue
		}
		out = append(out, rec)
	}
	return out
}

// applyGlobalService makes the GlobalService of key match merged (or not
// exist when ok is false), writing only on a difference.
func (r *ServiceReconciler) applyGlobalService(ctx context.Context, key types.NamespacedName, merged causewayv1alpha1.GlobalServiceSpec, ok bool) error {
	name := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ServiceKeyName(key.Namespace, key.Name)}
	var cur causewayv1alpha1.GlobalService
	err := r.Client.Get(ctx, name, &cur)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get GlobalService %s: %w", name, err)
	}
	switch {
	case !ok && exists:
		if err := r.Client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete GlobalService %s: %w", name, err)
		}
	case ok && !exists:
		gs := &causewayv1alpha1.GlobalService{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}, Spec: merged}
		if err := r.Client.Create(ctx, gs); err != nil {
			return fmt.Errorf("create GlobalService %s: %w", name, err)
		}
	case ok && exists && !aggregate.EqualSpec(&cur.Spec, &merged):
		cur.Spec = merged
		if err := r.Client.Update(ctx, &cur); err != nil {
			return fmt.Errorf("update GlobalService %s: %w", name, err)
		}
	}
	return nil
}

// applyVerdicts sets each record's Conflict condition and observed
// generation, patching only records whose status changes.
func (r *ServiceReconciler) applyVerdicts(ctx context.Context, records []causewayv1alpha1.ExportRecord, verdicts map[string]aggregate.Conflict) error {
	var errs []error
	for i := range records {
		rec := &records[i]
		v, ok := verdicts[rec.Spec.Cluster]
		if !ok {
			continue
		}
		next := rec.DeepCopy()
		next.Status.ObservedGeneration = rec.Generation
		meta.SetStatusCondition(&next.Status.Conditions, conflictCondition(v, rec.Generation))
		if equality.Semantic.DeepEqual(rec.Status, next.Status) {
			continue
		}
		if err := r.Client.Status().Patch(ctx, next, client.MergeFrom(rec)); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("patch status of export record %s/%s: %w", rec.Namespace, rec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// conflictCondition is the MCS Conflict condition for a verdict.
func conflictCondition(v aggregate.Conflict, generation int64) metav1.Condition {
	if len(v.Reasons) == 0 {
		return metav1.Condition{
			Type: causewayv1alpha1.ExportRecordConflict, Status: metav1.ConditionFalse, ObservedGeneration: generation,
			Reason: string(mcsv1beta1.ServiceExportReasonNoConflicts), Message: "the export agrees with every other export of the service",
		}
	}
	return metav1.Condition{
		Type: causewayv1alpha1.ExportRecordConflict, Status: metav1.ConditionTrue, ObservedGeneration: generation,
		Reason: strings.Join(v.Reasons, ","), Message: v.Message,
	}
}

// SetupWithManager registers the reconciler and its field index.
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &causewayv1alpha1.ExportRecord{}, indexServiceKey, func(o client.Object) []string {
		return []string{serviceKeyOf(o.(*causewayv1alpha1.ExportRecord))}
	}); err != nil {
		return fmt.Errorf("index export records by service: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("globalservice").
		// Records: their spec (generation) and existence matter; the hub's
		// own status patches do not.
		Watches(&causewayv1alpha1.ExportRecord{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			rec := o.(*causewayv1alpha1.ExportRecord)
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rec.Spec.Service.Namespace, Name: rec.Spec.Service.Name}}}
		}), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&causewayv1alpha1.GlobalService{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			gs := o.(*causewayv1alpha1.GlobalService)
			if gs.Namespace != causewayv1alpha1.SystemNamespace {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: gs.Spec.Service.Namespace, Name: gs.Spec.Service.Name}}}
		})).
		// A member's health or locality changes every service it exports.
		Watches(&causewayv1alpha1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(r.servicesOfMember),
			builder.WithPredicates(memberChanged())).
		Complete(r)
}

func (r *ServiceReconciler) servicesOfMember(ctx context.Context, o client.Object) []reconcile.Request {
	var list causewayv1alpha1.ExportRecordList
	if err := r.Client.List(ctx, &list, client.InNamespace(causewayv1alpha1.MemberNamespace(o.GetName()))); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list export records of member", "cluster", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, rec := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rec.Spec.Service.Namespace, Name: rec.Spec.Service.Name}})
	}
	return out
}

// listMembers returns every MemberCluster as the merge sees it.
func listMembers(ctx context.Context, c client.Client) (map[string]aggregate.Member, error) {
	var list causewayv1alpha1.MemberClusterList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list member clusters: %w", err)
	}
	out := make(map[string]aggregate.Member, len(list.Items))
	for _, mc := range list.Items {
		if mc.DeletionTimestamp != nil {
			continue
		}
		out[mc.Name] = aggregate.Member{
			Region:  string(mc.Spec.Region),
			Zone:    string(mc.Spec.Zone),
			Healthy: !mc.Spec.Paused && meta.IsStatusConditionTrue(mc.Status.Conditions, causewayv1alpha1.MemberClusterHealthy),
		}
	}
	return out, nil
}
