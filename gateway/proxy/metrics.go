package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus series. No label ever comes from
// request data: clusters come from configuration and codes are numbers.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	localReplies  *prometheus.CounterVec
	retries       *prometheus.CounterVec
	retryOverflow prometheus.Counter
	overflow      *prometheus.CounterVec
	mirrored      *prometheus.CounterVec
	mirrorDropped prometheus.Counter
	tcpConns      *prometheus.CounterVec
	tcpBytes      *prometheus.CounterVec
	connRejected  *prometheus.CounterVec
	badRequests   *prometheus.CounterVec
	denied        *prometheus.CounterVec
	tunnels       *prometheus.CounterVec

	byCluster sync.Map // cluster name → *clusterSeries
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_requests_total", Help: "HTTP requests forwarded, by cluster and response code.",
		}, []string{"cluster", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "causeway_proxy_request_duration_seconds", Help: "Time to the response headers of forwarded HTTP requests.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"cluster"}),
		localReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_local_replies_total", Help: "Requests the proxy answered itself, by status.",
		}, []string{"code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_retries_total", Help: "Retried tries, by cluster.",
		}, []string{"cluster"}),
		retryOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_proxy_retry_budget_exhausted_total", Help: "Retries not made because the retry budget was spent.",
		}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_upstream_overflow_total", Help: "Requests refused by a circuit breaker, by cluster.",
		}, []string{"cluster"}),
		mirrored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_mirrored_requests_total", Help: "Requests copied to a mirror cluster.",
		}, []string{"cluster"}),
		mirrorDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_proxy_mirror_dropped_total", Help: "Mirror copies dropped because too many were in flight.",
		}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_tcp_connections_total", Help: "TCP connections proxied, by cluster and result.",
		}, []string{"cluster", "result"}),
		tcpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_tcp_bytes_total", Help: "Bytes proxied over TCP, by cluster and direction.",
		}, []string{"cluster", "direction"}),
		connRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_connections_rejected_total", Help: "Downstream connections closed at once, by reason.",
		}, []string{"reason"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_requests_denied_total", Help: "Requests refused by authentication (jwt) or authorization (rbac).",
		}, []string{"filter"}),
		tunnels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_hbone_tunnels_total", Help: "HBONE tunnels opened (outbound) and accepted or refused (inbound), by result.",
		}, []string{"direction", "result"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_proxy_bad_requests_total", Help: "HTTP/1 requests rejected for ambiguous or invalid framing, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.localReplies, m.retries, m.retryOverflow, m.overflow,
			m.mirrored, m.mirrorDropped, m.tcpConns, m.tcpBytes, m.connRejected, m.badRequests, m.denied, m.tunnels)
	}
	return m
}

// observe records one forwarded request. The per-cluster series are
// looked up once and cached: WithLabelValues hashes its labels on every
// call.
func (m *metrics) observe(cluster string, code int, start time.Time) {
	cs := m.cluster(cluster)
	cs.duration.Observe(time.Since(start).Seconds())
	if code >= 100 && code < 600 {
		if c := cs.codes[code].Load(); c != nil {
			(*c).Inc()
			return
		}
		c := m.requests.WithLabelValues(cluster, strconv.Itoa(code))
		cs.codes[code].Store(&c)
		c.Inc()
		return
	}
	m.requests.WithLabelValues(cluster, strconv.Itoa(code)).Inc()
}

type clusterSeries struct {
	duration prometheus.Observer
	codes    [600]atomic.Pointer[prometheus.Counter]
}

func (m *metrics) cluster(name string) *clusterSeries {
	if v, ok := m.byCluster.Load(name); ok {
		return v.(*clusterSeries)
	}
	v, _ := m.byCluster.LoadOrStore(name, &clusterSeries{duration: m.duration.WithLabelValues(name)})
	return v.(*clusterSeries)
}
