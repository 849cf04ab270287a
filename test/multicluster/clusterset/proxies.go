package clusterset

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/federation/membership"
	"github.com/causeway-mesh/causeway/internal/xdsconv"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// Ports of the proxies this file starts: a gateway's on its cluster's
// gateway address (world.Cluster.GatewayIP), a sidecar's on its pod IP.
const (
	// HBONEPort: a gateway's in-cluster HBONE server (sidecars' tunnels
	// to other clusters), a sidecar's inbound HBONE server.
	HBONEPort = xdsconv.HBONEPort
	// LinkPort: a gateway's cluster links, UDP (QUIC) and TCP.
	LinkPort = xdsconv.LinkPort
	// ProxyAdminPort: /ready, /metrics, /config_dump and a gateway's /links.
	ProxyAdminPort = 15000
	// outboundPort and inboundPort are a proxy's capture listeners, bound
	// explicitly so that proxies sharing the namespace never clash.
	outboundPort = xdsconv.VirtualOutboundPort
	inboundPort  = xdsconv.VirtualInboundPort
)

// TokenAudience is the audience of the ServiceAccount tokens proxies
// present to the agent's SDS server (controllers/identity.DefaultAudience,
// which is not imported here to keep the agent's packages out of the CLI
// that links this package).
const TokenAudience = "causeway"

// Where the agent publishes the trust bundle in its member cluster
// (controllers/identity.TrustBundleConfigMap and TrustBundleKey).
const (
	trustBundleConfigMap = "causeway-trust-bundle"
	trustBundleKey       = "roots.pem"
)

// gatewayEndpointSlice is the EndpointSlice that SetUpGateway writes for
// the gateway Service, which has no selector.
const gatewayEndpointSlice = xdsconv.GatewayService + "-world"

// tokenTTL is the lifetime of the tokens written for proxies; a test is
// over long before.
const tokenTTL = time.Hour

// GatewayOptions configure a member's east-west gateway.
type GatewayOptions struct {
	// Addresses the MemberCluster publishes for links to this gateway,
	// "host:port" or a bare IP. Empty: the gateway's own link address
	// (GatewayIP:LinkPort). Point them at a relay to put a WAN in the path.
	Addresses []string
	// Transport of links to this gateway: QUIC (the default) or TCP.
	Transport causewayv1alpha1.GatewayTransport
	// Args are more causeway-proxy flags, e.g. "--link-quic-retry=5s".
	Args []string
}

// Gateway is a member's east-west gateway: causeway-proxy --mode=gateway
// on the cluster's gateway address, its ServiceAccount, the in-cluster
// Service sidecars reach it by, and the MemberCluster's gateway addresses.
type Gateway struct {
	// Cluster is the member's name.
	Cluster string
	// IP is the gateway's address (world.Cluster.GatewayIP).
	IP netip.Addr

	cs   *ClusterSet
	opts GatewayOptions
	dir  string

	mu   sync.Mutex
	proc *world.Proc
}

// LinkAddr is where the gateway accepts cluster links.
func (g *Gateway) LinkAddr() string { return netip.AddrPortFrom(g.IP, LinkPort).String() }

// HBONEAddr is where the gateway takes its cluster's sidecars' tunnels.
func (g *Gateway) HBONEAddr() string { return netip.AddrPortFrom(g.IP, HBONEPort).String() }

// AdminAddr is the gateway's admin endpoint.
func (g *Gateway) AdminAddr() string { return netip.AddrPortFrom(g.IP, ProxyAdminPort).String() }

