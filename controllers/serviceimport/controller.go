package serviceimport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// Reconciler realises GlobalServices in this member cluster.
type Reconciler struct {
	// Member is the member cluster's client (cached reads).
	Member client.Client
	// Reader reads the member's API server directly, for the rare case
	// where the cache lags behind the reconciler's own writes.
	Reader client.Reader
	// Hub is the hub client, cached for the hub's SystemNamespace.
	Hub client.Client
	// IPs allocates ClusterSetIPs; Prime must run before the first
	// reconcile.
	IPs *Allocator
	// Writes, if not nil, counts the writes the reconciler makes.
	Writes func(kind, verb string)
}

// Reconcile handles the service req.Namespace/req.Name.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	key := req.NamespacedName
	gs, err := r.globalService(ctx, key)
	if err != nil {
		return ctrl.Result{}, err
	}
	nsOK, err := r.namespaceExists(ctx, key.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	var cur mcsv1beta1.ServiceImport
	exists := true
	if err := r.Member.Get(ctx, key, &cur); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get ServiceImport %s: %w", key, err)
		}
		exists = false
	}
	if exists && cur.Labels[LabelManagedBy] != managedByValue {
		// Someone else's ServiceImport: leave it alone.
		return ctrl.Result{}, nil
	}
	if gs == nil || !nsOK {
		// Nothing to import here (namespace sameness: only where the
		// namespace exists).
		return ctrl.Result{}, r.remove(ctx, key, exists, &cur)
	}
	ip := netip.Addr{}
	if gs.Spec.Type == causewayv1alpha1.ServiceTypeClusterSetIP {
		if ip, err = r.IPs.Allocate(key.String()); err != nil {
			return ctrl.Result{}, err
		}
	} else {
		r.IPs.Release(key.String())
	}
	want := DesiredImport(gs, ip)
	si, err := r.applyImport(ctx, exists, &cur, want)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.applySlices(ctx, si, DesiredSlices(gs))
}

func (r *Reconciler) globalService(ctx context.Context, key types.NamespacedName) (*causewayv1alpha1.GlobalService, error) {
	var gs causewayv1alpha1.GlobalService
	name := types.NamespacedName{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.ServiceKeyName(key.Namespace, key.Name)}
	if err := r.Hub.Get(ctx, name, &gs); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get GlobalService %s from the hub: %w", name, err)
	}
	return &gs, nil
}

func (r *Reconciler) namespaceExists(ctx context.Context, name string) (bool, error) {
	var ns corev1.Namespace
	if err := r.Member.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("get namespace %s: %w", name, err)
	}
	return ns.DeletionTimestamp == nil, nil
}

func (r *Reconciler) count(kind, verb string) {
	if r.Writes != nil {
		r.Writes(kind, verb)
	}
}

// remove deletes the import and its slices.
func (r *Reconciler) remove(ctx context.Context, key types.NamespacedName, exists bool, cur *mcsv1beta1.ServiceImport) error {
	r.IPs.Release(key.String())
	var errs []error
	if exists {
		if err := r.Member.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete ServiceImport %s: %w", key, err))
		} else {
			r.count("ServiceImport", "delete")
		}
	}
	// Slices are found by label, not by owner: the garbage collector may
	// not have removed them yet, and an orphan must go too.
	errs = append(errs, r.deleteSlices(ctx, key))
	return errors.Join(errs...)
}

