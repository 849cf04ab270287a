// Package clusterset brings up a Causeway cluster set on a test world: it
// joins member clusters to a hub with the same code `causeway join` runs,
// and runs the real causeway-hub and causeway-agent binaries as processes
// inside the world's network namespace. Tests and `causeway demo` use it;
// scenarios stop, kill and restart the processes to make real faults.
//
// It also runs the data plane as real causeway-proxy processes with real
// identities (proxies.go): a member's east-west gateway (SetUpGateway,
// then Gateway.Start: the gateway's ServiceAccount and in-cluster Service,
// the MemberCluster's gateway addresses by a second join, and
// --mode=gateway on the cluster's gateway address 10.255.i.2), and a pod's
// sidecar (StartSidecar: SDS with a pod-bound token, HBONE on the pod IP,
// upstream connections from the pod IP, explicit listeners). Proxies can
// be killed and started again for fault tests.
package clusterset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/federation/membership"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// Ports each member's agent serves on its cluster's address inside the
// namespace.
const (
	DNSPort     = 53
	MetricsPort = 9090
	HealthPort  = 9091
	XDSPort     = 15010
	SDSPort     = 15012
	// The hub's, on the hub cluster's address: apart from an agent's, since
	// the hub cluster may also be a member.
	hubMetricsPort = 9100
	hubHealthPort  = 9101
)

// Options configure a cluster set.
type Options struct {
	// Hub names the world's cluster that runs the hub.
	Hub string
	// Members name the clusters to join (the hub may be one of them).
	Members []string
	// GracePeriod of the hub; LeaseDuration of the agents. Zero: the
	// binaries' defaults.
	GracePeriod, LeaseDuration time.Duration
	// LogLevel of the hub and agents ("info" when empty).
	LogLevel string
}

// ClusterSet is a running hub and its agents.
type ClusterSet struct {
	W    *world.World
	Opts Options

	mu       sync.Mutex
	hub      *world.Proc
	agents   map[string]*world.Proc
	gateways map[string]*Gateway // by member
	sidecars []*Sidecar
}

// Start joins every member to the hub and starts the hub and the agents.
func Start(ctx context.Context, w *world.World, o Options) (*ClusterSet, error) {
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	hub := w.Cluster(o.Hub)
	if hub == nil {
		return nil, fmt.Errorf("no cluster %q in the world", o.Hub)
	}
	cs := &ClusterSet{W: w, Opts: o, agents: map[string]*world.Proc{}}
	for _, name := range o.Members {
		m := w.Cluster(name)
		if m == nil {
			return nil, fmt.Errorf("no cluster %q in the world", name)
		}
		if err := membership.Join(ctx, cs.joinOptions(m)); err != nil {
			return nil, fmt.Errorf("join %s: %w", name, err)
		}
	}
	if err := cs.StartHub(); err != nil {
		return nil, err
	}
	for _, name := range o.Members {
		if err := cs.StartAgent(name); err != nil {
			return nil, errors.Join(err, cs.Stop())
		}
	}
	return cs, nil
}

// joinOptions are the options `causeway join` gets for member m.
func (cs *ClusterSet) joinOptions(m *world.Cluster) membership.JoinOptions {
	hub := cs.W.Cluster(cs.Opts.Hub)
	return membership.JoinOptions{
		Name: m.Name, Region: m.Region, Zone: m.Zone,
		Hub: hub.Config, Member: m.Config,
		// The agents run inside the namespace: they reach the hub at its
		// inner address, not at the host forward.
		HubServer: hub.InnerServer,
	}
}

// StartHub starts causeway-hub (again).
func (cs *ClusterSet) StartHub() error {
	hub := cs.W.Cluster(cs.Opts.Hub)
	args := []string{
		"--kubeconfig=" + hub.InnerKubeconfig,
		"--metrics-addr=" + hub.InfraAddr(hubMetricsPort),
		"--health-addr=" + hub.InfraAddr(hubHealthPort),
		"--log-level=" + cs.Opts.LogLevel,
	}
	if cs.Opts.GracePeriod > 0 {
		args = append(args, "--grace-period="+cs.Opts.GracePeriod.String())
	}
	p, err := cs.W.Run(cs.Opts.Hub+"/causeway-hub", "causeway-hub", args...)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.hub = p
	cs.mu.Unlock()
	return nil
}

// StartAgent starts the named member's causeway-agent (again).
func (cs *ClusterSet) StartAgent(name string) error {
	m := cs.W.Cluster(name)
	if m == nil {
		return fmt.Errorf("no cluster %q in the world", name)
	}
	args := []string{
		"--kubeconfig=" + m.InnerKubeconfig,
		"--dns-addr=" + m.InfraAddr(DNSPort),
		"--xds-addr=" + m.InfraAddr(XDSPort),
		"--sds-addr=" + m.InfraAddr(SDSPort),
		"--metrics-addr=" + m.InfraAddr(MetricsPort),
		"--health-addr=" + m.InfraAddr(HealthPort),
		"--log-level=" + cs.Opts.LogLevel,
	}
	if cs.Opts.LeaseDuration > 0 {
		args = append(args, "--lease-duration="+cs.Opts.LeaseDuration.String())
	}
	p, err := cs.W.Run(name+"/causeway-agent", "causeway-agent", args...)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.agents[name] = p
	cs.mu.Unlock()
	return nil
}

// Hub is the hub process.
func (cs *ClusterSet) Hub() *world.Proc {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.hub
}

// Agent is the named member's agent process.
func (cs *ClusterSet) Agent(name string) *world.Proc {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.agents[name]
}

// DNSAddr is the named member's clusterset.local DNS server address.
func (cs *ClusterSet) DNSAddr(name string) string {
	return cs.W.Cluster(name).InfraAddr(DNSPort)
}

// MetricsURL is the named member agent's metrics endpoint.
func (cs *ClusterSet) MetricsURL(name string) string {
	return "http://" + cs.W.Cluster(name).InfraAddr(MetricsPort) + "/metrics"
}

// HubMetricsURL is the hub's metrics endpoint.
func (cs *ClusterSet) HubMetricsURL() string {
	return "http://" + cs.W.Cluster(cs.Opts.Hub).InfraAddr(hubMetricsPort) + "/metrics"
}

// Stop stops the proxies, then the agents and the hub.
func (cs *ClusterSet) Stop() error {
	cs.mu.Lock()
	var proxies []*world.Proc
	for _, g := range cs.gateways {
		proxies = append(proxies, g.Proc())
	}
	for _, s := range cs.sidecars {
		proxies = append(proxies, s.Proc())
	}
	procs := []*world.Proc{cs.hub}
	for _, p := range cs.agents {
		procs = append(procs, p)
	}
	cs.mu.Unlock()
	stopAll(proxies)
	stopAll(procs)
	return nil
}

// stopAll stops processes concurrently; nil entries are skipped.
func stopAll(procs []*world.Proc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
}
