package membership

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	aboutv1alpha1 "github.com/causeway-mesh/causeway/apis/about/v1alpha1"
	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// scheme knows the built-in kinds and the Causeway and About kinds that
// membership reads and writes.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(causewayv1alpha1.AddToScheme(s))
	utilruntime.Must(aboutv1alpha1.AddToScheme(s))
	return s
}()

// Client-side rate limits: a join makes a few dozen requests, and client-go's
// defaults (5 QPS) would make it crawl for no benefit.
const (
	clientQPS   = 50
	clientBurst = 100
)

// newClient returns a client for cfg; which ("hub" or "member") names the
// cluster in errors.
func newClient(cfg *rest.Config, which string) (client.Client, error) {
	if cfg == nil {
		return nil, fmt.Errorf("no connection settings for the %s cluster", which)
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = clientQPS, clientBurst
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the %s cluster at %s: %w", which, cfg.Host, err)
	}
	return c, nil
}

// clusterUID returns the UID of the cluster's kube-system namespace, the
// cluster's identity.
func clusterUID(ctx context.Context, c client.Client, which string) (string, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: "kube-system"}, &ns); err != nil {
		return "", fmt.Errorf("read the %s cluster's identity (namespace kube-system): %w", which, err)
	}
	return string(ns.UID), nil
}

// explainNoMatch turns the error of a request for a kind the API server does
// not serve into one that says which CRDs are missing where.
func explainNoMatch(err error, kind, which string) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("the %s cluster does not serve %s: install Causeway's CRDs there first (the causeway-crds chart): %w", which, kind, err)
	}
	return err
}
