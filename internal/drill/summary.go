package drill

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Timeline is when the drill injected and restored the fault; zero for a
// step not reached.
type Timeline struct {
	Injected, Restored time.Time
}

// Phases of the summary's Served counts.
const (
	PhaseBefore = "before" // sent before the fault
	PhaseDuring = "during" // sent between the fault and the restore
	PhaseAfter  = "after"  // sent after the restore
)

// Summary is what a drill measured. Durations are in seconds; a pointer is
// nil when the step it measures did not happen.
type Summary struct {
	Cluster     string  `json:"cluster"`
	Fault       string  `json:"fault"`
	Rate        float64 `json:"rate"`
	Connections int     `json:"connections"`

	// Requests is every request that ended; Failed those that failed
	// after the fault was injected, FailedBeforeFault those before.
	Requests          int `json:"requests"`
	Failed            int `json:"failed"`
	FailedBeforeFault int `json:"failedBeforeFault"`
	// MaxFailedPerConnection is the most failed requests (after the
	// fault) on one connection.
	MaxFailedPerConnection int `json:"maxFailedPerConnection"`

	// FailoverSeconds: from the fault to the first request of the run of
	// consecutive successes on other clusters.
	FailoverSeconds *float64 `json:"failoverSeconds,omitempty"`
	// ErrorWindowSeconds: from the first failure after the fault (or the
	// fault, for a request in flight when it came) to the end of the
	// last failure; 0 when nothing failed.
	ErrorWindowSeconds float64 `json:"errorWindowSeconds"`
	// FailbackSeconds: from the restore to the first request the
	// cluster served again.
	FailbackSeconds *float64 `json:"failbackSeconds,omitempty"`

	// Served counts successful requests by phase and serving cluster.
	Served map[string]map[string]int `json:"served"`
	// Failures counts failed requests (after the fault) by reason.
	Failures map[string]int `json:"failures,omitempty"`
}

// ErrorWindow is ErrorWindowSeconds as a duration.
func (s *Summary) ErrorWindow() time.Duration {
	return time.Duration(s.ErrorWindowSeconds * float64(time.Second))
}

func seconds(d time.Duration) *float64 {
	v := d.Seconds()
	return &v
}

// Analyze computes the summary of a drill from its records. cluster is the
// failing cluster; settle the run of successes elsewhere that marks the
// failover (Options.Settle).
func Analyze(rs []Record, t Timeline, cluster, fault string, o Options) *Summary {
	s := &Summary{
		Cluster: cluster, Fault: fault, Rate: o.Rate, Connections: o.Connections,
		Requests: len(rs),
		Served:   map[string]map[string]int{},
	}
	perConn := map[int]int{}
	var first, last time.Time
	for _, r := range rs {
		faulted := !t.Injected.IsZero() && !r.Done.Before(t.Injected)
		if r.Failed() {
			if !faulted {
				s.FailedBeforeFault++
				continue
			}
			s.Failed++
			perConn[r.Conn]++
			if s.Failures == nil {
				s.Failures = map[string]int{}
			}
			s.Failures[r.Err]++
			start := r.Sent
			if start.Before(t.Injected) {
				start = t.Injected
			}
			if first.IsZero() || start.Before(first) {
				first = start
			}
			if r.Done.After(last) {
				last = r.Done
			}
			continue
		}
		phase := PhaseBefore
		switch {
		case !t.Restored.IsZero() && !r.Sent.Before(t.Restored):
			phase = PhaseAfter
		case !t.Injected.IsZero() && !r.Sent.Before(t.Injected):
			phase = PhaseDuring
		}
		if s.Served[phase] == nil {
			s.Served[phase] = map[string]int{}
		}
		s.Served[phase][r.Cluster]++
	}
	for _, n := range perConn {
		s.MaxFailedPerConnection = max(s.MaxFailedPerConnection, n)
	}
	if s.Failed > 0 {
		s.ErrorWindowSeconds = last.Sub(first).Seconds()
	}
	if !t.Injected.IsZero() {
		if r := failoverStart(rs, t.Injected, cluster, o.Settle); r != nil {
			s.FailoverSeconds = seconds(r.Sent.Sub(t.Injected))
		}
	}
	if !t.Restored.IsZero() {
		if r := failbackAt(rs, t.Restored, cluster); r != nil {
			s.FailbackSeconds = seconds(r.Sent.Sub(t.Restored))
		}
	}
	return s
}

