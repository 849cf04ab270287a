package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
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
	return newNamespace(local, netip.Addr{})
}

// newNamespace is NewNamespace; when src is valid, it is an address of lo
// and the preferred source of every local route, so that a socket that
// does not bind its source address gets src, not the address it connects
// to (see setupLoopback).
func newNamespace(local []netip.Prefix, src netip.Addr) (*Namespace, error) {
	ns := &Namespace{reqs: make(chan func()), exited: make(chan struct{}), nsFD: -1}
	ready := make(chan error, 1)
	go ns.anchor(local, src, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return ns, nil
}

// anchor runs on the namespace's own thread until Close. It never unlocks
// the thread: when it returns, the runtime destroys the thread, and with it
// goes the Pdeathsig parent of every process started in the namespace.
func (ns *Namespace) anchor(local []netip.Prefix, src netip.Addr, ready chan<- error) {
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
	if err := setupLoopback(local, src); err != nil {
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

// setupLoopback brings lo up and routes each prefix as local on lo, like
// `ip route add local PREFIX dev lo`. It must run inside the namespace.
//
// With a valid src, src is first given to lo as an address of its own
// and every route gets it as its preferred source (`ip route add local
// PREFIX dev lo src SRC`). A socket that connects without binding takes
// its source address from the route: the route's preferred source, or
// else the destination itself. Without src, a process that connects to
// 10.1.0.5 unbound would appear to come from 10.1.0.5, a pod of cluster 1,
// and get through any rule that trusts cluster 1's pods; with it, it
// comes from src, which the caller keeps out of every cluster.
func setupLoopback(local []netip.Prefix, src netip.Addr) error {
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
	if src.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: src.AsSlice(), Mask: net.CIDRMask(src.BitLen(), src.BitLen())}}
		if err := h.AddrAdd(lo, a); err != nil {
			return fmt.Errorf("add %s to lo: %w", src, err)
		}
	}
	for _, p := range local {
		route := &netlink.Route{
			LinkIndex: lo.Attrs().Index,
			Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Type:      unix.RTN_LOCAL,
			Table:     unix.RT_TABLE_LOCAL,
			Scope:     netlink.SCOPE_HOST,
		}
		if src.IsValid() {
			route.Src = src.AsSlice()
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
// client-go's rest.Config.Dial. The socket is not bound: its source address
// is the route's preferred source (see setupLoopback).
func (ns *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return ns.DialFrom(ctx, network, netip.Addr{}, address)
}

// DialFrom connects to address inside the namespace from the source
// address src (any port), or unbound when src is the zero Addr. network is
// "tcp", "tcp4", "udp" or "udp4".
func (ns *Namespace) DialFrom(ctx context.Context, network string, src netip.Addr, address string) (net.Conn, error) {
	var d net.Dialer
	if src.IsValid() {
		switch network {
		case "tcp", "tcp4", "tcp6":
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		case "udp", "udp4", "udp6":
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		default:
			return nil, fmt.Errorf("dial %s from %s: network %q has no source address", address, src, network)
		}
	}
	var conn net.Conn
	var err error
	if ierr := ns.inside(func() { conn, err = d.DialContext(ctx, network, address) }); ierr != nil {
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

// ListenPacket opens a packet socket (UDP) inside the namespace.
func (ns *Namespace) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	var err error
	if ierr := ns.inside(func() { pc, err = net.ListenPacket(network, address) }); ierr != nil {
		return nil, ierr
	}
	return pc, err
}

// Exec runs a command inside the namespace to its end, with stdin (may be
// nil) as its input, and returns its combined output; ctx ends it early
// (SIGKILL).
func (ns *Namespace) Exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Start(cmd); err != nil {
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	if err := cmd.Wait(); err != nil {
		return out.Bytes(), fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
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
