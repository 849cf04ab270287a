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
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	certmanagercrds "github.com/causeway-mesh/causeway/charts/cert-manager-crds"
	"github.com/causeway-mesh/causeway/test/multicluster/world"
)

// InstallCRDs installs cert-manager's cert-manager.io CRDs (Certificate,
// CertificateRequest, Issuer, ClusterIssuer, from the pinned release) on
// the API server cfg reaches and waits until the server serves them.
func InstallCRDs(cfg *rest.Config) error {
	crds, err := certmanagercrds.CRDs()
	if err != nil {
		return fmt.Errorf("load cert-manager CRDs: %w", err)
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
		return fmt.Errorf("install cert-manager CRDs: %w", err)
	}
	return nil
}

// StartEnvtest starts Causeway's light test world (world.StartEnvtest: one
// etcd and kube-apiserver with Causeway's CRDs) and installs cert-manager's
// CRDs on it. Stop it with the returned environment's Stop.
func StartEnvtest() (*envtest.Environment, error) {
	env, err := world.StartEnvtest()
	if err != nil {
		return nil, err
	}
	if err := InstallCRDs(env.Config); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	return env, nil
}
