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

package serviceexport_test

import (
	"os"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// restConfig reaches the package's API server (envtest), started once in
// TestMain; it plays both the member cluster and the hub.
var restConfig *rest.Config

func TestMain(m *testing.M) {
	os.Exit(world.RunEnvtest(m, func(c *rest.Config) error { restConfig = c; return nil }))
}

// eventually retries check until it returns nil or 20 s pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
