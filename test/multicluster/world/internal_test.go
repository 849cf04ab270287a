package world

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"POD_IP": "10.1.0.5", "PORT": "8080"}
	cases := map[string]struct{ in, want string }{
		"no reference":      {"plain", "plain"},
		"one reference":     {"$(POD_IP):$(PORT)", "10.1.0.5:8080"},
		"unknown stays":     {"$(NOPE)", "$(NOPE)"},
		"escaped dollar":    {"$$(POD_IP)", "$(POD_IP)"},
		"unterminated":      {"x$(POD_IP", "x$(POD_IP"},
		"lone dollar":       {"cost $5", "cost $5"},
		"trailing dollar":   {"end$", "end$"},
		"adjacent refs":     {"$(PORT)$(PORT)", "80808080"},
		"empty reference":   {"$()", "$()"},
		"dollar then paren": {"$$$(PORT)", "$8080"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := expandVars(tc.in, vars); got != tc.want {
				t.Errorf("expandVars(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzExpandVars(f *testing.F) {
	for _, s := range []string{"$(A)", "$$", "$(", "a$(B)c", "$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := expandVars(s, map[string]string{"A": "x"})
		if !strings.Contains(s, "$") && got != s {
			t.Errorf("expandVars changed %q without references to %q", s, got)
		}
	})
}

func TestImageName(t *testing.T) {
	cases := map[string]string{
		"causeway.dev/echo":                  "causeway.dev/echo",
		"causeway.dev/echo:v1":               "causeway.dev/echo",
		"causeway.dev/echo@sha256:abc":       "causeway.dev/echo",
		"registry:5000/causeway.dev/echo":    "registry:5000/causeway.dev/echo",
		"registry:5000/causeway.dev/echo:v2": "registry:5000/causeway.dev/echo",
	}
	for in, want := range cases {
		if got := imageName(in); got != want {
			t.Errorf("imageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerProcess(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec:       corev1.PodSpec{NodeName: "n"},
		Status:     corev1.PodStatus{PodIP: "10.1.0.7"},
	}
	cases := map[string]struct {
		ctr      corev1.Container
		wantOK   bool
		wantBin  string
		wantArgs []string
	}{
		"echo with ports": {
			ctr: corev1.Container{Image: ImageEcho + ":latest", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080}, {Name: "grpc-api", ContainerPort: 9090}, {Name: "tcp-raw", ContainerPort: 7070},
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			}},
			wantOK: true, wantBin: "/b/causeway-echo",
			wantArgs: []string{"--listen=10.1.0.7:8080=http", "--listen=10.1.0.7:9090=grpc", "--listen=10.1.0.7:7070=tcp"},
		},
		"echo without ports": {
			ctr:    corev1.Container{Image: ImageEcho},
			wantOK: true, wantBin: "/b/causeway-echo", wantArgs: []string{"--listen=10.1.0.7:8080=http"},
		},
		"load client expands vars": {
			ctr: corev1.Container{Image: ImageLoad, Args: []string{"load", "-qps", "$(QPS)", "http://$(POD_IP):8080/"},
				Env: []corev1.EnvVar{{Name: "QPS", Value: "10"}}},
			wantOK: true, wantBin: "/b/fortio", wantArgs: []string{"load", "-qps", "10", "http://10.1.0.7:8080/"},
		},
		"unknown image has no process": {ctr: corev1.Container{Image: "nginx:1.27"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			spec, ok := containerProcess("/b", "c1", pod, &tc.ctr)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if spec.bin != tc.wantBin || !slices.Equal(spec.args, tc.wantArgs) {
				t.Errorf("got %s %q, want %s %q", spec.bin, spec.args, tc.wantBin, tc.wantArgs)
			}
			for _, want := range []string{"POD_NAME=p", "POD_NAMESPACE=ns", "POD_IP=10.1.0.7", "CLUSTER_NAME=c1", "NODE_NAME=n"} {
				if !slices.Contains(spec.env, want) {
					t.Errorf("env %q lacks %s", spec.env, want)
				}
			}
		})
	}
}

func TestValidateSpecs(t *testing.T) {
	cases := map[string]struct {
		specs   []ClusterSpec
		wantErr string
	}{
		"ok":          {specs: []ClusterSpec{{Name: "east"}, {Name: "west"}}},
		"bad name":    {specs: []ClusterSpec{{Name: "East_1"}}, wantErr: `cluster name "East_1"`},
		"duplicate":   {specs: []ClusterSpec{{Name: "a"}, {Name: "a"}}, wantErr: "given twice"},
		"empty name":  {specs: []ClusterSpec{{Name: ""}}, wantErr: `cluster name ""`},
		"too many":    {specs: make([]ClusterSpec, maxClusters+1), wantErr: "at most"},
		"long labels": {specs: []ClusterSpec{{Name: strings.Repeat("a", 64)}}, wantErr: "63"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := validateSpecs(tc.specs)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("validateSpecs = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestNamespaceAndForward: a server bound inside the namespace on a pod IP
// is reachable through Dial and through a host forward, nothing outside the
// namespace is reachable from it, and a forward whose preferred port is
// taken moves to a free one.
func TestNamespaceAndForward(t *testing.T) {
	if !isRoot() {
		t.Fatal(ErrNeedsRoot)
	}
	ns, err := NewNamespace([]netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ns.Close() }()
	l, err := ns.Listen("tcp", "10.77.3.4:80")
	if err != nil {
		t.Fatalf("bind a pod IP inside the namespace: %v", err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello from inside")
			_ = c.Close()
		}
	}()
	read := func(c net.Conn) string {
		defer func() { _ = c.Close() }()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	c, err := ns.DialContext(t.Context(), "tcp", "10.77.3.4:80")
	if err != nil {
		t.Fatalf("dial inside the namespace: %v", err)
	}
	if got := read(c); got != "hello from inside" {
		t.Errorf("inside read %q", got)
	}
	// Nothing leaves the namespace: it has no route but its local ones.
	if oc, err := ns.DialContext(t.Context(), "tcp", "192.0.2.1:80"); !errors.Is(err, syscall.ENETUNREACH) {
		if oc != nil {
			_ = oc.Close()
		}
		t.Errorf("dial out of the namespace = %v, want ENETUNREACH", err)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	port := taken.Addr().(*net.TCPAddr).Port
	fwd, err := newForward(ns, port, "10.77.3.4:80")
	if err != nil {
		t.Fatalf("forward with a taken preferred port: %v", err)
	}
	defer func() { _ = fwd.Close() }()
	if fwd.Addr == taken.Addr().String() {
		t.Fatalf("forward claims the taken address %s", fwd.Addr)
	}
	fc, err := net.Dial("tcp", fwd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(fc); got != "hello from inside" {
		t.Errorf("read through forward %q", got)
	}

	// Threads that entered the namespace never run anything else: after
	// many dials, processes started from this (host) side are still in
	// the host's namespace.
	for range 50 {
		if c, err := ns.DialContext(t.Context(), "tcp", "10.77.3.4:80"); err == nil {
			_ = c.Close()
		}
	}
	var inner string
	if err := ns.inside(func() { inner, err = os.Readlink("/proc/thread-self/ns/net") }); err != nil || inner == "" {
		t.Fatalf("read the namespace's identity: %v", err)
	}
	var host string
	for i := range 20 {
		out, err := exec.Command("readlink", "/proc/self/ns/net").Output()
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSpace(string(out))
		if got == inner {
			t.Fatalf("process %d started from the host side runs inside the world's namespace %s", i, got)
		}
		if host == "" {
			host = got
		} else if got != host {
			t.Fatalf("processes started from the host side run in %s and %s", host, got)
		}
	}
}

// TestFirewallRuleSets: rule sets come and go as chains of their own;
// removeAll (what Stop runs) leaves none behind.
func TestFirewallRuleSets(t *testing.T) {
	if !isRoot() {
		t.Fatal(ErrNeedsRoot)
	}
	if _, err := exec.LookPath("iptables-save"); err != nil {
		t.Fatalf("iptables is not installed (Debian package iptables): %v", err)
	}
	ns, err := newNamespace([]netip.Prefix{infraPrefix, netip.MustParsePrefix("10.1.0.0/16")}, NeutralSource)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ns.Close() }()
	w := &World{NS: ns, Clusters: []*Cluster{{
		Name: "c1", PodCIDR: netip.MustParsePrefix("10.1.0.0/16"), InfraPrefix: netip.MustParsePrefix("10.255.1.0/24"),
	}}}
	w.firewall.ns = ns
	chains := func() []string {
		out, err := ns.Exec(t.Context(), nil, "iptables-save", "-t", "filter")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, ":"+chainPrefix) {
				got = append(got, strings.Fields(l[1:])[0])
			}
		}
		slices.Sort(got)
		return got
	}
	undoIso, err := w.Isolate()
	if err != nil {
		t.Fatal(err)
	}
	undoUDP, err := w.BlockUDP(netip.MustParseAddr("10.255.1.2"), netip.MustParseAddr("10.255.2.2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Partition(netip.MustParseAddr("10.255.1.2")); err != nil {
		t.Fatal(err)
	}
	if got, want := chains(), []string{"CW-ISOLATE-1", "CW-NOUDP-2", "CW-PART-3"}; !slices.Equal(got, want) {
		t.Fatalf("chains %v, want %v", got, want)
	}
	if err := undoUDP(); err != nil {
		t.Fatal(err)
	}
	if got, want := chains(), []string{"CW-ISOLATE-1", "CW-PART-3"}; !slices.Equal(got, want) {
		t.Fatalf("after one undo: chains %v, want %v", got, want)
	}
	if err := w.firewall.removeAll(); err != nil {
		t.Fatal(err)
	}
	if got := chains(); len(got) != 0 {
		t.Fatalf("after removeAll: chains %v remain", got)
	}
	if err := undoIso(); err != nil {
		t.Fatalf("undo after removeAll: %v", err)
	}
	if _, err := w.Partition(); err == nil {
		t.Error("a partition of nothing was accepted")
	}
	if _, err := w.BlockUDP(netip.Addr{}, netip.MustParseAddr("10.255.1.2")); err == nil {
		t.Error("a UDP block with one address was accepted")
	}
}
