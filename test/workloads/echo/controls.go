package echo

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Limits on what a request may ask of the HTTP listener. They keep a
// misbehaving test from pinning a pod's memory or holding a connection for
// longer than any sensible test timeout.
const (
	// MaxDelay is the largest ?delay= accepted.
	MaxDelay = 30 * time.Second
	// MaxSize is the largest ?size= accepted, in bytes.
	MaxSize = 10 << 20
	// MaxRequestBody is the largest request body read; larger bodies get 413.
	MaxRequestBody = 10 << 20
)

// controls are the query parameters that steer an HTTP response.
type controls struct {
	status int           // response status; 200 unless ?status= is given
	delay  time.Duration // sleep before responding, 0 ≤ delay ≤ MaxDelay
	size   int64         // padding bytes to append, 0 ≤ size ≤ MaxSize
}

// parseControls reads status, delay and size from a raw query string. Other
// parameters are ignored, as are malformed pairs (as in url.URL.Query), so
// that a test can send arbitrary query strings through the mesh. A control
// given twice is an error rather than a silent pick of one value. Values
// outside the limits are rejected, not clamped: a test asking for a 60 s delay
// should learn at once that it will not get one.
func parseControls(rawQuery string) (controls, error) {
	c := controls{status: http.StatusOK}
	if rawQuery == "" {
		return c, nil
	}
	// The error is the first malformed pair; the valid pairs are still
	// returned, which is all we want.
	q, _ := url.ParseQuery(rawQuery)

	if v, ok, err := single(q, "status"); err != nil {
		return controls{}, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 200 || n > 599 {
			return controls{}, fmt.Errorf("status %q: want an integer from 200 to 599", v)
		}
		c.status = n
	}

	if v, ok, err := single(q, "delay"); err != nil {
		return controls{}, err
	} else if ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return controls{}, fmt.Errorf("delay %q: want a duration such as 200ms or 1.5s", v)
		}
		if d < 0 || d > MaxDelay {
			return controls{}, fmt.Errorf("delay %q: want from 0s to %s", v, MaxDelay)
		}
		c.delay = d
	}

	if v, ok, err := single(q, "size"); err != nil {
		return controls{}, err
	} else if ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > MaxSize {
			return controls{}, fmt.Errorf("size %q: want an integer number of bytes from 0 to %d", v, MaxSize)
		}
		c.size = n
	}
	return c, nil
}

// single returns the only value of key in q; ok is false if key is absent.
func single(q url.Values, key string) (v string, ok bool, err error) {
	vs := q[key]
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	default:
		return "", false, fmt.Errorf("%s given %d times: want it at most once", key, len(vs))
	}
}
