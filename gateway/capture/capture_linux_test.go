package capture

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresses of the test namespaces. The workload's are on lo, so every
// packet stays inside the namespace the test created.
const (
	serverAddr = "10.250.0.2"
	otherAddr  = "10.250.0.3"
)

// notOurUID is a UID that owns no socket of the test process, so the
// owner match of a Config naming it excludes nothing the test does.
const notOurUID = 1337

func TestOutboundCapture(t *testing.T) {
	requireNetAdmin(t)
	if os.Getuid() == notOurUID {
		t.Skipf("skipped: the test process runs as UID %d, which the test uses as the proxy's", notOurUID)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	tests := map[string]struct {
		cfg       Config
		proxyAddr string // where the proxy listens; default 127.0.0.1:15001
		dial      string
		want      string // the line of the listener that accepted
	}{
		"redirected to the proxy": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}},
			dial: serverAddr + ":8080",
			want: "proxy 10.250.0.2:8080",
		},
		"redirected to a dual-stack proxy listener": {
			cfg:       Config{ProxyUIDs: []uint32{notOurUID}},
			proxyAddr: "[::]:15001",
			dial:      serverAddr + ":9090",
			want:      "proxy 10.250.0.2:9090",
		},
		"redirected to another proxy port": {
			cfg:       Config{ProxyUIDs: []uint32{notOurUID}, ProxyPort: 16001},
			proxyAddr: "127.0.0.1:16001",
			dial:      serverAddr + ":8080",
			want:      "proxy 10.250.0.2:8080",
		},
		"proxy UID excluded": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID, uid}},
			dial: serverAddr + ":8080",
			want: "server 10.250.0.2:8080",
		},
		"proxy GID excluded": {
			cfg:  Config{ProxyGIDs: []uint32{gid}},
			dial: serverAddr + ":8080",
			want: "server 10.250.0.2:8080",
		},
		"GID of another group does not exclude": {
			cfg:  Config{ProxyGIDs: []uint32{gid + 1}},
			dial: serverAddr + ":8080",
			want: "proxy 10.250.0.2:8080",
		},
		"loopback excluded": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}},
			dial: "127.0.0.1:8080",
			want: "server 127.0.0.1:8080",
		},
		"excluded port": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}, ExcludeOutboundPorts: []uint16{8080}},
			dial: serverAddr + ":8080",
			want: "server 10.250.0.2:8080",
		},
		"port not excluded": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}, ExcludeOutboundPorts: []uint16{8080}},
			dial: serverAddr + ":9090",
			want: "proxy 10.250.0.2:9090",
		},
		"excluded CIDR": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}, ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.250.0.2/32")}},
			dial: serverAddr + ":8080",
			want: "server 10.250.0.2:8080",
		},
		"outside the included CIDRs": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}, IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.250.0.3/32")}},
			dial: serverAddr + ":8080",
			want: "server 10.250.0.2:8080",
		},
		"inside the included CIDRs": {
			cfg:  Config{ProxyUIDs: []uint32{notOurUID}, IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.250.0.3/32")}},
			dial: otherAddr + ":8080",
			want: "proxy 10.250.0.3:8080",
		},
		"excluded CIDR inside an included one": {
			cfg: Config{
				ProxyUIDs:            []uint32{notOurUID},
				IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.250.0.0/24")},
				ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.250.0.3/32")},
			},
			dial: otherAddr + ":8080",
			want: "server 10.250.0.3:8080",
		},
	}
	for _, v := range iptablesVariants(t) {
		t.Run(v.String(), func(t *testing.T) {
			for name, tc := range tests {
				t.Run(name, func(t *testing.T) {
					enterNewNetns(t, serverAddr+"/32", otherAddr+"/32")
					serve(t, "server", "0.0.0.0:8080", false)
					serve(t, "server", "0.0.0.0:9090", false)
					proxyAddr := tc.proxyAddr
					if proxyAddr == "" {
						proxyAddr = "127.0.0.1:15001"
					}
					serve(t, "proxy", proxyAddr, true)

					// Without rules, the server answers: the test can tell.
					if got, err := whoAnswers(tc.dial); err != nil || !strings.HasPrefix(got, "server ") {
						t.Fatalf("before Install, %s answered %q, %v; want the server", tc.dial, got, err)
					}

					cfg := tc.cfg
					cfg.Command = v.command
					install(t, cfg)
					got, err := whoAnswers(tc.dial)
					if err != nil {
						t.Fatal(err)
					}
					if got != tc.want {
						t.Errorf("after Install, %s answered %q, want %q", tc.dial, got, tc.want)
					}

					uninstall(t, cfg)
					if got, err := whoAnswers(tc.dial); err != nil || !strings.HasPrefix(got, "server ") {
						t.Errorf("after Uninstall, %s answered %q, %v; want the server", tc.dial, got, err)
					}
				})
			}
		})
	}
}

