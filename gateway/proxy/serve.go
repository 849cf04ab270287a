package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/gateway/capture"
	"github.com/causeway-mesh/causeway/gateway/xdsclient"
	"github.com/causeway-mesh/causeway/internal/linkapi"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Options configure a whole causeway-proxy process (see Serve).
type Options struct {
	// Mode is sidecar or node.
	Mode string
	// XDSAddr is the agent's xDS server, a gRPC target, reached in
	// plaintext. With SDSAddr, an empty XDSAddr or SDSAddr itself makes
	// the ADS stream use the SDS port and its credentials (TLS verifying
	// the agent, the token on every stream): the agent serves xDS there
	// to authenticated proxies.
	XDSAddr string
	// NodeID identifies the proxy to the agent; Namespace and Pod describe
	// the workload a sidecar serves; Cluster is the member cluster's name.
	NodeID, Namespace, Pod, Cluster string
	// Bindings are explicit listeners; OutboundAddr overrides the capture
	// listener's address (see Config).
	Bindings     []Binding
	OutboundAddr string
	// Capture installs iptables REDIRECT rules in the proxy's network
	// namespace at start and removes them at exit; CaptureGID is the group
	// the proxy runs as, whose traffic is not captured.
	Capture    bool
	CaptureGID uint32
	// AdminAddr serves /ready, /healthz, /config_dump and /metrics.
	AdminAddr    string
	DrainTimeout time.Duration

	// SDSAddr is the agent's SDS server (gRPC with TLS). With it the
	// proxy gets its SVID and trust bundle over SDS and speaks mutual TLS:
	// HBONE to endpoints marked for it and, in sidecar mode, an inbound
	// HBONE server. Empty: no identity.
	SDSAddr string
	// TokenFile holds the ServiceAccount token (audience "causeway") sent
	// as a bearer token on every SDS stream; read again for each stream,
	// as the kubelet rotates it.
	TokenFile string
	// TrustBundleFile holds the PEM roots that verify the agent's SDS
	// serving certificate (the mounted ConfigMap
	// causeway-system/causeway-trust-bundle, key roots.pem); read again
	// for each connection, as the bundle rotates.
	TrustBundleFile string
	// TrustDomain is the mesh's trust domain; when empty it is read from
	// the SPIFFE IDs of the roots in TrustBundleFile.
	TrustDomain string
	// ServiceAccount is the workload's ServiceAccount (node metadata
	// NodeMetaServiceAccount): the agent checks it against the token.
	ServiceAccount string
	// HBONEAddr is where the inbound HBONE server listens: ":15008" by
	// default in sidecar mode with SDS; "off" turns it off.
	HBONEAddr string
	// InboundAddr is where captured inbound plaintext arrives: ":15006" by
	// default when the HBONE server runs.
	InboundAddr string
	// PodIPs are the workload's addresses (tunnel targets must be one);
	// the addresses of the network namespace's interfaces, loopback
	// excluded, when empty.
	PodIPs []string
	// CaptureInbound, with Capture and the HBONE server, also redirects
	// inbound TCP to InboundAddr (except the HBONE and admin ports), so
	// that plaintext cannot reach the workload around the proxy.
	CaptureInbound bool
	// Link configures a gateway's cluster links (gateway mode).
	Link   LinkOptions
	Logger *slog.Logger `json:"-"`
	// Ready, if set, is called with the admin address once it listens.
	Ready func(adminAddr string) `json:"-"`
}