// SetUpGateway makes the member's gateway known: the ServiceAccount
// causeway-system/causeway-gateway, the Service causeway-system/
// causeway-gateway (port 15008, "hbone", no selector) with an
// EndpointSlice for the gateway's address, and the MemberCluster's
// gateway addresses on the hub (by joining again with them, as `causeway
// join --gateway-address` does). It does not start the process (Start
// does).
func (cs *ClusterSet) SetUpGateway(ctx context.Context, name string, o GatewayOptions) (*Gateway, error) {
	m := cs.W.Cluster(name)
	if m == nil {
		return nil, fmt.Errorf("no cluster %q in the world", name)
	}
	dir := filepath.Join(cs.W.Dir, "proxies", "gateway-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway %s: %w", name, err)
	}
	g := &Gateway{Cluster: name, IP: m.GatewayIP, cs: cs, opts: o, dir: dir}
	ns := causewayv1alpha1.SystemNamespace
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: xdsconv.GatewayServiceAccount}}
	if _, err := m.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("cluster %s: create ServiceAccount %s/%s: %w", name, ns, sa.Name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: xdsconv.GatewayService},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "hbone", Port: HBONEPort, Protocol: corev1.ProtocolTCP,
		}}},
	}
	if _, err := m.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("cluster %s: create Service %s/%s: %w", name, ns, svc.Name, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gatewayEndpointSlice, Labels: map[string]string{
			discoveryv1.LabelServiceName: xdsconv.GatewayService,
			discoveryv1.LabelManagedBy:   "world.causeway.dev",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{g.IP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: new("hbone"), Port: new(int32(HBONEPort)), Protocol: new(corev1.ProtocolTCP)}},
	}
	if _, err := m.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("cluster %s: create EndpointSlice %s/%s: %w", name, ns, slice.Name, err)
	}
	addrs := o.Addresses
	if len(addrs) == 0 {
		addrs = []string{g.LinkAddr()}
	}
	// What `causeway join --gateway-address` does: a second join with the
	// gateway's addresses.
	jo := cs.joinOptions(m)
	jo.GatewayAddresses, jo.GatewayTransport = addrs, string(o.Transport)
	if err := join(ctx, jo); err != nil {
		return nil, fmt.Errorf("join %s again with its gateway: %w", name, err)
	}
	cs.mu.Lock()
	if cs.gateways == nil {
		cs.gateways = map[string]*Gateway{}
	}
	cs.gateways[name] = g
	cs.mu.Unlock()
	return g, nil
}

// join runs membership.Join, again when it loses a race with the hub's
// own writes to the MemberCluster (a conflict): a join that did not
// complete completes when run again.
func join(ctx context.Context, o membership.JoinOptions) error {
	return retry.OnError(retry.DefaultRetry, apierrors.IsConflict, func() error { return membership.Join(ctx, o) })
}

// Gateway returns the member's gateway set up by SetUpGateway, or nil.
func (cs *ClusterSet) Gateway(name string) *Gateway {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.gateways[name]
}

// TearDownGateway stops the member's gateway and removes what
// SetUpGateway made.
func (cs *ClusterSet) TearDownGateway(ctx context.Context, name string) error {
	cs.mu.Lock()
	g := cs.gateways[name]
	delete(cs.gateways, name)
	cs.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	m := cs.W.Cluster(name)
	if m == nil {
		return fmt.Errorf("no cluster %q in the world", name)
	}
	// A join without gateway addresses removes the gateway.
	var errs []error
	if err := join(ctx, cs.joinOptions(m)); err != nil {
		errs = append(errs, fmt.Errorf("join %s again without its gateway: %w", name, err))
	}
	ns := causewayv1alpha1.SystemNamespace
	del := func(kind string, err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cluster %s: delete %s: %w", name, kind, err))
		}
	}
	del("EndpointSlice", m.Client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, gatewayEndpointSlice, metav1.DeleteOptions{}))
	del("Service", m.Client.CoreV1().Services(ns).Delete(ctx, xdsconv.GatewayService, metav1.DeleteOptions{}))
	del("ServiceAccount", m.Client.CoreV1().ServiceAccounts(ns).Delete(ctx, xdsconv.GatewayServiceAccount, metav1.DeleteOptions{}))
	return errors.Join(errs...)
}

