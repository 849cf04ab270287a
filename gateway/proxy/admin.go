package proxy

import (
	"encoding/json"
	"net/http"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
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
				b, err := protojson.Marshal(msg)
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
