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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	cmtest "github.com/causeway-mesh/causeway/test/certmanager"
)

// The test world: one API server with the cert-manager CRDs, and
// cert-manager's own issuers, clusterissuers, CA CertificateRequest and
// approver controllers running against it.
var (
	env  *envtest.Environment
	cm   cmclient.Interface
	kube kubernetes.Interface
	// orgCA is the organisation's CA behind the CA Issuer orgIssuer (in
	// approvedNS) and the CA ClusterIssuer orgClusterIssuer.
	orgCA *cmtest.CA
)

const (
	// approvedNS is the only namespace whose CertificateRequests
	// cert-manager's approver approves: the hub's own.
	approvedNS = causewayv1alpha1.SystemNamespace
	// policyNS has no approver: the tests approve or deny its requests
	// themselves, as a policy approver would.
	policyNS = "policy"

	orgIssuer        = "org-ca"
	orgClusterIssuer = "org-cluster-ca"
)

// startTimeout bounds the API server's start; envtest's default (20s) is
// short on a loaded 2-core machine.
const startTimeout = "2m"

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		_ = os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", startTimeout)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	start := time.Now()
	var err error
	env, err = cmtest.StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start test API server: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop test API server: %v\n", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cp, err := setUp(ctx, env.Config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "set up cert-manager: %v\n", err)
		if cp != nil {
			_ = cp.Stop()
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "API server and cert-manager controllers ready in %s\n", time.Since(start).Round(10*time.Millisecond))
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop cert-manager: %v\n", err)
		code = 1
	}
	return code
}

// setUp makes the clients and namespaces, starts cert-manager's
// controllers and creates the CA issuers.
func setUp(ctx context.Context, cfg *rest.Config) (*cmtest.ControlPlane, error) {
	var err error
	if cm, err = cmclient.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	for _, ns := range []string{approvedNS, policyNS} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	cp, err := cmtest.Start(ctx, cfg, cmtest.Options{ApproverNamespace: approvedNS})
	if err != nil {
		return nil, err
	}
	if orgCA, err = cmtest.NewCA("Example Org Root CA", 10*365*24*time.Hour); err != nil {
		return cp, err
	}
	err = errors.Join(
		cmtest.CreateCAIssuer(ctx, cfg, approvedNS, orgIssuer, orgCA),
		cmtest.CreateCAIssuer(ctx, cfg, policyNS, orgIssuer, orgCA),
		cmtest.CreateCAClusterIssuer(ctx, cfg, cmtest.DefaultClusterResourceNamespace, orgClusterIssuer, orgCA),
	)
	return cp, err
}