// Serve runs a proxy process until ctx is done, then drains.
func Serve(ctx context.Context, o Options) error {
	gateway := o.Mode == xdsconv.ModeGateway
	switch o.Mode {
	case xdsconv.ModeSidecar, xdsconv.ModeNode:
	case xdsconv.ModeGateway:
		if o.SDSAddr == "" || o.Cluster == "" {
			return errors.New("gateway mode needs --sds-addr (its identity) and --cluster")
		}
	default:
		return fmt.Errorf("mode %q: want %s, %s or %s", o.Mode, xdsconv.ModeSidecar, xdsconv.ModeNode, xdsconv.ModeGateway)
	}
	if o.NodeID == "" {
		host, _ := os.Hostname()
		o.NodeID = o.Mode + "~" + host
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store := NewStore()
	cfg := Config{
		Store: store, Bindings: o.Bindings, OutboundAddr: o.OutboundAddr, BindListeners: o.Mode == xdsconv.ModeSidecar || o.OutboundAddr != "",
		OriginalDst: capture.OriginalDst, DrainTimeout: o.DrainTimeout, Registerer: reg, Logger: log,
		Cluster: o.Cluster, ReservedPorts: adminPorts(o.AdminAddr),
	}
	source, err := sourceAddr(o)
	if err != nil {
		return err
	}
	cfg.SourceAddr = source
	xdsUpdates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_proxy_xds_updates_total", Help: "xDS responses, by type and result (ack or nack).",
	}, []string{"type", "result"})
	xdsConnected := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "causeway_proxy_xds_connected", Help: "1 while the proxy has a stream to the xDS server.",
	})
	sdsConnected := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "causeway_proxy_sds_connected", Help: "1 while the proxy has a stream to the SDS server.",
	})
	reg.MustRegister(xdsUpdates, xdsConnected, sdsConnected)
	var (
		sds       *xdsclient.Client
		eastWest  *eastWest
		hboneAddr string
	)
	xdsAddr := o.XDSAddr
	xdsCreds := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if o.SDSAddr != "" {
		var (
			err   error
			creds []grpc.DialOption
		)
		cfg.Identity, sds, creds, err = newSDSClient(o, log, xdsclient.Hooks{
			OnConnect:    func() { sdsConnected.Set(1) },
			OnDisconnect: func(error) { sdsConnected.Set(0) },
			OnAccept:     func(t, _ string) { xdsUpdates.WithLabelValues(shortType(t), "ack").Inc() },
			OnReject:     func(t, _ string, _ error) { xdsUpdates.WithLabelValues(shortType(t), "nack").Inc() },
		})
		if err != nil {
			return err
		}
		if xdsAddr == "" || xdsAddr == o.SDSAddr {
			xdsAddr, xdsCreds = o.SDSAddr, creds
		}
		store.UseSecrets(cfg.Identity)
		// The names the configuration uses may have changed.
		store.addHook(sds.Resubscribe)
		if gateway {
			hboneAddr = cmp.Or(o.HBONEAddr, ":"+strconv.Itoa(xdsconv.HBONEPort))
			o.Link.Addr = cmp.Or(o.Link.Addr, ":"+strconv.Itoa(xdsconv.LinkPort))
		}
		if o.Mode == xdsconv.ModeSidecar && o.HBONEAddr != "off" {
			cfg.HBONEAddr = cmp.Or(o.HBONEAddr, ":"+strconv.Itoa(xdsconv.HBONEPort))
			cfg.InboundAddr = cmp.Or(o.InboundAddr, ":"+strconv.Itoa(xdsconv.VirtualInboundPort))
			if cfg.PodAddrs, err = podAddrs(o.PodIPs); err != nil {
				return err
			}
			log.Info("inbound mutual TLS", "hbone", cfg.HBONEAddr, "inbound", cfg.InboundAddr, "podIPs", fmt.Sprint(cfg.PodAddrs))
		}
	}
	p := New(cfg)
	if gateway {
		eastWest = newEastWest(p, o.Cluster, cfg.Identity, cfg.SourceAddr, o.Link, reg, log)
	}
	if o.Capture {
		cc := captureConfig(o, cfg)
		if err := capture.Install(ctx, cc); err != nil {
			return fmt.Errorf("install capture rules: %w", err)
		}
		defer func() {
			if err := capture.Uninstall(context.WithoutCancel(ctx), cc); err != nil {
				log.Error("remove capture rules", "err", err)
			}
		}()
	}
	if xdsAddr == "" {
		return errors.New("no xDS server: set --xds-addr, or --sds-addr to get xDS from the agent's authenticated port")
	}
	meta, err := nodeMetadata(o, cfg.HBONEAddr != "")
	if err != nil {
		return err
	}
	log.Info("xDS server", "addr", xdsAddr, "authenticated", xdsAddr == o.SDSAddr && o.SDSAddr != "")
	client := xdsclient.New(xdsclient.Config{
		ServerAddress: xdsAddr,
		DialOptions: append(xdsCreds,
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		),
		Node: &corev3.Node{
			Id: o.NodeID, Cluster: o.Cluster, Metadata: meta,
			UserAgentName: "causeway-proxy", Locality: &corev3.Locality{},
		},
		Applier: store,
		Logger:  log,
		Hooks: xdsclient.Hooks{
			OnConnect:    func() { xdsConnected.Set(1) },
			OnDisconnect: func(error) { xdsConnected.Set(0) },
			OnAccept:     func(t, _ string) { xdsUpdates.WithLabelValues(shortType(t), "ack").Inc() },
			// The client logs rejections itself.
			OnReject: func(t, _ string, _ error) { xdsUpdates.WithLabelValues(shortType(t), "nack").Inc() },
		},
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	go func() { errc <- client.Run(ctx) }()
	if sds != nil {
		go func() { errc <- sds.Run(ctx) }()
	}
	if eastWest != nil {
		go func() {
			if err := eastWest.run(ctx, hboneAddr, nil); err != nil {
				errc <- fmt.Errorf("gateway: %w", err)
			}
		}()
	}
	var admin *http.Server
	if o.AdminAddr != "" {
		ln, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		status := func() any { return client.Status() }
		if sds != nil {
			status = func() any {
				version, secrets := cfg.Identity.Status()
				return map[string]any{"ads": client.Status(), "sds": sds.Status(), "secretsVersion": version, "secrets": secrets}
			}
		}
		handler := p.AdminHandler(reg, status)
		if eastWest != nil {
			mux := http.NewServeMux()
			mux.HandleFunc("GET "+linkapi.LinksPath, eastWest.serveLinks)
			mux.Handle("/", handler)
			handler = mux
		}
		admin = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- admin.Serve(ln) }()
		if o.Ready != nil {
			o.Ready(ln.Addr().String())
		}
	}
	proxyErr := make(chan error, 1)
	go func() { proxyErr <- p.Run(ctx) }()
	var runErr error
	select {
	case runErr = <-proxyErr:
		cancel()
	case err := <-errc:
		if ctx.Err() == nil && err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
			runErr = err
		}
		cancel()
		if err := <-proxyErr; runErr == nil {
			runErr = err
		}
	}
	if admin != nil {
		_ = admin.Close()
	}
	return runErr
}

