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
// Trade-offs: one namespace for all clusters keeps start-up at a few
// seconds per cluster and lets any process reach any other, like a flat
// multi-cluster network; partitions between clusters are made by the tests
// that need them (stopping processes, cutting links), not by this package.
// The light mode for package tests that need no pods is envtest (see
// StartEnvtest), which runs on the host's loopback and needs no root.
package world
