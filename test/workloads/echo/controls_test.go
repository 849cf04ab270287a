package echo

import (
	"net/http"
	"testing"
	"time"
)

func TestParseControls(t *testing.T) {
	tests := map[string]struct {
		query   string
		want    controls
		wantErr bool
	}{
		"empty":             {query: "", want: controls{status: http.StatusOK}},
		"unrelated":         {query: "a=1&b", want: controls{status: http.StatusOK}},
		"all":               {query: "status=418&delay=1.5s&size=42", want: controls{status: 418, delay: 1500 * time.Millisecond, size: 42}},
		"limits inclusive":  {query: "status=599&delay=30s&size=10485760", want: controls{status: 599, delay: MaxDelay, size: MaxSize}},
		"lower limits":      {query: "status=200&delay=0&size=0", want: controls{status: 200}},
		"escaped value":     {query: "delay=200%6Ds", want: controls{status: http.StatusOK, delay: 200 * time.Millisecond}},
		"malformed ignored": {query: "x=%zz&status=302", want: controls{status: 302}},
		"empty status":      {query: "status=", wantErr: true},
		"status 1xx":        {query: "status=101", wantErr: true},
		"status 600":        {query: "status=600", wantErr: true},
		"status sign":       {query: "status=%2B200", want: controls{status: 200}},
		"status float":      {query: "status=200.0", wantErr: true},
		"delay no unit":     {query: "delay=5", wantErr: true},
		"delay over":        {query: "delay=30.001s", wantErr: true},
		"delay negative":    {query: "delay=-1ms", wantErr: true},
		"size over":         {query: "size=10485761", wantErr: true},
		"size negative":     {query: "size=-1", wantErr: true},
		"size overflow":     {query: "size=99999999999999999999", wantErr: true},
		"size twice":        {query: "size=1&size=1", wantErr: true},
		"delay twice":       {query: "delay=1s&delay=1s", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseControls(tc.query)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseControls(%q) = %+v, want error", tc.query, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseControls(%q) = %+v, %v; want %+v", tc.query, got, err, tc.want)
			}
		})
	}
}

func FuzzParseControls(f *testing.F) {
	for _, s := range []string{
		"", "status=503", "delay=200ms", "size=1024", "status=200&delay=1h&size=-3",
		"status=%35%30%33", "delay=1e9ns", "size=0x10", "a=1;b=2", "status=200&status=200",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		c, err := parseControls(query)
		if err != nil {
			if c != (controls{}) {
				t.Fatalf("parseControls(%q) returned %+v with error %v; want the zero value", query, c, err)
			}
			return
		}
		if c.status < 200 || c.status > 599 {
			t.Errorf("parseControls(%q): status %d outside 200–599", query, c.status)
		}
		if c.delay < 0 || c.delay > MaxDelay {
			t.Errorf("parseControls(%q): delay %s outside 0–%s", query, c.delay, MaxDelay)
		}
		if c.size < 0 || c.size > MaxSize {
			t.Errorf("parseControls(%q): size %d outside 0–%d", query, c.size, MaxSize)
		}
	})
}
