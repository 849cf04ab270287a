package echo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func dialTCP(t *testing.T, addr net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func TestTCPGreetingAndEcho(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolTCP)})
	c := dialTCP(t, srv.addrs[0])
	defer c.Close()
	r := bufio.NewReader(c)

	greeting, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	if want := "causeway-echo east/echo-0\n"; greeting != want {
		t.Errorf("greeting = %q, want %q", greeting, want)
	}

	msg := bytes.Repeat([]byte("0123456789"), 10<<10) // Several reads' worth.
	go func() {
		_, _ = c.Write(msg) // A failure shows up as a short echo below.
		_ = c.CloseWrite()
	}()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo = %d bytes, want the %d sent, then EOF", len(got), len(msg))
	}
}

func TestTCPStopClosesIdleConnection(t *testing.T) {
	srv := startServer(t, Config{Listeners: listeners(ProtocolTCP)})
	c := dialTCP(t, srv.addrs[0])
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("read greeting: %v", err)
	}

	start := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil", err)
	}
	if took := time.Since(start); took >= DefaultShutdownGrace {
		t.Errorf("stop took %s, want an idle echo to end without waiting out the grace", took)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("read after stop = %v, want EOF", err)
	}
}
