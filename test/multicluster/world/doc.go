// Package world starts a test world of real Kubernetes clusters on one
// machine: for each cluster etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and the kwok controller, built from Go modules by `make
// test-bins`, with one untainted fake Node that kwok keeps Ready.
//
// Everything runs inside one private network namespace that the world
// creates (it needs root). In it, lo is up and each cluster's pod CIDR
// (10.i.0.0/16 for cluster i) is routed locally, so processes bind any pod
// IP and no packet can leave. Each control plane listens on an address of
// its own (10.255.i.1) with the well-known ports. Pods whose image is one
// of Causeway's test images (ImageEcho, ImageLoad) get a real process
// listening on the pod IP kwok assigned, so the EndpointSlices that the real
// EndpointSlice controller publishes lead to servers that answer.
//
// The host reaches in through forwards on 127.0.0.1 (one per API server),
// and the world writes a merged kubeconfig with a context per cluster, so
// kubectl and external suites work from the host shell. Test code reaches
// pod IPs with World.HTTPClient or World.DialContext, which make their
// sockets inside the namespace.
//
// Use it from a TestMain:
//
//	w, err := world.Start(ctx, world.Options{HandleSignals: true})
//	if err != nil { ... }
//	code := m.Run()
//	_ = w.Stop()
//
// Teardown is certain. Stop ends workloads, then control planes (SIGTERM,
// then SIGKILL after a grace period), closes the namespace and removes the
// world's directory. If the process dies without calling Stop, every child
// still gets SIGKILL: they are forked from a thread that lives exactly as
// long as the namespace (Pdeathsig), and the next world removes directories
// left by dead processes.
//
// Address plan (cluster i, 1-based, at most 50): pods 10.i.0.0/16,
// services 10.(100+i).0.0/16 (virtual: nothing answers there), and the
// infrastructure range 10.255.i.0/24 with the control plane on 10.255.i.1
// (Cluster.InfraIP) and the east-west gateway, for the tests that run one,
// on 10.255.i.2 (Cluster.GatewayIP). 10.255.0.1 (NeutralSource) belongs to
// no cluster: it is the source of any socket that connects without binding
// an address of its own.
//
// Isolation and faults. By default the network is flat: any process
// reaches any other. World.Isolate installs iptables rules (in the
// namespace only) under which a cluster's pods accept new connections and
// datagrams only from their own pod CIDR and their cluster's
// infrastructure range, so pods of different clusters meet only through
// their gateways; it relies on processes binding their source address (a
// sidecar to its pod IP, a gateway to its own), and an unbound socket gets
// NeutralSource and reaches no pod. Cluster.DialContext and
// Cluster.HTTPClient connect from the cluster's InfraIP, as a node would.
// World.BlockUDP (UDP dropped between two addresses, TCP passes) and
// World.Partition (every packet from or to an address dropped, established
// connections too) make the faults of the gateway tests; each returns an
// undo, and Stop removes whatever is left. Cluster.StopComponent and
// StartComponent take a control-plane process down and back.
//
// Trade-offs: one namespace for all clusters keeps start-up at a few
// seconds per cluster, like a flat multi-cluster network; separation
// between clusters is rules on addresses rather than separate network
// stacks, which is enough because every address is bound explicitly, and
// keeps the gateways' traffic on lo, where the kernel has no netem: WAN
// delay, when a test wants it, comes from a relay in the path.
// The light mode for package tests that need no pods is envtest (see
// StartEnvtest), which runs on the host's loopback and needs no root.
package world
