package xds

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's and controller's Prometheus metrics.
type metrics struct {
	connected *prometheus.GaugeVec
	pushes    *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	build     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "causeway_xds_connected_proxies",
			Help: "Nodes with at least one open xDS stream, by kind (proxy, proxyless or gateway).",
		}, []string{"kind"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_pushes_total",
			Help: "xDS responses sent, state of the world and delta, by resource type.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_nacks_total",
			Help: "xDS responses that a node rejected, by resource type.",
		}, []string{"type"}),
		build: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causeway_xds_snapshot_build_seconds",
			Help:    "Time to gather inputs, translate them and set every node's snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms to 8 s
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connected, m.pushes, m.nacks, m.build} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register xDS metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) push(typeURL string) { m.pushes.WithLabelValues(shortType(typeURL)).Inc() }
