// Package agent wires the per-cluster agent: it finds the member's name
// (its cluster.clusterset.k8s.io ClusterProperty) and hub credentials (the
// Secret `causeway join` wrote), starts a controller-runtime manager for the
// member with a second cluster for the hub — cached only in the two hub
// namespaces the member may read — and runs the export and import
// controllers, the lease that tells the hub the member is alive, the
// clusterset.local DNS server, the xDS control plane of the member's
// data plane (with the member's link plan, read from the hub, for its
// east-west gateway) and the identity service (controllers/identity): the
// member's CA, loaded from the hub, signs its proxies' certificates,
// served over SDS.
//
// The agent connects out to the hub; the hub never needs credentials for
// the member. If the hub is unreachable the agent keeps its last realised
// state: informer caches keep their content, and nothing is deleted on a
// failed read.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/controllers/clustersetdns"
	"github.com/causeway-mesh/causeway/controllers/identity"
	"github.com/causeway-mesh/causeway/controllers/linkstatus"
	"github.com/causeway-mesh/causeway/controllers/serviceexport"
	"github.com/causeway-mesh/causeway/controllers/serviceimport"
	"github.com/causeway-mesh/causeway/controllers/xds"
	"github.com/causeway-mesh/causeway/internal/linkplan"
	"github.com/causeway-mesh/causeway/internal/scheme"
)

// ErrNotJoined means the member has no cluster ID or hub credentials.
var ErrNotJoined = errors.New("this cluster has not joined a cluster set; run `causeway join`")

// Client-side rate limits of the agent's clients.
const (
	clientQPS   = 1000
	clientBurst = 2000
	// workers per controller: reconciles wait on API round trips, so a few
	// run at once.
	workers = 16
)

// Defaults.
const (
	DefaultLeaseDuration     = 15 * time.Second
	DefaultClusterSetIPRange = "240.240.0.0/16"
)

// Config configures an agent.
type Config struct {
	// Member reaches the member cluster's API server.
	Member *rest.Config
	// LeaseDuration is the agent lease's duration; it renews every third.
	LeaseDuration time.Duration
	// ClusterSetIPRange is where ClusterSetIPs come from.
	ClusterSetIPRange netip.Prefix
	// DNSAddr serves clusterset.local DNS (UDP and TCP); "" disables it.
	DNSAddr string
	// XDSAddr serves xDS in plaintext, without authentication, to
	// proxyless gRPC clients and proxies without an identity; "" disables
	// it (operators who need no such clients close it that way).
	XDSAddr string
	// SDSAddr serves SDS and xDS (gRPC with TLS, every stream
	// authenticated by its ServiceAccount token) to the member's proxies:
	// their workload certificates, the trust bundle and their
	// configuration; "" disables it. The CA is loaded and the trust bundle
	// published either way.
	SDSAddr string
	// TokenAudience is the audience of the ServiceAccount tokens SDS
	// clients present; identity.DefaultAudience when empty.
	TokenAudience string
	// WorkloadCertTTL is the lifetime of workload certificates when the
	// MeshConfig sets none; identity.DefaultWorkloadCertTTL when zero.
	WorkloadCertTTL time.Duration
	// AgentNamespace and AgentServiceAccount name the agent's own
	// ServiceAccount, the identity of its SDS serving certificate;
	// causeway-system/causeway-agent when empty.
	AgentNamespace, AgentServiceAccount string
	// MetricsAddr and HealthAddr: "0" disables.
	MetricsAddr, HealthAddr string
	// LinkStatusGateways are gateways' admin addresses the link status
	// reporter asks besides the connected gateways (see
	// linkstatus.ParseGateways).
	LinkStatusGateways []linkstatus.Gateway
	// Version is reported on the lease.
	Version string
	// Logger for the agent's own lines (controllers log through logr).
	Logger *slog.Logger
}

// Identity is what the agent learns from its cluster at start-up.
type Identity struct {
	Cluster string
	Hub     *rest.Config
}

// Discover reads the member's cluster ID and hub credentials.
func Discover(ctx context.Context, member client.Reader) (*Identity, error) {
	var cp aboutv1alpha1.ClusterProperty
	if err := member.Get(ctx, client.ObjectKey{Name: aboutv1alpha1.ClusterIDPropertyName}, &cp); err != nil {
		return nil, fmt.Errorf("%w: read ClusterProperty %s: %w", ErrNotJoined, aboutv1alpha1.ClusterIDPropertyName, err)
	}
	var sec corev1.Secret
	if err := member.Get(ctx, client.ObjectKey{Namespace: causewayv1alpha1.SystemNamespace, Name: causewayv1alpha1.HubCredentialsSecret}, &sec); err != nil {
		return nil, fmt.Errorf("%w: read Secret %s/%s: %w", ErrNotJoined, causewayv1alpha1.SystemNamespace, causewayv1alpha1.HubCredentialsSecret, err)
	}
	hub, err := clientcmd.RESTConfigFromKubeConfig(sec.Data[causewayv1alpha1.HubCredentialsKey])
	if err != nil {
		return nil, fmt.Errorf("hub credentials in Secret %s/%s: %w", causewayv1alpha1.SystemNamespace, causewayv1alpha1.HubCredentialsSecret, err)
	}
	// client-go's default of 5 requests/s would hold 1,000 exports back
	// for minutes; the hub's API priority and fairness still protects it.
	hub.QPS, hub.Burst = clientQPS, clientBurst
	return &Identity{Cluster: cp.Spec.Value, Hub: hub}, nil
}

