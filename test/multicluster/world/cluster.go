package world

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

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Well-known ports inside the namespace. Every cluster has an address of its
// own (InfraIP), so the ports repeat without clashing.
const (
	portEtcdClient = 2379
	portEtcdPeer   = 2380
	portAPIServer  = 6443
	portKCM        = 10257
	portScheduler  = 10259
	portKwok       = 10247
)

// Cluster is one simulated Kubernetes cluster of the world: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and the kwok
// controller, with one untainted fake Node.
type Cluster struct {
	// Name is the cluster's name, also its kubeconfig context.
	Name string
	// Region and Zone label the fake Node (topology.kubernetes.io/*).
	Region, Zone string
	// Index is 1-based and fixes the cluster's address ranges.
	Index int
	// PodCIDR is the fake Node's spec.podCIDR, routed locally in the
	// namespace, so workload processes bind the pod IPs kwok hands out.
	PodCIDR netip.Prefix
	// ServiceCIDR is the service-cluster-ip-range. Nothing answers there:
	// there is no kube-proxy in the test world.
	ServiceCIDR netip.Prefix
	// InfraIP is where this cluster's control plane listens inside the
	// namespace.
	InfraIP netip.Addr
	// GatewayIP is the address of the cluster's east-west gateway
	// (10.255.i.2), for the tests that run one.
	GatewayIP netip.Addr
	// InfraPrefix (10.255.i.0/24) holds InfraIP, GatewayIP and any other
	// address that serves the cluster as a whole; under Isolate it may
	// reach the cluster's pods, like the nodes of a real cluster.
	InfraPrefix netip.Prefix
	// NodeName is the fake Node's name.
	NodeName string
	// Dir holds the cluster's data, certificates, kubeconfigs and logs.
	Dir string
	// Kubeconfig is a kubeconfig file for the host side (via Forward), with
	// one context named Name.
	Kubeconfig string
	// InnerKubeconfig is a kubeconfig file for processes inside the
	// namespace (server InnerServer), as cluster-admin.
	InnerKubeconfig string
	// InnerServer is the API server's URL inside the namespace.
	InnerServer string
	// Forward relays the host's 127.0.0.1 to the API server.
	Forward *Forward
	// Config is a REST config for the host side, as cluster-admin.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface

	world *World
	pki   *clusterPKI
	mu    sync.Mutex
	procs map[string]*Proc
	args  map[string][]string // each component's arguments, for StartComponent
}

// InfraAddr is host:port on the cluster's own address inside the
// namespace, for a process that serves on behalf of the cluster (an
// agent's DNS server, say).
func (c *Cluster) InfraAddr(port int) string { return c.addr(port) }

func (c *Cluster) addr(port int) string {
	return net.JoinHostPort(c.InfraIP.String(), strconv.Itoa(port))
}

// Proc returns the named control-plane process ("etcd", "kube-apiserver",
// "kube-controller-manager", "kube-scheduler", "kwok"), or nil.
func (c *Cluster) Proc(component string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[component]
}

func (c *Cluster) procList() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Proc, 0, len(c.procs))
	for _, p := range c.procs {
		out = append(out, p)
	}
	return out
}

func (c *Cluster) start(ctx context.Context, component string, args ...string) error {
	bin := filepath.Join(c.world.binDir, component)
	p, err := startProc(c.world.NS, c.Name+"/"+component, c.world.logDir, bin, args, nil, c.world.unexpectedExit)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[component] = p
	if c.args == nil {
		c.args = map[string][]string{}
	}
	c.args[component] = args
	c.mu.Unlock()
	return ctx.Err()
}

// StopComponent stops one control-plane component ("etcd",
// "kube-apiserver", ...; see Proc) as an outage would, without the world
// reporting it; StartComponent brings it back.
func (c *Cluster) StopComponent(component string) error {
	p := c.Proc(component)
	if p == nil {
		return fmt.Errorf("cluster %s: no component %q", c.Name, component)
	}
	p.Stop()
	return nil
}

// StartComponent starts a stopped component again with the arguments it
// had, and for the API server waits until it is ready again.
func (c *Cluster) StartComponent(ctx context.Context, component string) error {
	c.mu.Lock()
	p, args, ok := c.procs[component], c.args[component], c.args[component] != nil
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("cluster %s: no component %q", c.Name, component)
	}
	if exited, _ := p.Exited(); !exited {
		return fmt.Errorf("cluster %s: %s is running", c.Name, component)
	}
	if err := c.start(ctx, component, args...); err != nil {
		return err
	}
	if component != binAPIServer {
		return nil
	}
	return c.waitAPIServerReady(ctx)
}

