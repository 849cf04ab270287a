package xdsclient

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	tests := map[string]struct {
		attempt      int
		initial, max time.Duration
		want         time.Duration
	}{
		"first attempt":             {0, 200 * time.Millisecond, 10 * time.Second, 200 * time.Millisecond},
		"negative attempt":          {-3, 200 * time.Millisecond, 10 * time.Second, 200 * time.Millisecond},
		"doubles":                   {3, 200 * time.Millisecond, 10 * time.Second, 1600 * time.Millisecond},
		"capped":                    {6, 200 * time.Millisecond, 10 * time.Second, 10 * time.Second},
		"huge attempt stays capped": {1 << 20, 200 * time.Millisecond, 10 * time.Second, 10 * time.Second},
		"no overflow without a cap": {100, time.Second, math.MaxInt64, math.MaxInt64},
		"zero initial":              {5, 0, time.Second, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := backoffCeiling(tc.attempt, tc.initial, tc.max); got != tc.want {
				t.Errorf("backoffCeiling(%d, %v, %v) = %v, want %v", tc.attempt, tc.initial, tc.max, got, tc.want)
			}
		})
	}
}

func TestJitterIsBounded(t *testing.T) {
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	tests := map[string]struct {
		delay    func(randN func(int64) int64) time.Duration
		min, max time.Duration
	}{
		"reconnect, first attempt": {
			delay: func(r func(int64) int64) time.Duration {
				return fullJitter(backoffCeiling(0, DefaultInitialBackoff, DefaultMaxBackoff), r)
			},
			min: 0, max: DefaultInitialBackoff,
		},
		"reconnect, capped attempt": {
			delay: func(r func(int64) int64) time.Duration {
				return fullJitter(backoffCeiling(30, DefaultInitialBackoff, DefaultMaxBackoff), r)
			},
			min: 0, max: DefaultMaxBackoff,
		},
		"second identical NACK": {
			delay: func(r func(int64) int64) time.Duration {
				return nackDelay(1, DefaultInitialBackoff, DefaultMaxBackoff, r)
			},
			min: DefaultInitialBackoff / 2, max: DefaultInitialBackoff,
		},
		"many identical NACKs": {
			delay: func(r func(int64) int64) time.Duration {
				return nackDelay(40, DefaultInitialBackoff, DefaultMaxBackoff, r)
			},
			min: DefaultMaxBackoff / 2, max: DefaultMaxBackoff,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// The extremes of the random source reach the bounds exactly.
			if got := tc.delay(lowest); got != tc.min {
				t.Errorf("lowest draw: %v, want %v", got, tc.min)
			}
			if got := tc.delay(highest); got != tc.max {
				t.Errorf("highest draw: %v, want %v", got, tc.max)
			}
			// Real draws stay within them and do spread out.
			seen := map[time.Duration]bool{}
			for range 1000 {
				d := tc.delay(rand.Int64N)
				if d < tc.min || d > tc.max {
					t.Fatalf("delay %v outside [%v, %v]", d, tc.min, tc.max)
				}
				seen[d] = true
			}
			if len(seen) < 100 {
				t.Errorf("only %d distinct delays in 1000 draws: no jitter", len(seen))
			}
		})
	}
}

func TestFullJitterEdges(t *testing.T) {
	if got := fullJitter(0, rand.Int64N); got != 0 {
		t.Errorf("fullJitter(0) = %v, want 0", got)
	}
	if got := fullJitter(-time.Second, rand.Int64N); got != 0 {
		t.Errorf("fullJitter(-1s) = %v, want 0", got)
	}
	if got := fullJitter(math.MaxInt64, func(n int64) int64 { return n - 1 }); got != math.MaxInt64-1 {
		t.Errorf("fullJitter(MaxInt64) = %v, want no overflow", got)
	}
}

func TestNewDefaults(t *testing.T) {
	tests := map[string]struct {
		initial, max         time.Duration
		wantInitial, wantMax time.Duration
	}{
		"zero":               {0, 0, DefaultInitialBackoff, DefaultMaxBackoff},
		"set":                {time.Second, time.Minute, time.Second, time.Minute},
		"max below initial":  {time.Second, time.Millisecond, time.Second, time.Second},
		"negative is unset":  {-1, -1, DefaultInitialBackoff, DefaultMaxBackoff},
		"only initial given": {20 * time.Second, 0, 20 * time.Second, 20 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := New(Config{InitialBackoff: tc.initial, MaxBackoff: tc.max})
			if c.cfg.InitialBackoff != tc.wantInitial || c.cfg.MaxBackoff != tc.wantMax {
				t.Errorf("backoff = [%v, %v], want [%v, %v]", c.cfg.InitialBackoff, c.cfg.MaxBackoff, tc.wantInitial, tc.wantMax)
			}
		})
	}
}
