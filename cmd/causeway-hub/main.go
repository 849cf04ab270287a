// Command causeway-hub runs the hub controller: it merges the members'
// exports by the Multi-Cluster Services rules, tracks member health, and
// holds the cluster set's root CA, issuing each member's intermediate CA.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/federation/hub"
	"github.com/causeway-mesh/causeway/federation/trust"
	"github.com/causeway-mesh/causeway/federation/trust/certmanager"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/run"
)

func main() {
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the hub cluster (default: in-cluster)")
	kubecontext := flag.String("context", "", "kubeconfig context")
	grace := flag.Duration("grace-period", hub.DefaultGracePeriod, "how long past its lease's expiry a silent member keeps its endpoints")
	metrics := flag.String("metrics-addr", ":8080", "address of the Prometheus metrics endpoint (0 disables)")
	health := flag.String("health-addr", ":8081", "address of /healthz and /readyz (0 disables)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	td := flag.String("trust-domain", trust.DefaultTrustDomain, "SPIFFE trust domain when the hub cluster has no MeshConfig")
	rootSecret := flag.String("root-ca-secret", "", "<namespace>/<name> of a kubernetes.io/tls Secret holding the root CA (tls.crt, tls.key, optional ca.crt); default: a root generated and kept in causeway-system/"+trust.RootSecretName)
	rootTTL := flag.Duration("root-ca-ttl", pki.DefaultRootTTL, "lifetime of a generated root CA")
	interTTL := flag.Duration("intermediate-ca-ttl", trust.DefaultIntermediateTTL, "lifetime of the members' intermediate CAs (renewed after two thirds; at most 8760h)")
	overlap := flag.Duration("root-ca-overlap", trust.DefaultOverlap, "how long a former root stays trusted after intermediates move off it (at least the workload certificate lifetime)")
	propagation := flag.Duration("root-ca-propagation-delay", trust.DefaultPropagationDelay, "how long a new root is trusted before intermediates move to it")
	issuer := flag.String("root-ca-issuer", "", "<Issuer|ClusterIssuer>/<name> of a cert-manager issuer that issues the root CA (an Issuer in causeway-system); the hub keeps it in causeway-system/"+trust.RootSecretName+" and renews it after two thirds of its lifetime")
	_ = flag.Parse(os.Args[1:]) // ExitOnError: exits on a bad flag

	log, err := run.Logger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg, err := run.RESTConfig(*kubeconfig, *kubecontext)
	if err != nil {
		log.Error("hub cannot start", "err", err)
		os.Exit(1)
	}
	trustOpts := trust.Options{
		TrustDomain: *td, RootTTL: *rootTTL, IntermediateTTL: *interTTL,
		Overlap: *overlap, PropagationDelay: *propagation,
	}
	if *rootSecret != "" {
		if trustOpts.RootSecret, err = trust.ParseSecretRef(*rootSecret); err != nil {
			log.Error("invalid --root-ca-secret", "err", err)
			os.Exit(2)
		}
	}
	if *issuer != "" {
		if *rootSecret != "" {
			log.Error("--root-ca-issuer and --root-ca-secret exclude each other")
			os.Exit(2)
		}
		kind, name, ok := strings.Cut(*issuer, "/")
		if !ok || name == "" || (kind != cmapi.IssuerKind && kind != cmapi.ClusterIssuerKind) {
			log.Error("invalid --root-ca-issuer: want Issuer/<name> or ClusterIssuer/<name>", "value", *issuer)
			os.Exit(2)
		}
		trustOpts.NewSource = certmanager.NewSourceFunc(cmmeta.IssuerReference{Kind: kind, Name: name})
	}
	if err := trustOpts.Validate(); err != nil {
		log.Error("invalid trust settings", "err", err)
		os.Exit(2)
	}
	ctx, stop := run.SignalContext()
	defer stop()
	if err := hub.Run(ctx, hub.Config{REST: cfg, GracePeriod: *grace, MetricsAddr: *metrics, HealthAddr: *health, Trust: trustOpts}); err != nil {
		log.Error("hub stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