// Run runs the agent until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if !cfg.ClusterSetIPRange.IsValid() {
		cfg.ClusterSetIPRange = netip.MustParsePrefix(DefaultClusterSetIPRange)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := scheme.New()
	cfg.Member = rest.CopyConfig(cfg.Member)
	cfg.Member.QPS, cfg.Member.Burst = clientQPS, clientBurst
	direct, err := client.New(cfg.Member, client.Options{Scheme: s})
	if err != nil {
		return fmt.Errorf("member client: %w", err)
	}
	id, err := Discover(ctx, direct)
	if err != nil {
		return err
	}
	log := cfg.Logger.With("cluster", id.Cluster)
	memberNS := causewayv1alpha1.MemberNamespace(id.Cluster)
	if cfg.WorkloadCertTTL != 0 {
		if err := identity.CheckTTL(cfg.WorkloadCertTTL); err != nil {
			return err
		}
	}

	mgr, err := ctrl.NewManager(cfg.Member, ctrl.Options{
		Scheme: s,
		// The agent reads one ConfigMap, the trust bundle it publishes:
		// no cache of every ConfigMap in the cluster.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{causewayv1alpha1.SystemNamespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.TrustBundleConfigMap),
			},
		}},
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		Controller:             config.Controller{MaxConcurrentReconciles: workers},
	})
	if err != nil {
		return fmt.Errorf("create member manager: %w", err)
	}
	hub, err := cluster.New(id.Hub, func(o *cluster.Options) {
		o.Scheme = s
		// The member may read only its own namespace and the system
		// namespace on the hub.
		o.Cache.ByObject = map[client.Object]cache.ByObject{
			&causewayv1alpha1.ExportRecord{}:  {Namespaces: map[string]cache.Config{memberNS: {}}},
			&causewayv1alpha1.GlobalService{}: {Namespaces: map[string]cache.Config{causewayv1alpha1.SystemNamespace: {}}},
			// Only the member's CA Secret: the identity service's.
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{memberNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", identity.CASecretName),
			},
			// Only the member's link plan: the xDS controller's.
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{memberNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", linkplan.ConfigMapName),
			},
		}
	})
	if err != nil {
		return fmt.Errorf("create hub cluster client: %w", err)
	}
	if err := mgr.Add(hub); err != nil {
		return fmt.Errorf("add hub cluster: %w", err)
	}

	writes := newWriteCounter()
	if err := metrics.Registry.Register(writes.vec); err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	exports := &serviceexport.Reconciler{Member: mgr.GetClient(), Hub: hub.GetClient(), ClusterName: id.Cluster}
	if err := exports.SetupWithManager(mgr, hub); err != nil {
		return fmt.Errorf("set up export controller: %w", err)
	}
	ips, err := serviceimport.NewAllocator(cfg.ClusterSetIPRange)
	if err != nil {
		return err
	}
	imports := &serviceimport.Reconciler{Member: mgr.GetClient(), Reader: mgr.GetAPIReader(), Hub: hub.GetClient(), IPs: ips, Writes: writes.count}
	if err := imports.Prime(ctx, direct); err != nil {
		return err
	}
	if err := imports.SetupWithManager(mgr, hub); err != nil {
		return fmt.Errorf("set up import controller: %w", err)
	}
	hubDirect, err := client.New(id.Hub, client.Options{Scheme: s})
	if err != nil {
		return fmt.Errorf("hub client: %w", err)
	}
	lease := &leaseRenewer{hub: hubDirect, member: mgr.GetClient(), cluster: id.Cluster, duration: cfg.LeaseDuration, version: cfg.Version, log: log}
	if err := mgr.Add(manager.RunnableFunc(lease.run)); err != nil {
		return fmt.Errorf("add lease renewer: %w", err)
	}
	if cfg.DNSAddr != "" {
		dns := &clustersetdns.Server{Reader: mgr.GetClient(), Logger: log, Registerer: metrics.Registry}
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return dns.ListenAndServe(ctx, cfg.DNSAddr) })); err != nil {
			return fmt.Errorf("add DNS server: %w", err)
		}
	}
	var xdsServer *xds.Server
	if cfg.XDSAddr != "" || cfg.SDSAddr != "" {
		plan := &xds.LinkPlanSource{Cache: hub.GetCache(), Namespace: memberNS}
		if xdsServer, err = addXDS(mgr, cfg.XDSAddr, id.Cluster, plan, log); err != nil {
			return err
		}
		// Endpoints of pods whose sidecars announce HBONE are exported
		// as such.
		exports.HBONEPods = xdsServer.HBONEPods
		xdsServer.OnHBONEPodsChanged(exports.HBONEPodsChanged)
	}
	// The state of the gateways' links, for `causeway status`.
	gateways := func() []linkstatus.Gateway {
		if xdsServer == nil {
			return nil
		}
		var out []linkstatus.Gateway
		for _, g := range xdsServer.Gateways() {
			out = append(out, linkstatus.Gateway{Node: g.Node, AdminAddr: g.Admin})
		}
		return out
	}
	reporter, err := linkstatus.New(linkstatus.Options{
		Hub: hubDirect, Cluster: id.Cluster, Gateways: gateways, Static: cfg.LinkStatusGateways,
		Logger: logr.FromSlogHandler(log.Handler()).WithName("linkstatus"),
	})
	if err != nil {
		return err
	}
	if err := mgr.Add(reporter); err != nil {
		return fmt.Errorf("add link status reporter: %w", err)
	}
	authority, err := addIdentity(mgr, hub, cfg, id.Cluster, xdsServer, log)
	if err != nil {
		return err
	}
	if cfg.HealthAddr != "0" && cfg.HealthAddr != "" {
		if err := mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
			return fmt.Errorf("add health check: %w", err)
		}
		// Not ready until the member's CA has loaded from the hub.
		if err := mgr.AddReadyzCheck("identity", func(*http.Request) error { return authority.Ready() }); err != nil {
			return fmt.Errorf("add readiness check: %w", err)
		}
	}
	log.Info("agent starting", "hub", id.Hub.Host, "clusterSetIPRange", cfg.ClusterSetIPRange.String(), "dns", cfg.DNSAddr, "xds", cfg.XDSAddr, "sds", cfg.SDSAddr)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run agent: %w", err)
	}
	return nil
}

