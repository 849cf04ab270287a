package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testTimeout bounds every network operation and iptables run of a test;
// everything happens inside one host, so it is generous.
const testTimeout = 10 * time.Second

// variant is an iptables binary to test with.
type variant struct {
	command string // Config.Command; "" is the default, "iptables"
	path    string // the binary, as Install finds it
	save    string // the matching iptables-save
}

func (v variant) String() string {
	if v.command == "" {
		return "iptables"
	}
	return v.command
}

// lookTool finds an iptables tool the way Install does, or skips the test.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	ipt, err := lookIPTables(name)
	if err != nil {
		t.Skipf("skipped: %s is not installed (Debian package iptables; .ci/run installs it): %v", name, err)
	}
	return ipt.path
}

// requireNetAdmin skips the test unless it runs as root: it creates
// network namespaces and programs iptables in them.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to create a network namespace and program iptables in it (CI runs as root)")
	}
}

// iptablesVariants returns the installed iptables binaries: the default one
// and, when present, both explicit variants, so that legacy (x_tables) and
// nf_tables are each exercised whichever the system default is. It skips
// the test when there is no iptables at all.
func iptablesVariants(t *testing.T) []variant {
	t.Helper()
	vs := []variant{{command: "", path: lookTool(t, "iptables"), save: lookTool(t, "iptables-save")}}
	for _, c := range []string{"iptables-legacy", "iptables-nft"} {
		ipt, err := lookIPTables(c)
		if err != nil {
			continue
		}
		vs = append(vs, variant{command: c, path: ipt.path, save: lookTool(t, c+"-save")})
	}
	return vs
}

// enterNewNetns moves the calling goroutine, which must be the test's own,
// into a new network namespace with lo up and addrs on lo. From here on,
// the sockets it makes and the processes it starts (iptables) belong to
// that namespace.
//
// The goroutine's OS thread is locked and never unlocked: when the test
// function returns, its goroutine ends still locked and the Go runtime
// destroys the thread instead of handing it, still inside the namespace,
// to other goroutines. The namespace goes away with its last socket.
func enterNewNetns(t *testing.T, addrs ...string) {
	t.Helper()
	requireNetAdmin(t)
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	if err := setupLink("lo", addrs...); err != nil {
		t.Fatal(err)
	}
}

// setupLink brings the link up with the given addresses, in the calling
// thread's network namespace.
func setupLink(name string, addrs ...string) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	for _, a := range addrs {
		p := netip.MustParsePrefix(a)
		addr := &netlink.Addr{
			IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			Flags: unix.IFA_F_NODAD, // usable at once, no duplicate detection wait
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// peerNetns is a second network namespace, anchored to a goroutine of its
// own, for traffic that must arrive from outside the workload's namespace.
type peerNetns struct {
	reqs chan func()
	done chan struct{}
	fd   int // the namespace, for moving links into it
}

// newPeerNetns creates the namespace with lo up; the test's cleanup
// destroys its thread the same way enterNewNetns does.
func newPeerNetns(t *testing.T) *peerNetns {
	t.Helper()
	ns := &peerNetns{reqs: make(chan func()), done: make(chan struct{}), fd: -1}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		defer close(ns.done)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- fmt.Errorf("create peer network namespace: %w", err)
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ready <- fmt.Errorf("open peer network namespace: %w", err)
			return
		}
		if err := setupLink("lo"); err != nil {
			unix.Close(fd)
			ready <- err
			return
		}
		ns.fd = fd
		ready <- nil
		for f := range ns.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(ns.reqs)
		<-ns.done
		unix.Close(ns.fd)
	})
	return ns
}

// do runs f inside the peer namespace.
func (ns *peerNetns) do(f func()) {
	done := make(chan struct{})
	ns.reqs <- func() { defer close(done); f() }
	<-done
}

// serve accepts connections on a new listener at addr until the test ends,
// and writes each one line naming who accepted it: "<name> <address>",
// where the address is the connection's original destination when
// origDst is set and its local address otherwise.
func serve(t *testing.T, name, addr string, origDst bool) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen for %s on %s: %v", name, addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			wg.Go(func() {
				defer conn.Close()
				what := conn.LocalAddr().String()
				if origDst {
					dst, err := OriginalDst(conn.(*net.TCPConn))
					what = dst.String()
					if err != nil {
						what = "error: " + err.Error()
					}
				}
				_ = conn.SetWriteDeadline(time.Now().Add(testTimeout)) // best effort, like the write below
				fmt.Fprintf(conn, "%s %s\n", name, what)
			})
		}
	})
}

// whoAnswers connects to addr from the calling thread's namespace and
// returns the line the accepting listener wrote.
func whoAnswers(addr string) (string, error) {
	d := net.Dialer{Timeout: testTimeout}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != addr {
		return "", fmt.Errorf("dial %s: connected to %s: the redirect is not transparent", addr, got)
	}
	if err := conn.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		return "", fmt.Errorf("set read deadline on %s: %w", addr, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// run runs a command in the calling thread's namespace and returns its
// standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// counters matches the packet and byte counters of iptables-save output.
var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// natTable returns `iptables-save -t nat` without its timestamped comment
// lines and with counters zeroed, so that two dumps of the same rules
// compare equal.
func natTable(t *testing.T, v variant) string {
	t.Helper()
	var lines []string
	for line := range strings.Lines(run(t, v.save, "-t", "nat")) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, counters.ReplaceAllString(line, "[0:0]"))
	}
	return strings.Join(lines, "")
}

// install runs Install with a deadline and fails the test on error.
func install(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := Install(ctx, cfg); err != nil {
		t.Fatalf("Install: %v", err)
	}
}

// uninstall runs Uninstall with a deadline and fails the test on error.
func uninstall(t *testing.T, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := Uninstall(ctx, cfg); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
}
