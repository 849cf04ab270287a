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

package trust

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Defaults of Options (and of the hub's flags).
const (
	// DefaultTrustDomain is the trust domain when the hub has no
	// MeshConfig and none is configured.
	DefaultTrustDomain = "causeway.local"
	// RootSecretName is the Secret in the hub's SystemNamespace that holds
	// the generated root.
	RootSecretName = "causeway-root-ca"
	// DefaultIntermediateTTL is the members' intermediates' lifetime. They
	// are renewed after two thirds of it, which leaves ten days for a hub
	// outage, and an unjoined member's intermediate stops working within
	// a month.
	DefaultIntermediateTTL = 30 * 24 * time.Hour
	// MaxIntermediateTTL bounds Options.IntermediateTTL.
	MaxIntermediateTTL = pki.DefaultIntermediateTTL
	// DefaultOverlap is how long a former root stays trusted after
	// intermediates move off it: the default workload certificate
	// lifetime, so every leaf signed under it has expired by then.
	DefaultOverlap = pki.DefaultWorkloadTTL
	// DefaultPropagationDelay is how long a new root is in the bundle
	// before intermediates move to it: time for every agent to hand the
	// new bundle to its proxies.
	DefaultPropagationDelay = time.Hour
)

// Options configures the hub's trust reconcilers.
type Options struct {
	// TrustDomain is the trust domain when the hub has no MeshConfig;
	// DefaultTrustDomain when empty.
	TrustDomain string
	// RootSecret, when set, names a user-supplied root (see SecretRoot);
	// otherwise the hub generates its root (see GeneratedRoot).
	RootSecret types.NamespacedName
	// NewSource, when set, makes the root source instead (for example
	// the cert-manager one); RootSecret must then be empty. It runs once,
	// in Setup.
	NewSource func(mgr ctrl.Manager) (RootSource, error)
	// RootTTL is a generated root's lifetime; pki.DefaultRootTTL when
	// zero.
	RootTTL time.Duration
	// IntermediateTTL is the members' intermediates' lifetime, at most
	// MaxIntermediateTTL; DefaultIntermediateTTL when zero.
	IntermediateTTL time.Duration
	// Overlap is how long a former root stays in the bundle after
	// intermediates move off it; never less than the workload
	// certificate lifetime (the MeshConfig's, 24h by default) plus clock
	// skew, so zero means exactly that.
	Overlap time.Duration
	// PropagationDelay is how long a new root is in the bundle before
	// intermediates move to it; zero moves them at once.
	PropagationDelay time.Duration
	// Clock is the time source; nil means the real one.
	Clock clock.PassiveClock
}

// complete validates o and fills in its defaults.
func (o Options) complete() (Options, spiffeid.TrustDomain, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	td, err := parseTrustDomain(o.TrustDomain)
	if err != nil {
		return o, td, err
	}
	if o.RootTTL == 0 {
		o.RootTTL = pki.DefaultRootTTL
	}
	if o.IntermediateTTL == 0 {
		o.IntermediateTTL = DefaultIntermediateTTL
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	var errs []error
	if o.RootSecret.Name != "" && o.NewSource != nil {
		errs = append(errs, errors.New("a root CA Secret and another root source are both configured; choose one"))
	}
	if o.RootTTL < time.Hour {
		errs = append(errs, fmt.Errorf("root CA lifetime %s is shorter than 1h", o.RootTTL))
	}
	if o.IntermediateTTL < time.Hour || o.IntermediateTTL > MaxIntermediateTTL {
		errs = append(errs, fmt.Errorf("intermediate CA lifetime %s is not between 1h and %s", o.IntermediateTTL, MaxIntermediateTTL))
	}
	if o.Overlap < 0 || o.PropagationDelay < 0 {
		errs = append(errs, fmt.Errorf("negative root rotation overlap %s or propagation delay %s", o.Overlap, o.PropagationDelay))
	}
	return o, td, errors.Join(errs...)
}

// parseTrustDomain parses a bare trust domain name; go-spiffe would also
// take a SPIFFE ID and use its trust domain, which hides a mistake.
func parseTrustDomain(s string) (spiffeid.TrustDomain, error) {
	td, err := spiffeid.TrustDomainFromString(s)
	if err == nil && td.Name() != s {
		err = errors.New("want a bare name such as mesh.example.com, not a SPIFFE ID")
	}
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("invalid trust domain %q: %w", s, err)
	}
	return td, nil
}

// Validate reports whether Setup would accept o.
func (o Options) Validate() error {
	_, _, err := o.complete()
	return err
}

// ParseSecretRef parses "<namespace>/<name>", as the hub's --root-ca-secret
// flag takes it.
func ParseSecretRef(s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		return types.NamespacedName{}, fmt.Errorf("invalid Secret reference %q: want <namespace>/<name>", s)
	}
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("invalid Secret reference %q: namespace: %s", s, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("invalid Secret reference %q: name: %s", s, strings.Join(msgs, "; "))
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// rootSecret is the Secret the root comes from, if it comes from one.
func (o Options) rootSecret() types.NamespacedName {
	switch {
	case o.RootSecret.Name != "":
		return o.RootSecret
	case o.NewSource != nil:
		return types.NamespacedName{}
	}
	return types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: RootSecretName}
}

// CacheByObject is what the hub manager's cache must hold for the trust
// reconcilers, to merge into its cache.Options.ByObject: the members' CA
// Secrets, the Secrets of the SystemNamespace and the root Secret, and the
// bundle ConfigMap; not every Secret and ConfigMap of the hub cluster.
func (o Options) CacheByObject() map[client.Object]cache.ByObject {
	secrets := map[string]cache.Config{
		cache.AllNamespaces:              {FieldSelector: fields.OneTermEqualSelector("metadata.name", MemberCASecretName)},
		causewayv1alpha1.SystemNamespace: {FieldSelector: fields.Everything()},
	}
	if ns := o.RootSecret.Namespace; ns != "" && ns != causewayv1alpha1.SystemNamespace {
		secrets[ns] = cache.Config{FieldSelector: fields.OneTermEqualSelector("metadata.name", o.RootSecret.Name)}
	}
	return map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: secrets},
		&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
			causewayv1alpha1.SystemNamespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", BundleConfigMapName)},
		}},
	}
}

