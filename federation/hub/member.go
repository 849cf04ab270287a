package hub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// DefaultGracePeriod is how long past its lease's expiry a silent member
// keeps its endpoints in the cluster set. KEP-1645 leaves the endpoint TTL
// to the implementation; 30 s rides out an agent restart or a short hub
// partition without sending traffic to a cluster that is gone for longer.
const DefaultGracePeriod = 30 * time.Second

// Reasons of the MemberCluster conditions set by the hub.
const (
	reasonLeaseRenewed   = "LeaseRenewed"
	reasonNoLease        = "NoLease"
	reasonNamespaceFound = "NamespaceFound"
	reasonNamespaceGone  = "NamespaceMissing"
	reasonHealthy        = "Healthy"
)

// MemberClusterReconciler keeps a MemberCluster's status true to its
// agent's lease.
type MemberClusterReconciler struct {
	Client client.Client
	// GracePeriod is added to the lease duration before a member is
	// unhealthy.
	GracePeriod time.Duration
	// Clock tells the time (clock.RealClock in production).
	Clock clock.PassiveClock
}

// Reconcile handles the MemberCluster req.Name.
func (r *MemberClusterReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	var mc causewayv1alpha1.MemberCluster
	if err := r.Client.Get(ctx, req.NamespacedName, &mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mc.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	ns := causewayv1alpha1.MemberNamespace(mc.Name)
	var lease *coordinationv1.Lease
	var l coordinationv1.Lease
	switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: causewayv1alpha1.AgentLeaseName}, &l); {
	case err == nil:
		lease = &l
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("get lease of member %s: %w", mc.Name, err)
	}
	var namespace corev1.Namespace
	nsErr := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &namespace)
	if nsErr != nil && !apierrors.IsNotFound(nsErr) {
		return ctrl.Result{}, fmt.Errorf("get namespace of member %s: %w", mc.Name, nsErr)
	}
	counts, err := r.counts(ctx, mc.Name, lease)
	if err != nil {
		return ctrl.Result{}, err
	}

	now := r.Clock.Now()
	h := leaseHealth(lease, r.GracePeriod, now)
	next := mc.DeepCopy()
	setMemberStatus(&next.Status, mc.Generation, ns, nsErr == nil && namespace.DeletionTimestamp == nil, mc.Spec.Paused, h, counts)
	if !equality.Semantic.DeepEqual(mc.Status, next.Status) {
		if err := r.Client.Status().Patch(ctx, next, client.MergeFrom(&mc)); err != nil {
			return ctrl.Result{}, fmt.Errorf("patch status of member cluster %s: %w", mc.Name, err)
		}
	}
	if h.healthy {
		// Look again the moment the lease would expire.
		return ctrl.Result{RequeueAfter: h.expires.Sub(now) + 10*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

type memberCounts struct {
	exports, imports int32
	version          string
}

func (r *MemberClusterReconciler) counts(ctx context.Context, cluster string, lease *coordinationv1.Lease) (memberCounts, error) {
	var c memberCounts
	var recs causewayv1alpha1.ExportRecordList
	// Counting only: read the cache's objects without copying them (this
	// runs on every record event of the member).
	if err := r.Client.List(ctx, &recs, client.InNamespace(causewayv1alpha1.MemberNamespace(cluster)), client.UnsafeDisableDeepCopy); err != nil {
		return c, fmt.Errorf("list export records of member %s: %w", cluster, err)
	}
	c.exports = int32(len(recs.Items))
	if lease == nil {
		return c, nil
	}
	c.version = lease.Annotations[causewayv1alpha1.AnnotationAgentVersion]
	namespaces := strings.Split(lease.Annotations[causewayv1alpha1.AnnotationNamespaces], ",")
	var gss causewayv1alpha1.GlobalServiceList
	if err := r.Client.List(ctx, &gss, client.InNamespace(causewayv1alpha1.SystemNamespace), client.UnsafeDisableDeepCopy); err != nil {
		return c, fmt.Errorf("list global services: %w", err)
	}
	for _, gs := range gss.Items {
		if slices.Contains(namespaces, gs.Spec.Service.Namespace) {
			c.imports++
		}
	}
	return c, nil
}

// health is a member's health at one moment.
type health struct {
	healthy bool
	// expires is when a healthy member turns unhealthy without a renewal.
	expires time.Time
	message string
}

// leaseHealth decides a member's health from its agent's lease: healthy
// until renewTime + leaseDurationSeconds + grace.
func leaseHealth(lease *coordinationv1.Lease, grace time.Duration, now time.Time) health {
	if lease == nil || lease.Spec.RenewTime == nil {
		return health{message: "the agent has not renewed its lease yet"}
	}
	d := time.Duration(0)
	if lease.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	}
	expires := lease.Spec.RenewTime.Add(d + grace)
	if now.Before(expires) {
		return health{healthy: true, expires: expires, message: fmt.Sprintf("lease renewed at %s", lease.Spec.RenewTime.UTC().Format(time.RFC3339))}
	}
	return health{expires: expires, message: fmt.Sprintf("lease last renewed at %s, expired at %s (duration %s, grace %s); the cluster's endpoints are withdrawn",
		lease.Spec.RenewTime.UTC().Format(time.RFC3339), expires.UTC().Format(time.RFC3339), d, grace)}
}

// setMemberStatus fills a MemberCluster status; meta.SetStatusCondition
// keeps transition times of conditions that did not change.
func setMemberStatus(st *causewayv1alpha1.MemberClusterStatus, generation int64, namespace string, joined, paused bool, h health, c memberCounts) {
	st.ObservedGeneration = generation
	st.ExportCount, st.ImportCount, st.AgentVersion = c.exports, c.imports, c.version
	cond := func(t string, ok bool, reasonTrue, reasonFalse, msg string) metav1.Condition {
		if ok {
			return metav1.Condition{Type: t, Status: metav1.ConditionTrue, Reason: reasonTrue, Message: msg, ObservedGeneration: generation}
		}
		return metav1.Condition{Type: t, Status: metav1.ConditionFalse, Reason: reasonFalse, Message: msg, ObservedGeneration: generation}
	}
	joinedMsg := "the member's hub namespace " + namespace + " exists"
	if !joined {
		joinedMsg = "the member's hub namespace " + namespace + " is missing; run causeway join again"
	}
	meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterJoined, joined, reasonNamespaceFound, reasonNamespaceGone, joinedMsg))
	leaseReason := causewayv1alpha1.ReasonLeaseExpired
	if h.expires.IsZero() {
		leaseReason = reasonNoLease
	}
	meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterHealthy, h.healthy, reasonLeaseRenewed, leaseReason, h.message))
	switch {
	case paused:
		meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterReady, false, "", causewayv1alpha1.ReasonPaused, "spec.paused is true: the cluster's exports are withdrawn"))
	case !joined:
		meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterReady, false, "", reasonNamespaceGone, joinedMsg))
	case !h.healthy:
		meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterReady, false, "", leaseReason, h.message))
	default:
		meta.SetStatusCondition(&st.Conditions, cond(causewayv1alpha1.MemberClusterReady, true, reasonHealthy, "", "joined, healthy and serving its exports"))
	}
}

