// Package daemon holds what every Causeway daemon's main does the same way
// and that needs nothing from Kubernetes: a JSON slog logger at a level
// given by flag, and a context cancelled by SIGINT or SIGTERM. The data
// plane's main uses it directly, so the proxy binary links no Kubernetes
// client code (package run adds that for the control plane's daemons).
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Logger returns a JSON logger on stderr at level ("debug", "info",
// "warn", "error").
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
