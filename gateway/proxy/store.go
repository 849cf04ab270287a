package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/gateway/jwtauthn"
	"github.com/causeway-mesh/causeway/gateway/lb"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
)

var unmarshalOpts = proto.UnmarshalOptions{DiscardUnknown: true}

// validator is what every generated Envoy proto message implements.
type validator interface{ ValidateAll() error }

// Store holds the accepted xDS resources and the model compiled from
// them. It implements the xDS client's Applier: Apply either accepts a
// whole response — and publishes a new model — or rejects it and changes
// nothing. Safe for concurrent use; models are read lock-free.
type Store struct {
	mu        sync.Mutex
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	versions  map[string]string

	current atomic.Pointer[model]
	// jwtOptions configure the JWT authenticators (JWKS fetching).
	jwtOptions jwtauthn.Options
	// secrets resolves the SDS names TLS contexts use; nil without SDS.
	secrets *Secrets
	gen     uint64
	// onUpdate, if set, is called (without the lock) after each new model.
	onUpdate []func()
}

// NewStore returns an empty store whose model has nothing configured.
func NewStore() *Store {
	s := &Store{
		listeners: map[string]*listenerv3.Listener{},
		routes:    map[string]*routev3.RouteConfiguration{},
		clusters:  map[string]*clusterv3.Cluster{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		versions:  map[string]string{},
	}
	m, err := s.compile(s.listeners, s.routes, s.clusters, s.endpoints, nil)
	if err != nil {
		panic(err) // an empty configuration always compiles
	}
	s.current.Store(m)
	return s
}

func (s *Store) model() *model { return s.current.Load() }

// Apply validates and applies one state-of-the-world response of typeURL.
// On error nothing changes: the caller NACKs with the error.
func (s *Store) Apply(typeURL, version string, resources []*anypb.Any) error {
	s.mu.Lock()
	listeners, routes, clusters, endpoints := s.listeners, s.routes, s.clusters, s.endpoints
	var err error
	switch typeURL {
	case resourcev3.ListenerType:
		listeners, err = decodeAll[*listenerv3.Listener](resources, func(l *listenerv3.Listener) string { return l.GetName() })
	case resourcev3.RouteType:
		routes, err = decodeAll[*routev3.RouteConfiguration](resources, func(r *routev3.RouteConfiguration) string { return r.GetName() })
	case resourcev3.ClusterType:
		clusters, err = decodeAll[*clusterv3.Cluster](resources, func(c *clusterv3.Cluster) string { return c.GetName() })
	case resourcev3.EndpointType:
		endpoints, err = decodeAll[*endpointv3.ClusterLoadAssignment](resources, func(c *endpointv3.ClusterLoadAssignment) string { return c.GetClusterName() })
	default:
		err = fmt.Errorf("type %s is not supported", typeURL)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	m, err := s.compile(listeners, routes, clusters, endpoints, s.current.Load())
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.listeners, s.routes, s.clusters, s.endpoints = listeners, routes, clusters, endpoints
	s.versions[typeURL] = version
	m.versions = maps.Clone(s.versions)
	s.current.Store(m)
	hooks := slices.Clone(s.onUpdate)
	s.mu.Unlock()
	for _, h := range hooks {
		h()
	}
	return nil
}

// UseSecrets makes the store resolve SDS secret names from secrets, and
// secrets subscribe to the names the accepted configuration uses. Call
// it before the first Apply.
func (s *Store) UseSecrets(secrets *Secrets) {
	s.mu.Lock()
	s.secrets = secrets
	s.mu.Unlock()
	secrets.setWanted(s.secretNames)
}

// addHook runs f after each new model.
func (s *Store) addHook(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onUpdate = append(s.onUpdate, f)
}

// secretNames returns the SDS secret names the accepted configuration
// uses, sorted.
func (s *Store) secretNames() []string {
	m := s.model()
	set := map[string]bool{}
	add := func(t *tlsSpec) {
		if t == nil {
			return
		}
		if t.sdsCert != "" {
			set[t.sdsCert] = true
		}
		if t.sdsRoots != "" {
			set[t.sdsRoots] = true
		}
	}
	for _, l := range m.listeners {
		for _, ch := range l.chains() {
			add(ch.tlsSpec)
		}
	}
	for _, c := range m.clusters {
		add(c.tlsSpec)
	}
	return slices.Sorted(maps.Keys(set))
}

// Names returns the RDS and EDS names the accepted listeners and clusters
// reference, sorted.
func (s *Store) Names(typeURL string) []string {
	m := s.model()
	set := map[string]bool{}
	switch typeURL {
	case resourcev3.RouteType:
		for _, l := range m.listeners {
			for _, ch := range l.chains() {
				if ch.http != nil && ch.http.routeName != "" {
					set[ch.http.routeName] = true
				}
			}
		}
	case resourcev3.EndpointType:
		for _, c := range m.clusters {
			if c.kind == clusterEDS {
				set[c.edsName] = true
			}
		}
	default:
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// Versions returns the accepted version of each type.
func (s *Store) Versions() map[string]string { return maps.Clone(s.model().versions) }

// Resources returns the accepted resources of a type, for the config dump.
func (s *Store) Resources(typeURL string) []proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []proto.Message
	add := func(names []string, get func(string) proto.Message) {
		slices.Sort(names)
		for _, n := range names {
			out = append(out, get(n))
		}
	}
	switch typeURL {
	case resourcev3.ListenerType:
		add(slices.Collect(maps.Keys(s.listeners)), func(n string) proto.Message { return s.listeners[n] })
	case resourcev3.RouteType:
		add(slices.Collect(maps.Keys(s.routes)), func(n string) proto.Message { return s.routes[n] })
	case resourcev3.ClusterType:
		add(slices.Collect(maps.Keys(s.clusters)), func(n string) proto.Message { return s.clusters[n] })
	case resourcev3.EndpointType:
		add(slices.Collect(maps.Keys(s.endpoints)), func(n string) proto.Message { return s.endpoints[n] })
	}
	return out
}

func decodeAll[T interface {
	proto.Message
	validator
}](resources []*anypb.Any, name func(T) string) (map[string]T, error) {
	out := make(map[string]T, len(resources))
	var errs []error
	for i, a := range resources {
		msg, err := anypb.UnmarshalNew(a, unmarshalOpts)
		if err != nil {
			errs = append(errs, fmt.Errorf("resource %d: %w", i, err))
			continue
		}
		t, ok := msg.(T)
		if !ok {
			errs = append(errs, fmt.Errorf("resource %d: unexpected type %s", i, a.GetTypeUrl()))
			continue
		}
		n := name(t)
		if err := t.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		if _, dup := out[n]; dup {
			errs = append(errs, fmt.Errorf("%s: named twice", n))
			continue
		}
		out[n] = t
	}
	return out, errors.Join(errs...)
}

// compile builds a complete model; prev carries load-balancer state over.
func (s *Store) compile(listeners map[string]*listenerv3.Listener, routes map[string]*routev3.RouteConfiguration,
	clusters map[string]*clusterv3.Cluster, endpoints map[string]*endpointv3.ClusterLoadAssignment, prev *model,
) (*model, error) {
	s.gen++
	m := &model{
		listeners:  map[string]*listener{},
		byAddr:     map[netip.AddrPort]*listener{},
		byPort:     map[uint16]*listener{},
		routes:     map[string]*routeConfig{},
		clusters:   map[string]*cluster{},
		endpoints:  map[string]endpointMeta{},
		generation: s.gen,
	}
	env := &compileEnv{used: map[string]*jwtauthn.Authenticator{}, opts: s.jwtOptions, secrets: s.secrets}
	if prev != nil {
		env.prev = prev.auth
	}
	m.auth = env.used
	var errs []error
	defer func() {
		// Authenticators made for a model that is not published are
		// closed at once; those the new model no longer uses, after the
		// requests that still hold the old model are done.
		published := len(errs) == 0
		for key, a := range env.used {
			if !published && env.prev[key] == nil {
				a.Close()
			}
		}
		if published {
			for key, a := range env.prev {
				if env.used[key] == nil {
					time.AfterFunc(authenticatorGrace, a.Close)
				}
			}
		}
	}()
	for name, l := range listeners {
		cl, err := compileListener(l, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.listeners[name] = cl
		if !cl.bind && !cl.inbound {
			if cl.addr.Addr().IsUnspecified() {
				if _, dup := m.byPort[cl.addr.Port()]; dup {
					errs = append(errs, fmt.Errorf("listener %q: another listener has address %s", name, cl.addr))
				}
				m.byPort[cl.addr.Port()] = cl
			} else {
				if _, dup := m.byAddr[cl.addr]; dup {
					errs = append(errs, fmt.Errorf("listener %q: another listener has address %s", name, cl.addr))
				}
				m.byAddr[cl.addr] = cl
			}
		}
	}
	for name, r := range routes {
		cr, err := compileRouteConfig(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.routes[name] = cr
	}
	for name, c := range clusters {
		if strings.HasPrefix(name, xdsconv.LinkClusterPrefix) {
			lp, err := compileLink(c)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if m.links == nil {
				m.links = map[string]*linkPeer{}
			}
			m.links[lp.cluster] = lp
			continue
		}
		cc, inline, err := compileCluster(c, s.secrets)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cla := inline
		if cc.kind == clusterEDS {
			cla = endpoints[cc.edsName]
		}
		if cla != nil {
			eps, tunnels, err := compileEndpoints(cla)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cc.tunnels = tunnels
			if name == gatewayCluster {
				m.gatewayIPs = map[netip.Addr]bool{}
				for _, ep := range eps {
					if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
						m.gatewayIPs[ap.Addr()] = true
					}
				}
			}
			set := strings.HasSuffix(name, "."+xdsconv.ClusterSetDomain)
			for _, ep := range eps {
				if ep.Cluster == "" && !tunnels[ep.Address] {
					continue
				}
				meta := m.endpoints[ep.Address]
				meta.cluster, meta.hbone = cmp.Or(meta.cluster, ep.Cluster), meta.hbone || tunnels[ep.Address]
				meta.clusterset = meta.clusterset || set
				m.endpoints[ep.Address] = meta
				if set && meta.hbone {
					if m.tunnelIPs == nil {
						m.tunnelIPs = map[netip.Addr]endpointMeta{}
					}
					if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
						m.tunnelIPs[ap.Addr()] = meta
					}
				}
			}
			var old *lb.Balancer
			if prev != nil && prev.clusters[name] != nil {
				old = prev.clusters[name].balancer
			}
			b, err := lb.New(cc.lbConfig, eps, old)
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %q: %w", name, err))
				continue
			}
			cc.balancer = b
		}
		m.clusters[name] = cc
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// authenticatorGrace is how long a JWT authenticator the configuration
// dropped keeps working for requests that started before the change.
const authenticatorGrace = time.Minute
