package proxy

import (
	"encoding/json"
	"net/http"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// AdminHandler serves the admin endpoint:
//
//	/ready        200 once the first complete configuration is applied and listeners are bound; 503 while draining
//	/healthz      200 while the process runs
//	/config_dump  the applied xDS resources and versions, as JSON (status from statusFn, e.g. the xDS client's)
//	/metrics      Prometheus metrics from gatherer
func (p *Proxy) AdminHandler(gatherer prometheus.Gatherer, statusFn func() any) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		dump := struct {
			Versions  map[string]string            `json:"versions"`
			Client    any                          `json:"xdsClient,omitempty"`
			Resources map[string][]json.RawMessage `json:"resources"`
		}{Versions: p.store.Versions(), Resources: map[string][]json.RawMessage{}}
		if statusFn != nil {
			dump.Client = statusFn()
		}
		for _, t := range []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType} {
			for _, msg := range p.store.Resources(t) {
				b, err := protojson.Marshal(redactKeys(msg))
				if err != nil {
					continue
				}
				dump.Resources[t] = append(dump.Resources[t], b)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(dump)
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// redactKeys returns msg with the private keys of its TLS transport
// sockets replaced, as Envoy's config dump does: the dump is for
// debugging, never a way to read a key.
func redactKeys(msg proto.Message) proto.Message {
	if len(transportSockets(msg)) == 0 {
		return msg
	}
	out := proto.Clone(msg) // the stored resources must not change
	redacted := &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
	for _, ts := range transportSockets(out) {
		inner, err := anypb.UnmarshalNew(ts.GetTypedConfig(), unmarshalOpts)
		if err != nil {
			ts.ConfigType = nil
			continue
		}
		var certs []*tlsv3.TlsCertificate
		switch c := inner.(type) {
		case *tlsv3.DownstreamTlsContext:
			certs = c.GetCommonTlsContext().GetTlsCertificates()
		case *tlsv3.UpstreamTlsContext:
			certs = c.GetCommonTlsContext().GetTlsCertificates()
		}
		for _, cert := range certs {
			if cert.GetPrivateKey() != nil {
				cert.PrivateKey = redacted
			}
			if cert.GetPassword() != nil {
				cert.Password = redacted
			}
		}
		if a, err := anypb.New(inner); err == nil {
			ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
		} else {
			ts.ConfigType = nil
		}
	}
	return out
}

// transportSockets returns the transport sockets of a listener or cluster.
func transportSockets(msg proto.Message) []*corev3.TransportSocket {
	var out []*corev3.TransportSocket
	switch m := msg.(type) {
	case *listenerv3.Listener:
		for _, fc := range m.GetFilterChains() {
			if ts := fc.GetTransportSocket(); ts != nil {
				out = append(out, ts)
			}
		}
		if ts := m.GetDefaultFilterChain().GetTransportSocket(); ts != nil {
			out = append(out, ts)
		}
	case *clusterv3.Cluster:
		if ts := m.GetTransportSocket(); ts != nil {
			out = append(out, ts)
		}
	}
	return out
}