// addXDS adds the xDS server, serving in plaintext on addr unless it is
// empty, and the controller that feeds it, with the member's link plan
// from the hub.
func addXDS(mgr manager.Manager, addr, cluster string, plan *xds.LinkPlanSource, log *slog.Logger) (*xds.Server, error) {
	xlog := logr.FromSlogHandler(log.Handler()).WithName("xds")
	srv, err := xds.NewServer(xds.Options{Logger: xlog, Registerer: metrics.Registry})
	if err != nil {
		return nil, err
	}
	if addr != "" {
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return srv.ListenAndServe(ctx, addr) })); err != nil {
			return nil, fmt.Errorf("add xDS server: %w", err)
		}
	}
	// Region and zone of the member are not known to the agent yet (they
	// live on the hub's MemberCluster); local endpoints carry their zones.
	if err := mgr.Add(&xds.Controller{Client: mgr.GetClient(), Cache: mgr.GetCache(), Server: srv, ClusterName: cluster, Logger: xlog, LinkPlan: plan}); err != nil {
		return nil, fmt.Errorf("add xDS controller: %w", err)
	}
	return srv, nil
}

// addIdentity adds the CA reconciler and, with an SDS address, the SDS
// server, which also serves xs's xDS services to authenticated proxies.
func addIdentity(mgr manager.Manager, hub cluster.Cluster, cfg Config, clusterName string, xs *xds.Server, log *slog.Logger) (*identity.Authority, error) {
	ilog := logr.FromSlogHandler(log.Handler()).WithName("identity")
	authority := identity.NewAuthority()
	if err := (&identity.CAReconciler{Hub: hub.GetClient(), Member: mgr.GetClient(), ClusterName: clusterName, Authority: authority}).SetupWithManager(mgr, hub); err != nil {
		return nil, fmt.Errorf("set up identity CA controller: %w", err)
	}
	if cfg.SDSAddr == "" {
		return authority, nil
	}
	issuer := &identity.Issuer{Authority: authority, DefaultTTL: cfg.WorkloadCertTTL}
	if err := issuer.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up identity MeshConfig controller: %w", err)
	}
	auth := &identity.Authenticator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Audience: cfg.TokenAudience}
	srv, err := identity.NewSDSServer(identity.SDSOptions{
		Authority: authority, Issuer: issuer, Authenticator: auth, ClusterName: clusterName,
		AgentNamespace: cfg.AgentNamespace, AgentServiceAccount: cfg.AgentServiceAccount,
		Logger: ilog.WithName("sds"), Registerer: metrics.Registry,
		Register: xs.Register,
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return srv.ListenAndServe(ctx, cfg.SDSAddr) })); err != nil {
		return nil, fmt.Errorf("add SDS server: %w", err)
	}
	return authority, nil
}
