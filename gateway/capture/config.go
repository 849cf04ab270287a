package capture

import (
	"errors"
	"fmt"
	"net/netip"
)

// Default ports, the same as Istio's, so that proxies and tooling built for
// one find their way around the other.
const (
	// DefaultProxyPort is the proxy's outbound capture port.
	DefaultProxyPort uint16 = 15001
	// DefaultInboundPort is the proxy's inbound capture port.
	DefaultInboundPort uint16 = 15006
)

// The nat chains Install creates. Nothing else in the nat table is touched,
// apart from one jump rule each in OUTPUT and PREROUTING.
const (
	// ChainOutbound holds the outbound exclusions and inclusions; OUTPUT
	// jumps to it for every TCP packet.
	ChainOutbound = "CAUSEWAY_OUTPUT"
	// ChainOutboundRedirect redirects to the proxy's outbound port.
	ChainOutboundRedirect = "CAUSEWAY_REDIRECT"
	// ChainInbound holds the inbound exclusions; PREROUTING jumps to it for
	// every TCP packet when inbound capture is on.
	ChainInbound = "CAUSEWAY_INBOUND"
	// ChainInboundRedirect redirects to the proxy's inbound port.
	ChainInboundRedirect = "CAUSEWAY_IN_REDIRECT"
)

// defaultCommand is the iptables binary used when Config.Command is empty.
const defaultCommand = "iptables"

// Config says which traffic is captured and where it goes. The zero value
// is not usable: at least one of ProxyUIDs and ProxyGIDs must be set, or the
// proxy's own connections would be redirected back to it forever.
type Config struct {
	// Command is the iptables binary, a name looked up in PATH or a path.
	// Empty means "iptables", whichever variant (legacy or nf_tables) the
	// system has installed under that name.
	Command string

	// ProxyPort is where outbound connections are redirected to; the proxy
	// listens on it at 127.0.0.1 or the wildcard address. Zero means
	// DefaultProxyPort.
	ProxyPort uint16
	// ProxyUIDs and ProxyGIDs identify the proxy's own traffic, which is
	// never redirected (iptables -m owner --uid-owner / --gid-owner, which
	// match the socket's effective UID and GID).
	ProxyUIDs []uint32
	ProxyGIDs []uint32
	// ExcludeOutboundPorts are destination ports that bypass the proxy.
	ExcludeOutboundPorts []uint16
	// IncludeOutboundCIDRs are the IPv4 destinations that are captured;
	// empty means all (0.0.0.0/0).
	IncludeOutboundCIDRs []netip.Prefix
	// ExcludeOutboundCIDRs are IPv4 destinations that bypass the proxy,
	// even inside IncludeOutboundCIDRs.
	ExcludeOutboundCIDRs []netip.Prefix

	// CaptureInbound turns on inbound capture: TCP connections arriving
	// from outside the namespace are redirected to InboundPort.
	CaptureInbound bool
	// InboundPort is where inbound connections are redirected to. Zero
	// means DefaultInboundPort. Ignored unless CaptureInbound is set.
	InboundPort uint16
	// ExcludeInboundPorts are destination ports of inbound connections
	// that reach the workload directly. The proxy's own listening ports
	// (health, metrics) belong here. Ignored unless CaptureInbound is set.
	ExcludeInboundPorts []uint16
}

// withDefaults returns cfg with zero values replaced by the defaults, after
// checking that what is left makes sense.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Command == "" {
		cfg.Command = defaultCommand
	}
	if cfg.ProxyPort == 0 {
		cfg.ProxyPort = DefaultProxyPort
	}
	if cfg.InboundPort == 0 {
		cfg.InboundPort = DefaultInboundPort
	}
	if len(cfg.IncludeOutboundCIDRs) == 0 {
		cfg.IncludeOutboundCIDRs = []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}
	}

	var errs []error
	if len(cfg.ProxyUIDs) == 0 && len(cfg.ProxyGIDs) == 0 {
		errs = append(errs, errors.New("neither ProxyUIDs nor ProxyGIDs is set: the proxy's own connections would be redirected back to it"))
	}
	errs = append(errs, checkPorts("ExcludeOutboundPorts", cfg.ExcludeOutboundPorts))
	errs = append(errs, checkPrefixes("IncludeOutboundCIDRs", cfg.IncludeOutboundCIDRs))
	errs = append(errs, checkPrefixes("ExcludeOutboundCIDRs", cfg.ExcludeOutboundCIDRs))
	if cfg.CaptureInbound {
		errs = append(errs, checkPorts("ExcludeInboundPorts", cfg.ExcludeInboundPorts))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid capture config: %w", err)
	}
	return cfg, nil
}

func checkPorts(field string, ports []uint16) error {
	for _, p := range ports {
		if p == 0 {
			return fmt.Errorf("%s: port 0 is not a port", field)
		}
	}
	return nil
}

func checkPrefixes(field string, prefixes []netip.Prefix) error {
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("%s: invalid prefix %q", field, p)
		}
		if !p.Addr().Is4() {
			return fmt.Errorf("%s: %s is not IPv4, and only IPv4 is captured", field, p)
		}
	}
	return nil
}