// Setup registers the bundle and intermediate reconcilers with mgr, whose
// cache must include CacheByObject.
func Setup(mgr ctrl.Manager, o Options) error {
	o, td, err := o.complete()
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	var src RootSource
	switch {
	case o.NewSource != nil:
		if src, err = o.NewSource(mgr); err != nil {
			return fmt.Errorf("trust: make root source: %w", err)
		}
	case o.RootSecret.Name != "":
		src = &SecretRoot{Reader: mgr.GetClient(), Secret: o.RootSecret, Clock: o.Clock}
	default:
		src = &GeneratedRoot{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Secret: o.rootSecret(), TTL: o.RootTTL, Clock: o.Clock}
	}
	auth := NewAuthority()
	bundle := &BundleReconciler{
		Client: mgr.GetClient(), Source: src, Authority: auth, TrustDomain: td,
		Bundle:  types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: BundleConfigMapName},
		Overlap: o.Overlap, PropagationDelay: o.PropagationDelay, Clock: o.Clock,
	}
	if err := bundle.setupWithManager(mgr, o.rootSecret()); err != nil {
		return err
	}
	return (&IntermediateReconciler{Client: mgr.GetClient(), Authority: auth, TTL: o.IntermediateTTL, Clock: o.Clock}).SetupWithManager(mgr)
}

// setupWithManager registers the bundle reconciler: the bundle ConfigMap,
// the root Secret (if any), the MeshConfig and the source's own objects
// all map to its one key, and a first event starts it even when none of
// them exists yet.
func (r *BundleReconciler) setupWithManager(mgr ctrl.Manager, rootSecret types.NamespacedName) error {
	toBundle := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: r.Bundle}}
	})
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &corev1.ConfigMap{}}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("trustbundle").
		Watches(&corev1.ConfigMap{}, toBundle, builder.WithPredicates(named(r.Bundle))).
		Watches(&causewayv1alpha1.MeshConfig{}, toBundle).
		WatchesRawSource(source.Channel(start, toBundle))
	if rootSecret.Name != "" {
		b = b.Watches(&corev1.Secret{}, toBundle, builder.WithPredicates(named(rootSecret)))
	}
	if w, ok := r.Source.(WatchingRootSource); ok {
		for _, obj := range w.WatchedObjects() {
			b = b.Watches(obj, toBundle)
		}
	}
	if err := b.Complete(r); err != nil {
		return fmt.Errorf("set up trust bundle reconciler: %w", err)
	}
	return nil
}

// SetupWithManager registers the reconciler: a member's MemberCluster, hub
// namespace and CA Secret map to the member, and a new decision of the
// bundle reconciler to every member.
func (r *IntermediateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byNamespace := func(ns string) []reconcile.Request {
		name, ok := strings.CutPrefix(ns, causewayv1alpha1.MemberNamespacePrefix)
		if !ok || name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	allMembers := func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list causewayv1alpha1.MemberClusterList
		if err := r.Client.List(ctx, &list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list member clusters to apply a new trust decision")
			return nil
		}
		out := make([]reconcile.Request, len(list.Items))
		for i, mc := range list.Items {
			out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: mc.Name}}
		}
		return out
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named("intermediateca").
		For(&causewayv1alpha1.MemberCluster{}, builder.WithPredicates(memberTrustChanged())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetName() != MemberCASecretName {
				return nil
			}
			return byNamespace(o.GetNamespace())
		})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return byNamespace(o.GetName())
		})).
		WatchesRawSource(source.Channel(r.Authority.changed, handler.EnqueueRequestsFromMapFunc(allMembers))).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up intermediate CA reconciler: %w", err)
	}
	return nil
}

// named passes events of the object key only.
func named(key types.NamespacedName) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == key.Namespace && o.GetName() == key.Name
	})
}

// memberTrustChanged passes MemberCluster events that concern its
// intermediate: creation, deletion, a new generation, or a change to
// ConditionIntermediateCA (another writer of the status may drop it).
// Health updates do not wake the reconciler.
func memberTrustChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*causewayv1alpha1.MemberCluster)
			n, ok2 := e.ObjectNew.(*causewayv1alpha1.MemberCluster)
			if !ok1 || !ok2 {
				return true
			}
			oc := meta.FindStatusCondition(o.Status.Conditions, ConditionIntermediateCA)
			nc := meta.FindStatusCondition(n.Status.Conditions, ConditionIntermediateCA)
			return o.Generation != n.Generation || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) ||
				(oc == nil) != (nc == nil) || (oc != nil && (oc.Status != nc.Status || oc.Message != nc.Message))
		},
	}
}
