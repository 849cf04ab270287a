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
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// DecodeCRDs decodes the CustomResourceDefinitions of a multi-document YAML
// manifest as CRDs does its own: strictly, so that a manifest with fields
// the apiextensions.k8s.io/v1 types lack fails instead of losing them.
// source names the manifest in errors. It is for the CRD packages beside
// this one (charts/cert-manager-crds), which embed manifests that only
// tests need and so must not weigh on every binary that imports charts.
func DecodeCRDs(source string, data []byte) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return decodeCRDs(source, data)
}
