package multicluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/gateway/link"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/test/delayrelay"
)

// Helper processes. Some parts of the gateway tests must run inside the
// world's network namespace for their whole life: every socket a delay
// relay or a link dialer makes, from whatever goroutine, must be in the
// namespace. The test binary runs them itself: started with helperArg as
// its first argument (by World.Run or Namespace.Exec, which run processes
// inside), it runs the helper instead of the tests and exits.
const helperArg = "__causeway_test_helper"

// Helper names.
const (
	helperDelayRelay = "delay-relay"
	helperLinkProbe  = "link-probe"
)

func init() {
	if len(os.Args) < 3 || os.Args[1] != helperArg {
		return
	}
	var err error
	switch os.Args[2] {
	case helperDelayRelay:
		err = runDelayRelay(os.Args[3:])
	case helperLinkProbe:
		err = runLinkProbe(os.Args[3:])
	default:
		err = fmt.Errorf("unknown helper %q", os.Args[2])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[2], err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperArgs is the command line of a helper: the test binary, then its
// arguments.
func helperArgs(name string, args ...string) (string, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("find the test binary: %w", err)
	}
	return exe, append([]string{helperArg, name}, args...), nil
}

// runDelayRelay runs a test/delayrelay relay until SIGTERM.
func runDelayRelay(args []string) error {
	fs := flag.NewFlagSet(helperDelayRelay, flag.ContinueOnError)
	addr := fs.String("addr", "", "listen address, TCP and UDP")
	udp := fs.String("udp-target", "", "where datagrams go")
	tcp := fs.String("tcp-target", "", "where connections go")
	delay := fs.Duration("delay", 10*time.Millisecond, "one-way delay, each direction")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	r, err := delayrelay.New(delayrelay.Config{Addr: *addr, UDPTarget: *udp, TCPTarget: *tcp, Delay: *delay})
	if err != nil {
		return err
	}
	fmt.Printf("relay on %s to %s (UDP) and %s (TCP), %s each way\n", r.Addr(), *udp, *tcp, *delay)
	<-stop
	return r.Close()
}

// linkProbeResult is what the link-probe helper reports on its last line
// of output, after resultPrefix.
type linkProbeResult struct {
	// Up: the link came up, i.e. the peer gateway accepted the probe's
	// certificate.
	Up        bool   `json:"up"`
	Transport string `json:"transport,omitempty"`
	LastError string `json:"lastError,omitempty"`
	// Streams maps each authority to "ok", "refused: <reason>" or
	// "error: <error>".
	Streams map[string]string `json:"streams,omitempty"`
}

const resultPrefix = "RESULT "

// runLinkProbe opens a cluster link to a gateway with the given SVID, as
// a peer gateway would, and a stream to each authority; it prints a
// linkProbeResult.
func runLinkProbe(args []string) error {
	fs := flag.NewFlagSet(helperLinkProbe, flag.ContinueOnError)
	certFile := fs.String("cert", "", "PEM certificate chain of the SVID to present")
	keyFile := fs.String("key", "", "PEM private key of the SVID")
	bundleFile := fs.String("bundle", "", "PEM roots of the trust domain")
	udp := fs.String("udp", "", "the gateway's QUIC address (empty: TCP)")
	tcp := fs.String("tcp", "", "the gateway's TCP address")
	expect := fs.String("expect", "", "the gateway's SPIFFE ID")
	wait := fs.Duration("wait", 8*time.Second, "how long to wait for the link")
	var authorities []string
	fs.Func("authority", "a stream to open (repeatable)", func(s string) error { authorities = append(authorities, s); return nil })
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	want, err := spiffeid.FromString(*expect)
	if err != nil {
		return err
	}
	roots, err := os.ReadFile(*bundleFile)
	if err != nil {
		return err
	}
	bundle, err := pki.ParseBundle(want.TrustDomain(), roots)
	if err != nil {
		return err
	}
	d, err := link.NewDialer(link.DialerConfig{
		Name: "probe", UDPAddr: *udp, TCPAddr: *tcp,
		Certificate: func() (*tls.Certificate, error) { return &cert, nil },
		Bundle:      bundle, ExpectPeer: link.ExpectID(want),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	var res linkProbeResult
	deadline := time.Now().Add(*wait)
	for time.Now().Before(deadline) {
		if st := d.Status(); st.State == link.StateUp {
			res.Up, res.Transport = true, st.Transport
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Status().LastError; err != nil {
		res.LastError = err.Error()
	}
	if res.Up {
		res.Streams = map[string]string{}
		for _, a := range authorities {
			res.Streams[a] = probeStream(d, a)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(resultPrefix + string(b))
	return nil
}

func probeStream(d *link.Dialer, authority string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.Open(ctx, authority)
	if refused, ok := errors.AsType[*link.RefusedError](err); ok {
		return "refused: " + refused.Reason
	}
	if err != nil {
		return "error: " + err.Error()
	}
	_ = c.Close()
	return "ok"
}

// parseLinkProbe finds the result line in a link probe's output.
func parseLinkProbe(out []byte) (linkProbeResult, error) {
	var res linkProbeResult
	for line := range bytes.Lines(out) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(string(line)), resultPrefix); ok {
			return res, json.Unmarshal([]byte(s), &res)
		}
	}
	return res, fmt.Errorf("no result in the probe's output:\n%s", out)
}
