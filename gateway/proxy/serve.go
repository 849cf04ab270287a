package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

// Options configure a whole causeway-proxy process (see Serve).
type Options struct {
	// Mode is sidecar or node.
	Mode string
	// XDSAddr is the agent's xDS server, a gRPC target.
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
	Logger       *slog.Logger `json:"-"`
	// Ready, if set, is called with the admin address once it listens.
	Ready func(adminAddr string) `json:"-"`
}

// Serve runs a proxy process until ctx is done, then drains.
func Serve(ctx context.Context, o Options) error {
	switch o.Mode {
	case xdsconv.ModeSidecar, xdsconv.ModeNode:
	default:
		return fmt.Errorf("mode %q: want %s or %s (%s comes with the gateway)", o.Mode, xdsconv.ModeSidecar, xdsconv.ModeNode, xdsconv.ModeGateway)
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
	p := New(Config{
		Store: store, Bindings: o.Bindings, OutboundAddr: o.OutboundAddr, BindListeners: o.Mode == xdsconv.ModeSidecar || o.OutboundAddr != "",
		OriginalDst: capture.OriginalDst, DrainTimeout: o.DrainTimeout, Registerer: reg, Logger: log,
	})
	if o.Capture {
		cc := capture.Config{ProxyGIDs: []uint32{o.CaptureGID}, ExcludeOutboundPorts: adminPorts(o.AdminAddr)}
		if err := capture.Install(ctx, cc); err != nil {
			return fmt.Errorf("install capture rules: %w", err)
		}
		defer func() {
			if err := capture.Uninstall(context.WithoutCancel(ctx), cc); err != nil {
				log.Error("remove capture rules", "err", err)
			}
		}()
	}
	xdsUpdates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_proxy_xds_updates_total", Help: "xDS responses, by type and result (ack or nack).",
	}, []string{"type", "result"})
	xdsConnected := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "causeway_proxy_xds_connected", Help: "1 while the proxy has a stream to the xDS server.",
	})
	reg.MustRegister(xdsUpdates, xdsConnected)
	meta, err := structpb.NewStruct(map[string]any{
		xdsconv.NodeMetaMode: o.Mode, xdsconv.NodeMetaNamespace: o.Namespace, xdsconv.NodeMetaPod: o.Pod,
	})
	if err != nil {
		return fmt.Errorf("node metadata: %w", err)
	}
	client := xdsclient.New(xdsclient.Config{
		ServerAddress: o.XDSAddr,
		DialOptions: []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		},
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
	errc := make(chan error, 3)
	go func() { errc <- client.Run(ctx) }()
	var admin *http.Server
	if o.AdminAddr != "" {
		ln, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		admin = &http.Server{Handler: p.AdminHandler(reg, func() any { return client.Status() }), ReadHeaderTimeout: 10 * time.Second}
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
	}
	return t[strings.LastIndexByte(t, '.')+1:]
}
