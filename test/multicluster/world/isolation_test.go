package world_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// blockedWait is how long a dial or a datagram may take before it counts
// as dropped. On lo an accepted SYN is answered in microseconds.
const blockedWait = 400 * time.Millisecond

// server listens inside the namespace on addr (TCP) and answers each
// connection with a line naming the connection's source, then echoes.
func server(t *testing.T, addr string) {
	t.Helper()
	l, err := w.NS.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if _, err := fmt.Fprintf(c, "%s\n", c.RemoteAddr()); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// udpServer listens inside the namespace on addr (UDP) and sends every
// datagram back.
func udpServer(t *testing.T, addr string) {
	t.Helper()
	pc, err := w.NS.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// dialTCP connects from src (zero: unbound) and returns the source the
// server saw, or an error when the connection could not be made in time.
func dialTCP(ctx context.Context, src netip.Addr, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, blockedWait)
	defer cancel()
	c, err := w.NS.DialFrom(ctx, "tcp", src, addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(blockedWait))
	line := make([]byte, 64)
	n, err := c.Read(line)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(line[:n])), nil
}

// roundTripUDP sends one datagram from src to addr and reports whether its
// echo came back in time.
func roundTripUDP(ctx context.Context, src netip.Addr, addr string) error {
	c, err := w.NS.DialFrom(ctx, "udp", src, addr)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	return udpExchange(c)
}

func udpExchange(c net.Conn) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(blockedWait))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("echo %q", buf[:n])
	}
	return nil
}

// readLine reads up to and including a newline, a byte at a time (so
// nothing after it is consumed).
func readLine(c net.Conn) (string, error) {
	var b strings.Builder
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			return b.String(), err
		}
		if one[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(one[0])
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// addr returns 10.<cluster index>.255.<host>, an address in the cluster's
// pod CIDR far from those kwok hands out.
func podAddr(c *world.Cluster, host byte) netip.Addr {
	b := c.PodCIDR.Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1], 255, host})
}

// TestUnboundSocketsComeFromTheNeutralSource: a socket that connects to a
// pod IP or an infrastructure address without binding gets the
// namespace's neutral address as its source, not the address it connects
// to.
func TestUnboundSocketsComeFromTheNeutralSource(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	c1 := w.Clusters[0]
	target := netip.AddrPortFrom(podAddr(c1, 10), 8000).String()
	server(t, target)
	got, err := dialTCP(ctx, netip.Addr{}, target)
	if err != nil {
		t.Fatal(err)
	}
	if src, _, _ := net.SplitHostPort(got); src != world.NeutralSource.String() {
		t.Fatalf("an unbound connection to %s came from %s, want %s", target, got, world.NeutralSource)
	}
	for _, c := range w.Clusters {
		if c.PodCIDR.Contains(world.NeutralSource) || c.InfraPrefix.Contains(world.NeutralSource) {
			t.Fatalf("the neutral source %s belongs to cluster %s", world.NeutralSource, c.Name)
		}
	}
	// So does one to a cluster's infrastructure address.
	infra := netip.AddrPortFrom(c1.GatewayIP, 8000).String()
	server(t, infra)
	if got, err = dialTCP(ctx, netip.Addr{}, infra); err != nil || !strings.HasPrefix(got, world.NeutralSource.String()+":") {
		t.Fatalf("an unbound connection to %s came from %s (%v), want %s", infra, got, err, world.NeutralSource)
	}
	// A bound socket keeps its source.
	src := podAddr(c1, 11)
	if got, err = dialTCP(ctx, src, target); err != nil || !strings.HasPrefix(got, src.String()+":") {
		t.Fatalf("a connection bound to %s came from %s (%v)", src, got, err)
	}
}