// DialContext connects inside the namespace from the cluster's
// infrastructure address (InfraIP), as a node of the cluster would: under
// Isolate it reaches the cluster's pods, and only theirs.
func (c *Cluster) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return c.world.NS.DialFrom(ctx, network, c.InfraIP, address)
}

// HTTPClient returns a client whose connections are made by DialContext.
func (c *Cluster) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: c.DialContext, DisableKeepAlives: true}}
}

// failed returns the error of any control-plane process of this cluster
// that already exited, so readiness waits end early with the reason.
func (c *Cluster) failed() error {
	for _, p := range c.procList() {
		if exited, err := p.Exited(); exited {
			return processExited(p, err)
		}
	}
	return nil
}

// waitFor polls cond until it holds, the cluster has a dead component, or
// the timeout passes.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.failed(); err != nil {
			return false, err
		}
		ok, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil //nolint:nilerr // keep polling; the last error is reported on timeout
		}
		return ok, nil
	})
	if err != nil {
		if pe := (*ProcessError)(nil); errors.As(err, &pe) {
			return fmt.Errorf("cluster %s: waiting for %s: %w", c.Name, what, err)
		}
		if last != nil {
			return fmt.Errorf("cluster %s: %s not ready after %s: %w (last error: %w)", c.Name, what, timeout, err, last)
		}
		return fmt.Errorf("cluster %s: %s not ready after %s: %w", c.Name, what, timeout, err)
	}
	return nil
}

// boot starts the control plane and waits until it serves, then installs
// the CRDs and the fake Node.
func (c *Cluster) boot(ctx context.Context, crds []*apiextensionsv1.CustomResourceDefinition) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	firstServiceIP := c.ServiceCIDR.Addr().Next()
	pki, err := newClusterPKI(c.Dir,
		[]net.IP{c.InfraIP.AsSlice(), net.IPv4(127, 0, 0, 1), firstServiceIP.AsSlice()},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	c.pki = pki

	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	c.InnerServer = "https://" + c.addr(portAPIServer)
	c.InnerKubeconfig = filepath.Join(c.Dir, "inner.kubeconfig")
	if err := writeKubeconfig(c.InnerKubeconfig, c.Name, c.InnerServer, pki); err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	if err := c.startControllers(ctx, c.InnerKubeconfig); err != nil {
		return err
	}
	if err := c.installCRDs(ctx, crds); err != nil {
		return err
	}
	return c.createNode(ctx)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client := "http://" + c.addr(portEtcdClient)
	peer := "http://" + c.addr(portEtcdPeer)
	if err := c.start(ctx, binEtcd,
		"--name=etcd",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=etcd="+peer,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	); err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: c.world.NS.DialContext}, Timeout: 2 * time.Second}
	return c.waitFor(ctx, "etcd", 30*time.Second, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, client+"/health", nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	if err := c.start(ctx, binAPIServer,
		"--etcd-servers=http://"+c.addr(portEtcdClient),
		"--bind-address="+c.InfraIP.String(),
		"--advertise-address="+c.InfraIP.String(),
		"--secure-port="+strconv.Itoa(portAPIServer),
		"--tls-cert-file="+c.pki.ServingCert,
		"--tls-private-key-file="+c.pki.ServingKey,
		"--client-ca-file="+c.pki.CACert,
		// The request-header (front proxy) CA is published for the
		// controller-manager's and scheduler's own authentication; no
		// front proxy runs.
		"--requestheader-client-ca-file="+c.pki.CACert,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--service-account-key-file="+c.pki.SAPub,
		"--service-account-signing-key-file="+c.pki.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+c.ServiceCIDR.String(),
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return err
	}
	fwd, err := newForward(c.world.NS, c.world.hostPort(c.Index), c.addr(portAPIServer))
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	c.Forward = fwd
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Name, "https://"+fwd.Addr, c.pki); err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("cluster %s: load kubeconfig: %w", c.Name, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c.Config = cfg
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("cluster %s: build client: %w", c.Name, err)
	}
	return c.waitAPIServerReady(ctx)
}

// waitAPIServerReady waits until the API server answers /readyz with ok.
func (c *Cluster) waitAPIServerReady(ctx context.Context) error {
	return c.waitFor(ctx, "kube-apiserver /readyz", 60*time.Second, func(ctx context.Context) (bool, error) {
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, err
		}
		return string(body) == "ok", nil
	})
}

