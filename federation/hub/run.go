package hub

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// Config configures the hub.
type Config struct {
	// REST reaches the hub cluster's API server.
	REST *rest.Config
	// GracePeriod: see MemberClusterReconciler.
	GracePeriod time.Duration
	// MetricsAddr serves Prometheus metrics ("0" disables).
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz ("0" disables).
	HealthAddr string
	// Trust configures the root CA, the members' intermediate CAs and the
	// trust bundle (its Clock defaults to Clock).
	Trust trust.Options
	// Clock, nil for the real one.
	Clock clock.PassiveClock
}

// Run runs the hub until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	restCfg := rest.CopyConfig(cfg.REST)
	// client-go's default of 5 requests/s would hold a burst of exports
	// back for minutes; API priority and fairness protects the server.
	restCfg.QPS, restCfg.Burst = 1000, 2000
	if cfg.Trust.Clock == nil {
		cfg.Trust.Clock = cfg.Clock
	}
	if err := cfg.Trust.Validate(); err != nil {
		return fmt.Errorf("trust settings: %w", err)
	}
	byObject := map[client.Object]cache.ByObject{
		// Only the agents' leases, not every lease of the hub cluster.
		&coordinationv1.Lease{}: {Field: fields.OneTermEqualSelector("metadata.name", causewayv1alpha1.AgentLeaseName)},
	}
	maps.Copy(byObject, cfg.Trust.CacheByObject())
	LinkPlanCache(byObject)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		// Reconciles wait on API round trips: a few run at once.
		Controller: config.Controller{MaxConcurrentReconciles: 16},
		Cache:      cache.Options{ByObject: byObject},
	})
	if err != nil {
		return fmt.Errorf("create hub manager: %w", err)
	}
	if err := ensureSystemNamespace(ctx, mgr.GetAPIReader(), mgr.GetClient()); err != nil {
		return err
	}
	if err := (&ServiceReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&MemberClusterReconciler{Client: mgr.GetClient(), GracePeriod: cfg.GracePeriod, Clock: cfg.Clock}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&LinkPlanReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := trust.Setup(mgr, cfg.Trust); err != nil {
		return err
	}
	if cfg.HealthAddr != "0" && cfg.HealthAddr != "" {
		if err := mgr.AddHealthzCheck("ping", func(_ *http.Request) error { return nil }); err != nil {
			return fmt.Errorf("add health check: %w", err)
		}
		if err := mgr.AddReadyzCheck("cache", func(r *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(r.Context()) {
				return fmt.Errorf("caches not synced")
			}
			return nil
		}); err != nil {
			return fmt.Errorf("add ready check: %w", err)
		}
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run hub: %w", err)
	}
	return nil
}

// ensureSystemNamespace creates the hub's SystemNamespace, which holds the
// GlobalServices, if it does not exist.
func ensureSystemNamespace(ctx context.Context, r client.Reader, c client.Client) error {
	var ns corev1.Namespace
	err := r.Get(ctx, client.ObjectKey{Name: causewayv1alpha1.SystemNamespace}, &ns)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", causewayv1alpha1.SystemNamespace, err)
	}
	ns = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}}
	if err := c.Create(ctx, &ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", causewayv1alpha1.SystemNamespace, err)
	}
	return nil
}