// TestIsolate: while Isolate is in force, cluster 1's pods are reached
// from cluster 1's pod CIDR and infrastructure range and from nowhere
// else, over TCP and UDP; a connection made before stays up; other
// addresses are not affected; undo restores the flat network.
func TestIsolate(t *testing.T) {
	ctx := testContext(t, time.Minute)
	c1, c2 := w.Clusters[0], w.Clusters[1]
	target := netip.AddrPortFrom(podAddr(c1, 20), 8000).String()
	server(t, target)
	udpTarget := netip.AddrPortFrom(podAddr(c1, 20), 5300).String()
	udpServer(t, udpTarget)
	infraTarget := netip.AddrPortFrom(c1.GatewayIP, 8000).String()
	server(t, infraTarget)

	before, err := w.NS.DialFrom(ctx, "tcp", podAddr(c2, 20), target)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = before.Close() }()
	if _, err := readLine(before); err != nil {
		t.Fatal(err)
	}

	undo, err := w.Isolate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = undo() }()

	type from struct {
		name    string
		src     netip.Addr
		allowed bool
	}
	sources := []from{
		{"a pod of cluster 1", podAddr(c1, 21), true},
		{"cluster 1's control plane address", c1.InfraIP, true},
		{"cluster 1's gateway address", c1.GatewayIP, true},
		{"a pod of cluster 2", podAddr(c2, 21), false},
		{"cluster 2's gateway address", c2.GatewayIP, false},
		{"an unbound socket", netip.Addr{}, false},
	}
	for _, s := range sources {
		_, err := dialTCP(ctx, s.src, target)
		switch {
		case s.allowed && err != nil:
			t.Errorf("TCP from %s to a pod of cluster 1: %v, want a connection", s.name, err)
		case !s.allowed && err == nil:
			t.Errorf("TCP from %s to a pod of cluster 1 connected; want it dropped", s.name)
		case !s.allowed && !isTimeout(err):
			t.Errorf("TCP from %s to a pod of cluster 1: %v; want a silent drop (timeout)", s.name, err)
		}
		err = roundTripUDP(ctx, s.src, udpTarget)
		switch {
		case s.allowed && err != nil:
			t.Errorf("UDP from %s to a pod of cluster 1: %v, want the echo", s.name, err)
		case !s.allowed && err == nil:
			t.Errorf("UDP from %s to a pod of cluster 1 came back; want it dropped", s.name)
		}
	}
	// Cluster.DialContext is cluster 1's node.
	cctx, cancel := context.WithTimeout(ctx, blockedWait)
	if c, err := c1.DialContext(cctx, "tcp", target); err != nil {
		t.Errorf("cluster 1's DialContext to its own pod: %v", err)
	} else {
		_ = c.Close()
	}
	if c, err := c2.DialContext(cctx, "tcp", target); err == nil {
		_ = c.Close()
		t.Error("cluster 2's DialContext reached a pod of cluster 1")
	}
	cancel()
	// Addresses outside the pod CIDRs are not isolated.
	if _, err := dialTCP(ctx, podAddr(c2, 22), infraTarget); err != nil {
		t.Errorf("a pod of cluster 2 to cluster 1's gateway address: %v", err)
	}
	// The connection made before the rules keeps working.
	if _, err := before.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = before.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(before, buf); err != nil || string(buf) != "x" {
		t.Errorf("a connection established before Isolate: read %q, %v", buf, err)
	}

	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if err := undo(); err != nil {
		t.Fatalf("a second undo: %v", err)
	}
	for _, s := range sources {
		if _, err := dialTCP(ctx, s.src, target); err != nil {
			t.Errorf("after undo, TCP from %s: %v", s.name, err)
		}
		if err := roundTripUDP(ctx, s.src, udpTarget); err != nil {
			t.Errorf("after undo, UDP from %s: %v", s.name, err)
		}
	}
}

