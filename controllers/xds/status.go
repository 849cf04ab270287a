package xds

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/causeway-mesh/causeway/controllers/xds/translate"
)

// writeStatus writes the status of every route and policy whose status
// differs from the translation's, as merge patches with an optimistic
// lock (status.parents is a list that other controllers write too: a
// conflict means someone wrote meanwhile, and the next round retries).
func (c *Controller) writeStatus(ctx context.Context, in *translate.Inputs, res *translate.Result) error {
	// The API server keeps seconds; so do we, so a round trip compares equal.
	now := metav1.NewTime(c.Clock.Now()).Rfc3339Copy()
	var errs []error
	for _, r := range in.HTTPRoutes {
		want := mergeParents(r.Status.Parents, res.HTTPRoutes[key(r)], now)
		if !equality.Semantic.DeepEqual(r.Status.Parents, want) {
			next := r.DeepCopy()
			next.Status.Parents = want
			errs = append(errs, c.patchStatus(ctx, r, next))
		}
	}
	for _, r := range in.GRPCRoutes {
		want := mergeParents(r.Status.Parents, res.GRPCRoutes[key(r)], now)
		if !equality.Semantic.DeepEqual(r.Status.Parents, want) {
			next := r.DeepCopy()
			next.Status.Parents = want
			errs = append(errs, c.patchStatus(ctx, r, next))
		}
	}
	for _, tp := range in.TrafficPolicies {
		st, ok := res.TrafficPolicies[key(tp)]
		if !ok {
			continue
		}
		conds := mergeConditions(tp.Status.Conditions, st.Conditions, now)
		if tp.Status.ObservedGeneration != st.ObservedGeneration || !equality.Semantic.DeepEqual(tp.Status.Conditions, conds) {
			next := tp.DeepCopy()
			next.Status.ObservedGeneration, next.Status.Conditions = st.ObservedGeneration, conds
			errs = append(errs, c.patchStatus(ctx, tp, next))
		}
	}
	for _, ap := range in.AuthorizationPolicies {
		st, ok := res.AuthorizationPolicies[key(ap)]
		if !ok {
			continue
		}
		conds := mergeConditions(ap.Status.Conditions, st.Conditions, now)
		if ap.Status.ObservedGeneration != st.ObservedGeneration || !equality.Semantic.DeepEqual(ap.Status.Conditions, conds) {
			next := ap.DeepCopy()
			next.Status.ObservedGeneration, next.Status.Conditions = st.ObservedGeneration, conds
			errs = append(errs, c.patchStatus(ctx, ap, next))
		}
	}
	for _, ra := range in.RequestAuthentications {
		st, ok := res.RequestAuthentications[key(ra)]
		if !ok {
			continue
		}
		conds := mergeConditions(ra.Status.Conditions, st.Conditions, now)
		if ra.Status.ObservedGeneration != st.ObservedGeneration || !equality.Semantic.DeepEqual(ra.Status.Conditions, conds) {
			next := ra.DeepCopy()
			next.Status.ObservedGeneration, next.Status.Conditions = st.ObservedGeneration, conds
			errs = append(errs, c.patchStatus(ctx, ra, next))
		}
	}
	return errors.Join(errs...)
}

func key(o client.Object) ktypes.NamespacedName {
	return ktypes.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
}

// patchStatus patches next's status over cur's. A conflict or a vanished
// object is not an error: the watch brings the new state and another round.
func (c *Controller) patchStatus(ctx context.Context, cur, next client.Object) error {
	patch := client.MergeFromWithOptions(cur, client.MergeFromWithOptimisticLock{})
	if err := c.Client.Status().Patch(ctx, next, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patch status of %T %s: %w", cur, key(cur), err)
	}
	return nil
}

// mergeParents keeps other controllers' entries in place and replaces
// ours with want (in want's order, after the others), keeping each
// condition's lastTransitionTime when its status did not change.
func mergeParents(cur, want []gatewayv1.RouteParentStatus, now metav1.Time) []gatewayv1.RouteParentStatus {
	out := []gatewayv1.RouteParentStatus{}
	for _, p := range cur {
		if p.ControllerName != translate.ControllerName {
			out = append(out, p)
		}
	}
	for _, w := range want {
		var old []metav1.Condition
		for _, p := range cur {
			if p.ControllerName == translate.ControllerName && reflect.DeepEqual(p.ParentRef, w.ParentRef) {
				old = p.Conditions
			}
		}
		w.Conditions = mergeConditions(old, w.Conditions, now)
		out = append(out, w)
	}
	return out
}

// mergeConditions returns want with lastTransitionTime carried over from
// cur for conditions whose status is unchanged, and now for the others.
// Conditions in cur that want lacks are dropped.
func mergeConditions(cur, want []metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(want))
	for _, w := range want {
		w.LastTransitionTime = now
		for _, c := range cur {
			if c.Type == w.Type && c.Status == w.Status && !c.LastTransitionTime.IsZero() {
				w.LastTransitionTime = c.LastTransitionTime
			}
		}
		out = append(out, w)
	}
	return out
}