// captureConfig is the capture rules of a proxy: outbound TCP to the
// outbound port (the proxy's group and the admin port excluded) and, when
// the proxy serves HBONE and CaptureInbound is set, inbound TCP to the
// inbound port, except the HBONE and admin ports, so that plaintext
// cannot reach the workload around the proxy.
func captureConfig(o Options, cfg Config) capture.Config {
	cc := capture.Config{ProxyGIDs: []uint32{o.CaptureGID}, ExcludeOutboundPorts: adminPorts(o.AdminAddr)}
	if p := portOf(cfg.OutboundAddr); p != 0 {
		cc.ProxyPort = p
	}
	if o.CaptureInbound && cfg.HBONEAddr != "" {
		cc.CaptureInbound = true
		cc.InboundPort = portOf(cfg.InboundAddr)
		cc.ExcludeInboundPorts = append(adminPorts(o.AdminAddr), portOf(cfg.HBONEAddr))
	}
	return cc
}

// nodeMetadata is the node metadata both xDS streams carry.
// hbone says the sidecar's HBONE server is on: the agent then sends
// other proxies to this pod through tunnels.
func nodeMetadata(o Options, hbone bool) (*structpb.Struct, error) {
	fields := map[string]any{xdsconv.NodeMetaMode: o.Mode, xdsconv.NodeMetaNamespace: o.Namespace, xdsconv.NodeMetaPod: o.Pod}
	if o.Mode == xdsconv.ModeGateway && o.AdminAddr != "" {
		fields[xdsconv.NodeMetaAdmin] = reachableAdmin(o)
	}
	if hbone {
		fields[xdsconv.NodeMetaHBONE] = "true"
	}
	if o.ServiceAccount != "" {
		fields[NodeMetaServiceAccount] = o.ServiceAccount
	}
	meta, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, fmt.Errorf("node metadata: %w", err)
	}
	return meta, nil
}

// sourceAddr is the source address of upstream dials: the pod's first IP
// when given explicitly (a gateway: else its HBONE address's IP), so that
// the proxy's traffic comes from the pod as a pod's does; none otherwise.
func sourceAddr(o Options) (netip.Addr, error) {
	for _, s := range o.PodIPs {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			a, err := netip.ParseAddr(f)
			if err != nil {
				return netip.Addr{}, fmt.Errorf("pod IP %q: %w", f, err)
			}
			return a, nil
		}
	}
	if o.Mode == xdsconv.ModeGateway {
		if host, _, err := net.SplitHostPort(o.HBONEAddr); err == nil && host != "" {
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
				return a, nil
			}
		}
	}
	return netip.Addr{}, nil
}

// reachableAdmin is the admin address the agent can reach: a wildcard
// host is replaced by the pod's address.
func reachableAdmin(o Options) string {
	host, port, err := net.SplitHostPort(o.AdminAddr)
	if err != nil {
		return o.AdminAddr
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		if src, err := sourceAddr(o); err == nil && src.IsValid() {
			return net.JoinHostPort(src.String(), port)
		}
	}
	return o.AdminAddr
}

func portOf(addr string) uint16 {
	if p := adminPorts(addr); len(p) == 1 {
		return p[0]
	}
	return 0
}

func adminPorts(addr string) []uint16 {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var p uint16
	if _, err := fmt.Sscan(port, &p); err != nil || p == 0 {
		return nil
	}
	return []uint16{p}
}

func shortType(t string) string {
	switch t {
	case resourcev3.ListenerType:
		return "LDS"
	case resourcev3.RouteType:
		return "RDS"
	case resourcev3.ClusterType:
		return "CDS"
	case resourcev3.EndpointType:
		return "EDS"
	case resourcev3.SecretType:
		return "SDS"
	}
	return t[strings.LastIndexByte(t, '.')+1:]
}