// TestBlockUDP: UDP between two addresses stops both ways, even on a flow
// that was working, while TCP between them and UDP to a third address
// pass; undo lets it through again.
func TestBlockUDP(t *testing.T) {
	ctx := testContext(t, time.Minute)
	a, b, c := w.Clusters[0].GatewayIP, w.Clusters[1].GatewayIP, w.Clusters[2].GatewayIP
	udpServer(t, netip.AddrPortFrom(b, 4430).String())
	udpServer(t, netip.AddrPortFrom(a, 4430).String())
	udpServer(t, netip.AddrPortFrom(c, 4430).String())
	server(t, netip.AddrPortFrom(b, 4431).String())

	flow, err := w.NS.DialFrom(ctx, "udp", a, netip.AddrPortFrom(b, 4430).String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = flow.Close() }()
	if err := udpExchange(flow); err != nil {
		t.Fatalf("UDP before the block: %v", err)
	}

	undo, err := w.BlockUDP(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = undo() }()
	if err := udpExchange(flow); err == nil {
		t.Error("the established UDP flow from a to b still works")
	}
	if err := roundTripUDP(ctx, b, netip.AddrPortFrom(a, 4430).String()); err == nil {
		t.Error("UDP from b to a passes")
	}
	if err := roundTripUDP(ctx, a, netip.AddrPortFrom(c, 4430).String()); err != nil {
		t.Errorf("UDP from a to c: %v", err)
	}
	if _, err := dialTCP(ctx, a, netip.AddrPortFrom(b, 4431).String()); err != nil {
		t.Errorf("TCP from a to b: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if err := udpExchange(flow); err != nil {
		t.Errorf("the UDP flow after undo: %v", err)
	}
}

// TestPartition: every packet from or to a partitioned address is
// dropped: new connections time out and an established one stalls; others
// are not affected; undo heals the established connection.
func TestPartition(t *testing.T) {
	ctx := testContext(t, time.Minute)
	a, b, c := w.Clusters[0].GatewayIP, w.Clusters[1].GatewayIP, w.Clusters[2].GatewayIP
	server(t, netip.AddrPortFrom(a, 4432).String())
	server(t, netip.AddrPortFrom(c, 4432).String())
	conn, err := w.NS.DialFrom(ctx, "tcp", b, netip.AddrPortFrom(a, 4432).String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := readLine(conn); err != nil {
		t.Fatal(err)
	}

	undo, err := w.Partition(a)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = undo() }()
	if _, err := dialTCP(ctx, b, netip.AddrPortFrom(a, 4432).String()); !isTimeout(err) {
		t.Errorf("a new connection to the partitioned address: %v, want a timeout", err)
	}
	if _, err := dialTCP(ctx, a, netip.AddrPortFrom(c, 4432).String()); !isTimeout(err) {
		t.Errorf("a new connection from the partitioned address: %v, want a timeout", err)
	}
	if _, err := dialTCP(ctx, b, netip.AddrPortFrom(c, 4432).String()); err != nil {
		t.Errorf("a connection between two other addresses: %v", err)
	}
	if _, err := conn.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(blockedWait))
	if n, err := conn.Read(make([]byte, 64)); !isTimeout(err) {
		t.Errorf("the established connection during the partition: read %d bytes, %v; want it stalled", n, err)
	}

	if err := undo(); err != nil {
		t.Fatal(err)
	}
	// TCP retransmits what the partition dropped.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len("during"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "during" {
		t.Errorf("the established connection after the partition healed: %q, %v", got, err)
	}
	if _, err := dialTCP(ctx, b, netip.AddrPortFrom(a, 4432).String()); err != nil {
		t.Errorf("a new connection after undo: %v", err)
	}
}

// TestStopAndStartComponent: a control-plane component stopped on
// purpose is down (and not reported as a failure of the world), and
// starts again with the same arguments.
func TestStopAndStartComponent(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	c := w.Clusters[len(w.Clusters)-1]
	if err := c.StartComponent(ctx, "kube-apiserver"); err == nil {
		t.Fatal("starting a running API server was accepted")
	}
	if err := c.StopComponent("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := c.Client.CoreV1().Namespaces().Get(rctx, "default", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("the API server answers after StopComponent")
	}
	if err := c.StartComponent(ctx, "kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("after StartComponent: %v", err)
	}
	if err := w.Err(); err != nil {
		t.Fatalf("the world reported the stop as a failure: %v", err)
	}
	if err := c.StopComponent("no-such-component"); err == nil {
		t.Error("stopping an unknown component was accepted")
	}
}