// TestInboundCapture connects from a second namespace over a veth pair,
// since only packets arriving from outside traverse PREROUTING.
func TestInboundCapture(t *testing.T) {
	requireNetAdmin(t)
	const (
		workloadAddr = "10.250.1.1"
		peerAddr     = "10.250.1.2"
	)
	for _, v := range iptablesVariants(t) {
		t.Run(v.String(), func(t *testing.T) {
			enterNewNetns(t)
			peer := newPeerNetns(t)
			connectPeer(t, peer, workloadAddr+"/24", peerAddr+"/24")
			serve(t, "server", "0.0.0.0:8080", false)
			serve(t, "server", "0.0.0.0:9090", false)
			serve(t, "inbound", "0.0.0.0:15006", true)
			serve(t, "outbound", "127.0.0.1:15001", true)
			fromPeer := func(addr string) string {
				t.Helper()
				var got string
				var err error
				peer.do(func() { got, err = whoAnswers(addr) })
				if err != nil {
					t.Fatalf("from the peer: %v", err)
				}
				return got
			}
			steps := []struct {
				name string
				cfg  Config
				from func(string) string
				dial string
				want string
			}{
				{"inbound capture is off by default", Config{}, fromPeer, workloadAddr + ":8080", "server 10.250.1.1:8080"},
				{"inbound captured", Config{CaptureInbound: true}, fromPeer, workloadAddr + ":8080", "inbound 10.250.1.1:8080"},
				{"excluded inbound port", Config{CaptureInbound: true}, fromPeer, workloadAddr + ":9090", "server 10.250.1.1:9090"},
				{"outbound to the peer captured", Config{CaptureInbound: true}, nil, peerAddr + ":7070", "outbound 10.250.1.2:7070"},
				{"inbound capture turned off again", Config{}, fromPeer, workloadAddr + ":8080", "server 10.250.1.1:8080"},
			}
			for _, step := range steps {
				cfg := step.cfg
				cfg.Command = v.command
				cfg.ProxyUIDs = []uint32{notOurUID}
				cfg.ExcludeInboundPorts = []uint16{9090}
				install(t, cfg)
				var got string
				if step.from != nil {
					got = step.from(step.dial)
				} else {
					var err error
					if got, err = whoAnswers(step.dial); err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
				}
				if got != step.want {
					t.Errorf("%s: %s answered %q, want %q", step.name, step.dial, got, step.want)
				}
			}
			uninstall(t, Config{Command: v.command})
		})
	}
}

// connectPeer links the test's namespace (address local) and the peer's
// (address remote) with a veth pair.
func connectPeer(t *testing.T, peer *peerNetns, local, remote string) {
	t.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("open netlink: %v", err)
	}
	defer h.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wl0"}, PeerName: "peer0"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	peerEnd, err := h.LinkByName("peer0")
	if err != nil {
		t.Fatalf("find peer0: %v", err)
	}
	if err := h.LinkSetNsFd(peerEnd, peer.fd); err != nil {
		t.Fatalf("move peer0 to the peer namespace: %v", err)
	}
	if err := setupLink("wl0", local); err != nil {
		t.Fatal(err)
	}
	peer.do(func() { err = setupLink("peer0", remote) })
	if err != nil {
		t.Fatal(err)
	}
}

// TestOriginalDstIPv6 redirects an IPv6 connection with a rule of its own
// (Install is IPv4 only) and checks OriginalDst's IPv6 path.
func TestOriginalDstIPv6(t *testing.T) {
	requireNetAdmin(t)
	ip6tables := lookTool(t, "ip6tables")
	enterNewNetns(t, "fd00:250::2/128")
	serve(t, "server", "[::]:8080", false)
	serve(t, "proxy", "[::1]:15001", true)
	run(t, ip6tables, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "fd00:250::2", "-j", "REDIRECT", "--to-ports", "15001")
	got, err := whoAnswers("[fd00:250::2]:8080")
	if err != nil {
		t.Fatal(err)
	}
	if want := "proxy [fd00:250::2]:8080"; got != want {
		t.Errorf("[fd00:250::2]:8080 answered %q, want %q", got, want)
	}
}

