package mesh_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// One real kube-apiserver and etcd for the package: it reviews the
// proxies' tokens and plays the hub (the CA Secret) and the member (pods,
// the trust bundle ConfigMap).
var (
	restConfig *rest.Config
	sch        *runtime.Scheme
	k8s        client.Client
	clientset  kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	env, err := world.StartEnvtest()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v (run `make test-bins` to build etcd and kube-apiserver)\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	restConfig, sch = env.Config, scheme.New()
	if k8s, err = client.New(restConfig, client.Options{Scheme: sch}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(restConfig); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create clientset: %v\n", err)
		return 1
	}
	err = k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: causewayv1alpha1.SystemNamespace}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		fmt.Fprintf(os.Stderr, "FAIL: create namespace: %v\n", err)
		return 1
	}
	return m.Run()
}
