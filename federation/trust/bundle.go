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
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// The trust bundle ConfigMap on the hub.
const (
	// BundleConfigMapName is the ConfigMap in the hub's SystemNamespace
	// that publishes the trust bundle.
	BundleConfigMapName = "causeway-trust-bundle"
	// BundleKey holds every currently trusted root, PEM.
	BundleKey = "roots.pem"
	// AnnotationRoots is the bundle's schedule: for each root (by SHA-256
	// fingerprint), since when it is trusted and, for a root that is no
	// longer current, when it leaves the bundle. JSON; the hub's state,
	// not an interface.
	AnnotationRoots = "causeway.dev/roots"
)

// errInvalidTrustDomain marks a MeshConfig whose trust domain is not one.
var errInvalidTrustDomain = errors.New("invalid trust domain")

// scheduledRoot is one root of the bundle.
type scheduledRoot struct {
	cert *x509.Certificate
	// since is when the root joined the bundle.
	since time.Time
	// retireAt is zero for a root of the current CA; for a former one,
	// when it leaves the bundle.
	retireAt time.Time
}

// scheduleEntry is scheduledRoot as stored in AnnotationRoots.
type scheduleEntry struct {
	SHA256   string     `json:"sha256"`
	Since    time.Time  `json:"since"`
	RetireAt *time.Time `json:"retireAt,omitempty"`
}

// planBundle decides the next bundle from the previous one and the current
// CA's trust anchors, at now:
//
//   - current anchors come first, in the source's order, keeping the time
//     they joined the bundle (now for a new one);
//   - a root that was in the bundle but is no longer current stays for
//     retireAfter from the moment it stopped being current, then leaves;
//   - expired roots, and roots of another trust domain, leave at once.
//
// It returns the bundle and the next moment it changes by itself (zero if
// never). Times are whole seconds, as stored.
func planBundle(prev []scheduledRoot, current []*x509.Certificate, td spiffeid.TrustDomain, now time.Time, retireAfter time.Duration) (next []scheduledRoot, wake time.Time) {
	now = now.Truncate(time.Second)
	byFP := make(map[string]scheduledRoot, len(prev))
	for _, p := range prev {
		if _, dup := byFP[Fingerprint(p.cert)]; !dup {
			byFP[Fingerprint(p.cert)] = p
		}
	}
	seen := map[string]bool{}
	for _, c := range current {
		fp := Fingerprint(c)
		if seen[fp] {
			continue
		}
		seen[fp] = true
		since := now
		if p, ok := byFP[fp]; ok && !p.since.IsZero() {
			since = p.since
		}
		next = append(next, scheduledRoot{cert: c, since: since})
	}
	for _, p := range prev {
		fp := Fingerprint(p.cert)
		if seen[fp] {
			continue
		}
		seen[fp] = true
		retireAt := p.retireAt
		if retireAt.IsZero() {
			retireAt = now.Add(retireAfter).Truncate(time.Second)
		}
		if !now.Before(retireAt) || !now.Before(p.cert.NotAfter) {
			continue
		}
		if b, err := pki.NewBundle(td); err != nil || b.Add(p.cert) != nil {
			continue // another trust domain, or not a CA
		}
		since := p.since
		if since.IsZero() {
			since = now
		}
		next = append(next, scheduledRoot{cert: p.cert, since: since, retireAt: retireAt})
	}
	for _, n := range next {
		for _, t := range []time.Time{n.retireAt, n.cert.NotAfter} {
			if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
				wake = t
			}
		}
	}
	return next, wake
}

