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

// Package charts holds Causeway's Helm charts and gives Go code the CRD
// manifests they contain, so that `causeway install`, the hub and the tests
// install exactly the CRDs the chart ships.
//
// The causeway-crds chart's crds/ directory is generated from the Go types
// in apis/ by hack/generate.sh and embedded here at build time: CRDs returns
// Causeway's own CRDs (causeway.dev and about.k8s.io), MCSCRDs the
// ServiceExport and ServiceImport CRDs that sigs.k8s.io/mcs-api publishes,
// GatewayAPICRDs the HTTPRoute, GRPCRoute and ReferenceGrant CRDs of the
// Gateway API's experimental channel (copied into gateway-api/ by
// hack/generate.sh from the module go.mod pins), and All all three. Every
// call decodes afresh, so callers may modify what they get.
package charts
