package world

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNeedsRoot is returned when the process may not create a network
// namespace (it needs CAP_SYS_ADMIN, i.e. root).
var ErrNeedsRoot = errors.New("the test world creates a private network namespace and needs root (CAP_SYS_ADMIN)")

// Namespace is a private network namespace owned by this process. Nothing
// in it can reach the outside: it has only a loopback interface, on which
// the given prefixes are made local (AnyIP), so a process inside may bind
// any address of them and every packet stays in the namespace.
//
// The namespace is anchored to one OS thread that never returns to the Go
// scheduler's pool. Processes started through Start are forked from that
// thread, so they inherit the namespace and get SIGKILL (Pdeathsig) if this
// process dies, however it dies: teardown never depends on a deferred call
// running. Sockets for the host side (Dial, Listen) are made on short-lived
// locked threads that enter the namespace and are then destroyed.
type Namespace struct {
	reqs    chan func()
	exited  chan struct{}
	closeMu sync.Mutex
	closed  bool
	// fdMu guards nsFD (the namespace, held open by this process) against
	// Close while a thread is entering it; -1 once closed.
	fdMu sync.RWMutex
	nsFD int
}

// NewNamespace creates the namespace with lo up and each prefix routed as
// local on lo.
func NewNamespace(local []netip.Prefix) (*Namespace, error) {
	ns := &Namespace{reqs: make(chan func()), exited: make(chan struct{}), nsFD: -1}
	ready := make(chan error, 1)
	go ns.anchor(local, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return ns, nil
}

// anchor runs on the namespace's own thread until Close. It never unlocks
// the thread: when it returns, the runtime destroys the thread, and with it
// goes the Pdeathsig parent of every process started in the namespace.
func (ns *Namespace) anchor(local []netip.Prefix, ready chan<- error) {
	runtime.LockOSThread()
	defer close(ns.exited)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w: unshare: %w", ErrNeedsRoot, err)
		}
		ready <- fmt.Errorf("create network namespace: %w", err)
		return
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ready <- fmt.Errorf("open new network namespace: %w", err)
		return
	}
	ns.fdMu.Lock()
	ns.nsFD = fd
	ns.fdMu.Unlock()
	if err := setupLoopback(local); err != nil {
		ns.fdMu.Lock()
		ns.nsFD = -1
		ns.fdMu.Unlock()
		_ = unix.Close(fd)
		ready <- err
		return
	}
	ready <- nil
	for f := range ns.reqs {
		f()
	}
}

// setupLoopback brings lo up and routes each prefix as local on it, like
// `ip route add local PREFIX dev lo`. It must run inside the namespace.
func setupLoopback(local []netip.Prefix) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink in namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	for _, p := range local {
		route := &netlink.Route{
			LinkIndex: lo.Attrs().Index,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Type:      unix.RTN_LOCAL,
			Table:     unix.RT_TABLE_LOCAL,
			Scope:     netlink.SCOPE_HOST,
		}
		if err := h.RouteAdd(route); err != nil {
			return fmt.Errorf("route %s local on lo: %w", p, err)
		}
	}
	return nil
}

// do runs f on the namespace's anchor thread.
func (ns *Namespace) do(f func()) error {
	done := make(chan struct{})
	ns.closeMu.Lock()
	if ns.closed {
		ns.closeMu.Unlock()
		return errors.New("network namespace is closed")
	}
	ns.reqs <- func() { f(); close(done) }
	ns.closeMu.Unlock()
	<-done
	return nil
}

// Start starts cmd inside the namespace. The process gets its own process
// group and SIGKILL when this process dies. cmd.SysProcAttr is replaced.
func (ns *Namespace) Start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var err error
	if derr := ns.do(func() { err = cmd.Start() }); derr != nil {
		return derr
	}
	return err
}

// inside runs f on a thread that has entered the namespace. Sockets made by
// f belong to the namespace for their whole life. The thread is never
// handed back to the scheduler: the goroutine ends still locked, so the
// runtime destroys the thread. Returning it with a setns back to the host
// namespace would be cheaper, but a thread that failed to get back (or got
// "back" through a stale, reused fd) would leak the namespace into whatever
// runs on it next — a process forked from it would start inside the world.
func (ns *Namespace) inside(f func()) error {
	ns.fdMu.RLock()
	defer ns.fdMu.RUnlock()
	if ns.nsFD < 0 {
		return errors.New("network namespace is closed")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, on purpose: see above.
		if err := unix.Setns(ns.nsFD, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}

// DialContext connects to address inside the namespace. It has the
// signature of net.Dialer.DialContext, so it plugs into HTTP transports and
// client-go's rest.Config.Dial.
func (ns *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	var err error
	if ierr := ns.inside(func() {
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, address)
	}); ierr != nil {
		return nil, ierr
	}
	return conn, err
}

// Listen opens a listener inside the namespace.
func (ns *Namespace) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	var err error
	if ierr := ns.inside(func() { l, err = net.Listen(network, address) }); ierr != nil {
		return nil, ierr
	}
	return l, err
}

// Close releases the namespace. Processes still running in it are killed by
// their Pdeathsig as the anchor thread exits; callers stop them gracefully
// first.
func (ns *Namespace) Close() error {
	ns.closeMu.Lock()
	if ns.closed {
		ns.closeMu.Unlock()
		return nil
	}
	ns.closed = true
	close(ns.reqs)
	ns.closeMu.Unlock()
	<-ns.exited
	ns.fdMu.Lock()
	defer ns.fdMu.Unlock()
	fd := ns.nsFD
	ns.nsFD = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close namespace fd: %w", err)
	}
	return nil
}

// isRoot reports whether this process can create network namespaces.
func isRoot() bool { return os.Geteuid() == 0 }