// Start starts the gateway process (again, after Stop or Kill) with a
// fresh token and the current trust bundle, and waits until it is ready.
func (g *Gateway) Start(ctx context.Context) error {
	m := g.cs.W.Cluster(g.Cluster)
	tokenFile, err := writeToken(ctx, m, g.dir, causewayv1alpha1.SystemNamespace, xdsconv.GatewayServiceAccount, nil)
	if err != nil {
		return err
	}
	bundleFile, err := writeTrustBundle(ctx, m, g.dir)
	if err != nil {
		return err
	}
	ip := g.IP.String()
	args := append([]string{
		"--mode=gateway",
		"--cluster=" + g.Cluster,
		"--node-id=gateway~" + g.Cluster,
		"--namespace=" + causewayv1alpha1.SystemNamespace,
		"--service-account=" + xdsconv.GatewayServiceAccount,
		"--sds-addr=" + m.InfraAddr(SDSPort),
		"--token-file=" + tokenFile,
		"--trust-bundle-file=" + bundleFile,
		"--link-addr=" + g.LinkAddr(),
		"--hbone-addr=" + g.HBONEAddr(),
		"--pod-ip=" + ip,
		"--admin-addr=" + g.AdminAddr(),
		"--outbound-addr=" + net.JoinHostPort(ip, strconv.Itoa(outboundPort)),
		"--drain-timeout=1s",
		"--log-level=" + g.cs.Opts.LogLevel,
	}, g.opts.Args...)
	p, err := g.cs.W.Run(g.Cluster+"/gateway", "causeway-proxy", args...)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.proc = p
	g.mu.Unlock()
	return waitReady(ctx, m, p, g.AdminAddr())
}

// Proc is the running (or last) gateway process.
func (g *Gateway) Proc() *world.Proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proc
}

// Stop stops the gateway gracefully.
func (g *Gateway) Stop() {
	if p := g.Proc(); p != nil {
		p.Stop()
	}
}

// Kill kills the gateway at once, as a crash would.
func (g *Gateway) Kill() {
	if p := g.Proc(); p != nil {
		p.Kill()
	}
}

// SidecarOptions configure a sidecar started by StartSidecar.
type SidecarOptions struct {
	// Cluster, Namespace and Pod name the workload's pod; the sidecar
	// runs as the pod's ServiceAccount, on its IP.
	Cluster, Namespace, Pod string
	// Listeners are explicit listeners on the pod IP: port → xDS listener
	// name (xdsconv.ExplicitHTTPListener, or a service listener such as
	// xdsconv.ListenerName(vip, port) for TCP to that service).
	Listeners map[int]string
	// Args are more causeway-proxy flags.
	Args []string
}

// Sidecar is causeway-proxy --mode=sidecar for one pod, with the pod's
// identity: SDS with a pod-bound token, its inbound HBONE server on
// PodIP:15008, and upstream connections from the pod IP.
type Sidecar struct {
	Cluster, Namespace, Pod, ServiceAccount string
	// PodIP is the pod's address, where the sidecar listens.
	PodIP netip.Addr

	cs   *ClusterSet
	opts SidecarOptions
	dir  string

	mu   sync.Mutex
	proc *world.Proc
}

// Addr is PodIP:port.
func (s *Sidecar) Addr(port int) string {
	return netip.AddrPortFrom(s.PodIP, uint16(port)).String()
}

// AdminAddr is the sidecar's admin endpoint.
func (s *Sidecar) AdminAddr() string { return s.Addr(ProxyAdminPort) }

// StartSidecar waits until the pod runs with an IP, then starts its
// sidecar and waits until it is ready.
func (cs *ClusterSet) StartSidecar(ctx context.Context, o SidecarOptions) (*Sidecar, error) {
	m := cs.W.Cluster(o.Cluster)
	if m == nil {
		return nil, fmt.Errorf("no cluster %q in the world", o.Cluster)
	}
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := m.Client.CoreV1().Pods(o.Namespace).Get(ctx, o.Pod, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // not created yet, or the API server is busy: poll on
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: pod %s/%s never ran with an IP: %w", o.Cluster, o.Namespace, o.Pod, err)
	}
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: pod %s/%s: %w", o.Cluster, o.Namespace, o.Pod, err)
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	dir := filepath.Join(cs.W.Dir, "proxies", o.Cluster+"-"+o.Namespace+"-"+o.Pod)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Sidecar{Cluster: o.Cluster, Namespace: o.Namespace, Pod: o.Pod, ServiceAccount: sa, PodIP: ip, cs: cs, opts: o, dir: dir}
	if err := s.start(ctx, pod); err != nil {
		return nil, err
	}
	cs.mu.Lock()
	cs.sidecars = append(cs.sidecars, s)
	cs.mu.Unlock()
	return s, nil
}

