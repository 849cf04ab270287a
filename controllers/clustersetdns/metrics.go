package clustersetdns

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts answered queries by response code. The rcode label takes
// at most maxCountedRcode+2 values (the names of rcodes 0..maxCountedRcode,
// and "other"), whatever clients send.
type metrics struct {
	byRcode [maxCountedRcode + 1]prometheus.Counter
	other   prometheus.Counter
}

// maxCountedRcode is the highest rcode (NOTZONE) with a label of its own.
const maxCountedRcode = dns.RcodeNotZone

// newMetrics creates the counter and registers it on reg, reusing a
// counter already registered there. A nil reg gives counters nobody
// collects.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_dns_queries_total",
		Help: "DNS queries answered by the agent's clusterset DNS server, by response code.",
	}, []string{"rcode"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register causeway_dns_queries_total: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("register causeway_dns_queries_total: a %T is already registered", are.ExistingCollector)
			}
			vec = existing
		}
	}
	m := &metrics{other: vec.WithLabelValues("other")}
	for rcode := range m.byRcode {
		m.byRcode[rcode] = vec.WithLabelValues(dns.RcodeToString[rcode])
	}
	return m, nil
}

// count records one answered query.
func (m *metrics) count(rcode int) {
	if rcode >= 0 && rcode < len(m.byRcode) {
		m.byRcode[rcode].Inc()
		return
	}
	m.other.Inc()
}
