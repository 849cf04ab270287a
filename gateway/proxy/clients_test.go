package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// The tests in this file drive the proxy with real, external client
// programs — curl, h2load and fortio — rather than with Go's own client,
// which shares net/http with the proxy and so would hide interoperability
// bugs on both sides. Each client runs under a timeout. A missing client is
// a failure, not a skip: .ci/run installs them.

const (
	// clientsHost is routed to cluster "echo" (HTTP/1.1 to the endpoint),
	// clientsH2Host to cluster "echo-h2" (h2c to the same endpoint).
	clientsHost   = "echo.default.svc.cluster.local"
	clientsH2Host = "echo-h2.default.svc.cluster.local"
	// clientTimeout bounds one client run; the load runs take about 4 s.
	clientTimeout = 60 * time.Second
)

// startClientsProxy runs an echo endpoint and a proxy whose "http" binding
// routes clientsHost and clientsH2Host to it.
func startClientsProxy(t *testing.T) *harness {
	t.Helper()
	be := startEcho(t, "echo-0", echo.ProtocolHTTP)
	h := startProxy(t)
	vhosts := []*routev3.VirtualHost{
		{Name: "echo", Domains: []string{clientsHost, clientsHost + ":80"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("echo")}}},
		{Name: "echo-h2", Domains: []string{clientsH2Host, clientsH2Host + ":80"}, Routes: []*routev3.Route{{Match: prefixMatch("/"), Action: routeTo("echo-h2")}}},
	}
	h.configure(t, "1", vhosts, map[string][]string{"echo": {be.addr}, "echo-h2": {be.addr}}, map[string]bool{"echo-h2": true}, "")
	return h
}

// requireTool returns the path of a client program, failing the test with
// the Debian package to install when it is missing.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing: install the Debian package %s (.ci/run does)", name, debianPackage)
	}
	return path
}

// requireFortio returns bin/fortio, built by make test-bins.
func requireFortio(t *testing.T) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		t.Fatalf("find bin/: %v", err)
	}
	path := filepath.Join(dir, "fortio")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing: run make test-bins", path)
	}
	return path
}

// binDir finds make's bin/ the way test/multicluster/world.FindBinDir
// does: $CAUSEWAY_BIN_DIR, else bin/ at the root of the module that holds
// the working directory. That package is not imported: it would pull
// controller-runtime into the data plane's test binary.
func binDir() (string, error) {
	if d := os.Getenv("CAUSEWAY_BIN_DIR"); d != "" {
		return filepath.Abs(d)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/causeway-mesh/causeway\n") {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/causeway-mesh/causeway above the working directory")
		}
		dir = parent
	}
}

// runClient runs a client program to completion under clientTimeout and
// returns its standard output; a non-zero exit fails the test with both
// outputs.
func runClient(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(path), strings.Join(args, " "), errors.Join(err, ctx.Err()), stdout.String(), tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// seen is what the echo endpoint reports about the request it received.
type seen struct {
	Pod       string      `json:"pod"`
	Method    string      `json:"method"`
	Path      string      `json:"path"`
	Query     string      `json:"query"`
	Host      string      `json:"host"`
	Proto     string      `json:"proto"`
	Headers   http.Header `json:"headers"`
	BodyBytes int64       `json:"bodyBytes"`
}

// curlResult is one curl transfer: the status, the HTTP version curl
// used ("1.1", "2") and the body.
type curlResult struct {
	status  int
	version string
	body    []byte
}

// curl runs one transfer; args are curl's options and the URL.
func curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	path := requireTool(t, "curl", "curl")
	out := filepath.Join(t.TempDir(), "body")
	all := append([]string{"--silent", "--show-error", "--max-time", "10", "--output", out, "--write-out", "%{http_code} %{http_version}"}, args...)
	meta := runClient(t, path, all...)
	var r curlResult
	if _, err := fmt.Sscan(meta, &r.status, &r.version); err != nil {
		t.Fatalf("curl %s: write-out %q: %v", strings.Join(args, " "), meta, err)
	}
	body, err := os.ReadFile(out)
	if err != nil && !errors.Is(err, os.ErrNotExist) { // no body, no file
		t.Fatal(err)
	}
	r.body = body
	return r
}

// echoed decodes the echo endpoint's report from a 200 response.
func (r curlResult) echoed(t *testing.T) seen {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", r.status, tail(string(r.body), 500))
	}
	var s seen
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("the body is not the echo endpoint's report: %v: %q", err, tail(string(r.body), 500))
	}
	if s.Pod != "echo-0" {
		t.Fatalf("served by pod %q, want echo-0", s.Pod)
	}
	return s
}

