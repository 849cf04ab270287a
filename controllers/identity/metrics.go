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
package identity

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// sdsMetrics are the SDS server's Prometheus metrics.
type sdsMetrics struct {
	issued   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	nodes    prometheus.Gauge
}

func newSDSMetrics(reg prometheus.Registerer) (*sdsMetrics, error) {
	m := &sdsMetrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_identity_svids_issued_total",
			Help: "X509-SVIDs the agent signed, by kind (workload, gateway, or the agent's own serving certificate).",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_identity_sds_refused_total",
			Help: "SDS streams and requests refused, by gRPC status code.",
		}, []string{"code"}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_identity_sds_nodes",
			Help: "Nodes with at least one open SDS stream.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.issued, m.rejected, m.nodes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register identity metrics: %w", err)
		}
	}
	return m, nil
}