// TestOriginalDstUntranslated checks the documented answers for a
// connection no rule translated.
func TestOriginalDstUntranslated(t *testing.T) {
	requireNetAdmin(t)
	iptablesVariants(t) // skips without iptables
	enterNewNetns(t, serverAddr+"/32")
	l, err := net.Listen("tcp", serverAddr+":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := func() (netip.AddrPort, error) {
		t.Helper()
		client, err := net.DialTimeout("tcp", serverAddr+":8080", testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if err := l.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout)); err != nil {
			t.Fatal(err)
		}
		conn, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return OriginalDst(conn.(*net.TCPConn))
	}

	// No NAT rules: connection tracking is off in the new namespace.
	if got, err := accepted(); !errors.Is(err, unix.ENOENT) {
		t.Errorf("OriginalDst without NAT rules = %v, %v; want an error wrapping ENOENT", got, err)
	}
	// Tracked but excluded from capture: the local address.
	install(t, Config{ProxyUIDs: []uint32{uint32(os.Getuid())}})
	got, err := accepted()
	if want := netip.MustParseAddrPort(serverAddr + ":8080"); err != nil || got != want {
		t.Errorf("OriginalDst of an excluded connection = %v, %v; want %v", got, err, want)
	}
	if _, err := OriginalDst(nil); err == nil {
		t.Error("OriginalDst(nil) succeeded")
	}
}

// TestInstallIsIdempotent checks the nat table itself: repeated Installs
// leave the same rules, a changed Config replaces the old rules, the
// rules match Script, and Uninstall restores the table exactly, leaving
// rules that others added alone.
func TestInstallIsIdempotent(t *testing.T) {
	requireNetAdmin(t)
	full := Config{
		ProxyUIDs:            []uint32{notOurUID},
		ProxyGIDs:            []uint32{1338},
		ExcludeOutboundPorts: []uint16{53},
		ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
		CaptureInbound:       true,
		ExcludeInboundPorts:  []uint16{15021},
	}
	small := Config{ProxyUIDs: []uint32{1339}, ProxyPort: 16001}
	for _, v := range iptablesVariants(t) {
		t.Run(v.String(), func(t *testing.T) {
			enterNewNetns(t)
			full.Command, small.Command = v.command, v.command
			ipt := v.path
			// Rules of someone else, some resembling ours.
			run(t, ipt, "-w", "-t", "nat", "-N", "OTHER")
			run(t, ipt, "-w", "-t", "nat", "-A", "OTHER", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15001")
			run(t, ipt, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "udp", "-j", "OTHER")
			run(t, ipt, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "25", "-j", "RETURN")
			run(t, ipt, "-w", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "22", "-j", "RETURN")
			before := natTable(t, v)

			install(t, full)
			once := natTable(t, v)
			if once == before {
				t.Fatalf("Install changed nothing:\n%s", once)
			}
			for _, jump := range []string{"-A OUTPUT -p tcp -j CAUSEWAY_OUTPUT\n", "-A PREROUTING -p tcp -j CAUSEWAY_INBOUND\n"} {
				if n := strings.Count(once, jump); n != 1 {
					t.Errorf("%q appears %d times after Install, want once:\n%s", jump, n, once)
				}
			}
			install(t, full)
			if twice := natTable(t, v); twice != once {
				t.Errorf("second Install changed the nat table from\n%s\nto\n%s", once, twice)
			}

			// Script describes what Install does.
			uninstall(t, full)
			script, err := Script(full)
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range script {
				run(t, ipt, append([]string{"-w"}, args...)...)
			}
			if scripted := natTable(t, v); scripted != once {
				t.Errorf("applying Script gave\n%s\nInstall gave\n%s", scripted, once)
			}

			// Reconfiguring equals installing afresh.
			install(t, small)
			reconfigured := natTable(t, v)
			uninstall(t, small)
			install(t, small)
			if fresh := natTable(t, v); fresh != reconfigured {
				t.Errorf("Install over an earlier Config gave\n%s\na fresh Install gave\n%s", reconfigured, fresh)
			}
			if strings.Contains(reconfigured, ChainInbound) || strings.Contains(reconfigured, "1337") {
				t.Errorf("Install left rules of the earlier Config:\n%s", reconfigured)
			}

			uninstall(t, small)
			if after := natTable(t, v); after != before {
				t.Errorf("Uninstall left\n%s\nwant, as before Install,\n%s", after, before)
			}
			uninstall(t, small) // nothing left to remove: not an error
		})
	}
}
