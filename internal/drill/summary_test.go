package drill

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAnalyze(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(conn, sent, done int, cluster string) Record {
		return Record{Conn: conn, Sent: at(sent), Done: at(done), Cluster: cluster}
	}
	fail := func(conn, sent, done int, why string) Record {
		return Record{Conn: conn, Sent: at(sent), Done: at(done), Err: why}
	}
	opts := Options{Rate: 10, Connections: 2, Settle: 3}
	tests := []struct {
		name           string
		rs             []Record
		tl             Timeline
		failed         int
		failedBefore   int
		maxPerConn     int
		window         time.Duration
		failover       *time.Duration
		failback       *time.Duration
		servedDuring   map[string]int
		failureReasons map[string]int
	}{
		{
			name: "clean failover and failback",
			rs: []Record{
				ok(0, 0, 10, "east"), ok(1, 50, 60, "north"),
				ok(0, 1100, 1110, "north"), ok(1, 1150, 1160, "north"), ok(0, 1200, 1210, "north"),
				ok(0, 5100, 5110, "north"), ok(1, 5200, 5210, "east"),
			},
			tl:           Timeline{Injected: at(1000), Restored: at(5000)},
			failover:     new(100 * time.Millisecond),
			failback:     new(200 * time.Millisecond),
			servedDuring: map[string]int{"north": 3},
		},
		{
			name: "an in-flight request fails: the window starts at the fault",
			rs: []Record{
				ok(0, 0, 10, "east"),
				fail(1, 900, 1400, "timeout"),
				ok(0, 1100, 1110, "north"), ok(0, 1200, 1210, "north"), ok(0, 1300, 1310, "north"),
			},
			tl:             Timeline{Injected: at(1000)},
			failed:         1,
			maxPerConn:     1,
			window:         400 * time.Millisecond,
			failover:       new(100 * time.Millisecond),
			servedDuring:   map[string]int{"north": 3},
			failureReasons: map[string]int{"timeout": 1},
		},
		{
			name: "a success on the failing cluster breaks the run; failures count per connection",
			rs: []Record{
				fail(0, 10, 20, "status 503"), // before the fault: not in the window
				ok(1, 20, 30, "east"),
				fail(0, 1010, 1020, "status 503"), fail(0, 1110, 1120, "status 503"),
				ok(1, 1150, 1160, "north"), ok(1, 1200, 1210, "east"),
				ok(1, 1300, 1310, "north"), ok(0, 1400, 1410, "north"), ok(1, 1500, 1510, "north"),
			},
			tl:             Timeline{Injected: at(1000)},
			failed:         2,
			failedBefore:   1,
			maxPerConn:     2,
			window:         110 * time.Millisecond,
			failover:       new(300 * time.Millisecond),
			servedDuring:   map[string]int{"north": 4, "east": 1},
			failureReasons: map[string]int{"status 503": 2},
		},
		{
			name: "no failover yet, no restore",
			rs: []Record{
				ok(0, 1100, 1110, "north"), ok(0, 1200, 1210, "north"),
			},
			tl:           Timeline{Injected: at(1000)},
			servedDuring: map[string]int{"north": 2},
		},
		{
			name: "nothing injected: every record is before",
			rs:   []Record{ok(0, 0, 10, "east"), fail(1, 5, 15, "timeout")},
			tl:   Timeline{}, failedBefore: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Analyze(tc.rs, tc.tl, "east", "test", opts)
			if s.Requests != len(tc.rs) || s.Failed != tc.failed || s.FailedBeforeFault != tc.failedBefore || s.MaxFailedPerConnection != tc.maxPerConn {
				t.Errorf("requests/failed/before/perConn = %d/%d/%d/%d, want %d/%d/%d/%d", s.Requests, s.Failed, s.FailedBeforeFault, s.MaxFailedPerConnection, len(tc.rs), tc.failed, tc.failedBefore, tc.maxPerConn)
			}
			if s.ErrorWindow() != tc.window {
				t.Errorf("error window = %s, want %s", s.ErrorWindow(), tc.window)
			}
			checkDur(t, "failover", s.FailoverSeconds, tc.failover)
			checkDur(t, "failback", s.FailbackSeconds, tc.failback)
			if got := s.Served[PhaseDuring]; !equalCounts(got, tc.servedDuring) {
				t.Errorf("served during = %v, want %v", got, tc.servedDuring)
			}
			if !equalCounts(s.Failures, tc.failureReasons) {
				t.Errorf("failures = %v, want %v", s.Failures, tc.failureReasons)
			}
			var buf bytes.Buffer
			if err := s.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), "error window") || !strings.Contains(buf.String(), "east") {
				t.Errorf("text summary lacks its lines:\n%s", buf.String())
			}
		})
	}
}

func checkDur(t *testing.T, what string, got *float64, want *time.Duration) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, got, want)
	default:
		if d := time.Duration(*got * float64(time.Second)); d.Round(time.Millisecond) != *want {
			t.Errorf("%s = %s, want %s", what, d, *want)
		}
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDescribeRecent(t *testing.T) {
	now := time.Now()
	rs := []Record{
		{Sent: now, Done: now, Cluster: "east"},
		{Sent: now, Done: now, Err: "timeout"},
		{Sent: now, Done: now, Cluster: "north"},
		{Sent: now, Done: now, Err: "timeout"},
		{Sent: now, Done: now, Err: "status 503"},
	}
	if got, want := describeRecent(rs, 4), "last 4 requests: 1 served by north, failed: timeout (2), status 503 (1)"; got != want {
		t.Errorf("describeRecent = %q, want %q", got, want)
	}
	if got := describeRecent(nil, 4); got != "no request has ended yet" {
		t.Errorf("describeRecent(nil) = %q", got)
	}
}
