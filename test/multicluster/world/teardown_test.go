package world

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a child that starts a world and then dies
// in the way the variable names; TestMain starts no shared world then.
const childEnv = "CAUSEWAY_WORLD_CHILD"

type childReport struct {
	PIDs []int
	Dir  string
}

// TestWorldChildProcess is the body of the child process of
// TestTeardownWhenTheProcessDies; run directly, it returns at once.
func TestWorldChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		return
	}
	w, err := Start(context.Background(), Options{Clusters: []ClusterSpec{{Name: "child"}}, NoWorkloads: true, HandleSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	var r childReport
	for _, p := range w.Procs() {
		r.PIDs = append(r.PIDs, p.PID())
	}
	r.Dir = w.Dir
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "panic":
		panic("the test panics with a world running")
	case "signal", "kill":
		select {} // until the parent's signal
	}
}

// TestTeardownWhenTheProcessDies: whether the process using a world gets
// Ctrl-C, panics in a test, or is killed outright, no process of the world
// survives it; its directory is removed at once, or (after SIGKILL, when
// nothing can run) by the next world.
func TestTeardownWhenTheProcessDies(t *testing.T) {
	for _, mode := range []string{"signal", "panic", "kill"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWorldChildProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			// The child's output (a panic, in one mode) is shown only if
			// the test fails.
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			defer func() {
				if t.Failed() {
					t.Logf("child's output:\n%s", stderr.String())
				}
			}()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var r childReport
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if json.Unmarshal(sc.Bytes(), &r) == nil && len(r.PIDs) > 0 {
					break
				}
			}
			if len(r.PIDs) < 5 {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the child reported %d processes, want its world's 5", len(r.PIDs))
			}
			switch mode {
			case "signal":
				_ = cmd.Process.Signal(syscall.SIGINT)
			case "kill":
				_ = cmd.Process.Kill()
			}
			go func() { _, _ = sc.Scan(), sc.Err() }()
			_ = cmd.Wait()

			deadline := time.Now().Add(10 * time.Second)
			for _, pid := range r.PIDs {
				for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("%s: pid %d of the child's world survives it", mode, pid)
				}
			}
			if mode == "kill" {
				removeStaleDirs() // what the next world does first
			}
			if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
				t.Errorf("%s: the child's world directory %s is left (stat: %v)", mode, r.Dir, err)
			}
		})
	}
}
