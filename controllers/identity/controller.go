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

package identity

import (
	"bytes"
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// ManagedByLabel marks the objects the agent's identity controller owns.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// managedBy is ManagedByLabel's value.
const managedBy = "causeway-agent"

// CAReconciler keeps the Authority at the member's CA Secret on the hub
// and publishes the trust bundle in the member cluster. It has one key:
// every event of either object reconciles the pair.
//
// A missing Secret leaves the Authority not ready (the agent reports it
// in its readiness check and log); a Secret that does not load is
// reported and the last CA that did stays in use. Neither is retried with
// backoff: the Secret's next change triggers the next attempt.
type CAReconciler struct {
	// Hub reads the CA Secret (normally the hub cluster's cache, limited
	// to the member's namespace).
	Hub client.Reader
	// Member writes the trust bundle ConfigMap and reads it (cached).
	Member client.Client
	// ClusterName is the member's name: its CA Secret is in
	// causeway-member-<ClusterName> on the hub.
	ClusterName string
	// BundleNamespace is the member namespace of TrustBundleConfigMap;
	// causeway-system when empty.
	BundleNamespace string
	// Authority receives the loaded CA.
	Authority *Authority
}

func (r *CAReconciler) secretKey() types.NamespacedName {
	return types.NamespacedName{Namespace: causewayv1alpha1.MemberNamespace(r.ClusterName), Name: CASecretName}
}

func (r *CAReconciler) bundleKey() types.NamespacedName {
	ns := r.BundleNamespace
	if ns == "" {
		ns = causewayv1alpha1.SystemNamespace
	}
	return types.NamespacedName{Namespace: ns, Name: TrustBundleConfigMap}
}

// Reconcile loads the CA Secret and publishes the current bundle.
func (r *CAReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("cluster", r.ClusterName, "secret", r.secretKey().String())
	r.load(ctx, log)
	state, _ := r.Authority.Current()
	if state == nil {
		return reconcile.Result{}, nil // not ready: nothing to publish yet
	}
	if err := r.publish(ctx, state.BundlePEM); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

// load reads the Secret into the Authority, logging when the outcome
// changes.
func (r *CAReconciler) load(ctx context.Context, log logr.Logger) {
	var sec corev1.Secret
	err := r.Hub.Get(ctx, r.secretKey(), &sec)
	var state *CAState
	switch {
	case apierrors.IsNotFound(err):
		err = fmt.Errorf("the hub has not written Secret %s for this cluster yet (it is made when the cluster joins; check that the hub runs and the member may read Secrets in its hub namespace)", r.secretKey())
	case err != nil:
		err = fmt.Errorf("read Secret %s on the hub: %w", r.secretKey(), err)
	default:
		state, err = LoadCASecret(&sec)
	}
	if err == nil {
		if cur, _ := r.Authority.Current(); cur != nil && cur.TrustDomain() != state.TrustDomain() {
			err = fmt.Errorf("the CA Secret %s moves the member from trust domain %s to %s; the trust domain is the same across the cluster set, restart the agent to change it", r.secretKey(), cur.TrustDomain(), state.TrustDomain())
		}
	}
	if err != nil {
		before := r.Authority.Err()
		r.Authority.fail(err)
		if before == nil || before.Error() != r.Authority.Err().Error() {
			if cur, _ := r.Authority.Current(); cur != nil {
				log.Error(err, "cannot use the CA Secret; keeping the last CA that loaded", "intermediateExpires", cur.CA.NotAfter())
			} else {
				log.Error(err, "identity service not ready: no CA to sign workload certificates with")
			}
		}
		return
	}
	if r.Authority.set(state) {
		log.Info("loaded the cluster's CA", "trustDomain", state.TrustDomain().String(),
			"intermediateSerial", state.CA.Certificate().SerialNumber.Text(16), "intermediateExpires", state.CA.NotAfter(), "roots", state.Bundle.Len())
	}
}

// publish writes the bundle ConfigMap when it differs.
func (r *CAReconciler) publish(ctx context.Context, roots []byte) error {
	key := r.bundleKey()
	var cm corev1.ConfigMap
	err := r.Member.Get(ctx, key, &cm)
	if apierrors.IsNotFound(err) {
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{ManagedByLabel: managedBy}},
			Data:       map[string]string{TrustBundleKey: string(roots)},
		}
		if err := r.Member.Create(ctx, &cm); err != nil {
			return fmt.Errorf("create ConfigMap %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ConfigMap %s: %w", key, err)
	}
	if bytes.Equal([]byte(cm.Data[TrustBundleKey]), roots) && len(cm.Data) == 1 && len(cm.BinaryData) == 0 && cm.Labels[ManagedByLabel] == managedBy {
		return nil
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[ManagedByLabel] = managedBy
	cm.Data = map[string]string{TrustBundleKey: string(roots)}
	cm.BinaryData = nil
	if err := r.Member.Update(ctx, &cm); err != nil {
		return fmt.Errorf("update ConfigMap %s: %w", key, err)
	}
	return nil
}

// SetupWithManager runs the reconciler in mgr, watching the CA Secret in
// hub's cache and the bundle ConfigMap in mgr's. Both caches should be
// limited to the one object (see the agent's cache options): the
// reconciler needs no other Secret or ConfigMap.
func (r *CAReconciler) SetupWithManager(mgr ctrl.Manager, hub cluster.Cluster) error {
	one := []reconcile.Request{{NamespacedName: r.secretKey()}}
	toOne := func(context.Context, client.Object) []reconcile.Request { return one }
	secretKey, bundleKey := r.secretKey(), r.bundleKey()
	isKey := func(key types.NamespacedName) predicate.Funcs {
		return predicate.NewPredicateFuncs(func(o client.Object) bool { return client.ObjectKeyFromObject(o) == key })
	}
	// One reconcile at start-up, for when neither object exists yet: the
	// Authority then says why it is not ready.
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretKey.Namespace, Name: secretKey.Name}}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("identity-ca").
		WatchesRawSource(source.Channel(start, handler.EnqueueRequestsFromMapFunc(toOne))).
		// One key: a single worker.
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(toOne), builder.WithPredicates(isKey(bundleKey))).
		WatchesRawSource(source.Kind(hub.GetCache(), client.Object(&corev1.Secret{}), handler.EnqueueRequestsFromMapFunc(toOne), isKey(secretKey))).
		Complete(r)
}