func (s *Sidecar) start(ctx context.Context, pod *corev1.Pod) error {
	m := s.cs.W.Cluster(s.Cluster)
	tokenFile, err := writeToken(ctx, m, s.dir, s.Namespace, s.ServiceAccount, pod)
	if err != nil {
		return err
	}
	bundleFile, err := writeTrustBundle(ctx, m, s.dir)
	if err != nil {
		return err
	}
	args := []string{
		"--mode=sidecar",
		"--cluster=" + s.Cluster,
		"--node-id=" + s.Pod + "." + s.Namespace,
		"--namespace=" + s.Namespace,
		"--pod=" + s.Pod,
		"--service-account=" + s.ServiceAccount,
		"--sds-addr=" + m.InfraAddr(SDSPort),
		"--token-file=" + tokenFile,
		"--trust-bundle-file=" + bundleFile,
		"--pod-ip=" + s.PodIP.String(),
		"--hbone-addr=" + s.Addr(HBONEPort),
		"--inbound-addr=" + s.Addr(inboundPort),
		"--outbound-addr=" + s.Addr(outboundPort),
		"--admin-addr=" + s.AdminAddr(),
		"--drain-timeout=1s",
		"--log-level=" + s.cs.Opts.LogLevel,
	}
	for port, l := range s.opts.Listeners {
		args = append(args, "--listen="+s.Addr(port)+"="+l)
	}
	args = append(args, s.opts.Args...)
	p, err := s.cs.W.Run(fmt.Sprintf("%s/sidecar/%s/%s", s.Cluster, s.Namespace, s.Pod), "causeway-proxy", args...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return waitReady(ctx, m, p, s.AdminAddr())
}

// Restart starts the sidecar again after Stop or Kill.
func (s *Sidecar) Restart(ctx context.Context) error {
	m := s.cs.W.Cluster(s.Cluster)
	pod, err := m.Client.CoreV1().Pods(s.Namespace).Get(ctx, s.Pod, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("cluster %s: get pod %s/%s: %w", s.Cluster, s.Namespace, s.Pod, err)
	}
	return s.start(ctx, pod)
}

// Proc is the running (or last) sidecar process.
func (s *Sidecar) Proc() *world.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop stops the sidecar gracefully.
func (s *Sidecar) Stop() {
	if p := s.Proc(); p != nil {
		p.Stop()
	}
}

// Kill kills the sidecar at once.
func (s *Sidecar) Kill() {
	if p := s.Proc(); p != nil {
		p.Kill()
	}
}

// writeToken requests a token of the ServiceAccount for TokenAudience
// (bound to pod when given, as the kubelet projects it) and writes it to
// dir/token.
func writeToken(ctx context.Context, m *world.Cluster, dir, namespace, sa string, pod *corev1.Pod) (string, error) {
	ttl := int64(tokenTTL / time.Second)
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{TokenAudience}, ExpirationSeconds: &ttl}}
	if pod != nil {
		tr.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	out, err := m.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster %s: request a token of %s/%s: %w", m.Name, namespace, sa, err)
	}
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte(out.Status.Token), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// writeTrustBundle waits until the member's agent publishes its trust
// bundle and writes it to dir/roots.pem, as the kubelet mounts the
// ConfigMap.
func writeTrustBundle(ctx context.Context, m *world.Cluster, dir string) (string, error) {
	var roots string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm, err := m.Client.CoreV1().ConfigMaps(causewayv1alpha1.SystemNamespace).Get(ctx, trustBundleConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // the agent has not published it yet: poll on
		}
		roots = cm.Data[trustBundleKey]
		return roots != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("cluster %s: the agent did not publish its trust bundle (%s/%s): %w", m.Name, causewayv1alpha1.SystemNamespace, trustBundleConfigMap, err)
	}
	path := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(path, []byte(roots), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// waitReady polls a proxy's /ready until it answers 200, failing early
// with the log's end if the process exits.
func waitReady(ctx context.Context, m *world.Cluster, p *world.Proc, admin string) error {
	hc := m.HTTPClient(2 * time.Second)
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if exited, err := p.Exited(); exited {
			return false, fmt.Errorf("%s exited (%w); last lines of %s:\n%s", p.Name, err, p.LogPath, p.Tail(20))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/ready", nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // not listening yet: poll on, and report the last error on timeout
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("/ready: %s", resp.Status)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("%s not ready: %w (last: %w); last lines of %s:\n%s", p.Name, err, last, p.LogPath, p.Tail(20))
		}
		return fmt.Errorf("%s not ready: %w", p.Name, err)
	}
	return nil
}