func TestCurlHTTP1ThroughExplicitBinding(t *testing.T) {
	h := startClientsProxy(t)
	url := "http://" + h.httpAddr

	t.Run("GET with Host header", func(t *testing.T) {
		r := curl(t, "--http1.1", "-H", "Host: "+clientsHost, url+"/get/x?a=1&b=2")
		s := r.echoed(t)
		if r.version != "1.1" || s.Method != http.MethodGet || s.Path != "/get/x" || s.Query != "a=1&b=2" || s.Host != clientsHost || s.Proto != "HTTP/1.1" {
			t.Fatalf("curl saw HTTP/%s; endpoint saw %+v", r.version, s)
		}
		if s.Headers.Get("X-Request-Id") == "" || s.Headers.Get("X-Forwarded-Proto") != "http" {
			t.Fatalf("the proxy's request headers are missing: %v", s.Headers)
		}
	})
	t.Run("GET with connect-to", func(t *testing.T) {
		// The URL names the service, as a client configured with the
		// proxy's address for it would; curl omits the default port.
		r := curl(t, "--http1.1", "--connect-to", clientsHost+":80:"+h.httpAddr, "http://"+clientsHost+"/connect-to")
		if s := r.echoed(t); s.Host != clientsHost || s.Path != "/connect-to" {
			t.Fatalf("endpoint saw %+v", s)
		}
	})
	t.Run("POST with a body", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "payload")
		payload := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16) // beyond the retry buffer
		if err := os.WriteFile(file, payload, 0o600); err != nil {
			t.Fatal(err)
		}
		r := curl(t, "--http1.1", "-H", "Host: "+clientsHost, "-H", "Content-Type: application/octet-stream", "--data-binary", "@"+file, url+"/post")
		if s := r.echoed(t); s.Method != http.MethodPost || s.BodyBytes != int64(len(payload)) || s.Path != "/post" {
			t.Fatalf("endpoint saw %s %s with %d body bytes, want POST /post with %d", s.Method, s.Path, s.BodyBytes, len(payload))
		}
		// The same body chunked: curl sends it in chunks; the endpoint must
		// see every byte.
		r = curl(t, "--http1.1", "-H", "Host: "+clientsHost, "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+file, url+"/chunked")
		if s := r.echoed(t); s.Method != http.MethodPost || s.BodyBytes != int64(len(payload)) {
			t.Fatalf("chunked: endpoint saw %s with %d body bytes, want POST with %d", s.Method, s.BodyBytes, len(payload))
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		if r := curl(t, "--http1.1", "-H", "Host: nothing.example", url+"/"); r.status != http.StatusNotFound {
			t.Fatalf("status %d for a host no virtual host has, want 404", r.status)
		}
	})
}

func TestCurlHTTP2PriorKnowledge(t *testing.T) {
	h := startClientsProxy(t)
	for _, tc := range []struct {
		name, host, upstreamProto string
	}{
		{"to an HTTP/1.1 cluster", clientsHost, "HTTP/1.1"},
		{"to an HTTP/2 cluster", clientsH2Host, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := curl(t, "--http2-prior-knowledge", "--connect-to", tc.host+":80:"+h.httpAddr, "http://"+tc.host+"/h2?x=y")
			s := r.echoed(t)
			if r.version != "2" || s.Method != http.MethodGet || s.Path != "/h2" || s.Host != tc.host || s.Proto != tc.upstreamProto {
				t.Fatalf("curl saw HTTP/%s; endpoint saw %+v; want HTTP/2 and %s", r.version, s, tc.upstreamProto)
			}
			// A Host header becomes the :authority.
			r = curl(t, "--http2-prior-knowledge", "-H", "Host: "+tc.host, "--data-binary", "hello over h2", "http://"+h.httpAddr+"/h2-post")
			if s := r.echoed(t); r.version != "2" || s.Method != http.MethodPost || s.BodyBytes != int64(len("hello over h2")) || s.Host != tc.host {
				t.Fatalf("POST: curl saw HTTP/%s; endpoint saw %+v", r.version, s)
			}
		})
	}
}

// h2loadSummary matches h2load's closing lines, e.g.
//
//	requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout
//	status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx
var (
	h2loadRequests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadCodes    = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

func TestH2loadThroughProxy(t *testing.T) {
	h := startClientsProxy(t)
	path := requireTool(t, "h2load", "nghttp2-client")
	for _, tc := range []struct{ name, host string }{
		{"to an HTTP/1.1 cluster", clientsHost},
		{"to an HTTP/2 cluster", clientsH2Host},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runClient(t, path, "-n", "2000", "-c", "4", "-m", "10", "-H", ":authority: "+tc.host, "http://"+h.httpAddr+"/h2load")
			req := h2loadRequests.FindStringSubmatch(out)
			codes := h2loadCodes.FindStringSubmatch(out)
			if req == nil || codes == nil {
				t.Fatalf("no summary in h2load's output:\n%s", out)
			}
			n := func(s string) int { v, _ := strconv.Atoi(s); return v }
			total, succeeded, failed, errored, timeout := n(req[1]), n(req[4]), n(req[5]), n(req[6]), n(req[7])
			if total != 2000 || succeeded != 2000 || failed != 0 || errored != 0 || timeout != 0 || n(codes[1]) != 2000 {
				t.Fatalf("h2load: %s; %s\n%s", req[0], codes[0], out)
			}
		})
	}
}

// fortioResult is the part of fortio's JSON result the tests read.
type fortioResult struct {
	RetCodes                map[string]int64
	DurationHistogram       struct{ Count int64 }
	ErrorsDurationHistogram struct{ Count int64 }
}

func TestFortioLoadThroughProxy(t *testing.T) {
	h := startClientsProxy(t)
	fortio := requireFortio(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"HTTP/1.1", nil},
		{"h2c", []string{"-h2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"load", "-quiet", "-qps", "500", "-c", "4", "-n", "2000", "-H", "Host: " + clientsHost, "-json", "-"}, tc.flags...)
			out := runClient(t, fortio, append(args, "http://"+h.httpAddr+"/fortio")...)
			var r fortioResult
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("fortio's JSON result: %v\n%s", err, tail(out, 2000))
			}
			if r.DurationHistogram.Count != 2000 || r.RetCodes["200"] != 2000 || r.ErrorsDurationHistogram.Count != 0 {
				t.Fatalf("fortio: %d calls, codes %v, %d errors; want 2000 calls, all 200", r.DurationHistogram.Count, r.RetCodes, r.ErrorsDurationHistogram.Count)
			}
		})
	}
}
