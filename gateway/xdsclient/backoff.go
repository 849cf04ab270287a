package xdsclient

import (
	"math"
	"time"
)

// backoffCeiling returns the bound of the delay before retry number attempt
// (0 for the first): min(max, initial·2^attempt). Negative attempts count
// as 0.
func backoffCeiling(attempt int, initial, max time.Duration) time.Duration {
	if initial <= 0 {
		return 0
	}
	d := initial
	for i := 0; i < attempt && d < max; i++ {
		if d > math.MaxInt64/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// fullJitter returns a delay drawn uniformly from [0, ceiling], the "full
// jitter" of https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/:
// proxies that lost the same server do not come back in lockstep. randN
// must return a value in [0, n).
func fullJitter(ceiling time.Duration, randN func(n int64) int64) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	if ceiling == math.MaxInt64 {
		return time.Duration(randN(math.MaxInt64))
	}
	return time.Duration(randN(int64(ceiling) + 1))
}

// nackDelay returns how long to hold the NACK of the repeat-th identical
// rejection in a row (repeat ≥ 1): drawn from [ceiling/2, ceiling] with
// ceiling = backoffCeiling(repeat-1). Unlike reconnection, a repeated
// rejection must never be retried at once, hence the floor.
func nackDelay(repeat int, initial, max time.Duration, randN func(n int64) int64) time.Duration {
	ceiling := backoffCeiling(repeat-1, initial, max)
	half := ceiling / 2
	return half + fullJitter(ceiling-half, randN)
}
