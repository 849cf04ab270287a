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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/linkplan"
)

// LinkPlanReconciler keeps every member's link plan (federation/linkplan)
// in the ConfigMap linkplan.ConfigMapName of its hub namespace, where its
// agent reads it. It is keyed by member name: each reconcile computes the
// member's plan from all members in the cache (linkplan.ComputeFor, pure,
// linear in the number of members) and writes its ConfigMap only when its
// plan.json differs, so a restarted hub writes nothing. A MemberCluster change that can change a
// plan wakes every member; the creation of a member's namespace and any
// change to its plan ConfigMap wake that member, so a member whose
// namespace does not exist yet gets its plan when it appears, and a plan
// edited or deleted by hand is put back. A paused member's plan is left as
// last written (its peers' plans still follow its spec), as is the plan of
// a member being deleted or whose namespace is being deleted.
type LinkPlanReconciler struct {
	// Client reads from the cache (which must hold the plan ConfigMaps:
	// see LinkPlanCache) and writes.
	Client client.Client
	// APIReader reads past the cache, when a create finds the ConfigMap
	// already there (the cache had not seen it yet).
	APIReader client.Reader
}

// LinkPlanCache adds to a hub cache's ByObject the link plan ConfigMaps
// of every namespace but those byObject already lists for ConfigMaps (the
// trust bundle's), and only those: not every ConfigMap of the hub.
func LinkPlanCache(byObject map[client.Object]cache.ByObject) {
	plans := cache.Config{FieldSelector: fields.OneTermEqualSelector("metadata.name", linkplan.ConfigMapName)}
	for obj, by := range byObject {
		if _, ok := obj.(*corev1.ConfigMap); ok {
			if by.Namespaces == nil {
				by.Namespaces = map[string]cache.Config{}
			}
			by.Namespaces[cache.AllNamespaces] = plans
			byObject[obj] = by
			return
		}
	}
	byObject[&corev1.ConfigMap{}] = cache.ByObject{Namespaces: map[string]cache.Config{cache.AllNamespaces: plans}}
}

// Reconcile writes the plan of the member req.Name.
func (r *LinkPlanReconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("cluster", req.Name)
	var mc causewayv1alpha1.MemberCluster
	if err := r.Client.Get(ctx, types.NamespacedName{Name: req.Name}, &mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mc.DeletionTimestamp != nil || mc.Spec.Paused {
		return ctrl.Result{}, nil
	}
	ns := causewayv1alpha1.MemberNamespace(mc.Name)
	var namespace corev1.Namespace
	switch err := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &namespace); {
	case apierrors.IsNotFound(err):
		// Its creation wakes this member again.
		log.V(1).Info("member namespace missing; its link plan waits for it", "namespace", ns)
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get namespace of member %s: %w", mc.Name, err)
	case namespace.DeletionTimestamp != nil:
		return ctrl.Result{}, nil
	}
	var members causewayv1alpha1.MemberClusterList
	// ComputeFor reads and copies what it keeps: no deep copy of the cache.
	if err := r.Client.List(ctx, &members, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("list member clusters: %w", err)
	}
	plan, ok := linkplan.ComputeFor(members.Items, mc.Name)
	if !ok {
		return ctrl.Result{}, nil // not a valid member name: the CRD admits none
	}
	data, err := plan.Marshal()
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.write(ctx, ns, mc.Name, string(data))
}

// write makes plan.json of the member's plan ConfigMap data, creating the
// ConfigMap or patching it only when it differs. Other keys are left
// alone.
func (r *LinkPlanReconciler) write(ctx context.Context, ns, cluster, data string) error {
	key := types.NamespacedName{Namespace: ns, Name: linkplan.ConfigMapName}
	var cm corev1.ConfigMap
	err := r.Client.Get(ctx, key, &cm)
	if apierrors.IsNotFound(err) {
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: linkplan.ConfigMapName, Labels: map[string]string{causewayv1alpha1.LabelCluster: cluster}},
			Data:       map[string]string{linkplan.ConfigMapKey: data},
		}
		err = r.Client.Create(ctx, &cm)
		if err == nil {
			ctrl.LoggerFrom(ctx).V(1).Info("link plan written", "cluster", cluster, "plan", data)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create link plan of member %s: %w", cluster, err)
		}
		// The cache lags: compare with what is there.
		err = r.APIReader.Get(ctx, key, &cm)
	}
	if err != nil {
		return fmt.Errorf("get link plan of member %s: %w", cluster, err)
	}
	if existing, ok := cm.Data[linkplan.ConfigMapKey]; ok && existing == data {
		return nil
	}
	patch := client.MergeFrom(cm.DeepCopy())
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[linkplan.ConfigMapKey] = data
	if err := r.Client.Patch(ctx, &cm, patch); err != nil {
		return fmt.Errorf("update link plan of member %s: %w", cluster, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("link plan written", "cluster", cluster, "plan", data)
	return nil
}

// linkPlanChanged passes MemberCluster events that can change a plan:
// creation, deletion, the gateway, pausing (an unpaused member's plan is
// brought up to date) and the start of a deletion.
func linkPlanChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*causewayv1alpha1.MemberCluster)
			n, ok2 := e.ObjectNew.(*causewayv1alpha1.MemberCluster)
			if !ok1 || !ok2 {
				return true
			}
			return !reflect.DeepEqual(o.Spec.Gateway, n.Spec.Gateway) || o.Spec.Paused != n.Spec.Paused ||
				(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
		},
	}
}

// SetupWithManager registers the reconciler with mgr, whose cache must
// hold the plan ConfigMaps (LinkPlanCache).
func (r *LinkPlanReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.setup(mgr, r)
}

// setup registers rec (r, or a test's wrapper of it) for r's events.
func (r *LinkPlanReconciler) setup(mgr ctrl.Manager, rec reconcile.Reconciler) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	member := func(ns string) []reconcile.Request {
		name, ok := strings.CutPrefix(ns, causewayv1alpha1.MemberNamespacePrefix)
		if !ok || name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("linkplan").
		// Any member's gateway is in others' plans: wake every member.
		Watches(&causewayv1alpha1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(r.allMembers), builder.WithPredicates(linkPlanChanged())).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return member(o.GetName())
		}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetName() != linkplan.ConfigMapName {
				return nil
			}
			return member(o.GetNamespace())
		})).
		Complete(rec)
}

// allMembers enqueues every member, and the one of the event (gone from
// the cache when deleted).
func (r *LinkPlanReconciler) allMembers(ctx context.Context, o client.Object) []reconcile.Request {
	var list causewayv1alpha1.MemberClusterList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list member clusters")
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
	}
	out := make([]reconcile.Request, 0, len(list.Items)+1)
	out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: o.GetName()}})
	for _, mc := range list.Items {
		if mc.Name != o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: mc.Name}})
		}
	}
	return out
}