// applyImport creates or updates the ServiceImport (spec, labels,
// annotations, then status), each only on a difference. A hand edit is
// undone here.
func (r *Reconciler) applyImport(ctx context.Context, exists bool, cur, want *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, error) {
	key := client.ObjectKeyFromObject(want)
	if !exists {
		created := want.DeepCopy()
		created.Status = mcsv1beta1.ServiceImportStatus{}
		err := r.Member.Create(ctx, created)
		switch {
		case apierrors.IsAlreadyExists(err):
			// The cache has not seen our own earlier create yet: read it
			// from the API server and carry on from there.
			if err := r.Reader.Get(ctx, key, cur); err != nil {
				return nil, fmt.Errorf("get ServiceImport %s: %w", key, err)
			}
			return r.applyImport(ctx, true, cur, want)
		case err != nil:
			return nil, fmt.Errorf("create ServiceImport %s: %w", key, err)
		}
		r.count("ServiceImport", "create")
		cur = created
	} else if !equality.Semantic.DeepEqual(cur.Spec, want.Spec) || !equality.Semantic.DeepEqual(cur.Labels, want.Labels) || !equality.Semantic.DeepEqual(nilIfEmpty(cur.Annotations), want.Annotations) {
		next := cur.DeepCopy()
		next.Spec, next.Labels, next.Annotations = want.Spec, want.Labels, want.Annotations
		// A merge patch, not an update: a stale cache must not turn into a
		// conflict and a backoff.
		if err := r.Member.Patch(ctx, next, client.MergeFrom(cur)); err != nil {
			return nil, fmt.Errorf("patch ServiceImport %s: %w", key, err)
		}
		r.count("ServiceImport", "update")
		cur = next
	}
	next := cur.DeepCopy()
	next.Status.Clusters = want.Status.Clusters
	next.Status.EndpointSliceObjects = want.Status.EndpointSliceObjects
	for _, c := range want.Status.Conditions {
		c.ObservedGeneration = cur.Generation
		meta.SetStatusCondition(&next.Status.Conditions, c)
	}
	if !equality.Semantic.DeepEqual(cur.Status, next.Status) {
		if err := r.Member.Status().Patch(ctx, next, client.MergeFrom(cur)); err != nil {
			return nil, fmt.Errorf("patch status of ServiceImport %s: %w", key, err)
		}
		r.count("ServiceImport", "status")
		cur = next
	}
	return cur, nil
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// applySlices makes the import's EndpointSlices match want: create what is
// missing, update what differs, delete the rest.
func (r *Reconciler) applySlices(ctx context.Context, si *mcsv1beta1.ServiceImport, want []*discoveryv1.EndpointSlice) error {
	key := client.ObjectKeyFromObject(si)
	existing, err := r.listSlices(ctx, key)
	if err != nil {
		return err
	}
	byName := make(map[string]*discoveryv1.EndpointSlice, len(existing))
	for i := range existing {
		byName[existing[i].Name] = &existing[i]
	}
	var errs []error
	keep := map[string]bool{}
	for _, w := range want {
		keep[w.Name] = true
		if err := controllerutil.SetControllerReference(si, w, r.Member.Scheme()); err != nil {
			errs = append(errs, fmt.Errorf("own EndpointSlice %s/%s: %w", w.Namespace, w.Name, err))
			continue
		}
		cur, ok := byName[w.Name]
		switch {
		case !ok:
			err := r.Member.Create(ctx, w)
			if apierrors.IsAlreadyExists(err) {
				// Our own create, not yet in the cache: compare with the
				// API server's copy instead.
				var fresh discoveryv1.EndpointSlice
				if err := r.Reader.Get(ctx, client.ObjectKeyFromObject(w), &fresh); err != nil {
					errs = append(errs, fmt.Errorf("get EndpointSlice %s/%s: %w", w.Namespace, w.Name, err))
					continue
				}
				errs = append(errs, r.updateSlice(ctx, &fresh, w))
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("create EndpointSlice %s/%s: %w", w.Namespace, w.Name, err))
				continue
			}
			r.count("EndpointSlice", "create")
		default:
			errs = append(errs, r.updateSlice(ctx, cur, w))
		}
	}
	errs = append(errs, r.deleteListed(ctx, existing, keep))
	return errors.Join(errs...)
}

