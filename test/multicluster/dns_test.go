package multicluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// resolver returns Go's own DNS client pointed at member's agent, dialling
// inside the world's namespace.
func resolver(member string) *net.Resolver {
	addr := cs.DNSAddr(member)
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return w.DialContext(ctx, network, addr)
	}}
}

// dig runs the real dig inside the world's namespace against member's
// agent and returns its +short answer lines.
func dig(t *testing.T, ctx context.Context, member string, args ...string) []string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		t.Fatalf("dig is not installed (Debian package bind9-dnsutils; .ci/run installs it): %v", err)
	}
	host, port, _ := net.SplitHostPort(cs.DNSAddr(member))
	cmd := exec.CommandContext(ctx, path, append([]string{"@" + host, "-p", port, "+short", "+time=2", "+tries=2"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := w.NS.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out.String())
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

// TestClusterSetDNS: every member's agent answers
// <svc>.<ns>.svc.clusterset.local with its ClusterSetIP, SRV records for
// the named ports, the headless endpoints by hostname and cluster, and
// NXDOMAIN for what is not imported — checked with Go's resolver and dig.
func TestClusterSetDNS(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	ns := uniqueNS(t)
	exportEverywhere(t, ctx, "east", ns, "checkout", 2)

	name := "checkout." + ns + ".svc.clusterset.local"
	for _, m := range members {
		si, err := getImport(ctx, m, ns, "checkout")
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		eventually(t, 10*time.Second, "A record in "+m, func(ctx context.Context) error {
			addrs, err = resolver(m).LookupHost(ctx, name)
			if err != nil {
				return err
			}
			if !slices.Equal(addrs, si.Spec.IPs) {
				return fmt.Errorf("%s → %v, want the ClusterSetIP %v", name, addrs, si.Spec.IPs)
			}
			return nil
		})
		if got := dig(t, ctx, m, name, "A"); !slices.Equal(got, si.Spec.IPs) {
			t.Errorf("dig %s A in %s = %v, want %v", name, m, got, si.Spec.IPs)
		}
	}
	_, srvs, err := resolver("west").LookupSRV(ctx, "http", "tcp", name)
	if err != nil {
		t.Fatal(err)
	}
	if len(srvs) != 1 || srvs[0].Port != 8080 || srvs[0].Target != name+"." {
		t.Errorf("SRV _http._tcp.%s = %+v, want port 8080 target %s.", name, srvs, name)
	}

	// Not imported: NXDOMAIN, from both clients.
	missing := "nope." + ns + ".svc.clusterset.local"
	_, err = resolver("west").LookupHost(ctx, missing)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("lookup %s = %v, want not found", missing, err)
	}
	if got := dig(t, ctx, "west", missing, "A"); len(got) != 0 {
		t.Errorf("dig %s = %v, want no answer", missing, got)
	}

	// Headless: one A record per endpoint, and each endpoint by its
	// hostname under its cluster.
	hl := svcWithPorts(ns, "ledger", corev1.ServicePort{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP})
	hl.Spec.Selector = map[string]string{"app": "checkout"}
	hl.Spec.ClusterIP = corev1.ClusterIPNone
	if _, err := kube("east").CoreV1().Services(ns).Create(ctx, hl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ips := readyEndpointIPs(t, ctx, "east", ns, "ledger", 2)
	export(t, ctx, "east", ns, "ledger")
	hname := "ledger." + ns + ".svc.clusterset.local"
	eventually(t, 20*time.Second, "headless A records in north", func(ctx context.Context) error {
		got, err := resolver("north").LookupHost(ctx, hname)
		if err != nil {
			return err
		}
		slices.Sort(got)
		if !slices.Equal(got, ips) {
			return fmt.Errorf("%s → %v, want %v", hname, got, ips)
		}
		return nil
	})
	// Pods of a Deployment have no hostname: the name is the dashed IP.
	per := strings.ReplaceAll(ips[0], ".", "-") + ".east." + hname
	if got := dig(t, ctx, "north", per, "A"); !slices.Equal(got, ips[:1]) {
		t.Errorf("dig %s = %v, want %v", per, got, ips[:1])
	}
}