// parseBundle reads the bundle and its schedule from the ConfigMap. It is
// lenient: what it cannot read is left out (roots.pem) or unscheduled
// (AnnotationRoots), and the error says what; an unscheduled root is kept
// by planBundle as a former root, so damage never drops trust at once.
func parseBundle(cm *corev1.ConfigMap) ([]scheduledRoot, error) {
	if cm == nil || len(cm.Data[BundleKey]) == 0 {
		return nil, nil
	}
	var errs []error
	var certs []*x509.Certificate
	rest := []byte(cm.Data[BundleKey])
	for i := 0; ; i++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			errs = append(errs, fmt.Errorf("%s: PEM block %d is %q, want CERTIFICATE", BundleKey, i, block.Type))
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: PEM block %d: %w", BundleKey, i, err))
			continue
		}
		certs = append(certs, c)
	}
	var entries []scheduleEntry
	if s, ok := cm.Annotations[AnnotationRoots]; !ok {
		errs = append(errs, fmt.Errorf("annotation %s is missing", AnnotationRoots))
	} else if err := json.Unmarshal([]byte(s), &entries); err != nil {
		errs = append(errs, fmt.Errorf("annotation %s: %w", AnnotationRoots, err))
	}
	byFP := make(map[string]scheduleEntry, len(entries))
	for _, e := range entries {
		byFP[e.SHA256] = e
	}
	out := make([]scheduledRoot, 0, len(certs))
	for _, c := range certs {
		// An unscheduled root keeps zero times: planBundle treats it as
		// new if it is current and retires it otherwise.
		r := scheduledRoot{cert: c}
		if e, ok := byFP[Fingerprint(c)]; ok {
			r.since = e.Since
			if e.RetireAt != nil {
				r.retireAt = *e.RetireAt
			}
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// bundleData is the ConfigMap content for roots.
func bundleData(roots []scheduledRoot) (pemData string, schedule string) {
	certs := make([]*x509.Certificate, len(roots))
	entries := make([]scheduleEntry, len(roots))
	for i, r := range roots {
		certs[i] = r.cert
		entries[i] = scheduleEntry{SHA256: Fingerprint(r.cert), Since: r.since.UTC()}
		if !r.retireAt.IsZero() {
			t := r.retireAt.UTC()
			entries[i].RetireAt = &t
		}
	}
	js, err := json.Marshal(entries)
	if err != nil {
		// Only strings and times: Marshal cannot fail.
		panic(fmt.Sprintf("marshal bundle schedule: %v", err))
	}
	return string(encodeCertsPEM(certs...)), string(js)
}

// authority is the bundle reconciler's decision, which the intermediate
// reconciler acts on. It is immutable.
type authority struct {
	// reason and message, when reason is set, say why no intermediate can
	// be issued; the other fields are then empty.
	reason, message string

	td spiffeid.TrustDomain
	ca *pki.CA
	// roots is every root in the bundle; bundlePEM the same as PEM (a
	// member's ca.crt).
	roots     []*x509.Certificate
	bundlePEM []byte
	// reissueAt is when intermediates issued by another CA are replaced
	// by ones of ca: once every anchor of ca has been in the bundle for
	// the propagation delay, so that every member trusts ca's chain
	// before it sees a certificate under it.
	reissueAt time.Time
}

// same reports whether a and b call for the same intermediates.
func (a *authority) same(b *authority) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.reason != "" || b.reason != "" {
		return a.reason == b.reason && a.message == b.message
	}
	return a.td == b.td && a.ca.Certificate().Equal(b.ca.Certificate()) &&
		bytes.Equal(a.bundlePEM, b.bundlePEM) && a.reissueAt.Equal(b.reissueAt)
}

// Authority passes the bundle reconciler's decisions to the intermediate
// reconciler, and wakes the latter's members when a decision changes. Make
// one with NewAuthority; it is safe for concurrent use.
type Authority struct {
	mu  sync.RWMutex
	cur *authority
	// changed carries one pending "everything changed" event: a send
	// never blocks, and a pending event covers later ones.
	changed chan event.GenericEvent
}

// NewAuthority returns an Authority with no decision yet.
func NewAuthority() *Authority {
	return &Authority{changed: make(chan event.GenericEvent, 1)}
}

func (x *Authority) load() *authority {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.cur
}

// publish stores a and reports whether it differs from the last decision.
func (x *Authority) publish(a *authority) bool {
	x.mu.Lock()
	changed := !x.cur.same(a)
	x.cur = a
	x.mu.Unlock()
	if changed {
		select {
		case x.changed <- event.GenericEvent{Object: &corev1.ConfigMap{}}:
		default:
		}
	}
	return changed
}

// BundleReconciler decides the cluster set's trust: the trust domain, the
// root (from its RootSource) and the trust bundle, which it publishes in
// the bundle ConfigMap and passes on through Authority. It has one key:
// every event it watches maps to the bundle ConfigMap's name.
type BundleReconciler struct {
	Client client.Client
	// Source yields the root.
	Source RootSource
	// Authority receives every decision.
	Authority *Authority
	// TrustDomain is the trust domain when the hub has no MeshConfig.
	TrustDomain spiffeid.TrustDomain
	// Bundle names the bundle ConfigMap.
	Bundle types.NamespacedName
	// Overlap is how long a former root stays trusted after
	// intermediates move off it (at least the workload certificate
	// lifetime: see the package documentation).
	Overlap time.Duration
	// PropagationDelay is how long a new root is trusted before
	// intermediates move to it.
	PropagationDelay time.Duration
	// Clock is the time source; nil means the real one.
	Clock clock.PassiveClock
}

// Reconcile decides and publishes the bundle; the request is ignored.
func (r *BundleReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	now := clockOr(r.Clock).Now()
	td, workloadTTL, err := r.meshSettings(ctx)
	if errors.Is(err, errInvalidTrustDomain) {
		r.fail(ctx, ReasonInvalidTrustDomain, err)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	ca, anchors, err := r.Source.Root(ctx, td)
	if err == nil {
		err = checkRoot(ca, anchors, td, now)
	}
	switch {
	case errors.Is(err, ErrRootUnavailable):
		r.fail(ctx, ReasonRootUnavailable, err)
		return ctrl.Result{}, nil
	case errors.Is(err, ErrRootInvalid):
		r.fail(ctx, ReasonRootInvalid, err)
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}

	cm, prev, err := r.readBundle(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	retireAfter := r.PropagationDelay + max(r.Overlap, workloadTTL+pki.ClockSkew)
	next, wake := planBundle(prev, anchors, td, now, retireAfter)
	if err := r.writeBundle(ctx, cm, next); err != nil {
		return ctrl.Result{}, err
	}
	a := newAuthority(td, ca, next, anchors, r.PropagationDelay)
	if r.Authority.publish(a) {
		ctrl.LoggerFrom(ctx).Info("trust bundle decided", "trustDomain", td.String(), "ca", Fingerprint(ca.Certificate()),
			"roots", len(next), "reissueAt", a.reissueAt)
	}
	return requeueAt(now, wake, ca.NotAfter(), renewalTime(ca.Certificate())), nil
}

func newAuthority(td spiffeid.TrustDomain, ca *pki.CA, bundle []scheduledRoot, anchors []*x509.Certificate, delay time.Duration) *authority {
	a := &authority{td: td, ca: ca}
	var since time.Time
	for _, r := range bundle {
		a.roots = append(a.roots, r.cert)
		if slices.ContainsFunc(anchors, r.cert.Equal) && r.since.After(since) {
			since = r.since
		}
	}
	a.bundlePEM = encodeCertsPEM(a.roots...)
	a.reissueAt = since.Add(delay)
	return a
}

// fail publishes that no intermediate can be issued, and logs it once.
func (r *BundleReconciler) fail(ctx context.Context, reason string, err error) {
	if r.Authority.publish(&authority{reason: reason, message: err.Error()}) {
		ctrl.LoggerFrom(ctx).Error(err, "no intermediate CA can be issued until this is fixed", "reason", reason)
	}
}

// meshSettings returns the trust domain and workload certificate lifetime:
// the MeshConfig's, or the defaults without one.
func (r *BundleReconciler) meshSettings(ctx context.Context) (spiffeid.TrustDomain, time.Duration, error) {
	var mc causewayv1alpha1.MeshConfig
	err := r.Client.Get(ctx, types.NamespacedName{Name: causewayv1alpha1.MeshConfigName}, &mc)
	if apierrors.IsNotFound(err) {
		return r.TrustDomain, pki.DefaultWorkloadTTL, nil
	}
	if err != nil {
		return spiffeid.TrustDomain{}, 0, fmt.Errorf("get MeshConfig %s: %w", causewayv1alpha1.MeshConfigName, err)
	}
	td, err := parseTrustDomain(mc.Spec.TrustDomain)
	if err != nil {
		return spiffeid.TrustDomain{}, 0, fmt.Errorf("%w: MeshConfig %s: spec.trustDomain: %w", errInvalidTrustDomain, mc.Name, err)
	}
	ttl := pki.DefaultWorkloadTTL
	if mc.Spec.WorkloadCertTTL != nil && mc.Spec.WorkloadCertTTL.Duration > 0 {
		ttl = mc.Spec.WorkloadCertTTL.Duration
	}
	return td, ttl, nil
}

// readBundle returns the bundle ConfigMap (nil if missing) and its roots.
func (r *BundleReconciler) readBundle(ctx context.Context) (*corev1.ConfigMap, []scheduledRoot, error) {
	var cm corev1.ConfigMap
	if err := r.Client.Get(ctx, r.Bundle, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("get trust bundle ConfigMap %s: %w", r.Bundle, err)
	}
	roots, err := parseBundle(&cm)
	if err != nil {
		// Damage is healed by the write that follows; what could be
		// read stays trusted for now.
		ctrl.LoggerFrom(ctx).Info("trust bundle ConfigMap partly unreadable; rewriting it", "configMap", r.Bundle.String(), "problem", err.Error())
	}
	return &cm, roots, nil
}

// writeBundle makes the ConfigMap hold roots, writing only on a
// difference.
func (r *BundleReconciler) writeBundle(ctx context.Context, cm *corev1.ConfigMap, roots []scheduledRoot) error {
	pemData, schedule := bundleData(roots)
	if cm == nil {
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Bundle.Namespace, Name: r.Bundle.Name, Annotations: map[string]string{AnnotationRoots: schedule}},
			Data:       map[string]string{BundleKey: pemData},
		}
		if err := r.Client.Create(ctx, cm); err != nil {
			return fmt.Errorf("create trust bundle ConfigMap %s: %w", r.Bundle, err)
		}
		return nil
	}
	if cm.Data[BundleKey] == pemData && len(cm.Data) == 1 && cm.Annotations[AnnotationRoots] == schedule {
		return nil
	}
	next := cm.DeepCopy()
	next.Data = map[string]string{BundleKey: pemData}
	next.Annotations = maps.Clone(next.Annotations)
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Annotations[AnnotationRoots] = schedule
	if err := r.Client.Update(ctx, next); err != nil {
		return fmt.Errorf("update trust bundle ConfigMap %s: %w", r.Bundle, err)
	}
	return nil
}

// requeueAt is a Result that runs again at the earliest of times that is
// after now (none if there is none).
func requeueAt(now time.Time, times ...time.Time) ctrl.Result {
	var first time.Time
	for _, t := range times {
		if t.After(now) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	if first.IsZero() {
		return ctrl.Result{}
	}
	// A little late rather than early, so that the moment has passed.
	return ctrl.Result{RequeueAfter: first.Sub(now) + 10*time.Millisecond}
}