func (c *Cluster) startControllers(ctx context.Context, kubeconfig string) error {
	stages := filepath.Join(c.world.binDir, fileKwokStage)
	if err := c.start(ctx, binKCM,
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address="+c.InfraIP.String(),
		"--secure-port="+strconv.Itoa(portKCM),
		"--leader-elect=false",
		"--service-account-private-key-file="+c.pki.SAKey,
		"--root-ca-file="+c.pki.CACert,
		"--service-cluster-ip-range="+c.ServiceCIDR.String(),
		"--use-service-account-credentials=false",
		"--controllers=*,-nodeipam,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-ephemeral-volume,-pvc-protection,-pv-protection",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return err
	}
	if err := c.start(ctx, binScheduler,
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--bind-address="+c.InfraIP.String(),
		"--secure-port="+strconv.Itoa(portScheduler),
		"--leader-elect=false",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return err
	}
	return c.start(ctx, binKwok,
		"--kubeconfig="+kubeconfig,
		"--config="+stages,
		"--manage-all-nodes=true",
		"--server-address="+c.addr(portKwok),
		"--node-ip="+c.InfraIP.String(),
		"--cidr="+c.PodCIDR.String(),
		"--node-lease-duration-seconds=40",
	)
}

// installCRDs creates (or updates) every CRD and waits until each is
// Established, so objects of those kinds can be created at once.
func (c *Cluster) installCRDs(ctx context.Context, crds []*apiextensionsv1.CustomResourceDefinition) error {
	if len(crds) == 0 {
		return nil
	}
	ac, err := apiextensionsclient.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("cluster %s: build apiextensions client: %w", c.Name, err)
	}
	for _, crd := range crds {
		crd = crd.DeepCopy()
		_, err := ac.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster %s: create CRD %s: %w", c.Name, crd.Name, err)
		}
	}
	for _, crd := range crds {
		name := crd.Name
		if err := c.waitFor(ctx, "CRD "+name, 30*time.Second, func(ctx context.Context) (bool, error) {
			got, err := ac.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// createNode registers the cluster's fake Node, which kwok manages, and
// waits until it is Ready and the default ServiceAccount exists (pods are
// refused before that).
func (c *Cluster) createNode(ctx context.Context) error {
	labels := map[string]string{
		"type":                   "kwok",
		"kubernetes.io/hostname": c.NodeName,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
	}
	if c.Region != "" {
		labels[corev1.LabelTopologyRegion] = c.Region
	}
	if c.Zone != "" {
		labels[corev1.LabelTopologyZone] = c.Zone
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.NodeName,
			Labels:      labels,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Spec: corev1.NodeSpec{PodCIDR: c.PodCIDR.String(), PodCIDRs: []string{c.PodCIDR.String()}},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster %s: create node: %w", c.Name, err)
	}
	if err := c.waitFor(ctx, "node "+c.NodeName, 30*time.Second, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	return c.waitFor(ctx, "default ServiceAccount", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
}

// stop stops the control plane in reverse start order.
func (c *Cluster) stop() {
	var wg sync.WaitGroup
	for _, comp := range []string{binKwok, binScheduler, binKCM} {
		if p := c.Proc(comp); p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop() }()
		}
	}
	wg.Wait()
	if c.Forward != nil {
		_ = c.Forward.Close()
	}
	for _, comp := range []string{binAPIServer, binEtcd} {
		if p := c.Proc(comp); p != nil {
			p.Stop()
		}
	}
}

// writeKubeconfig writes a single-context kubeconfig for server as
// cluster-admin, with certificates embedded.
func writeKubeconfig(path, name, server string, pki *clusterPKI) error {
	cfg := clientcmdapi.NewConfig()
	addToKubeconfig(cfg, name, server, pki)
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

func addToKubeconfig(cfg *clientcmdapi.Config, name, server string, pki *clusterPKI) {
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: pki.CAPEM}
	cfg.AuthInfos[name+"-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: pki.AdminCertPEM, ClientKeyData: pki.AdminKeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name + "-admin"}
}
