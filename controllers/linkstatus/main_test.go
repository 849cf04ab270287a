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

package linkstatus

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/causeway-mesh/causeway/internal/scheme"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// The hub of every test: one real kube-apiserver and etcd (envtest, RBAC
// enforced) and an admin client.
var (
	hubConfig *rest.Config
	hub       client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	// envtest's default start timeout, 20s, is too short on a loaded
	// 2-core machine running several test packages.
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		_ = os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "2m")
	}
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
	hubConfig = env.Config
	if hub, err = client.New(hubConfig, client.Options{Scheme: scheme.New()}); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: create client: %v\n", err)
		return 1
	}
	return m.Run()
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// memberNamespace creates the member's hub namespace (envtest never
// finalizes a deleted namespace, so each test uses its own member name).
func memberNamespace(ctx context.Context, t *testing.T, cluster string) string {
	t.Helper()
	ns := "causeway-member-" + cluster
	if err := hub.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	return ns
}
