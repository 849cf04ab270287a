/*
Copyright 2026 The Causeway Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package certmanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca" // the CA issuer's Setup, which the issuers controllers find in cert-manager's issuer registry
)

// DefaultClusterResourceNamespace is where ClusterIssuers' Secrets live
// when Options.ClusterResourceNamespace is empty; cert-manager's own
// default.
const DefaultClusterResourceNamespace = "cert-manager"

// Options configures Start. The zero value runs every controller in every
// namespace.
type Options struct {
	// ClusterResourceNamespace holds the Secrets that ClusterIssuers name;
	// DefaultClusterResourceNamespace when empty. Start creates it.
	ClusterResourceNamespace string
	// ApproverNamespace, when set, limits cert-manager's approver to that
	// namespace: CertificateRequests elsewhere stay unapproved until the
	// test approves or denies them. Empty: the approver approves every
	// request, as in a default cert-manager installation.
	ApproverNamespace string
	// Logger receives the controllers' logs; discarded when zero.
	Logger logr.Logger
}

// ControlPlane is cert-manager's controllers running in-process. Stop it
// with Stop.
type ControlPlane struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	dir string // the kubeconfig's directory; "" once removed
}

// controllerSet is the controllers one ContextFactory builds: the factory's
// namespace scope applies to all of them.
type controllerSet struct {
	namespace string
	names     []string
}

// Start runs cert-manager's issuers, clusterissuers, CA
// CertificateRequest and approver controllers against the API server cfg
// reaches (which must have the cert-manager CRDs: see InstallCRDs), each
// with one worker, until ctx is done or Stop is called. It returns once
// every controller is built and the informers are started; the
// controllers begin work when their caches have synced.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*ControlPlane, error) {
	if opts.ClusterResourceNamespace == "" {
		opts.ClusterResourceNamespace = DefaultClusterResourceNamespace
	}
	logger := opts.Logger
	if logger.GetSink() == nil {
		logger = logr.Discard()
	}
	if err := ensureNamespace(ctx, cfg, opts.ClusterResourceNamespace); err != nil {
		return nil, err
	}
	// cert-manager's ContextFactory takes a kubeconfig file, not a
	// rest.Config.
	dir, err := os.MkdirTemp("", "cert-manager-kubeconfig-")
	if err != nil {
		return nil, fmt.Errorf("create kubeconfig directory: %w", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cfg, kubeconfig); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	runCtx, cancel := context.WithCancel(logr.NewContext(ctx, logger))
	cp := &ControlPlane{cancel: cancel, dir: dir}
	sets := []controllerSet{{names: []string{issuers.ControllerName, clusterissuers.ControllerName, crca.CRControllerName}}}
	if opts.ApproverNamespace == "" {
		sets[0].names = append(sets[0].names, approver.ControllerName)
	} else {
		sets = append(sets, controllerSet{namespace: opts.ApproverNamespace, names: []string{approver.ControllerName}})
	}
	for _, set := range sets {
		if err := cp.startSet(runCtx, kubeconfig, opts, set); err != nil {
			return nil, errors.Join(err, cp.Stop())
		}
	}
	return cp, nil
}

// startSet builds set's controllers from one ContextFactory, starts its
// informer factories and runs the controllers in the background.
func (cp *ControlPlane) startSet(ctx context.Context, kubeconfig string, opts Options, set controllerSet) error {
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig: kubeconfig,
		Namespace:  set.namespace,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: opts.ClusterResourceNamespace,
		},
	})
	if err != nil {
		return fmt.Errorf("create cert-manager controller context factory: %w", err)
	}
	known := controllerpkg.Known()
	controllers := make([]controllerpkg.Interface, 0, len(set.names))
	for _, name := range set.names {
		construct, ok := known[name]
		if !ok {
			return fmt.Errorf("cert-manager controller %s is not registered", name)
		}
		c, err := construct(factory)
		if err != nil {
			return fmt.Errorf("build cert-manager controller %s: %w", name, err)
		}
		controllers = append(controllers, c)
	}
	// Every controller has registered its informers with the factory's
	// shared informer factories by now; start them, as cert-manager's
	// controller binary does after building its controllers.
	shared, err := factory.Build("informers")
	if err != nil {
		return fmt.Errorf("build cert-manager informer context: %w", err)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	for _, c := range controllers {
		// Run fails only when ctx ends before the caches sync, which is
		// Stop's doing: there is nothing to report.
		cp.wg.Go(func() { _ = c.Run(1, ctx) })
	}
	return nil
}

// Stop stops the controllers, waits for their workers to return and
// removes the kubeconfig Start wrote. Stop is idempotent.
func (cp *ControlPlane) Stop() error {
	cp.cancel()
	cp.wg.Wait()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.dir == "" {
		return nil
	}
	err := os.RemoveAll(cp.dir)
	cp.dir = ""
	if err != nil {
		return fmt.Errorf("remove the cert-manager controllers' kubeconfig: %w", err)
	}
	return nil
}

// writeKubeconfig writes cfg's server and credentials (client certificate,
// bearer token or basic auth, inline or as file paths) to path.
func writeKubeconfig(cfg *rest.Config, path string) error {
	const name = "test"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
		InsecureSkipTLSVerify:    cfg.Insecure,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificate:     cfg.CertFile,
		ClientCertificateData: cfg.CertData,
		ClientKey:             cfg.KeyFile,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		TokenFile:             cfg.BearerTokenFile,
		Username:              cfg.Username,
		Password:              cfg.Password,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig for cert-manager's controllers: %w", err)
	}
	return nil
}

// ensureNamespace creates namespace unless it exists.
func ensureNamespace(ctx context.Context, cfg *rest.Config, namespace string) error {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create Kubernetes client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return nil
}
