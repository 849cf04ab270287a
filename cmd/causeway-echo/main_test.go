package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

// runMainEnv makes the test binary act as causeway-echo, so the signal test
// exercises the real main without a separate go build.
const runMainEnv = "CAUSEWAY_ECHO_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{
		"POD_NAME": "web-0", "POD_NAMESPACE": "demo", "CLUSTER_NAME": "east",
		"NODE_NAME": "kwok-node-0", "POD_IP": "10.0.0.7",
	}
	fromEnv := echo.Identity{Pod: "web-0", Namespace: "demo", Cluster: "east", Node: "kwok-node-0", IP: "10.0.0.7"}
	tests := map[string]struct {
		args          []string
		env           map[string]string
		wantID        echo.Identity
		wantListeners []echo.Listener
		wantLevel     slog.Level
		wantErr       bool
	}{
		"env defaults and default listeners on the pod IP": {
			env: env, wantID: fromEnv,
			wantListeners: []echo.Listener{
				{Addr: "10.0.0.7:8080", Protocol: "http"},
				{Addr: "10.0.0.7:9090", Protocol: "grpc"},
				{Addr: "10.0.0.7:9000", Protocol: "tcp"},
			},
		},
		"flags override env, listen repeats": {
			args: []string{
				"--pod", "web-1", "--namespace", "prod", "--cluster", "west", "--node", "n2", "--ip", "10.1.0.9",
				"--listen", "10.1.0.9:80=http", "--listen", "[fd00::1]:50051=grpc", "--log-level", "debug",
			},
			env:    env,
			wantID: echo.Identity{Pod: "web-1", Namespace: "prod", Cluster: "west", Node: "n2", IP: "10.1.0.9"},
			wantListeners: []echo.Listener{
				{Addr: "10.1.0.9:80", Protocol: "http"},
				{Addr: "[fd00::1]:50051", Protocol: "grpc"},
			},
			wantLevel: slog.LevelDebug,
		},
		"no env, no ip: default listeners on every interface": {
			wantListeners: []echo.Listener{
				{Addr: ":8080", Protocol: "http"},
				{Addr: ":9090", Protocol: "grpc"},
				{Addr: ":9000", Protocol: "tcp"},
			},
		},
		"unknown protocol":       {args: []string{"--listen", ":80=udp"}, wantErr: true},
		"listen without proto":   {args: []string{"--listen", ":80"}, wantErr: true},
		"bad ip spoils defaults": {args: []string{"--ip", "not-an-ip"}, wantErr: true},
		"unknown flag":           {args: []string{"--port", "80"}, wantErr: true},
		"bad log level":          {args: []string{"--log-level", "loud"}, wantErr: true},
		"stray argument":         {args: []string{"serve"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stderr strings.Builder
			cfg, level, err := parseFlags(tc.args, func(k string) string { return tc.env[k] }, &stderr)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseFlags(%q) = %+v, want error", tc.args, cfg)
				}
				if stderr.Len() == 0 {
					t.Errorf("parseFlags(%q) failed without telling stderr", tc.args)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			if cfg.Identity != tc.wantID {
				t.Errorf("identity = %+v, want %+v", cfg.Identity, tc.wantID)
			}
			if !reflect.DeepEqual(cfg.Listeners, tc.wantListeners) {
				t.Errorf("listeners = %v, want %v", cfg.Listeners, tc.wantListeners)
			}
			if level != tc.wantLevel {
				t.Errorf("level = %v, want %v", level, tc.wantLevel)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	getenv := func(string) string { return "" }
	if code := run(t.Context(), []string{"--help"}, getenv, io.Discard); code != 0 {
		t.Errorf("--help exit = %d, want 0", code)
	}
	if code := run(t.Context(), []string{"--listen", "nope"}, getenv, io.Discard); code != 2 {
		t.Errorf("bad flag exit = %d, want 2", code)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if code := run(t.Context(), []string{"--listen", taken.Addr().String() + "=tcp"}, getenv, io.Discard); code != 1 {
		t.Errorf("bind failure exit = %d, want 1", code)
	}
}

func TestSIGTERMStopsGracefullyWithExitZero(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0=tcp", "--log-level", "debug")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "POD_NAME=web-0", "CLUSTER_NAME=east")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // Only if the test failed early.

	lines := make(chan map[string]any)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				rec = map[string]any{"msg": "non-JSON: " + sc.Text()}
			}
			lines <- rec
		}
	}()
	waitLog := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case rec, ok := <-lines:
				if !ok {
					t.Fatalf("stderr closed before %q was logged", msg)
				}
				if rec["msg"] == msg {
					return rec
				}
			case <-timeout:
				t.Fatalf("%q not logged within 20s", msg)
			}
		}
	}

	listening := waitLog("echo listening")
	addr, _ := listening["addr"].(string)
	if listening["cluster"] != "east" || listening["pod"] != "web-0" {
		t.Errorf("listening log = %v, want cluster east and pod web-0 from the environment", listening)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %q from the log: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || greeting != "causeway-echo east/web-0\n" {
		t.Fatalf("greeting = %q, %v", greeting, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog("echo stopped")
	for range lines { // Drain so Wait can finish reading stderr.
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("causeway-echo after SIGTERM: %v, want exit status 0", err)
	}
}
