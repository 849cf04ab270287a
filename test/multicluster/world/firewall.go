package world

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The world's packet filter: iptables rules in the namespace's filter
// table, INPUT chain. Every packet in the namespace goes out on lo and
// comes back in, so INPUT sees all of them, once, with the connection
// tracking state they had when sent. Drops there are silent, as a firewall
// or a cut cable between real clusters would be: a blocked connect times
// out rather than failing at once.
//
// Each rule set has a chain of its own, installed and removed atomically
// with iptables-restore --noflush (which leaves every other rule alone).
// Fault rule sets (BlockUDP, Partition) are inserted at the head of INPUT,
// ahead of Isolate's, because Isolate accepts packets of established
// connections and a fault must cut those too.

// iptablesTimeout bounds one iptables-restore run.
const iptablesTimeout = 20 * time.Second

// chainPrefix starts every chain the world makes.
const chainPrefix = "CW-"

// firewall tracks the rule sets in force, so that Stop removes what a test
// left behind.
type firewall struct {
	ns *Namespace // set by Start

	mu     sync.Mutex
	seq    int
	active map[string]bool // chain names
}

// ruleSet is one installed set of rules: its chain, and whether it was
// inserted at the head of INPUT.
type ruleSet struct {
	chain string
	head  bool
}

// Isolate makes every cluster's pods reachable only from inside that
// cluster. A new TCP connection or UDP flow to an address in cluster i's
// pod CIDR (10.i.0.0/16) is accepted only from that CIDR or from cluster
// i's infrastructure range (10.255.i.0/24: its control plane, its gateway,
// Cluster.DialContext); anything else is dropped. Packets of connections
// that already exist pass (TCP segments other than a SYN always do: only a
// SYN opens a connection), and so does everything to other addresses.
//
// Processes make this real by binding their sources: causeway-proxy binds
// a sidecar's upstream connections to its --pod-ip and a gateway's to its
// own address. A socket that binds nothing comes from NeutralSource and
// reaches no pod, so no test can pass by reaching a remote pod directly.
//
// The returned undo removes the rules (once; later calls return nil);
// Stop removes them too.
func (w *World) Isolate() (undo func() error, err error) {
	rules := []string{
		"-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		// Only a SYN opens a TCP connection. Letting the other segments
		// through keeps connections that were open before conntrack was
		// on in the namespace (it is on from the first rule that uses it,
		// and it picks up a running connection as NEW).
		"-p tcp ! --syn -j ACCEPT",
	}
	for _, c := range w.Clusters {
		rules = append(rules,
			fmt.Sprintf("-s %s -d %s -j RETURN", c.PodCIDR, c.PodCIDR),
			fmt.Sprintf("-s %s -d %s -j RETURN", c.InfraPrefix, c.PodCIDR),
			fmt.Sprintf("-d %s -j DROP", c.PodCIDR),
		)
	}
	return w.install("ISOLATE", false, rules)
}

// BlockUDP drops every UDP datagram between a and b, both ways, whatever
// the state of its flow: QUIC between two gateways stops, TCP between them
// passes (a firewall that lets only TCP through). The returned undo
// removes the rules; Stop removes them too.
func (w *World) BlockUDP(a, b netip.Addr) (undo func() error, err error) {
	if !a.IsValid() || !b.IsValid() {
		return nil, fmt.Errorf("block UDP between %s and %s: both addresses are required", a, b)
	}
	return w.install("NOUDP", true, []string{
		fmt.Sprintf("-p udp -s %s -d %s -j DROP", a, b),
		fmt.Sprintf("-p udp -s %s -d %s -j DROP", b, a),
	})
}

// Partition cuts each address off: every packet from or to it is dropped,
// whatever the state of its connection, so established connections stall
// and new ones time out, as when a cluster's gateway falls off the
// network. The returned undo removes the rules; Stop removes them too.
func (w *World) Partition(addrs ...netip.Addr) (undo func() error, err error) {
	if len(addrs) == 0 {
		return nil, errors.New("partition: no address given")
	}
	var rules []string
	for _, a := range addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("partition: invalid address in %v", addrs)
		}
		rules = append(rules, fmt.Sprintf("-s %s -j DROP", a), fmt.Sprintf("-d %s -j DROP", a))
	}
	return w.install("PART", true, rules)
}

// install adds a rule set as a chain of its own, jumped to from INPUT
// (first when head), and returns its undo.
func (w *World) install(kind string, head bool, rules []string) (func() error, error) {
	fw := &w.firewall
	fw.mu.Lock()
	if fw.active == nil {
		fw.active = map[string]bool{}
	}
	fw.seq++
	rs := ruleSet{chain: fmt.Sprintf("%s%s-%d", chainPrefix, kind, fw.seq), head: head}
	fw.mu.Unlock()

	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n", rs.chain)
	for _, r := range rules {
		fmt.Fprintf(&b, "-A %s %s\n", rs.chain, r)
	}
	if head {
		fmt.Fprintf(&b, "-I INPUT 1 -j %s\n", rs.chain)
	} else {
		fmt.Fprintf(&b, "-A INPUT -j %s\n", rs.chain)
	}
	b.WriteString("COMMIT\n")
	if err := fw.restore(b.String()); err != nil {
		return nil, fmt.Errorf("install rules %s: %w", rs.chain, err)
	}
	fw.mu.Lock()
	fw.active[rs.chain] = true
	fw.mu.Unlock()
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() { err = fw.remove(rs.chain) })
		return err
	}, nil
}

// remove deletes a rule set, unless it is already gone.
func (fw *firewall) remove(chain string) error {
	fw.mu.Lock()
	active := fw.active[chain]
	fw.mu.Unlock()
	if !active {
		return nil
	}
	script := fmt.Sprintf("*filter\n-D INPUT -j %s\n-F %s\n-X %s\nCOMMIT\n", chain, chain, chain)
	if err := fw.restore(script); err != nil {
		return fmt.Errorf("remove rules %s: %w", chain, err)
	}
	fw.mu.Lock()
	delete(fw.active, chain)
	fw.mu.Unlock()
	return nil
}

// removeAll removes every rule set still in force.
func (fw *firewall) removeAll() error {
	fw.mu.Lock()
	chains := make([]string, 0, len(fw.active))
	for c := range fw.active {
		chains = append(chains, c)
	}
	fw.mu.Unlock()
	var errs []error
	for _, c := range chains {
		errs = append(errs, fw.remove(c))
	}
	return errors.Join(errs...)
}

// restore applies an iptables-restore script inside the namespace without
// flushing anything else.
func (fw *firewall) restore(script string) error {
	bin, err := exec.LookPath("iptables-restore")
	if err != nil {
		return fmt.Errorf("iptables-restore is not installed (Debian package iptables): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
	defer cancel()
	_, err = fw.ns.Exec(ctx, []byte(script), bin, "-w", "5", "--noflush")
	return err
}
