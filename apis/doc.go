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

// Package apis is the root of Causeway's API types; the types themselves
// live in one package per group and version:
//
//   - causeway/v1alpha1: causeway.dev — MemberCluster, TrafficPolicy,
//     FailoverPolicy, AuthorizationPolicy, MeshConfig.
//   - about/v1alpha1: about.k8s.io — ClusterProperty (KEP-2149).
//
// This package holds no code. Its test (validation_test.go) installs the
// generated CRDs into a real kube-apiserver (envtest) and checks that valid
// objects are accepted and invalid ones rejected with the messages written
// in the types' validation markers: the schema is the first line of
// validation that users meet, so it is tested like code.
package apis