// bySent returns the records sent at or after from, in the order sent.
func bySent(rs []Record, from time.Time) []Record {
	var out []Record
	for _, r := range rs {
		if !r.Sent.Before(from) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int { return a.Sent.Compare(b.Sent) })
	return out
}

// failoverStart returns the first request of the first run of settle
// consecutive requests, sent after injected, that succeeded on another
// cluster than cluster; nil when there is none yet.
func failoverStart(rs []Record, injected time.Time, cluster string, settle int) *Record {
	sent := bySent(rs, injected)
	run := 0
	for i, r := range sent {
		if r.Failed() || r.Cluster == cluster {
			run = 0
			continue
		}
		if run++; run == settle {
			return &sent[i-settle+1]
		}
	}
	return nil
}

// failbackAt returns the first request sent after restored that cluster
// served; nil when there is none yet.
func failbackAt(rs []Record, restored time.Time, cluster string) *Record {
	sent := bySent(rs, restored)
	for i, r := range sent {
		if r.Cluster == cluster {
			return &sent[i]
		}
	}
	return nil
}

// describeRecent counts the outcomes of the last n records, for an error
// message: "last 20 requests: 12 served by east, 8 failed: timeout (8)".
func describeRecent(rs []Record, n int) string {
	if len(rs) == 0 {
		return "no request has ended yet"
	}
	rs = rs[max(0, len(rs)-n):]
	served, failed := map[string]int{}, map[string]int{}
	for _, r := range rs {
		if r.Failed() {
			failed[r.Err]++
		} else {
			served[r.Cluster]++
		}
	}
	parts := []string{}
	for _, c := range slices.Sorted(maps.Keys(served)) {
		parts = append(parts, fmt.Sprintf("%d served by %s", served[c], c))
	}
	if len(failed) > 0 {
		parts = append(parts, "failed: "+countList(failed))
	}
	return fmt.Sprintf("last %d requests: %s", len(rs), strings.Join(parts, ", "))
}

// countList renders counts as "a (3), b (1)", most frequent first.
func countList(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s (%d)", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the summary for a person.
func (s *Summary) WriteText(w io.Writer) error {
	dur := func(p *float64, missing string) string {
		if p == nil {
			return missing
		}
		return (time.Duration(*p * float64(time.Second))).Round(time.Millisecond).String()
	}
	served := func(phase string) string {
		m := s.Served[phase]
		if len(m) == 0 {
			return "-"
		}
		parts := []string{}
		for _, c := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s %d", c, m[c]))
		}
		return strings.Join(parts, ", ")
	}
	window := s.ErrorWindowSeconds
	lines := [][2]string{
		{"fault", fmt.Sprintf("%s in cluster %s", s.Fault, s.Cluster)},
		{"load", fmt.Sprintf("%g req/s over %d connections, %d requests", s.Rate, s.Connections, s.Requests)},
		{"failover", dur(s.FailoverSeconds, "did not happen")},
		{"error window", fmt.Sprintf("%s (%d failed, at most %d on one connection)", dur(&window, ""), s.Failed, s.MaxFailedPerConnection)},
		{"failback", dur(s.FailbackSeconds, "not measured")},
		{"served before", served(PhaseBefore)},
		{"served during", served(PhaseDuring)},
		{"served after", served(PhaseAfter)},
	}
	if len(s.Failures) > 0 {
		lines = append(lines, [2]string{"failures", countList(s.Failures)})
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "  %-14s %s\n", l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}
