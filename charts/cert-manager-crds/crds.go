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

// Package certmanagercrds gives tests the CustomResourceDefinitions of
// cert-manager's cert-manager.io group — Certificate, CertificateRequest,
// Issuer and ClusterIssuer — so that they can run cert-manager's own
// controllers against a test API server (see test/certmanager).
//
// The manifests are copied by hack/generate.sh from deploy/crds of the
// github.com/cert-manager/cert-manager module that go.mod pins, and embedded
// here, so a test needs neither the module cache nor the go command at run
// time; `make verify` fails when the copies drift from the pinned release.
// They live in a package of their own because the Issuer and ClusterIssuer
// schemas are large (about 330 KB each, mostly ACME solver configuration):
// embedding them in package charts would grow every binary that imports it.
// Causeway never installs these CRDs in a real cluster; cert-manager's own
// installation does.
package certmanagercrds

import (
	"embed"
	"fmt"
	"io/fs"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/causeway-mesh/causeway/charts"
)

//go:embed *.yaml
var files embed.FS

// CRDs returns the cert-manager.io CRDs, sorted by file name. Every call
// decodes afresh, so callers may modify what they get.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list embedded cert-manager CRD manifests: %w", err)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded cert-manager CRD manifest %s: %w", name, err)
		}
		decoded, err := charts.DecodeCRDs(name, data)
		if err != nil {
			return nil, err
		}
		crds = append(crds, decoded...)
	}
	return crds, nil
}