// memberChanged passes MemberCluster events that change what the merge
// sees: creation, deletion, locality, pause, or the Healthy condition.
func memberChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*causewayv1alpha1.MemberCluster)
			n, ok2 := e.ObjectNew.(*causewayv1alpha1.MemberCluster)
			if !ok1 || !ok2 {
				return true
			}
			return o.Spec.Region != n.Spec.Region || o.Spec.Zone != n.Spec.Zone || o.Spec.Paused != n.Spec.Paused ||
				meta.IsStatusConditionTrue(o.Status.Conditions, causewayv1alpha1.MemberClusterHealthy) !=
					meta.IsStatusConditionTrue(n.Status.Conditions, causewayv1alpha1.MemberClusterHealthy) ||
				(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
		},
	}
}

// SetupWithManager registers the reconciler. Lease renewals in a member's
// namespace wake its MemberCluster, so the export and import counts in its
// status trail by at most a third of the lease duration; record events do
// not wake it, which keeps a burst of exports from costing a status write
// each.
func (r *MemberClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	toMember := func(_ context.Context, o client.Object) []reconcile.Request {
		name, ok := strings.CutPrefix(o.GetNamespace(), causewayv1alpha1.MemberNamespacePrefix)
		if !ok || name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("membercluster").
		For(&causewayv1alpha1.MemberCluster{}).
		Watches(&coordinationv1.Lease{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if o.GetName() != causewayv1alpha1.AgentLeaseName {
				return nil
			}
			return toMember(ctx, o)
		})).
		Complete(r)
}