// updateSlice makes cur look like want, if it does not already.
func (r *Reconciler) updateSlice(ctx context.Context, cur, want *discoveryv1.EndpointSlice) error {
	if sliceEqual(cur, want) {
		return nil
	}
	if cur.AddressType != want.AddressType {
		// The address type is immutable: replace the slice.
		return r.replaceSlice(ctx, cur, want)
	}
	next := cur.DeepCopy()
	next.Labels, next.OwnerReferences, next.Endpoints, next.Ports = want.Labels, want.OwnerReferences, want.Endpoints, want.Ports
	if err := r.Member.Update(ctx, next); err != nil {
		return fmt.Errorf("update EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.count("EndpointSlice", "update")
	return nil
}

func (r *Reconciler) replaceSlice(ctx context.Context, cur, want *discoveryv1.EndpointSlice) error {
	if err := r.Member.Delete(ctx, cur); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete EndpointSlice %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	r.count("EndpointSlice", "delete")
	if err := r.Member.Create(ctx, want); err != nil {
		return fmt.Errorf("create EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
	}
	r.count("EndpointSlice", "create")
	return nil
}

func sliceEqual(cur, want *discoveryv1.EndpointSlice) bool {
	return cur.AddressType == want.AddressType &&
		equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences) &&
		equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) &&
		equality.Semantic.DeepEqual(cur.Ports, want.Ports)
}

func (r *Reconciler) listSlices(ctx context.Context, key types.NamespacedName) ([]discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.Member.List(ctx, &list, client.InNamespace(key.Namespace), client.MatchingFields{indexImportSlices: key.Name}); err != nil {
		return nil, fmt.Errorf("list EndpointSlices of import %s: %w", key, err)
	}
	return list.Items, nil
}

// deleteSlices deletes all the import's slices.
func (r *Reconciler) deleteSlices(ctx context.Context, key types.NamespacedName) error {
	existing, err := r.listSlices(ctx, key)
	if err != nil {
		return err
	}
	return r.deleteListed(ctx, existing, nil)
}

// deleteListed deletes the slices of existing not named in keep.
func (r *Reconciler) deleteListed(ctx context.Context, existing []discoveryv1.EndpointSlice, keep map[string]bool) error {
	var errs []error
	for i := range existing {
		s := &existing[i]
		if keep[s.Name] {
			continue
		}
		if err := r.Member.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		r.count("EndpointSlice", "delete")
	}
	return errors.Join(errs...)
}

// Prime reserves the ClusterSetIPs of the ServiceImports that already
// exist, so a restarted agent keeps every address (and writes nothing).
// Addresses outside the range or taken twice are reallocated by Reconcile.
func (r *Reconciler) Prime(ctx context.Context, reader client.Reader) error {
	var list mcsv1beta1.ServiceImportList
	if err := reader.List(ctx, &list, client.MatchingLabels{LabelManagedBy: managedByValue}); err != nil {
		return fmt.Errorf("list ServiceImports: %w", err)
	}
	for _, si := range list.Items {
		if len(si.Spec.IPs) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(si.Spec.IPs[0])
		if err != nil {
			continue
		}
		_ = r.IPs.Reserve(client.ObjectKeyFromObject(&si).String(), ip)
	}
	return nil
}

// indexImportSlices indexes the agent's own EndpointSlices by the import
// they belong to, so reconciling one import does not scan every slice of
// the namespace.
const indexImportSlices = "causeway.dev/import-slices"

// SetupWithManager registers the reconciler; hub is the hub cluster, whose
// cache holds the GlobalServices.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, hub cluster.Cluster) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, indexImportSlices, func(o client.Object) []string {
		l := o.GetLabels()
		if l[discoveryv1.LabelManagedBy] != causewayv1alpha1.ManagedByAgent || l[mcsv1beta1.LabelServiceName] == "" {
			return nil
		}
		return []string{l[mcsv1beta1.LabelServiceName]}
	}); err != nil {
		return fmt.Errorf("index import EndpointSlices: %w", err)
	}
	byGlobal := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, gs *causewayv1alpha1.GlobalService) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: gs.Spec.Service.Namespace, Name: gs.Spec.Service.Name}}}
	})
	byImportName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[mcsv1beta1.LabelServiceName]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	})
	// A namespace that appears (or goes) changes every import of it.
	byNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list causewayv1alpha1.GlobalServiceList
		if err := r.Hub.List(ctx, &list, client.InNamespace(causewayv1alpha1.SystemNamespace)); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list GlobalServices for a namespace event", "namespace", o.GetName())
			return nil
		}
		var out []reconcile.Request
		for _, gs := range list.Items {
			if gs.Spec.Service.Namespace == o.GetName() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: gs.Spec.Service.Namespace, Name: gs.Spec.Service.Name}})
			}
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("serviceimport").
		// Hand edits of spec, labels or annotations are healed; the
		// reconciler's own status writes wake nothing.
		For(&mcsv1beta1.ServiceImport{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// Slices it creates itself need no second look; edits and deletions
		// by anyone else do.
		Watches(&discoveryv1.EndpointSlice{}, byImportName, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
		})).
		Watches(&corev1.Namespace{}, byNamespace).
		WatchesRawSource(source.Kind(hub.GetCache(), &causewayv1alpha1.GlobalService{}, byGlobal)).
		Complete(r)
}
