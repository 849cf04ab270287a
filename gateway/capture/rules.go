package capture

import "strconv"

// chain is one of Causeway's nat chains and the rules it should hold, each
// a rule specification without the leading "-A <chain>".
type chain struct {
	name  string
	rules [][]string
}

// jump is the rule in a built-in chain that sends packets to one of ours.
type jump struct {
	from string // built-in chain: OUTPUT or PREROUTING
	to   string // one of our chains
}

// spec returns the jump's rule specification.
func (j jump) spec() []string { return []string{"-p", "tcp", "-j", j.to} }

// plan is the desired content of the nat table, as far as Causeway owns it.
type plan struct {
	chains []chain // in creation order: a chain comes after those it jumps to
	jumps  []jump
}

// The jumps from built-in chains, one per capture direction. Uninstall
// removes exactly these.
var (
	outboundJump = jump{from: "OUTPUT", to: ChainOutbound}
	inboundJump  = jump{from: "PREROUTING", to: ChainInbound}
)

// ownedChains lists every chain Install may create, referenced ones last,
// so that deleting them in this order never hits a chain still in use.
var ownedChains = []string{ChainOutbound, ChainInbound, ChainOutboundRedirect, ChainInboundRedirect}

// ownedJumps lists every jump Install may add.
var ownedJumps = []jump{outboundJump, inboundJump}

// newPlan computes the desired nat rules for cfg, which must have been
// through withDefaults.
func newPlan(cfg Config) plan {
	out := chain{name: ChainOutbound}
	for _, uid := range cfg.ProxyUIDs {
		out.rules = append(out.rules, []string{"-m", "owner", "--uid-owner", strconv.FormatUint(uint64(uid), 10), "-j", "RETURN"})
	}
	for _, gid := range cfg.ProxyGIDs {
		out.rules = append(out.rules, []string{"-m", "owner", "--gid-owner", strconv.FormatUint(uint64(gid), 10), "-j", "RETURN"})
	}
	out.rules = append(out.rules, []string{"-d", "127.0.0.1/32", "-j", "RETURN"})
	for _, port := range cfg.ExcludeOutboundPorts {
		out.rules = append(out.rules, []string{"-p", "tcp", "--dport", strconv.Itoa(int(port)), "-j", "RETURN"})
	}
	for _, p := range cfg.ExcludeOutboundCIDRs {
		out.rules = append(out.rules, []string{"-d", p.Masked().String(), "-j", "RETURN"})
	}
	for _, p := range cfg.IncludeOutboundCIDRs {
		out.rules = append(out.rules, []string{"-d", p.Masked().String(), "-j", ChainOutboundRedirect})
	}

	p := plan{
		chains: []chain{redirect(ChainOutboundRedirect, cfg.ProxyPort), out},
		jumps:  []jump{outboundJump},
	}
	if !cfg.CaptureInbound {
		return p
	}

	in := chain{name: ChainInbound}
	for _, port := range cfg.ExcludeInboundPorts {
		in.rules = append(in.rules, []string{"-p", "tcp", "--dport", strconv.Itoa(int(port)), "-j", "RETURN"})
	}
	in.rules = append(in.rules, []string{"-p", "tcp", "-j", ChainInboundRedirect})
	p.chains = append(p.chains, redirect(ChainInboundRedirect, cfg.InboundPort), in)
	p.jumps = append(p.jumps, inboundJump)
	return p
}

// redirect is a chain that sends every TCP packet to port on this host.
func redirect(name string, port uint16) chain {
	return chain{name: name, rules: [][]string{{"-p", "tcp", "-j", "REDIRECT", "--to-ports", strconv.Itoa(int(port))}}}
}

// hasChain reports whether the plan contains the chain named.
func (p plan) hasChain(name string) bool {
	for _, c := range p.chains {
		if c.name == name {
			return true
		}
	}
	return false
}

// Script returns the iptables argument lists, without the command name,
// that Install's result amounts to when applied in order to a nat table
// holding none of Causeway's chains. It is meant for dry runs ("iptables "
// + each line) and for review; Install itself also copes with a table that
// already holds an earlier configuration.
func Script(cfg Config) ([][]string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := newPlan(cfg)
	var script [][]string
	for _, c := range p.chains {
		script = append(script, []string{"-t", "nat", "-N", c.name})
	}
	for _, c := range p.chains {
		for _, r := range c.rules {
			script = append(script, appendRule(c.name, r))
		}
	}
	for _, j := range p.jumps {
		script = append(script, appendRule(j.from, j.spec()))
	}
	return script, nil
}

// appendRule returns the arguments that append rule spec to chain.
func appendRule(chain string, spec []string) []string {
	return append([]string{"-t", "nat", "-A", chain}, spec...)
}
