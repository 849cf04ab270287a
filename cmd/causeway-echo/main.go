// Command causeway-echo is Causeway's test workload: the process the test
// world starts for a kwok pod whose image is causeway.dev/echo. It serves
// HTTP (with h2c and WebSocket), gRPC and raw TCP echoes that report the
// pod's identity; see package test/workloads/echo.
//
// Usage:
//
//	causeway-echo [--listen ADDR=PROTO]... [--pod NAME] [--namespace NS]
//	    [--cluster NAME] [--node NAME] [--ip IP] [--log-level LEVEL]
//
// --listen may be repeated; PROTO is http, grpc or tcp. Without --listen it
// serves http on IP:8080, grpc on IP:9090 and tcp on IP:9000. The identity
// flags default to $POD_NAME, $POD_NAMESPACE, $CLUSTER_NAME, $NODE_NAME and
// $POD_IP. SIGTERM or SIGINT stops it gracefully with exit status 0; bad flags
// exit 2, a failure to serve exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/causeway-mesh/causeway/test/workloads/echo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns the process exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, level, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // parseFlags has printed the error.
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if cfg.Identity.Pod == "" || cfg.Identity.Cluster == "" {
		log.Warn("pod or cluster name empty; responses will not say who served them",
			"pod", cfg.Identity.Pod, "cluster", cfg.Identity.Cluster)
	}
	cfg.Logger = log
	if err := echo.Run(ctx, cfg); err != nil {
		log.Error("echo workload failed", "cluster", cfg.Identity.Cluster, "pod", cfg.Identity.Pod, "err", err)
		return 1
	}
	return 0
}

// listenFlag collects repeated --listen ADDR=PROTO values.
type listenFlag []echo.Listener

func (f *listenFlag) String() string { return fmt.Sprint([]echo.Listener(*f)) }

func (f *listenFlag) Set(s string) error {
	l, err := echo.ParseListener(s)
	if err != nil {
		return err
	}
	*f = append(*f, l)
	return nil
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (echo.Config, slog.Level, error) {
	fs := flag.NewFlagSet("causeway-echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       echo.Config
		listeners listenFlag
		level     slog.Level
		id        = &cfg.Identity
	)
	fs.Var(&listeners, "listen", "`ADDR=PROTO` to serve, PROTO one of http, grpc, tcp; repeatable (default IP:8080=http, IP:9090=grpc, IP:9000=tcp)")
	fs.StringVar(&id.Pod, "pod", getenv("POD_NAME"), "pod name reported to clients (env POD_NAME)")
	fs.StringVar(&id.Namespace, "namespace", getenv("POD_NAMESPACE"), "pod namespace (env POD_NAMESPACE)")
	fs.StringVar(&id.Cluster, "cluster", getenv("CLUSTER_NAME"), "cluster name (env CLUSTER_NAME)")
	fs.StringVar(&id.Node, "node", getenv("NODE_NAME"), "node name (env NODE_NAME)")
	fs.StringVar(&id.IP, "ip", getenv("POD_IP"), "pod IP; also the host of the default listeners (env POD_IP)")
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug (logs every request), info, warn or error")
	if err := fs.Parse(args); err != nil {
		return echo.Config{}, 0, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return echo.Config{}, 0, err
	}
	cfg.Listeners = listeners
	if len(cfg.Listeners) == 0 {
		cfg.Listeners = []echo.Listener{
			{Addr: net.JoinHostPort(id.IP, "8080"), Protocol: echo.ProtocolHTTP},
			{Addr: net.JoinHostPort(id.IP, "9090"), Protocol: echo.ProtocolGRPC},
			{Addr: net.JoinHostPort(id.IP, "9000"), Protocol: echo.ProtocolTCP},
		}
	}
	if err := cfg.Validate(); err != nil { // A bad --ip spoils the defaults.
		fmt.Fprintln(stderr, "causeway-echo:", err)
		return echo.Config{}, 0, err
	}
	return cfg, level, nil
}
