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

package charts

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	mcscrd "sigs.k8s.io/mcs-api/config/crd"
	"sigs.k8s.io/yaml"
)

//go:embed causeway-crds/crds/*.yaml gateway-api/*.yaml
var crdFiles embed.FS

// crdGlob and gatewayAPIGlob select the embedded CRD manifests; fs.Glob
// returns them sorted, so CRDs and GatewayAPICRDs return them in a stable
// order.
const (
	crdGlob        = "causeway-crds/crds/*.yaml"
	gatewayAPIGlob = "gateway-api/*.yaml"
)

// CRDs returns Causeway's own CRDs, decoded from the causeway-crds chart.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return embeddedCRDs(crdGlob)
}

// GatewayAPICRDs returns the Gateway API CRDs the agent reads — HTTPRoute,
// GRPCRoute and ReferenceGrant — from the experimental channel of the
// sigs.k8s.io/gateway-api release in go.mod (copied by hack/generate.sh).
// The experimental channel is needed for HTTPRoute's retry field.
func GatewayAPICRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return embeddedCRDs(gatewayAPIGlob)
}

// embeddedCRDs decodes the embedded manifests that match glob.
func embeddedCRDs(glob string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(crdFiles, glob)
	if err != nil {
		return nil, fmt.Errorf("list embedded CRD manifests: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no embedded CRD manifests match %s", glob)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		data, err := crdFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded CRD manifest %s: %w", name, err)
		}
		decoded, err := decodeCRDs(name, data)
		if err != nil {
			return nil, err
		}
		crds = append(crds, decoded...)
	}
	return crds, nil
}

// MCSCRDs returns the ServiceExport and ServiceImport CRDs of the
// Multi-Cluster Services API, as published by sigs.k8s.io/mcs-api.
func MCSCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	sources := []struct {
		name string
		data []byte
	}{
		{"sigs.k8s.io/mcs-api/config/crd ServiceExportCRD", mcscrd.ServiceExportCRD},
		{"sigs.k8s.io/mcs-api/config/crd ServiceImportCRD", mcscrd.ServiceImportCRD},
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, src := range sources {
		decoded, err := decodeCRDs(src.name, src.data)
		if err != nil {
			return nil, err
		}
		crds = append(crds, decoded...)
	}
	return crds, nil
}

// All returns every CRD Causeway needs in a cluster: its own (CRDs), then
// the MCS ones (MCSCRDs), then the Gateway API ones (GatewayAPICRDs).
func All() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	own, err := CRDs()
	if err != nil {
		return nil, err
	}
	mcs, err := MCSCRDs()
	if err != nil {
		return nil, err
	}
	gw, err := GatewayAPICRDs()
	if err != nil {
		return nil, err
	}
	return append(append(own, mcs...), gw...), nil
}

// decodeCRDs decodes every YAML document in data, which came from source
// (named in errors), as an apiextensions.k8s.io/v1 CustomResourceDefinition.
// Documents holding only comments are skipped; anything else that is not a
// CRD, or has fields a CRD does not, is an error, so a manifest that drifted
// from the Go types fails loudly instead of losing fields.
func decodeCRDs(source string, data []byte) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var crds []*apiextensionsv1.CustomResourceDefinition
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read YAML document %d of %s: %w", doc, source, err)
		}
		asJSON, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("decode YAML document %d of %s: %w", doc, source, err)
		}
		if trimmed := bytes.TrimSpace(asJSON); len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(raw, crd); err != nil {
			return nil, fmt.Errorf("decode CRD in YAML document %d of %s: %w", doc, source, err)
		}
		if gvk := crd.GroupVersionKind(); gvk != apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition") {
			return nil, fmt.Errorf("YAML document %d of %s: want a %s CustomResourceDefinition, got apiVersion %q kind %q",
				doc, source, apiextensionsv1.SchemeGroupVersion, crd.APIVersion, crd.Kind)
		}
		if crd.Name == "" {
			return nil, fmt.Errorf("YAML document %d of %s: CustomResourceDefinition has no metadata.name", doc, source)
		}
		crds = append(crds, crd)
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("%s holds no CustomResourceDefinition", source)
	}
	return crds, nil
}
