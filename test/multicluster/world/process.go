package world

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL. Control
// planes shut down in well under a second; echo workloads drain in-flight
// requests.
const stopGrace = 5 * time.Second

// Proc is one process of the world: a control-plane component or a
// workload. Its stdout and stderr go to a log file.
type Proc struct {
	// Name says what the process is, e.g. "c1/kube-apiserver".
	Name string
	// LogPath is the file holding its output.
	LogPath string

	cmd      *exec.Cmd
	logFile  *os.File
	done     chan struct{}
	waitErr  error
	stopping bool
	mu       sync.Mutex
}

// startProc starts bin with args and env inside ns, logging to
// logDir/<name>.log. onExit, if not nil, is called (from another goroutine)
// when the process exits without Stop having been called.
func startProc(ns *Namespace, name, logDir, bin string, args, env []string, onExit func(*Proc, error)) (*Proc, error) {
	logPath := filepath.Join(logDir, strings.ReplaceAll(name, "/", "_")+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	if err := ns.Start(cmd); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		p.waitErr = err
		stopping := p.stopping
		p.mu.Unlock()
		close(p.done)
		if !stopping && onExit != nil {
			onExit(p, err)
		}
	}()
	return p, nil
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after the grace
// period, and waits until the process is reaped. Stopping a process that has
// already exited is a no-op.
func (p *Proc) Stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Reap any child the process left behind in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Kill stops the process at once with SIGKILL, as a crash would, and waits
// until it is reaped. The world does not report it as an unexpected exit.
func (p *Proc) Kill() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string { return tailFile(p.LogPath, n) }

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer func() { _ = f.Close() }()
	const maxRead = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if st.Size() > maxRead {
		if _, err := f.Seek(st.Size()-maxRead, io.SeekStart); err != nil {
			return fmt.Sprintf("(no log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// ProcessError says that a process of the world exited on its own, with the
// end of its log.
type ProcessError struct {
	Name    string
	Err     error
	LogPath string
	Tail    string
}

func (e *ProcessError) Error() string {
	status := "exited"
	if e.Err != nil {
		status = e.Err.Error()
	}
	return fmt.Sprintf("%s exited unexpectedly (%s); log %s, last lines:\n%s", e.Name, status, e.LogPath, e.Tail)
}

func (e *ProcessError) Unwrap() error { return e.Err }

// processExited builds the error for p's unexpected exit.
func processExited(p *Proc, err error) error {
	if err == nil {
		err = errors.New("exit status 0")
	}
	return &ProcessError{Name: p.Name, Err: err, LogPath: p.LogPath, Tail: p.Tail(20)}
}
