package capture

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestScript(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want []string
	}{
		"defaults": {
			cfg: Config{ProxyUIDs: []uint32{1337}},
			want: []string{
				"-t nat -N CAUSEWAY_REDIRECT",
				"-t nat -N CAUSEWAY_OUTPUT",
				"-t nat -A CAUSEWAY_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --uid-owner 1337 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 127.0.0.1/32 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 0.0.0.0/0 -j CAUSEWAY_REDIRECT",
				"-t nat -A OUTPUT -p tcp -j CAUSEWAY_OUTPUT",
			},
		},
		"every outbound option": {
			cfg: Config{
				ProxyPort:            16001,
				ProxyUIDs:            []uint32{1337, 0},
				ProxyGIDs:            []uint32{1338},
				ExcludeOutboundPorts: []uint16{53, 8443},
				IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/24")},
				ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.10/32")},
				ExcludeInboundPorts:  []uint16{22}, // ignored: inbound capture is off
			},
			want: []string{
				"-t nat -N CAUSEWAY_REDIRECT",
				"-t nat -N CAUSEWAY_OUTPUT",
				"-t nat -A CAUSEWAY_REDIRECT -p tcp -j REDIRECT --to-ports 16001",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --uid-owner 1337 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --uid-owner 0 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --gid-owner 1338 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 127.0.0.1/32 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -p tcp --dport 53 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -p tcp --dport 8443 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 10.96.0.10/32 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 10.0.0.0/8 -j CAUSEWAY_REDIRECT",
				"-t nat -A CAUSEWAY_OUTPUT -d 192.168.1.0/24 -j CAUSEWAY_REDIRECT",
				"-t nat -A OUTPUT -p tcp -j CAUSEWAY_OUTPUT",
			},
		},
		"inbound capture": {
			cfg: Config{
				ProxyGIDs:           []uint32{1337},
				CaptureInbound:      true,
				ExcludeInboundPorts: []uint16{15021, 15090},
			},
			want: []string{
				"-t nat -N CAUSEWAY_REDIRECT",
				"-t nat -N CAUSEWAY_OUTPUT",
				"-t nat -N CAUSEWAY_IN_REDIRECT",
				"-t nat -N CAUSEWAY_INBOUND",
				"-t nat -A CAUSEWAY_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --gid-owner 1337 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 127.0.0.1/32 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 0.0.0.0/0 -j CAUSEWAY_REDIRECT",
				"-t nat -A CAUSEWAY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
				"-t nat -A CAUSEWAY_INBOUND -p tcp --dport 15021 -j RETURN",
				"-t nat -A CAUSEWAY_INBOUND -p tcp --dport 15090 -j RETURN",
				"-t nat -A CAUSEWAY_INBOUND -p tcp -j CAUSEWAY_IN_REDIRECT",
				"-t nat -A OUTPUT -p tcp -j CAUSEWAY_OUTPUT",
				"-t nat -A PREROUTING -p tcp -j CAUSEWAY_INBOUND",
			},
		},
		"inbound port": {
			cfg: Config{ProxyUIDs: []uint32{1337}, CaptureInbound: true, InboundPort: 16006},
			want: []string{
				"-t nat -N CAUSEWAY_REDIRECT",
				"-t nat -N CAUSEWAY_OUTPUT",
				"-t nat -N CAUSEWAY_IN_REDIRECT",
				"-t nat -N CAUSEWAY_INBOUND",
				"-t nat -A CAUSEWAY_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
				"-t nat -A CAUSEWAY_OUTPUT -m owner --uid-owner 1337 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 127.0.0.1/32 -j RETURN",
				"-t nat -A CAUSEWAY_OUTPUT -d 0.0.0.0/0 -j CAUSEWAY_REDIRECT",
				"-t nat -A CAUSEWAY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006",
				"-t nat -A CAUSEWAY_INBOUND -p tcp -j CAUSEWAY_IN_REDIRECT",
				"-t nat -A OUTPUT -p tcp -j CAUSEWAY_OUTPUT",
				"-t nat -A PREROUTING -p tcp -j CAUSEWAY_INBOUND",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			script, err := Script(tc.cfg)
			if err != nil {
				t.Fatalf("Script: %v", err)
			}
			var got []string
			for _, args := range script {
				got = append(got, strings.Join(args, " "))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Script =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestScriptRejectsInvalidConfig(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"no proxy owner": {
			cfg:     Config{},
			wantErr: "neither ProxyUIDs nor ProxyGIDs is set",
		},
		"zero excluded outbound port": {
			cfg:     Config{ProxyUIDs: []uint32{1337}, ExcludeOutboundPorts: []uint16{80, 0}},
			wantErr: "ExcludeOutboundPorts: port 0",
		},
		"zero excluded inbound port": {
			cfg:     Config{ProxyUIDs: []uint32{1337}, CaptureInbound: true, ExcludeInboundPorts: []uint16{0}},
			wantErr: "ExcludeInboundPorts: port 0",
		},
		"IPv6 include": {
			cfg:     Config{ProxyUIDs: []uint32{1337}, IncludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}},
			wantErr: "IncludeOutboundCIDRs: fd00::/8 is not IPv4",
		},
		"IPv4-mapped exclude": {
			cfg:     Config{ProxyUIDs: []uint32{1337}, ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}},
			wantErr: "ExcludeOutboundCIDRs: ::ffff:10.0.0.0/104 is not IPv4",
		},
		"zero prefix": {
			cfg:     Config{ProxyUIDs: []uint32{1337}, ExcludeOutboundCIDRs: []netip.Prefix{{}}},
			wantErr: "ExcludeOutboundCIDRs: invalid prefix",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			script, err := Script(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Script = %q, %v; want an error containing %q", script, err, tc.wantErr)
			}
			// Install must refuse before running anything, so this needs
			// neither root nor iptables.
			if err := Install(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Install = %v; want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestMissingIPTables(t *testing.T) {
	for _, command := range []string{"causeway-test-no-such-iptables", "/nonexistent/iptables"} {
		cfg := Config{Command: command, ProxyUIDs: []uint32{1337}}
		for name, run := range map[string]func(context.Context, Config) error{"Install": Install, "Uninstall": Uninstall} {
			t.Run(name+" "+command, func(t *testing.T) {
				err := run(context.Background(), cfg)
				if !errors.Is(err, ErrIPTablesNotFound) {
					t.Fatalf("%s = %v; want ErrIPTablesNotFound", name, err)
				}
				for _, want := range []string{command, "Debian package iptables"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s error %q does not mention %q", name, err, want)
					}
				}
			})
		}
	}
}

func TestParseChains(t *testing.T) {
	listing := "-P PREROUTING ACCEPT\n-P OUTPUT ACCEPT\n-N CAUSEWAY_OUTPUT\n-N OTHER\n-A OUTPUT -p tcp -j CAUSEWAY_OUTPUT\n-A OTHER -j RETURN\n"
	got := parseChains([]byte(listing))
	want := map[string]bool{"CAUSEWAY_OUTPUT": true, "OTHER": true}
	if len(got) != len(want) || !got["CAUSEWAY_OUTPUT"] || !got["OTHER"] {
		t.Errorf("parseChains = %v, want %v", got, want)
	}
}
