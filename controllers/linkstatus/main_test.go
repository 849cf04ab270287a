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
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	os.Exit(world.RunEnvtest(m, func(c *rest.Config) (err error) {
		hubConfig = c
		hub, err = client.New(hubConfig, client.Options{Scheme: scheme.New()})
		return err
	}))
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
