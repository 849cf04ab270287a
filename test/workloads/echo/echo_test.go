package echo

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var testID = Identity{Pod: "echo-0", Namespace: "demo", Cluster: "east", Node: "node-a", IP: "127.0.0.1"}

// testServer is a running Server bound to 127.0.0.1 on free ports.
type testServer struct {
	addrs []net.Addr
	stop  func() error // cancels Serve and returns its result; idempotent
}

func startServer(tb testing.TB, cfg Config) testServer {
	tb.Helper()
	if cfg.Identity == (Identity{}) {
		cfg.Identity = testID
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := Listen(cfg)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("Serve did not return within 20s of cancel")
		}
	})
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("stop: %v", err)
		}
	})
	return testServer{addrs: s.Addrs(), stop: stop}
}

func listeners(protocols ...string) []Listener {
	var ls []Listener
	for _, p := range protocols {
		ls = append(ls, Listener{Addr: "127.0.0.1:0", Protocol: p})
	}
	return ls
}

// logRecorder is a slog.Handler that remembers messages, so a test can wait
// for the server to reach a point it logs.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logRecorder) waitFor(tb testing.TB, msg string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		seen := slices.Contains(l.msgs, msg)
		l.mu.Unlock()
		if seen {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("log message %q not seen within 10s", msg)
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string // substring; empty means valid
	}{
		"all protocols": {cfg: Config{Listeners: []Listener{
			{Addr: "127.0.0.1:8080", Protocol: ProtocolHTTP},
			{Addr: "[::1]:9090", Protocol: ProtocolGRPC},
			{Addr: ":9000", Protocol: ProtocolTCP},
		}}},
		"no listeners":     {cfg: Config{}, wantErr: "no listeners"},
		"unknown protocol": {cfg: Config{Listeners: []Listener{{Addr: ":80", Protocol: "udp"}}}, wantErr: `unknown protocol "udp"`},
		"protocol case":    {cfg: Config{Listeners: []Listener{{Addr: ":80", Protocol: "HTTP"}}}, wantErr: "unknown protocol"},
		"missing port":     {cfg: Config{Listeners: []Listener{{Addr: "127.0.0.1", Protocol: ProtocolHTTP}}}, wantErr: "parse address"},
		"hostname":         {cfg: Config{Listeners: []Listener{{Addr: "localhost:80", Protocol: ProtocolHTTP}}}, wantErr: "IP address"},
		"service port":     {cfg: Config{Listeners: []Listener{{Addr: ":http", Protocol: ProtocolHTTP}}}, wantErr: "port must be a number"},
		"port too big":     {cfg: Config{Listeners: []Listener{{Addr: ":65536", Protocol: ProtocolHTTP}}}, wantErr: "port must be a number"},
		"negative grace": {cfg: Config{
			Listeners:     listeners(ProtocolHTTP),
			ShutdownGrace: -time.Second,
		}, wantErr: "negative"},
		"reports every bad listener": {cfg: Config{Listeners: []Listener{
			{Addr: ":80", Protocol: "udp"},
			{Addr: "nope", Protocol: ProtocolTCP},
		}}, wantErr: "nope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseListener(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    Listener
		wantErr bool
	}{
		"ipv4":          {in: "10.0.0.7:8080=http", want: Listener{Addr: "10.0.0.7:8080", Protocol: ProtocolHTTP}},
		"ipv6":          {in: "[fd00::7]:9090=grpc", want: Listener{Addr: "[fd00::7]:9090", Protocol: ProtocolGRPC}},
		"any host":      {in: ":9000=tcp", want: Listener{Addr: ":9000", Protocol: ProtocolTCP}},
		"no protocol":   {in: "10.0.0.7:8080", wantErr: true},
		"empty":         {in: "", wantErr: true},
		"bad protocol":  {in: ":1=quic", wantErr: true},
		"empty address": {in: "=http", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseListener(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseListener(%q) = %+v, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseListener(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func FuzzParseListener(f *testing.F) {
	for _, s := range []string{"10.0.0.7:8080=http", "[::1]:0=grpc", ":9000=tcp", "a=b=c", "=", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseListener(s)
		if err != nil {
			return
		}
		if err := l.validate(); err != nil {
			t.Fatalf("ParseListener(%q) accepted %+v, which does not validate: %v", s, l, err)
		}
		again, err := ParseListener(l.String())
		if err != nil || again != l {
			t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, l)
		}
	})
}

func TestRunRejectsBadConfigBeforeListening(t *testing.T) {
	// A valid listener first: if Run bound anything before validating, the
	// port would be taken when the test checks it below.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Run(ctx, Config{Identity: testID, Listeners: []Listener{
		{Addr: addr, Protocol: ProtocolHTTP},
		{Addr: "127.0.0.1:0", Protocol: "smtp"},
	}})
	if err == nil || !strings.Contains(err.Error(), `unknown protocol "smtp"`) {
		t.Fatalf("Run() = %v, want unknown protocol error", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s still bound after Run failed validation: %v", addr, err)
	}
	ln.Close()
}

func TestListenBindErrorNamesAddressAndReleasesOthers(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := probe.Addr().String()
	probe.Close()

	_, err = Listen(Config{Identity: testID, Listeners: []Listener{
		{Addr: free, Protocol: ProtocolHTTP},
		{Addr: taken.Addr().String(), Protocol: ProtocolTCP},
	}})
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Listen() = %v, want an error naming %s", err, taken.Addr())
	}
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("%s not released after a later bind failed: %v", free, err)
	}
	ln.Close()
}

func TestServeStopsAllProtocolsOnCancel(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP, ProtocolGRPC, ProtocolTCP)})
	// An idle TCP echo and an idle keep-alive HTTP connection must not hold
	// the stop for the grace period.
	tcp := dialTCP(t, srv.addrs[2])
	defer tcp.Close()
	resp := get(t, http.DefaultClient, "http://"+srv.addrs[0].String()+"/")
	resp.Body.Close()

	start := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil after cancel", err)
	}
	if took := time.Since(start); took >= DefaultShutdownGrace {
		t.Errorf("stop took %s, want it under the %s grace with only idle connections", took, DefaultShutdownGrace)
	}
	for _, a := range srv.addrs {
		if c, err := net.Dial("tcp", a.String()); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after stop", a)
		}
	}
}

func TestGracefulStopFinishesInflightRequest(t *testing.T) {
	rec := &logRecorder{}
	srv := startServer(t, Config{Listeners: listeners(ProtocolHTTP), Logger: slog.New(rec)})

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + srv.addrs[0].String() + "/slow?delay=300ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	rec.waitFor(t, "delaying response")

	if err := srv.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil", err)
	}
	r := <-done
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("in-flight request = %d, %v; want 200 after a graceful stop", r.status, r.err)
	}
}

func TestStopIsBoundedByGrace(t *testing.T) {
	rec := &logRecorder{}
	srv := startServer(t, Config{
		Listeners:     listeners(ProtocolHTTP),
		Logger:        slog.New(rec),
		ShutdownGrace: 100 * time.Millisecond,
	})
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + srv.addrs[0].String() + "/stuck?delay=30s")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	rec.waitFor(t, "delaying response")

	if err := srv.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil after a forced stop", err)
	}
	if err := <-done; err == nil {
		t.Fatal("request delayed 30s succeeded; want it cut off by the 100ms grace")
	}
}
